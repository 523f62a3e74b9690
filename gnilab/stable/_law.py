"""The stable law as a ``torch.distributions.Distribution`` and its numpy-friendly functions
(:func:`logpdf`, :func:`pdf`, :func:`cdf`, :func:`sample`)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from . import _density as _sd
from . import _interp as _si
from ._params import _as_tensor, _check_param, _loc_shift, _validate
from ._sample import _fast_scalar_sample, _make_generator, _rsample
from ..config import resolve_device, resolve_dtype

PI = math.pi

class Stable(Distribution):
    r"""α-stable law :math:`S(\alpha,\beta,\sigma,\mu;k)` with ``param="S1"`` (k = 1, default)
    or ``"S0"`` (k = 0); see the module docstring for the characteristic functions.

    Parameters
    ----------
    alpha : float or Tensor
        tail index (stability), in (0, 2].
    beta : float or Tensor
        skewness, in [-1, 1].
    scale : float or Tensor
        scale :math:`\sigma>0` (at alpha = 2 the standard deviation is :math:`\sqrt2\sigma`).
    loc : float or Tensor
        location in the chosen parameterisation (:math:`\mu_1` or :math:`\mu_0`).
    param : {"S1", "S0"}
    validate_args : bool, optional

    Notes
    -----
    ``rsample`` is Chambers–Mallows–Stuck (Weron's form), exact at alpha = 1 and beta = ±1 and
    differentiable in all four parameters (the pathwise gradient is not defined *at* alpha = 1,
    where the alpha = 1 formula is used; use S0 for gradients in alpha across 1).
    ``log_prob`` and ``cdf`` use Nolan's (1997) integral representation
    (:mod:`gnilab.stable._density`); ``log_prob`` is differentiable in the value and all
    parameters. For alpha < 1 and beta = ±1 the support is a half-line and ``log_prob`` is
    ``-inf`` outside it.
    """

    arg_constraints = {
        "alpha": constraints.interval(0.0, 2.0),
        "beta": constraints.interval(-1.0, 1.0),
        "scale": constraints.positive,
        "loc": constraints.real,
    }
    has_rsample = True

    def __init__(self, alpha, beta, scale=1.0, loc=0.0, param: str = "S1", validate_args=None):
        self._k = _check_param(param)
        self.param = param
        # one law for every point (scalar alpha and beta): log_prob may use the interpolant
        self._scalar_law = all((v.numel() if isinstance(v, torch.Tensor) else np.size(v)) == 1
                               for v in (alpha, beta))
        self.alpha, self.beta, self.scale, self.loc = broadcast_all(alpha, beta, scale, loc)
        _validate(self.alpha.detach(), self.beta.detach(), self.scale.detach(), self.loc.detach())
        batch_shape = self.alpha.shape
        super().__init__(batch_shape, validate_args=validate_args)

    # --- bookkeeping --------------------------------------------------------------------------
    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Stable, _instance)
        batch_shape = torch.Size(batch_shape)
        new.alpha = self.alpha.expand(batch_shape)
        new.beta = self.beta.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.param, new._k, new._scalar_law = self.param, self._k, self._scalar_law
        super(Stable, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def loc_s0(self):
        """Location in S0 (equals ``loc`` when ``param == "S0"``)."""
        return self.loc if self._k == 0 else self.loc + _loc_shift(self.alpha, self.beta, self.scale)

    @property
    def loc_s1(self):
        """Location in S1 (equals ``loc`` when ``param == "S1"``)."""
        return self.loc if self._k == 1 else self.loc - _loc_shift(self.alpha, self.beta, self.scale)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        half = self.alpha < 1
        if bool((half & (self.beta == 1)).all()):
            return constraints.greater_than_eq(self.loc_s1.detach())
        if bool((half & (self.beta == -1)).all()):
            return _LessThanEq(self.loc_s1.detach())
        return constraints.real

    @property
    def mean(self):
        m = self.loc_s1
        return torch.where(self.alpha > 1, m, torch.full_like(m, math.nan))

    @property
    def mode(self):
        raise NotImplementedError("the mode of a stable law has no closed form")

    @property
    def variance(self):
        v = 2 * self.scale ** 2
        return torch.where(self.alpha == 2, v, torch.full_like(v, math.inf))

    # --- sampling --------------------------------------------------------------------------
    def rsample(self, sample_shape=torch.Size(), generator: Optional[torch.Generator] = None):
        """Reparameterised draws (CMS); ``generator`` is an optional ``torch.Generator``."""
        shape = self._extended_shape(sample_shape)
        return _rsample(self.alpha.expand(shape), self.beta.expand(shape),
                        self.scale.expand(shape), self.loc.expand(shape), shape, self._k,
                        generator)

    def sample(self, sample_shape=torch.Size(), generator: Optional[torch.Generator] = None):
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    # --- densities --------------------------------------------------------------------------
    def _as_value(self, value):
        """value as a tensor of the promoted dtype of value and parameters."""
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=self.alpha.dtype, device=self.alpha.device)
        dt = torch.promote_types(value.dtype, self.alpha.dtype)
        if not dt.is_floating_point:
            dt = torch.get_default_dtype()
        return value.to(dtype=dt, device=self.alpha.device)

    def _standardise(self, value):
        a, b, s, m = self.alpha, self.beta, self.scale, self.loc
        value, a, b, s, m = torch.broadcast_tensors(value, a, b, s, m)
        z = (value - m) / s
        if self._k == 1:
            one = a == 1
            if bool(one.any()):
                z = z - torch.where(one, 2 / PI * b * torch.log(s), torch.zeros_like(s))
        return z, a, b, s

    def log_prob(self, value):
        """log density; value broadcasts against the batch shape."""
        value = self._as_value(value)
        if self._validate_args:
            self._validate_sample(value)
        z, a, b, s = self._standardise(value)
        shape = z.shape
        shared = self._shared_law()
        if shared is not None:         # one law for every point: the cached interpolant
            lp = _si.std_logpdf_shared(z.reshape(-1), *shared, self._k)
        else:
            lp = _sd.std_logpdf(z.reshape(-1).to(torch.float64), a.reshape(-1).to(torch.float64),
                                b.reshape(-1).to(torch.float64), self._k)
        return lp.reshape(shape).to(value.dtype) - torch.log(s)

    def _shared_law(self):
        """(alpha, beta) as floats when the law was given by scalar alpha and beta and no
        gradient with respect to them is wanted, else None: log_prob then uses the
        interpolant of :mod:`gnilab.stable._interp` (built once per law and cached; ~1e-12 of
        the quadrature) instead of the per-point quadrature, which arrays of alpha or beta
        always get (the reference path)."""
        a, b = self.alpha, self.beta
        if not self._scalar_law or a.requires_grad or b.requires_grad or a.numel() == 0:
            return None
        return float(a.reshape(-1)[0]), float(b.reshape(-1)[0])

    def _cdf_pair(self, value):
        """(P(X <= value), P(X > value)), each computed without cancellation."""
        value = self._as_value(value)
        z, a, b, _ = self._standardise(value)
        lo, up = _sd.std_cdf(z.reshape(-1).to(torch.float64), a.reshape(-1).to(torch.float64),
                             b.reshape(-1).to(torch.float64), self._k)
        return lo.reshape(z.shape).to(value.dtype), up.reshape(z.shape).to(value.dtype)

    def cdf(self, value):
        """P(X <= value)."""
        return self._cdf_pair(value)[0]

    def sf(self, value):
        """P(X > value), accurate in the upper tail."""
        return self._cdf_pair(value)[1]

    def __repr__(self):
        return (f"Stable(alpha: {self.alpha}, beta: {self.beta}, scale: {self.scale}, "
                f"loc: {self.loc}, param: {self.param})")


class _LessThanEq(constraints.Constraint):
    def __init__(self, upper_bound):
        self.upper_bound = upper_bound
        super().__init__()

    def check(self, value):
        return value <= self.upper_bound
# =============================================================================================
# numpy-friendly module functions
# =============================================================================================
def _prep(x, alpha, beta, scale, loc, param, device=None, dtype=None):
    tensors = any(isinstance(v, torch.Tensor) for v in (x, alpha, beta, scale, loc))
    ref = next((v for v in (x, alpha, beta, scale, loc) if isinstance(v, torch.Tensor)), None)
    dt = resolve_dtype(dtype, ref) if (tensors or dtype is not None) else torch.float64
    if not dt.is_floating_point:
        dt = torch.float64
    dev = resolve_device(device, ref) if (tensors or device is not None) else torch.device("cpu")
    x_, a, b, s, m = (_as_tensor(v, dt, dev) for v in (x, alpha, beta, scale, loc))
    _validate(a.detach(), b.detach(), s.detach(), m.detach())
    if bool(torch.isnan(x_).any()):
        raise ValueError("x must not contain NaN (+-inf is allowed: density 0)")
    return tensors, Stable(a, b, s, m, param=param, validate_args=False), x_


def _out(t, tensors):
    if tensors:
        return t
    a = t.detach().cpu().numpy()
    return float(a) if a.ndim == 0 else a


def logpdf(x, alpha, beta, scale=1.0, loc=0.0, param: str = "S1"):
    r"""log density at ``x`` (arrays broadcast). numpy/floats in → numpy out; tensors in →
    tensor out (autograd kept). See :class:`Stable`.

    The density is Nolan's (1997) integral representation, computed by quadrature (or, for
    scalar alpha and beta without gradients in them, by the cached Chebyshev interpolant of
    that law).

    Parameters
    ----------
    x : float, array-like or Tensor
        points at which to evaluate; broadcast against the parameters. NaN is rejected,
        ``±inf`` is allowed (density 0).
    alpha : float, array-like or Tensor
        tail index (stability), in (0, 2].
    beta : float, array-like or Tensor
        skewness, in [-1, 1].
    scale : float, array-like or Tensor, optional
        scale :math:`\sigma > 0` (default 1; not a standard deviation, see :class:`Stable`).
    loc : float, array-like or Tensor, optional
        location (default 0) in the parameterisation ``param``: :math:`\mu_1` or
        :math:`\mu_0`.
    param : {"S1", "S0"}, optional
        parameterisation of ``loc`` (default ``"S1"``, as ``scipy.stats.levy_stable``).

    Returns
    -------
    float, numpy.ndarray or Tensor
        :math:`\log f(x)` with the broadcast shape of the inputs: a float for scalar
        numpy/float inputs, a float64 ``numpy.ndarray`` for array inputs, a Tensor
        (differentiable in ``x`` and all parameters) when any input is a Tensor.
    """
    _check_param(param)
    tensors, d, x_ = _prep(x, alpha, beta, scale, loc, param)
    return _out(d.log_prob(x_), tensors)


def pdf(x, alpha, beta, scale=1.0, loc=0.0, param: str = "S1"):
    r"""Density at ``x``; see :func:`logpdf`.

    Computed as :math:`\exp` of :func:`logpdf`, i.e. from Nolan's (1997) integral
    representation of the stable density.

    Parameters
    ----------
    x : float, array-like or Tensor
        points at which to evaluate; broadcast against the parameters. NaN is rejected,
        ``±inf`` is allowed (density 0).
    alpha : float, array-like or Tensor
        tail index (stability), in (0, 2].
    beta : float, array-like or Tensor
        skewness, in [-1, 1].
    scale : float, array-like or Tensor, optional
        scale :math:`\sigma > 0` (default 1; not a standard deviation, see :class:`Stable`).
    loc : float, array-like or Tensor, optional
        location (default 0) in the parameterisation ``param``: :math:`\mu_1` or
        :math:`\mu_0`.
    param : {"S1", "S0"}, optional
        parameterisation of ``loc`` (default ``"S1"``, as ``scipy.stats.levy_stable``).

    Returns
    -------
    float, numpy.ndarray or Tensor
        :math:`f(x) \ge 0` with the broadcast shape of the inputs; types as in
        :func:`logpdf` (a Tensor, with autograd kept, when any input is a Tensor).
    """
    _check_param(param)
    tensors, d, x_ = _prep(x, alpha, beta, scale, loc, param)
    return _out(torch.exp(d.log_prob(x_)), tensors)


def cdf(x, alpha, beta, scale=1.0, loc=0.0, param: str = "S1"):
    r"""Distribution function P(X <= x) (Nolan 1997, Theorem 1).

    Parameters
    ----------
    x : float, array-like or Tensor
        points at which to evaluate; broadcast against the parameters. NaN is rejected,
        ``±inf`` is allowed (probability 0 or 1).
    alpha : float, array-like or Tensor
        tail index (stability), in (0, 2].
    beta : float, array-like or Tensor
        skewness, in [-1, 1].
    scale : float, array-like or Tensor, optional
        scale :math:`\sigma > 0` (default 1; not a standard deviation, see :class:`Stable`).
    loc : float, array-like or Tensor, optional
        location (default 0) in the parameterisation ``param``: :math:`\mu_1` or
        :math:`\mu_0`.
    param : {"S1", "S0"}, optional
        parameterisation of ``loc`` (default ``"S1"``, as ``scipy.stats.levy_stable``).

    Returns
    -------
    float, numpy.ndarray or Tensor
        :math:`P(X \le x) \in [0, 1]` with the broadcast shape of the inputs; types as in
        :func:`logpdf` (a Tensor when any input is a Tensor).
    """
    _check_param(param)
    tensors, d, x_ = _prep(x, alpha, beta, scale, loc, param)
    return _out(d.cdf(x_), tensors)


def sample(alpha, beta, scale=1.0, loc=0.0, size=None, param: str = "S1", generator=None,
           device=None, dtype=None):
    r"""Draw stable variates by Chambers–Mallows–Stuck (see :func:`_cms_standard_s1`).

    The method of Chambers, Mallows & Stuck (1976) in Weron's (1996) corrected form, exact at
    alpha = 1 and beta = ±1; draws from Tensor parameters are reparameterised (differentiable
    in all four parameters, see :class:`Stable`).

    Parameters
    ----------
    alpha, beta, scale, loc : float, array or Tensor (broadcast against each other and ``size``)
        tail index in (0, 2], skewness in [-1, 1], scale :math:`\sigma > 0` (default 1) and
        location (default 0) in the parameterisation ``param``.
    size : int or tuple, optional
        output shape (default: the broadcast parameter shape).
    param : {"S1", "S0"}
        parameterisation of ``loc`` (default ``"S1"``).
    generator : torch.Generator or int seed, optional
        source of randomness; an int seeds a fresh generator on the output device, ``None``
        uses torch's global generator.
    device, dtype : optional
        ``None`` follows tensor inputs, else CPU float64 for numpy/float inputs (returned as
        numpy), else :func:`gnilab.config.resolve_dtype`.

    Returns
    -------
    numpy.ndarray or Tensor
        variates of shape ``size`` (or the broadcast parameter shape): a float64
        ``numpy.ndarray`` for numpy/float inputs (and no device/dtype given), else a Tensor.
    """
    k = _check_param(param)
    tensors = any(isinstance(v, torch.Tensor) for v in (alpha, beta, scale, loc))
    as_torch = tensors or device is not None or dtype is not None
    ref = next((v for v in (alpha, beta, scale, loc) if isinstance(v, torch.Tensor)), None)
    dev = resolve_device(device, ref) if as_torch else torch.device("cpu")
    dt = resolve_dtype(dtype, ref) if as_torch else torch.float64
    a, b, s, m = (_as_tensor(v, dt, dev) for v in (alpha, beta, scale, loc))
    _validate(a.detach(), b.detach(), s.detach(), m.detach())
    a, b, s, m = torch.broadcast_tensors(a, b, s, m)
    if size is None:
        shape = a.shape
    else:
        shape = torch.Size((size,) if isinstance(size, (int, np.integer)) else tuple(size))
    gen = _make_generator(generator, dev)
    scalar = a.numel() == 1 and not any(v.requires_grad for v in (a, b, s, m))
    if scalar and dev.type == "cpu":
        x = _fast_scalar_sample(float(a.reshape(-1)[0]), float(b.reshape(-1)[0]),
                                float(s.reshape(-1)[0]), float(m.reshape(-1)[0]), shape, k, dt, gen)
    else:
        x = _rsample(a.expand(shape), b.expand(shape), s.expand(shape), m.expand(shape), shape,
                     k, gen)
    return x if as_torch else _out(x, False)
