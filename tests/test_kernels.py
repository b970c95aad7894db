"""The numba kernels and their NumPy references on small cases worked out by hand.

Random configurations (all strides, paddings, dilations, float32 / float64) are compared
kernel-against-reference in test_properties.py; here each case has a known answer.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from tinyconv import kernels

IM2COL = [kernels.im2col, kernels.im2col_reference]
COL2IM = [kernels.col2im, kernels.col2im_reference]
MAXPOOL = [kernels.maxpool, kernels.maxpool_reference]
UNPOOL = [kernels.unpool, kernels.unpool_reference]
PASTE = [kernels.paste, kernels.paste_reference]


def ids(fns):
    return [f.__name__ for f in fns]


@pytest.mark.parametrize("im2col", IM2COL, ids=ids(IM2COL))
def test_im2col_rows_are_windows(im2col):
    # x[0, r, c, 0] = 10 r + c on a 2 x 3 image; 2 x 2 windows, stride 1, no padding
    x = (10 * np.arange(2)[:, None] + np.arange(3)[None, :]).astype(np.float64)[None, :, :, None]
    cols = im2col(x, 2, 2, 1, 1, 1, 1, 0, 0, 1, 2)
    np.testing.assert_array_equal(cols, [[0, 1, 10, 11], [1, 2, 11, 12]])


@pytest.mark.parametrize("im2col", IM2COL, ids=ids(IM2COL))
def test_im2col_padding_reads_zero_and_columns_are_tap_major(im2col):
    # 1 x 1 image with 2 channels, 2 x 2 kernel, padding 1 before: 2 x 2 outputs
    x = np.array([[[[1.0, 2.0]]]])
    cols = im2col(x, 2, 2, 1, 1, 1, 1, 1, 1, 2, 2)
    assert cols.shape == (4, 2 * 2 * 2)
    # output (oh, ow) sees the pixel at tap (1 - oh, 1 - ow); column (i*kw + j)*C + c
    for oh in range(2):
        for ow in range(2):
            want = np.zeros(8)
            tap = (1 - oh) * 2 + (1 - ow)
            want[2 * tap:2 * tap + 2] = [1, 2]
            np.testing.assert_array_equal(cols[oh * 2 + ow], want)


@pytest.mark.parametrize("im2col", IM2COL, ids=ids(IM2COL))
def test_im2col_dilation_and_stride_per_axis(im2col):
    x = np.arange(5 * 7, dtype=np.float64).reshape(1, 5, 7, 1)      # x = 7 r + c
    # kernel 2 x 2, stride (1, 3), dilation (2, 3): taps at rows r, r+2 and cols c, c+3
    cols = im2col(x, 2, 2, 1, 3, 2, 3, 0, 0, 3, 2)
    assert cols.shape == (6, 4)
    np.testing.assert_array_equal(cols[0], [0, 3, 14, 17])          # (oh, ow) = (0, 0)
    np.testing.assert_array_equal(cols[1], [3, 6, 17, 20])          # (0, 1): cols 3, 6
    np.testing.assert_array_equal(cols[5], [17, 20, 31, 34])        # (2, 1): rows 2, 4


@pytest.mark.parametrize("col2im", COL2IM, ids=ids(COL2IM))
def test_col2im_of_ones_counts_the_windows_covering_each_pixel(col2im):
    # 3 x 3 kernel, stride 1, padding 1 on a 3 x 4 image: 3 x 4 outputs
    cols = np.ones((3 * 4, 9))
    counts = col2im(cols, 1, 3, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 3, 4)[0, :, :, 0]
    np.testing.assert_array_equal(counts, [[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_keep_the_dtype(dtype):
    x = np.ones((1, 4, 3, 2), dtype=dtype)
    args = (2, 2, 1, 1, 1, 1, 0, 0, 3, 2)
    for im2col in IM2COL:
        assert im2col(x, *args).dtype == dtype
    for col2im in COL2IM:
        assert col2im(np.ones((6, 8), dtype=dtype), 1, 4, 3, 2, *args).dtype == dtype
    for maxpool in MAXPOOL:
        y, s = maxpool(x, 2, 2, 2, 2, 0, 0, 2, 1)
        assert y.dtype == dtype and s.dtype == np.int64
    for unpool in UNPOOL:
        assert unpool(y, s, 4, 3).dtype == dtype


@pytest.mark.parametrize("maxpool", MAXPOOL, ids=ids(MAXPOOL))
def test_maxpool_padding_never_wins(maxpool):
    # all values negative; a 3 x 3 window with padding 1 still returns a real pixel
    x = -np.arange(1, 7, dtype=np.float64).reshape(1, 2, 3, 1)      # -1 … -6
    y, s = maxpool(x, 3, 3, 1, 1, 1, 1, 2, 3)
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -1, -2], [-1, -1, -2]])
    np.testing.assert_array_equal(s[0, :, :, 0], [[0, 0, 1], [0, 0, 1]])


@pytest.mark.parametrize("maxpool", MAXPOOL, ids=ids(MAXPOOL))
def test_maxpool_ties_keep_the_first_in_row_major_order(maxpool):
    x = np.array([[0.0, 7.0, 7.0],
                  [7.0, 7.0, 1.0]])[None, :, :, None]
    # 2 x 2 windows, stride 1: (0, 0) and (0, 1) both see a four-way or three-way tie
    y, s = maxpool(x, 2, 2, 1, 1, 0, 0, 1, 2)
    np.testing.assert_array_equal(y.ravel(), [7, 7])
    np.testing.assert_array_equal(s.ravel(), [0 * 3 + 1, 0 * 3 + 1])


@pytest.mark.parametrize("maxpool", MAXPOOL, ids=ids(MAXPOOL))
def test_maxpool_channels_are_independent(maxpool):
    x = np.zeros((1, 2, 2, 2))
    x[0, 1, 0, 0] = 1        # channel 0: max at (1, 0)
    x[0, 0, 1, 1] = 1        # channel 1: max at (0, 1)
    _, s = maxpool(x, 2, 2, 2, 2, 0, 0, 1, 1)
    np.testing.assert_array_equal(s[0, 0, 0], [1 * 2 + 0, 0 * 2 + 1])


@pytest.mark.parametrize("maxpool", MAXPOOL, ids=ids(MAXPOOL))
def test_maxpool_of_a_rectified_window_is_the_pool_of_np_maximum_bit_for_bit(maxpool):
    # a window whose best is -0.0 or negative: max(x, 0) is +0.0 there (np.maximum's zero),
    # and the first cell keeps the switch, as in the pool of the ReLU's output
    x = np.array([[-0.0, -1.0], [-2.0, -3.0]])[None, :, :, None]
    x = np.concatenate([x, -x[:, ::-1]], axis=3)          # channel 1: 2, 3 over 0.0, 1
    y, s = maxpool(x, 2, 2, 2, 2, 0, 0, 1, 1, rectify=True)
    y_relu, s_relu = kernels.maxpool_reference(np.maximum(x, 0), 2, 2, 2, 2, 0, 0, 1, 1)
    assert y.tobytes() == y_relu.tobytes() and not np.signbit(y).any()
    np.testing.assert_array_equal(s, s_relu)
    np.testing.assert_array_equal(s.ravel(), [0, 1])


@pytest.mark.parametrize("unpool", UNPOOL, ids=ids(UNPOOL))
def test_unpool_adds_where_overlapping_windows_share_a_maximum(unpool):
    # 1 x 3 input whose middle pixel is the max of both overlapping 1 x 2 windows
    x = np.array([1.0, 5.0, 2.0]).reshape(1, 1, 3, 1)
    y, s = kernels.maxpool(x, 1, 2, 1, 1, 0, 0, 1, 2)
    np.testing.assert_array_equal(s.ravel(), [1, 1])
    dx = unpool(np.array([3.0, 4.0]).reshape(1, 1, 2, 1), s, 1, 3)
    np.testing.assert_array_equal(dx.ravel(), [0, 7, 0])


def test_reference_and_kernel_agree_on_a_fixed_case():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3))
    args = (3, 2, 2, 1, 1, 2, 1, 0, 3, 3)
    cols = kernels.im2col(x, *args)
    np.testing.assert_array_equal(cols, kernels.im2col_reference(x, *args))
    np.testing.assert_array_equal(kernels.col2im(cols, 2, 6, 5, 3, *args),
                                  kernels.col2im_reference(cols, 2, 6, 5, 3, *args))


# --------------------------------------------------------------------------- fast paths


@pytest.mark.parametrize("C, kernel, stride, dilation, pads", [
    (1, (3, 3), (1, 1), (1, 1), (1, 1)),     # one channel, stride 1: the column copies
    (1, (5, 4), (2, 3), (1, 1), (2, 0)),     # one channel, strided
    (1, (3, 2), (2, 1), (2, 3), (2, 1)),     # one channel, stride 1 along W only, dilated
    (3, (2, 3), (1, 2), (2, 1), (1, 2)),     # dilated rows
    (8, (3, 2), (2, 1), (1, 2), (0, 1)),     # many channels, dilated columns
    (7, (3, 3), (1, 1), (1, 1), (1, 1)),     # kw * C >= 16: the long runs
])
def test_kernels_equal_their_references_on_every_path(threads, C, kernel, stride, dilation,
                                                      pads):
    rng = np.random.default_rng(0)
    (kh, kw), (sh, sw), (dh, dw), (pt, pl) = kernel, stride, dilation, pads
    N, H, W = 3, 7, 9
    H_out = (H + 2 * pt - dh * (kh - 1) - 1) // sh + 1
    W_out = (W + 2 * pl - dw * (kw - 1) - 1) // sw + 1
    args = (kh, kw, sh, sw, dh, dw, pt, pl, H_out, W_out)
    x = rng.standard_normal((N, H, W, C))
    cols = kernels.im2col_reference(x, *args)
    np.testing.assert_array_equal(kernels.im2col(x, *args), cols)
    dcols = rng.standard_normal(cols.shape)
    back = kernels.col2im_reference(dcols, N, H, W, C, *args)
    np.testing.assert_array_equal(kernels.col2im(dcols, N, H, W, C, *args), back)
    # the same from and into column-major matrices (Conv2D's order for short tap rows)
    np.testing.assert_array_equal(kernels.col2im(np.asfortranarray(dcols), N, H, W, C, *args),
                                  back)
    out = np.full(cols.shape, np.nan, order="F")
    assert kernels.im2col(x, *args, out=out) is out
    np.testing.assert_array_equal(out, cols)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("C", [1, 3, 16])           # each of the three im2col loops
def test_im2col_into_a_view_leaves_the_rest_alone(threads, order, C):
    # Conv2D's buffer: cols plus a column of ones that carries the bias through the GEMM, with
    # rows to spare (the last chunk of a batch is smaller); a row-major one is filled through
    # its whole rows (kernels._whole_rows), which must not touch what lies beyond cols
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 4, C))
    args = (3, 3, 1, 1, 1, 1, 1, 1, 5, 4)
    rows, K = 2 * 5 * 4, 3 * 3 * C
    ext = np.full((rows + 7, K + 1), 7.0, order=order)
    ext[:, -1] = 1
    kernels.im2col(x, *args, out=ext[:rows, :-1])
    np.testing.assert_array_equal(ext[:rows, :-1], kernels.im2col_reference(x, *args))
    np.testing.assert_array_equal(ext[:, -1], 1)
    np.testing.assert_array_equal(ext[rows:, :-1], 7)
    same = kernels.im2col_reference(x, *args, out=np.empty_like(ext[:rows, :-1]))
    np.testing.assert_array_equal(same, ext[:rows, :-1])


def test_out_must_fit():
    x = np.ones((1, 4, 3, 2))
    args = (2, 2, 1, 1, 1, 1, 0, 0, 3, 2)
    with pytest.raises(ValueError, match=r"out: expected a float64 array of shape \(6, 8\)"):
        kernels.im2col(x, *args, out=np.empty((6, 7)))
    with pytest.raises(ValueError, match="out: expected a float64"):
        kernels.im2col(x, *args, out=np.empty((6, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.col2im(np.ones((6, 8)), 1, 4, 3, 2, *args, out=np.empty((1, 4, 3, 2), order="F"))


def test_inside_is_the_range_of_outputs_whose_tap_is_in_the_image():
    for shift in range(-4, 9):
        for size in range(-1, 6):
            for stride in (1, 2, 3):
                for n_out in range(0, 6):
                    want = [q for q in range(n_out) if 0 <= q * stride - shift < size]
                    lo, hi = kernels._inside(shift, size, stride, n_out)
                    assert list(range(lo, hi)) == want, (shift, size, stride, n_out)
                    assert 0 <= lo <= hi <= n_out


@pytest.mark.parametrize("fn", [kernels.im2col, kernels.col2im, kernels.maxpool, kernels.unpool,
                                kernels.paste], ids=lambda f: f.__name__)
def test_each_kernel_shows_its_numba_functions(fn):
    fn(*{"im2col": (np.ones((1, 3, 3, 1)), 2, 2, 1, 1, 1, 1, 0, 0, 2, 2),
         "col2im": (np.ones((4, 4)), 1, 3, 3, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2, 2),
         "maxpool": (np.ones((1, 2, 2, 1)), 2, 2, 2, 2, 0, 0, 1, 1),
         "unpool": (np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), dtype=np.int64), 2, 2),
         "paste": (np.zeros((1, 2, 2, 1)), np.ones((1, 1, 1, 1)), np.zeros((1, 2), np.int64), 0),
         }[fn.__name__])
    assert all(k.py_func.__name__.startswith("_" + fn.__name__) for k in fn.kernels)
    # numba's compile statistics, summed over them: the call above compiled or loaded one
    assert sum(fn.stats.cache_hits.values()) + sum(fn.stats.cache_misses.values()) >= 1
    assert fn.stats.cache_path


def test_pooling_on_all_threads_equals_the_reference(threads):
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, (3, 9, 8, 5)).astype(np.float64)          # many ties
    for args in [(2, 2, 2, 2, 0, 0, 4, 4), (3, 3, 2, 2, 1, 1, 5, 4), (3, 2, 1, 2, 0, 1, 7, 4)]:
        y, s = kernels.maxpool(x, *args)
        y_ref, s_ref = kernels.maxpool_reference(x, *args)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(s, s_ref)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(kernels.unpool(dy, s, 9, 8),
                                      kernels.unpool_reference(dy, s, 9, 8))


@pytest.mark.parametrize("paste", PASTE, ids=ids(PASTE))
@pytest.mark.parametrize("add", [0, 1])
def test_paste_cuts_each_patch_at_the_block_edge(paste, add):
    block = np.zeros((3, 4, 5, 2))
    patch = np.arange(3 * 3 * 3 * 2, dtype=np.float64).reshape(3, 3, 3, 2) + 1
    offset = np.array([[1, 1], [-1, 3], [4, 0]])       # inside, over two edges, all outside
    before = block + 7 * add
    block += 7 * add
    paste(block, patch, offset, add)
    want = before.copy()
    want[0, 1:4, 1:4] = patch[0] + 7 * add
    want[1, 0:2, 3:5] = patch[1, 1:3, 0:2] + 7 * add
    np.testing.assert_array_equal(block, want)                # the third block is untouched


def test_paste_on_all_threads_equals_the_reference(threads):
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        block = rng.standard_normal((40, 7, 6, 3)).astype(dtype)
        patch = rng.standard_normal((40, 4, 5, 3)).astype(dtype)
        offset = rng.integers(-5, 8, (40, 2))
        for add in (0, 1):
            a, b = block.copy(), block.copy()
            kernels.paste(a, patch, offset, add)
            kernels.paste_reference(b, patch, offset, add)
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- loading


def test_numba_loads_with_the_first_kernel_not_with_the_package():
    # `import tinyconv` stays light (numba alone takes ~0.4 s to import); the first layer
    # that runs a kernel loads it, and numba's idle OpenMP threads are set to sleep first
    code = (
        "import os, sys, numpy as np, tinyconv\n"
        "assert 'numba' not in sys.modules and 'tinyconv.kernels' not in sys.modules\n"
        "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'\n"
        "y = tinyconv.Conv2D(2, 2, 3, rng=0)(np.ones((1, 4, 4, 2), np.float32))\n"
        "assert 'tinyconv.kernels' in sys.modules and y.shape == (1, 2, 2, 2)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)


def test_a_wait_policy_the_user_set_is_kept():
    code = "import os, tinyconv; assert os.environ['OMP_WAIT_POLICY'] == 'ACTIVE'"
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)


def test_one_line_says_the_kernels_are_compiling_only_when_the_cache_misses(tmp_path):
    code = ("import numpy as np, tinyconv\n"
            "tinyconv.MaxPool2D(2)(np.ones((1, 2, 2, 1), np.float32))\n"
            "tinyconv.MaxPool2D(2)(np.ones((1, 2, 2, 3), np.float32))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def stderr():
        run = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300,
                             capture_output=True, text=True)
        return run.stderr.splitlines()
    first = stderr()
    assert [line for line in first if "compiling" in line] == [
        kernels.COMPILING_MESSAGE.format(seconds=kernels.COMPILE_SECONDS)]
    assert not any("compiling" in line for line in stderr())        # loaded from the cache


CACHE_PROBE = ("import numpy as np, tinyconv\n"
               "y = tinyconv.MaxPool2D(2)(np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1))\n"
               "assert y.item() == 3\n")


def run_without_a_cache_folder(env):
    run = subprocess.run([sys.executable, "-c", CACHE_PROBE], env=env, timeout=300,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return [line for line in run.stderr.splitlines() if "cannot cache" in line]


def test_an_unusable_cache_folder_falls_back_to_a_temporary_one(tmp_path):
    # a folder below a regular file can never be made, whoever runs the test (even root)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "cache"))
    lines = run_without_a_cache_folder(env)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"tinyconv: numba cannot cache compiled kernels in "
                               f"NUMBA_CACHE_DIR={blocker / 'cache'} (")


def test_no_cache_folder_at_all_still_runs_the_kernels(tmp_path):
    # numba's only locator is NUMBA_CACHE_DIR, and it is unset: numba itself would refuse to
    # define a cached kernel ("no locator available")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator", TMPDIR=str(tmp_path))
    lines = run_without_a_cache_folder(env)
    assert len(lines) == 1 and "no writable folder" in lines[0], lines
    assert not list(tmp_path.glob("tinyconv-numba-cache-*"))     # removed at exit


def test_a_usable_cache_folder_says_nothing(tmp_path):
    assert run_without_a_cache_folder(dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))) == []


@pytest.mark.parametrize("cores, blas, policy, want", [
    (2, 2, "auto", True), (1, 2, "auto", True), (2, 1, "auto", False), (4, 4, "auto", False),
    (2, 2, "numba", False), (4, 4, "1", True)])
def test_the_thread_policy(cores, blas, policy, want):
    # two cores shared with BLAS's threads: the kernels run on one numba thread, unless the
    # user chose otherwise with TINYCONV_KERNEL_THREADS
    assert kernels._runtime.one_thread_beside_blas(cores, blas, policy) is want


def test_an_unknown_thread_policy_names_the_variable():
    with pytest.raises(ValueError, match="^TINYCONV_KERNEL_THREADS: expected one of auto, 1, "
                                         "numba, got 'two'"):
        kernels._runtime.one_thread_beside_blas(2, 2, "two")
