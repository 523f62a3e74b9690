"""The noisy gradient dynamics of Zhu, Wu, Yu, Wu & Ma (ICML 2019), Table 1, and the escaping
efficiency of the Ornstein–Uhlenbeck process near a minimum (their Eq. 13, Proposition 1).

Table 1 compares full-batch gradient descent plus Gaussian noise ("gradient Langevin dynamics",
GLD) whose covariance has a prescribed *structure*, all at the same *magnitude*: the expected
squared norm of the noise, ``E‖ξ‖² = Tr Cov ξ`` (their Eq. 14), here called the **budget**.

=================  ===========================================================================
``kind``           noise ξ per step (budget B = E‖ξ‖²)
=================  ===========================================================================
``"gd"``           0
``"gld_const"``    N(0, B/D · I); B fixed once (the first statistics) — "GLD constant"
``"gld_dynamic"``  N(0, B/D · I), B re-measured at every refresh — "GLD dynamic"
``"gld_diag"``     N(0, B · diag Σ_b / Tr Σ_b) — "GLD diagonal" (= N(0, diag Σ_b) for B = Tr Σ_b)
``"gld_leading"``  N(0, B · Σ̃_k / Tr Σ̃_k), Σ̃_k the top-k eigenpairs of Σ_b — "GLD leading"
``"gld_hessian"``  N(0, B · H̃_k / Tr H̃_k), H̃_k the top-k Hessian eigenpairs — "GLD Hessian"
``"gld_eigvec"``   √B ζ u₁, ζ ~ N(0, 1), u₁ the top Hessian eigenvector — "GLD 1st eigven(H)"
=================  ===========================================================================

SGD itself is :func:`gnilab.train.train` with a ``batch_size`` (``kind="sgd"`` in
:func:`train_dynamics`). D is the number of trainable parameters; Σ_b the covariance of the
gradient of a minibatch of b examples (:func:`gnilab.curvature.gradient_covariance`); H the
Hessian of the full-batch loss (:func:`gnilab.curvature.hessian_eigenpairs`). The budget is a
number (the 2-D toy's ``0.01``: "noise_std = 0.01" in the public code is a trace per step added
to the weights) or ``"trace"``: B = Tr Σ_b measured, as in the FashionMNIST code, so that every
dynamic carries the energy of SGD's noise.

Where the noise enters (``target``):

* ``"gradient"``: ``w ← w − η(∇L + ξ)`` (the FashionMNIST code); ξ in gradient units;
* ``"weights"``: ``w ← w − η∇L + ξ`` (the 2-D code: noise added to the weights after the GD
  step); ξ in weight units. Implemented through the gradient hook as ``∇L − ξ/η``, which is
  exactly this update for the plain SGD optimiser without momentum (the default of
  :func:`gnilab.train.train`; weight decay does not matter), *not* with momentum or adaptive
  optimisers, and only when ``lr`` is the step size actually used (no ``lr_schedule``).

The expensive statistics (Σ_b, eigenpairs) are recomputed every ``refresh`` steps; the noise is
resampled every step (or, with ``noise_on_refresh_only=True``, drawn on refresh steps only and 0
in between, as the public ``gld_lead.py`` does).

The second half: for ``dθ = −Hθ dt + √η Σ^{1/2} dW`` started at the minimum θ = 0 of
``L(θ) = ½ θᵀHθ`` (their Eq. 12 with η written out; the paper absorbs η into Σ, Eq. 9),

    E[L(θ_t) − L(0)] = ¼ η Tr[(I − e^{−2Ht}) Σ] ≈ ½ η t Tr(HΣ)   (Eq. 13),

because Cov θ_t = η ∫₀ᵗ e^{−Hs} Σ e^{−Hs} ds and ½ Tr(H ∫₀ᵗ e^{−2Hs} ds Σ) = ¼ Tr[(I − e^{−2Ht})Σ].
Its limit t → ∞ is ¼ η Tr(P Σ), P the projection on the range of H (¼ η Tr Σ for H ≻ 0): at
equal Tr Σ the structure of the noise changes how *fast* the loss rises (rate ½ η Tr(HΣ)), not
where it ends. :func:`ou_escaping_efficiency`, :func:`simulate_ou` (Euler–Maruyama or the exact
Gaussian transition, many paths) and :func:`compare_alignment` (Σ ∝ H vs isotropic vs rank-1
at equal trace).

Finally a batched functional version of the 2-D toy of §3.2 (sharp minimum at (1, 1), flat at
(−1, −1)): :class:`Toy2D`, :func:`toy2d_data`, :func:`toy2d_escape`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ._common.checks import (as_float64, check_bool, check_choice, check_generator, check_int,
                          check_real)
from .curvature import dense_hessian, gradient_covariance, hessian_eigenpairs

__all__ = [
    "KINDS",
    "GLDNoise",
    "gld_noise",
    "train_dynamics",
    "ou_escaping_efficiency",
    "ou_escaping_limit",
    "OUSimulation",
    "simulate_ou",
    "AlignmentComparison",
    "compare_alignment",
    "Toy2D",
    "toy2d_loss",
    "toy2d_losses",
    "toy2d_data",
    "EscapeResult",
    "toy2d_escape",
]

#: The dynamics of Table 1 implemented as injected noise (SGD is ``train`` with a batch size).
KINDS = ("gd", "gld_const", "gld_dynamic", "gld_diag", "gld_leading", "gld_hessian", "gld_eigvec")

_NEEDS_COV = ("gld_diag", "gld_leading")
_NEEDS_HESS = ("gld_hessian", "gld_eigvec")
LossLike = Union[str, Callable[..., torch.Tensor]]


def _check_generator(generator) -> Optional[torch.Generator]:
    return check_generator("generator", generator)


def _normal(shape, generator, device, dtype) -> torch.Tensor:
    """Standard normals drawn on the CPU (float64) from ``generator``, then moved: a seeded run
    gives the same draws on CPU and CUDA."""
    if generator is not None and generator.device.type != "cpu":
        return torch.randn(shape, generator=generator, device=generator.device,
                           dtype=torch.float64).to(device, dtype)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(device, dtype)


def _check_budget(budget):
    if isinstance(budget, str):
        return check_choice("budget", budget, ("trace",))
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.floating, np.integer)):
        raise TypeError(f"budget must be a number > 0 or 'trace', got {budget!r} "
                        f"({type(budget).__name__})")
    return check_real("budget", budget, low=0, low_open=True)


# --------------------------------------------------------------------------------------------
# the dynamics of Table 1 as a gradient hook
# --------------------------------------------------------------------------------------------

class GLDNoise:
    """Noise of one dynamic of Zhu et al.'s Table 1, injected through
    ``gnilab.train.train(..., grad_hook=GLDNoise(...))`` (full-batch GD plus noise).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS` (see the module docstring for each covariance).
    data
        The training set (tensors ``x`` and ``y``), on which Σ_b and H are measured.
    loss : str or callable
        As in :func:`gnilab.train.get_loss` (mean over examples).
    budget : float or "trace"
        B = E‖ξ‖² per step (Eq. 14), in the units of ``target`` (gradient or weight units). A
        number is used as is; ``"trace"`` measures B = Tr Σ_b at each refresh (for
        ``"gld_const"`` once, at the first step), times η² when ``target="weights"`` (SGD's
        own weight noise, −η(g_B − g), has covariance η²Σ_b).
    target : {"gradient", "weights"}
        ``w ← w − η(∇L + ξ)`` or ``w ← w − η∇L + ξ`` (the latter adds −ξ/η to the gradient:
        exact for plain SGD without momentum only).
    lr : float, optional
        η, needed for ``target="weights"``.
    k : int
        Eigenpairs kept by ``"gld_leading"`` (of Σ_b) and ``"gld_hessian"`` (of H); 1 ≤ k ≤ D
        (and ≤ the number of gradients behind Σ_b for ``"gld_leading"``). The FashionMNIST code
        uses 20.
    refresh : int
        Recompute the statistics every ``refresh`` steps (10 in the FashionMNIST code for the
        leading and Hessian dynamics; 1 in the 2-D code); the noise is resampled every step.
    noise_on_refresh_only : bool
        Inject noise on refresh steps only, 0 in between (the public ``gld_lead.py``).
    batch_size : int
        b of Σ_b (1: per-example covariance, as in the 2-D code; 20 in the FashionMNIST code).
    cov_method : {"exact", "sampled"}
        How Σ_b is measured (:func:`gnilab.curvature.gradient_covariance`; ``"sampled"`` with
        ``ddof=1`` is the estimate of the FashionMNIST code, one random partition).
    ddof : int
        0 or 1, see :func:`gnilab.curvature.gradient_covariance`.
    lanczos_tol : float
        Relative residual of the Hessian eigenpairs (:func:`gnilab.curvature.lanczos`; used
        when D > max(10k, k + 100), below which the dense Hessian of
        :func:`gnilab.curvature.dense_hessian` and ``eigh`` cost no more products).
    chunk_size : int, optional
        Passed to the curvature routines (memory bound).
    generator : torch.Generator, optional
        Draws the noise (standard normals on the CPU, then moved to the model's device), the
        Lanczos start vectors and the ``"sampled"`` partitions.

    Notes
    -----
    Calling the object as ``hook(step, model)`` adds the noise to the ``.grad`` of the model's
    trainable parameters and returns a record: ``kind``, ``noise_sq`` (‖ξ‖², target units),
    ``budget`` (B in force), ``trace_sigma`` (last measured Tr Σ_b, NaN if never),
    ``refreshed`` (bool) and ``stats_time`` (seconds spent on statistics at this step).
    :meth:`update` and :meth:`sample` give access to the statistics and draws without a step.

    For ``"gld_hessian"`` negative Ritz values (a saddle) are set to 0 before the rescaling;
    if all k are ≤ 0 the budget is spread evenly over the k eigenvectors.
    """

    def __init__(self, kind: str, data, loss: LossLike = "cross_entropy", *,
                 budget: Union[float, str] = "trace", target: str = "gradient",
                 lr: Optional[float] = None, k: int = 20, refresh: int = 1,
                 noise_on_refresh_only: bool = False, batch_size: int = 1,
                 cov_method: str = "exact", ddof: int = 0, lanczos_tol: float = 1e-6,
                 chunk_size: Optional[int] = None,
                 generator: Optional[torch.Generator] = None):
        self.kind = check_choice("kind", kind, KINDS)
        if not (hasattr(data, "x") and hasattr(data, "y")):
            raise TypeError(f"data must have tensors x and y, got {type(data).__name__}")
        self.data, self.loss = data, loss
        self.budget_arg = _check_budget(budget)
        self.target = check_choice("target", target, ("gradient", "weights"))
        if lr is None:
            if target == "weights":
                raise ValueError("lr (the step size η) is required for target='weights'")
            self.lr = None
        else:
            self.lr = check_real("lr", lr, low=0, low_open=True)
        self.k = check_int("k", k, low=1)
        self.refresh = check_int("refresh", refresh, low=1)
        self.noise_on_refresh_only = check_bool("noise_on_refresh_only", noise_on_refresh_only)
        self.batch_size = check_int("batch_size", batch_size, low=1, high=len(data.y))
        self.cov_method = check_choice("cov_method", cov_method, ("exact", "sampled"))
        self.ddof = check_int("ddof", ddof, low=0, high=1)
        self.lanczos_tol = check_real("lanczos_tol", lanczos_tol, low=0, high=1, low_open=True,
                                      high_open=True)
        self.chunk_size = None if chunk_size is None else check_int("chunk_size", chunk_size,
                                                                    low=1)
        self.generator = _check_generator(generator)
        self.reset()

    # -- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the statistics (the next call recomputes them)."""
        self.last_refresh: Optional[int] = None
        self.budget: float = float("nan")
        self.trace_sigma: float = float("nan")
        self.basis: Optional[torch.Tensor] = None    # [D, m] directions (None: coordinatewise)
        self.scales: Optional[torch.Tensor] = None   # [m] or [D] standard deviations
        self.last_noise: Optional[torch.Tensor] = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return (f"GLDNoise(kind={self.kind!r}, budget={self.budget_arg!r}, target={self.target!r}, "
                f"k={self.k}, refresh={self.refresh}, batch_size={self.batch_size})")

    @staticmethod
    def _params(model: nn.Module):
        ps = [p for p in model.parameters() if p.requires_grad]
        if not ps:
            raise ValueError("model has no trainable parameters")
        return ps

    def _measured_budget(self, trace_sigma: float) -> float:
        return trace_sigma * (self.lr ** 2 if self.target == "weights" else 1.0)

    def update(self, model: nn.Module) -> float:
        """Recompute the statistics at the model's current parameters; returns the seconds it
        took."""
        t0 = time.perf_counter()
        params = self._params(model)
        dim = sum(p.numel() for p in params)
        device, dtype = params[0].device, params[0].dtype
        kind = self.kind
        self.refreshes += 1
        if kind == "gd":
            self.budget, self.basis, self.scales = 0.0, None, None
            return time.perf_counter() - t0
        fixed = not isinstance(self.budget_arg, str)
        need_trace = not fixed and not (kind == "gld_const" and self.refreshes > 1)
        cov = None
        if kind in _NEEDS_COV or need_trace:
            cov = gradient_covariance(model, self.data, self.loss, batch_size=self.batch_size,
                                      method=self.cov_method, ddof=self.ddof,
                                      generator=self.generator, chunk_size=self.chunk_size)
            self.trace_sigma = cov.trace()
        if fixed:
            self.budget = float(self.budget_arg)
        elif need_trace:
            self.budget = self._measured_budget(self.trace_sigma)
        budget = self.budget
        if kind in ("gld_const", "gld_dynamic"):
            self.basis = None
            self.scales = torch.full((dim,), math.sqrt(budget / dim), device=device, dtype=dtype)
        elif kind == "gld_diag":
            d = cov.diagonal().double()
            tot = float(d.sum())
            w = d / tot if tot > 0 else torch.full_like(d, 1.0 / dim)
            self.basis, self.scales = None, (budget * w).sqrt().to(device, dtype)
        elif kind == "gld_leading":
            limit = min(dim, cov.rank_bound)
            if self.k > limit:
                raise ValueError(f"k must be an integer in [1, {limit}] for gld_leading (D = "
                                 f"{dim}, {cov.rank_bound} gradients behind Σ_b), got {self.k}")
            eig = cov.eigenpairs(self.k)
            self._set_lowrank(eig.values, eig.vectors, budget, device, dtype)
        else:   # Hessian kinds
            k = 1 if kind == "gld_eigvec" else self.k
            if k > dim:
                raise ValueError(f"k must be an integer in [1, {dim}] (D = {dim}), got {k}")
            values, vectors = self._hessian_top(model, k, dim)
            if kind == "gld_eigvec":
                self.basis = vectors[:, :1].to(device, dtype)
                self.scales = torch.full((1,), math.sqrt(budget), device=device, dtype=dtype)
            else:
                self._set_lowrank(values, vectors, budget, device, dtype)
        return time.perf_counter() - t0

    def _hessian_top(self, model: nn.Module, k: int, dim: int):
        """Top-k Hessian eigenpairs: the dense Hessian and ``eigh`` when D is no larger than
        the Krylov space Lanczos would build anyway (max(10k, k + 100) products; it also copes
        with repeated eigenvalues, e.g. H = 2I in the toy's flat basin), else Lanczos."""
        if dim <= max(10 * k, k + 100):
            h = dense_hessian(model, self.data, self.loss, chunk_size=self.chunk_size,
                              dtype=torch.float64)
            lam, vec = torch.linalg.eigh(h)
            return lam.flip(0)[:k], vec.flip(1)[:, :k]
        eig = hessian_eigenpairs(model, self.data, k, self.loss, tol=self.lanczos_tol,
                                 chunk_size=self.chunk_size, generator=self.generator)
        return eig.values, eig.vectors

    def _set_lowrank(self, values, vectors, budget, device, dtype) -> None:
        lam = values.double().clamp_min(0.0).cpu()
        tot = float(lam.sum())
        w = lam / tot if tot > 0 else torch.full_like(lam, 1.0 / lam.numel())
        self.basis = vectors.to(device, torch.float64)
        self.basis = (self.basis / self.basis.norm(dim=0).clamp_min(1e-300)).to(dtype)
        self.scales = (budget * w).sqrt().to(device, dtype)

    def sample(self, n: Optional[int] = None) -> torch.Tensor:
        """Draws from the current noise law: ``[D]`` (``n=None``) or ``[n, D]``, in target units.
        Call :meth:`update` (or one step) first."""
        if self.scales is None and self.kind != "gd":
            raise RuntimeError("no statistics yet: call update(model) or run one step first")
        shape = () if n is None else (check_int("n", n, low=1),)
        if self.kind == "gd":
            raise RuntimeError("kind='gd' injects no noise")
        if self.basis is None:
            z = _normal(shape + (self.scales.numel(),), self.generator, self.scales.device,
                        self.scales.dtype)
            return z * self.scales
        z = _normal(shape + (self.scales.numel(),), self.generator, self.scales.device,
                    self.scales.dtype)
        return (z * self.scales) @ self.basis.T

    def __call__(self, step: int, model: nn.Module) -> dict:
        params = self._params(model)
        refreshed = self.last_refresh is None or step - self.last_refresh >= self.refresh
        stats_time = 0.0
        if refreshed:
            stats_time = self.update(model)
            self.last_refresh = step
        row = {"kind": self.kind, "noise_sq": 0.0, "budget": self.budget,
               "trace_sigma": self.trace_sigma, "refreshed": bool(refreshed),
               "stats_time": stats_time}
        if self.kind == "gd" or (self.noise_on_refresh_only and not refreshed):
            self.last_noise = None
            return row
        xi = self.sample()
        self.last_noise = xi
        row["noise_sq"] = float(xi.double().pow(2).sum())
        g = xi if self.target == "gradient" else -xi / self.lr
        offset = 0
        with torch.no_grad():
            for p in params:
                piece = g[offset:offset + p.numel()].view_as(p).to(p.dtype)
                offset += p.numel()
                if p.grad is None:
                    p.grad = piece.clone()
                else:
                    p.grad.add_(piece)
        return row


def gld_noise(kind: str, data, loss: LossLike = "cross_entropy", **kwargs) -> GLDNoise:
    """:class:`GLDNoise` (the grad hook of one dynamic of Zhu et al.'s Table 1).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    data
        The training set (tensors ``x`` and ``y``), on which Σ_b and H are measured.
    loss : str or callable
        As in :func:`gnilab.train.get_loss` (mean over examples).
    **kwargs
        The keyword arguments of :class:`GLDNoise` (``budget``, ``target``, ``lr``, ``k``,
        ``refresh``, ...).

    Returns
    -------
    GLDNoise
        The hook, to pass as ``gnilab.train.train(..., grad_hook=...)``.
    """
    return GLDNoise(kind, data, loss, **kwargs)


def train_dynamics(model: nn.Module, data, kind: str, *, steps: int, lr: float,
                   loss: LossLike = "cross_entropy", budget: Union[float, str] = "trace",
                   target: str = "gradient", k: int = 20, refresh: int = 1,
                   noise_on_refresh_only: bool = False, batch_size: int = 1,
                   cov_method: str = "exact", ddof: int = 0,
                   generator: Optional[torch.Generator] = None, **train_kwargs):
    """Run one dynamic of Zhu et al.'s Table 1 with :func:`gnilab.train.train`.

    ``kind="sgd"``: minibatch SGD with ``batch_size`` (no injected noise); any of
    :data:`KINDS`: full-batch GD plus the noise of :class:`GLDNoise` (``batch_size`` is then
    the b of Σ_b that ``budget="trace"`` measures). Other keyword arguments
    (``test_data``, ``eval_every``, ``progress``, …) go to :func:`gnilab.train.train`;
    ``optimizer``/``momentum`` other than plain SGD are refused with ``target="weights"``.

    Parameters
    ----------
    model : nn.Module
        The model to train (its parameters are updated in place by ``train``).
    data
        The training set (tensors ``x`` and ``y``).
    kind : str
        ``"sgd"`` or one of :data:`KINDS`.
    steps : int
        Number of optimiser steps.
    lr : float
        η, the step size (> 0).
    loss : str or callable
        As in :func:`gnilab.train.get_loss` (mean over examples).
    budget : float or "trace"
        B = E‖ξ‖² per step (Eq. 14), see :class:`GLDNoise`.
    target : {"gradient", "weights"}
        Where the noise enters, see :class:`GLDNoise`.
    k : int
        Eigenpairs kept by ``"gld_leading"`` and ``"gld_hessian"``, see :class:`GLDNoise`.
    refresh : int
        Recompute the statistics every ``refresh`` steps (≥ 1).
    noise_on_refresh_only : bool
        Inject noise on refresh steps only, 0 in between.
    batch_size : int
        The minibatch size of SGD (``kind="sgd"``), else the b of Σ_b; in [1, n].
    cov_method : {"exact", "sampled"}
        How Σ_b is measured (:func:`gnilab.curvature.gradient_covariance`).
    ddof : int
        0 or 1, see :func:`gnilab.curvature.gradient_covariance`.
    generator : torch.Generator, optional
        Drives the minibatches (``"sgd"``) or the noise and its statistics (GLD kinds).
    **train_kwargs
        Passed on to :func:`gnilab.train.train`.

    Returns
    -------
    gnilab.train.TrainResult
        Its ``records`` hold one row per step with the injected ‖ξ‖², the budget and the time
        spent on statistics (see :class:`GLDNoise`).
    """
    from .train import train

    check_choice("kind", kind, KINDS + ("sgd",))
    generator = _check_generator(generator)
    if kind == "sgd":
        b = check_int("batch_size", batch_size, low=1, high=len(data.y))
        return train(model, data, steps=steps, lr=lr, batch_size=b, loss=loss,
                     generator=generator, **train_kwargs)
    if target == "weights" and (train_kwargs.get("optimizer", "sgd") != "sgd"
                                or train_kwargs.get("momentum", 0.0) != 0.0
                                or train_kwargs.get("lr_schedule") is not None):
        raise ValueError("target='weights' needs plain SGD (optimizer='sgd', momentum=0, no "
                         "lr_schedule): the noise is added to the gradient as -ξ/η")
    hook = GLDNoise(kind, data, loss, budget=budget, target=target, lr=lr, k=k, refresh=refresh,
                    noise_on_refresh_only=noise_on_refresh_only, batch_size=batch_size,
                    cov_method=cov_method, ddof=ddof, generator=generator)
    return train(model, data, steps=steps, lr=lr, batch_size=None, loss=loss, grad_hook=hook,
                 **train_kwargs)


# --------------------------------------------------------------------------------------------
# Ornstein–Uhlenbeck escaping efficiency (Eq. 13)
# --------------------------------------------------------------------------------------------

def _sym(name: str, a) -> torch.Tensor:
    t = as_float64(a)
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    t = t.detach().double().cpu()    # small dense matrices: the closed forms run on the CPU
    return 0.5 * (t + t.T)


def _pair(hessian, sigma):
    h, s = _sym("hessian", hessian), _sym("sigma", sigma)
    if h.shape != s.shape:
        raise ValueError(f"hessian and sigma must have the same shape, got {tuple(h.shape)} and "
                         f"{tuple(s.shape)}")
    lam, u = torch.linalg.eigh(h)
    scale = max(float(lam.abs().max()), 1e-300)
    if float(lam.min()) < -1e-10 * scale:
        raise ValueError(f"hessian must be positive semi-definite (a minimum), smallest "
                         f"eigenvalue {float(lam.min()):g}")
    if float(torch.linalg.eigvalsh(s).min()) < -1e-10 * max(float(s.diagonal().abs().max()),
                                                            1e-300):
        raise ValueError("sigma must be positive semi-definite")
    return lam.clamp_min(0.0), u, s


def _times(t) -> torch.Tensor:
    tt = as_float64(t).cpu()
    if not torch.isfinite(tt).all() or (tt < 0).any():
        raise ValueError(f"t must be finite and >= 0, got {t!r}")
    return tt


def ou_escaping_efficiency(hessian, sigma, t, lr: float = 1.0) -> torch.Tensor:
    """Escaping efficiency of the OU process near a minimum, Zhu et al. Eq. 13, in closed form.

    For ``dθ = −Hθ dt + √η Σ^{1/2} dW``, θ₀ = 0, ``L(θ) = ½ θᵀHθ``:

        E[L(θ_t) − L(0)] = ¼ η Tr[(I − e^{−2Ht}) Σ]

    (the paper writes Eq. 9 with η absorbed into Σ, i.e. ``lr=1``; for small t it is
    ≈ ½ η t Tr(HΣ)). Derivation: Cov θ_t = η ∫₀ᵗ e^{−Hs}Σe^{−Hs} ds, so E L = ½ Tr(H Cov θ_t)
    = ½ η Tr(∫₀ᵗ He^{−2Hs} ds Σ) = ¼ η Tr[(I − e^{−2Ht})Σ].

    Parameters
    ----------
    hessian, sigma : array-like ``[D, D]``
        H (symmetric positive semi-definite) and the diffusion covariance Σ (PSD).
    t : float or array-like
        Time(s) ≥ 0 (units of the SDE: t = steps × η for SGD with step η).
    lr : float
        η (> 0).

    Returns
    -------
    Tensor (float64), the shape of ``t``.
    """
    lr = check_real("lr", lr, low=0, low_open=True)
    lam, u, s = _pair(hessian, sigma)
    tt = _times(t)
    sdiag = torch.diagonal(u.T @ s @ u)            # (UᵀΣU)_ii
    factor = -torch.expm1(-2.0 * lam * tt.reshape(tt.shape + (1,)))   # 1 − e^{−2λt}
    return 0.25 * lr * (factor * sdiag).sum(-1)


def ou_escaping_limit(hessian, sigma, lr: float = 1.0) -> float:
    """t → ∞ limit of Eq. 13: ¼ η Tr(P Σ), P the projection on the range of H (¼ η Tr Σ for
    H ≻ 0): every Σ of the same trace ends at the same expected loss; only the rate differs.

    Parameters
    ----------
    hessian, sigma : array-like ``[D, D]``
        H (symmetric positive semi-definite) and the diffusion covariance Σ (PSD).
    lr : float
        η (> 0).

    Returns
    -------
    float
        ``lim E[L(θ_t) − L(0)]`` as t → ∞, in loss units (eigenvalues of H below 10⁻¹² of the
        largest count as 0).
    """
    lr = check_real("lr", lr, low=0, low_open=True)
    lam, u, s = _pair(hessian, sigma)
    sdiag = torch.diagonal(u.T @ s @ u)
    tol = 1e-12 * max(float(lam.max()), 1e-300)
    return float(0.25 * lr * sdiag[lam > tol].sum())


@dataclass(frozen=True)
class OUSimulation:
    """Monte Carlo escaping efficiency of the OU process (Zhu et al. 2019, Eqs. 12–13).

    Attributes
    ----------
    times : Tensor ``[m]``
        Times at which the paths were recorded (t = 0 included).
    mean : Tensor ``[m]``
        Average of L(θ_t) − L(0) = ½ θ_tᵀHθ_t over the paths.
    stderr : Tensor ``[m]``
        Its standard error (sample std / √paths).
    paths : int
        Number of simulated paths.
    method : str
        ``"euler"`` (Euler–Maruyama, bias O(λ dt) relative) or ``"exact"`` (Gaussian transition).
    final : Tensor ``[paths, D]``
        θ at the last time.
    """

    times: torch.Tensor
    mean: torch.Tensor
    stderr: torch.Tensor
    paths: int
    method: str
    final: torch.Tensor


def simulate_ou(hessian, sigma, t: float, *, steps: int = 1000, paths: int = 10000,
                lr: float = 1.0, method: str = "euler", record_every: int = 1,
                device=None, dtype=torch.float64,
                generator: Optional[torch.Generator] = None) -> OUSimulation:
    """Simulate ``dθ = −Hθ dt + √η Σ^{1/2} dW``, θ₀ = 0, on [0, t] with ``paths`` paths.

    ``method="euler"``: Euler–Maruyama, ``θ ← θ − Hθ Δ + √(ηΔ) Σ^{1/2} z`` (Δ = t/steps);
    ``method="exact"``: the exact Gaussian transition in the eigenbasis of H = U Λ Uᵀ,
    ``φ ← e^{−ΛΔ} φ + N(0, Q)``, ``Q_ij = η S_ij (1 − e^{−(λ_i+λ_j)Δ}) / (λ_i + λ_j)``,
    S = UᵀΣU (Q_ij = η S_ij Δ where λ_i + λ_j = 0). Used to check Eq. 13
    (:func:`ou_escaping_efficiency`).

    Parameters
    ----------
    hessian, sigma : array-like ``[D, D]``
    t : float
        Horizon (> 0).
    steps, paths, record_every : int
    lr : float
        η.
    device, dtype
        Where the paths live (default: the CPU, float64). Normals are drawn on the CPU from
        ``generator`` and moved.
    generator : torch.Generator, optional
        Draws the Gaussian increments.

    Returns
    -------
    OUSimulation
        The recorded times (every ``record_every`` steps and at t, t = 0 included), the mean
        of L(θ_t) − L(0) over the paths with its standard error, and θ at time t.
    """
    lr = check_real("lr", lr, low=0, low_open=True)
    t = check_real("t", t, low=0, low_open=True)
    steps = check_int("steps", steps, low=1)
    paths = check_int("paths", paths, low=2)
    record_every = check_int("record_every", record_every, low=1)
    check_choice("method", method, ("euler", "exact"))
    generator = _check_generator(generator)
    device = torch.device("cpu") if device is None else torch.device(device)
    lam, u, s = _pair(hessian, sigma)
    dim = lam.numel()
    dt = t / steps
    if method == "euler":
        h = (u * lam) @ u.T
        ls, us = torch.linalg.eigh(s)
        root = (us * ls.clamp_min(0).sqrt()) @ us.T       # Σ^{1/2}
        a = (torch.eye(dim, dtype=torch.float64) - dt * h)  # θ ← θ (I − HΔ) + noise
        noise_t = math.sqrt(lr * dt) * root
        hq = h
    else:
        su = u.T @ s @ u
        tot = lam[:, None] + lam[None, :]
        safe = torch.where(tot > 0, tot, torch.ones_like(tot))
        q = lr * su * torch.where(tot > 0, -torch.expm1(-tot * dt) / safe,
                                  torch.full_like(tot, dt))
        lq, uq = torch.linalg.eigh(0.5 * (q + q.T))
        noise_t = (uq * lq.clamp_min(0).sqrt()) @ uq.T
        a = torch.diag(torch.exp(-lam * dt))
        hq = torch.diag(lam)                                 # L in the eigen-coordinates
    a, noise_t, hq = (m.to(device, dtype) for m in (a, noise_t, hq))
    theta = torch.zeros(paths, dim, device=device, dtype=dtype)
    times, means, ses = [0.0], [0.0], [0.0]
    for i in range(1, steps + 1):
        z = _normal((paths, dim), generator, device, dtype)
        theta = theta @ a.T + z @ noise_t.T
        if i % record_every == 0 or i == steps:
            loss = 0.5 * ((theta @ hq) * theta).sum(1).double()
            times.append(i * dt)
            means.append(float(loss.mean()))
            ses.append(float(loss.std() / math.sqrt(paths)))
    final = theta if method == "euler" else theta @ u.to(device, dtype).T
    return OUSimulation(torch.tensor(times, dtype=torch.float64),
                        torch.tensor(means, dtype=torch.float64),
                        torch.tensor(ses, dtype=torch.float64), paths, method, final)


@dataclass(frozen=True)
class AlignmentComparison:
    """Eq. 13 for three noise covariances of the same trace T (Eq. 14).

    Attributes
    ----------
    times : Tensor ``[m]``
    aligned, isotropic, top_eigvec : Tensor ``[m]``
        E[L(θ_t) − L(0)] for Σ = T·H/Tr H (aligned, â = 1 in Eq. 16), Σ̄ = T/D·I and
        Σ* = T·u₁u₁ᵀ (the maximiser of Tr(HΣ) at fixed trace).
    indicator_aligned, indicator_isotropic, indicator_top : float
        Tr(HΣ) of each (the initial rate is ½ η Tr(HΣ)).
    ratio : float
        Tr(HΣ) / Tr(HΣ̄) for the aligned Σ: D Tr(H²) / (Tr H)² (Eq. 17's left side).
    limit : float
        The common t → ∞ value ¼ η T (H ≻ 0).
    """

    times: torch.Tensor
    aligned: torch.Tensor
    isotropic: torch.Tensor
    top_eigvec: torch.Tensor
    indicator_aligned: float
    indicator_isotropic: float
    indicator_top: float
    ratio: float
    limit: float


def compare_alignment(hessian, t, trace: float = 1.0, lr: float = 1.0) -> AlignmentComparison:
    """Escaping efficiency (Eq. 13) of noise aligned with H (Σ ∝ H) against its isotropic
    equivalence and the rank-1 optimum, all with Tr Σ = ``trace`` (Zhu et al. §3.2,
    Proposition 1).

    Parameters
    ----------
    hessian : array-like ``[D, D]``
        H, symmetric positive semi-definite with Tr H > 0.
    t : float or array-like
        Time(s) ≥ 0 (units of the SDE).
    trace : float
        T = Tr Σ (> 0), the common noise energy (Eq. 14).
    lr : float
        η (> 0).

    Returns
    -------
    AlignmentComparison
        The three escaping-efficiency curves, their indicators Tr(HΣ), the ratio of Eq. 17
        and the common limit.
    """
    trace = check_real("trace", trace, low=0, low_open=True)
    lr = check_real("lr", lr, low=0, low_open=True)
    h = _sym("hessian", hessian)
    lam, u = torch.linalg.eigh(h)
    th = float(lam.sum())
    if th <= 0:
        raise ValueError(f"hessian must have a positive trace, got {th:g}")
    dim = h.shape[0]
    s_al = trace * h / th
    s_iso = trace / dim * torch.eye(dim, dtype=h.dtype, device=h.device)
    u1 = u[:, -1:]
    s_top = trace * (u1 @ u1.T)
    tt = _times(t)
    eff = [ou_escaping_efficiency(h, s, tt, lr) for s in (s_al, s_iso, s_top)]
    ind = [float(torch.trace(h @ s)) for s in (s_al, s_iso, s_top)]
    return AlignmentComparison(tt.reshape(-1) if tt.dim() else tt.reshape(1), *eff, *ind,
                               ind[0] / ind[1], ou_escaping_limit(h, s_al, lr))


# --------------------------------------------------------------------------------------------
# the 2-D toy of §3.2 (Zhu et al. Fig. 2)
# --------------------------------------------------------------------------------------------

_THETA = math.pi / 4


def _toy_per_example(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """ℓ(w; x) for ``w [..., 2]`` and ``x [..., n, 2]`` → ``[..., n]``."""
    k1, k2 = math.cos(_THETA), math.sin(_THETA)
    d = w.unsqueeze(-2) - x
    a, b = d[..., 0] - 1.0, d[..., 1] - 1.0
    c, e = d[..., 0] + 1.0, d[..., 1] + 1.0
    sharp = 10.0 * (k1 * a - k2 * b) ** 2 + 100.0 * (k1 * a + k2 * b) ** 2
    flat = c ** 2 + e ** 2
    return torch.minimum(sharp, flat)


def toy2d_losses(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The per-example losses ℓ(w; x_i) of the 2-D toy (see :class:`Toy2D`) for many w at
    once: ``w [..., 2]``, ``x [n, 2]`` (or ``[..., n, 2]``) → ``[..., n]``; e.g. the landscape
    on a grid is ``toy2d_losses(grid, x).mean(-1)`` (the toy of Zhu et al. 2019, Fig. 2).

    Parameters
    ----------
    w : Tensor ``[..., 2]``
        Parameter points.
    x : Tensor ``[n, 2]`` or ``[..., n, 2]``
        Data points (broadcast against ``w``).

    Returns
    -------
    Tensor ``[..., n]``
        ℓ(w; x_i) for every w and example i.
    """
    return _toy_per_example(torch.as_tensor(w), torch.as_tensor(x))


class Toy2D(nn.Module):
    """The 2-D loss of Zhu et al.'s public code (``2Dim/model.py``) as a module with parameter
    ``w`` ``[2]``; ``forward(x [n, 2])`` returns the per-example losses ``[n]``:

        ℓ(w; x) = min{10(K₁a − K₂b)² + 100(K₁a + K₂b)², c² + d²},
        a = w₁ − x₁ − 1, b = w₂ − x₂ − 1, c = w₁ − x₁ + 1, d = w₂ − x₂ + 1, K = (cos π/4, sin π/4).

    Sharp minimum near (1, 1) (Hessian eigenvalues 200 along (1, 1)/√2 and 20 along
    (1, −1)/√2), flat minimum near (−1, −1) (Hessian 2I). Train it with ``loss=toy2d_loss``.
    This is the 2-D toy of Zhu et al. (2019), §3.2 and Fig. 2.

    Parameters
    ----------
    w0 : sequence of 2 floats or Tensor
        The initial parameter w (default (1, 1), the sharp minimum).
    dtype : torch.dtype, optional
        Dtype of ``w``; default torch's default dtype.
    device : torch.device or str, optional
        Device of ``w``.
    """

    def __init__(self, w0=(1.0, 1.0), dtype=None, device=None):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w0, dtype=dtype or torch.get_default_dtype(),
                                              device=device).clone().reshape(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _toy_per_example(self.w, x)


def toy2d_loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean"):
    """The loss to pair with :class:`Toy2D` (its output already is the per-example loss; the
    target is ignored), for Zhu et al.'s (2019) 2-D toy of Fig. 2.

    Parameters
    ----------
    output : Tensor ``[n]``
        Per-example losses, the output of :class:`Toy2D`.
    target : Tensor
        Ignored.
    reduction : {"mean", "sum", "none"}
        How the per-example losses are reduced (``"none"``: returned as they are).

    Returns
    -------
    Tensor
        A scalar (``"mean"``, ``"sum"``) or ``output`` itself (``"none"``).
    """
    if reduction == "none":
        return output
    return output.sum() if reduction == "sum" else output.mean()


def toy2d_data(n: int = 100, runs: Optional[int] = None, *, device=None, dtype=None,
               generator: Optional[torch.Generator] = None):
    """The toy's data (``2Dim/run.py``): ``x = (z · [√10, 1]) Kᵀ · 10⁻²``, z ~ N(0, I₂), K the
    rotation by π/4 — variance 10⁻³ along (1, −1)/√2 and 10⁻⁴ along (1, 1)/√2.

    Returns an :class:`gnilab.data.ArrayDataset` (``y`` zeros) when ``runs`` is None, else a
    tensor ``[runs, n, 2]`` (one data set per run, as the code re-draws them). The data of
    Zhu et al.'s (2019) Fig. 2.

    Parameters
    ----------
    n : int
        Number of examples per data set (≥ 2).
    runs : int, optional
        Number of independent data sets (≥ 1); ``None``: one, as a data set object.
    device : torch.device or str, optional
        Device of the result.
    dtype : torch.dtype, optional
        Dtype of the result; default torch's default dtype.
    generator : torch.Generator, optional
        Draws z (float64, on the CPU).

    Returns
    -------
    gnilab.data.ArrayDataset or Tensor
        The data set (``x`` ``[n, 2]``, ``y`` zeros ``[n]``) or the points ``[runs, n, 2]``.
    """
    from .data import ArrayDataset

    n = check_int("n", n, low=2)
    generator = _check_generator(generator)
    dtype = dtype or torch.get_default_dtype()
    shape = (n, 2) if runs is None else (check_int("runs", runs, low=1), n, 2)
    c, s = math.cos(_THETA), math.sin(_THETA)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    z = torch.randn(shape, generator=generator, dtype=torch.float64)
    x = ((z * torch.tensor([math.sqrt(10.0), 1.0], dtype=torch.float64)) @ rot * 1e-2)
    x = x.to(device=device, dtype=dtype)
    if runs is not None:
        return x
    return ArrayDataset(x, torch.zeros(n, dtype=dtype, device=x.device), "zhu2019-toy2d")


@dataclass(frozen=True)
class EscapeResult:
    """Escapes from the sharp minimum of the 2-D toy, per dynamic.

    Attributes
    ----------
    counts : dict kind → int
        Runs ending with w₁ < −0.5 and w₂ < −0.5.
    runs : int
    final : dict kind → Tensor ``[runs, 2]``
    path : dict kind → Tensor ``[steps + 1, keep, 2]`` of the first ``keep_paths`` runs.
    seconds : float
    trace_h_sigma : dict kind → Tensor ``[steps]``
        Tr(HΣ) (Σ the per-example gradient covariance) at each step before the update,
        averaged over the runs: the escaping indicator of Eqs. 11 and 13 along the way.
    """

    counts: dict
    runs: int
    final: dict
    path: dict
    seconds: float
    trace_h_sigma: dict

    def rates(self, z: float = 1.96) -> dict:
        """kind → (rate, low, high): Wilson score intervals at normal quantile ``z``."""
        out = {}
        for kind, c in self.counts.items():
            p, n = c / self.runs, self.runs
            den = 1 + z * z / n
            mid = (p + z * z / (2 * n)) / den
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
            out[kind] = (p, max(0.0, mid - half), min(1.0, mid + half))
        return out


def _toy_stats(w: torch.Tensor, x: torch.Tensor):
    """Per-run full-batch gradient ``[R, 2]``, per-example gradient covariance ``[R, 2, 2]``
    (normalised by 1/n) and Hessian ``[R, 2, 2]`` of the toy loss for ``w [R, 2]``,
    ``x [R, n, 2]`` — the batched equivalent of :func:`gnilab.curvature.gradient_covariance`
    and :func:`gnilab.curvature.dense_hessian` on :class:`Toy2D` (checked against them in the
    tests). ℓ(w; x) = F(w − x), so with the leaf d = w − x ``[R, n, 2]`` one backward pass
    gives every per-example gradient and two more every per-example Hessian (autograd)."""
    with torch.enable_grad():
        d = (w.detach().unsqueeze(1) - x).requires_grad_(True)
        loss = _toy_per_example(torch.zeros_like(d[..., 0, :]), -d).sum()
        grads, = torch.autograd.grad(loss, d, create_graph=True)           # [R, n, 2]
        rows = [torch.autograd.grad(grads[..., j].sum(), d, retain_graph=j == 0)[0]
                for j in range(2)]
    grads = grads.detach()
    hess = torch.stack(rows, dim=-2).mean(1)                                # [R, 2, 2]
    mean_g = grads.mean(1)
    cen = grads - mean_g.unsqueeze(1)
    cov = cen.transpose(1, 2) @ cen / x.shape[1]
    return mean_g, cov, 0.5 * (hess + hess.transpose(1, 2))


def toy2d_escape(kinds: Sequence[str] = ("gd", "gld_const", "gld_diag", "gld_leading",
                                         "gld_hessian", "gld_eigvec"),
                 runs: int = 100, steps: int = 500, lr: float = 0.005, budget: float = 0.01,
                 n: int = 100, w0=(1.0, 1.0), keep_paths: int = 0, device=None,
                 dtype=torch.float64,
                 generator: Optional[torch.Generator] = None) -> EscapeResult:
    """Zhu et al.'s Fig. 2 experiment, all runs of all dynamics at once.

    For each dynamic and run: fresh data (:func:`toy2d_data`), w = ``w0`` (the sharp minimum),
    ``steps`` full-batch GD steps of size ``lr`` each followed by weight noise ξ with
    E‖ξ‖² = ``budget`` (the code's "noise_std = 0.01", a trace): the covariances of the module
    table with Σ the per-example gradient covariance and H the Hessian, both recomputed every
    step ("gld_leading" with k = 2 = D is the full Σ, as in the code). Success: final
    w₁ < −0.5 and w₂ < −0.5. ``"gld_dynamic"`` (not in the 2-D code) equals ``"gld_const"``
    at a fixed budget.

    Parameters
    ----------
    kinds : sequence of str
        The dynamics to run, each one of :data:`KINDS`.
    runs : int
        Runs per dynamic (≥ 1).
    steps : int
        Steps per run (≥ 0).
    lr : float
        η, the GD step size (> 0).
    budget : float
        E‖ξ‖² per step (≥ 0, weight units; Eq. 14).
    n : int
        Examples per data set (≥ 2).
    w0 : sequence of 2 floats
        The starting point of every run.
    keep_paths : int
        Number of runs per dynamic whose whole path is kept, in [0, ``runs``].
    device : torch.device or str, optional
        Where the runs are computed (default the CPU).
    dtype : torch.dtype
        Compute dtype (default float64).
    generator : torch.Generator, optional
        Draws the data and the noise.

    Returns
    -------
    EscapeResult
        Escape counts, final points, kept paths, the wall time and the indicator Tr(HΣ) along
        the way, per dynamic.
    """
    for kd in kinds:
        check_choice("kinds", kd, KINDS)
    runs = check_int("runs", runs, low=1)
    steps = check_int("steps", steps, low=0)
    lr = check_real("lr", lr, low=0, low_open=True)
    budget = check_real("budget", budget, low=0)
    keep_paths = check_int("keep_paths", keep_paths, low=0, high=runs)
    generator = _check_generator(generator)
    device = torch.device("cpu") if device is None else torch.device(device)
    t0 = time.perf_counter()
    m = len(kinds)
    x = toy2d_data(n, runs * m, generator=generator, device=device, dtype=dtype)
    w = torch.as_tensor(w0, dtype=dtype, device=device).reshape(1, 2).repeat(runs * m, 1)
    kind_of = torch.arange(m, device=device).repeat_interleave(runs)
    masks = {kd: kind_of == i for i, kd in enumerate(kinds)}
    paths = [w.clone()] if keep_paths else []
    ths = []
    eye = torch.eye(2, dtype=dtype, device=device)
    for _ in range(steps):
        g, cov, hess = _toy_stats(w, x)
        ths.append((hess * cov).sum((1, 2)))
        z = _normal((runs * m, 2), generator, device, dtype)
        # a square root R with R Rᵀ = C / Tr C, per kind; the noise is √budget · R z
        root = torch.zeros(runs * m, 2, 2, dtype=dtype, device=device)
        for kd, mask in masks.items():
            if kd == "gd":
                continue
            if kd in ("gld_const", "gld_dynamic"):
                root[mask] = eye / math.sqrt(2.0)
            elif kd == "gld_diag":
                d = torch.diagonal(cov[mask], dim1=1, dim2=2)
                root[mask] = torch.diag_embed((d / d.sum(1, keepdim=True)).sqrt())
            elif kd == "gld_eigvec":
                _, vec = torch.linalg.eigh(hess[mask])
                root[mask] = vec * torch.tensor([0.0, 1.0], dtype=dtype, device=device)
            else:
                mat = cov[mask] if kd == "gld_leading" else hess[mask]
                lam, vec = torch.linalg.eigh(mat)
                lam = lam.clamp_min(0)
                lam = lam / lam.sum(1, keepdim=True)
                root[mask] = vec * lam.sqrt().unsqueeze(1)
        xi = math.sqrt(budget) * (root @ z.unsqueeze(-1)).squeeze(-1)
        w = w - lr * g + xi
        if keep_paths:
            paths.append(w.clone())
    seconds = time.perf_counter() - t0
    ok = (w[:, 0] < -0.5) & (w[:, 1] < -0.5)
    counts = {kd: int(ok[mask].sum()) for kd, mask in masks.items()}
    final = {kd: w[mask].cpu() for kd, mask in masks.items()}
    path = {}
    if keep_paths:
        p = torch.stack(paths)          # [steps + 1, R·m, 2]
        path = {kd: p[:, mask][:, :keep_paths].cpu() for kd, mask in masks.items()}
    ths = torch.stack(ths) if ths else torch.zeros(0, runs * m, dtype=dtype, device=device)
    indicator = {kd: ths[:, mask].mean(1).cpu() for kd, mask in masks.items()}
    return EscapeResult(counts, runs, final, path, seconds, indicator)
