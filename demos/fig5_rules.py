"""Gradient vs deconvnet vs guided backprop for the same units and images.

The three rules differ only in how a ReLU passes the signal back (Springenberg et al. 2015).
Each row (one example of one unit) shares one colour scale; the numbers are the share of
positive pixels and the HF share (the energy a 3x3 box blur removes) inside the field.

    python demos/fig5_rules.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots
from tinyconv.tour import example_of, rule_summary
from tinyconv.units import strongest_feature

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

eight = X[example_of(model, X, labels, 8)]
k = int(strongest_feature(model.forward(eight[None], upto="relu3"))[0])   # post-ReLU totals

results = []
for layer, unit in (("conv2", 3), ("conv3", k)):
    ranking = tc.max_activating(model, X, layer, k=unit, top=3)
    results.append(tuple(tc.project_top(model, X, ranking, unit, rule=rule)
                         for rule in ("gradient", "deconvnet", "guided")))
for rule, (positive, hf) in rule_summary(model, X, results).items():
    print(f"{rule:>9}: median {positive:.0%} of the non-zero pixels positive, HF share {hf:.2f}")
fig = plots.compare_rules(model, X, results)
out = sys.argv[1] if len(sys.argv) > 1 else "fig5_rules.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
