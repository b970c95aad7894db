"""The tour's page: ``index.html`` with, per figure, how to read it and the command that
re-draws it (the PNGs are written by :mod:`tinyconv.plots.writer`).

The texts of :data:`HOWTO` use the lecture's notation (``y_(l),idx,k``; layer 0 is the
input) and each ends with what the student should *see* in the figure above it.
"""

import html
import re
from pathlib import Path

from .files import atomic_write

DPI = 110
INDEX = "index.html"
COMMAND = "tinyconv tour --out DIR"      # how each "re-draw it" line starts for the tour
PAGE_TITLE = "<title>tinyconv tour"            # how the title of the tour's page begins


def older_tour_file(path):
    """Whether ``path`` is a file that a tour from before folders had their record wrote: its
    page (known by its title; a user's own ``index.html`` is not) or a figure the page shows."""
    try:
        page = (path.parent / INDEX).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    figure = re.fullmatch(r"fig\d+_[\w.-]+\.png", path.name) and f'src="{path.name}"' in page
    return PAGE_TITLE in page and (path.name == INDEX or bool(figure))


#: the tour's folder to :mod:`tinyconv.folders`
OUTPUT = dict(writer="tour", legacy=older_tour_file)


# --------------------------------------------------------------------------- writing


def write_index(out, entries, intro):
    """``index.html``: one section per figure, each a dict with ``name`` (the PNG),
    ``heading``, ``caption``, ``howto`` (how to read it) and ``command`` (how to re-draw it);
    links relative, images at their native size (the page scrolls, it does not shrink them).
    """
    def section(n, e):
        stem = html.escape(Path(e["name"]).stem)
        return (f'<section id="{stem}">\n'
                f'  <h2>{n}. {html.escape(e["heading"])}</h2>\n'
                f'  <p class="howto"><b>How to read this figure.</b> '
                f'{html.escape(e["howto"])}</p>\n'
                f'  <figure>\n'
                f'    <div class="scroll"><a href="{html.escape(e["name"])}">'
                f'<img src="{html.escape(e["name"])}" alt="{html.escape(e["heading"])}"></a>'
                f'</div>\n'
                f'    <figcaption>{html.escape(e["caption"])}</figcaption>\n'
                f'  </figure>\n'
                f'  <p class="redraw">Re-draw it: '
                f'<code>{html.escape(e["command"])}</code></p>\n</section>')

    sections = "\n".join(section(n, e) for n, e in enumerate(entries, 1))
    nav = "\n".join(f'  <li><a href="#{html.escape(Path(e["name"]).stem)}">{n}. '
                    f'{html.escape(e["heading"])}</a></li>' for n, e in enumerate(entries, 1))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tinyconv tour: interpreting a CNN on MNIST</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2rem; line-height: 1.45; color: #222; }}
  section {{ margin: 2.5rem 0; }}
  .scroll {{ overflow-x: auto; }}
  img {{ max-width: none; border: 1px solid #ddd; }}
  figure {{ margin: 0; }}
  figcaption, p {{ max-width: 48rem; }}
  .howto {{ background: #f5f5f0; padding: 0.6rem 0.8rem; border-left: 3px solid #999; }}
  nav ol {{ columns: 2; max-width: 48rem; }}
  code {{ background: #f0f0f0; padding: 0 0.3rem; }}
</style>
</head>
<body>
<h1>tinyconv tour: interpreting a CNN on MNIST</h1>
<p>{html.escape(intro)}</p>
<nav><ol>
{nav}
</ol></nav>
{sections}
</body>
</html>
"""
    path = out / INDEX
    with atomic_write(path, "w") as f:
        f.write(page)
    return path


# What each figure is for, in the lecture's notation, ending with what to see.
HOWTO = dict(
    filters=(
        "Each tile is one filter W[:, :, 0, k] of the first convolution (HWIO weights), and "
        "y_(1),idx,k = Σ W · (the 5×5 patch at idx) + b. Red weights reward ink under them, "
        "blue ones punish it, on one scale for all filters. The HF share in the caption says "
        "how far the filters are from noise (white noise ≈ 0.89, a smooth edge ≈ 0). You "
        "should see tiles with a red band beside a blue band: edge detectors, one "
        "orientation each, the clearer the lower that share."),
    extremes=(
        "The classifier's unit y_(L),c for c = {digit}, ranked over every held-out {digit}: "
        "MaxAct at the last layer. Left, the {digit}s the model is surest of (1 − p tiny); "
        "right, the least sure, misclassified ones in red with the class they were given. "
        "You should see well-formed, upright {digit}s on the left and unusual styles "
        "(slanted, broken, thick) on the right."),
    maxact=(
        "One row per convolution l, one column per feature k: the 9 digits i with the "
        "largest max_idx y_(l),idx,k, each cut to the receptive field of that idx. Compare "
        "rows: patches grow with depth. Within a column, you should see what the 9 patches "
        "share — a stroke direction at conv1, a curve or junction at conv2, a part of a "
        "digit at conv3."),
    projections=(
        "For one unit (l, k) and each of its top 9 examples, the strongest y_(l),idx,k is "
        "set to 1, every other activation of layer l to 0, and sent back with the deconvnet "
        "rule. Left, the projection inside the receptive field; right, the input patch in "
        "the same order. You should see that the red parts of the projection lie on the "
        "ink that the patches have in common."),
    rules=(
        "Each row is one example of one unit y_(l),idx,k (green box: its receptive field; "
        "cross: its centre); the three maps send the same one-hot signal back through "
        "ReLUs that pass it by the input's sign (gradient), the signal's sign (deconvnet) "
        "or both (guided), then through the same transposed convolutions, so all three can "
        "end with both signs. Compare along a row, on the row's one scale, and read the "
        "numbers: you should see guided backprop's map the least speckled (lowest HF share) "
        "and the gradient's the most, guided backprop's red lying on the strokes of the "
        "digit."),
    occlusion=(
        "A grey square is replaced by 0 at every position; each pixel of b, c and e shows "
        "(score − score with the square over it) ÷ score, averaged over the squares that "
        "cover it, on one fixed ±100 % scale. d is a post-ReLU map y_(l),idx,k ≥ 0 of the "
        "deepest convolution, f the class predicted with the square at each position. You "
        "should see red only where the square hides strokes the model needs for a {digit} — "
        "as deep a red as the drop is large, the same in every tour — and the class in f "
        "change where c is darkest."),
    fields=(
        "Unit (row, col) of layer l sees the input rows [row·S − P, row·S − P + r) and the "
        "same columns, r, S, P from the table (Araujo et al.). You should see the box grow "
        "with every convolution and jump with every pooling, until the deepest units see "
        "almost the whole digit."),
    switches=(
        "Max-pooling keeps the largest value of each 2×2 window (a → b) and records where "
        "it was (c). Unpooling (d) puts each kept value back at its switch, zeros "
        "elsewhere: the deconvnet's approximate inverse, and exactly the gradient's path. "
        "You should see that d is zero except at the red squares, which hold the values "
        "of b."),
    erf=(
        "Each image is mean_i mean_k |∂y_(l),idx,k / ∂x_i| (k over up to 16 features) for "
        "the central unit idx of "
        "layer l (Luo et al.), scaled to its maximum; the cyan box is the theoretical "
        "field. Below, the profile along the box's middle row. You should see that deeper "
        "fields fade towards the box's edges: the effective field is smaller than the "
        "theoretical one."),
    saliency=(
        "For one unit of conv2 and one of conv3, each of its 9 top examples is a pair: "
        "left, ∂y_(l),idx,k/∂x inside the receptive field (red: more ink there raises the "
        "unit); right, the input patch. You should see the red of each map follow the "
        "strokes of its patch that the 9 patches share."),
    every_map=(
        "One digit x and one class logit y_c (c = its label), nine answers to 'which pixels "
        "make y_c large?'. The first eight are signed maps shaped like x, each on its own "
        "scale symmetric about 0: the gradient ∂y_c/∂x, input × gradient, SmoothGrad (the "
        "gradient averaged over noisy copies of x), Integrated Gradients (the gradient "
        "averaged along the line from a black image to x, times x), the deconvnet and guided "
        "backprop (the rules of figure 5, sent back from y_c), guided Grad-CAM and occlusion "
        "(figure 6); Grad-CAM (magma, ≥ 0) weighs the deepest feature maps by their mean "
        "gradient, so it has only their few locations. You should see where the maps agree "
        "(red on strokes that push y_c up) and how they differ: the gradient and SmoothGrad "
        "also on the blank paper around the digit (their share on the ink, in the caption, "
        "is well below 100 %), input × gradient and Integrated Gradients only on the ink, "
        "the deconvnet and guided backprop drawing the whole digit, Grad-CAM and occlusion "
        "coarse blobs."),
    class_models=(
        "Each tile starts as a grey image and climbs the gradient of one class logit y_(L),c "
        "(Simonyan et al. 2013), with Yosinski et al.'s regularisers (L2 decay towards "
        "white, a small blur, jitter) so that it stays image-like; the title gives y_c "
        "before → after. It is what the classifier rewards, not an average digit: "
        "fragments of strokes, with no need to be one connected digit. You should see the "
        "strokes in the places where digits of class c have ink (the 1's slanted bar, the "
        "0's round sides, the 4's crossing), and in the caption that the model calls each "
        "class model by its class with logits like a typical digit's."),
    preferred_images=(
        "One row per unit k of the deepest convolution: left, the input that maximises the "
        "centre unit y_(l),centre,k (gradient ascent, cropped to its receptive field, blue "
        "box); right, the 9 held-out patches that maximise y_(l),idx,k over all idx (MaxAct, "
        "figure 3). Both ask what the unit wants: the ascent from the model alone, MaxAct "
        "from the data. You should see on the left the stroke or curve that the patches on "
        "the right share, and in the caption how far the regularised ascent gets compared "
        "with the best patch."),
    cascade=(
        "Rows are methods, columns models: the trained one, then the weights of the logits, "
        "conv3, conv2 and conv1 re-drawn at random, top layer first (Adebayo et al. 2018, "
        "cascading randomisation); each tile is |map| of the same digit, scaled to its own "
        "maximum. A map that explains the trained model must change once the weights it "
        "explains are random. The last two rows never look at the model (controls). You "
        "should see the gradient, SmoothGrad and Grad-CAM change from the first column on, "
        "input × gradient and Integrated Gradients keep the digit's shape to the end (they "
        "are multiplied by the input), and guided backprop and the deconvnet keep the "
        "outline until conv2 and conv1 are random."),
    similarity=(
        "The cascade of figure 14 as numbers: for each method, the Spearman rank correlation "
        "of |map| between the trained model and the randomised one (1: the same ranking of "
        "pixels; 0: unrelated), mean over the digits with a band of ± one standard error, "
        "over the whole image (left) and the digit's own pixels only (right, where the "
        "black background cannot agree for free). Dashed lines are the controls, at 1. You "
        "should see the gradient, SmoothGrad, occlusion and Grad-CAM fall furthest at the "
        "first step (their maps depend on the classifier's weights), and guided backprop "
        "stay the highest until conv2 and conv1 are random."),
    deletion=(
        "Deletion (left): the pixels are removed (set to 0) in the order a map ranks them, "
        "most important first, and the curve is p(c) after each step; a map that finds what "
        "the model uses makes p(c) fall fast (small area, AUC). Insertion (right): the "
        "pixels are put back in that order onto a blurred copy; a good map makes p(c) rise "
        "fast (large AUC) (Petsiuk et al. 2018). Dotted: random order, the Sobel edges and "
        "the input. You should see most maps beat the random order (coarse Grad-CAM the "
        "least), and the input itself (its darkest ink first) score among the maps: on "
        "MNIST, removing the ink in almost any order removes the digit, so these curves "
        "separate the maps less than the randomisation test of figure 15."),
)
