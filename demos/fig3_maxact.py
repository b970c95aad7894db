"""MaxAct montages (Zeiler & Fergus 2014, Fig. 2, right): for the six most distinctive
feature maps of each convolution (highest mean of their nine strongest responses), the nine
held-out digits that drive the map hardest, each cropped to the receptive field of its
strongest unit.

    python demos/fig3_maxact.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots
from tinyconv.tour import distinctive

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

ranking = tc.max_activating(model, X, "conv2", k=3, top=9)
print("MaxAct of conv2 feature 3: digits", ranking.indices[0],
      "at (row, col)", ranking.locations[0].tolist())

rankings, scores = [], []
for layer in ("conv1", "conv2", "conv3"):
    ranking = tc.max_activating(model, X, layer, k=None, top=9)     # every feature map
    ks, mean_top9 = distinctive(ranking, 6)
    rankings.append(ranking.select(ks))
    scores.append(mean_top9)
fig = plots.maxact_montages(model, X, rankings, scores=scores, score_name="mean top-9")
out = sys.argv[1] if len(sys.argv) > 1 else "fig3_maxact.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
