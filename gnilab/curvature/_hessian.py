"""The loss as a function of a flat parameter vector and its Hessian as a linear operator
(Hessian–vector products), plus the generic operator interface the spectral tools accept."""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from .._common.checks import check_finite_data, check_finite_module, check_generator, check_int
from ..train import get_loss

#: Largest D for which a dense D×D Hessian or covariance is formed on request.
MAX_DENSE = 4096

LossLike = Union[str, Callable[..., torch.Tensor]]


# --------------------------------------------------------------------------------------------
# the loss as a function of a flat parameter vector
# --------------------------------------------------------------------------------------------


def _check_data(data) -> int:
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"data must have tensors x and y, got {type(data).__name__}")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"data.x and data.y must hold the same number (>= 1) of examples, got "
                         f"{x.shape[0]} and {y.shape[0]}")
    return int(x.shape[0])


class _Objective:
    """The mean loss of ``model`` over ``data`` as a function of detached parameter copies."""

    def __init__(self, model: nn.Module, data, loss: LossLike, chunk_size: Optional[int],
                 dtype: Optional[torch.dtype]):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.n = _check_data(data)
        check_finite_module("model", model)
        check_finite_data("data", data)
        self.model, self.loss_fn = model, get_loss(loss)
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        self.names = [k for k, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.dim = sum(self.sizes)
        self.device = named[0][1].device
        self.dtype = dtype or named[0][1].dtype
        cast = (lambda t: t.detach().to(self.device, self.dtype) if t.is_floating_point()
                else t.detach().to(self.device))
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named]).to(self.dtype)
        self.frozen = {k: cast(p) for k, p in model.named_parameters() if not p.requires_grad}
        self.buffers = {k: cast(b) for k, b in model.named_buffers()}
        self.x, self.y = cast(data.x), cast(data.y)
        size = self.n if chunk_size is None else check_int("chunk_size", chunk_size, low=1)
        self.chunks = [(s, min(s + size, self.n)) for s in range(0, self.n, size)]

    def unflatten(self, flat: torch.Tensor) -> dict:
        return {k: t.view(s) for k, t, s in zip(self.names, flat.split(self.sizes), self.shapes)}

    def chunk_loss(self, flat: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``(n_c / n) ·`` mean loss over examples ``start:stop`` (the chunks sum to L)."""
        from torch.func import functional_call

        was_training = self.model.training
        self.model.eval()
        try:
            out = functional_call(self.model, ({**self.unflatten(flat), **self.frozen},
                                               self.buffers), (self.x[start:stop],))
        finally:
            self.model.train(was_training)
        return self.loss_fn(out, self.y[start:stop]) * ((stop - start) / self.n)

    @torch.no_grad()
    def value(self, flat: torch.Tensor) -> torch.Tensor:
        return sum(self.chunk_loss(flat, a, b) for a, b in self.chunks)


# --------------------------------------------------------------------------------------------
# Hessian operator
# --------------------------------------------------------------------------------------------


def _as_generator(generator) -> Optional[torch.Generator]:
    return check_generator("generator", generator)


def _randn(shape, generator, device, dtype) -> torch.Tensor:
    """Standard normals drawn on the CPU from ``generator`` (so that CPU and CUDA runs with the
    same seed agree), then moved."""
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(device, dtype)


def _rademacher(shape, generator, device, dtype) -> torch.Tensor:
    z = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8)
    return (2.0 * z.to(torch.float64) - 1.0).to(device, dtype)


class HessianOperator:
    """The Hessian ``H = ∇²L(θ)`` of the mean training loss at the model's current parameters, as
    a linear operator of shape ``(D, D)``.

    L is the loss of Zhu et al. (2019), Eq. 1, and H the Hessian in their escaping indicator
    ``Tr(HΣ)`` (Eqs. 11 and 13).

    A snapshot: θ is copied at construction; later changes to the model are not seen.

    Parameters
    ----------
    model : nn.Module
        Any model; its trainable parameters (``requires_grad``), flattened in
        ``named_parameters`` order, are the D coordinates.
    data
        An object with tensors ``x`` ``[n, ...]`` and ``y`` ``[n, ...]``.
    loss : str or callable
        As in :func:`gnilab.train.get_loss`; must reduce by the mean over examples.
    chunk_size : int, optional
        Evaluate the loss over at most this many examples at a time (bounds memory).
    cache : bool, optional
        Keep the graph of ∇L (one forward and backward over all data) so that each product is a
        single double-backward pass: about 2–3× faster, memory of a full-batch backward.
        Default: ``True`` when ``chunk_size`` is None, else ``False`` (recompute per chunk).
    dtype : torch.dtype, optional
        Compute in this dtype (e.g. ``torch.float64`` for reference values); default the model's.
    batch : int
        Vectors per vectorised double-backward pass when a ``[D, m]`` block is multiplied.
        1 (a loop) by default: on the CPU, batching (``is_grads_batched``) is slower per vector
        for convolutional nets (0.69 s vs 0.39 s for ConvSmall on 1200 images), faster for MLPs.

    Notes
    -----
    ``H @ v`` accepts ``[D]`` or ``[D, m]`` (m vectors in one batched pass) on any device and
    returns the same shape in the operator's dtype and device.
    """

    def __init__(self, model: nn.Module, data, loss: LossLike = "cross_entropy", *,
                 chunk_size: Optional[int] = None, cache: Optional[bool] = None,
                 dtype: Optional[torch.dtype] = None, batch: int = 1):
        self._obj = _Objective(model, data, loss, chunk_size, dtype)
        self.batch = check_int("batch", batch, low=1)
        self.cache = (chunk_size is None) if cache is None else bool(cache)
        self._graphs = None
        self.matvecs = 0   # number of Hessian–vector products so far (a batch of m counts m)

    # -- properties ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return (self._obj.dim, self._obj.dim)

    @property
    def dim(self) -> int:
        return self._obj.dim

    @property
    def dtype(self) -> torch.dtype:
        return self._obj.dtype

    @property
    def device(self) -> torch.device:
        return self._obj.device

    @property
    def params(self) -> torch.Tensor:
        """θ, the flat parameter vector ``[D]`` at which H is taken."""
        return self._obj.theta

    def loss(self) -> float:
        """L(θ)."""
        return float(self._obj.value(self._obj.theta))

    def gradient(self) -> torch.Tensor:
        """∇L(θ), shape ``[D]``."""
        return sum(g for _, g in self._grad_graphs(create_graph=False)).detach()

    # -- products -----------------------------------------------------------------------------
    def _grad_graphs(self, create_graph: bool):
        """Per chunk: (the leaf θ, ∇ of that chunk's share of L)."""
        for a, b in self._obj.chunks:
            leaf = self._obj.theta.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                g, = torch.autograd.grad(self._obj.chunk_loss(leaf, a, b), leaf,
                                         create_graph=create_graph)
            yield leaf, g

    def _products(self, vectors: torch.Tensor) -> torch.Tensor:
        """H V for V of shape ``[m, D]`` → ``[m, D]``."""
        batched = vectors.shape[0] > 1
        v = vectors if batched else vectors[0]
        if self.cache:
            if self._graphs is None:
                self._graphs = list(self._grad_graphs(create_graph=True))
            graphs = self._graphs
        else:
            graphs = self._grad_graphs(create_graph=True)
        out = None
        for leaf, g in graphs:
            if not g.requires_grad:   # the loss is linear in θ over this chunk
                part = torch.zeros_like(vectors)
            else:
                part, = torch.autograd.grad(g, leaf, grad_outputs=v, retain_graph=self.cache,
                                            is_grads_batched=batched, allow_unused=True)
                part = torch.zeros_like(vectors) if part is None else part.reshape(vectors.shape)
            out = part if out is None else out + part
        return out.detach()

    def matvec(self, v: torch.Tensor, batch: Optional[int] = None) -> torch.Tensor:
        """H v for ``v`` of shape ``[D]`` or ``[D, m]`` (m products, ``batch`` per pass;
        default the operator's)."""
        if not isinstance(v, torch.Tensor):
            v = torch.as_tensor(v)
        if v.shape[0] != self.dim or v.dim() > 2:
            raise ValueError(f"v must have shape [{self.dim}] or [{self.dim}, m], got "
                             f"{tuple(v.shape)}")
        single = v.dim() == 1
        cols = v.reshape(self.dim, -1).T.to(self.device, self.dtype)
        batch = self.batch if batch is None else check_int("batch", batch, low=1)
        out = torch.cat([self._products(cols[i:i + batch]) for i in range(0, cols.shape[0], batch)])
        self.matvecs += cols.shape[0]
        return out[0] if single else out.T

    __matmul__ = matvec

    def release(self) -> None:
        """Drop the cached graph (it is rebuilt on the next product)."""
        self._graphs = None

    def to_dense(self, max_dim: int = MAX_DENSE, batch: int = 64) -> torch.Tensor:
        """The dense Hessian ``[D, D]`` by D products with the unit vectors (refused for
        D > ``max_dim``: use :func:`lanczos` / :func:`hutchinson_trace` instead)."""
        max_dim = check_int("max_dim", max_dim, low=1)
        if self.dim > max_dim:
            raise ValueError(f"refusing to form a dense {self.dim}x{self.dim} Hessian (D = "
                             f"{self.dim} > max_dim = {max_dim}); use lanczos(), "
                             "hutchinson_trace() or matvec() instead")
        eye = torch.eye(self.dim, device=self.device, dtype=self.dtype)
        h = self.matvec(eye, batch=batch)
        return 0.5 * (h + h.T)

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (float64 in and out) for ARPACK & co."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x):
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
            return self.matvec(t.reshape(self.dim, -1)).double().cpu().numpy().reshape(x.shape)

        return LinearOperator(self.shape, matvec=mv, matmat=mv, rmatvec=mv, dtype=np.float64)

    def __repr__(self) -> str:
        return (f"HessianOperator(D={self.dim}, n={self._obj.n}, chunks={len(self._obj.chunks)}, "
                f"cache={self.cache}, dtype={self.dtype}, device={self.device})")


def hessian_operator(model: nn.Module, data, loss: LossLike = "cross_entropy", *,
                     chunk_size: Optional[int] = None, cache: Optional[bool] = None,
                     dtype: Optional[torch.dtype] = None, batch: int = 1) -> HessianOperator:
    """:class:`HessianOperator` of the mean loss of ``model`` over ``data`` (Zhu et al. Eq. 1).

    Parameters
    ----------
    model : nn.Module
        Any model; its trainable parameters (``requires_grad``), flattened in
        ``named_parameters`` order, are the D coordinates. Its parameters are copied, never
        modified.
    data
        An object with tensors ``x`` ``[n, ...]`` and ``y`` ``[n, ...]`` (n ≥ 1 examples).
    loss : str or callable
        As in :func:`gnilab.train.get_loss`; must reduce by the mean over examples.
    chunk_size : int, optional
        Evaluate the loss over at most this many examples (≥ 1) at a time (bounds memory);
        ``None``: all examples at once.
    cache : bool, optional
        Keep the graph of ∇L between products (see :class:`HessianOperator`); default
        ``True`` when ``chunk_size`` is None, else ``False``.
    dtype : torch.dtype, optional
        Compute in this dtype; default the model's.
    batch : int
        Vectors (≥ 1) per vectorised double-backward pass.

    Returns
    -------
    HessianOperator
        The ``(D, D)`` operator at the model's current parameters (a snapshot).
    """
    return HessianOperator(model, data, loss, chunk_size=chunk_size, cache=cache, dtype=dtype,
                           batch=batch)


def dense_hessian(model: nn.Module, data, loss: LossLike = "cross_entropy", *,
                  max_dim: int = MAX_DENSE, chunk_size: Optional[int] = None,
                  dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """The dense Hessian ``[D, D]``; raises ValueError when D > ``max_dim``.

    The Hessian of the mean loss of Zhu et al. (2019), Eq. 1, formed by D Hessian–vector
    products with the unit vectors (:meth:`HessianOperator.to_dense`) and symmetrised.

    Parameters
    ----------
    model : nn.Module
        Any model; its trainable parameters are the D coordinates (never modified).
    data
        An object with tensors ``x`` ``[n, ...]`` and ``y`` ``[n, ...]``.
    loss : str or callable
        As in :func:`gnilab.train.get_loss`; must reduce by the mean over examples.
    max_dim : int
        Largest D (≥ 1) for which the dense matrix is formed; default :data:`MAX_DENSE`.
    chunk_size : int, optional
        Evaluate the loss over at most this many examples at a time (bounds memory).
    dtype : torch.dtype, optional
        Compute in this dtype (e.g. ``torch.float64``); default the model's.

    Returns
    -------
    Tensor
        The Hessian ``[D, D]``, symmetrised as ``½ (H + Hᵀ)``, in the compute dtype on the
        model's device.
    """
    return hessian_operator(model, data, loss, chunk_size=chunk_size,
                            dtype=dtype).to_dense(max_dim=max_dim)


# --------------------------------------------------------------------------------------------
# generic operators
# --------------------------------------------------------------------------------------------


class _DenseOperator:
    def __init__(self, a: torch.Tensor):
        if a.dim() != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"a matrix operator must be square, got shape {tuple(a.shape)}")
        self.a, self.shape, self.dtype, self.device = a, tuple(a.shape), a.dtype, a.device

    def matvec(self, v):
        return self.a @ v.to(self.device, self.dtype)


def _operator(op):
    if isinstance(op, torch.Tensor):
        return _DenseOperator(op)
    if not (hasattr(op, "matvec") and hasattr(op, "shape")):
        raise TypeError(f"op must be a HessianOperator, GradientCovariance, square tensor or an "
                        f"object with shape and matvec, got {type(op).__name__}")
    if len(op.shape) != 2 or op.shape[0] != op.shape[1]:
        raise ValueError(f"op must be square, got shape {tuple(op.shape)}")
    return op


def _op_meta(op):
    dim = int(op.shape[0])
    device = getattr(op, "device", torch.device("cpu"))
    dtype = getattr(op, "dtype", torch.float32)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        dtype = torch.float64
    return dim, device, dtype


def _apply(op, v64: torch.Tensor, dtype) -> torch.Tensor:
    """op @ v with v in float64 (columns or a vector), result in float64 on v's device."""
    return op.matvec(v64.to(dtype)).to(v64.device, torch.float64)
