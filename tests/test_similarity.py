"""similarity: Spearman, SSIM and HOG against references on small cases, and their properties."""

import numpy as np
import pytest

from tinyconv.similarity import (
    METRICS,
    hog,
    hog_similarity,
    pearson,
    ranks,
    spearman,
    ssim,
    ssim_map,
    unit_scale,
)


def naive_ranks(v):
    """Average ranks by definition: 1 + (#smaller) + (#equal - 1) / 2."""
    return np.array([1 + (v < e).sum() + ((v == e).sum() - 1) / 2 for e in v])


def test_ranks_average_ties():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    v = np.random.default_rng(0).integers(0, 5, 40).astype(float)
    assert np.array_equal(ranks(v), naive_ranks(v))


def test_spearman_is_pearson_of_average_ranks_and_matches_scipy_if_present(rng):
    a = rng.integers(0, 4, (3, 8, 9)).astype(float)
    b = a + rng.normal(size=a.shape)
    mine = spearman(a, b)
    by_hand = [pearson(naive_ranks(u.ravel()), naive_ranks(v.ravel()))
               for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(mine, by_hand, rtol=1e-12)
    stats = pytest.importorskip("scipy.stats", reason="the `reference` extra: checked against "
                                "the definition only")
    for i in range(3):
        want = stats.spearmanr(a[i].ravel(), b[i].ravel())[0]
        np.testing.assert_allclose(mine[i], want, rtol=1e-12)


def test_spearman_absolute_and_mask(rng):
    a = rng.normal(size=(6, 6))
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, -a, absolute=True) == pytest.approx(1.0)
    # only the masked pixels count: outside the mask b is scrambled
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:5] = True
    b = np.where(mask, 2 * a + 1, rng.normal(size=(6, 6)))
    assert spearman(a, b, mask) == pytest.approx(1.0)
    assert spearman(a, b) < 0.99                                   # negative control


def test_identical_maps_score_one_and_unrelated_ones_near_zero(rng):
    a = rng.random((20, 28, 28))
    b = rng.random((20, 28, 28))
    for name, f in METRICS.items():
        np.testing.assert_allclose(f(a, a, None), 1.0, atol=1e-12, err_msg=name)
        assert abs(np.mean(f(a, b, None))) < 0.1, name


def test_ssim_matches_the_formula_on_one_window():
    rng = np.random.default_rng(1)
    a, b = rng.random((7, 7)), rng.random((7, 7))
    n = 49
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(ddof=1), b.var(ddof=1)
    cov = ((a - ma) * (b - mb)).sum() / (n - 1)
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    want = (2 * ma * mb + C1) * (2 * cov + C2) / ((ma ** 2 + mb ** 2 + C1) * (va + vb + C2))
    assert ssim(a, b) == pytest.approx(want, rel=1e-12)
    assert ssim_map(a[None], b[None], 1.0).shape == (1, 1, 1)


def test_ssim_averages_the_windows_and_the_mask_picks_window_centres(rng):
    a, b = rng.random((10, 12)), rng.random((10, 12))
    S = ssim_map(a[None], b[None], 1.0)[0]                        # (4, 6)
    assert ssim(a, b) == pytest.approx(S.mean())
    mask = np.zeros((10, 12), bool)
    mask[3, 3] = mask[5, 7] = True
    assert ssim(a, b, mask) == pytest.approx((S[0, 0] + S[2, 4]) / 2)
    corner = np.zeros((10, 12), bool)
    corner[0, 0] = True                                           # no window centred there
    assert np.isnan(ssim(a, b, corner))


def test_ssim_against_scikit_image_if_present(rng):
    skimage = pytest.importorskip("skimage.metrics")
    a, b = rng.random((28, 28)), rng.random((28, 28))
    want = skimage.structural_similarity(a, b, data_range=1.0)
    assert ssim(a, b) == pytest.approx(want, rel=1e-10)


def test_hog_against_scikit_image_if_present(rng):
    feature = pytest.importorskip("skimage.feature")
    a = rng.random((3, 28, 28))
    want = np.stack([feature.hog(m, orientations=9, pixels_per_cell=(4, 4),
                                 cells_per_block=(2, 2), block_norm="L2-Hys") for m in a])
    # the same descriptor; the two differ only in where the tiny epsilon of L2-Hys enters
    np.testing.assert_allclose(hog(a), want, atol=1e-6)


def test_hog_puts_a_vertical_edge_in_the_first_bin_and_a_horizontal_one_in_the_fifth():
    vertical = np.zeros((1, 8, 8))
    vertical[:, :, 4:] = 1.0                 # intensity changes along the columns: 0 degrees
    cells = hog(vertical, cell=4).reshape(1, 1, 1, 4, 9)[0, 0, 0]
    assert cells[:, 0].sum() > 0 and cells[:, 1:].sum() == 0
    horizontal = vertical.transpose(0, 2, 1)
    cells = hog(horizontal, cell=4).reshape(1, 1, 1, 4, 9)[0, 0, 0]
    assert cells[:, 4].sum() > 0 and np.delete(cells, 4, axis=1).sum() == 0
    assert hog(np.zeros((2, 28, 28))).shape == (2, 6 * 6 * 4 * 9)


def test_hog_similarity_sees_orientation_and_the_mask(rng):
    a = np.zeros((28, 28))
    a[:, 14:] = 1.0
    assert hog_similarity(a, a.T) < 0.5                           # rotated edges differ
    # block normalisation: brightness and contrast do not matter
    assert hog_similarity(a, 0.5 * a + 0.25) == pytest.approx(1.0)
    mask = np.zeros((28, 28), bool)
    mask[:, 10:18] = True
    # noise beyond one pixel of the mask (the [-1, 0, 1] gradient reaches one pixel out)
    noisy = np.where(np.roll(mask, 1, 1) | np.roll(mask, -1, 1), a, rng.random((28, 28)))
    assert hog_similarity(a, noisy, mask) == pytest.approx(1.0)
    assert hog_similarity(a, noisy) < 0.9


def test_unit_scale():
    a = np.array([[[-2.0, 1.0]], [[0.0, 0.0]]])
    assert unit_scale(a).tolist() == [[[1.0, 0.5]], [[0.0, 0.0]]]


def test_bad_input_names_the_argument():
    a = np.zeros((4, 8, 8))
    with pytest.raises(ValueError, match="b: expected the shape of a"):
        spearman(a, np.zeros((4, 8, 7)))
    with pytest.raises(ValueError, match="a: expected an"):
        ssim(np.zeros(8), np.zeros(8))
    with pytest.raises(TypeError, match="mask: expected a bool"):
        hog_similarity(a, a, mask=np.ones((8, 8)))
    with pytest.raises(ValueError, match="mask: expected shape"):
        spearman(a, a, mask=np.ones((3, 8, 8), bool))
    with pytest.raises(ValueError, match="a: SSIM needs"):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, a, data_range=0)
    with pytest.raises(ValueError, match="a: expected finite"):
        spearman(np.full((3, 3), np.nan), np.zeros((3, 3)))
