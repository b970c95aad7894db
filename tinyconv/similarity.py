"""How alike are two maps? The three measures of Adebayo et al. 2018 (§3, "similarity metrics").

Every function takes two stacks of maps ``a, b`` of shape ``(N, H, W)`` (or one ``(H, W)``
map each) and returns ``(N,)`` values (or one float), each computed either over the whole
image or over a boolean ``mask`` of the same shape (e.g. the digit's own pixels, ``x > 0``:
MNIST's background is exactly 0, so input × gradient and zero-baseline Integrated Gradients
are 0 there for *any* weights, and a whole-image number would count that agreement).

* :func:`spearman` — Spearman rank correlation, ties by average ranks (as
  ``scipy.stats.spearmanr``); with ``absolute=True`` on ``|a|, |b|``.
* :func:`ssim` — structural similarity (Wang et al. 2004, eq. 13) with scikit-image's
  default configuration of ``structural_similarity``: a 7×7 uniform window, ``K1 = 0.01``,
  ``K2 = 0.03``, sample (co)variances (``N / (N - 1)``), the mean over the windows that fit
  inside the image (scikit-image crops the same ``(7 - 1) / 2`` border). ``data_range`` must be
  given; the sanity runner compares maps scaled to ``[0, 1]``.
* :func:`hog_similarity` — Pearson correlation between HOG descriptors (Dalal & Triggs 2005):
  ``[-1, 0, 1]`` gradients, 9 unsigned orientation bins over 180°, 4×4-pixel cells (7×7 cells
  on a 28×28 map), 2×2-cell blocks moved by one cell, L2-Hys block normalisation (clip 0.2).

A value is NaN where it is undefined (a constant map has no ranks to correlate); callers
average with ``nanmean`` and report how many were defined.
"""

import numpy as np

from .checks import check_array, check_int

WINDOW = 7                       # SSIM window side (scikit-image's default win_size)
K1, K2 = 0.01, 0.03              # Wang et al. 2004, eq. 7 and 9
HOG_CELL, HOG_BLOCK, HOG_BINS = 4, 2, 9
HOG_CLIP = 0.2                   # L2-Hys: clip at 0.2, then renormalise (Dalal & Triggs §6.4)


def _as_maps(v, name):
    v = np.asarray(v)
    if v.dtype.kind in "iub":                    # 0/1 masks or uint8 images compared as maps
        v = v.astype(np.float64)
    return check_array(v, name).astype(np.float64)


def _pair(a, b, mask):
    """``a, b`` as float64 ``(N, H, W)``, ``mask`` as bool ``(N, H, W)`` or None, and whether
    the caller gave single ``(H, W)`` maps."""
    a, b = _as_maps(a, "a"), _as_maps(b, "b")
    if a.ndim not in (2, 3):
        raise ValueError(f"a: expected an (H, W) map or (N, H, W) maps, got shape {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"b: expected the shape of a, {a.shape}, got {b.shape}")
    single = a.ndim == 2
    shape = a.shape
    a, b = (a[None], b[None]) if single else (a, b)
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise TypeError(f"mask: expected a bool array (e.g. x > 0), got dtype {m.dtype}")
        if m.shape not in (shape, shape[-2:]):
            raise ValueError(f"mask: expected shape {shape} or {shape[-2:]}, got {m.shape}")
        mask = np.broadcast_to(m, a.shape)
    return a, b, mask, single


def _out(values, single):
    return float(values[0]) if single else values


def ranks(v):
    """Ranks ``1 … n`` of the values of a 1-D array, ties sharing their average rank."""
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                     # rank of each distinct value's last copy
    return (last - (counts - 1) / 2.0)[inverse]


def pearson(u, v):
    """Pearson correlation of two 1-D arrays; NaN if either is constant."""
    u, v = u - u.mean(), v - v.mean()
    den = np.sqrt((u * u).sum() * (v * v).sum())
    return float((u * v).sum() / den) if den > 0 else float("nan")


def spearman(a, b, mask=None, absolute=False):
    """Spearman rank correlation ``rho`` between maps (Adebayo et al. 2018, §3).

    Parameters
    ----------
    a, b : (N, H, W) or (H, W) maps.
    mask : None (all pixels) or bool, same shape (or ``(H, W)`` for all maps): the pixels used.
    absolute : rank ``|a|`` and ``|b|`` (the paper's "absolute value" variant: is the same
        region important, whatever the sign).

    Returns
    -------
    (N,) floats in ``[-1, 1]`` (a float for single maps): the Pearson correlation of the ranks.
    """
    a, b, mask, single = _pair(a, b, mask)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    values = np.empty(len(a))
    for i in range(len(a)):
        u, v = (a[i], b[i]) if mask is None else (a[i][mask[i]], b[i][mask[i]])
        values[i] = pearson(ranks(u.ravel()), ranks(v.ravel())) if u.size > 1 else np.nan
    return _out(values, single)


def _window_means(a):
    """The mean of every 7×7 window that fits inside each map: ``(N, H, W)`` ->
    ``(N, H - 6, W - 6)`` (the 'valid' uniform filter)."""
    windows = np.lib.stride_tricks.sliding_window_view(a, (WINDOW, WINDOW), axis=(1, 2))
    return windows.mean(axis=(-2, -1))


def ssim_map(a, b, data_range):
    """The local SSIM of every 7×7 window (Wang et al. 2004, eq. 13).

    ``S = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a² + mu_b² + C1)(s_a² + s_b² + C2))`` with
    ``C1 = (K1 R)²``, ``C2 = (K2 R)²``, ``R = data_range``, and sample (co)variances.

    Returns
    -------
    (N, H - 6, W - 6): entry ``[i, r, c]`` is the window whose top-left pixel is ``(r, c)``
    (centred on ``(r + 3, c + 3)``).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = WINDOW * WINDOW
    cov_norm = n / (n - 1)                       # sample, not population, (co)variances
    mu_a, mu_b = _window_means(a), _window_means(b)
    var_a = cov_norm * (_window_means(a * a) - mu_a ** 2)
    var_b = cov_norm * (_window_means(b * b) - mu_b ** 2)
    cov = cov_norm * (_window_means(a * b) - mu_a * mu_b)
    C1, C2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * mu_a * mu_b + C1) * (2 * cov + C2)
            / ((mu_a ** 2 + mu_b ** 2 + C1) * (var_a + var_b + C2)))


def ssim(a, b, mask=None, data_range=1.0):
    """Mean structural similarity between maps (Wang et al. 2004; scikit-image's defaults).

    Parameters
    ----------
    a, b : (N, H, W) or (H, W) maps, ``H, W >= 7``.
    mask : None or bool like ``a``: average only the windows *centred* on a mask pixel.
    data_range : the value range ``R`` of the maps (1.0 for maps scaled to ``[0, 1]``).

    Returns
    -------
    (N,) floats (a float for single maps); 1 for identical maps. NaN where the mask has no
    pixel at least 3 pixels from the border.
    """
    a, b, mask, single = _pair(a, b, mask)
    if min(a.shape[1:]) < WINDOW:
        raise ValueError(f"a: SSIM needs maps of at least {WINDOW}×{WINDOW} pixels, got "
                         f"{a.shape[1:]}")
    if not (isinstance(data_range, (int, float)) and data_range > 0):
        raise ValueError(f"data_range: expected a positive number, got {data_range!r}")
    S = ssim_map(a, b, float(data_range))
    if mask is None:
        return _out(S.mean(axis=(1, 2)), single)
    h = WINDOW // 2
    centres = mask[:, h:h + S.shape[1], h:h + S.shape[2]]
    count = centres.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(count > 0, (S * centres).sum(axis=(1, 2)) / count, np.nan)
    return _out(values, single)


def hog(a, mask=None, cell=HOG_CELL):
    """HOG descriptors (Dalal & Triggs 2005, §6) of ``(N, H, W)`` maps.

    Gradients by ``[-1, 0, 1]`` (zero at the border rows / columns), each pixel voting its
    magnitude into one of 9 unsigned orientation bins (``[0°, 180°)``, 20° each) of its
    ``cell × cell`` cell; the cells' histograms are grouped into 2×2-cell blocks (stride one
    cell), each block L2-Hys normalised. With ``mask``, pixels outside it cast no vote.

    Returns
    -------
    (N, n_blocks_h * n_blocks_w * 2 * 2 * 9) descriptors (1296 for 28×28 maps, cell 4).
    """
    a = np.asarray(a, np.float64)
    cell = check_int(cell, "cell", minimum=1)
    N, H, W_in = a.shape
    ch, cw = H // cell, W_in // cell
    if ch < HOG_BLOCK or cw < HOG_BLOCK:
        raise ValueError(f"cell: {cell}-pixel cells leave fewer than {HOG_BLOCK}×{HOG_BLOCK} "
                         f"cells on a {H}×{W_in} map")
    gr, gc = np.zeros_like(a), np.zeros_like(a)
    gr[:, 1:-1] = a[:, 2:] - a[:, :-2]
    gc[:, :, 1:-1] = a[:, :, 2:] - a[:, :, :-2]
    magnitude = np.hypot(gr, gc)
    if mask is not None:
        magnitude = magnitude * mask
    angle = np.rad2deg(np.arctan2(gr, gc)) % 180.0
    bins = np.minimum((angle // (180.0 / HOG_BINS)).astype(np.int64), HOG_BINS - 1)
    # (N, H, W) votes -> (N, ch, cell, cw, cell) pixels of each cell -> (N, ch, cw, 9) histograms
    votes = np.zeros((N, H, W_in, HOG_BINS))
    np.put_along_axis(votes, bins[..., None], magnitude[..., None], axis=-1)
    votes = votes[:, :ch * cell, :cw * cell].reshape(N, ch, cell, cw, cell, HOG_BINS)
    cells = votes.sum(axis=(2, 4))
    # blocks of 2×2 cells: (N, ch - 1, cw - 1, 2, 2, 9) -> one vector of 36 per block
    blocks = np.stack([cells[:, i:i + ch - 1, j:j + cw - 1]
                       for i in range(HOG_BLOCK) for j in range(HOG_BLOCK)], axis=3)
    blocks = blocks.reshape(N, ch - 1, cw - 1, -1)
    eps = 1e-5
    blocks = blocks / np.sqrt((blocks ** 2).sum(-1, keepdims=True) + eps ** 2)
    blocks = np.minimum(blocks, HOG_CLIP)
    blocks = blocks / np.sqrt((blocks ** 2).sum(-1, keepdims=True) + eps ** 2)
    return blocks.reshape(N, -1)


def hog_similarity(a, b, mask=None):
    """Pearson correlation between the HOG descriptors of ``a`` and ``b`` (Adebayo et al. 2018,
    §3: "HOG similarity"): do the maps have edges of the same orientations in the same cells?

    Parameters
    ----------
    a, b : (N, H, W) or (H, W) maps; mask : None or bool like ``a`` (see :func:`hog`).

    Returns
    -------
    (N,) floats in ``[-1, 1]`` (a float for single maps); NaN where a descriptor is constant.
    """
    a, b, mask, single = _pair(a, b, mask)
    da, db = hog(a, mask), hog(b, mask)
    return _out(np.array([pearson(u, v) for u, v in zip(da, db, strict=True)]), single)


METRICS = {
    "spearman": lambda a, b, mask: spearman(a, b, mask),
    "spearman_abs": lambda a, b, mask: spearman(a, b, mask, absolute=True),
    "ssim": lambda a, b, mask: ssim(unit_scale(a), unit_scale(b), mask),
    "hog": lambda a, b, mask: hog_similarity(unit_scale(a), unit_scale(b), mask),
}
"""name -> ``f(a, b, mask) -> (N,)``; SSIM and HOG compare ``|map| / max |map|`` (in [0, 1])."""


def unit_scale(a):
    """``|a[i]| / max |a[i]|`` for each map of ``(N, H, W)`` (all-zero maps stay 0)."""
    a = np.abs(np.asarray(a, np.float64))
    top = a.reshape(len(a), -1).max(axis=1)[:, None, None]
    return a / np.where(top > 0, top, 1.0)
