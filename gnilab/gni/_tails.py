"""Tails of the implicit-effect gradient noise: sub-Weibull laws (Fig. 3) and the diagnostics of
Fig. 2 (skewness, kurtosis, stable fits of each half)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import stable as _stable
from .._common.checks import check_int, check_real
from ._effects import implicit_effect
from ._injection import _check_generator, _check_net, accumulated_noise


def sub_weibull(r: float, size, generator=None, dtype=torch.float64) -> torch.Tensor:
    r"""Symmetric sub-Weibull draws with tail parameter ``r`` (Definition 3.2):
    :math:`X = \pm E^r`, :math:`E\sim\mathrm{Exp}(1)`, so :math:`P(|X| > x) = e^{-x^{1/r}}` and
    :math:`\|X\|_m = \Gamma(1 + rm)^{1/m} \asymp m^r` (r = 1/2: sub-Gaussian; r = 1: Laplace;
    larger r: heavier tails). The laws of Camuto et al. (2021), Fig. 3.

    Parameters
    ----------
    r : float > 0
        Tail parameter of Definition 3.2.
    size : int or tuple of int
        Shape of the output.
    generator : torch.Generator or int, optional
        Source of the randomness (a CPU generator, or a seed); ``None``: torch's global
        generator.
    dtype : torch.dtype
        Floating dtype of the draws (default float64).

    Returns
    -------
    torch.Tensor
        Draws of shape ``size`` on the CPU.
    """
    r = check_real("r", r, low=0, low_open=True)
    gen = _check_generator(generator)
    size = (size,) if isinstance(size, int) else tuple(size)
    e = torch.empty(size, dtype=dtype).exponential_(generator=gen)
    sign = torch.where(torch.rand(size, generator=gen, dtype=dtype) < 0.5, -1.0, 1.0)
    return sign * e.pow(r)


def sub_weibull_pdf(x, r: float):
    r"""Density of :func:`sub_weibull`: :math:`\frac{1}{2r}|x|^{1/r-1}e^{-|x|^{1/r}}`, the
    sub-Weibull densities of Camuto et al. (2021), Fig. 3 (Definition 3.2).

    Parameters
    ----------
    x : float or array_like
        Points at which to evaluate the density.
    r : float > 0
        Tail parameter.

    Returns
    -------
    numpy.ndarray or float
        The density at ``x``, shaped like ``x`` (``inf`` at 0 when r > 1).
    """
    r = check_real("r", r, low=0, low_open=True)
    a = np.abs(np.asarray(x, dtype=float))
    with np.errstate(divide="ignore"):
        return a ** (1 / r - 1) * np.exp(-a ** (1 / r)) / (2 * r)


def half_tail_fits(x) -> dict:
    r"""Maximum-likelihood half-normal and half-Cauchy fits to the positive part of ``x``
    (the comparison of the paper's Fig. 2): scales and mean log-likelihoods per point; the
    half-Cauchy fitting better (higher mean log-likelihood) marks a heavy tail.

    The half-normal scale is the root mean square of the positive entries; the half-Cauchy
    scale solves its likelihood equation by bisection.

    Parameters
    ----------
    x : torch.Tensor or array_like
        Sample of any shape (flattened); only its positive entries are used, at least 10.

    Returns
    -------
    dict
        ``halfnorm_scale``, ``halfnorm_loglik``, ``halfcauchy_scale``, ``halfcauchy_loglik``
        (mean log-likelihoods per positive point) and ``n_positive``.
    """
    v = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float).ravel()
    v = v[v > 0]
    if v.size < 10:
        raise ValueError(f"x must have at least 10 positive entries, got {v.size}")
    s_n = math.sqrt(float(np.mean(v ** 2)))
    ll_n = float(np.mean(0.5 * math.log(2 / math.pi) - math.log(s_n) - v ** 2 / (2 * s_n ** 2)))
    # half-Cauchy: the MLE scale solves mean(v^2 / (v^2 + s^2)) = 1/2 (monotone in s)
    lo, hi = float(v.min()), float(v.max())
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if np.mean(v ** 2 / (v ** 2 + mid ** 2)) > 0.5:
            lo = mid
        else:
            hi = mid
    s_c = math.sqrt(lo * hi)
    ll_c = float(np.mean(math.log(2 / (math.pi * s_c)) - np.log1p((v / s_c) ** 2)))
    return {"halfnorm_scale": s_n, "halfnorm_loglik": ll_n, "halfcauchy_scale": s_c,
            "halfcauchy_loglik": ll_c, "n_positive": int(v.size)}


def tail_statistics(x, fit_method: str = "quantile") -> dict:
    r"""Skewness, excess kurtosis, the half-normal / half-Cauchy comparison of the positive part
    (:func:`half_tail_fits`) and an :math:`S_\alpha` fit (S1) of the standardised sample: the
    per-layer numbers of the paper's Figs. 2 and A.3. Exact zeros (units dead on the whole
    batch: ReLU, or multiplicative noise on a zero activation) are left out and counted in
    ``n_zero``.

    Parameters
    ----------
    x : torch.Tensor or array_like
        Sample of any shape (flattened, float64), with at least 10 nonzero entries.
    fit_method : {"quantile", "mle", "ecf"}
        Method of :func:`gnilab.stable.fit` for the :math:`S_\alpha` fit.

    Returns
    -------
    dict
        ``n`` (nonzero entries used), ``n_zero``, ``skewness``, ``excess_kurtosis``, the S1
        ``alpha`` and ``beta`` of the standardised sample, and the keys of
        :func:`half_tail_fits` for the standardised sample.
    """
    v = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x,
                        dtype=torch.float64).reshape(-1)
    n_all = v.numel()
    v = v[v != 0]
    if v.numel() < 10:
        raise ValueError(f"x must have at least 10 nonzero entries, got {v.numel()}")
    z = (v - v.mean()) / v.std()
    skew = float(z.pow(3).mean())
    kurt = float(z.pow(4).mean() - 3)
    f = _stable.fit(z.numpy(), method=fit_method, param="S1")
    out = {"n": int(v.numel()), "n_zero": n_all - int(v.numel()), "skewness": skew, "excess_kurtosis": kurt,
           "alpha": f.alpha, "beta": f.beta}
    out.update(half_tail_fits(z))
    return out


def tail_table(net, x, y, loss="mse", copies: int = 16, draws: int = 3,
               forward_copies: int = 4, fit_method: str = "quantile"):
    r"""Per-layer tail statistics of the forward and the backward noise of ``net`` (the
    comparison of the paper's Figs. 2 and A.3), for ``draws`` independent noise draws.

    Forward: the accumulated noise :math:`\mathcal E_i` (:func:`accumulated_noise`, with
    ``forward_copies`` draws pooled) at every site. Backward: the implicit-effect gradient of
    every weight matrix (:func:`implicit_effect` with ``copies`` = M). Each is pooled over its
    entries and summarised by :func:`tail_statistics`; ``loglik_gain`` is the half-Cauchy
    minus the half-normal mean log-likelihood of the positive part (> 0: Cauchy-like tail).

    Parameters
    ----------
    net : GaussianNoiseInjection
        The noise-injected network.
    x : torch.Tensor
        The inputs, shape ``[N, ...]`` (the paper uses the whole data set).
    y : torch.Tensor
        The targets of ``x``, N rows.
    loss : str or callable
        ``"mse"``, ``"cross_entropy"``, ``"hinge"`` or a callable (see
        :func:`gnilab.train.get_loss`).
    copies : int >= 1
        M of :func:`implicit_effect` (draws estimating the explicit effect).
    draws : int >= 1
        Number of independent repetitions, each with fresh noise.
    forward_copies : int >= 1
        Noise draws pooled per repetition for the forward statistics.
    fit_method : {"quantile", "mle", "ecf"}
        Method of the :math:`S_\alpha` fits (:func:`tail_statistics`).

    Returns
    -------
    pandas.DataFrame
        One row per pass, layer and draw, with columns ``pass`` ("forward"/"backward"),
        ``layer`` (0-based site or weight-matrix index), ``name``, ``draw``, the statistics of
        :func:`tail_statistics` and ``loglik_gain``.
    """
    import pandas as pd
    net = _check_net(net)
    draws = check_int("draws", draws, low=1)
    rows = []
    for draw in range(draws):
        ie = implicit_effect(net, x, y, loss, copies=copies)
        fwd = accumulated_noise(net, x, copies=forward_copies)
        for pass_, items in (("forward", fwd.items()), ("backward", ie.grads.items())):
            for layer, (name, v) in enumerate(items):
                st = tail_statistics(v, fit_method)
                st["loglik_gain"] = st["halfcauchy_loglik"] - st["halfnorm_loglik"]
                rows.append({"pass": pass_, "layer": layer, "name": name, "draw": draw, **st})
    return pd.DataFrame(rows)
