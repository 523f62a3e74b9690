r"""Asymmetric α-stable gradient dynamics and their corrected drift (Camuto, Wang, Zhu, Holmes,
Gürbüzbalaban & Şimşekli, ICML 2021, "Asymmetric heavy tails and implicit bias in Gaussian
noise injections", §4): the SDE, the Feller skewness conversion, the corrected drift and the
simulation. Public through :mod:`gnilab.gni`; the Gibbs measure is in ``_gibbs.py``.

The model (Eqs. 4.3, 4.4) is the SDE :math:`dw_t = -f'(w_t)dt + \varepsilon\,dL^{\alpha,\theta}_t`
and its Euler scheme

.. math::  w_{k+1} = w_k - \eta f'(w_k) + \varepsilon\,\eta^{1/\alpha}\,\Delta L_{k+1},
           \qquad \Delta L_k \sim \mathcal S_\alpha(1, \theta, 0)\ \text{i.i.d.},

where :math:`\mathcal S_\alpha(\sigma, \theta, \mu)` is the paper's stable law: its θ is the
skewness :math:`\beta` of the **S1** parameterisation of :mod:`gnilab.stable` with scale 1
(:math:`\log E e^{i\kappa X} =
-|\kappa|^\alpha(1 - i\theta\,\mathrm{sgn}\kappa\tan\frac{\pi\alpha}2)`),
*not* the Feller skewness of Eq. 4.7's Riesz–Feller operator (:func:`feller_to_stable`
converts). At α = 2 the noise is :math:`\sqrt2` times a Brownian increment (variance
:math:`2\varepsilon^2\eta` a step), so the Gibbs law of Eq. 4.4 is
:math:`\propto e^{-f/\varepsilon^2}`.

The "asymmetric fractional Langevin" drift (Eqs. 4.6–4.7) makes the Gibbs measure
:math:`\pi \propto e^{-\varepsilon^{-\alpha}f}` invariant (Theorem 4.1); Eq. 4.8 approximates
it by a Grünwald–Letnikov sum, :func:`corrected_drift`. In Fourier variables (with
:math:`\hat\psi(\kappa)=\int e^{i\kappa w}\psi(w)dw`, the convention of the characteristic
function) the stationary Fokker–Planck equation asks :math:`b\varphi = \varepsilon^\alpha
M(\varphi')` with symbol :math:`M(\kappa) = |\kappa|^{\alpha-2}(1 - i\beta\,\mathrm{sgn}\kappa
\tan\frac{\pi\alpha}2)`; the Eq. 4.8 sum with weights :math:`(1+\theta\,\mathrm{sgn}k)\tilde
g_{|k|}` has, as :math:`K\to\infty`, the symbol :math:`c_\gamma h^{-\gamma}[(1+\theta)
(1-e^{i\kappa h})^\gamma + (1-\theta)(1-e^{-i\kappa h})^\gamma - 2 + w_0]` with :math:`w_0` the
weight of the k = 0 term, which tends to :math:`M` with :math:`\beta = \theta` as
:math:`h \to 0`. So **the θ of the drift is the S1 skewness of the noise** (checked by
simulation in ``tests/test_gni_dynamics.py``), and the k = 0 weight matters: Eq. 4.8 as
printed has :math:`w_0 = 1` (:math:`\mathrm{sgn}\,0 = 0`), which leaves an error
:math:`-c_\gamma h^{2-\alpha}` in the symbol — the drift gains :math:`+c_\gamma h^{2-\alpha}f'`,
an anti-restoring term that vanishes only like :math:`h^{2-\alpha}` (at α = 1.9, like
:math:`h^{0.1}`; at α = 2 it would be :math:`f'/2` for every h). :math:`w_0 = 2`, the sum of
two one-sided Grünwald sums, has error O(h), the rate of Theorem 4.2. ``center_weight``
selects it; the default is the paper's 1, for which :func:`h0` gives the paper's identity
:math:`b_{h_0,0} = -f'`.

Measured (quartic :math:`f = w^4/4 - w^2/2`, ε = 1, η = 1e-3, θ = 0.5, 1e4 paths × 1e4
steps from the Gibbs law, 11 snapshots from t = 5; total variation to the Gibbs law on 40
bins, noise floor 0.007): Eq. 4.4 is off by 0.022 (α = 1.9), 0.146 (α = 1.5), 0.61
(α = 1.1). With :math:`b_{h,K}` the distance falls as hK grows until hK ≈ 10 (the
:math:`1/(hK)` term of Eq. 4.9: the sum must reach from one well past the other), then
levels off at an h-dependent value: with :math:`w_0 = 2` at α = 1.9, 1.5 it is at the floor
for h ≤ 0.3 resp. 0.03; with the printed :math:`w_0 = 1` it is 0.045–0.066 at α = 1.9 for
h = 0.3 … 0.01 (worse than Eq. 4.4) and 0.055, 0.034, 0.019, 0.013 at α = 1.5 for
h = 0.3, 0.1, 0.03, 0.01. At α = 1.1 both converge (:math:`h^{0.9}` is nearly first order)
and :math:`w_0 = 1` happens to be the closer one (0.026 against 0.058 at h = 0.1; 0.008
against 0.010 at h = 0.01).

Contents
--------
:func:`feller_to_stable`, :func:`stable_to_feller`
    Feller (Riesz–Feller) skewness ↔ S1 (β, scale).
:func:`grunwald_weights`, :func:`h0`, :func:`corrected_drift` (:class:`CorrectedDrift`)
    Eq. 4.8.
:func:`simulate_gni` (:class:`GNIRun`)
    many paths of Eq. 4.4, or of the same recursion with :math:`b_{h,K}`, with snapshots.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .. import levy as _levy
from .. import stable as _stable
from .._common.checks import check_int, check_real
from ..config import resolve_device

PI = math.pi
_LEVEL = 200.0   # tables and quadratures cover eps^-alpha (f - min f) <= _LEVEL


# =============================================================================================
# Feller skewness <-> S1
# =============================================================================================
def _check_alpha_not1(alpha) -> float:
    a = check_real("alpha", alpha, low=0, high=2, low_open=True)
    if a == 1.0:
        raise ValueError(
            "alpha must be a number in (0, 2] other than 1, got 1: at alpha = 1 the Feller laws "
            "are shifted Cauchy laws (S1 beta = 0, scale cos(theta pi/2), location "
            "-sin(theta pi/2)), not a (beta, scale) pair")
    return a


def feller_to_stable(theta, alpha) -> Tuple[float, float]:
    r"""S1 parameters of the standard Feller (Riesz–Feller) stable law with skewness θ.

    The Feller law (Gorenflo & Mainardi 1998; Mainardi, Luchko & Pagnini 2001), the noise of
    the Riesz–Feller operator of Eq. 4.7, has

    .. math::  \log E e^{i\kappa X} = -|\kappa|^\alpha e^{i\,\mathrm{sgn}(\kappa)\theta\pi/2},
               \qquad |\theta| \le \min(\alpha, 2-\alpha).

    Matching it with S1, :math:`-\sigma^\alpha|\kappa|^\alpha(1 - i\beta\,\mathrm{sgn}\kappa
    \tan\frac{\pi\alpha}2)`, gives

    .. math::  \beta = -\frac{\tan(\theta\pi/2)}{\tan(\alpha\pi/2)}, \qquad
               \sigma = \cos(\theta\pi/2)^{1/\alpha}.

    Sign convention (checked against the empirical characteristic function of
    :func:`gnilab.stable.sample` in the tests): for 1 < α < 2 a **positive** Feller θ is a
    **positive** β (θ = 2 − α ⇔ β = 1, heavy right tail); for 0 < α < 1 it is the opposite
    (θ = −α ⇔ β = 1, support on the positive half-line). At α = 2 only θ = 0 is allowed and
    gives (0, 1). The paper's own θ in Eq. 4.4, :math:`\mathcal S_\alpha(1, \theta, 0)`, is
    already an S1 β and needs no conversion.

    Parameters
    ----------
    theta : float, Feller skewness in [−min(α, 2−α), min(α, 2−α)]
    alpha : float in (0, 2], α ≠ 1 (raises ValueError: at α = 1 the Feller laws are shifted
        Cauchy laws, whose shift S1 puts in the location, not in (β, σ)).

    Returns
    -------
    (beta, scale) : floats.
    """
    a = _check_alpha_not1(alpha)
    bound = min(a, 2.0 - a)
    t = check_real("theta", theta, low=-bound, high=bound)
    if a == 2.0:
        return 0.0, 1.0
    beta = -math.tan(t * PI / 2) / math.tan(a * PI / 2)
    return max(-1.0, min(1.0, beta)), math.cos(t * PI / 2) ** (1.0 / a)


def stable_to_feller(beta, alpha) -> Tuple[float, float]:
    r"""Feller skewness and scale of the S1 law :math:`S_\alpha(\beta, 1)` (inverse of
    :func:`feller_to_stable`).

    :math:`S_\alpha(\beta, 1)` (S1, scale 1, location 0) has
    :math:`\log E e^{i\kappa X} = -\sigma_F^\alpha|\kappa|^\alpha e^{i\,\mathrm{sgn}(\kappa)
    \theta_F\pi/2}` with

    .. math::  \theta_F = \tfrac2\pi\arctan\!\big(-\beta\tan\tfrac{\pi\alpha}2\big), \qquad
               \sigma_F = \cos(\theta_F\pi/2)^{-1/\alpha},

    i.e. it is :math:`\sigma_F` times a standard Feller variable with skewness
    :math:`\theta_F`. Round trip: ``stable_to_feller(feller_to_stable(t, a)[0], a)`` is
    ``(t, 1 / feller_to_stable(t, a)[1])``. Same sign convention as
    :func:`feller_to_stable`. It maps the S1 noise of Eq. 4.4 to the Feller skewness of the
    Riesz–Feller operator of Eq. 4.7 (Camuto et al. 2021).

    Parameters
    ----------
    beta : float in [−1, 1]
        S1 skewness β.
    alpha : float in (0, 2], α ≠ 1
        Stability index (raises ValueError at α = 1, as :func:`feller_to_stable`).

    Returns
    -------
    (theta_F, sigma_F) : tuple of float
        Feller skewness :math:`\theta_F` (clipped to ``[−min(α, 2−α), min(α, 2−α)]``) and
        scale :math:`\sigma_F`; at α = 2, (0, 1).
    """
    a = _check_alpha_not1(alpha)
    b = check_real("beta", beta, low=-1, high=1)
    if a == 2.0:
        return 0.0, 1.0
    th = 2.0 / PI * math.atan(-b * math.tan(a * PI / 2))
    bound = min(a, 2.0 - a)
    th = max(-bound, min(bound, th))
    return th, math.cos(th * PI / 2) ** (-1.0 / a)


# =============================================================================================
# Eq. 4.8
# =============================================================================================
def grunwald_weights(gamma, K) -> torch.Tensor:
    r"""Grünwald–Letnikov weights :math:`\tilde g_{\gamma,k}`, k = 0..K, of Eq. 4.8:

    .. math::  \tilde g_{\gamma,k} = (-1)^k\binom{\gamma}{k}
               = \frac{\Gamma(k-\gamma)}{\Gamma(-\gamma)\,\Gamma(k+1)}, \qquad
               \sum_{k\ge0}\tilde g_{\gamma,k} z^k = (1-z)^\gamma\ (|z| < 1),

    computed by the recurrence :math:`\tilde g_0 = 1`, :math:`\tilde g_k = \tilde g_{k-1}
    (k-1-\gamma)/k` (no Gamma-function overflow). The paper's extracted text garbles the
    formula; this is the form for which :math:`K = 0, h = h_0` gives :math:`b = -f'`
    (:func:`h0`). For γ ∈ (−1, 0) (Eq. 4.8: γ = α − 2) all weights are positive and decay like
    :math:`k^{-\gamma-1}/\Gamma(-\gamma)`, too slowly to be summable (the symbol
    :math:`|\kappa|^\gamma` is singular at 0).

    Parameters
    ----------
    gamma : float (any finite real)
    K : int >= 0

    Returns
    -------
    float64 Tensor of shape [K + 1].
    """
    g = check_real("gamma", gamma)
    K = check_int("K", K, low=0)
    if K == 0:
        return torch.ones(1, dtype=torch.float64)
    k = np.arange(1, K + 1, dtype=np.float64)
    w = np.empty(K + 1)
    w[0] = 1.0
    w[1:] = np.cumprod((k - 1.0 - g) / k)
    return torch.from_numpy(w)


def _check_drift_args(alpha, theta, eps):
    a = check_real("alpha", alpha, low=1, high=2, low_open=True, high_open=True)
    t = check_real("theta", theta, low=-1, high=1)
    e = check_real("eps", eps, low=0, low_open=True)
    return a, t, e


def h0(alpha, eps=1.0, center_weight=1.0) -> float:
    r"""The step :math:`h_0` for which Eq. 4.8 with K = 0 is the gradient: :math:`b_{h_0,0} = -f'`.

    With K = 0 only the k = 0 term survives, :math:`\varphi'/\varphi = -\varepsilon^{-\alpha}f'`,
    so :math:`b_{h,0} = -w_0 c_\gamma h^{-\gamma}\tilde g_{\gamma,0} f'` — **independent of ε**
    (the :math:`\varepsilon^\alpha` prefactor cancels the :math:`\varepsilon^{-\alpha}` of
    :math:`\varphi'`). It equals :math:`-f'` iff :math:`w_0 c_\gamma h^{-\gamma} = 1`:

    .. math::  h_0 = \big(2\cos(\gamma\pi/2)/w_0\big)^{1/(2-\alpha)}, \qquad \gamma = \alpha-2,

    with :math:`w_0` = ``center_weight`` (1 in Eq. 4.8 as printed). The paper prints
    :math:`h_0 = [2\varepsilon^{-\alpha}\cos((\alpha-2)\pi/2)]^{1/(2-\alpha)}`, which gives the
    identity only at ε = 1 (the setting of its experiments); this function implements the
    ε-free value, and ``eps`` is accepted (and checked) only so that the call reads like the
    paper's. Examples: α = 1.9 → 904.7, α = 1.5 → 2 (exactly), α = 1.1 → 0.2750.

    Parameters
    ----------
    alpha : float in (1, 2)
        Stability index.
    eps : float > 0
        Noise scale ε; checked but unused (see above).
    center_weight : float > 0
        :math:`w_0`, the weight of the k = 0 term (1 as printed in Eq. 4.8).

    Returns
    -------
    float
        :math:`h_0`.
    """
    a, _, _ = _check_drift_args(alpha, 0.0, eps)
    w0 = check_real("center_weight", center_weight, low=0, low_open=True)
    gam = a - 2.0
    return (2.0 * math.cos(gam * PI / 2) / w0) ** (1.0 / (2.0 - a))


def _as_f64(w):
    return (w.to(torch.float64) if isinstance(w, torch.Tensor)
            else torch.as_tensor(np.asarray(w, dtype=np.float64)))


def _fvals(potential, y):
    """f and f' at y as float64 tensors."""
    return _as_f64(potential.value(y)), _as_f64(potential.grad(y))


def _level_interval(potential, eps, alpha, level=_LEVEL, start=4.0, limit=1e4):
    r"""Hull ``(lo, hi, wmin)`` of :math:`\{w: \varepsilon^{-\alpha}(f(w) - \min f) \le
    \text{level}\}` found on a grid over [−X, X] (X doubled until the set is inside), and the
    grid minimiser ``wmin``."""
    X = start
    while True:
        grid = torch.linspace(-X, X, 20001, dtype=torch.float64)
        f = _as_f64(potential.value(grid))
        if not bool(torch.isfinite(f).any()):
            raise ValueError("potential.value is not finite anywhere on [-4, 4]")
        f = torch.where(torch.isfinite(f), f, torch.full_like(f, math.inf))
        i0 = int(torch.argmin(f))
        g = (f - f[i0]) / eps ** alpha
        inside = (g <= level).nonzero().squeeze(1)
        lo_i, hi_i = int(inside[0]), int(inside[-1])
        if (lo_i > 0 and hi_i < grid.numel() - 1) or X >= limit:
            if X >= limit:
                raise ValueError(f"the Gibbs density exp(-f/eps^alpha) is not confined to "
                                 f"[-{limit:g}, {limit:g}]: f must grow at infinity")
            d = float(grid[1] - grid[0])
            return float(grid[lo_i]) - d, float(grid[hi_i]) + d, float(grid[i0])
        X *= 2.0


class CorrectedDrift:
    r"""The drift :math:`b_{h,K}` of Eq. 4.8 (d = 1); build it with :func:`corrected_drift`.

    .. math::  b_{h,K}(w) = \frac{\varepsilon^\alpha}{\varphi(w)}\,\frac{c_\gamma}{h^\gamma}
               \sum_{k=-K}^{K} a_k\,\varphi'(w-kh)
               = -\frac{c_\gamma}{h^\gamma}\sum_{k=-K}^{K} a_k\,f'(w-kh)\,
                 e^{-\varepsilon^{-\alpha}[f(w-kh)-f(w)]},

    :math:`a_k = (1+\theta\,\mathrm{sgn}k)\tilde g_{\gamma,|k|}` for k ≠ 0, :math:`a_0` =
    ``center_weight`` (1 as printed), γ = α − 2, :math:`c_\gamma = 1/(2\cos(\gamma\pi/2))`,
    :math:`\varphi = e^{-\varepsilon^{-\alpha}f}`.

    Calling it, ``b(w)``, evaluates the right-hand form in log space, exactly, for tensors of
    any shape (float64 inside, output in the input's floating dtype): with
    :math:`E_k = -\varepsilon^{-\alpha}[f(w-kh)-f(w)]` and :math:`M = \max_k E_k`, the sum is
    :math:`e^M\sum_k a_k f'(w-kh)e^{E_k-M}`. Far from the minima the exact drift grows like
    :math:`e^{\varepsilon^{-\alpha}f(w)}` (it returns paths "instantly"); where it exceeds the
    float64 range the call returns **±inf with the correct sign** (never NaN for finite
    :math:`f(w)`; NaN in gives NaN out). :meth:`nonfinite` counts such points. The cost is
    (2K+1) evaluations of f and f' per point (chunked over k); for many evaluations use
    :meth:`table`, which :func:`simulate_gni` interpolates.

    Attributes
    ----------
    potential, alpha, theta, eps, h, K, center_weight : the arguments.
    gamma : α − 2; c_gamma : :math:`1/(2\cos(\gamma\pi/2))`.
    coefs : float64 Tensor [2K+1], :math:`a_k` for k = −K..K (k = −K first).
    """

    def __init__(self, potential, alpha, theta, eps, h, K, center_weight=1.0):
        for name in ("value", "grad"):
            if not callable(getattr(potential, name, None)):
                raise TypeError(f"potential must have callable .value(w) and .grad(w) methods, "
                                f"got {type(potential).__name__} without .{name}")
        self.alpha, self.theta, self.eps = _check_drift_args(alpha, theta, eps)
        self.h = check_real("h", h, low=0, low_open=True)
        self.K = check_int("K", K, low=0)
        self.center_weight = check_real("center_weight", center_weight, low=0, low_open=True)
        self.potential = potential
        self.gamma = self.alpha - 2.0
        self.c_gamma = 1.0 / (2.0 * math.cos(self.gamma * PI / 2))
        g = grunwald_weights(self.gamma, self.K)
        k = torch.arange(-self.K, self.K + 1, dtype=torch.float64)
        coefs = (1.0 + self.theta * torch.sign(k)) * g[k.abs().long()]
        coefs[self.K] = self.center_weight
        self.coefs = coefs
        self._pref = self.c_gamma * self.h ** (-self.gamma)     # c_gamma h^{-gamma}
        self._tables: Dict[tuple, tuple] = {}

    def __repr__(self):
        return (f"CorrectedDrift(alpha={self.alpha:g}, theta={self.theta:g}, eps={self.eps:g}, "
                f"h={self.h:g}, K={self.K}, center_weight={self.center_weight:g})")

    # --- exact evaluation -----------------------------------------------------------------
    def __call__(self, w, chunk_elems: int = 1 << 22):
        wt = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w, np.float64))
        out_dtype = wt.dtype if wt.is_floating_point() else torch.float64
        x = wt.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
        n = x.numel()
        if n == 0:
            return torch.empty_like(wt, dtype=out_dtype)
        inv = self.eps ** (-self.alpha)
        fw = _as_f64(self.potential.value(x))
        M = torch.full((n,), -math.inf, dtype=torch.float64)
        S = torch.zeros(n, dtype=torch.float64)
        ks = torch.arange(-self.K, self.K + 1, dtype=torch.float64)
        step = max(1, chunk_elems // n)
        for i in range(0, ks.numel(), step):
            kk, cc = ks[i:i + step], self.coefs[i:i + step]
            y = x[:, None] - kk[None, :] * self.h
            fy, gy = _fvals(self.potential, y)
            E = -(fy - fw[:, None]) * inv
            E = torch.where(torch.isnan(E) & ~torch.isnan(x)[:, None],
                            torch.full_like(E, -math.inf), E)   # f(y) = inf: no contribution
            Mc = E.amax(dim=1)
            Mn = torch.maximum(M, Mc)
            live = torch.isfinite(Mn)
            shift_old = torch.where(live, torch.exp(M - Mn), torch.zeros_like(M))
            ex = torch.exp(E - torch.where(live, Mn, torch.zeros_like(Mn))[:, None])
            terms = torch.where(ex > 0, cc[None, :] * gy * ex, torch.zeros_like(ex))
            S = S * shift_old + terms.sum(dim=1)
            M = Mn
        # b = -pref * S * e^M, in log form so that overflow gives +-inf, not inf * 0 = nan
        b = -torch.sign(S) * torch.exp(M + torch.log(S.abs()) + math.log(self._pref))
        b = torch.where(torch.isnan(x) | torch.isnan(fw), torch.full_like(b, math.nan), b)
        return b.reshape(wt.shape).to(device=wt.device, dtype=out_dtype)

    def nonfinite(self, w) -> int:
        """Number of entries of ``w`` where the exact drift is not finite (overflow or NaN)."""
        return int((~torch.isfinite(self(w))).sum())

    # --- tabulation ------------------------------------------------------------------------
    def table(self, lo=None, hi=None, max_step: float = 2e-3):
        r"""The drift on a uniform grid, as a direct (not FFT) discrete convolution.

        The grid step is :math:`\delta = h/m`, :math:`m = \lceil h/\text{max\_step}\rceil`,
        so that every :math:`w_j - kh` is a grid point. With
        :math:`\Psi(y) = f'(y)e^{-\varepsilon^{-\alpha}(f(y) - f_{\min})}`,

        .. math::  b_j = -c_\gamma h^{-\gamma}\,e^{\varepsilon^{-\alpha}(f(w_j)-f_{\min})}
                   \sum_{k=-K}^{K} a_k\Psi(w_j - kh),

        evaluated either as one ``numpy.convolve`` per residue class mod m on the extended
        grid (when m ≤ 2K+1) or as a loop over k (when 2K+1 < m, e.g. K = 0 with the large
        :math:`h_0`); the Python loop has min(m, 2K+1) iterations. A direct sum keeps each
        entry's rounding relative to its own terms (an FFT's absolute error would swamp the
        tiny sums of K = 0 far out, where :math:`\Psi \sim e^{-200}`). Entries agree with
        :meth:`__call__` to ~1e-12 relative; cost ≈ (grid points) × (2K+1) multiply-adds
        (0.5 s for 1e4 points and K = 2e4). Cached per (lo, hi, max_step).

        Parameters
        ----------
        lo, hi : floats, optional — default the hull of
            :math:`\{\varepsilon^{-\alpha}(f - \min f) \le 200\}`, beyond which the drift is
            astronomically large.
        max_step : float > 0, largest grid step.

        Returns
        -------
        (grid, values) : float64 Tensors [n]; ``values`` is ±inf where the drift overflows.
        """
        L, H, wmin = _level_interval(self.potential, self.eps, self.alpha)
        lo = check_real("lo", L if lo is None else lo)
        hi = check_real("hi", H if hi is None else hi)
        max_step = check_real("max_step", max_step, low=0, low_open=True)
        if not lo < hi:
            raise ValueError(f"lo must be < hi, got lo={lo:g}, hi={hi:g}")
        key = (lo, hi, max_step)
        if key in self._tables:
            return self._tables[key]
        m = max(1, math.ceil(self.h / max_step - 1e-9))
        d = self.h / m
        j0, j1 = math.floor(lo / d), math.ceil(hi / d)
        n_tab = j1 - j0 + 1
        n_terms = 2 * self.K + 1
        by_k = n_terms < m
        ext = 0 if by_k else self.K * m
        if (n_tab + 2 * ext) > (1 << 26) or n_tab * n_terms > 2e10:
            raise ValueError(f"table too large: {n_tab} points x {n_terms} terms "
                             f"(reduce K, the range or raise max_step)")
        inv = self.eps ** (-self.alpha)
        fmin = float(_as_f64(self.potential.value(torch.tensor([wmin], dtype=torch.float64))))

        def psi_at(y):
            fy, gy = _fvals(self.potential, y)
            e = (fy - fmin) * inv
            ok = e < 740.0                        # also False at NaN / inf
            return torch.where(ok, gy * torch.exp(-torch.where(ok, e, torch.zeros_like(e))),
                               torch.zeros_like(gy))

        grid = torch.arange(j0, j1 + 1, dtype=torch.float64) * d
        a = self.coefs.numpy()
        if by_k:
            B = torch.zeros(n_tab, dtype=torch.float64)
            for i, k in enumerate(range(-self.K, self.K + 1)):
                B += float(a[i]) * psi_at(grid - k * self.h)
            B = B.numpy()
        else:
            psi = psi_at(torch.arange(j0 - ext, j1 + ext + 1, dtype=torch.float64) * d).numpy()
            B = np.empty(n_tab)
            js_all = np.arange(n_tab)
            # B_j = sum_k a_k psi[(j + ext) - k m]: positions of one residue class mod m
            for r in range(m):
                js = js_all[(js_all + ext) % m == r]
                if js.size == 0:
                    continue
                # with sub = psi[r::m] and (j + ext) = r + q m the sum is
                # sum_k a_k sub[q - k] = full[q + K] = valid[q - K], full = sub * a (l = k + K)
                valid = np.convolve(psi[r::m], a, mode="valid")
                B[js] = valid[(js + ext - r) // m - self.K]
        fj = _as_f64(self.potential.value(grid)).numpy()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            logmag = np.log(np.abs(B)) + (fj - fmin) * inv + math.log(self._pref)
            vals = -np.sign(B) * np.exp(logmag)
        out = (grid, torch.from_numpy(vals))
        self._tables[key] = out
        return out

    def stable_range(self, eta, max_step: float = 2e-3) -> Tuple[float, float]:
        r"""The interval around the minimiser of f on which Euler's step is monotone,
        :math:`\eta\,|b'(w)| \le 1` (b' by differences of :meth:`table`): from the grid
        minimiser outwards to the first grid cell on each side where the condition fails (or
        the table's end). :func:`simulate_gni` clamps states into it before each drift step."""
        eta = check_real("eta", eta, low=0, low_open=True)
        grid, vals = self.table(max_step=max_step)
        _, _, wmin = _level_interval(self.potential, self.eps, self.alpha)
        slope = torch.diff(vals) / torch.diff(grid)
        bad = ~(eta * slope.abs() <= 1.0)            # NaN / inf count as stiff
        i0 = int(torch.searchsorted(grid, torch.tensor(wmin, dtype=torch.float64)))
        i0 = min(max(i0, 0), slope.numel() - 1)
        right = bad[i0:].nonzero()
        left = bad[:i0].nonzero()
        hi_i = i0 + int(right[0]) if right.numel() else grid.numel() - 1
        lo_i = int(left[-1]) + 1 if left.numel() else 0
        return float(grid[lo_i]), float(grid[hi_i])


def corrected_drift(potential, alpha, theta, eps, h, K, center_weight=1.0) -> CorrectedDrift:
    r"""The approximate fractional-Langevin drift :math:`b_{h,K}` of Eq. 4.8 for d = 1.

    .. math::  b_{h,K}(w) = \frac{\varepsilon^\alpha}{\varphi(w)}\,
               \Delta^{\gamma,-\theta}_{h,K}\varphi'(w),\qquad
               \Delta^{\gamma,-\theta}_{h,K}\psi(w) = \frac{c_\gamma}{h^\gamma}
               \sum_{k=-K}^{K}(1+\theta\,\mathrm{sgn}k)\,\tilde g_{\gamma,|k|}\,\psi(w-kh),

    γ = α − 2 ∈ (−1, 0), :math:`c_\gamma = 1/(2\cos(\gamma\pi/2))`,
    :math:`\varphi = e^{-\varepsilon^{-\alpha}f}`, :math:`\tilde g` from
    :func:`grunwald_weights`. θ is the skewness of the noise :math:`\mathcal
    S_\alpha(1,\theta,0)` (an S1 β; see the module docstring for the Fourier argument and the
    tests for the simulation check). As :math:`h\to0, K\to\infty, hK\to\infty` it tends to the
    drift of Eq. 4.7 (Theorem 4.1: Gibbs measure invariant) — for ``center_weight=2``; with the
    printed weight 1 of the k = 0 term an extra :math:`+c_\gamma h^{2-\alpha}f'` survives,
    which vanishes only like :math:`h^{2-\alpha}`. K = 0 with :math:`h = h_0`
    (:func:`h0`) gives exactly :math:`-f'`, i.e. Eq. 4.4.

    Parameters
    ----------
    potential : object with ``.value(w)`` and ``.grad(w)``
        The potential f and its derivative, elementwise on float64 tensors, e.g.
        :class:`gnilab.levy.Quartic`.
    alpha : float in (1, 2)
        Stability index α of the noise.
    theta : float in [−1, 1]
        Skewness θ (the S1 β of the noise).
    eps : float > 0
        Noise scale ε.
    h : float > 0
        Grid step of the Grünwald sum.
    K : int >= 0
        Half-width of the sum (terms k = −K..K).
    center_weight : float > 0
        Weight of the k = 0 term (1 as printed in Eq. 4.8; 2 for the sum of two one-sided
        Grünwald sums).

    Returns
    -------
    CorrectedDrift
        A callable ``b(w)`` (tensor in, same shape out).

    Raises
    ------
    TypeError for wrong types (K not an int, a potential without value/grad); ValueError for
    α ∉ (1, 2), |θ| > 1, ε ≤ 0, h ≤ 0, K < 0.
    """
    return CorrectedDrift(potential, alpha, theta, eps, h, K, center_weight)


# =============================================================================================
# simulation
# =============================================================================================
@dataclass(frozen=True)
class GNIRun:
    """Result of :func:`simulate_gni`.

    Attributes
    ----------
    snapshots : dict step -> float64 Tensor [n_paths], the states after that many steps
        (NaN for paths that exploded before).
    exploded : bool Tensor [n_paths], paths that became non-finite or left
        ``[-max_abs, max_abs]`` (frozen from then on); n_exploded : their number.
    n_clamped : int, path-steps that started outside ``stable_range`` and were clamped into
        it (corrected drift only; 0 for Eq. 4.4).
    stable_range : (lo, hi) or None, see :meth:`CorrectedDrift.stable_range`.
    drift : the :class:`CorrectedDrift` used, or None for Eq. 4.4 (−f').
    steps, eta : the run's settings; seconds : wall time of the simulation.
    """
    snapshots: Dict[int, torch.Tensor]
    exploded: torch.Tensor
    n_exploded: int
    n_clamped: int
    stable_range: Optional[Tuple[float, float]]
    drift: Optional[CorrectedDrift]
    steps: int
    eta: float
    seconds: float

    def samples(self, start: int = 0) -> torch.Tensor:
        """Snapshots at steps >= ``start``, stacked: Tensor [n_snapshots, n_paths]."""
        keys = [k for k in sorted(self.snapshots) if k >= start]
        if not keys:
            raise ValueError(f"no snapshot at a step >= {start}")
        return torch.stack([self.snapshots[k] for k in keys])


def _lean_loop(table, lo, hi, x, boom, noise_blocks, eta, max_abs, snap_steps, snaps, k0):
    """Euler steps with a tabulated drift, clamping into [lo, hi] first; returns new state."""
    grid, vals = table
    g0 = float(grid[0])
    d = float(grid[1] - grid[0])
    n_tab = grid.numel()
    T = vals.to(x.device)
    D = torch.diff(T)
    clamped = torch.zeros((), dtype=torch.int64, device=x.device)
    n_steps = noise_blocks.shape[0]
    any_boom = bool(boom.any())
    for j in range(n_steps):
        xc = x.clamp(lo, hi)
        clamped += (xc != x).sum()
        u = (xc - g0) / d
        i = u.floor().clamp_(0, n_tab - 2)
        t = u - i
        il = i.long()
        y = xc + eta * (T[il] + t * D[il])
        y += noise_blocks[j]
        mm = torch.aminmax(y)
        lo_y, hi_y = float(mm.min), float(mm.max)
        if not (-max_abs <= lo_y and hi_y <= max_abs):
            boom |= ~(y.abs() <= max_abs)
            any_boom = True
        if any_boom:
            y = torch.where(boom, x, y)
        x = y
        step = k0 + j + 1
        if step in snap_steps:
            snaps[step] = torch.where(boom, torch.full_like(x, math.nan), x)
    return x, boom, int(clamped)


def simulate_gni(potential, alpha, theta, eps, eta, steps, n_paths, w0=0.0, *, h=None, K=None,
                 center_weight=1.0, snapshots=None, generator=None, device=None, max_abs=1e6,
                 chunk_elems=1 << 21, progress=False) -> GNIRun:
    r"""Many independent paths of Eq. 4.4, or of the same recursion with Eq. 4.8's drift.

    * ``h`` and ``K`` not given — Eq. 4.4: :math:`w_{k+1} = w_k - \eta f'(w_k) +
      \varepsilon\eta^{1/\alpha}\Delta L_k`, :math:`\Delta L_k\sim\mathcal S_\alpha(1,\theta,0)`
      (S1 β = θ), run by :func:`gnilab.levy.simulate` (``potential`` must then be a
      :mod:`gnilab.levy` potential: ``grad``, ``hess``, ``minima``, ``maxima``, ``n_basins``,
      ``basin_index``; paths thrown far out, where :math:`\eta|f''| > 1`, follow the drift ODE
      by substeps instead of overshooting).
    * ``h`` and ``K`` given — :math:`\tilde w_{k+1} = \tilde w_k + \eta\,b_{h,K}(\tilde w_k) +
      \varepsilon\eta^{1/\alpha}\Delta L_k` (the recursion before Theorem 4.2) with
      :math:`b_{h,K}` from :func:`corrected_drift` (``potential`` needs only ``value`` and
      ``grad``), linearly interpolated in :meth:`CorrectedDrift.table` (grid step ≤ 0.002).
      The exact drift grows like :math:`e^{\varepsilon^{-\alpha}f}` away from the minima, so
      Euler would overshoot and overflow there; a state outside
      :meth:`CorrectedDrift.stable_range` (where :math:`\eta|b'|\le1`) is first **clamped to
      its end** — the exact drift flow would bring it there in about one step or less — and
      then takes the Euler step. Such events are counted in ``n_clamped``. With K = 0 and
      :math:`h = h_0` this is Eq. 4.4 up to the treatment of those far-out states.

    Parameters
    ----------
    potential : object
        The potential f (see above for the methods each branch needs).
    alpha : float
        Stability index: in (0, 2] for Eq. 4.4, in (1, 2) with ``h``, ``K``.
    theta : float in [−1, 1]
        Skewness of the noise (S1 β) and of the drift.
    eps : float > 0
        Noise scale ε (Eq. 4.4 also allows 0).
    eta : float > 0
        Step size η.
    steps : int >= 1
        Number of steps.
    n_paths : int >= 1
        Number of independent paths.
    w0 : float or torch.Tensor
        Start points, a scalar or shape ``[n_paths]`` (e.g. :func:`gibbs_sample`).
    h : float > 0, optional
        Grid step of Eq. 4.8's sum (see :func:`corrected_drift`); give it with ``K``.
    K : int >= 0, optional
        Half-width of Eq. 4.8's sum; give it with ``h``.
    center_weight : float > 0
        Weight of the k = 0 term of Eq. 4.8 (corrected drift only).
    snapshots : sequence of int, optional
        Step indices in [0, steps] at which to keep the states.
    generator : torch.Generator or int, optional
        Source of the noise (same seed, same paths).
    device : str or torch.device, optional
        Where to simulate (default from :func:`gnilab.config.resolve_device`).
    max_abs : float > 0
        Paths with :math:`|w| >` ``max_abs`` or non-finite w are marked exploded, frozen and
        reported (NaN in the snapshots), never raised.
    chunk_elems : int
        Noise variates drawn per block.
    progress : bool
        Show a tqdm bar (Eq. 4.4 only).

    Returns
    -------
    GNIRun
        The snapshots, the exploded paths, the clamping count, the drift used and the timing.
    """
    if (h is None) != (K is None):
        raise ValueError("give both h and K (corrected drift, Eq. 4.8) or neither (Eq. 4.4), "
                         f"got h={h!r}, K={K!r}")
    eta = check_real("eta", eta, low=0, low_open=True)
    steps = check_int("steps", steps, low=1)
    n_paths = check_int("n_paths", n_paths, low=1)
    max_abs = check_real("max_abs", max_abs, low=0, low_open=True)
    snap_steps = sorted({check_int("snapshots entry", s, low=0, high=steps)
                         for s in snapshots}) if snapshots is not None else []
    t0 = time.perf_counter()
    if h is None:
        a = check_real("alpha", alpha, low=0, high=2, low_open=True)
        th = check_real("theta", theta, low=-1, high=1)
        e = check_real("eps", eps, low=0)
        for name in ("grad", "hess", "minima", "maxima", "n_basins", "basin_index"):
            if not hasattr(potential, name):
                raise TypeError(f"Eq. 4.4 runs through gnilab.levy.simulate: potential must be "
                                f"a gnilab.levy potential, got {type(potential).__name__} "
                                f"without .{name}")
        w0t = torch.as_tensor(w0, dtype=torch.float64)
        run = _levy.simulate(potential, a, e, eta, steps, n_paths, w0t, beta=th, record="exit",
                             snapshots=snap_steps or None, exit_interval=(-math.inf, math.inf),
                             generator=generator, device=device, dtype=torch.float64,
                             progress=progress, max_abs=max_abs, chunk_elems=chunk_elems)
        return GNIRun(snapshots=dict(run.snapshots or {}), exploded=run.exploded,
                      n_exploded=run.n_exploded, n_clamped=0, stable_range=None, drift=None,
                      steps=steps, eta=eta, seconds=time.perf_counter() - t0)

    drift = corrected_drift(potential, alpha, theta, eps, h, K, center_weight)
    return _simulate_corrected(drift, drift.theta, eta, steps, n_paths, w0, snap_steps,
                               generator, device, max_abs, chunk_elems, t0)


def _simulate_corrected(drift, noise_theta, eta, steps, n_paths, w0, snap_steps, generator,
                        device, max_abs, chunk_elems, t0) -> GNIRun:
    """The corrected-drift branch of :func:`simulate_gni`, with the noise skewness given
    separately (the tests use a mismatched sign to show which one is right)."""
    a, th, e = drift.alpha, noise_theta, drift.eps
    dev = resolve_device(device, w0 if isinstance(w0, torch.Tensor) else None)
    gen = _levy._generator_for(generator, dev)
    table = drift.table()
    lo, hi = drift.stable_range(eta)
    x = torch.as_tensor(w0, dtype=torch.float64).to(dev).clone()
    if x.shape == ():
        x = x.expand(n_paths).clone()
    if x.shape != (n_paths,):
        raise ValueError(f"w0 must be a scalar or have shape ({n_paths},), got {tuple(x.shape)}")
    boom = ~(x.abs() <= max_abs)
    snaps: Dict[int, torch.Tensor] = {}
    if 0 in snap_steps:
        snaps[0] = torch.where(boom, torch.full_like(x, math.nan), x)
    snap_set = set(snap_steps)
    scale = e * eta ** (1.0 / a)
    n_clamped = 0
    k = 0
    while k < steps:
        nb = max(1, min(steps - k, chunk_elems // n_paths))
        noise = _stable.sample(a, th, scale=scale, size=(nb, n_paths), param="S1",
                               generator=gen, device=dev, dtype=torch.float64)
        x, boom, c = _lean_loop(table, lo, hi, x, boom, noise, eta, max_abs, snap_set, snaps, k)
        n_clamped += c
        k += nb
    return GNIRun(snapshots=snaps, exploded=boom, n_exploded=int(boom.sum()),
                  n_clamped=n_clamped, stable_range=(lo, hi), drift=drift, steps=steps,
                  eta=eta, seconds=time.perf_counter() - t0)
