"""Cross-checks of the methods after Zeiler & Fergus against Captum (skipped without it).

On random small CNNs (the same generator as ``test_captum.py``: non-square inputs, strides,
paddings, dilations, overlapping pools), in float32, to 1e-4 relative error
``‖ours - theirs‖ / ‖theirs‖``: InputXGradient; IntegratedGradients with the same steps, Riemann
rule and baseline (and our completeness gap against Captum's convergence delta; Captum's
trapezoid weights are 1/m where ours are 1/(m - 1), an exact factor the tests apply);
LayerGradCam(relu_attributions=True) with LayerAttribution.interpolate(…, "bilinear");
GuidedGradCam; and SmoothGrad against Captum's Saliency on the very same noisy copies.
"""

import numpy as np
import pytest
from test_captum import N_MODELS, nchw, nhwc, random_cnn

import tinyconv as tc

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")


def relative_error(ours, theirs):
    """``‖ours - theirs‖ / ‖theirs‖`` (Frobenius), with a floor so two zero maps agree."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-12)


def assert_agree(ours, theirs, rtol=1e-4):
    assert np.asarray(ours).shape == np.asarray(theirs).shape
    assert relative_error(ours, theirs) <= rtol


@pytest.fixture(scope="module", params=range(N_MODELS))
def case(request):
    model, x = random_cnn(request.param)
    return model, x, tc.to_torch(model)


def last_spatial(model):
    return max(l for l in range(1, len(model.layers) + 1) if model.spatial(l))


def test_relative_error_catches_a_wrong_map():
    a = np.random.default_rng(0).standard_normal((2, 5, 5, 1))
    assert relative_error(a, a) == 0
    assert relative_error(a * (1 + 1e-3), a) > 1e-4                # a 0.1 % scale error fails


def test_input_x_gradient(case):
    model, x, net = case
    theirs = captum_attr.InputXGradient(net).attribute(nchw(x), target=2)
    assert_agree(tc.input_x_gradient(model, x, 2), nhwc(theirs))


@pytest.mark.parametrize("method", ["trapezoid", "left", "right", "middle"])
def test_integrated_gradients(case, method):
    model, x, net = case
    baseline = np.random.default_rng(1).uniform(-0.5, 0.5, x.shape).astype(np.float32)
    theirs, delta = captum_attr.IntegratedGradients(net).attribute(
        nchw(x), baselines=nchw(baseline), target=1, n_steps=12, method=f"riemann_{method}",
        internal_batch_size=7, return_convergence_delta=True)
    ours = tc.integrated_gradients(model, x, 1, baseline=baseline, steps=12, method=method,
                                   batch_size=5)
    theirs, delta = nhwc(theirs), delta.detach().numpy()
    if method == "trapezoid":
        # Captum's trapezoid weights are 1/m, ours 1/(m - 1) (see the module docstring): the
        # same nodes, so its sum is ours times (m - 1)/m and its delta lacks 1/(m - 1) of it
        total = theirs.reshape(len(x), -1).sum(1, dtype=np.float64)
        theirs, delta = theirs * 12 / 11, delta + total / 11
    assert_agree(ours.attributions, theirs)
    # the gaps are differences of nearby numbers: judge them on the scale of F(x) - F(x')
    scale = np.abs(ours.difference).max() + np.abs(ours.attributions).sum() / len(x)
    assert np.abs(ours.gap - delta).max() <= 1e-4 * scale


def test_integrated_gradients_scalar_baseline(case):
    model, x, net = case
    theirs = captum_attr.IntegratedGradients(net).attribute(
        nchw(x), baselines=0.25, target=0, n_steps=8, method="riemann_trapezoid")
    ours = tc.integrated_gradients(model, x, 0, baseline=0.25, steps=8)
    assert_agree(ours.attributions, nhwc(theirs) * 8 / 7)          # Captum's 1/m weights


def test_grad_cam(case):
    model, x, net = case
    l = last_spatial(model)
    module = getattr(net, model.layers[l - 1].name)
    cam = captum_attr.LayerGradCam(net, module).attribute(nchw(x), target=3,
                                                          relu_attributions=True)
    up = captum_attr.LayerAttribution.interpolate(cam, x.shape[1:3], "bilinear")
    ours = tc.grad_cam(model, x, 3)
    assert ours.layer == l
    assert_agree(ours.map, cam.detach().numpy()[:, 0])
    assert_agree(ours.upsampled, up.detach().numpy()[:, 0])


def test_grad_cam_at_the_first_conv(case):
    model, x, net = case
    cam = captum_attr.LayerGradCam(net, net.conv1).attribute(nchw(x), target=4,
                                                             relu_attributions=True)
    assert_agree(tc.grad_cam(model, x, 4, layer="conv1").map, cam.detach().numpy()[:, 0])


def test_guided_grad_cam(case):
    model, x, net = case
    l = last_spatial(model)
    module = getattr(net, model.layers[l - 1].name)
    theirs = captum_attr.GuidedGradCam(net, module).attribute(
        nchw(x), target=1, interpolate_mode="bilinear")
    assert_agree(tc.guided_grad_cam(model, x, 1, layer=l), nhwc(theirs))


@pytest.mark.parametrize("kind", ["mean", "square", "var"])
def test_smoothgrad_on_the_same_noisy_copies(case, kind):
    model, x, net = case
    n = 6
    noise = (0.3 * np.random.default_rng(2).standard_normal((n, *x.shape))).astype(np.float32)
    saliency = captum_attr.Saliency(net)
    grads = np.stack([nhwc(saliency.attribute(nchw(x + e), target=2, abs=False))
                      for e in noise]).astype(np.float64)                    # (n, N, H, W, C)
    mean, mean_sq = grads.mean(axis=0), (grads ** 2).mean(axis=0)
    theirs = {"mean": mean, "square": mean_sq, "var": mean_sq - mean ** 2}[kind]
    ours = tc.smoothgrad(model, x, 2, n=n, kind=kind, noise=noise, batch_size=4)
    assert_agree(ours, theirs)
