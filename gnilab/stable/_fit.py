"""Fitting a stable law to a sample: McCulloch's quantiles, Koutrouvelis' regression on the
empirical characteristic function and maximum likelihood (:func:`fit`, :class:`StableFit`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import torch

from . import _density as _sd
from . import _interp as _si
from . import _ml_table as _mlt
from ._params import _check_param
from .._common.checks import check_choice

PI = math.pi

# =============================================================================================
# quantile tables (McCulloch 1986), built from our own cdf
# =============================================================================================
_MC_ALPHA = np.round(np.arange(0.5, 2.0001, 0.1), 10)
_MC_BETA = np.round(np.linspace(0.0, 1.0, 11), 10)
_MC_P = (0.05, 0.25, 0.5, 0.75, 0.95)


def _compute_mcculloch_table(nodes: int = 40, iters: int = 45) -> np.ndarray:
    """Generate :data:`gnilab.stable._tables.MCCULLOCH_Q`: quantiles q_p(alpha, beta) of the
    standard S0 law for p in (.05, .25, .5, .75, .95) on the grid alpha = 0.5, 0.6, ..., 2.0,
    beta = 0, 0.1, ..., 1 (negative beta by symmetry), by vectorised bisection in asinh(x)
    on :func:`gnilab.stable._density.std_cdf`. Takes ~15 s, hence stored as constants; the
    test-suite checks a few entries against a fresh computation. Returns [16, 11, 5]."""
    A, B = np.meshgrid(_MC_ALPHA, _MC_BETA, indexing="ij")
    P = np.array(_MC_P)
    a = torch.tensor(np.repeat(A.reshape(-1), len(P)))
    b = torch.tensor(np.repeat(B.reshape(-1), len(P)))
    p = torch.tensor(np.tile(P, A.size))
    return _std_quantiles(a, b, p, nodes=nodes, iters=iters).numpy().reshape(A.shape + (len(P),))


def _std_quantiles(alpha, beta, probs, param=0, nodes=40, iters=45):
    """Quantiles of the standard law by vectorised bisection on our cdf in the variable
    asinh(x) in [-40, 40]; alpha, beta, probs are flat float64 tensors."""
    lo = torch.full_like(alpha, -40.0)
    hi = torch.full_like(alpha, 40.0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        F, _ = _sd.std_cdf(torch.sinh(mid), alpha, beta, param, nodes)
        below = F < probs
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return torch.sinh(0.5 * (lo + hi))


def _mcculloch_table() -> np.ndarray:
    """The stored table of standard S0 quantiles (see :func:`_compute_mcculloch_table`)."""
    from ._tables import MCCULLOCH_Q
    return MCCULLOCH_Q


def _interp2(table, ai, bj):
    """Bilinear interpolation of a [n_alpha, n_beta, ...] table at fractional indices."""
    i0 = int(np.clip(np.floor(ai), 0, table.shape[0] - 2))
    j0 = int(np.clip(np.floor(bj), 0, table.shape[1] - 2))
    ta, tb = ai - i0, bj - j0
    return ((1 - ta) * (1 - tb) * table[i0, j0] + ta * (1 - tb) * table[i0 + 1, j0]
            + (1 - ta) * tb * table[i0, j0 + 1] + ta * tb * table[i0 + 1, j0 + 1])


def _quantile_fit(x: np.ndarray):
    r"""McCulloch (1986): with sample quantiles :math:`\hat x_p`,

    .. math::

        \nu_\alpha=\frac{\hat x_{.95}-\hat x_{.05}}{\hat x_{.75}-\hat x_{.25}},\qquad
        \nu_\beta=\frac{\hat x_{.95}+\hat x_{.05}-2\hat x_{.5}}{\hat x_{.95}-\hat x_{.05}},

    which depend on (alpha, beta) only; they are inverted on the table of standard quantiles
    (alternating monotone 1-D inversions with bilinear interpolation), then
    :math:`\sigma=(\hat x_{.75}-\hat x_{.25})/(q_{.75}-q_{.25})` and
    :math:`\mu_0=\hat x_{.5}-\sigma q_{.5}` (S0 location). Returns (alpha, beta, scale, loc0).
    McCulloch's "corrected" sample quantiles (his Eq. 3) are used.
    """
    n = x.shape[0]
    xs = np.sort(x)
    # McCulloch's sample quantile: x_(i) is the (2i-1)/(2n) quantile, linear in between
    pos = np.array(_MC_P) * n - 0.5
    pos = np.clip(pos, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    xq = xs[lo] + (pos - lo) * (xs[hi] - xs[lo])
    q05, q25, q50, q75, q95 = xq
    iqr = q75 - q25
    if not iqr > 0:
        raise ValueError("x has zero inter-quartile range; the quantile method needs spread")
    nu_a = (q95 - q05) / iqr
    nu_b = (q95 + q05 - 2 * q50) / (q95 - q05) if q95 > q05 else 0.0
    T = _mcculloch_table()
    NA, NB = _mcculloch_inverse_grid()
    sgn = 1.0 if nu_b >= 0 else -1.0
    nu_b = abs(nu_b)
    # Invert (alpha, beta) -> (nu_alpha, nu_beta) by the nearest point of a fine grid of the
    # bilinearly interpolated table (0.005 in alpha and beta; far below the sampling error of
    # the method). Alternating 1-D inversions can lock onto a wrong fixed point: e.g. samples
    # of S1(1.2, 0.7) were read as (0.94, 1.0).
    dist = ((NA - nu_a) / nu_a) ** 2 + (NB - nu_b) ** 2
    ai_f, bj_f = np.unravel_index(int(np.argmin(dist)), dist.shape)
    ai = ai_f * (len(_MC_ALPHA) - 1) / (NA.shape[0] - 1)
    bj = bj_f * (len(_MC_BETA) - 1) / (NA.shape[1] - 1)
    alpha = float(np.interp(ai, np.arange(len(_MC_ALPHA)), _MC_ALPHA))
    beta = sgn * float(np.interp(bj, np.arange(len(_MC_BETA)), _MC_BETA))
    qa = _interp2(T, ai, bj)                         # standard S0 quantiles for |beta|
    if sgn < 0:
        qa = -qa[::-1]
    scale = iqr / (qa[3] - qa[1])
    loc0 = q50 - scale * qa[2]
    return alpha, beta, float(scale), float(loc0)


@lru_cache(maxsize=1)
def _mcculloch_inverse_grid(points_per_cell: int = 20):
    """nu_alpha and nu_beta of the table, bilinearly interpolated onto a grid
    ``points_per_cell`` times finer than the table's (alpha, beta) grid."""
    T = _mcculloch_table()
    na_tab = (T[..., 4] - T[..., 0]) / (T[..., 3] - T[..., 1])
    nb_tab = (T[..., 4] + T[..., 0] - 2 * T[..., 2]) / (T[..., 4] - T[..., 0])
    ia = np.linspace(0, len(_MC_ALPHA) - 1, (len(_MC_ALPHA) - 1) * points_per_cell + 1)
    jb = np.linspace(0, len(_MC_BETA) - 1, (len(_MC_BETA) - 1) * points_per_cell + 1)

    def fine(tab):
        along_a = np.stack([np.interp(ia, np.arange(tab.shape[0]), tab[:, j])
                            for j in range(tab.shape[1])], axis=1)
        return np.stack([np.interp(jb, np.arange(tab.shape[1]), row) for row in along_a])

    return fine(na_tab), fine(nb_tab)


# =============================================================================================
# Koutrouvelis (1980) regression
# =============================================================================================
def _ecf_fit(x: np.ndarray, start=None, iters=10):
    r"""Koutrouvelis (1980) regression on the empirical characteristic function
    :math:`\hat\phi(t)=\frac1n\sum_j e^{itx_j}` of the data standardised by the current
    estimate: (i) :math:`\log(-\log|\hat\phi(t_k)|^2)=\log(2\sigma^\alpha)+\alpha\log|t_k|`,
    :math:`t_k=\pi k/25`, gives alpha and sigma by least squares; (ii)
    :math:`\arg\hat\phi(u_l)=\mu u_l+\beta\sigma^\alpha\tan\frac{\pi\alpha}2\,
    \mathrm{sgn}(u_l)|u_l|^\alpha` (S1), :math:`u_l=\pi l/50`, gives beta and mu. The two steps
    are iterated (the paper's scheme), starting from the quantile estimate. K and L follow the
    paper's recommendations (roughly: more points for smaller alpha and larger n).
    Returns (alpha, beta, scale, loc0)."""
    n = x.shape[0]
    a, b, s, m0 = start if start is not None else _quantile_fit(x)
    a = min(max(a, 0.3), 2.0)
    # work in S1 with the current standardisation
    for _ in range(iters):
        m1 = m0 - (b * s * math.tan(PI * a / 2) if a != 1 else 2 / PI * b * s * math.log(s))
        z = (x - m1) / s
        K = int(np.clip(np.round(10 + 30 * (2 - a) ** 2 * (1 + math.log10(max(n, 200) / 200) / 3)), 10, 80))
        tk = PI * np.arange(1, K + 1) / 25
        tz = np.outer(tk, z)
        phi = np.exp(1j * tz).mean(1)
        mod2 = np.clip(np.abs(phi) ** 2, 1e-300, 1 - 1e-15)
        y = np.log(-np.log(mod2))
        w = np.log(tk)
        A = np.vstack([np.ones_like(w), w]).T
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        a_new = float(np.clip(coef[1], 0.1, 2.0))
        s_new = float((np.exp(coef[0]) / 2) ** (1 / a_new))
        # step 2 on data standardised with the new scale
        z2 = z / s_new
        L = int(np.clip(np.round(10 + 20 * (2 - a_new)), 10, 50))
        ul = PI * np.arange(1, L + 1) / 50
        phi2 = np.exp(1j * np.outer(ul, z2)).mean(1)
        g = np.unwrap(np.arctan2(phi2.imag, phi2.real))
        if abs(a_new - 1) > 1e-6:
            reg = np.tan(PI * a_new / 2) * ul ** a_new
        else:
            reg = 2 / PI * ul * np.log(ul)
        A2 = np.vstack([ul, reg]).T
        (mu_z, bz), *_ = np.linalg.lstsq(A2, g, rcond=None)
        if abs(a_new - 1) > 1e-6:
            b_new = float(np.clip(bz, -1, 1))
        else:
            b_new = float(np.clip(-bz, -1, 1))
        s_tot = s * s_new
        mu1 = m1 + s * s_new * mu_z          # S1 location of the standardised fit, rescaled
        if abs(a_new - 1) > 1e-6:
            # S1 location after rescaling by s_tot is unchanged for alpha != 1
            m0_new = mu1 + b_new * s_tot * math.tan(PI * a_new / 2)
        else:
            m0_new = mu1 + 2 / PI * b_new * s_tot * math.log(s_tot)
        done = abs(a_new - a) < 1e-6 and abs(b_new - b) < 1e-6 and abs(s_tot / s - 1) < 1e-8
        a, b, s, m0 = a_new, b_new, s_tot, m0_new
        if done:
            break
    return a, b, s, m0


# =============================================================================================
# maximum likelihood on an interpolated log-density table
# =============================================================================================
_ML_ALPHA, _ML_BETA, _ML_S = _mlt.ALPHA, _mlt.BETA, _mlt.S


def _ml_table():
    """log f0(sinh(s); alpha, beta) of the standard S0 law on the grid alpha = 0.4, 0.45, ...,
    2, beta = -1, -0.9, ..., 1, s = asinh(z) = -27, -26.875, ..., 27, floored at -1e4: the
    table of the fast maximum-likelihood fit (PyLevy tabulates too; this one comes from our
    quadrature and is interpolated tricubically). Shipped as package data and loaded once per
    process (:mod:`gnilab.stable._ml_table`, which also regenerates it)."""
    return _mlt.load()


def _cubic_w(t):
    """Catmull-Rom (cubic Lagrange-like, C1) weights for offsets -1, 0, 1, 2."""
    t2, t3 = t * t, t * t * t
    return torch.stack([(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2,
                        (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2], -1)


class _TableLogPdf:
    """Tricubic (Catmull-Rom) interpolation of the S0 log-density table; differentiable in
    alpha, beta (scalars) and z (vector) by autograd. Points beyond the tabulated |z| use
    the Pareto tail (Zolotarev's leading term) glued at the table edge."""

    def __init__(self, dtype=torch.float64, device="cpu"):
        self.T = torch.tensor(_ml_table(), dtype=dtype, device=device)
        self.a0, self.da = float(_ML_ALPHA[0]), float(_ML_ALPHA[1] - _ML_ALPHA[0])
        self.b0, self.db = float(_ML_BETA[0]), float(_ML_BETA[1] - _ML_BETA[0])
        self.s0, self.ds = float(_ML_S[0]), float(_ML_S[1] - _ML_S[0])

    def _idx(self, v, v0, dv, n):
        f = (v - v0) / dv
        i = torch.clamp(torch.floor(f.detach()), 1, n - 3)
        return i.long(), f - i

    def __call__(self, z, alpha, beta):
        T = self.T
        na, nb, ns = T.shape
        ia, ta = self._idx(alpha, self.a0, self.da, na)
        ib, tb = self._idx(beta, self.b0, self.db, nb)
        wa, wb = _cubic_w(ta), _cubic_w(tb)
        sub = T[ia - 1:ia + 3, ib - 1:ib + 3, :]                  # [4, 4, ns]
        curve = torch.einsum("i,j,ijk->k", wa, wb, sub)          # log f0 on the s-grid
        s = torch.asinh(z)
        sc = s.clamp(self.s0, -self.s0)
        i_s, ts = self._idx(sc, self.s0, self.ds, ns)
        ws = _cubic_w(ts)
        idx = (i_s[:, None] + torch.arange(-1, 3, device=z.device)[None, :])
        val = (curve[idx] * ws).sum(-1)
        # Limiter: Catmull-Rom weights are partly negative, so next to the -1e4 floor of the
        # table (far tails of alpha near 2) the interpolant can overshoot to large *positive*
        # log-densities, which the likelihood maximisation then seeks out. Keep every value
        # within the range of the 4x4x4 table nodes it is interpolated from.
        node_max, node_min = sub.amax((0, 1)), sub.amin((0, 1))
        val = torch.minimum(val, node_max[idx].amax(-1))
        val = torch.maximum(val, node_min[idx].amin(-1))
        # beyond the table: log f ~ edge value - (alpha + 1)(|s| - |s_edge|). |s| is written
        # s * sign(s): the double backward of torch.abs imports torch._dynamo (~2 s, once)
        over = (s * torch.sign(s.detach()) - (-self.s0)).clamp(min=0)
        return val - (alpha + 1) * over


def _unpack(theta):
    a = 0.4 + 1.6 * torch.sigmoid(theta[0])
    b = torch.tanh(theta[1])
    s = torch.exp(theta[2])
    return a, b, s, theta[3]


def _pack(a, b, s, m0):
    a = min(max(a, 0.41), 1.999)
    b = min(max(b, -0.995), 0.995)
    pa = (a - 0.4) / 1.6
    return torch.tensor([math.log(pa / (1 - pa)), math.atanh(b), math.log(s), m0],
                        dtype=torch.float64)


def _autograd_hessian(f, th):
    """(f(th), gradient, Hessian) by autograd: one backward pass for the gradient, one batched
    (vmapped) pass over the k unit vectors for the Hessian's rows."""
    th = th.detach().clone().requires_grad_(True)
    val = f(th)
    g = torch.autograd.grad(val, th, create_graph=True)[0]
    eye = torch.eye(th.shape[0], dtype=g.dtype, device=g.device)
    H = torch.autograd.grad(g, th, eye, is_grads_batched=True)[0]
    return val.detach(), g.detach(), H.detach()


def _autograd_derivatives(nll):
    """``derivs(theta)`` -> (gradient, Hessian) of ``nll`` by :func:`_autograd_hessian`."""
    def derivs(theta):
        return _autograd_hessian(nll, theta)[1:]
    return derivs


def _newton_minimise(nll, theta, max_iter: int, max_step=None, ftol: float = 1e-10,
                     xtol: float = 1e-7, derivs=None, bounds=None):
    """Minimise ``nll(theta)`` by Newton's method with the exact Hessian (``derivs(theta)``
    -> (gradient, Hessian); autograd of ``nll`` by default), its eigenvalues taken in absolute
    value and floored at 1e-6 of the largest, so every step descends, steps no longer than
    ``max_step`` (max-norm), and an Armijo backtracking line search. ``bounds`` = (lower,
    upper) tensors keep theta in a box by projection: a coordinate at its bound whose
    gradient pushes outwards is held there (the step is taken in the other coordinates).
    Stops when a step gains less than ``ftol`` relative and moves less than ``xtol``, or when
    the line search fails. Returns (theta, nll(theta))."""
    derivs = derivs or _autograd_derivatives(nll)
    if bounds is not None:
        lower, upper = bounds
        theta = torch.minimum(torch.maximum(theta, lower), upper)
    f0 = float(nll(theta))
    for _ in range(max_iter):
        g, H = derivs(theta)
        free = torch.ones_like(g, dtype=torch.bool)
        if bounds is not None:
            free = ~(((theta >= upper) & (g < 0)) | ((theta <= lower) & (g > 0)))
        gf, Hf = g[free], H[free][:, free]
        step = torch.zeros_like(g)
        try:
            evals, evecs = torch.linalg.eigh(0.5 * (Hf + Hf.T))
            evals = evals.abs().clamp(min=1e-6 * float(evals.abs().max()) + 1e-12)
            step[free] = -(evecs @ ((evecs.T @ gf) / evals))
        except RuntimeError:
            step[free] = -gf
        if max_step is not None:
            step = step * min(1.0, max_step / float(step.abs().max()))
        t, improved = 1.0, False
        for _ls in range(30):
            cand = theta + t * step
            if bounds is not None:
                cand = torch.minimum(torch.maximum(cand, lower), upper)
            fc = float(nll(cand)) if bool(torch.isfinite(cand).all()) else math.inf
            if math.isfinite(fc) and fc <= f0 + 1e-4 * float(g @ (cand - theta)):
                improved = True
                break
            t *= 0.5
        if not improved:
            break
        moved = float((cand - theta).abs().max())
        theta, done = cand, abs(f0 - fc) < ftol * max(1.0, abs(fc)) and moved < xtol
        f0 = fc
        if done:
            break
    return theta, f0


_POLISH_BETA = 0.999       # |beta| bound of the polish (see _mle_polish)
_TABLE_BETA = 0.9999       # |beta| bound of the table fit: just beyond the polish's, so that a
#                            totally skewed sample stops there instead of creeping to 1
_POLISH_ALPHA = (0.1, 2.0)


_START_BETA = 0.9          # |beta| of the second start tried when the quantile start is skewed


def _mle_start(nll, start):
    """The packed start of :func:`_mle_fit`: the quantile estimate, or the same with
    ``|beta|`` shrunk to ``_START_BETA`` when that has the lower negative log-likelihood. A quantile
    start at ``|beta|`` = 1 can put sample points in the near-empty short tail, where the
    log-density is floored, and Newton's method then stays in a far worse optimum."""
    a, b, s, m0 = start
    first = _pack(a, b, s, m0)
    if abs(b) <= _START_BETA:
        return first
    second = _pack(a, math.copysign(_START_BETA, b), s, m0)
    with torch.no_grad():
        f1, f2 = (float(nll(t)) for t in (first, second))
    return second if not math.isfinite(f1) or (math.isfinite(f2) and f2 < f1) else first


def _mle_fit(x: np.ndarray, start, max_iter=50):
    """Four-parameter MLE (S0 internally) by Newton's method with exact autograd Hessians of
    the interpolated log-likelihood, on the unconstrained (logit alpha, atanh beta, log sigma,
    mu0), with a backtracking line search and a gradient-step fallback. Returns the estimate,
    the standard errors from the observed information and the log-likelihood."""
    xt = torch.tensor(x, dtype=torch.float64)
    tab = _TableLogPdf()

    def nll(theta):
        a, b, s, m0 = _unpack(theta)
        z = (xt - m0) / s
        return -(tab(z, a, b).sum() - xt.shape[0] * torch.log(s))

    inf = math.inf
    bound = math.atanh(_TABLE_BETA)
    box = (torch.tensor([-inf, -bound, -inf, -inf], dtype=torch.float64),
           torch.tensor([inf, bound, inf, inf], dtype=torch.float64))
    theta, _ = _newton_minimise(nll, _mle_start(nll, start), max_iter, bounds=box)
    # standard errors: observed information in the natural parameters (alpha, beta, sigma, mu0)
    a, b, s, m0 = (float(v) for v in _unpack(theta))
    nat = torch.tensor([a, b, s, m0], dtype=torch.float64)

    def nll_nat(p):
        z = (xt - p[3]) / p[2]
        return -(tab(z, p[0], p[1]).sum() - xt.shape[0] * torch.log(p[2]))
    val, _, H = _autograd_hessian(nll_nat, nat)
    # beta at its bound (a totally skewed sample): no standard error for beta, and those of the
    # others with beta held fixed (the information of the free parameters alone)
    free = [0, 2, 3] if abs(float(theta[1])) >= bound else [0, 1, 2, 3]
    se = [math.nan] * 4
    try:
        var = torch.diagonal(torch.linalg.inv(H[free][:, free]))
        for i, v in zip(free, var.tolist()):
            se[i] = math.sqrt(v) if v > 0 else math.nan     # not a maximum: no standard error
    except RuntimeError:
        pass
    return (a, b, s, m0), se, -float(val)


def _profile_density(xt: torch.Tensor, a: float, b: float, s: float, m0: float):
    """The log-density the profile likelihood of (alpha, beta) uses: an interpolant of
    S0(alpha, beta) over the data's range of tau = asinh((x - mu0)/sigma) plus one unit each
    side (tolerance 1e-7, 32-node quadrature; made unbuilt, for :func:`_si.build_many`), or
    None where a closed form is as fast (alpha = 2, the Cauchy law)."""
    if not _si.fast_path_applies(a, b):
        return None
    tau = torch.asinh((xt - m0) / s)
    lim = _si._TAU_MAX
    rng = (max(float(tau.min()) - 1.0, -lim), min(float(tau.max()) + 1.0, lim))
    return _si.LogPdfInterpolant(a, b, tau_range=rng, tol=1e-7, nodes=32, keep_narrow=True,
                                 build=False)


def _profile_nll(xt: torch.Tensor, a: float, b: float, s: float, m0: float, dens=None,
                 iters: int = 20):
    r"""Exact negative log-likelihood of S0(alpha, beta, sigma, mu0) minimised over
    (sigma, mu0) for fixed (alpha, beta): Newton in (u, mu0) = (log sigma, mu0) on

    .. math::

        \mathrm{nll}(u,\mu_0) = n u - \sum_i \ell(z_i),\qquad z_i = (x_i-\mu_0)e^{-u},

    with the exact derivatives :math:`\partial_u = n + \sum\ell' z`,
    :math:`\partial_{\mu} = \sum\ell'/\sigma`, :math:`\partial_{uu} = -\sum(\ell'' z^2 +
    \ell' z)`, :math:`\partial_{u\mu} = -\sum(\ell'' z + \ell')/\sigma`,
    :math:`\partial_{\mu\mu} = -\sum\ell''/\sigma^2` from the interpolant's
    :meth:`~gnilab.stable._interp.LogPdfInterpolant.derivatives` (``dens``, built by the
    caller, see :func:`_profile_density`; autograd for the closed forms). Returns
    (nll, sigma, mu0)."""
    n = xt.shape[0]
    if dens is None:
        dens = _profile_density(xt, a, b, s, m0)
        if dens is not None:
            _si.build_many([dens])
    if dens is not None:

        def logf(z):
            return dens(z, 0)

        def derivs(th):
            sig = math.exp(float(th[0]))
            z = (xt - th[1]) / sig
            _, d1, d2 = dens.derivatives(z, 0)
            d1z = d1 * z
            g = torch.stack([n + d1z.sum(), d1.sum() / sig])
            huu = -(d2 * z * z + d1z).sum()
            hum = -(d2 * z + d1).sum() / sig
            H = torch.stack([torch.stack([huu, hum]), torch.stack([hum, -d2.sum() / sig ** 2])])
            return g, H
    else:                                   # alpha = 2 or the Cauchy law: closed forms
        derivs = None

        def logf(z):
            return _sd.std_logpdf(z, torch.full_like(z, a), torch.full_like(z, b), 0)

    def nll(th):
        return n * th[0] - logf((xt - th[1]) / torch.exp(th[0])).sum()

    th = torch.tensor([math.log(s), m0], dtype=torch.float64)
    th, f0 = _newton_minimise(nll, th, iters, max_step=1.0, ftol=1e-9, xtol=math.inf,
                              derivs=derivs)
    return f0, float(torch.exp(th[0])), float(th[1])     # max_step: at most e-fold in sigma


def _quadratic_step(pts, vals, h):
    """Minimiser of the quadratic (in 1 or 2 variables) fitted by least squares to the
    values ``vals`` at offsets ``pts`` [k, d], kept within two spacings ``h``; None where the
    fit is not convex or the points are too few."""
    P = np.asarray(pts, dtype=float)
    d = P.shape[1]
    if d == 1:
        A = np.column_stack([np.ones(len(P)), P[:, 0], P[:, 0] ** 2])
    else:
        A = np.column_stack([np.ones(len(P)), P[:, 0], P[:, 1], P[:, 0] ** 2,
                             P[:, 0] * P[:, 1], P[:, 1] ** 2])
    if len(P) < A.shape[1]:
        return None
    c = np.linalg.lstsq(A, np.asarray(vals), rcond=None)[0]
    Hq = np.array([[2 * c[2]]]) if d == 1 else np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
    if not np.all(np.linalg.eigvalsh(Hq) > 0):
        return None
    step = -np.linalg.solve(Hq, c[1:1 + d])
    return np.clip(step, -2 * np.asarray(h), 2 * np.asarray(h))


def _mle_polish(x: np.ndarray, est, rounds: int = 2, h=(0.03, 0.06)):
    """Maximise the exact likelihood near the tabulated estimate ``est`` (S0).

    The table (:func:`_ml_table`) misplaces the optimum where the log-density changes fast
    between its nodes (light tails of ``|beta|`` -> 1 near alpha = 1, alpha near 2). Here the
    profile likelihood over (alpha, beta) (see :func:`_profile_nll`) is evaluated on a 3 x 3
    grid of spacing ``h`` around the current point, a quadratic is fitted to the nine values
    and its minimum (kept within two spacings) becomes the next point; the spacing shrinks
    threefold per round. About 19 profile evaluations, each an interpolant (over the data's
    range) plus a few Newton steps in (sigma, mu0). The interpolants of a grid (and of the
    start) are built together (:func:`gnilab.stable._interp.build_many`: one quadrature call
    per refinement round, not one per law): 4 build calls in all.

    When beta starts at its bound (+-0.999: a totally skewed sample) the grid is the line
    beta = bound, 3 points a round (7 evaluations in all), and one evaluation a spacing
    inside the bound confirms that the optimum is at the bound (otherwise the 3 x 3 grid
    runs from there). Returns (estimate, log-likelihood).
    """
    xt = torch.tensor(x, dtype=torch.float64)
    lo_a, hi_a = _POLISH_ALPHA

    def clip(a, b):
        return min(max(a, lo_a), hi_a), min(max(b, -_POLISH_BETA), _POLISH_BETA)

    memo, built = {}, {}

    def prepare(laws, s, m0):
        """Build the interpolants of the laws not yet evaluated together (their tau ranges
        from the data standardised by (s, m0))."""
        new = [ab for ab in dict.fromkeys(laws) if ab not in memo and ab not in built]
        dens = [_profile_density(xt, a, b, s, m0) for a, b in new]
        _si.build_many([d for d in dens if d is not None])
        built.update(zip(new, dens))

    def profile(a, b, s, m0):          # grid points clipped to a bound repeat: evaluate once
        if (a, b) not in memo:
            if (a, b) not in built:
                prepare([(a, b)], s, m0)
            memo[a, b] = _profile_nll(xt, a, b, s, m0, dens=built.pop((a, b)))
        return memo[a, b]

    def offsets(on_bound):
        return [(-1, 0), (0, 0), (1, 0)] if on_bound else \
            [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]

    def grid(a, b, ha, hb, on_bound):
        return [clip(a + i * ha, b + j * hb) for i, j in offsets(on_bound) if (i, j) != (0, 0)]

    def search(a, b, s, m0, f, on_bound):
        ha, hb = h
        for _ in range(rounds):
            pts, vals, fits = [], [], []
            prepare(grid(a, b, ha, hb, on_bound), s, m0)
            for i, j in offsets(on_bound):
                ai, bj = clip(a + i * ha, b + j * hb)
                fi, si, mi = (f, s, m0) if (i, j) == (0, 0) else profile(ai, bj, s, m0)
                if math.isfinite(fi):
                    pts.append((ai - a,) if on_bound else (ai - a, bj - b))
                    vals.append(fi)
                    fits.append((fi, ai, bj, si, mi))
            cand = min(fits)
            step = _quadratic_step(pts, vals, (ha,) if on_bound else (ha, hb))
            if step is not None:
                an, bn = clip(a + step[0], b if on_bound else b + step[1])
                fn, sn, mn = profile(an, bn, cand[3], cand[4])
                if math.isfinite(fn) and fn < cand[0]:
                    cand = (fn, an, bn, sn, mn)
            f, a, b, s, m0 = cand
            ha, hb = ha / 3, hb / 3
        return f, a, b, s, m0

    a, b = clip(est[0], est[1])
    on_bound = abs(b) == _POLISH_BETA
    prepare([(a, b)] + grid(a, b, *h, on_bound), est[2], est[3])   # start and first grid
    f, s, m0 = profile(a, b, est[2], est[3])
    if on_bound:
        f, a, b, s, m0 = search(a, b, s, m0, f, True)
        inside = clip(a, b - math.copysign(h[1] / 9, b))
        fi = profile(inside[0], inside[1], s, m0)[0]
        if not (math.isfinite(fi) and fi < f):
            return (a, b, s, m0), -f
    f, a, b, s, m0 = search(a, b, s, m0, f, False)
    return (a, b, s, m0), -f


# =============================================================================================
# public fit
# =============================================================================================
@dataclass(frozen=True)
class StableFit:
    """Result of :func:`fit`.

    The estimate of a stable law's four parameters by McCulloch's (1986) quantile method,
    Koutrouvelis' (1980) regression on the empirical characteristic function or maximum
    likelihood on Nolan's (1997) density.

    Attributes
    ----------
    alpha, beta, scale, loc : float
        estimates, ``loc`` in the parameterisation ``param``.
    stderr : tuple of 4 floats or None
        standard errors of (alpha, beta, scale, loc) from the inverse observed information
        (MLE only; ``loc``'s is for the S0 location, which is what the likelihood is smooth in).
        When the fit puts ``|beta|`` at its bound (a totally skewed sample) beta's entry is NaN
        and the others are those with beta held there; an entry is NaN, never 0, where the
        information is not positive.
    method : str
        the method used: ``"mle"``, ``"quantile"`` or ``"ecf"``.
    param : str
        parameterisation of ``loc``: ``"S1"`` or ``"S0"``.
    loglik : float or None
        maximised log-likelihood (MLE only).
    """
    alpha: float
    beta: float
    scale: float
    loc: float
    stderr: Optional[Tuple[float, float, float, float]]
    method: str
    param: str
    loglik: Optional[float] = None


def _as_sample(x, name="x") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError(f"{name} must be a non-empty sample, got an empty array")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must contain only finite values (found NaN or inf)")
    return x


def fit(x, method: str = "mle", param: str = "S1") -> StableFit:
    """Estimate (alpha, beta, scale, loc) from a 1-D sample.

    Parameters
    ----------
    x : array-like or Tensor, shape [n]
        the sample (flattened; finite values, at least 5 of them).
    method : {"mle", "quantile", "ecf"}
        ``"quantile"``: McCulloch (1986), see :func:`_quantile_fit` (alpha restricted to
        [0.5, 2] by the table); ``"ecf"``: Koutrouvelis (1980), started from the quantile
        estimate; ``"mle"``: full four-parameter maximum likelihood started from the quantile
        estimate, in two stages. (1) Newton with autograd Hessians on an unconstrained
        reparameterisation (alpha in [0.4, 2), ``|beta|`` <= 0.9999), the log-density a tricubic
        interpolation of a table shipped with the package (:func:`_ml_table`; no quadrature).
        (2) A polish on the exact likelihood (:func:`_mle_polish`; ``|beta| <= 0.999`` there):
        profile likelihoods over (alpha, beta) whose log-densities are Chebyshev interpolants
        over the data's range (:mod:`gnilab.stable._interp`, 1e-7 of log f), the eight of a
        grid built together. The quadrature runs only to make those interpolants' node
        values and for the rare points a profile step moves beyond that range; alpha = 2 and
        the Cauchy law use closed forms. ``loglik`` is the exact log-likelihood at the
        estimate; the standard errors come from the table's observed information. About
        0.2-0.3 s at n = 1e3, 0.3-0.5 s at n = 1e4 and 0.5-1 s for totally skewed samples on
        2 CPU cores (``benchmarks/bench_stable.py``).
    param : {"S1", "S0"}
        parameterisation of the returned ``loc``.

    Returns
    -------
    StableFit
        the estimates (alpha, beta, scale, loc), with standard errors and the log-likelihood
        for ``method="mle"``.
    """
    k = _check_param(param)
    check_choice("method", method, ("mle", "quantile", "ecf"))
    x = _as_sample(x)
    if x.shape[0] < 5:
        raise ValueError(f"x must have at least 5 values for a stable fit, got {x.shape[0]}")
    q = _quantile_fit(x)
    stderr, ll = None, None
    if method == "quantile":
        a, b, s, m0 = q
    elif method == "ecf":
        a, b, s, m0 = _ecf_fit(x, start=q)
    else:
        (a, b, s, m0), se, _ = _mle_fit(x, q)
        (a, b, s, m0), ll = _mle_polish(x, (a, b, s, m0))
        stderr = tuple(float(v) for v in se)
    loc = m0 if k == 0 else m0 - (b * s * math.tan(PI * a / 2) if a != 1 else 2 / PI * b * s * math.log(s))
    return StableFit(float(a), float(b), float(s), float(loc), stderr, method, param, ll)
