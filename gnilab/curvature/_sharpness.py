r"""Expected sharpness :math:`E[L(\theta+\nu)] - L(\theta)`, :math:`\nu\sim N(0,\delta^2 I)` (Zhu et al.
2019, Fig. 3 right)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .._common.checks import check_real
from ._hessian import LossLike, _as_generator, _Objective, _randn
from ._spectrum import _check_samples


@dataclass(frozen=True)
class SharpnessEstimate:
    """Monte Carlo expected sharpness ``E[L(θ+ν)] − L(θ)``, ν ~ N(0, δ²I) (Zhu et al. 2019,
    Fig. 3 right).

    Attributes
    ----------
    value, stderr : float
        The Monte Carlo mean of ``L(θ+ν) − L(θ)`` (loss units) and its standard error.
    base_loss : float
        L(θ).
    delta : float
        δ, the standard deviation of each coordinate of ν.
    samples : int
        Draws of ν (pairs ±ν when antithetic).
    antithetic : bool
        Whether each draw averaged ``L(θ+ν)`` and ``L(θ−ν)``.
    """

    value: float
    stderr: float
    base_loss: float
    delta: float
    samples: int
    antithetic: bool


def expected_sharpness(model: nn.Module, data, delta: float = 0.01, samples: int = 100,
                       loss: LossLike = "cross_entropy", *, antithetic: bool = True,
                       chunk_size: Optional[int] = None,
                       generator: Optional[torch.Generator] = None) -> SharpnessEstimate:
    """Expected sharpness ``E_{ν ~ N(0, δ² I)} [L(θ + ν)] − L(θ)`` (Zhu et al., Fig. 3 right:
    δ = 0.01, 1000 draws) by Monte Carlo, with its standard error.

    ``antithetic=True`` averages ``(L(θ+ν) + L(θ−ν))/2`` over ``samples`` draws (the odd terms of
    the Taylor expansion cancel; same expectation, far smaller variance; each draw costs two loss
    evaluations). For small δ the value is ≈ δ²/2 · Tr H.

    The loss is evaluated functionally at perturbed copies of θ, so the model's parameters are
    never changed (nothing to restore, even when an evaluation raises).

    Parameters
    ----------
    model : nn.Module
        Any model; its trainable parameters are θ (never modified).
    data
        An object with tensors ``x`` ``[n, ...]`` and ``y`` ``[n, ...]``.
    delta : float
        δ > 0, the standard deviation of each coordinate of ν (parameter units).
    samples : int
        Number of draws of ν, ≥ 2.
    loss : str or callable
        As in :func:`gnilab.train.get_loss` (mean over examples).
    antithetic : bool
        Average each draw with its mirror image −ν (two loss evaluations per draw).
    chunk_size : int, optional
        Evaluate the loss over at most this many examples at a time (bounds memory).
    generator : torch.Generator, optional
        Draws ν (on the CPU, then moved to the model's device).

    Returns
    -------
    SharpnessEstimate
        The estimate and its standard error, L(θ), δ, the number of draws and ``antithetic``.
    """
    delta = check_real("delta", delta, low=0, low_open=True)
    samples = _check_samples(samples)
    generator = _as_generator(generator)
    obj = _Objective(model, data, loss, chunk_size, None)
    base = float(obj.value(obj.theta))
    vals = []
    for _ in range(samples):
        nu = delta * _randn((obj.dim,), generator, obj.device, obj.dtype)
        v = float(obj.value(obj.theta + nu))
        if antithetic:
            v = 0.5 * (v + float(obj.value(obj.theta - nu)))
        vals.append(v - base)
    t = torch.tensor(vals, dtype=torch.float64)
    return SharpnessEstimate(float(t.mean()), float(t.std() / math.sqrt(samples)), base, delta,
                             samples, antithetic)
