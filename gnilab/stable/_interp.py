r"""Fast log-density of one stable law: piecewise Chebyshev interpolation, built once per
(alpha, beta) from the quadrature of :mod:`gnilab.stable._density`, which stays the reference.

Why
---
The common use of a stable density is many points under one law: a plot, a log-likelihood,
the fits of Chapters 1 and 5. The quadrature costs ~10-20 µs a point; this interpolant costs
~0.1-0.2 µs a point once built (benchmarks/bench_stable.py), and a build costs ~1000-2500
quadrature points: 0.06-0.1 s for two-sided laws, ~1 s for totally skewed ones, whose light
tails are slow to integrate.

The coordinate
--------------
Every law gets one monotone map :math:`\tau(z)` in which its log-density is smooth and of
bounded variation per unit:

* generally :math:`y=z_0` (the S0-standardised value, whose mode is near 0 for every
  (alpha, beta)) and :math:`\tau=\operatorname{asinh} y`: linear near the mode, logarithmic in
  the tails, where :math:`\log f\approx-(\alpha+1)|\tau|+\text{const}+O(e^{-\alpha|\tau|})`
  (Zolotarev's series) and, on the light side of :math:`|\beta|=1`, :math:`\alpha>1`,
  :math:`\log f\approx-c\,e^{\alpha|\tau|/(\alpha-1)}`;
* for :math:`\alpha<1`, :math:`|\beta|=1` (support a half-line) :math:`y=x_1` (the
  S1-standardised value, whose support edge is 0) and :math:`\tau=\log(\beta y)`: the
  density vanishes at the edge like :math:`\exp(-c\,(\beta y)^{-\alpha/(1-\alpha)})`, which
  is :math:`-c\,e^{-\alpha\tau/(1-\alpha)}` in :math:`\tau`, smooth all the way down.

The interpolant
---------------
:math:`\tau\in[-709, 709]` (every finite double; down to -745 next to a support edge) is cut
into panels; on each panel the log-density is interpolated at the 13 Chebyshev–Lobatto points
(degree 12). A panel is accepted when its two trailing Chebyshev coefficients are below
:math:`10^{-12}\max(1,\max|\log f|)` and, checked afterwards, the interpolant matches the
quadrature at an off-node point to ten times that; otherwise it is halved (down to a width of
1/64, below which the panel is left to the quadrature). Deep in a light tail, where
:math:`\log f\approx-c\,e^{\kappa|\tau|}`, a panel interpolates :math:`w=\log(-\log f)`
instead (nearly linear there), which keeps the relative accuracy of log f down to the end of
the double range; panels wholly beyond it are -inf. In the far tails the node values come
from the asymptotic series (the quadrature module switches to them), so the tails of the
interpolant are those series.

Accuracy: the node values are the quadrature's (<= 1e-10 on Nolan's table, ~1e-13 at
most points); the interpolation adds at most ~1e-11 (checked in ``tests/test_stable.py``
against the quadrature on every panel of a sweep of laws, against Nolan's table and against
40-digit mpmath values).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import torch

from . import _density as _sd

PI = math.pi
_DEG = 12                 # polynomial degree per panel (13 Chebyshev-Lobatto nodes)
_TOL = 1e-12              # trailing-coefficient tolerance, relative to max(1, |log f|)
_DEEP = -30.0             # panels with log f below this interpolate log(-log f)
_TAU_MAX = 709.0          # asinh(y) <= 709 covers |y| < 4e307
_TAU_EDGE = 745.0         # edge laws: log(beta y) >= -745 covers every positive double
_DIRECT, _LOGLOG, _NEG_INF, _QUAD = 0, 1, 2, 3      # panel kinds
_MIN_WIDTH = 1 / 64       # panels this narrow that still fail are left to the quadrature
_CHECK_AT = 0.4371        # off-node check position in the panel's [-1, 1] coordinate
_LOCAL_BODY = 3.0         # local builds start with panels of 1/2 for |tau| <= this, else 1


@lru_cache(maxsize=None)
def _cheb_matrices(n: int = _DEG):
    """Lobatto nodes s_j = cos(pi j/n) and the matrix M taking node values to monomial
    coefficients in s (via Chebyshev coefficients: c = C v, a = c B)."""
    j = np.arange(n + 1)
    s = np.cos(PI * j / n)
    C = 2.0 / n * np.cos(PI * np.outer(j, j) / n)
    C[:, [0, n]] *= 0.5
    C[[0, n], :] *= 0.5
    B = np.zeros((n + 1, n + 1))
    for k in range(n + 1):
        mono = np.polynomial.chebyshev.cheb2poly(np.eye(n + 1)[k])
        B[k, :len(mono)] = mono
    return s, C, B


class LogPdfInterpolant:
    """log f of the standard law S(alpha, beta) (scale 1, loc 0) by piecewise Chebyshev
    interpolation in the coordinate tau described in the module docstring.

    ``tau_range=(lo, hi)`` builds only that stretch of tau (the fits use this for the range
    of their data; points outside it get the quadrature); ``tol`` is the trailing-coefficient
    tolerance (the off-node check uses ``10 tol``) and ``nodes`` the quadrature's
    Gauss-Legendre nodes per side (the fits use 1e-7 and 32: a 32-node quadrature is good to
    ~1e-6 of log f at worst, and fewer nodes made more panels fail on that noise) and ``keep_narrow`` keeps the interpolant of panels
    that reach the minimum width without passing (the fits: there the quadrature's own noise
    is what fails the test) instead of leaving them to the quadrature.

    Build with :func:`interpolant` (cached per (alpha, beta)); call with flat float64 tensors of
    standardised values z and the parameterisation ``param`` (0 = S0, 1 = S1). Differentiable
    in z (autograd), or use :meth:`derivatives`. Attributes ``edges`` (panel boundaries in
    tau), ``n_panels`` and ``n_evals`` (quadrature points used by the build) describe the
    result. ``build=False`` leaves the build to :func:`build_many`, which builds several laws
    with one quadrature call per refinement round (what the fits' profile likelihood uses).
    """

    def __init__(self, alpha: float, beta: float, tau_range=None, tol: float = _TOL,
                 nodes: int = _sd._N_NODES, keep_narrow: bool = False, build: bool = True):
        if not (0 < alpha < 2 and -1 <= beta <= 1):
            raise ValueError(f"interpolant needs alpha in (0, 2) and beta in [-1, 1], got "
                             f"alpha={alpha!r}, beta={beta!r}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.edge_law = alpha < 1 and abs(beta) == 1
        # standardised values: z0 = x1 - shift (mu0 = mu1 + beta sigma tan(pi alpha / 2))
        self.shift = 0.0 if alpha == 1 else beta * math.tan(PI * alpha / 2)
        self.n_evals = 0
        self.tol, self.check_tol, self.nodes = float(tol), 10 * float(tol), int(nodes)
        self.tau_range = None if tau_range is None else (float(tau_range[0]), float(tau_range[1]))
        self.keep_narrow = bool(keep_narrow)
        self._on = {}
        if build:
            build_many([self])

    # ---- coordinates -------------------------------------------------------------------
    def _y(self, z, param):
        """The internal coordinate y (x1 for edge laws, z0 otherwise) of standardised z."""
        if self.edge_law:
            return z if param == 1 else z + self.shift
        return z if param == 0 else z - self.shift

    def _tau(self, y):
        return torch.log(self.beta * y) if self.edge_law else torch.asinh(y)

    # ---- build -------------------------------------------------------------------------
    def _fit_panel(self, v, C, B, last=False):
        """(kind, monomial coefficients) for node values v, or None to halve the panel.
        ``last``: the panel is at the minimum width and ``keep_narrow`` is set: keep the
        interpolant through the node values even if its tail coefficients are not small."""
        if np.all(v == -math.inf):
            return _NEG_INF, None
        if not np.all(np.isfinite(v)):
            return None
        c = C @ v
        if max(abs(c[-1]), abs(c[-2])) <= self.tol * max(1.0, float(np.abs(v).max())) or last:
            return _DIRECT, c @ B
        if v.max() < _DEEP:                 # deep light tail: log f = -exp(w)
            c = C @ np.log(-v)
            if max(abs(c[-1]), abs(c[-2])) <= self.tol:
                return _LOGLOG, c @ B
        return None

    def _start_panels(self):
        """The initial partition of tau: a fixed one, or (a local build) the requested range
        in panels of width 1, 1/2 in the body."""
        if self.tau_range is not None:          # unit panels, halves in the body |tau| <= 3
            lo_r, hi_r = self.tau_range             # (where unit panels often fail): most laws
            cuts = np.union1d(np.arange(math.floor(lo_r), math.ceil(hi_r) + 1.0),   # pass in
                              np.arange(-_LOCAL_BODY, _LOCAL_BODY + 0.25, 0.5))    # one round
            start = [lo_r] + [c for c in cuts if lo_r < c < hi_r] + [hi_r]
        elif self.edge_law:
            start = [-16.0, -8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0,
                     128.0, 256.0, 512.0, _TAU_MAX]
        else:
            pos = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0, 128.0,
                   256.0, 512.0, _TAU_MAX]
            start = [-p for p in pos[:0:-1]] + pos
        return list(zip(start[:-1], start[1:]))

    def _extend_edge(self, done, nxt):
        """Edge laws (full builds): one more panel towards the support edge while log f is
        still in the double range there."""
        left = min(list(done) + nxt)
        if self.edge_law and self.tau_range is None and left in done \
                and done[left][0] != _NEG_INF and left[0] > -_TAU_EDGE:
            nxt.append((max(left[0] - 2 * (left[1] - left[0]), -_TAU_EDGE), left[0]))

    def _finish(self, done):
        keys = sorted(done)
        self.edges = torch.tensor([keys[0][0]] + [k[1] for k in keys], dtype=torch.float64)
        self.kind = torch.tensor([done[k][0] for k in keys])
        self.coef = torch.from_numpy(np.stack([
            done[k][1] if done[k][1] is not None else np.zeros(_DEG + 1) for k in keys]))
        self.n_panels = len(keys)
        lo_e, hi_e = self.edges[:-1], self.edges[1:]
        self.mid = (lo_e + hi_e) / 2
        self.inv_half = 2 / (hi_e - lo_e)

    def _check_panel(self, key, kind, a, exact):
        """Whether the interpolated panel ``key`` matches the quadrature value ``exact`` at
        its off-node check point (panels at the minimum width always pass)."""
        approx = np.polyval(a[::-1], _CHECK_AT)
        if kind == _LOGLOG:
            approx = -math.exp(approx)
        return abs(approx - exact) <= self.check_tol * max(1.0, abs(exact)) \
            or key[1] - key[0] < _MIN_WIDTH

    # ---- evaluation --------------------------------------------------------------------
    def _tensors(self, device):
        key = str(device)
        if key not in self._on:
            self._on[key] = tuple(t.to(device) for t in
                                  (self.edges, self.kind, self.coef, self.mid, self.inv_half))
        return self._on[key]

    def _locate(self, z, param):
        """Panel data of the points z: (y, inside, tau, panel index, panel kind)."""
        edges, kind, coef, mid, inv_half = self._tensors(z.device)
        y = self._y(z, param)
        if self.edge_law:
            inside = self.beta * y > 0
            tau = torch.log(torch.where(inside, self.beta * y, torch.ones_like(y)))
        else:
            inside = torch.isfinite(y)
            tau = torch.asinh(torch.where(inside, y, torch.zeros_like(y)))
        P = kind.shape[0]
        idx = torch.searchsorted(edges, tau.detach(), right=True) - 1
        in_range = (idx >= 0) & (idx < P)
        idx = idx.clamp(0, P - 1)
        k = torch.where(in_range, kind[idx], torch.full_like(idx, _QUAD))
        return y, inside, tau, idx, k

    def _quadrature(self, y):
        """The reference quadrature (default node count) at internal coordinates y."""
        return _sd.std_logpdf(y, torch.full_like(y, self.alpha), torch.full_like(y, self.beta),
                              1 if self.edge_law else 0)

    def __call__(self, z, param):
        """log f at standardised values z (flat float64 tensor) in parameterisation param."""
        _, _, coef, mid, inv_half = self._tensors(z.device)
        y, inside, tau, idx, k = self._locate(z, param)
        s = (tau - mid[idx]) * inv_half[idx]
        A = coef[idx]
        out = A[:, _DEG]
        for j in range(_DEG - 1, -1, -1):
            out = torch.addcmul(A[:, j], out, s)
        out = torch.where(k == _LOGLOG, -torch.exp(out), out)
        # outside the support (edge laws), at +-inf and beyond the double range: density 0
        out = torch.where(inside & (k != _NEG_INF), out, torch.full_like(out, -math.inf))
        rest = inside & (k == _QUAD)
        if bool(rest.any()):
            i = rest.nonzero().squeeze(1)
            out = out.index_put((i,), self._quadrature(y[i]))
        return out

    def derivatives(self, z, param):
        r"""(log f, d log f/dz, d^2 log f/dz^2) at z (flat float64 tensor, no autograd): the
        panel polynomial p(u), u = (tau - mid) * inv_half, differentiated by Horner's scheme
        and chained through tau(z) (tau = asinh y: tau' = (1+y^2)^{-1/2},
        tau'' = -y (1+y^2)^{-3/2}; tau = log(beta y): tau' = 1/y, tau'' = -1/y^2). Points
        left to the quadrature get central differences of it (step 1e-4 (1 + |y|)); points
        with density 0 get (-inf, 0, 0)."""
        z = z.detach()
        _, _, coef, mid, inv_half = self._tensors(z.device)
        y, inside, tau, idx, k = self._locate(z, param)
        u = (tau - mid[idx]) * inv_half[idx]
        A = coef[idx]
        p, dp, ddp = A[:, _DEG], torch.zeros_like(u), torch.zeros_like(u)
        for j in range(_DEG - 1, -1, -1):
            ddp = ddp * u + 2 * dp
            dp = dp * u + p
            p = p * u + A[:, j]
        h = inv_half[idx]
        dp, ddp = dp * h, ddp * h * h                      # d/dtau
        loglog = k == _LOGLOG
        e = -torch.exp(p)
        val = torch.where(loglog, e, p)
        d1 = torch.where(loglog, e * dp, dp)
        d2 = torch.where(loglog, e * (dp * dp + ddp), ddp)
        if self.edge_law:
            t1, t2 = 1 / y, -1 / (y * y)
        else:
            r = torch.rsqrt(1 + y * y)
            t1, t2 = r, -y * r ** 3
        g, H = d1 * t1, d2 * t1 * t1 + d1 * t2
        zero = inside & (k != _NEG_INF)
        val = torch.where(zero, val, torch.full_like(val, -math.inf))
        g = torch.where(zero, g, torch.zeros_like(g))
        H = torch.where(zero, H, torch.zeros_like(H))
        rest = inside & (k == _QUAD)
        if bool(rest.any()):
            i = rest.nonzero().squeeze(1)
            yi = y[i]
            st = 1e-4 * (1 + yi.abs())
            f0, fp, fm = (self._quadrature(v) for v in (yi, yi + st, yi - st))
            val[i], g[i], H[i] = f0, (fp - fm) / (2 * st), (fp - 2 * f0 + fm) / (st * st)
        return val, g, H


_CACHE: "OrderedDict[tuple, LogPdfInterpolant]" = OrderedDict()
_CACHE_SIZE = 64
_BUILD_MIN = 2000     # a build costs ~1000-2500 quadrature points: worth it from this many


def interpolant(alpha: float, beta: float) -> LogPdfInterpolant:
    """The interpolant of S(alpha, beta), built on first use and kept (least recently used
    first out, 64 laws); alpha in (0, 2), beta in [-1, 1]."""
    key = (float(alpha), float(beta))
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        _CACHE[key] = LogPdfInterpolant(*key)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return _CACHE[key]


def fast_path_applies(alpha: float, beta: float) -> bool:
    """Whether :func:`std_logpdf_shared` interpolates (False: a closed form is as fast)."""
    return alpha != 2 and not (alpha == 1 and beta == 0)


def std_logpdf_shared(z, alpha: float, beta: float, param: int):
    """log density of the standard law at z (flat tensor) for one (alpha, beta): the
    interpolant when the law is cached or there are at least ``_BUILD_MIN`` points to pay for
    its build, else the quadrature (and the closed forms, alpha = 2 and the Cauchy law)."""
    zz = z.to(torch.float64)
    key = (float(alpha), float(beta))
    if not fast_path_applies(alpha, beta) or (key not in _CACHE and zz.numel() < _BUILD_MIN):
        a = torch.full_like(zz, alpha)
        b = torch.full_like(zz, beta)
        return _sd.std_logpdf(zz, a, b, param)
    return interpolant(float(alpha), float(beta))(zz, param)


def _exact_many(items, law, taus):
    """Quadrature log f at the tau values ``taus`` [k, m] of the laws ``items[law[k]]``: one
    :func:`gnilab.stable._density.std_logpdf` call per parameterisation (edge laws are
    evaluated in S1, the others in S0) and per node count."""
    out = np.empty(taus.shape)
    groups = {}
    for k, i in enumerate(law):
        it = items[i]
        groups.setdefault((it.edge_law, it.nodes), []).append(k)
    for (edge, nodes), rows in groups.items():
        rows = np.asarray(rows)
        t = torch.from_numpy(np.ascontiguousarray(taus[rows]).reshape(-1))
        m = taus.shape[1]
        a = torch.tensor(np.repeat([items[law[k]].alpha for k in rows], m))
        b = torch.tensor(np.repeat([items[law[k]].beta for k in rows], m))
        y = b * torch.exp(t) if edge else torch.sinh(t)
        out[rows] = _sd.std_logpdf(y, a, b, 1 if edge else 0, nodes).numpy().reshape(-1, m)
        for k in rows:
            items[law[k]].n_evals += m
    return out


def build_many(items):
    """Build the interpolants ``items`` (made with ``build=False``) together. Every round
    evaluates, for all pending panels of all laws in one quadrature call, the panel's 13
    Chebyshev nodes and its off-node check point (a call costs ~10 ms of fixed overhead, so
    this is several times faster than building the laws one by one, each with separate check
    rounds). A panel is kept when its trailing coefficients are small and the check point
    agrees (see the module docstring), else halved; each panel is decided from its own values,
    so the panels are those of separate builds. Returns ``items``."""
    s, C, B = _cheb_matrices()
    at = np.append(s, _CHECK_AT)
    done = [{} for _ in items]
    pending = [(i, key) for i, it in enumerate(items) for key in it._start_panels()]
    while pending:
        law = [i for i, _ in pending]
        lo = np.array([key[0] for _, key in pending])
        hi = np.array([key[1] for _, key in pending])
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        vals = _exact_many(items, law, mid[:, None] + half[:, None] * at[None, :])
        nxt = [[] for _ in items]
        for k, (i, key) in enumerate(pending):
            it = items[i]
            narrow = hi[k] - lo[k] < _MIN_WIDTH
            fit = it._fit_panel(vals[k, :-1], C, B, narrow and it.keep_narrow)
            if fit is not None and (fit[1] is None or it._check_panel(key, *fit, vals[k, -1])):
                done[i][key] = fit
            elif narrow:
                done[i][key] = (_QUAD, None)
            else:
                nxt[i] += [(lo[k], mid[k]), (mid[k], hi[k])]
        for i, it in enumerate(items):
            it._extend_edge(done[i], nxt[i])
        pending = [(i, key) for i in range(len(items)) for key in nxt[i]]
    for it, d in zip(items, done):
        it._finish(d)
    return items
