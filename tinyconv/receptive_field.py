"""Analytic receptive fields: which input pixels a unit ``y_(l),idx,k`` can see.

Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill
2019, eqs. (1)-(3). Per axis, with ``k_eff = d (k - 1) + 1`` the dilated kernel extent, ``s``
the stride and ``p`` the padding before the axis, a layer maps its input's field
``(r, S, P)`` to

    r_l = r_(l-1) + (k_eff - 1) * S_(l-1)      size: pixels one unit sees
    S_l = S_(l-1) * s                          jump: input pixels between neighbouring units
    P_l = P_(l-1) + p * S_(l-1)                effective padding

starting from ``(r_0, S_0, P_0) = (1, 1, 0)`` at the input. Unit ``u`` of layer ``l`` then sees
input rows ``[u S_l - P_l, u S_l - P_l + r_l)``. ReLU keeps the field; a layer after
``Flatten`` (a Dense) mixes every position, so its field is the whole input.
"""

from dataclasses import dataclass

import numpy as np

from .checks import check_array, check_int
from .units import check_locations


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of the units of one layer.

    Attributes
    ----------
    layer : ``l`` (0 = input).
    name : the layer's name.
    size, jump, pad : ``(h, w)`` pairs ``r``, ``S``, ``P`` — or None when ``spatial`` is
        False (a layer after Flatten: every unit sees the whole input).
    input_shape : ``(H, W)`` of the model's input.
    output_shape : shape of ``y_(l)`` for one example, ``(H_l, W_l, C_l)`` or ``(F,)``.
    spatial : whether units of this layer have locations ``idx``.
    """

    layer: int
    name: str
    size: tuple | None
    jump: tuple | None
    pad: tuple | None
    input_shape: tuple
    output_shape: tuple
    spatial: bool

    def _check_idx(self, row, col):
        if not self.spatial:
            raise ValueError(f"idx: layer {self.name!r} has no spatial locations (its output is "
                             f"{self.output_shape}); its receptive field is the whole input")
        H_l, W_l = self.output_shape[:2]
        check_int(row, "row", minimum=0, maximum=H_l - 1)
        check_int(col, "col", minimum=0, maximum=W_l - 1)

    def box(self, row, col, clip=True):
        """Half-open input box ``(r0, r1, c0, c1)`` seen by the unit at ``idx = (row, col)``.

        ``x[:, r0:r1, c0:c1, :]`` is the patch under ``y_(l),(row,col),k`` (for every ``k``).
        With ``clip=False`` the box may reach into the padding (negative or beyond ``H, W``):
        its extent is then exactly ``size``.
        """
        self._check_idx(row, col)
        r0 = row * self.jump[0] - self.pad[0]
        c0 = col * self.jump[1] - self.pad[1]
        r1, c1 = r0 + self.size[0], c0 + self.size[1]
        if clip:
            H, W = self.input_shape
            r0, r1, c0, c1 = max(r0, 0), min(r1, H), max(c0, 0), min(c1, W)
        return r0, r1, c0, c1

    def center(self, row, col):
        """Input coordinates ``(y, x)`` of the centre of the unit's field (may be fractional)."""
        r0, r1, c0, c1 = self.box(row, col, clip=False)
        return (r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2

    def patches(self, x, idx, fill=0.0):
        """Cut out the input patch under each example's unit.

        Parameters
        ----------
        x : (N, H, W, C) input.
        idx : one ``(row, col)`` for every example, or an ``(N, 2)`` int array (one each).
        fill : value for pixels of the (unclipped) box that lie outside the image, so that
            every patch has the full size ``r``.

        Returns
        -------
        (N, r_h, r_w, C) array.
        """
        x = check_array(x, "x", ndim=4)
        if x.shape[1:3] != tuple(self.input_shape):
            raise ValueError(f"x: expected images of size {self.input_shape}, got {x.shape[1:3]}")
        idx = check_locations(idx, len(x), self.output_shape, self.name)       # (N, 2)
        rh, rw = self.size
        out = np.full((len(x), rh, rw, x.shape[3]), fill, dtype=x.dtype)
        H, W = self.input_shape
        for i, (row, col) in enumerate(idx):
            r0, _, c0, _ = self.box(int(row), int(col), clip=False)
            a0, a1, b0, b1 = max(r0, 0), min(r0 + rh, H), max(c0, 0), min(c0 + rw, W)
            out[i, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = x[i, a0:a1, b0:b1]
        return out


def receptive_fields(model):
    """The :class:`ReceptiveField` of every layer, ``[RF of y_(0), …, RF of y_(L)]``."""
    H, W = model.input_shape[:2]
    size, jump, pad = [1, 1], [1, 1], [0, 0]
    spatial = True
    fields = [ReceptiveField(0, "input", (1, 1), (1, 1), (0, 0), (H, W),
                             model.output_shapes[0], True)]
    for l, layer in enumerate(model.layers, 1):
        geometry = layer.geometry(model.output_shapes[l - 1]) if spatial else None
        if geometry is None:
            spatial = False
        else:
            for axis, (k, s, p, d) in enumerate(geometry):
                size[axis] += (d * (k - 1)) * jump[axis]   # r_l = r + (k_eff - 1) S
                pad[axis] += p * jump[axis]                # P_l = P + p S
                jump[axis] *= s                            # S_l = S s
        fields.append(ReceptiveField(
            l, layer.name, tuple(size) if spatial else None, tuple(jump) if spatial else None,
            tuple(pad) if spatial else None, (H, W), model.output_shapes[l], spatial))
    return fields


def receptive_field(model, layer):
    """The receptive field of layer ``layer`` (a name or number ``l``) of ``model``.

    Returns
    -------
    :class:`ReceptiveField` with ``size``, ``jump``, ``pad`` as ``(h, w)`` pairs and
    ``box(row, col, clip=True)`` giving the half-open input box of ``y_(l),(row,col),k``.
    """
    return receptive_fields(model)[model.index(layer)]


def patches(model, x, layer, idx, fill=0.0):
    """``receptive_field(model, layer).patches(x, idx, fill)``: ``(N, r_h, r_w, C_0)``."""
    return receptive_field(model, layer).patches(x, idx, fill)


def format_table(model):
    """The per-layer table printed by ``tinyconv rf``: layer, output shape, r, S, P."""
    rows = [f"{'l':>3}  {'layer':<10} {'output':<14} {'r (size)':<12} {'S (jump)':<10} P (pad)"]
    for f in receptive_fields(model):
        shape = "x".join(map(str, f.output_shape))
        if f.spatial:
            r, S, P = (f"{a}x{b}" for a, b in (f.size, f.jump, f.pad))
        else:
            r, S, P = "whole input", "-", "-"
        rows.append(f"{f.layer:>3}  {f.name:<10} {shape:<14} {r:<12} {S:<10} {P}")
    return "\n".join(rows)
