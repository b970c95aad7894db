"""Sanity checks (Adebayo et al. 2018): every map of the shipped model as the network is
randomised from the top layer down, on a few held-out digits. The grid is the paper's Fig. 2;
beside it, similarity against depth and the deletion / insertion curves (Petsiuk et al. 2018).
``tinyconv sanity`` runs the full measurement (100 digits, data randomisation included).

    python demos/fig14_sanity.py [out.png]
"""

import sys
from pathlib import Path

import tinyconv as tc
from tinyconv.plots import sanity as figures
from tinyconv.sanity import sanity_checks

model = tc.pretrained("mnist")
images, labels = tc.load_mnist("bundled-test")
x, y = tc.to_float(images[:8]), labels[:8]

result = sanity_checks(model, x, y, seed=0, log=lambda line: None)  # no permuted-label model
for name, metrics in result["cascade"]["methods"].items():
    rho = metrics["spearman_abs"]["digit"]["mean"]
    print(f"{name:>22}: Spearman |map| on the digit, trained vs randomised down to "
          + ", ".join(f"{layer} {v:+.2f}" for layer, v in zip(result["cascade"]["layers"], rho,
                                                                strict=True)))

out = Path(sys.argv[1] if len(sys.argv) > 1 else "fig14_sanity.png")
figures.cascade_grid(result).savefig(out, dpi=110)
figures.similarity_vs_depth(result).savefig(out.with_name(out.stem + "_depth.png"), dpi=110)
figures.deletion_insertion(result).savefig(out.with_name(out.stem + "_deletion.png"), dpi=110)
print(f"saved {out}")
