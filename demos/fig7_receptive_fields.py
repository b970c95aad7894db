"""Receptive fields grow with depth: the input box of the central unit of every conv and
pool layer, and the table of r (size), S (jump) and P (padding) (Araujo et al., Distill 2019).

    python demos/fig7_receptive_fields.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots
from tinyconv.tour import example_of
from tinyconv.units import centre_unit

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

rf = tc.receptive_field(model, "conv3")
print(f"conv3: r = {rf.size}, S = {rf.jump}, P = {rf.pad}; unit (3, 3) sees the box "
      f"{rf.box(3, 3)} (rows r0:r1, columns c0:c1)")

shown = [(l, centre_unit(model, l)) for l, layer in enumerate(model.layers, 1)
         if isinstance(layer, (tc.Conv2D, tc.MaxPool2D))]         # every conv and pool layer
fig = plots.receptive_field_growth(X[example_of(model, X, labels, 8)],
                                   tc.receptive_fields(model), shown)
out = sys.argv[1] if len(sys.argv) > 1 else "fig7_receptive_fields.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
