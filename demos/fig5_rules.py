"""Gradient vs deconvnet vs guided backprop for the same units and images.

The three rules differ only in how a ReLU passes the signal back (Springenberg et al. 2015).

    python demos/fig5_rules.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

eight = X[plots.example_of(model, X, labels, 8)]
k = plots.strongest_feature(model, eight, "conv3")
for rule in ("gradient", "deconvnet", "guided"):
    back = tc.project(model, eight[None], "conv3", k, rule=rule)     # (1, 28, 28, 1)
    print(f"{rule:>9}: {(back > 0).mean():.0%} of the pixels positive")

fig = plots.compare_rules(model, X, [("conv2", 3), ("conv3", k)], n=3)
out = sys.argv[1] if len(sys.argv) > 1 else "fig5_rules.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
