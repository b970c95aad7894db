"""Class models: the image each of the ten digit logits prefers (Simonyan et al. 2013),
by gradient ascent with L2 decay, blur and jitter (Yosinski et al. 2015).

    python demos/fig11_class_models.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import gallery
from tinyconv.plots import methods as plots_methods

model = tc.pretrained("mnist")
fig = plots_methods.class_models(gallery.class_models(model))
out = sys.argv[1] if len(sys.argv) > 1 else "fig11_class_models.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
