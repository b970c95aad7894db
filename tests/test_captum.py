"""Cross-checks against Captum on an identical torch copy (skipped without torch/captum).

On random small CNNs (non-square inputs, kernels, strides, paddings, dilations, overlapping
pools), tinyconv's saliency / deconvnet / guided backprop / occlusion must equal Captum's
Saliency (abs=False), Deconvolution and NeuronDeconvolution, GuidedBackprop and
NeuronGuidedBackprop, and Occlusion, to 1e-4 relative in float32.
"""

import numpy as np
import pytest

import tinyconv as tc

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")

N_MODELS = 20


def random_cnn(seed):
    """A random conv/relu/pool stack ending in Flatten + Dense, float32."""
    rng = np.random.default_rng(seed)
    H, W, C = int(rng.integers(9, 16)), int(rng.integers(9, 16)), int(rng.integers(1, 3))
    layers, c = [], C
    for j in range(int(rng.integers(1, 3))):
        out = int(rng.integers(2, 6))
        layers += [tc.Conv2D(c, out, (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                             stride=int(rng.integers(1, 3)),
                             padding=[0, 1, "same", (1, 0)][int(rng.integers(4))],
                             dilation=int(rng.integers(1, 3)), name=f"conv{j + 1}"),
                   tc.ReLU(name=f"relu{j + 1}")]
        c = out
        if rng.random() < 0.7:
            size = int(rng.integers(2, 4))
            layers.append(tc.MaxPool2D(size, stride=int(rng.integers(1, size + 1)),
                                       name=f"pool{j + 1}"))
    layers.append(tc.Flatten(name="flatten"))
    try:
        probe = tc.Sequential(layers, (H, W, C))
    except ValueError:
        return random_cnn(seed + 1000)
    layers.append(tc.Dense(probe.output_shapes[-1][0], 5, name="logits"))
    model = tc.Sequential(layers, (H, W, C), seed=seed)
    x = rng.standard_normal((3, H, W, C)).astype(np.float32)
    return model, x


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def assert_close(ours, theirs, rtol=1e-4):
    """Max abs difference relative to the largest value (zero maps must both be zero)."""
    scale = max(np.abs(theirs).max(), 1e-12)
    assert np.abs(ours - theirs).max() <= rtol * scale + 1e-12


def deepest_relu(model):
    return max(l for l in range(1, len(model.layers) + 1)
               if isinstance(model.layers[l - 1], tc.ReLU))


@pytest.fixture(scope="module", params=range(N_MODELS))
def case(request):
    model, x = random_cnn(request.param)
    return model, x, tc.to_torch(model)


def test_saliency_is_the_raw_gradient_of_the_logit(case):
    model, x, net = case
    target = 3
    theirs = captum_attr.Saliency(net).attribute(nchw(x), target=target, abs=False)
    ours = tc.project(model, x, "logits", target, rule="gradient")
    assert_close(ours, nhwc(theirs))
    assert_close(tc.saliency(model, x, target), np.abs(nhwc(theirs)).max(axis=-1))


@pytest.mark.parametrize("rule, method", [("deconvnet", "Deconvolution"),
                                          ("guided", "GuidedBackprop")])
def test_class_projections_match(case, rule, method):
    model, x, net = case
    theirs = getattr(captum_attr, method)(net).attribute(nchw(x), target=1)
    assert_close(tc.project(model, x, "logits", 1, rule=rule), nhwc(theirs))


@pytest.mark.parametrize("rule, method", [("deconvnet", "NeuronDeconvolution"),
                                          ("guided", "NeuronGuidedBackprop")])
def test_neuron_projections_match(case, rule, method):
    model, x, net = case
    l = deepest_relu(model)
    H_l, W_l, C_l = model.output_shapes[l]
    row, col, k = H_l // 2, W_l // 2, C_l - 1
    module = getattr(net, model.layers[l - 1].name)
    theirs = getattr(captum_attr, method)(net, module).attribute(
        nchw(x), neuron_selector=(k, row, col))
    ours = tc.project(model, x, l, k, idx=(row, col), rule=rule)
    assert_close(ours, nhwc(theirs))


def test_occlusion_per_pixel_map_matches(case):
    model, x, net = case
    C = x.shape[3]
    probs = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    size, stride = 3, 2
    theirs = captum_attr.Occlusion(probs).attribute(
        nchw(x), sliding_window_shapes=(C, size, size), strides=(C, stride, stride),
        baselines=0.0, target=2)
    ours = tc.occlusion(model, x, 2, size, stride=stride)
    # Captum spreads the change over every channel of the window; ours is per pixel
    assert_close(ours.pixels, nhwc(theirs)[..., 0], rtol=1e-4)
