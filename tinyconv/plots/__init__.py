"""Figures for the lecture's techniques; every function returns a matplotlib ``Figure``.

One module per topic of the lecture. Each function draws result objects that the caller
computed with the toolkit (:class:`~tinyconv.MaxActivation`,
:class:`~tinyconv.projection.Projection`, :class:`~tinyconv.Occlusion`,
:class:`~tinyconv.ReceptiveField`, :func:`~tinyconv.effective_receptive_field`); the caller
(e.g. :mod:`tinyconv.tour`) also decides which units are shown. Nothing here computes a
technique. Figures are built as ``matplotlib.figure.Figure`` objects, without pyplot, so
importing this package selects no backend and keeps no global state: save with
``fig.savefig("f.png")``, or let a notebook display the returned figure.

==========================================  ==============================================
function                                    shows
==========================================  ==============================================
:func:`filters`                             first-layer filters (Zeiler & Fergus, Fig. 2)
:func:`extreme_examples`                    maximally / minimally activating 8s
:func:`maxact_montages`                     ``MaxAct_(l),k`` patches (Z&F Fig. 2, right)
:func:`projections`                         deconvnet projections beside their patches
:func:`compare_rules`                       gradient vs deconvnet vs guided backprop
:func:`occlusion_figure`                    occlusion sensitivity (Z&F Fig. 7)
:func:`receptive_field_growth`              the receptive field of every layer
:func:`pooling_switches`                    max-pooling switches and unpooling (Z&F §2.1)
:func:`effective_receptive_fields`          effective vs theoretical field (Luo et al.)
:func:`saliency_patches`                    saliency maps and corresponding patches
==========================================  ==============================================

Colour conventions (:mod:`tinyconv.plots._style`): signed values use a diverging map centred
at 0 (``RdBu_r``: red positive, blue negative, white 0) on a symmetric scale, shared and
stated where panels are compared; non-negative maps a sequential one, white at 0; classes
categorical colours named in a legend; images of digits are ink on paper (``gray_r``).
:mod:`tinyconv.measures` has the numbers the captions quote (HF share, positive
share).
"""

from ..units import centre_unit, conv_layers
from ._style import DIVERGING, FIELD_COLOURS, GAP, INK, RULE_NAMES
from .filters import filters
from .maxact import extreme_examples, maxact_montages
from .occlusion import occlusion_figure
from .projections import compare_rules, projections, saliency_patches
from .receptive_fields import effective_receptive_fields, receptive_field_growth
from .sanity import cascade_grid, deletion_insertion, similarity_vs_depth
from .switches import pooling_switches

__all__ = [
    "DIVERGING", "FIELD_COLOURS", "GAP", "INK", "RULE_NAMES", "centre_unit", "compare_rules",
    "conv_layers", "effective_receptive_fields", "extreme_examples", "filters",
    "maxact_montages", "occlusion_figure", "pooling_switches", "projections",
    "receptive_field_growth", "saliency_patches",
    # the sanity checks (tinyconv sanity)
    "cascade_grid", "deletion_insertion", "similarity_vs_depth",
]
