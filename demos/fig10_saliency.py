"""Saliency maps and corresponding patches (the lecture; Zeiler & Fergus 2014, Fig. 2): for one
unit of conv2 and one of conv3, the nine held-out digits that drive it hardest, each as the
unit's sensitivity map d y_(l),idx,k / d x (the gradient) inside its receptive field, beside
the input patch under that field.

    python demos/fig10_saliency.py [out.png] [conv2 feature] [conv3 feature]
"""

import sys

import tinyconv as tc
from tinyconv import plots

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

k2 = int(sys.argv[2]) if len(sys.argv) > 2 else 3
k3 = int(sys.argv[3]) if len(sys.argv) > 3 else 22
results = []
for layer, k in (("conv2", k2), ("conv3", k3)):
    ranking = tc.max_activating(model, X, layer, k=k, top=9)
    result = tc.project_top(model, X, ranking, k, rule="gradient")
    print(f"{layer} feature {k}: top digits {result.examples.tolist()}")
    results.append(result)
fig = plots.saliency_patches(model, X, results)
out = sys.argv[1] if len(sys.argv) > 1 else "fig10_saliency.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
