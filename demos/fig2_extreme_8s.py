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
worst = tc.max_activating(model, eights, "logits", k=8, top=5, descending=False)
print("the five least probable 8s have p(8) =", worst.values[0].round(3))

fig = plots.extreme_examples(model, X, labels, digit=8)
out = sys.argv[1] if len(sys.argv) > 1 else "fig2_extreme_8s.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
