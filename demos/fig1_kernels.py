"""The first layer's filters, one small image each (Zeiler & Fergus 2014, Fig. 2, layer 1).

    python demos/fig1_kernels.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots

model = tc.pretrained("mnist")
W = model.layers[model.index("conv1") - 1].params["W"]      # (kh, kw, C_in, C_out)
print(f"conv1 weights {W.shape}, from {W.min():.2f} to {W.max():.2f}")

fig = plots.filters(model, "conv1")
out = sys.argv[1] if len(sys.argv) > 1 else "fig1_kernels.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
