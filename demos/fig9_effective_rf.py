"""Effective vs theoretical receptive field (Luo et al. 2016): the mean |gradient| of the
central unit of each convolution over held-out digits, with the analytic box drawn on it.

    python demos/fig9_effective_rf.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import plots
from tinyconv.tour import erf_results

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images[:500])

# the conv3 feature most active at unit (3, 3), its gradient averaged over 100 digits
k = int(model.forward(X[:100], upto="conv3")[:, 3, 3, :].mean(axis=0).argmax())
erf = tc.effective_receptive_field(model, X[:100], "conv3", k=k, idx=(3, 3))   # (28, 28)
r0, r1, c0, c1 = tc.receptive_field(model, "conv3").box(3, 3, clip=False)
q = (r1 - r0) // 4                                   # the central half of the box, per axis
inner = erf[r0 + q:r1 - q, c0 + q:c1 - q].sum() / erf.sum()
print(f"conv3 unit (3, 3), feature {k}: {inner:.0%} of the mean |gradient| lies in the "
      f"central {r1 - r0 - 2 * q}x{c1 - c0 - 2 * q} of its {r1 - r0}x{c1 - c0} box "
      "(a quarter of its area)")

# averaged over 16 evenly spaced features per layer, as Luo et al. average over units
fig = plots.effective_receptive_fields(tc.receptive_fields(model),
                                       erf_results(model, X[:100], ["conv1", "conv2", "conv3"]),
                                       100)
out = sys.argv[1] if len(sys.argv) > 1 else "fig9_effective_rf.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
