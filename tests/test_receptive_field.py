import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyconv as tc
from tinyconv.receptive_field import format_table


def alexnet_head():
    """AlexNet's first layers (Distill 2019, Table 1): r = 11, 19, 51, 67, S = 4, 8, 8, 16."""
    return tc.Sequential([
        tc.Conv2D(3, 4, 11, stride=4, name="conv1"), tc.ReLU(),
        tc.MaxPool2D(3, stride=2, name="pool1"),
        tc.Conv2D(4, 4, 5, padding=2, name="conv2"), tc.ReLU(),
        tc.MaxPool2D(3, stride=2, name="pool2"),
    ], input_shape=(227, 227, 3), seed=0)


def test_alexnet_sizes_jumps_and_padding_match_the_distill_table():
    m = alexnet_head()
    got = {n: tc.receptive_field(m, n) for n in ("conv1", "pool1", "conv2", "pool2")}
    assert [got[n].size for n in got] == [(11, 11), (19, 19), (51, 51), (67, 67)]
    assert [got[n].jump for n in got] == [(4, 4), (8, 8), (8, 8), (16, 16)]
    assert [got[n].pad for n in got] == [(0, 0), (0, 0), (16, 16), (16, 16)]
    # unit (0, 0) of conv2 starts 16 pixels above the image: its clipped box starts at 0
    assert got["conv2"].box(0, 0, clip=False) == (-16, 35, -16, 35)
    assert got["conv2"].box(0, 0) == (0, 35, 0, 35)


def test_dilation_and_non_square_geometry():
    m = tc.Sequential([tc.Conv2D(1, 2, (3, 1), dilation=(2, 3), stride=(1, 2)),
                       tc.Conv2D(2, 2, (1, 3), padding=(0, 1))], input_shape=(10, 12, 1))
    rf1, rf2 = tc.receptive_field(m, 1), tc.receptive_field(m, 2)
    assert rf1.size == (5, 1) and rf1.jump == (1, 2) and rf1.pad == (0, 0)
    assert rf2.size == (5, 5) and rf2.jump == (1, 2) and rf2.pad == (0, 2)
    assert rf2.box(2, 3) == (2, 7, 4, 9)


def test_same_padding_is_resolved_with_the_actual_input_size():
    # TensorFlow's rule: total padding max(k - n % s, 0) when s does not divide n
    m = tc.Sequential([tc.Conv2D(1, 1, 3, stride=2, padding="same")], input_shape=(7, 8, 1))
    rf = tc.receptive_field(m, 1)
    assert m.output_shapes[1] == (4, 4, 1)
    assert rf.pad == (1, 0)          # H: total 2 -> 1 before; W: total 1 -> 0 before, 1 after


def test_layers_after_flatten_see_the_whole_input():
    m = tc.Sequential([tc.Conv2D(1, 2, 3), tc.Flatten(), tc.Dense(2 * 6 * 6, 3), tc.ReLU()],
                      input_shape=(8, 8, 1))
    for l in (2, 3, 4):
        rf = tc.receptive_field(m, l)
        assert not rf.spatial and rf.size is None
        with pytest.raises(ValueError, match="idx: .*whole input"):
            rf.box(0, 0)
    assert "whole input" in format_table(m)


def test_box_rejects_locations_outside_the_map():
    rf = tc.receptive_field(alexnet_head(), "pool2")
    H_l, W_l = rf.output_shape[:2]
    with pytest.raises(ValueError, match="row"):
        rf.box(H_l, 0)
    with pytest.raises(ValueError, match="col"):
        rf.box(0, -1)
    with pytest.raises(TypeError, match="row"):
        rf.box(1.5, 0)


def test_patches_cut_the_unclipped_box_and_fill_outside():
    m = tc.Sequential([tc.Conv2D(1, 1, 3, padding=1), tc.MaxPool2D(2)], input_shape=(6, 6, 1))
    x = np.arange(2 * 36, dtype=np.float64).reshape(2, 6, 6, 1)
    rf = tc.receptive_field(m, 2)                    # size 4, jump 2, pad 1
    p = rf.patches(x, np.array([[0, 0], [2, 1]]), fill=-1.0)
    assert p.shape == (2, 4, 4, 1)
    assert (p[0, 0, :, 0] == -1).all() and (p[0, :, 0, 0] == -1).all()
    np.testing.assert_array_equal(p[0, 1:, 1:, 0], x[0, 0:3, 0:3, 0])
    r0, r1, c0, c1 = rf.box(2, 1)
    np.testing.assert_array_equal(p[1, : r1 - r0, : c1 - c0], x[1, r0:r1, c0:c1])
    np.testing.assert_array_equal(tc.patches(m, x, 2, (1, 1)), rf.patches(x, (1, 1)))


@pytest.mark.parametrize("idx, match", [
    ((3, 0), "idx: locations must lie in the 3x3 map"),
    (np.array([[0, 0], [0, -1]]), "idx: locations must lie"),
    (np.zeros((3, 2), int), r"idx: expected a \(row, col\) pair of ints or \(2, 2\)"),
    ((0.0, 1.0), "idx: expected"),
])
def test_patches_check_idx_like_every_technique(idx, match):
    m = tc.Sequential([tc.Conv2D(1, 1, 3, padding=1), tc.MaxPool2D(2)], input_shape=(6, 6, 1))
    x = np.zeros((2, 6, 6, 1))
    with pytest.raises(ValueError, match=match):
        tc.receptive_field(m, 2).patches(x, idx)


@st.composite
def conv_pool_stacks(draw):
    """Random conv/pool stacks: non-square kernels, strides, paddings, dilations."""
    H, W = draw(st.integers(9, 20)), draw(st.integers(9, 20))
    layers, C = [], 1
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
            layers.append(tc.Conv2D(C, 2, k, stride=(draw(st.integers(1, 2)),
                                                    draw(st.integers(1, 2))),
                                    padding=draw(st.sampled_from([0, 1, (1, 0), "same"])),
                                    dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2)))))
            C = 2
        else:
            size = (draw(st.integers(2, 3)), draw(st.integers(1, 3)))
            layers.append(tc.MaxPool2D(size, stride=(draw(st.integers(1, 2)),
                                                     draw(st.integers(1, 2)))))
    try:
        model = tc.Sequential(layers, (H, W, 1), seed=draw(st.integers(0, 99)))
    except ValueError:
        assume(False)
    return model.astype(np.float64), draw(st.integers(0, 10**6))


def gradient_support(model, layer, k, row, col, seed):
    """Input pixels with a nonzero gradient of ``y_(layer),(row,col),k`` for some input.

    Max-pooling passes the gradient to one pixel per window, so the support for one input is
    sparse; the union over a large random batch reaches every pixel that can matter.
    """
    x = np.random.default_rng(seed).standard_normal((256, *model.input_shape))
    g = tc.project(model, x, layer, k, idx=(row, col), rule="gradient")
    return np.nonzero(np.abs(g).sum(axis=(0, 3)))


@settings(deadline=None)
@given(conv_pool_stacks())
def test_gradient_support_of_a_unit_lies_in_its_box_and_touches_every_edge(case):
    """For a unit whose field lies inside the image, the support spans the box exactly.

    (At the border the clipped box can end on a gap of a strided field, so edges are only
    asserted for interior units; the subset property is asserted for a border unit too.)
    """
    model, seed = case
    L = len(model.layers)
    H_l, W_l, C_l = model.output_shapes[L]
    rf = tc.receptive_field(model, L)
    interior = [(r, c) for r in range(H_l) for c in range(W_l)
                if rf.box(r, c) == rf.box(r, c, clip=False)]
    assume(interior)
    rng = np.random.default_rng(seed)
    row, col = interior[rng.integers(len(interior))]
    k = int(rng.integers(C_l))
    rows, cols = gradient_support(model, L, k, row, col, seed)
    r0, r1, c0, c1 = rf.box(row, col)
    assert rows.min() == r0 and rows.max() == r1 - 1
    assert cols.min() == c0 and cols.max() == c1 - 1
    # a corner unit (clipped by the padding): the support stays inside the clipped box
    rows, cols = gradient_support(model, L, k, 0, 0, seed)
    r0, r1, c0, c1 = rf.box(0, 0)
    if len(rows):
        assert r0 <= rows.min() and rows.max() < r1 and c0 <= cols.min() and cols.max() < c1
