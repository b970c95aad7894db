"""The explorer's API: one plain function per route, a JSON object in, a JSON object out.

The server (:mod:`tinyconv.explore.server`) only moves bytes; everything a route computes is
here, so the routes can be tested without a socket. Each answer names the call that computed
it (``"call"``), so the student can repeat the view in Python. Routes (``docs/explorer.md``):

=============  ============================================================================
``info``       the model's layers, shapes and receptive fields; what the page can show
``digit``      held-out bundled digit ``index`` as a 28x28 image, with its label
``forward``    class probabilities and every spatial layer's maps ``y_(l)`` for ``image``
``unit``       unit ``y_(l),idx,k``: receptive-field box, MaxAct top-9 patches, projection
``project``    the unit's projection with one rule (gradient / deconvnet / guided)
``occlusion``  drop in p(class) and the predicted class per occluder position
``preferred``  the unit's preferred image (``tc.activation_maximization``)
=============  ============================================================================

Images travel as ``{"shape", "data", "lo", "hi"}``: ``data`` is base64 of uint8 values
``round(255 (a - lo) / (hi - lo))``, in C order — for maps ``(C_l, H_l, W_l)``, one map after
the other, so the page can draw map ``k`` from one contiguous slice.
"""

import base64
import json
import threading

import numpy as np

import tinyconv as tc

from ..layers import RULES, softmax
from ..units import check_feature, is_spatial, strongest_locations

IMAGE_SHAPE = (28, 28)


class ApiError(Exception):
    """A request the API refuses: ``status`` (4xx) and a message for the JSON answer."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def encode(a, lo=None, hi=None):
    """An array of floats as ``{"shape", "data", "lo", "hi"}`` (see the module docstring);
    ``lo``/``hi`` default to the array's own range."""
    a = np.asarray(a, dtype=np.float64)
    lo = float(a.min()) if lo is None else float(lo)
    hi = float(a.max()) if hi is None else float(hi)
    scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    data = np.round(255 * np.clip(scaled, 0, 1)).astype(np.uint8)
    return {"shape": list(a.shape), "data": base64.b64encode(data.tobytes()).decode("ascii"),
            "lo": lo, "hi": hi}


def encode_signed(a):
    """Like :func:`encode`, with 0 at level 128 exactly and ``max |a|`` at 1 and 255, so a
    page can colour positive and negative values alike (``lo = -128/127 m``, ``hi = m``)."""
    m = float(np.abs(a).max()) or 1.0
    return encode(a, -m * 128 / 127, m)


def parse_json(raw):
    """The request body -> a dict; NaN and Infinity literals are refused like bad JSON."""
    def refuse(constant):
        raise ApiError(400, f"the body contains {constant}; numbers must be finite")
    try:
        body = json.loads(raw.decode("utf-8") if raw else "{}", parse_constant=refuse)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the body is not valid JSON ({err})") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(body).__name__}")
    return body


class Explorer:
    """The model, the held-out digits and the MaxAct rankings the routes share.

    Parameters
    ----------
    model : :class:`~tinyconv.model.Sequential` taking (N, 28, 28, 1) and giving (N, 10).
    X, labels : the digits searched for MaxAct (default: the bundled held-out 1,000).

    The top-9 of every feature of every spatial layer is computed here, once
    (``tc.max_activating``, Zeiler & Fergus 2014 §4), so a unit click only cuts patches.
    The layers keep caches between forward and backward, so one lock serialises the model.
    """

    def __init__(self, model, X=None, labels=None):
        if X is None:
            images, labels = tc.load_mnist("bundled-test")
            X = tc.to_float(images)
        self.model, self.X, self.labels = model, X, np.asarray(labels)
        self.layers = [l for l in range(1, len(model.layers) + 1) if is_spatial(model, l)]
        self.fields = tc.receptive_fields(model)
        self.rankings = {l: tc.max_activating(model, X, l, top=9, progress=False)
                         for l in self.layers}
        self.preferred_cache = {}
        self.lock = threading.Lock()

    # ----------------------------------------------------------------- request fields

    def image(self, body):
        """``body["image"]`` checked: 28x28 finite numbers in [0, 1] -> (1, 28, 28, 1)."""
        if "image" not in body:
            raise ApiError(400, "image: missing; expected 28x28 numbers in [0, 1]")
        try:
            a = np.asarray(body["image"], dtype=np.float64)
        except (ValueError, TypeError):
            raise ApiError(400, "image: expected 28 rows of 28 numbers") from None
        if a.shape != IMAGE_SHAPE:
            raise ApiError(400, f"image: expected shape [28, 28], got {list(a.shape)}")
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ApiError(400, "image: every value must be a finite number in [0, 1]")
        return a.astype(self.model.dtype)[None, :, :, None]

    def layer(self, body):
        """``body["layer"]`` (a name or number) -> ``l`` of a spatial layer."""
        value = body.get("layer")
        names = [self.model.names[l] for l in self.layers]
        if isinstance(value, str) and value in names:
            return self.model.names.index(value)
        if isinstance(value, int) and not isinstance(value, bool) and value in self.layers:
            return value
        raise ApiError(400, f"layer: expected one of {names}, got {value!r}")

    def integer(self, body, key, lo, hi, default=None):
        """``body[key]`` as an int in ``[lo, hi]`` (``default`` when absent and not None)."""
        value = body.get(key, default)
        if value is None or isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"{key}: expected a whole number in [{lo}, {hi}], got {value!r}")
        if not lo <= value <= hi:
            raise ApiError(400, f"{key}: expected a whole number in [{lo}, {hi}], got {value}")
        return value

    def unit(self, body, x):
        """``(l, k, (row, col), y_(l),idx,k)`` of the unit in ``body``, for input ``x``; no
        row/col: the strongest location of map ``k``. Call with the lock held."""
        l = self.layer(body)
        try:
            k = check_feature(self.model, l, body.get("feature"), name="feature")
        except (ValueError, TypeError) as err:
            raise ApiError(400, str(err)) from None
        H_l, W_l = self.model.output_shapes[l][:2]
        if body.get("row") is None and body.get("col") is None:
            row = col = None
        else:
            row = self.integer(body, "row", 0, H_l - 1)
            col = self.integer(body, "col", 0, W_l - 1)
        y = self.model.forward(x, upto=l)                       # (1, H_l, W_l, C_l)
        if row is None:
            row, col = strongest_locations(y, k)[0].tolist()
        return l, k, (row, col), float(y[0, row, col, k])

    def rule(self, body):
        rule = body.get("rule", "deconvnet")
        if rule not in RULES:
            raise ApiError(400, f"rule: expected one of {list(RULES)}, got {rule!r}")
        return rule

    # ----------------------------------------------------------------- the routes

    def info(self, body):
        """The model's spatial layers (name, shape, receptive field) and the page's options."""
        layers = []
        for l in self.layers:
            f = self.fields[l]
            layers.append({"l": l, "name": self.model.names[l],
                           "type": type(self.model.layers[l - 1]).__name__,
                           "shape": list(self.model.output_shapes[l]),
                           "rf": {"size": f.size, "jump": f.jump, "pad": f.pad}})
        return {"layers": layers, "classes": self.model.output_shapes[-1][0],
                "digits": len(self.X), "rules": list(RULES),
                "preferred": True,
                "call": "tc.receptive_fields(model)"}

    def digit(self, body):
        """Held-out digit ``index``: ``{"image": 28x28, "label"}``."""
        i = self.integer(body, "index", 0, len(self.X) - 1)
        return {"index": i, "label": int(self.labels[i]),
                "image": np.round(self.X[i, :, :, 0].astype(np.float64), 4).tolist(),
                "call": f"tc.to_float(tc.load_mnist('bundled-test')[0])[{i}]"}

    def forward(self, body):
        """Probabilities ``softmax(y_(L))`` and every spatial layer's maps, one scale per
        layer (``lo = min(0, min y_(l))``, ``hi = max y_(l)``) so strong maps look strong."""
        x = self.image(body)
        with self.lock:
            ys = self.model.activations(x)
        p = softmax(ys[-1].astype(np.float64))[0]
        layers = []
        for l in self.layers:
            y = ys[l][0].transpose(2, 0, 1)                 # (H_l, W_l, C_l) -> (C_l, H_l, W_l)
            layers.append({"l": l, "name": self.model.names[l],
                           **encode(y, min(0.0, float(y.min())), max(float(y.max()), 1e-12))})
        return {"probabilities": p.round(6).tolist(), "prediction": int(p.argmax()),
                "layers": layers, "call": "model.activations(x)"}

    def project(self, body):
        """The unit's projection to the input with ``rule`` (Zeiler & Fergus 2014, §2.1)."""
        x = self.image(body)
        rule = self.rule(body)
        with self.lock:
            l, k, idx, value = self.unit(body, x)
            a = tc.project(self.model, x, l, k, idx=idx, rule=rule)[0, :, :, 0]
        name = self.model.names[l]
        return {"layer": name, "feature": k, "row": idx[0], "col": idx[1], "rule": rule,
                "activation": value, "projection": encode_signed(a),
                "call": f"tc.project(model, x, {name!r}, {k}, idx={idx}, rule={rule!r})"}

    def unit_view(self, body):
        """The unit's receptive-field box, its activation, MaxAct top-9 patches and its
        projection: everything one click on a feature map shows."""
        answer = self.project(body)
        l = self.model.index(answer["layer"])
        k, idx = answer["feature"], (answer["row"], answer["col"])
        field = self.fields[l]
        ranking = self.rankings[l]
        best = ranking.indices[k]
        patches = field.patches(self.X[best], ranking.locations[k])[..., 0]  # (9, r_h, r_w)
        name = self.model.names[l]
        answer.update({
            "box": list(field.box(*idx)),
            "top9": {**encode(patches, 0.0, 1.0), "indices": best.tolist(),
                     "labels": self.labels[best].tolist(),
                     "values": ranking.values[k].round(4).tolist()},
            "calls": {"box": f"tc.receptive_field(model, {name!r}).box{idx}",
                      "top9": f"tc.max_activating(model, X_test, {name!r}, top=9) then "
                              f"tc.receptive_field(model, {name!r}).patches(...)",
                      "projection": answer["call"]}})
        return answer

    def occlusion(self, body):
        """Slide a ``size`` occluder with ``stride`` over the image: the drop in p(c) of the
        predicted class ``c``, and the class predicted at each position (Z&F 2014, §4.2)."""
        x = self.image(body)
        size = self.integer(body, "size", 1, IMAGE_SHAPE[0], default=6)
        stride = self.integer(body, "stride", 1, IMAGE_SHAPE[0], default=2)
        with self.lock:
            c = int(self.model.forward(x)[0].argmax())
            drop = tc.occlusion(self.model, x[0], c, size, stride)
            classes = tc.occlusion(self.model, x[0], lambda y: y.argmax(axis=1), size, stride)
        return {"class": c, "size": size, "stride": stride, "rows": drop.rows.tolist(),
                "cols": drop.cols.tolist(), "drop": drop.grid.round(4).tolist(),
                "predicted": classes.occluded.astype(int).tolist(), "pixels": encode_signed(
                    np.nan_to_num(drop.pixels)),
                "call": f"tc.occlusion(model, x[0], {c}, {size}, stride={stride})",
                "call_classes": f"tc.occlusion(model, x[0], lambda y: y.argmax(axis=1), "
                                f"{size}, stride={stride}).occluded"}

    def preferred(self, body):
        """The unit's preferred image: :func:`tinyconv.activation_maximization` of its centre
        unit (Yosinski et al. 2015), computed on the first request and cached."""
        l = self.layer(body)
        try:
            k = check_feature(self.model, l, body.get("feature"), name="feature")
        except (ValueError, TypeError) as err:
            raise ApiError(400, str(err)) from None
        name = self.model.names[l]
        if (l, k) not in self.preferred_cache:
            with self.lock:
                found = tc.activation_maximization(self.model, name, k)
                a = np.asarray(found.image, np.float64)
            self.preferred_cache[l, k] = a.reshape(IMAGE_SHAPE)
        return {"layer": name, "feature": k, "image": encode(self.preferred_cache[l, k]),
                "call": f"tc.activation_maximization(model, {name!r}, {k})"}


ROUTES = {"info": Explorer.info, "digit": Explorer.digit, "forward": Explorer.forward,
          "unit": Explorer.unit_view, "project": Explorer.project,
          "occlusion": Explorer.occlusion, "preferred": Explorer.preferred}


def handle(explorer, route, raw):
    """Answer one API request: ``(status, dict)``. ``raw`` is the body's bytes."""
    if route not in ROUTES:
        return 404, {"error": f"no API route {route!r}; routes: {', '.join(ROUTES)}"}
    try:
        return 200, ROUTES[route](explorer, parse_json(raw))
    except ApiError as err:
        return err.status, {"error": err.message}
