"""Deconvnet projections beside the input patches under them (Zeiler & Fergus 2014, §2.1).

The units: conv2 feature 3, and the conv3 feature map that responds most to a held-out 8.

    python demos/fig4_projections.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots
from tinyconv.tour import example_of
from tinyconv.units import strongest_feature

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

eight = X[example_of(model, X, labels, 8)]
k = int(strongest_feature(model.forward(eight[None], upto="relu3"))[0])   # post-ReLU totals
print(f"the conv3 map with the largest total activation on this 8: k = {k}")

results = [tc.project_top(model, X, tc.max_activating(model, X, layer, k=unit, top=9), unit,
                          rule="deconvnet")
           for layer, unit in (("conv2", 3), ("conv3", k))]
fig = plots.projections(model, X, results)
out = sys.argv[1] if len(sys.argv) > 1 else "fig4_projections.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
