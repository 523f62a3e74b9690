r"""The linear toy of the NIN paper (Levi et al. 2022, §3; normalisation ours): a two-layer linear
network with a NIN, its exact dynamics and the four phases.

A two-layer linear network of width n, no biases, a NIN on the first layer, univariate
regression :math:`y = a x`, :math:`x\sim N(0,\sigma_x^2)`, :math:`\varepsilon\sim N(0,\sigma^2)`,
NTK scaling:

.. math::  f(x,\varepsilon) = \tfrac1{\sqrt n}\,v\cdot(u\,x + \theta\,\varepsilon),\qquad
           L = \tfrac12\langle (f - y)^2\rangle .

With :math:`A = v\cdot u/\sqrt n`, :math:`\Phi = v\cdot\theta/\sqrt n` (the NIW as the output
sees it) and the batch moments :math:`S_{xx} = \langle x^2\rangle`, :math:`S_{x\varepsilon}`,
:math:`S_{\varepsilon\varepsilon}`, :math:`S_{xy}`, :math:`S_{\varepsilon y}`, the residual is
:math:`r = A x + \Phi\varepsilon - y`, and with :math:`g_x = \langle r x\rangle = A S_{xx} +
\Phi S_{x\varepsilon} - S_{xy}`, :math:`g_\varepsilon = \langle r\varepsilon\rangle = A
S_{x\varepsilon} + \Phi S_{\varepsilon\varepsilon} - S_{\varepsilon y}` one SGD step is
exactly (:func:`toy_step`)

.. math::  u' = u - \tfrac{\eta g_x}{\sqrt n} v,\quad
           \theta' = \theta - \tfrac{\eta g_\varepsilon}{\sqrt n} v,\quad
           v' = v - \tfrac{\eta}{\sqrt n}(g_x u + g_\varepsilon\theta).      \qquad (T1)

The update is linear in (u, θ, v), so the dynamics close on their 3×3 Gram matrix
:math:`G' = M G M^\top`; :func:`simulate_toy` runs that exact reduction for many (σ, η) at once,
at a cost independent of n. With population moments (:math:`S_{xx} = \sigma_x^2`,
:math:`S_{\varepsilon\varepsilon} = \sigma^2`, :math:`S_{x\varepsilon} = 0`) and the data terms
dropped (:math:`g_x = 0`: the paper's noise-dominated Eq. 7), the noise channel reduces exactly
to two numbers, :math:`\Phi` and :math:`\lambda_\theta = (|v|^2 + |\theta|^2)/n`
(:func:`reduced_map`):

.. math::  \Phi' = \Phi\big(1 - \eta\sigma^2\lambda_\theta + \tfrac{\eta^2\sigma^4}n\Phi^2\big),
           \qquad \lambda_\theta' = \lambda_\theta + \tfrac{\eta\sigma^2\Phi^2}n
           \big(\eta\sigma^2\lambda_\theta - 4\big),       \qquad (T2)

Lewkowycz et al.'s (2020) catapult map with :math:`\eta\lambda \to \eta\sigma^2\lambda_\theta`.
:math:`\sigma^2\lambda_\theta` is the top eigenvalue of the noise part of the loss Hessian in
(θ, v), so with :math:`c = \eta\sigma^2\lambda_\theta` (:func:`predict_phase`):

* ``decoupled``: :math:`c \le 2` but the NIW e-folding time :math:`\tau = -1/\ln|1 - c|`
  exceeds the training horizon: the probe barely moves while the data are learnt;
* ``decay``: :math:`c < 2` and :math:`\tau \le` the horizon: :math:`\Phi_t \approx
  \Phi_0(1-c)^t`;
* ``catapult``: :math:`2 < c < 4`: Φ and the loss grow until the :math:`\Phi^2/n` term lowers
  :math:`\lambda_\theta` below :math:`2/(\eta\sigma^2)`, then decay;
* ``divergent``: :math:`c \ge 4`: :math:`\lambda_\theta` grows, the run diverges.

This assumes the data channel itself is stable, :math:`\eta\sigma_x^2\lambda_u < 2` with
:math:`\lambda_u = (|u|^2 + |v|^2)/n`.

A remark on §5.2 and on the paper's Eq. 2: (N3) holds θ's downstream weights fixed; in the toy
the *local* Hessian is :math:`v v^\top/n`, which would give the rate
:math:`\eta\sigma^2|v|^2/n`. The exact rate of Φ is :math:`\eta\sigma^2(|v|^2 + |\theta|^2)/n`
because v learns from the noise too; the two agree when :math:`|\theta| \ll |v|`. And in the
toy only the component of θ along v decays: for n > 1 the NIW becomes orthogonal to v rather
than small (:math:`|\theta|^2/n` moves by :math:`O(\Phi^2/n)`), so the toy's "NIW" is Φ.

Timescales (paper §4, App. D): in the decay phase, per step, Φ decays as :math:`|1-c|^t` and
the clean loss :math:`L_0 = \frac12\sigma_x^2(A-a)^2` as :math:`|1 - \eta\sigma_x^2\lambda_u|^{2t}`
(in continuous time, rates :math:`\eta\sigma^2\lambda_\theta` and :math:`2\eta\,\mathrm{tr}H`,
:math:`\mathrm{tr}H = \sigma_x^2\lambda_u` at the minimum): :func:`toy_timescales`.
:func:`gnilab.nin.fit_decay` fits such timescales, with standard errors, to measured series.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._common.checks import check_int, check_real
from ._injection import _check_generator

__all__ = ["PHASES", "ToyState", "ToyMoments", "toy_init", "toy_moments", "toy_step", "reduced_map",
           "PhaseBoundaries", "phase_boundaries", "predict_phase", "ToyTimescales",
           "toy_timescales", "ToyRun", "simulate_toy", "classify_phase"]

#: The four phases of the paper, in order of increasing noise.
PHASES = ("decoupled", "decay", "catapult", "divergent")

# the linear toy model (paper §3)
# =============================================================================================


class ToyState(NamedTuple):
    r"""Weights of the linear toy, each ``[..., n]`` (leading dimensions: configurations).

    ``u`` input → hidden, ``theta`` the NIW (NIN → hidden), ``v`` hidden → output; the network
    is :math:`f = v\cdot(u x + \theta\varepsilon)/\sqrt n` (paper §3; updated by Eq. (T1)).

    Parameters
    ----------
    u : torch.Tensor
        ``[..., n]``, the input → hidden weights.
    theta : torch.Tensor
        ``[..., n]``, the NIW θ (NIN → hidden weights).
    v : torch.Tensor
        ``[..., n]``, the hidden → output weights.
    """

    u: torch.Tensor
    theta: torch.Tensor
    v: torch.Tensor

    @property
    def width(self) -> int:
        return self.u.shape[-1]

    @property
    def A(self) -> torch.Tensor:
        """:math:`v\\cdot u/\\sqrt n`, the data weight of the end-to-end map."""
        return (self.v * self.u).sum(-1) / math.sqrt(self.width)

    @property
    def phi(self) -> torch.Tensor:
        """:math:`\\Phi = v\\cdot\\theta/\\sqrt n`, the NIW as the output sees it."""
        return (self.v * self.theta).sum(-1) / math.sqrt(self.width)

    @property
    def lam_theta(self) -> torch.Tensor:
        """:math:`\\lambda_\\theta = (|v|^2 + |\\theta|^2)/n`, the noise channel's NTK."""
        return (self.v.pow(2) + self.theta.pow(2)).sum(-1) / self.width

    @property
    def lam_u(self) -> torch.Tensor:
        """:math:`\\lambda_u = (|u|^2 + |v|^2)/n`, the data channel's NTK."""
        return (self.u.pow(2) + self.v.pow(2)).sum(-1) / self.width


class ToyMoments(NamedTuple):
    r"""Batch moments ``sxx``, ``sxe``, ``see``, ``sxy``, ``sye``, ``syy`` (``<x^2>``,
    ``<x eps>``, ...; each a tensor or float broadcastable to the configurations).

    They are all the data an SGD step of the toy needs (Eq. (T1), paper §3).

    Parameters
    ----------
    sxx : torch.Tensor
        :math:`S_{xx} = \langle x^2\rangle`.
    sxe : torch.Tensor
        :math:`S_{x\varepsilon} = \langle x\varepsilon\rangle`.
    see : torch.Tensor
        :math:`S_{\varepsilon\varepsilon} = \langle\varepsilon^2\rangle` (σ² for population
        moments).
    sxy : torch.Tensor
        :math:`S_{xy} = \langle xy\rangle`.
    sye : torch.Tensor
        :math:`S_{\varepsilon y} = \langle\varepsilon y\rangle`.
    syy : torch.Tensor
        :math:`\langle y^2\rangle` (enters the loss only).
    """

    sxx: torch.Tensor
    sxe: torch.Tensor
    see: torch.Tensor
    sxy: torch.Tensor
    sye: torch.Tensor
    syy: torch.Tensor

    @classmethod
    def population(cls, sigma, sigma_x=1.0, a=1.0) -> "ToyMoments":
        """The infinite-batch moments: ``sxx = sigma_x²``, ``see = sigma²``, ``sxe = sye = 0``,
        ``sxy = a sigma_x²``, ``syy = a² sigma_x²`` (``sigma``: the NIN's standard deviation)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        sxx = torch.as_tensor(sigma_x, dtype=torch.float64) ** 2
        zero = torch.zeros_like(sigma)
        return cls(sxx + zero, zero, sigma ** 2, a * sxx + zero, zero, a * a * sxx + zero)

    def loss(self, A, phi) -> torch.Tensor:
        """The batch loss :math:`\\frac12\\langle(Ax + \\Phi\\varepsilon - y)^2\\rangle`."""
        return 0.5 * (A * A * self.sxx + phi * phi * self.see + 2 * A * phi * self.sxe
                      - 2 * A * self.sxy - 2 * phi * self.sye + self.syy)


def toy_moments(x: torch.Tensor, eps: torch.Tensor, y: torch.Tensor) -> ToyMoments:
    """The moments of a batch (means over the last dimension) of inputs ``x``, NIN outputs
    ``eps`` (variance σ²) and targets ``y``: the inputs of Eq. (T1) (paper §3).

    Parameters
    ----------
    x : torch.Tensor
        Inputs, ``[..., B]``.
    eps : torch.Tensor
        The NIN outputs ε of the same examples (already scaled by σ), broadcastable with ``x``.
    y : torch.Tensor
        Targets, broadcastable with ``x``.

    Returns
    -------
    ToyMoments
        The six means over the last (batch) dimension.
    """
    return ToyMoments((x * x).mean(-1), (x * eps).mean(-1), (eps * eps).mean(-1),
                      (x * y).mean(-1), (eps * y).mean(-1), (y * y).mean(-1))


def toy_init(width: int, *, shape=(), u_std: float = 1.0, v_std: float = 1.0,
             theta_std: float = 1.0, generator=None, device=None,
             dtype=torch.float64) -> ToyState:
    """Random toy weights, i.i.d. :math:`N(0, s^2)` entries (NTK scaling: O(1) entries),
    shape ``[*shape, width]``: the initialisation of the linear toy of paper §3.

    Parameters
    ----------
    width : int >= 1
        The hidden width n.
    shape : tuple of int
        Leading (configuration) dimensions; default ``()``: one network.
    u_std, v_std, theta_std : float >= 0
        Standard deviations s of the entries of u, v and θ.
    generator : torch.Generator or int, optional
        Source of the draws (u, then θ, then v); a CPU generator draws on the CPU.
    device : optional
        Where the weights live (default: the generator's device, else the CPU).
    dtype : torch.dtype
        Default ``torch.float64``.

    Returns
    -------
    ToyState
        ``u``, ``theta``, ``v``, each ``[*shape, width]``.
    """
    width = check_int("width", width, low=1)
    gen = _check_generator(generator)
    stds = [check_real(nm, s, low=0) for nm, s in (("u_std", u_std), ("theta_std", theta_std),
                                                   ("v_std", v_std))]
    dev = gen.device if gen is not None else device
    draws = [torch.randn(*shape, width, generator=gen, device=dev, dtype=dtype) * s
             for s in stds]
    return ToyState(*(d.to(device) if device is not None else d for d in draws))


def toy_step(state: ToyState, moments: ToyMoments, lr) -> ToyState:
    r"""One exact SGD step (Eq. T1) of the toy on a batch with ``moments`` and step ``lr``
    (a float or a tensor over the configurations). Paper §3.

    Parameters
    ----------
    state : ToyState
        The weights before the step, ``[..., n]``.
    moments : ToyMoments
        The batch moments, broadcastable to the configurations ``[...]``.
    lr : float or torch.Tensor
        The step η, a float or a tensor over the configurations.

    Returns
    -------
    ToyState
        The weights after the step, same shape.
    """
    rn = math.sqrt(state.width)
    A, phi = state.A, state.phi
    gx = A * moments.sxx + phi * moments.sxe - moments.sxy
    ge = A * moments.sxe + phi * moments.see - moments.sye
    al, be = (lr * gx / rn).unsqueeze(-1), (lr * ge / rn).unsqueeze(-1)
    u, th, v = state
    return ToyState(u - al * v, th - be * v, v - al * u - be * th)


def reduced_map(phi, lam, lr, sigma, width: int):
    r"""One step of the noise channel's reduced map (Eq. T2): ``(phi', lam')`` from
    :math:`\Phi`, :math:`\lambda_\theta`. Exact for the toy with population moments and the data
    terms dropped (:math:`g_x = 0`); elementwise over tensors. Paper §3; Lewkowycz et al.'s
    (2020) catapult map with :math:`\eta\lambda \to \eta\sigma^2\lambda_\theta`.

    Parameters
    ----------
    phi : float or torch.Tensor
        :math:`\Phi = v\cdot\theta/\sqrt n`, the NIW as the output sees it.
    lam : float or torch.Tensor
        :math:`\lambda_\theta = (|v|^2 + |\theta|^2)/n`, the noise channel's NTK.
    lr : float or torch.Tensor
        The step η.
    sigma : float or torch.Tensor
        The NIN's standard deviation σ.
    width : int
        The hidden width n.

    Returns
    -------
    tuple of torch.Tensor
        ``(phi', lam')``, :math:`\Phi` and :math:`\lambda_\theta` after one step.
    """
    s2 = torch.as_tensor(sigma, dtype=torch.float64) ** 2 if not torch.is_tensor(sigma) \
        else sigma ** 2
    c = lr * s2
    return (phi * (1 - c * lam + c * c * phi * phi / width),
            lam + c * phi * phi / width * (c * lam - 4))


class PhaseBoundaries(NamedTuple):
    """Noise **variances** σ² at the phase boundaries for a step ``lr`` and curvature λ:
    ``sigma2_decay`` (decoupled → decay for the horizon given; NaN without one),
    ``sigma2_catapult`` = 2/(ηλ) and ``sigma2_divergent`` = 4/(ηλ).

    The boundaries c = ησ²λ = 2 and 4 of the catapult map Eq. (T2) (paper §3; Lewkowycz et
    al. 2020).

    Parameters
    ----------
    sigma2_decay : numpy.ndarray
        σ² with e-folding time of Φ equal to the horizon ``steps`` (NaN without a horizon).
    sigma2_catapult : numpy.ndarray
        σ² = 2/(ηλ), decay → catapult.
    sigma2_divergent : numpy.ndarray
        σ² = 4/(ηλ), catapult → divergent.
    """

    sigma2_decay: np.ndarray
    sigma2_catapult: np.ndarray
    sigma2_divergent: np.ndarray


def _arr(name, value, low=0.0, low_open=True) -> np.ndarray:
    a = np.asarray(value.detach().cpu() if torch.is_tensor(value) else value, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < low) or \
            (low_open and np.any(a == low)):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise ValueError(f"{name} must hold finite numbers {bound}, got {a.ravel()[:4]}")
    return a


def phase_boundaries(lr, curvature, steps: Optional[int] = None) -> PhaseBoundaries:
    r"""The σ² of the phase boundaries (see :func:`predict_phase`), elementwise.

    From c = ησ²λ of Eq. (T2): decay → catapult at c = 2, catapult → divergent at c = 4,
    decoupled → decay where the e-folding time of Φ equals the horizon (paper §3).

    Parameters
    ----------
    lr : float or array_like > 0
        The step η.
    curvature : float or array_like > 0
        λ (:math:`\lambda_\theta` for the toy), broadcast with ``lr``.
    steps : int >= 1, optional
        The training horizon; without it ``sigma2_decay`` is NaN.

    Returns
    -------
    PhaseBoundaries
        The three boundary variances σ², numpy arrays of the broadcast shape.
    """
    c = _arr("lr", lr) * _arr("curvature", curvature)
    decay = np.full_like(c, math.nan)
    if steps is not None:
        steps = check_int("steps", steps, low=1)
        decay = -np.expm1(-1.0 / steps) / c      # c with -ln(1 - c) = 1/steps
    return PhaseBoundaries(decay, 2.0 / c, 4.0 / c)


def predict_phase(lr, sigma, curvature, steps: int) -> np.ndarray:
    r"""The phase of each configuration, from :math:`c = \eta\sigma^2\lambda`.

    ``divergent`` for c >= 4, ``catapult`` for 2 < c < 4; below, ``decay`` when the
    e-folding time :math:`-1/\ln|1-c|` fits in the horizon ``steps``, else ``decoupled``.
    ``lr``, ``sigma`` (a standard deviation) and ``curvature`` (:math:`\lambda_\theta` for the
    toy, :math:`\hat\theta^\top\bar H_z\hat\theta` or the top eigenvalue of :math:`\bar H_z`
    for a network) broadcast together. Returns a numpy array of phase names. The phases of
    paper §3, from the catapult map Eq. (T2) (Lewkowycz et al. 2020).

    Parameters
    ----------
    lr : float or array_like > 0
        The step η.
    sigma : float or array_like >= 0
        The NIN's standard deviation σ.
    curvature : float or array_like >= 0
        The curvature λ the NIW sees.
    steps : int >= 1
        The training horizon in steps.

    Returns
    -------
    numpy.ndarray
        Object array of phase names (one of :data:`PHASES`), of the broadcast shape.
    """
    steps = check_int("steps", steps, low=1)
    c = _arr("lr", lr) * _arr("sigma", sigma, low_open=False) ** 2 * \
        _arr("curvature", curvature, low_open=False)
    with np.errstate(divide="ignore"):
        rate = -np.log(np.abs(1.0 - c))           # inf at c = 1 (one step kills Φ)
    out = np.where(c >= 4, "divergent", np.where(c > 2, "catapult",
                   np.where(rate * steps >= 1, "decay", "decoupled")))
    return out.astype(object)


class ToyTimescales(NamedTuple):
    """Decay timescales of the toy in steps, elementwise: ``niw`` (Φ: −1/ln|1 − ησ²λ_θ|),
    ``loss`` (the clean loss: −1/(2 ln|1 − ησ_x²λ_u|)) and their continuous-time limits
    ``niw_continuous`` = 1/(ησ²λ_θ), ``loss_continuous`` = 1/(2ησ_x²λ_u) = 1/(2η tr H).

    The timescales of paper §4 and App. D, in the decay phase of Eq. (T2).

    Parameters
    ----------
    niw : torch.Tensor
        −1/ln|1 − ησ²λ_θ|, the e-folding time of Φ in steps.
    loss : torch.Tensor
        −1/(2 ln|1 − ησ_x²λ_u|), the e-folding time of the clean loss in steps.
    niw_continuous : torch.Tensor
        1/(ησ²λ_θ), the continuous-time limit of ``niw``.
    loss_continuous : torch.Tensor
        1/(2ησ_x²λ_u), the continuous-time limit of ``loss``.
    """

    niw: torch.Tensor
    loss: torch.Tensor
    niw_continuous: torch.Tensor
    loss_continuous: torch.Tensor


def toy_timescales(state: ToyState, lr, sigma, sigma_x: float = 1.0) -> ToyTimescales:
    r""":class:`ToyTimescales` at ``state`` (valid in the decay phase, near the data fit).

    Paper §4, App. D: Φ decays as :math:`|1-c|^t` with c = ησ²λ_θ (Eq. (T2)) and the clean
    loss as :math:`|1 - \eta\sigma_x^2\lambda_u|^{2t}`.

    Parameters
    ----------
    state : ToyState
        The weights, ``[..., n]``, giving λ_θ and λ_u.
    lr : float or torch.Tensor
        The step η.
    sigma : float or torch.Tensor
        The NIN's standard deviation σ.
    sigma_x : float
        The input standard deviation :math:`\sigma_x`.

    Returns
    -------
    ToyTimescales
        The four timescales in steps, over the configurations ``[...]``.
    """
    sigma = torch.as_tensor(sigma, dtype=state.u.dtype)
    cn = lr * sigma ** 2 * state.lam_theta
    cl = lr * sigma_x ** 2 * state.lam_u
    return ToyTimescales(-1.0 / torch.log(torch.abs(1 - cn)), -0.5 / torch.log(torch.abs(1 - cl)),
                         1.0 / cn, 0.5 / cl)


@dataclass
class ToyRun:
    r"""What :func:`simulate_toy` returns: tensors ``[R, *S]`` over the ``R`` recorded steps
    (``step``, a numpy array) and the configuration shape ``S``.

    ``A``, ``phi``, ``niw_norm`` (:math:`|\theta|`), ``lam_theta``, ``lam_u``, ``loss`` (the clean, i.e.
    test, loss :math:`\frac12\sigma_x^2(A-a)^2`), ``noisy_loss`` (the population loss with the
    NIN on, :math:`+\frac12\sigma^2\Phi^2`), ``batch_loss`` (the loss of the step's batch;
    equal to ``noisy_loss`` for population moments); NaN from a configuration's divergence
    on. ``diverged`` (bool) and ``diverged_step`` (−1: none) have shape ``S``; ``sigma`` and
    ``lr`` too. Trajectories of the exact toy dynamics Eq. (T1) (paper §3).

    Attributes
    ----------
    step : numpy.ndarray
        ``[R]``, the recorded step numbers (0 first).
    sigma : torch.Tensor
        Shape ``S``, the NIN standard deviation σ of each configuration.
    lr : torch.Tensor
        Shape ``S``, the step η of each configuration.
    A : torch.Tensor
        :math:`A = v\cdot u/\sqrt n`, the data weight of the end-to-end map.
    phi : torch.Tensor
        :math:`\Phi = v\cdot\theta/\sqrt n`, the NIW as the output sees it.
    niw_norm : torch.Tensor
        :math:`|\theta|`.
    lam_theta : torch.Tensor
        :math:`\lambda_\theta = (|v|^2 + |\theta|^2)/n`, the noise channel's NTK.
    lam_u : torch.Tensor
        :math:`\lambda_u = (|u|^2 + |v|^2)/n`, the data channel's NTK.
    loss : torch.Tensor
        The clean loss :math:`\frac12\sigma_x^2(A-a)^2`.
    noisy_loss : torch.Tensor
        The population loss with the NIN on, ``loss`` :math:`+\frac12\sigma^2\Phi^2`.
    batch_loss : torch.Tensor
        The loss of the batch of the step that led to the record (at step 0: the population
        loss).
    diverged : torch.Tensor
        Bool, shape ``S``: whether the configuration diverged.
    diverged_step : torch.Tensor
        Int, shape ``S``: the step at which it diverged (−1: none).
    width : int
        The hidden width n.
    steps : int
        The number of steps asked for.
    """

    step: np.ndarray
    sigma: torch.Tensor
    lr: torch.Tensor
    A: torch.Tensor
    phi: torch.Tensor
    niw_norm: torch.Tensor
    lam_theta: torch.Tensor
    lam_u: torch.Tensor
    loss: torch.Tensor
    noisy_loss: torch.Tensor
    batch_loss: torch.Tensor
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    width: int
    steps: int

    def predicted(self) -> np.ndarray:
        """:func:`predict_phase` from the initial :math:`\\lambda_\\theta`."""
        return predict_phase(self.lr, self.sigma, self.lam_theta[0], self.steps)

    def phases(self, growth: float = 2.0) -> np.ndarray:
        """:func:`classify_phase` of the simulated trajectories."""
        return classify_phase(self, growth=growth)

    def frame(self) -> pd.DataFrame:
        """Long format: one row per configuration and recorded step."""
        r = len(self.step)
        flat = {k: getattr(self, k).reshape(r, -1).cpu().numpy()
                for k in ("A", "phi", "niw_norm", "lam_theta", "lam_u", "loss", "noisy_loss",
                          "batch_loss")}
        k = flat["A"].shape[1]
        out = pd.DataFrame({"config": np.tile(np.arange(k), r), "step": np.repeat(self.step, k),
                            "sigma": np.tile(self.sigma.reshape(-1).cpu().numpy(), r),
                            "lr": np.tile(self.lr.reshape(-1).cpu().numpy(), r)})
        for key, val in flat.items():
            out[key] = val.reshape(-1)
        return out


def _gram_step(G: torch.Tensor, mom: ToyMoments, lr: torch.Tensor, rn: float) -> torch.Tensor:
    """Eq. T1 on the Gram matrices ``G[k] = W W^T`` of (u, θ, v): ``M G M^T``."""
    A, phi = G[:, 0, 2] / rn, G[:, 1, 2] / rn
    gx = A * mom.sxx + phi * mom.sxe - mom.sxy
    ge = A * mom.sxe + phi * mom.see - mom.sye
    al, be = lr * gx / rn, lr * ge / rn
    M = torch.eye(3, dtype=G.dtype, device=G.device).repeat(G.shape[0], 1, 1)
    M[:, 0, 2], M[:, 1, 2], M[:, 2, 0], M[:, 2, 1] = -al, -be, -al, -be
    return M @ G @ M.transpose(1, 2)


def simulate_toy(sigma, lr, steps: int, *, width: int = 1000, state: Optional[ToyState] = None,
                 batch_size: Optional[int] = None, sigma_x: float = 1.0, a: float = 1.0,
                 bound: float = 1e12, record_every: int = 1, generator=None, device=None,
                 progress: bool = True) -> ToyRun:
    r"""Run the toy's exact recursion for many (σ, η) configurations at once.

    The dynamics (Eq. T1) are run on the 3×3 Gram matrices of (u, θ, v), an exact reduction,
    so the cost does not depend on the width n (paper §3; with population moments the noise
    channel follows the catapult map Eq. (T2)).

    Parameters
    ----------
    sigma, lr : floats or tensors, broadcast together to the configuration shape S
        The NIN's standard deviation σ and the step η (e.g. a meshgrid for a phase diagram).
    steps : int
        Number of SGD steps.
    width : int
        n, when ``state`` is not given (then ``toy_init(width, generator=generator)``).
    state : ToyState, optional
        Initial weights ``[n]`` (shared by every configuration) or ``[*S, n]``.
    batch_size : int, optional
        ``None``: population moments (the infinite-batch GD limit, deterministic). B: online
        SGD, a fresh batch of B inputs :math:`x\sim N(0,\sigma_x^2)` and standard noises ξ each
        step, the same for every configuration (ε = σξ; common random numbers).
    sigma_x, a : float
        Input scale and the target map y = a x.
    bound : float
        A configuration diverges at the first step its noisy loss exceeds ``bound`` or turns
        non-finite; it is then frozen (NaN records), and never poisons the others.
    record_every : int
        Record every this many steps (and steps 0 and ``steps``).
    generator : torch.Generator or int, optional
        Source of the initial weights (when ``state`` is not given) and of the batches.
    device : optional
        Where to run (default: the state's device, else the CPU). Everything is float64.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ToyRun
        The recorded trajectories over the configurations, with divergence flags.
    """
    steps = check_int("steps", steps, low=1)
    record_every = check_int("record_every", record_every, low=1)
    sigma_x = check_real("sigma_x", sigma_x, low=0, low_open=True)
    a = check_real("a", a)
    bound = check_real("bound", bound, low=0, low_open=True, finite=False)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1)
    gen = _check_generator(generator)
    f64 = torch.float64
    sig = torch.as_tensor(_arr("sigma", sigma, low_open=False), dtype=f64)
    eta = torch.as_tensor(_arr("lr", lr), dtype=f64)
    sig, eta = torch.broadcast_tensors(sig, eta)
    shape = sig.shape
    if state is None:
        state = toy_init(check_int("width", width, low=1), generator=gen, dtype=f64)
    if not isinstance(state, ToyState):
        raise TypeError(f"state must be a ToyState, got {type(state).__name__}")
    dev = torch.device(device) if device is not None else state.u.device
    k = max(1, int(np.prod(shape)))
    W = torch.stack([t.to(dev, f64) for t in state], dim=-2)           # [..., 3, n]
    if W.dim() == 2:
        W = W.expand(*shape, 3, W.shape[-1])
    elif W.shape[:-2] != shape:
        raise ValueError(f"state must have shape [n] or [*S, n] with S = {tuple(shape)} (the "
                         f"shape of sigma and lr broadcast), got {tuple(state.u.shape)}")
    G = (W @ W.transpose(-1, -2)).reshape(k, 3, 3).clone()
    n = W.shape[-1]
    rn = math.sqrt(n)
    s, lrs = sig.reshape(k).to(dev), eta.reshape(k).to(dev)
    pop = ToyMoments.population(s, sigma_x, a)
    active = torch.ones(k, dtype=torch.bool, device=dev)
    div_step = torch.full((k,), -1, dtype=torch.long, device=dev)
    keys = ("A", "phi", "niw_norm", "lam_theta", "lam_u", "loss", "noisy_loss", "batch_loss")
    rec = {key: [] for key in keys}
    rec_steps = []

    def observe(G, batch_loss):
        A, phi = G[:, 0, 2] / rn, G[:, 1, 2] / rn
        d = torch.diagonal(G, dim1=1, dim2=2) / n
        return {"A": A, "phi": phi, "niw_norm": G[:, 1, 1].clamp(min=0).sqrt(),
                "lam_theta": d[:, 1] + d[:, 2], "lam_u": d[:, 0] + d[:, 2],
                "loss": 0.5 * sigma_x ** 2 * (A - a) ** 2, "noisy_loss": pop.loss(A, phi),
                "batch_loss": batch_loss}

    def record(t, obs):
        rec_steps.append(t)
        for key in keys:
            rec[key].append(torch.where(active, obs[key], torch.full_like(obs[key], math.nan)))

    obs = observe(G, pop.loss(G[:, 0, 2] / rn, G[:, 1, 2] / rn))
    bad = ~torch.isfinite(obs["noisy_loss"]) | (obs["noisy_loss"] > bound)
    div_step[bad] = 0
    active &= ~bad
    record(0, obs)
    bar = tqdm(range(1, steps + 1), disable=None if progress else True, desc="toy", leave=False)
    for t in bar:
        if batch_size is None:
            mom = pop
        else:
            gdev = gen.device if gen is not None else dev
            x = (torch.randn(batch_size, generator=gen, device=gdev, dtype=f64) * sigma_x).to(dev)
            xi = torch.randn(batch_size, generator=gen, device=gdev, dtype=f64).to(dev)
            mxx, mxe, mee = (x * x).mean(), (x * xi).mean(), (xi * xi).mean()
            mom = ToyMoments(mxx, s * mxe, s * s * mee, a * mxx, a * s * mxe, a * a * mxx)
        batch_loss = mom.loss(G[:, 0, 2] / rn, G[:, 1, 2] / rn)
        G_new = _gram_step(G, mom, lrs, rn)
        obs = observe(G_new, batch_loss)
        bad = active & (~torch.isfinite(obs["noisy_loss"]) | (obs["noisy_loss"] > bound)
                        | ~torch.isfinite(G_new).all(-1).all(-1))
        div_step[bad] = t
        active &= ~bad
        G = torch.where(active.view(k, 1, 1), G_new, G)
        if t % record_every == 0 or t == steps:
            record(t, obs)
        if not bool(active.any()):
            if rec_steps[-1] != steps:
                record(steps, obs)
            break
    bar.close()
    out = {key: torch.stack(v).reshape(len(rec_steps), *shape) for key, v in rec.items()}
    return ToyRun(step=np.asarray(rec_steps), sigma=sig, lr=eta, diverged=(div_step >= 0)
                  .reshape(shape), diverged_step=div_step.reshape(shape), width=n, steps=steps,
                  **out)


def classify_phase(run: ToyRun, growth: float = 2.0) -> np.ndarray:
    r"""The phase each simulated trajectory shows (compare with :meth:`ToyRun.predicted`).

    ``divergent``: the run diverged. ``catapult``: it did not, but its noisy loss rose above
    ``growth`` times its initial value on the way. ``decay``: neither, and
    :math:`|\Phi|` ended at most :math:`e^{-1}` of its start. ``decoupled``: otherwise. The
    four phases of paper §3 (predicted from Eq. (T2)).

    Parameters
    ----------
    run : ToyRun
        The output of :func:`simulate_toy`.
    growth : float > 1
        The factor by which the noisy loss must rise above its initial value to count as a
        catapult.

    Returns
    -------
    numpy.ndarray
        Object array of phase names (one of :data:`PHASES`), of the configuration shape ``S``.
    """
    growth = check_real("growth", growth, low=1, low_open=True)
    shape = run.diverged.shape
    div = run.diverged.reshape(-1).cpu().numpy()
    nl = run.noisy_loss.reshape(len(run.step), -1).cpu().numpy()
    phi = run.phi.reshape(len(run.step), -1).cpu().numpy()
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.where(np.isfinite(nl), nl, -np.inf), axis=0)
        cat = peak > growth * nl[0]
        decayed = np.abs(phi[-1]) <= math.exp(-1) * np.abs(phi[0])
    out = np.where(div, "divergent", np.where(cat, "catapult",
                   np.where(decayed, "decay", "decoupled")))
    return out.astype(object).reshape(shape)
