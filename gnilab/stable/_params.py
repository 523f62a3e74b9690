"""The S0 and S1 parameterisations of a stable law: checks and conversions between them."""
from __future__ import annotations

import math

import numpy as np
import torch

from .._common.checks import check_choice, check_tensor_range

PI = math.pi
_PARAMS = ("S0", "S1")


def _check_param(param) -> int:
    return 0 if check_choice("param", param, _PARAMS) == "S0" else 1


def _validate(alpha, beta, scale=None, loc=None):
    """Raise ValueError naming the argument, its values and the allowed range (tensors)."""
    check_tensor_range("alpha", alpha, low=0, high=2, low_open=True)
    check_tensor_range("beta", beta, low=-1, high=1)
    if scale is not None:
        check_tensor_range("scale", scale, low=0, low_open=True)
    if loc is not None:
        check_tensor_range("loc", loc)


def _as_tensor(x, dtype=None, device=None):
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype if dtype is not None else x.dtype,
                    device=device if device is not None else x.device)
    return torch.as_tensor(np.array(x, dtype=np.float64),     # a copy: negative strides too
                           dtype=dtype if dtype is not None else torch.float64, device=device)


def _loc_shift(alpha, beta, scale):
    """mu0 - mu1 = beta*sigma*tan(pi alpha/2) (alpha != 1), (2/pi) beta sigma log(sigma) (alpha = 1)."""
    one = alpha == 1
    a_safe = torch.where(one, torch.full_like(alpha, 0.5), alpha)
    return torch.where(one, 2 / PI * beta * scale * torch.log(scale),
                       beta * scale * torch.tan(PI * a_safe / 2))


def _convert(alpha, beta, scale, loc, sign):
    tensors = any(isinstance(v, torch.Tensor) for v in (alpha, beta, scale, loc))
    ref = next((v for v in (alpha, beta, scale, loc) if isinstance(v, torch.Tensor)), None)
    dt = ref.dtype if ref is not None and ref.is_floating_point() else torch.float64
    dev = ref.device if ref is not None else None
    a, b, s, m = (_as_tensor(v, dt, dev) for v in (alpha, beta, scale, loc))
    _validate(a, b, s, m)
    out = m + sign * _loc_shift(a, b, s)
    if tensors:
        return alpha, beta, scale, out
    out = out.cpu().numpy()
    return alpha, beta, scale, (float(out) if out.ndim == 0 else out)


def s1_to_s0(alpha, beta, scale, loc):
    r"""Convert S1 parameters to S0: only the location changes,
    :math:`\mu_0=\mu_1+\beta\sigma\tan(\pi\alpha/2)` for :math:`\alpha\ne1` and
    :math:`\mu_0=\mu_1+\frac2\pi\beta\sigma\log\sigma` for :math:`\alpha=1`
    (Nolan 2020, Prop. 1.4). Floats/arrays in, the same out; tensors keep autograd.

    Parameters
    ----------
    alpha : float, array-like or Tensor
        tail index, in (0, 2]; returned unchanged.
    beta : float, array-like or Tensor
        skewness, in [-1, 1]; returned unchanged.
    scale : float, array-like or Tensor
        scale :math:`\sigma > 0`; returned unchanged.
    loc : float, array-like or Tensor
        location in S1, :math:`\mu_1`.

    Returns
    -------
    tuple
        ``(alpha, beta, scale, loc0)``: the first three as given, ``loc0`` the S0 location
        :math:`\mu_0` (a float or ``numpy.ndarray`` for float/array inputs, a Tensor when any
        input is a Tensor), broadcast over the inputs.
    """
    return _convert(alpha, beta, scale, loc, +1.0)


def s0_to_s1(alpha, beta, scale, loc):
    r"""Convert S0 parameters to S1: :math:`\mu_1=\mu_0-\beta\sigma\tan(\pi\alpha/2)`
    (:math:`\alpha\ne1`), :math:`\mu_1=\mu_0-\frac2\pi\beta\sigma\log\sigma` (:math:`\alpha=1`)
    (Nolan 2020, Prop. 1.4; the inverse of :func:`s1_to_s0`). Floats/arrays in, the same out;
    tensors keep autograd.

    Parameters
    ----------
    alpha : float, array-like or Tensor
        tail index, in (0, 2]; returned unchanged.
    beta : float, array-like or Tensor
        skewness, in [-1, 1]; returned unchanged.
    scale : float, array-like or Tensor
        scale :math:`\sigma > 0`; returned unchanged.
    loc : float, array-like or Tensor
        location in S0, :math:`\mu_0`.

    Returns
    -------
    tuple
        ``(alpha, beta, scale, loc1)``: the first three as given, ``loc1`` the S1 location
        :math:`\mu_1` (a float or ``numpy.ndarray`` for float/array inputs, a Tensor when any
        input is a Tensor), broadcast over the inputs.
    """
    return _convert(alpha, beta, scale, loc, -1.0)
