"""Deconvnet projections beside the input patches under them (Zeiler & Fergus 2014, §2.1).

The units: conv2 feature 3, and the conv3 feature map that responds most to a held-out 8.

    python demos/fig4_projections.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

eight = X[plots.example_of(model, X, labels, 8)]
k = plots.strongest_feature(model, eight, "conv3")
print(f"the conv3 map with the largest total activation on this 8: k = {k}")

fig = plots.projections(model, X, [("conv2", 3), ("conv3", k)], rule="deconvnet")
out = sys.argv[1] if len(sys.argv) > 1 else "fig4_projections.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
