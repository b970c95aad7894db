"""PyTorch interop: ``to_torch`` / ``from_torch`` with exact weight transfer.

The two engines store the same numbers in different layouts::

                      tinyconv                     torch
    activations       (N, H, W, C)   NHWC          (N, C, H, W)   NCHW
    conv weights      (kh, kw, C_in, C_out) HWIO   (C_out, C_in, kh, kw) OIHW
    dense weights     (in, out)                    (out, in)
    flatten order     (H, W, C), C order           (C, H, W), C order

Weights are copied bit for bit (a transpose never rounds). Padding that torch's own
``padding=`` argument cannot express (TensorFlow's ``"same"`` with an odd total, whose extra
pixel goes to the bottom/right) becomes an explicit ``nn.ZeroPad2d`` before the convolution,
or an ``nn.ConstantPad2d`` with ``-inf`` before a max-pool (tinyconv's padded cells never win).
torch is imported inside the functions only: tinyconv runs without it.

The package: :mod:`.layouts` (the layout helpers, and importing torch), :mod:`.export`
(``to_torch``) and :mod:`.importing` (``from_torch``).
"""

from .export import to_torch
from .importing import HOOK_TABLES, from_torch
from .layouts import TORCH_REQUIREMENT, flatten_permutation, nchw_to_nhwc, nhwc_to_nchw

__all__ = ["HOOK_TABLES", "TORCH_REQUIREMENT", "flatten_permutation", "from_torch",
           "nchw_to_nhwc", "nhwc_to_nchw", "to_torch"]
