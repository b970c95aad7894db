"""MaxAct montages (Zeiler & Fergus 2014, Fig. 2, right): for six feature maps of each
convolution, the nine held-out digits that drive the map hardest, each cropped to the
receptive field of its strongest unit.

    python demos/fig3_maxact.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

ranking = tc.max_activating(model, X, "conv2", k=3, top=9)
print("MaxAct of conv2 feature 3: digits", ranking.indices[0],
      "at (row, col)", ranking.locations[0].tolist())

rankings = [tc.max_activating(model, X, layer, k=range(6), top=9)
            for layer in ("conv1", "conv2", "conv3")]
fig = plots.maxact_montages(model, X, rankings)
out = sys.argv[1] if len(sys.argv) > 1 else "fig3_maxact.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
