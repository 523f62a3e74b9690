"""The gradient-noise probe: minibatch gradients over a partition of the data, the noise matrix
U = g_batch − g_full, and its statistics.

Following Şimşekli et al. (2019, §3 "method for tail-index estimation"): partition the n data
points into P = n // b disjoint minibatches Ω_i of size b, compute each minibatch gradient
∇f_{Ω_i}(w) and the full gradient ∇f(w) = (1/P) Σ_i ∇f_{Ω_i}(w) (the gradient of the covered
data), and the noise vectors U_i(w) = ∇f_{Ω_i}(w) − ∇f(w) (their Eq. 3), stacked as a
``[P, p]`` matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import nn

from ._common.checks import (as_float64, check_choice, check_finite_data, check_finite_module,
                          check_int)
from .train import Callback, get_loss

__all__ = [
    "flat_grad",
    "minibatch_gradients",
    "GradientNoise",
    "gradient_noise",
    "skewness",
    "excess_kurtosis",
    "coordinate_excess_kurtosis",
    "noise_statistics",
    "probe",
]


def flat_grad(model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    """Gradient of the scalar ``loss`` w.r.t. the trainable parameters, flattened to ``[p]``.

    With ``loss`` the mean loss over a minibatch Ω this is the stochastic gradient
    ∇f_Ω(w) of Şimşekli et al. (2019, Eq. 3).

    Parameters
    ----------
    model : torch.nn.Module
        the model; its parameters with ``requires_grad`` are differentiated, in the order of
        ``model.parameters()``.
    loss : Tensor
        a scalar (0-dimensional) tensor computed from ``model`` with autograd on.

    Returns
    -------
    Tensor
        shape ``[p]``, p the number of trainable parameter entries; the gradients of the
        parameters concatenated, zeros for parameters that ``loss`` does not depend on.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for p, g in zip(params, grads)])


def _partition(n: int, batch_size: int, shuffle: bool, generator, device) -> torch.Tensor:
    batch_size = check_int("batch_size", batch_size, low=1, high=n)   # at most the data size
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    num_batches = n // batch_size
    return order[: num_batches * batch_size].view(num_batches, batch_size).to(device)


def _loop_gradients(model, loss_fn, data, index) -> torch.Tensor:
    """One backward pass per minibatch (the straightforward method, kept as the reference)."""
    return torch.stack([flat_grad(model, loss_fn(model(data.x[idx]), data.y[idx])) for idx in index])


def _vmap_gradients(model, loss_fn, data, index, chunk_size) -> torch.Tensor:
    """All minibatch gradients at once: ``torch.func.grad`` of the minibatch loss, vectorised with
    ``vmap`` over the batch axis of ``x[index]`` (shape ``[P, b, ...]``), ``chunk_size`` batches
    at a time to bound memory (by default as many as hold about 2^24 gradient entries)."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b for n, b in model.named_buffers()}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}

    def batch_loss(ps, xb, yb):
        return loss_fn(functional_call(model, ({**ps, **frozen}, buffers), (xb,)), yb)

    if chunk_size is None:  # bound the memory of one vectorised call to ~2^24 gradient entries
        p = sum(v.numel() for v in params.values())
        chunk_size = max(1, min(index.shape[0], (1 << 24) // max(p, 1)))
    per_batch = vmap(grad(batch_loss), in_dims=(None, 0, 0), chunk_size=chunk_size)
    grads = per_batch(params, data.x[index], data.y[index])
    return torch.cat([grads[n].reshape(index.shape[0], -1) for n in names], dim=1)


def minibatch_gradients(model: nn.Module, data, batch_size: int,
                        loss: Union[str, Callable] = "cross_entropy", *, shuffle: bool = False,
                        generator: Optional[torch.Generator] = None, method: str = "auto",
                        chunk_size: Optional[int] = None) -> torch.Tensor:
    """Gradients of the mean minibatch loss over a partition of ``data`` into batches of size b.

    Returns a ``[P, p]`` tensor (P = n // b; the last n mod b examples are left out so that every
    batch has exactly b examples). The model is put in ``eval`` mode for the duration (dropout
    off), as in Şimşekli et al.'s code.

    ``method="vmap"`` computes all P gradients in one vectorised ``torch.func`` call
    (``chunk_size`` batches at a time when given, to bound memory); ``method="loop"`` runs one
    backward pass per minibatch. Both give the same numbers up to floating-point rounding.
    ``method="auto"`` (default) takes ``vmap`` for small batches (b ≤ 32), where the loop's
    per-batch overhead dominates, and the loop otherwise: on 2 CPU cores ``vmap`` is about 2×
    faster at b = 10 and slower for convolutional models at b ≥ 100
    (``benchmarks/bench_noise.py``).

    These are the minibatch gradients ∇f_{Ω_i}(w) of Şimşekli et al. (2019, Eq. 3 and §3)
    over disjoint minibatches Ω_i.

    Parameters
    ----------
    model : torch.nn.Module
        the model, evaluated at its current parameters w (restored to its previous
        train/eval mode afterwards).
    data : ArrayDataset
        the data, with tensors ``data.x`` (inputs, first axis n) and ``data.y`` (targets) on
        one device (see :mod:`gnilab.data`).
    batch_size : int
        b, the minibatch size, in [1, n].
    loss : str or callable
        a loss name of :data:`gnilab.train.LOSSES` (``"cross_entropy"``, the default,
        ``"mse"``, ``"hinge"``) or a callable ``fn(output, target)`` returning the mean loss.
    shuffle : bool
        ``True``: partition a random permutation of the data; ``False`` (default): take the
        examples in their order.
    generator : torch.Generator, optional
        randomness of the permutation when ``shuffle`` is set (a CPU generator).
    method : {"auto", "vmap", "loop"}
        how to compute the gradients (see above; default ``"auto"``).
    chunk_size : int >= 1, optional
        ``vmap`` only: minibatches per vectorised call (default: as many as hold about
        2^24 gradient entries).

    Returns
    -------
    Tensor
        shape ``[P, p]``: row i is the gradient of the mean loss over minibatch i, flattened
        as in :func:`flat_grad`.
    """
    check_choice("method", method, ("auto", "vmap", "loop"))
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, low=1)
    check_finite_module("model", model)
    check_finite_data("data", data)
    loss_fn = get_loss(loss)
    index = _partition(len(data.y), batch_size, shuffle, generator, data.x.device)
    was_training = model.training
    model.eval()
    try:
        if method == "loop" or (method == "auto" and batch_size > 32):
            return _loop_gradients(model, loss_fn, data, index)
        return _vmap_gradients(model, loss_fn, data, index, chunk_size)
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class GradientNoise:
    r"""Minibatch gradient noise at one point w.

    The stochastic gradient noise :math:`U_i(w) = \nabla f_{\Omega_i}(w) - \nabla f(w)` of
    Şimşekli et al. (2019, §3), one row per disjoint minibatch.

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
                   generator: Optional[torch.Generator] = None, method: str = "auto",
                   chunk_size: Optional[int] = None) -> GradientNoise:
    r"""The noise matrix U = g_batch − g_full over a partition of ``data`` (see module docstring;
    ``method`` and ``chunk_size`` as in :func:`minibatch_gradients`).

    The noise vectors :math:`U_i(w) = \nabla f_{\Omega_i}(w) - \nabla f(w)` of Şimşekli et al.
    (2019, §3), with :math:`\nabla f(w)` the mean of the P minibatch gradients.

    Parameters
    ----------
    model : torch.nn.Module
        the model at the point w.
    data : ArrayDataset
        the data (``data.x``, ``data.y``), as in :func:`minibatch_gradients`.
    batch_size : int
        b, the minibatch size, in [1, n]; P = n // b minibatches.
    loss : str or callable
        loss name or callable, as in :func:`minibatch_gradients` (default
        ``"cross_entropy"``).
    shuffle : bool
        partition a random permutation of the data (default ``False``: in order).
    generator : torch.Generator, optional
        randomness of the permutation when ``shuffle`` is set.
    method : {"auto", "vmap", "loop"}
        as in :func:`minibatch_gradients`.
    chunk_size : int >= 1, optional
        as in :func:`minibatch_gradients`.

    Returns
    -------
    GradientNoise
        the noise matrix ``noise`` ``[P, p]``, the full gradient ``full_gradient`` ``[p]`` and
        ``batch_size``.
    """
    grads = minibatch_gradients(model, data, batch_size, loss, shuffle=shuffle, generator=generator,
                                method=method, chunk_size=chunk_size)
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
    r"""Sample skewness m₃ / m₂^{3/2} (biased moments, as ``scipy.stats.skew`` by default).

    A check of the Gaussian hypothesis :math:`U \sim \mathcal N(0, \sigma^2 I)` of Şimşekli et
    al. (2019, Eq. 4), under which it is 0 up to sampling error; the estimator is :math:`g_1` of Joanes
    & Gill (1998).

    Parameters
    ----------
    x : Tensor or array-like
        the sample, any shape (flattened; at least 2 values); computed in float64.

    Returns
    -------
    float
        the sample skewness :math:`m_3/m_2^{3/2}`, with :math:`m_j` the j-th central
        sample moment (divisor n).
    """
    return float(_standardised_moment(x, 3))


def excess_kurtosis(x: torch.Tensor) -> float:
    r"""Sample excess kurtosis m₄ / m₂² − 3 (0 for a Gaussian; ``scipy.stats.kurtosis``'s default).

    A check of the Gaussian hypothesis :math:`U \sim \mathcal N(0, \sigma^2 I)` of Şimşekli et
    al. (2019, Eq. 4), under which it is 0 up to sampling error; the estimator is :math:`g_2` of Joanes
    & Gill (1998).

    Parameters
    ----------
    x : Tensor or array-like
        the sample, any shape (flattened; at least 2 values); computed in float64.

    Returns
    -------
    float
        the sample excess kurtosis :math:`m_4/m_2^2 - 3`, with :math:`m_j` the j-th
        central sample moment (divisor n).
    """
    return float(_standardised_moment(x, 4)) - 3.0


def coordinate_excess_kurtosis(noise: torch.Tensor) -> torch.Tensor:
    """Excess kurtosis of each coordinate of a ``[P, p]`` noise matrix over its P rows.

    Pooling all entries of U mixes coordinates of very different scales, and a scale mixture of
    Gaussians is itself heavy-tailed; standardising each coordinate first removes that effect.
    Coordinates with zero variance (e.g. weights of dead units) are dropped. For Gaussian rows
    the expected value is −6/(P+1) (the small-sample bias of the biased moment estimator).
    Returns a float64 tensor of length ≤ p.

    A per-coordinate check of the Gaussian hypothesis of Şimşekli et al. (2019, Eq. 4); the
    estimator is :math:`g_2` of Joanes & Gill (1998) for each column.

    Parameters
    ----------
    noise : Tensor or array-like, shape ``[P, p]``
        the noise matrix U, one row per minibatch (P >= 2).

    Returns
    -------
    Tensor
        float64, shape ``[p']`` with p' <= p: the excess kurtosis :math:`m_4/m_2^2 - 3` of each
        coordinate with nonzero variance, in coordinate order.
    """
    u = as_float64(noise)
    if u.dim() != 2 or u.shape[0] < 2:
        raise ValueError(f"noise must be a [P, p] matrix with P >= 2 rows, got shape {tuple(u.shape)}")
    centred = u - u.mean(0)
    var = centred.pow(2).mean(0)
    keep = var > 1e-24 * var.max().clamp_min(1e-300)
    return centred[:, keep].pow(4).mean(0) / var[keep].pow(2) - 3.0


def _pooled_k1(K: int) -> int:
    """Şimşekli et al.'s K1 (largest divisor of K not above √K), unless K has no divisor near √K
    (e.g. K prime gives K1 = 1, where Eq. 15 divides by log 1 = 0): then ⌊√K⌋, and the
    estimator uses the first K1·⌊K/K1⌋ entries."""
    root = math.isqrt(K)
    divisor = next(i for i in range(root, 0, -1) if K % i == 0)
    return divisor if divisor >= root / 10 else root


def noise_statistics(noise: torch.Tensor, k1: Optional[int] = None) -> dict:
    r"""Summary statistics of a ``[P, p]`` noise matrix U.

    ``alpha``: tail index of the pooled scalar entries of U by the estimator of Mohammadi et al.
    (Şimşekli et al. 2019, Eq. 15; :func:`gnilab.stable.tail_index`), with K1 from
    :func:`_pooled_k1` unless given. Entries that are exactly zero (parameters that receive no
    gradient at all, e.g. weights of dead ReLU units) are left out and counted in
    ``zero_fraction``: they have probability 0 under a stable law, and one of them sends
    ``log|X|`` to −∞ (Şimşekli et al.'s code would then report α̂ = 0).
    ``skewness``/``excess_kurtosis``: of the pooled entries; ``coordinate_kurtosis``: mean of
    :func:`coordinate_excess_kurtosis`; ``noise_norm``: mean ‖U_i‖; ``norm_cv``: std/mean of ‖U_i‖.

    Parameters
    ----------
    noise : Tensor, shape ``[P, p]``
        the noise matrix U (e.g. :attr:`GradientNoise.noise`); it needs at least 16 non-zero
        entries.
    k1 : int, optional
        block size :math:`K_1` of the tail-index estimator (Eq. 15), in [2, K/2] for K the
        number of non-zero entries; default :func:`_pooled_k1` of K.

    Returns
    -------
    dict
        ``{"alpha", "zero_fraction", "skewness", "excess_kurtosis", "coordinate_kurtosis",
        "noise_norm", "norm_cv"}``, all floats: ``alpha`` the tail index α̂ of the non-zero
        entries, ``zero_fraction`` the fraction of entries that are exactly 0 (in [0, 1)),
        ``skewness`` and ``excess_kurtosis`` of all P·p entries (zeros included), and the
        others as above (``norm_cv`` with the unbiased standard deviation).
    """
    from .stable import tail_index  # chapter 1's module; imported here to keep start-up light

    u = torch.as_tensor(noise)
    entries = u.reshape(-1)
    nonzero = entries[entries != 0]
    if nonzero.numel() < 16:
        raise ValueError(f"noise has {nonzero.numel()} non-zero entries; at least 16 are needed "
                         "to estimate a tail index")
    norms = u.norm(dim=1)
    return {
        "alpha": float(tail_index(nonzero, k1=k1 or _pooled_k1(nonzero.numel())).alpha),
        "zero_fraction": 1.0 - nonzero.numel() / entries.numel(),
        "skewness": skewness(u),
        "excess_kurtosis": excess_kurtosis(u),
        "coordinate_kurtosis": float(coordinate_excess_kurtosis(u).mean()),
        "noise_norm": float(norms.mean()),
        "norm_cv": float(norms.std() / norms.mean()),
    }


def probe(data, batch_size: int, every: int, loss: Union[str, Callable] = "cross_entropy",
          method: str = "auto", start: int = 0) -> Callback:
    """A :class:`gnilab.train.Callback` that records :func:`noise_statistics` of the minibatch
    gradient noise over a partition of ``data`` every ``every`` steps (the measurement of
    Şimşekli et al. 2019, §3, done every 100 iterations in their code).

    Use as ``train(model, data, ..., callbacks=[probe(data, b, every=100)])``; the statistics
    land in ``result.records`` with a ``step`` column. Steps before ``start`` are skipped (the
    noise matrix is the expensive part of a run).

    Parameters
    ----------
    data : ArrayDataset
        the data whose partition gives the noise matrix (``data.x``, ``data.y``), as in
        :func:`minibatch_gradients`; it is partitioned in order (no shuffling).
    batch_size : int
        b, the minibatch size, in [1, n].
    every : int >= 1
        measure at step 0 and every ``every`` steps (see :class:`gnilab.train.Callback`).
    loss : str or callable
        loss name or callable, as in :func:`minibatch_gradients` (default
        ``"cross_entropy"``).
    method : {"auto", "vmap", "loop"}
        how the minibatch gradients are computed, as in :func:`minibatch_gradients`.
    start : int >= 0
        first step to measure (default 0); earlier calls return nothing.

    Returns
    -------
    gnilab.train.Callback
        a callback whose rows are the dicts of :func:`noise_statistics` (plus ``step``).
    """
    start = check_int("start", start, low=0)

    def measure(step: int, model: nn.Module) -> Optional[dict]:
        if step < start:
            return None
        return noise_statistics(gradient_noise(model, data, batch_size, loss, method=method).noise)

    return Callback(every, measure)
