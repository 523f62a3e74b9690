r"""Lévy-driven gradient dynamics and their metastability (Şimşekli, Sagun & Gürbüzbalaban
2019, §2, after Pavlyukevich 2007).

The SDE (paper Eq. 10)

.. math::  dw_t = -f'(w_t)\,dt + \varepsilon\, dL^\alpha_t

is simulated by Euler–Maruyama (paper Eq. 8 with :math:`\eta = dt`):
:math:`w_{k+1} = w_k - dt\,f'(w_k) + \varepsilon\,dt^{1/\alpha} S_k`, :math:`S_k \sim
S_\alpha(\beta, 1)` (S1) i.i.d.; for :math:`\beta = 0` this is SαS(1) with
:math:`E e^{i\omega S} = e^{-|\omega|^\alpha}`, so :math:`\alpha = 2` gives
:math:`L^2_t = \sqrt2 B_t` (increment variance :math:`2h`).

Constants (decided by simulation, see ``tests/test_levy.py``):

* **Lévy measure.** SαS(1) has jump density :math:`c_\alpha |y|^{-1-\alpha}` with
  :math:`c_\alpha = \Gamma(1+\alpha)\sin(\pi\alpha/2)/\pi` (:func:`levy_measure_constant`).
  The paper's Eq. 11/13 omit it; the rate of leaving basin *i* in simulation time is
  :math:`\varepsilon^\alpha c_\alpha q_i` (without :math:`c_\alpha` the predicted exit time
  is off by :math:`1/c_\alpha \approx 3.3` at α = 1.5, far outside the simulation's error).
  Stationary probabilities :math:`\pi` do not depend on :math:`c_\alpha`.
* **Brownian contrast.** With :math:`L^2 = \sqrt2 B`, :math:`dw = -f'dt + \varepsilon dL^2`
  has generator :math:`\varepsilon^2\partial_w^2 - f'\partial_w`, so the Eyring–Kramers time
  is :math:`\frac{2\pi}{\sqrt{f''(m)|f''(s)|}}e^{H/\varepsilon^2}` — the paper's
  :math:`e^{2H/\varepsilon^2}` is for :math:`dw = -f'dt + \varepsilon dB`.

Potentials are small objects with ``grad``, ``hess``, ``value``, ``minima``/``maxima``,
``basin_index``, ``basin_interval``, ``n_basins`` and ``dim``: the 1-D :class:`DoubleWell`,
:class:`MultiWell` and :class:`Quartic`, and :class:`Separable`, a sum of 1-D potentials over
coordinates, for d dimensions with independent noise components. Any object with these
members can be simulated (``hess`` gives the diagonal of the Hessian in d dimensions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from . import stable as _stable
from ._common.checks import check_choice, check_int, check_real
from .config import resolve_device, resolve_dtype

__all__ = [
    "levy_motion",
    "DoubleWell",
    "MultiWell",
    "Quartic",
    "Separable",
    "LevyRun",
    "simulate",
    "levy_measure_constant",
    "transition_rates",
    "stationary_distribution",
    "mean_exit_time",
    "kramers_exit_time",
]


# =============================================================================================
# random generators
# =============================================================================================
def _generator_for(generator, device):
    """A generator usable on ``device``: a CPU generator on a CUDA device seeds a fresh CUDA
    generator from one draw, so a seeded run stays repeatable."""
    if generator is None:
        return None
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return torch.Generator(device=device).manual_seed(int(generator))
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, "
                        f"got {generator!r}")
    if torch.device(generator.device).type != torch.device(device).type:
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        return torch.Generator(device=device).manual_seed(seed)
    return generator


# =============================================================================================
# Lévy motion
# =============================================================================================
def levy_motion(alpha, T, steps, n_paths=1, beta=0.0, dim=1, generator=None, device=None,
                dtype=None):
    r"""Paths of the α-stable Lévy motion :math:`L^\alpha_t` on ``[0, T]`` (paper §2, (i)–(iv)).

    Increments over :math:`h = T/\text{steps}` are i.i.d. :math:`S_\alpha(\beta, h^{1/\alpha})`
    in the S1 parameterisation; for β = 0, :math:`E e^{i\omega L_h} = e^{-h|\omega|^\alpha}`.
    α = 2 gives :math:`\sqrt2 B_t` (increment variance 2h).

    Parameters
    ----------
    alpha : float in (0, 2]
    T : float > 0, time horizon
    steps : int >= 1, number of increments
    n_paths : int >= 1
    beta : float in [-1, 1], skewness
    dim : int >= 1, independent components
    generator, device, dtype : see the package conventions.

    Returns
    -------
    Tensor of shape ``[n_paths, steps + 1]`` (``dim == 1``) or ``[n_paths, steps + 1, dim]``,
    starting at 0.
    """
    a = check_real("alpha", alpha, low=0, high=2, low_open=True)
    b = check_real("beta", beta, low=-1, high=1)
    T = check_real("T", T, low=0, low_open=True)
    steps = check_int("steps", steps, low=1)
    n_paths = check_int("n_paths", n_paths, low=1)
    dim = check_int("dim", dim, low=1)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    gen = _generator_for(generator, dev)
    h = T / steps
    shape = (n_paths, steps) if dim == 1 else (n_paths, steps, dim)
    inc = _stable.sample(a, b, scale=h ** (1.0 / a), size=shape, param="S1", generator=gen,
                         device=dev, dtype=dt)
    zero = torch.zeros((n_paths, 1) + shape[2:], dtype=dt, device=dev)
    return torch.cat([zero, inc.cumsum(dim=1)], dim=1)


# =============================================================================================
# potentials
# =============================================================================================
def _horner(coefs: Sequence[float], w: torch.Tensor) -> torch.Tensor:
    """Polynomial with coefficients highest degree first, evaluated at ``w``."""
    if len(coefs) == 1:
        return torch.full_like(w, coefs[0])
    out = w * coefs[0] + coefs[1]
    for c in coefs[2:]:
        out = out * w + c
    return out


def _as_w(w):
    return w if isinstance(w, torch.Tensor) else torch.as_tensor(w, dtype=torch.float64)


class _Potential1D:
    """Shared methods: ``minima``/``maxima`` are sorted tuples, interleaved
    :math:`m_1 < s_1 < m_2 < \\dots < s_{r-1} < m_r`."""

    minima: Tuple[float, ...]
    maxima: Tuple[float, ...]

    def basin_index(self, w):
        """Index ``i`` (0-based) of the basin :math:`S_{i+1} = (s_i, s_{i+1})` holding ``w``
        (a point exactly on a maximum goes to the basin on its left). Long tensor."""
        w = _as_w(w)
        s = torch.as_tensor(self.maxima, dtype=w.dtype, device=w.device)
        return torch.bucketize(w.contiguous(), s)

    @property
    def n_basins(self) -> int:
        return len(self.minima)

    dim = 1

    def basin_interval(self, i: int) -> Tuple[float, float]:
        """:math:`(s_{i-1}, s_i)` of basin ``i`` (0-based), with :math:`s_0 = -\\infty`,
        :math:`s_r = +\\infty`."""
        s = (-math.inf,) + tuple(self.maxima) + (math.inf,)
        return s[i], s[i + 1]


@dataclass(frozen=True)
class MultiWell(_Potential1D):
    r"""r-well potential with prescribed critical points:

    .. math::  f'(w) = \kappa \prod_{i=1}^r (w - m_i) \prod_{j=1}^{r-1} (w - s_j),
               \qquad f(0) = 0,

    a polynomial of odd degree 2r − 1 with positive leading coefficient, so
    :math:`f''(m_i) > 0`, :math:`f''(s_j) < 0` and :math:`f'(w) \sim \kappa w^{2r-1}` satisfies
    the paper's growth condition :math:`f'(w) > |w|^{1+c}` for r ≥ 2.

    This is the landscape of Şimşekli, Sagun & Gürbüzbalaban (2019, §2, before Theorem 1):
    r non-degenerate minima :math:`m_i` in the valleys :math:`S_i = (s_{i-1}, s_i)`.

    Parameters
    ----------
    minima, maxima : sequences of float
        increasing sequences with ``len(maxima) == len(minima) - 1``, interleaved: the local
        minima :math:`m_1 < \dots < m_r` (r ≥ 1) and maxima :math:`s_1 < \dots < s_{r-1}`
        with :math:`m_1 < s_1 < m_2 < \dots < m_r`; stored as tuples of floats (defaults
        ``(-1, 1)`` and ``(0,)``).
    kappa : float > 0
        overall scale, the leading coefficient :math:`\kappa` of f' (default 1).
    """
    minima: Tuple[float, ...] = (-1.0, 1.0)
    maxima: Tuple[float, ...] = (0.0,)
    kappa: float = 1.0
    _d0: Tuple[float, ...] = field(init=False, repr=False, compare=False)
    _d1: Tuple[float, ...] = field(init=False, repr=False, compare=False)
    _d2: Tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        mins, maxs = _check_critical(self.minima, self.maxima, min_minima=1)
        check_real("kappa", self.kappa, low=0, low_open=True)
        object.__setattr__(self, "minima", tuple(mins))
        object.__setattr__(self, "maxima", tuple(maxs))
        d1 = np.poly(np.array(sorted(mins + maxs))) * float(self.kappa)  # f' vanishes at all of them
        for name, c in (("_d0", np.polyint(d1)), ("_d1", d1), ("_d2", np.polyder(d1))):
            object.__setattr__(self, name, tuple(float(x) for x in c))

    def grad(self, w):
        """:math:`f'(w)`, elementwise."""
        return _horner(self._d1, _as_w(w))

    def hess(self, w):
        """:math:`f''(w)`, elementwise."""
        return _horner(self._d2, _as_w(w))

    def value(self, w):
        """:math:`f(w)` with :math:`f(0) = 0`."""
        return _horner(self._d0, _as_w(w))


@dataclass(frozen=True)
class Quartic(MultiWell):
    r""":math:`f(w) = w^4/4 - w^2/2` (minima ±1, maximum 0, barrier height 1/4,
    :math:`f''(\pm1) = 2`, :math:`f''(0) = -1`).

    The symmetric case of the two-well landscape of Şimşekli et al. (2019, Fig. 3a): a
    :class:`MultiWell` with its defaults, :math:`f'(w) = w(w-1)(w+1)`.

    Parameters
    ----------
    minima : tuple of float
        the minima, default ``(-1.0, 1.0)``; other values give the :class:`MultiWell` with
        these critical points (no longer the quartic above).
    maxima : tuple of float
        the maxima, default ``(0.0,)``.
    kappa : float > 0
        the leading coefficient of f', default 1.
    """
    minima: Tuple[float, ...] = (-1.0, 1.0)
    maxima: Tuple[float, ...] = (0.0,)
    kappa: float = 1.0


@dataclass(frozen=True)
class DoubleWell(_Potential1D):
    r"""Two wells at :math:`m_1 < 0 < m_2` separated by the maximum :math:`s_1 = 0`
    (paper Fig. 3a), with independent widths and depths:

    .. math::  f'(w) = \kappa\, w (w - m_1)(w - m_2)(1 + \gamma_i w^2),
               \quad i = 1 \ (w < 0),\ i = 2 \ (w \ge 0), \qquad f(0) = 0.

    :math:`\kappa = \min_i H_i / A_i` and :math:`\gamma_i = (H_i/\kappa - A_i)/B_i \ge 0` where
    :math:`A_i = |\int_{m_i}^0 w(w-m_1)(w-m_2)dw|`, :math:`B_i = |\int_{m_i}^0
    w^3(w-m_1)(w-m_2)dw|`, so that the depths :math:`H_i = f(0) - f(m_i)` are ``depth1``,
    ``depth2``. f is :math:`C^2` (:math:`f''(0) = \kappa m_1 m_2` on both sides; f''' jumps at
    0), :math:`f''(m_i) = \kappa m_i (m_i - m_j)(1 + \gamma_i m_i^2) > 0`, and f' grows like
    :math:`|w|^3` or :math:`|w|^5` (growth condition of the paper). With both depths ``None``,
    :math:`\kappa = 1, \gamma_i = 0` (a cubic f').

    Parameters
    ----------
    m1 : float < 0
        the left minimum :math:`m_1` (default -1); its valley is :math:`(-\infty, 0)`.
    m2 : float > 0
        the right minimum :math:`m_2` (default 2); its valley is :math:`(0, \infty)`.
    depth1 : float > 0, optional
        :math:`H_1 = f(0) - f(m_1)`; ``None``: the depth of the cubic case on that side,
        :math:`A_1`.
    depth2 : float > 0, optional
        :math:`H_2 = f(0) - f(m_2)`; ``None``: :math:`A_2`.

    Attributes
    ----------
    kappa : float
        :math:`\kappa`, computed from the depths.
    gamma1, gamma2 : float
        :math:`\gamma_1, \gamma_2 \ge 0`, computed from the depths.
    """
    m1: float = -1.0
    m2: float = 2.0
    depth1: Optional[float] = None
    depth2: Optional[float] = None
    kappa: float = field(init=False)
    gamma1: float = field(init=False)
    gamma2: float = field(init=False)
    _coefs: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        m1 = check_real("m1", self.m1, high=0, high_open=True)
        m2 = check_real("m2", self.m2, low=0, low_open=True)
        base = np.poly([m1, 0.0, m2])
        A = [abs(np.polyval(np.polyint(base), m)) for m in (m1, m2)]
        cub = np.polymul(base, [1.0, 0.0, 0.0])
        B = [abs(np.polyval(np.polyint(cub), m)) for m in (m1, m2)]
        if self.depth1 is None and self.depth2 is None:
            kappa, g = 1.0, (0.0, 0.0)
        else:
            H = [self.depth1 if self.depth1 is not None else A[0],
                 self.depth2 if self.depth2 is not None else A[1]]
            H = [check_real(f"depth{i + 1}", h, low=0, low_open=True) for i, h in enumerate(H)]
            kappa = min(H[0] / A[0], H[1] / A[1])
            g = tuple(max(0.0, (H[i] / kappa - A[i]) / B[i]) for i in range(2))
        object.__setattr__(self, "m1", m1)
        object.__setattr__(self, "m2", m2)
        object.__setattr__(self, "kappa", float(kappa))
        object.__setattr__(self, "gamma1", float(g[0]))
        object.__setattr__(self, "gamma2", float(g[1]))
        # coefficients, highest degree first: f and f'' on the sides (w < 0, w >= 0), and
        # the cubic factor kappa w (w - m1)(w - m2) of f'
        d1 = [np.polymul(base * kappa, [gi, 0.0, 1.0]) for gi in g]

        def sides(op):
            return tuple(tuple(float(x) for x in op(p)) for p in d1)

        object.__setattr__(self, "_coefs", {"value": sides(np.polyint), "hess": sides(np.polyder),
                                            "cubic": tuple(float(x) for x in base * kappa)})

    @property
    def minima(self):
        return (self.m1, self.m2)

    @property
    def maxima(self):
        return (0.0,)

    def _eval(self, w, which):
        w = _as_w(w)
        left, right = self._coefs[which]
        if left == right:   # equal depth-to-width shape on both sides: one polynomial
            return _horner(left, w)
        return torch.where(w < 0, _horner(left, w), _horner(right, w))

    def grad(self, w):
        """:math:`f'(w)`, elementwise, as the cubic times :math:`1 + \\gamma_i w^2` (fewer
        tensor operations than two quintics: this runs once per simulation step)."""
        w = _as_w(w)
        cubic = _horner(self._coefs["cubic"], w)
        g1, g2 = self.gamma1, self.gamma2
        if g1 == g2 == 0.0:
            return cubic
        gamma = g1 if g1 == g2 else torch.where(w < 0, g1, g2)
        return cubic * (w * w * gamma + 1.0)

    def hess(self, w):
        """:math:`f''(w)`, elementwise (one-sided at 0, where both sides agree)."""
        return self._eval(w, "hess")

    def value(self, w):
        """:math:`f(w)` with :math:`f(0) = 0`; the depths are :math:`-f(m_i)`."""
        return self._eval(w, "value")

    @property
    def depths(self) -> Tuple[float, float]:
        v = self.value(torch.tensor(self.minima, dtype=torch.float64))
        return (float(-v[0]), float(-v[1]))


@dataclass(frozen=True)
class Separable:
    r"""A d-dimensional landscape :math:`f(w) = \sum_{k=1}^d f_k(w_k)` from 1-D potentials.

    With the independent noise components of :func:`simulate` (the paper's Eq. 10 with
    :math:`L^\alpha_t` of i.i.d. components) each coordinate moves on its own, so the
    small-noise theory factorises: the rate of leaving a box-shaped basin is the sum of the
    coordinates' rates (Theorem 1 per coordinate) and the stationary law is the product of
    theirs (Theorem 2). Minima are the products of the parts' minima, basins are boxes, and
    basins are numbered with the first coordinate varying slowest.

    ``hess`` returns the diagonal of the Hessian (exact here: it is diagonal).

    Parameters
    ----------
    parts : tuple or list of 1-D potentials
        :math:`f_1, \dots, f_d` (:class:`DoubleWell`, :class:`MultiWell`, :class:`Quartic`),
        one per coordinate, d ≥ 1; stored as a tuple.
    """
    parts: Tuple

    def __post_init__(self):
        parts = tuple(self.parts) if isinstance(self.parts, (tuple, list)) else ()
        if len(parts) < 1 or not all(isinstance(q, _Potential1D) for q in parts):
            raise ValueError(f"parts must be a non-empty sequence of 1-D potentials "
                             f"(DoubleWell, MultiWell, Quartic), got {self.parts!r}")
        object.__setattr__(self, "parts", parts)

    @property
    def dim(self) -> int:
        return len(self.parts)

    @property
    def n_basins(self) -> int:
        return int(np.prod([q.n_basins for q in self.parts]))

    @property
    def minima(self) -> Tuple[Tuple[float, ...], ...]:
        """All minima, in basin order."""
        grids = np.meshgrid(*[np.array(q.minima) for q in self.parts], indexing="ij")
        return tuple(tuple(float(g.flat[i]) for g in grids) for i in range(self.n_basins))

    def _columns(self, w, method):
        w = _as_w(w)
        if w.shape[-1:] != (self.dim,):
            raise ValueError(f"w must have last dimension {self.dim}, got shape {tuple(w.shape)}")
        return torch.stack([getattr(q, method)(w[..., k]) for k, q in enumerate(self.parts)],
                           dim=-1)

    def grad(self, w):
        """:math:`\\nabla f(w)`, shape of ``w`` (``[..., d]``)."""
        return self._columns(w, "grad")

    def hess(self, w):
        """Diagonal of the Hessian, :math:`(f_k''(w_k))_k`, shape of ``w``."""
        return self._columns(w, "hess")

    def value(self, w):
        """:math:`f(w)`, shape ``w.shape[:-1]``."""
        return self._columns(w, "value").sum(-1)

    def basin_index(self, w):
        """Flat index of the box basin holding ``w`` (``[..., d]`` -> ``[...]``, long)."""
        idx = self._columns(w, "basin_index")
        out = idx[..., 0]
        for k, q in enumerate(self.parts[1:], start=1):
            out = out * q.n_basins + idx[..., k]
        return out

    def basin_interval(self, i: int):
        """``(lo, hi)``: per-coordinate bounds (lists of d floats) of the box basin ``i``."""
        sizes = [q.n_basins for q in self.parts]
        i = check_int("i", i, low=0, high=self.n_basins - 1)
        digits = list(np.unravel_index(i, sizes))
        box = [q.basin_interval(int(d)) for q, d in zip(self.parts, digits)]
        return [b[0] for b in box], [b[1] for b in box]


# =============================================================================================
# simulation
# =============================================================================================
@dataclass(frozen=True)
class LevyRun:
    """Result of :func:`simulate`.

    The exit times are the transition times of Şimşekli et al. (2019, Theorem 1) and the
    occupancies estimate the stationary probabilities of their Theorem 2.

    Attributes
    ----------
    exit_times : Tensor [n_paths]
        first time (in time units, ``(k + 1) * dt``) a path left ``exit_interval``; ``inf`` if
        it did not within ``steps * dt`` (or exploded inside the interval).
    exited : bool Tensor [n_paths]
        whether the path left ``exit_interval`` within the run (finite ``exit_times``).
    occupancy : Tensor [r] or None
        fraction of path-time (states after steps 1..steps, alive paths) per basin.
    basin_steps : int64 Tensor [n_paths, r] or None
        the same per path: number of steps path n ended in basin i while alive.
    exploded : bool Tensor [n_paths]
        paths that became non-finite or left ``[-max_abs, max_abs]``; frozen afterwards.
    n_exploded : int
        number of exploded paths.
    snapshots : dict step -> Tensor [n_paths] or None (exploded paths: NaN)
        the states after the requested numbers of steps (``[n_paths, d]`` in d dimensions);
        None when no ``snapshots`` were asked for.
    steps, dt : int, float
        the run's settings: number of steps and time step; the run covers
        ``[0, steps * dt]``.
    """
    exit_times: torch.Tensor
    exited: torch.Tensor
    occupancy: Optional[torch.Tensor]
    basin_steps: Optional[torch.Tensor]
    exploded: torch.Tensor
    n_exploded: int
    snapshots: Optional[Dict[int, torch.Tensor]]
    steps: int
    dt: float

    def exit_rate(self) -> float:
        """Maximum-likelihood rate of an exponential exit time under right censoring at
        ``steps * dt``: exits / total time at risk (paths that exploded are censored at the
        end of the run, a negligible bias when explosions are rare)."""
        T = self.steps * self.dt
        t = torch.where(self.exited, self.exit_times, torch.full_like(self.exit_times, T))
        return float(self.exited.sum()) / float(t.sum())

    def occupancy_ratio(self, i: int, j: int) -> Tuple[float, float]:
        r"""Time in basin ``i`` over time in basin ``j`` (0-based), :math:`R = \sum_n a_n /
        \sum_n b_n` over paths n, with its delta-method standard error
        :math:`\mathrm{sd}(a_n - R b_n) / (\sqrt N\, \bar b)` (paths are independent).
        Needs ``record="occupancy"`` or ``"both"``."""
        if self.basin_steps is None:
            raise ValueError("occupancy_ratio needs a run with record='occupancy' or 'both'")
        r = self.basin_steps.shape[1]
        i, j = check_int("i", i, low=0, high=r - 1), check_int("j", j, low=0, high=r - 1)
        a = self.basin_steps[:, i].double()
        b = self.basin_steps[:, j].double()
        ratio = float(a.sum() / b.sum())
        se = float((a - ratio * b).std() / (math.sqrt(a.numel()) * b.mean()))
        return ratio, se


def _stiff_bounds_1d(potential, dt, limit):
    r"""Bounds ``(lo, hi)`` with :math:`dt|f''(w)| \le 1` on ``[lo, hi]`` for a 1-D potential:
    the stiff points nearest the critical points on either side, on a grid (4001 points,
    widened up to ``limit``), pulled in by one grid step; ``(-inf, inf)`` if nothing in
    ``[-limit, limit]`` is stiff, ``(0, 0)`` if the stiff set meets the critical points'
    interval (then every step checks every path)."""
    crit = [float(v) for v in tuple(potential.minima) + tuple(potential.maxima)]
    c_lo, c_hi = min(crit), max(crit)
    X = 2.0 * max([abs(c_lo), abs(c_hi), 1.0])
    while True:
        grid = torch.linspace(-X, X, 4001, dtype=torch.float64)
        stiff = potential.hess(grid).abs() * dt > 1.0
        inner = stiff & (grid >= c_lo) & (grid <= c_hi)
        if bool(inner.any()):
            return 0.0, 0.0
        left, right = grid[stiff & (grid < c_lo)], grid[stiff & (grid > c_hi)]
        pad = 2.0 * X / 4000
        if (left.numel() and right.numel()) or X >= limit:
            lo = float(left.max()) + pad if left.numel() else -math.inf
            hi = float(right.min()) - pad if right.numel() else math.inf
            return lo, hi
        X = min(2.0 * X, limit)


def _stiff_bounds(potential, dt, limit):
    """Per-coordinate bounds ``([lo_k], [hi_k])`` of the non-stiff box (see
    :func:`_stiff_bounds_1d`); a d-dimensional potential other than :class:`Separable` gets
    ``(0, 0)`` bounds, i.e. its f'' diagonal is checked at every step."""
    parts = getattr(potential, "parts", None)
    if parts is None:
        parts = [potential] if getattr(potential, "dim", 1) == 1 else None
    if parts is None:
        return [0.0] * potential.dim, [0.0] * potential.dim
    b = [_stiff_bounds_1d(q, dt, limit) for q in parts]
    return [x[0] for x in b], [x[1] for x in b]


def _col(v, like):
    """Per-path ``v`` ([n]) broadcastable against per-path states ``like`` ([n] or [n, d])."""
    return v if like.ndim == 1 else v.unsqueeze(-1)


def _rows(mask):
    """Per-coordinate mask ([n] or [n, d]) -> per-path mask [n] (any coordinate)."""
    return mask if mask.ndim == 1 else mask.any(-1)


def _drift(potential, x, dt, bounds, span):
    r""":math:`x - dt \nabla f(x)`. Paths outside the box ``bounds`` with
    :math:`dt|f''| > 1` in some coordinate — far out after a large jump, where explicit Euler
    would overshoot and explode — follow the drift ODE over ``dt`` with substeps
    :math:`h \le 0.5/\max_k|\partial_k^2 f|` instead (``bounds`` infinite: plain Euler).
    ``span`` is the per-coordinate :math:`(\min x, \max x)`, known from the previous step."""
    y = x - dt * potential.grad(x)
    (lo, hi), (mins, maxs) = bounds, span
    if all(a <= m for a, m in zip(lo, mins)) and all(m <= b for m, b in zip(maxs, hi)):
        return y
    lo_t, hi_t = x.new_tensor(lo), x.new_tensor(hi)
    far = _rows((x < lo_t) | (x > hi_t)).nonzero().squeeze(1)
    far = far[_rows(potential.hess(x[far]).abs() * dt > 1.0)]
    if far.numel():
        z = x[far]
        rem = torch.full((z.shape[0],), dt, dtype=z.dtype, device=z.device)
        for _ in range(100000):
            curv = potential.hess(z).abs()
            curv = curv if curv.ndim == 1 else curv.amax(-1)
            h = torch.minimum(rem, 0.5 / curv.clamp_min(1e-300))
            z = z - _col(h, z) * potential.grad(z)
            rem = rem - h
            if not bool((rem > 0).any()):
                break
        y[far] = z
    return y


def _span(x):
    """Per-coordinate ``([min], [max])`` of the states as float lists, one synchronisation
    (NaN if an entry is NaN)."""
    d = 1 if x.ndim == 1 else x.shape[-1]
    if not x.numel():
        return [0.0] * d, [0.0] * d
    mm = torch.aminmax(x) if x.ndim == 1 else torch.aminmax(x, dim=0)
    lo, hi = torch.stack([mm.min.reshape(-1), mm.max.reshape(-1)]).tolist()
    return lo, hi


def _run_block(potential, x, boom, et, n_steps, noise, k0, dt, bounds, max_abs, interval,
               counts):
    """Advance ``x`` ([n] or [n, d]) by ``n_steps`` Euler steps (``noise[j]``: the noise of
    step j, ``None`` for ε = 0) after step ``k0`` and update, in the common case of no exploded
    path, with about a dozen tensor operations per step:

    * ``boom`` — paths that left ``[-max_abs, max_abs]`` or became non-finite, frozen;
    * ``et`` — first time at or beyond an end of ``interval`` (kept by ``clamp(max=t)``);
    * ``counts[i, n]`` += 1 while path n is alive in basin i (``counts=None``: not recorded).
    """
    any_boom = bool(boom.any())
    span = _span(x)
    lo, hi = interval if interval is not None else (None, None)
    if counts is not None:
        n = x.shape[0]
        offsets = torch.arange(n, device=x.device)
        ones = torch.ones(n, dtype=counts.dtype, device=x.device)
        flat_counts = counts.view(-1)
    for j in range(n_steps):
        y = _drift(potential, x, dt, bounds, span)
        if noise is not None:
            y += noise[j]
        span = _span(y)
        if not (all(-max_abs <= m for m in span[0]) and all(m <= max_abs for m in span[1])):
            boom |= _rows(~(y.abs() <= max_abs))       # exploded (NaN fails <= as well)
            any_boom = True
        if any_boom:
            y = torch.where(_col(boom, y), x, y)
            span = _span(y)
        x = y
        if interval is not None:
            if x.ndim > 1:
                hit = ((x <= lo) | (x >= hi)).any(-1)
            elif lo == -math.inf:
                hit = x >= hi
            elif hi == math.inf:
                hit = x <= lo
            else:
                hit = (x <= lo) | (x >= hi)
            if any_boom:
                hit &= ~boom
            et = torch.where(hit, et.clamp(max=(k0 + j + 1) * dt), et)
        if counts is not None:
            where = potential.basin_index(x) * n + offsets
            flat_counts.index_add_(0, where, (~boom).to(counts.dtype) if any_boom else ones)
    return x, boom, et


def simulate(potential, alpha, eps, dt, steps, n_paths, w0, beta=0.0, record="exit",
             snapshots=None, exit_interval=None, generator=None, device=None, dtype=None,
             progress=True, max_abs=1e6, stabilize=True, chunk_elems=1 << 21):
    r"""Batched Euler–Maruyama for :math:`dw = -f'(w)dt + \varepsilon dL^\alpha_t` (paper
    Eq. 10, discretised as Eq. 8): :math:`w_{k+1} = w_k - dt f'(w_k) + \varepsilon
    dt^{1/\alpha} S_k`, :math:`S_k \sim S_\alpha(\beta, 1)` (S1; α = 2: variance 2).

    Only O(n_paths) state is kept: no trajectories. Noise is drawn for blocks of steps
    (``chunk_elems`` variates at a time); the only Python loop is over steps.

    Parameters
    ----------
    potential : a potential (see the module docstring); ``potential.dim`` = d sets the state
        shape, ``[n_paths]`` for d = 1 and ``[n_paths, d]`` otherwise, with i.i.d. noise
        components.
    alpha : float in (0, 2]; eps : float >= 0 (noise scale ε); dt : float > 0 (time step)
    steps : int >= 1; n_paths : int >= 1
    w0 : start points: float or Tensor [n_paths] (d = 1); Tensor [d] or [n_paths, d]
    beta : float in [-1, 1]
    record : {"exit", "occupancy", "both"}
        "exit": first exit times from ``exit_interval`` (exited paths stop being simulated);
        "occupancy": fraction of path-time in each basin; "both": both, all paths run to the end.
    snapshots : sequence of step indices in [0, steps], optional — states after that many steps.
    exit_interval : (a, b), optional; default the basin :math:`(s_{i-1}, s_i)` holding the
        first path's ``w0`` (d > 1: its box, ``potential.basin_interval``). A path exits at
        the first step with :math:`w \le a` or :math:`w \ge b` (d > 1: in some coordinate;
        a and b scalars or length-d sequences).
    generator : torch.Generator or int seed; device, dtype : see the conventions (dtype None
        follows ``w0`` if it is a floating tensor, else torch's default).
    progress : bool, show a tqdm bar (hidden in non-interactive logs).
    max_abs : float, a path with :math:`|w| >` max_abs or non-finite w is marked exploded and
        frozen at its last finite value; it leaves the statistics from then on.
    stabilize : bool, substep the drift for paths where :math:`dt|f''(w)| > 1` (see
        :func:`_drift`); ``False`` gives plain Euler–Maruyama.

    Returns
    -------
    :class:`LevyRun`
    """
    a = check_real("alpha", alpha, low=0, high=2, low_open=True)
    b = check_real("beta", beta, low=-1, high=1)
    eps = check_real("eps", eps, low=0)
    dt = check_real("dt", dt, low=0, low_open=True)
    steps = check_int("steps", steps, low=1)
    n_paths = check_int("n_paths", n_paths, low=1)
    max_abs = check_real("max_abs", max_abs, low=0, low_open=True)
    record = check_choice("record", record, ("exit", "occupancy", "both"))
    want_exit = record in ("exit", "both")
    want_occ = record in ("occupancy", "both")
    snap_steps = sorted({check_int("snapshots entry", s, low=0, high=steps)
                         for s in snapshots}) if snapshots is not None else []
    dev = resolve_device(device, w0)
    dtp = resolve_dtype(dtype, w0)
    gen = _generator_for(generator, dev)

    d = int(getattr(potential, "dim", 1))
    event = () if d == 1 else (d,)
    w = torch.as_tensor(w0, dtype=dtp, device=dev).clone()
    if w.shape in ((), event):
        w = w.expand((n_paths,) + event).clone()
    if w.shape != (n_paths,) + event:
        allowed = "a scalar" if d == 1 else f"shape ({d},)"
        raise ValueError(f"w0 must be {allowed} or have shape {(n_paths,) + event}, got "
                         f"{tuple(w.shape)}")
    if exit_interval is None:
        exit_interval = potential.basin_interval(int(potential.basin_index(w[:1].cpu())[0]))
    shape = "numbers" if d == 1 else f"numbers or length-{d} sequences"
    try:
        lo, hi = (torch.as_tensor(v, dtype=torch.float64).expand(event) for v in exit_interval)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"exit_interval must be (a, b) with a, b {shape}, got "
                         f"{exit_interval!r}") from None
    if not bool((lo < hi).all()):
        raise ValueError(f"exit_interval must be (a, b) with a < b, got {exit_interval!r}")
    lo, hi = (float(lo), float(hi)) if d == 1 else (lo.to(dev, dtp), hi.to(dev, dtp))

    r = potential.n_basins
    exit_times = torch.full((n_paths,), math.inf, dtype=dtp, device=dev)
    exited = torch.zeros(n_paths, dtype=torch.bool, device=dev)
    exploded = torch.zeros(n_paths, dtype=torch.bool, device=dev)
    counts = torch.zeros(r, n_paths if want_occ else 0, dtype=torch.int32, device=dev)
    snaps: Dict[int, torch.Tensor] = {}
    if 0 in snap_steps:
        snaps[0] = w.clone()
    compact = record == "exit" and not snap_steps
    noise_scale = eps * dt ** (1.0 / a)
    bounds = (_stiff_bounds(potential, dt, max_abs) if stabilize
              else ([-math.inf] * d, [math.inf] * d))

    from tqdm.auto import tqdm
    bar = tqdm(total=steps, disable=None if progress else True, desc="levy.simulate",
               leave=False)
    k = 0
    try:
        while k < steps:
            act = (~exited & ~exploded).nonzero().squeeze(1) if compact else None
            n_act = n_paths if act is None else int(act.numel())
            if n_act == 0:
                break
            K = max(1, min(steps - k, chunk_elems // n_act))
            if snap_steps:   # stop blocks at snapshot steps
                nxt = [s for s in snap_steps if s > k]
                if nxt:
                    K = min(K, nxt[0] - k)
            if eps > 0:
                noise = _stable.sample(a, b, scale=noise_scale, size=(K, n_act) + event,
                                       param="S1",
                                       generator=gen, device=dev, dtype=dtp)
            x = w if act is None else w[act]
            boom = exploded if act is None else exploded[act]
            et = exit_times if act is None else exit_times[act]
            x, boom, et = _run_block(potential, x, boom, et, K, noise if eps > 0 else None, k,
                                     dt, bounds, max_abs, (lo, hi) if want_exit else None,
                                     counts if want_occ else None)
            if act is None:
                w, exploded, exit_times = x, boom, et
            else:
                w[act], exploded[act], exit_times[act] = x, boom, et
            exited = torch.isfinite(exit_times)
            k += K
            if k in snap_steps:
                snaps[k] = torch.where(_col(exploded, w), torch.full_like(w, math.nan), w)
            bar.update(K)
    finally:
        bar.close()

    occ = path_steps = None
    if want_occ:
        path_steps = counts.to(torch.int64).T.contiguous()
        tot = float(path_steps.sum())
        occ = (path_steps.sum(0).double() / tot).to(dtp) if tot > 0 else \
            torch.full((r,), math.nan, dtype=dtp)
    return LevyRun(exit_times=exit_times, exited=exited, occupancy=occ,
                   basin_steps=path_steps, exploded=exploded,
                   n_exploded=int(exploded.sum()), snapshots=snaps if snap_steps else None,
                   steps=steps, dt=dt)


# =============================================================================================
# theory: Theorems 1-2 (Pavlyukevich 2007) and Eyring-Kramers
# =============================================================================================
def levy_measure_constant(alpha) -> float:
    r""":math:`c_\alpha = \Gamma(1+\alpha)\sin(\pi\alpha/2)/\pi`: the Lévy measure of SαS(1)
    (:math:`E e^{i\omega X} = e^{-|\omega|^\alpha}`) is :math:`c_\alpha|y|^{-1-\alpha}dy`, so
    :math:`P(X > x) \sim c_\alpha x^{-\alpha}/\alpha`. 0 at α = 2 (no jumps).

    The constant that the rates of Şimşekli et al. (2019, Eq. 11 and 13) omit (see the module
    docstring); the tail asymptotics are those of Samorodnitsky & Taqqu (1994).

    Parameters
    ----------
    alpha : float
        tail index, in (0, 2].

    Returns
    -------
    float
        :math:`c_\alpha > 0` for α < 2, 0 at α = 2.
    """
    a = check_real("alpha", alpha, low=0, high=2, low_open=True)
    return 0.0 if a == 2.0 else math.gamma(1 + a) * math.sin(math.pi * a / 2) / math.pi


def _check_critical(minima, maxima, min_minima=2):
    """r >= ``min_minima`` minima and r - 1 maxima interleaved m1 < s1 < m2 < ... (as floats)."""
    mins = [float(m) for m in minima]
    maxs = [float(s) for s in maxima]
    if len(mins) < min_minima or len(maxs) != len(mins) - 1:
        raise ValueError(f"need r >= {min_minima} minima and r - 1 maxima, got minima={mins!r}, "
                         f"maxima={maxs!r}")
    pts = [mins[0]]
    for s, m in zip(maxs, mins[1:]):
        pts += [s, m]
    if any(b <= a for a, b in zip(pts, pts[1:])):
        raise ValueError(f"minima and maxima must interleave m1 < s1 < m2 < ..., got "
                         f"minima={mins!r}, maxima={maxs!r}")
    return mins, maxs


def transition_rates(minima, maxima, alpha, eps=None, dtype=torch.float64):
    r"""Generator Q of the limiting Markov chain on the minima (paper Theorem 2, Eq. 13–14):

    .. math::  q_{ij} = \frac1\alpha\Big|\frac1{|s_{j-1}-m_i|^\alpha}
               - \frac1{|s_j-m_i|^\alpha}\Big|,\ j \ne i,\qquad q_{ii} = -\sum_{j\ne i} q_{ij},

    with :math:`s_0 = -\infty`, :math:`s_r = +\infty` (:math:`1/\infty^\alpha = 0`): the
    Lévy-measure mass of the jumps from :math:`m_i` that land in :math:`S_j`.

    Parameters
    ----------
    minima, maxima : interleaved sequences (r and r - 1 entries)
    alpha : float in (0, 2)
    eps : float, optional. ``None``: Q exactly as printed (time in units of
        :math:`\varepsilon^{-\alpha}`, without :math:`c_\alpha`). A number: the rates of
        :func:`simulate`'s process in its own time units, :math:`\varepsilon^\alpha c_\alpha Q`.

    Returns
    -------
    Tensor [r, r] (float64)
    """
    a = check_real("alpha", alpha, low=0, high=2, low_open=True, high_open=True)  # jumps
    mins, maxs = _check_critical(minima, maxima)
    r = len(mins)
    s = [-math.inf] + maxs + [math.inf]

    def inv(x):
        return 0.0 if math.isinf(x) else abs(x) ** (-a)

    Q = torch.zeros(r, r, dtype=dtype)
    for i, m in enumerate(mins):
        for j in range(r):
            if j != i:
                Q[i, j] = abs(inv(s[j] - m) - inv(s[j + 1] - m)) / a
        Q[i, i] = -Q[i].sum()
    if eps is not None:
        e = check_real("eps", eps, low=0, low_open=True)
        Q = Q * (e ** a * levy_measure_constant(a))
    return Q


def stationary_distribution(Q):
    r"""π with :math:`Q^T\pi = 0`, :math:`\sum_i\pi_i = 1` (paper Theorem 2). For two wells
    :math:`m_1 < 0 = s_1 < m_2`: :math:`\pi_2/\pi_1 = (m_2/|m_1|)^\alpha`.

    Returns a float64 Tensor [r].

    Parameters
    ----------
    Q : Tensor or array-like, shape [r, r]
        the generator of a continuous-time Markov chain (off-diagonal rates >= 0, rows summing
        to 0), e.g. from :func:`transition_rates`; any positive multiple gives the same π.

    Returns
    -------
    Tensor
        float64, shape [r]: π, the least-squares solution of :math:`Q^T\pi = 0`,
        :math:`\sum_i\pi_i = 1`.
    """
    Q = torch.as_tensor(Q, dtype=torch.float64)
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
        raise ValueError(f"Q must be a square matrix, got shape {tuple(Q.shape)}")
    r = Q.shape[0]
    A = torch.cat([Q.T, torch.ones(1, r, dtype=Q.dtype)], dim=0)
    rhs = torch.zeros(r + 1, 1, dtype=Q.dtype)
    rhs[-1] = 1.0
    pi = torch.linalg.lstsq(A, rhs).solution.squeeze(1)
    return pi


def mean_exit_time(minima, maxima, alpha, eps, basin=0):
    r"""Small-noise mean time to leave basin ``basin`` (0-based) of Eq. 10 (paper Theorem 1):
    :math:`E T_i \approx 1/(\varepsilon^\alpha c_\alpha q_i)`, in :func:`simulate`'s time units.

    Here :math:`q_i = \sum_{j\ne i} q_{ij}` (paper Eq. 11–12) and :math:`c_\alpha` is
    :func:`levy_measure_constant`.

    Parameters
    ----------
    minima, maxima : sequences of float
        the interleaved minima (r ≥ 2) and maxima (r - 1) of the potential, as in
        :func:`transition_rates`.
    alpha : float
        tail index, in (0, 2) (the theorem needs jumps).
    eps : float > 0
        noise scale ε of :func:`simulate`.
    basin : int
        0-based index of the starting basin, in [0, r - 1] (default 0).

    Returns
    -------
    float
        the predicted mean exit time of basin ``basin``, in the time units of
        :func:`simulate` (multiples of ``dt``, not steps).
    """
    Q = transition_rates(minima, maxima, alpha, eps=eps)
    r = Q.shape[0]
    basin = check_int("basin", basin, low=0, high=r - 1)
    return float(-1.0 / Q[basin, basin])


def kramers_exit_time(barrier_height, curvature_min, curvature_max, eps):
    r"""Eyring–Kramers mean transition time for the Brownian case α = 2 of :func:`simulate`:

    .. math::  E T \approx \frac{2\pi}{\sqrt{f''(m)\,|f''(s)|}}\,e^{H/\varepsilon^2}.

    Convention: :math:`dw = -f'dt + \varepsilon dL^2_t = -f'dt + \sqrt2\varepsilon dB_t`
    (generator :math:`\varepsilon^2\partial^2`), hence :math:`H/\varepsilon^2`; the paper's
    :math:`e^{2H/\varepsilon^2}` is the same formula for :math:`dw = -f'dt + \varepsilon dB`.
    The first time the path reaches the saddle is about half of this (a path at the saddle
    commits to either side with probability 1/2).

    The Brownian contrast of Şimşekli et al. (2019, §2, after Theorem 1), with the constant
    fixed for this convention.

    Parameters
    ----------
    barrier_height : H = f(s) - f(m) > 0
        the depth of the well to be left.
    curvature_min : f''(m) > 0
        curvature at the minimum m.
    curvature_max : f''(s) (sign ignored, nonzero)
        curvature at the saddle (maximum) s.
    eps : noise scale ε > 0
        the ε of :func:`simulate` with α = 2.

    Returns
    -------
    float
        the predicted mean transition time :math:`E T`, in :func:`simulate`'s time units.
    """
    H = check_real("barrier_height", barrier_height, low=0, low_open=True)
    k1 = check_real("curvature_min", curvature_min, low=0, low_open=True)
    k2 = abs(check_real("curvature_max", curvature_max))
    if k2 == 0.0:
        raise ValueError(f"curvature_max must be a nonzero finite number, got {curvature_max!r}")
    e = check_real("eps", eps, low=0, low_open=True)
    return 2 * math.pi / math.sqrt(k1 * k2) * math.exp(H / e ** 2)
