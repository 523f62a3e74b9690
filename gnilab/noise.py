"""The gradient-noise probe: minibatch gradients over a partition of the data, the noise matrix
U = g_batch − g_full, and its statistics.

Following Şimşekli et al. (2019, §3 "method for tail-index estimation"): partition the n data
points into P = n // b disjoint minibatches Ω_i of size b, compute each minibatch gradient
∇f_{Ω_i}(w) and the full gradient ∇f(w) = (1/P) Σ_i ∇f_{Ω_i}(w) (the gradient of the covered
data), and the noise vectors U_i(w) = ∇f_{Ω_i}(w) − ∇f(w) (their Eq. 3), stacked as a
``[P, p]`` matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import nn

from .train import get_loss

__all__ = [
    "flat_grad",
    "minibatch_gradients",
    "GradientNoise",
    "gradient_noise",
    "skewness",
    "excess_kurtosis",
]


def flat_grad(model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    """Gradient of the scalar ``loss`` w.r.t. the trainable parameters, flattened to ``[p]``."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for p, g in zip(params, grads)])


def _partition(n: int, batch_size: int, shuffle: bool, generator, device) -> torch.Tensor:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an integer in [1, {n}] (the data size), got {batch_size!r}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    num_batches = n // batch_size
    return order[: num_batches * batch_size].view(num_batches, batch_size).to(device)


def minibatch_gradients(model: nn.Module, data, batch_size: int,
                        loss: Union[str, Callable] = "cross_entropy", *, shuffle: bool = False,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gradients of the mean minibatch loss over a partition of ``data`` into batches of size b.

    Returns a ``[P, p]`` tensor (P = n // b; the last n mod b examples are left out so that every
    batch has exactly b examples). One backward pass per minibatch; the model is put in
    ``eval`` mode for the duration (dropout off), as in Şimşekli et al.'s code.
    """
    loss_fn = get_loss(loss)
    index = _partition(len(data.y), batch_size, shuffle, generator, data.x.device)
    was_training = model.training
    model.eval()
    try:
        rows = [flat_grad(model, loss_fn(model(data.x[idx]), data.y[idx])) for idx in index]
    finally:
        model.train(was_training)
    return torch.stack(rows)


@dataclass(frozen=True)
class GradientNoise:
    """Minibatch gradient noise at one point w.

    Attributes
    ----------
    noise : Tensor ``[P, p]``
        U_i = g_{Ω_i} − g_full, one row per minibatch.
    full_gradient : Tensor ``[p]``
        g_full, the mean of the P minibatch gradients.
    batch_size : int
        b.
    """

    noise: torch.Tensor
    full_gradient: torch.Tensor
    batch_size: int

    @property
    def norms(self) -> torch.Tensor:
        """‖U_i‖₂, shape ``[P]``."""
        return self.noise.norm(dim=1)

    def gaussian_counterpart(self, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Isotropic Gaussian vectors with the same second moment per coordinate,
        σ² = mean(U²), shape like :attr:`noise` (the comparison of Şimşekli et al., Fig. 1)."""
        sigma = self.noise.pow(2).mean().sqrt()
        z = torch.randn(self.noise.shape, generator=generator, dtype=self.noise.dtype)
        return sigma * z.to(self.noise.device)


def gradient_noise(model: nn.Module, data, batch_size: int,
                   loss: Union[str, Callable] = "cross_entropy", *, shuffle: bool = False,
                   generator: Optional[torch.Generator] = None) -> GradientNoise:
    """The noise matrix U = g_batch − g_full over a partition of ``data`` (see module docstring)."""
    grads = minibatch_gradients(model, data, batch_size, loss, shuffle=shuffle, generator=generator)
    full = grads.mean(0)
    return GradientNoise(noise=grads - full, full_gradient=full, batch_size=batch_size)


def _standardised_moment(x: torch.Tensor, order: int) -> torch.Tensor:
    x = torch.as_tensor(x).reshape(-1).to(torch.float64)
    if x.numel() < 2:
        raise ValueError(f"need at least 2 values, got {x.numel()}")
    centred = x - x.mean()
    var = centred.pow(2).mean()
    return centred.pow(order).mean() / var.pow(order / 2)


def skewness(x: torch.Tensor) -> float:
    """Sample skewness m₃ / m₂^{3/2} (biased moments, as ``scipy.stats.skew`` by default)."""
    return float(_standardised_moment(x, 3))


def excess_kurtosis(x: torch.Tensor) -> float:
    """Sample excess kurtosis m₄ / m₂² − 3 (0 for a Gaussian; ``scipy.stats.kurtosis``'s default)."""
    return float(_standardised_moment(x, 4)) - 3.0
