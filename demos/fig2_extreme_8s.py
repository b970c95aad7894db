"""The held-out 8s with the highest and the lowest probability of "8".

MaxAct at the classifier head: ``tc.max_activating`` ranks examples by ``softmax(y_(L))_8``;
``descending=False`` gives the least convincing 8s ("Do we have a problem with certain 8s?").

    python demos/fig2_extreme_8s.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

eights = X[labels == 8]
ranking = tc.max_activating(model, eights, "logits", k=8, top=None)   # one ranking, both ends
print("the five least probable 8s have p(8) =", ranking.values[0][::-1][:5].round(3))

predicted = tc.predict(model, eights).argmax(axis=1)
# near p = 1 the titles give 1 - p, computed from the logits in float64
fig = plots.extreme_examples(eights, ranking, predicted, logits=model.forward(eights))
out = sys.argv[1] if len(sys.argv) > 1 else "fig2_extreme_8s.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
