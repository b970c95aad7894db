"""What the top conv3 units want to see: each one's preferred image (activation
maximisation of the centre unit) beside its MaxAct top-9 patches from held-out digits.

    python demos/fig12_preferred_images.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import gallery
from tinyconv.plots import methods as plots_methods

model = tc.pretrained("mnist")
images, _ = tc.load_mnist("bundled-test")
fig = plots_methods.preferred_images(
    gallery.preferred_images(model, tc.to_float(images), "conv3", n=6), "conv3")
out = sys.argv[1] if len(sys.argv) > 1 else "fig12_preferred_images.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
