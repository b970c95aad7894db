"""Occlusion of an 8 (Zeiler & Fergus 2014, Fig. 7): erase a square at every position and
record the drop in p(8), in the total of the strongest post-ReLU conv3 map, and the most
probable class. b, c and e share one fixed scale, -100 % .. +100 %.

    python demos/fig6_occlusion.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots
from tinyconv.tour import example_of, occlusion_results
from tinyconv.units import strongest_feature

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)
eight = X[example_of(model, X, labels, 8)]

result = tc.occlusion(model, eight, target=8, size=8, relative=True)
r, c = divmod(int(result.grid.argmax()), result.grid.shape[1])
print(f"p(8) = {result.original:.3f}; it drops most ({result.grid[r, c]:.0%}) with the "
      f"square at rows {result.rows[r]}..{result.rows[r] + 7}, columns "
      f"{result.cols[c]}..{result.cols[c] + 7}")

k = int(strongest_feature(model.forward(eight[None], upto="relu3"))[0])   # post-ReLU totals
fig = plots.occlusion_figure(eight, 8, **occlusion_results(model, eight, 8, (4, 8), "relu3", k))
out = sys.argv[1] if len(sys.argv) > 1 else "fig6_occlusion.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
