"""One held-out digit under every map: gradient, input × gradient, SmoothGrad, Integrated
Gradients, deconvnet, guided backprop, Grad-CAM, guided Grad-CAM and occlusion.

    python demos/fig10_every_map.py [out.png]
"""

import sys

import tinyconv as tc
from tinyconv import gallery
from tinyconv.plots import methods as plots_methods

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
X = tc.to_float(images)

i = next(i for i in range(len(X)) if labels[i] == 3
         and model.forward(X[i:i + 1]).argmax() == 3)                  # a correctly read 3
print(f"held-out digit {i}, label {labels[i]}")
fig = plots_methods.every_map(gallery.every_map(model, X[i]))
out = sys.argv[1] if len(sys.argv) > 1 else "fig10_every_map.png"
fig.savefig(out, dpi=110)
print(f"saved {out}")
