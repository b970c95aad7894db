"""Max-pooling switches and unpooling, worked on a 6x6 feature map (Zeiler & Fergus 2014, §2.1).

    python demos/fig8_switches.py [out.png]
"""

import sys

import numpy as np

import tinyconv as tc
from tinyconv import plots

x = np.random.default_rng(0).permutation(36).reshape(6, 6) + 1.0
pool = tc.MaxPool2D(2)
pooled = pool.forward(x[None, :, :, None])          # (1, 3, 3, 1)
print("pooled:\n", pooled[0, :, :, 0])
print("switches (flat row * 6 + col):\n", pool.switches[0, :, :, 0])
print("unpooled:\n", pool.backward(pooled)[0, :, :, 0])

fig = plots.pooling_switches(x)
out = sys.argv[1] if len(sys.argv) > 1 else "fig8_switches.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
