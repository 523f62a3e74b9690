"""Curvature of the training loss and the structure of the gradient noise (Chapter 3).

Zhu, Wu, Yu, Wu & Ma (ICML 2019), "The anisotropic noise in stochastic gradient descent": near a
minimum the escaping efficiency of ``dθ = −∇L dt + Σ^{1/2} dW`` is governed by the indicator
``Tr(HΣ)`` (their Eqs. 11 and 13), compared at equal noise energy ``Tr Σ`` (Eq. 14) with its
isotropic counterpart ``Tr(H Σ̄) = Tr H · Tr Σ / D``; Proposition 1 (Eqs. 15–17) bounds the ratio
through the projection coefficient ``a`` of Eq. 16, ``u₁ᵀΣu₁ ≥ a λ₁ Tr Σ / Tr H``.

Everything here works on the loss ``L(θ) = (1/n) Σ_i ℓ(x_i, y_i; θ)`` (their Eq. 1) of any torch
model over a data set (an object with tensors ``x`` and ``y``), without forming a D×D matrix
unless asked to (D = number of trainable parameters):

* :class:`HessianOperator` — Hessian–vector products (double backward through a cached graph,
  or recomputed chunk by chunk), a linear operator of shape ``(D, D)``;
* :func:`lanczos` / :func:`hessian_eigenpairs` — top-k eigenpairs by Lanczos with full
  reorthogonalisation (or ARPACK's ``eigsh`` on the same operator);
* :func:`hutchinson_trace`, :func:`spectral_density` (stochastic Lanczos quadrature);
* :class:`GradientCovariance` — Σ of per-example (or minibatch) gradients as a low-rank factor;
* :func:`noise_indicator` — ``Tr(HΣ)`` and ``Tr H Tr Σ / D``; :func:`projection_coefficient`;
* :func:`expected_sharpness` — ``E[L(θ+ν)] − L(θ)``, ``ν ~ N(0, δ²I)`` (their Fig. 3, right).

The model is put in ``eval`` mode while the loss is evaluated (dropout off), as in
:mod:`gnilab.noise`; its parameters are never modified.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from ._validation import (check_choice, check_finite_data, check_finite_module, check_generator,
                          check_int, check_real)
from .train import get_loss

__all__ = [
    "MAX_DENSE",
    "HessianOperator",
    "hessian_operator",
    "dense_hessian",
    "Eigenpairs",
    "lanczos",
    "hessian_eigenpairs",
    "TraceEstimate",
    "hutchinson_trace",
    "SpectralDensity",
    "spectral_density",
    "GradientCovariance",
    "gradient_covariance",
    "NoiseIndicator",
    "noise_indicator",
    "projection_coefficient",
    "SharpnessEstimate",
    "expected_sharpness",
]

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
    """:class:`HessianOperator` of the mean loss of ``model`` over ``data`` (Zhu et al. Eq. 1)."""
    return HessianOperator(model, data, loss, chunk_size=chunk_size, cache=cache, dtype=dtype,
                           batch=batch)


def dense_hessian(model: nn.Module, data, loss: LossLike = "cross_entropy", *,
                  max_dim: int = MAX_DENSE, chunk_size: Optional[int] = None,
                  dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """The dense Hessian ``[D, D]``; raises ValueError when D > ``max_dim``."""
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


# --------------------------------------------------------------------------------------------
# Lanczos
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Eigenpairs:
    """Eigenpairs of a symmetric operator, eigenvalues in descending order.

    Attributes
    ----------
    values : Tensor ``[k]``
    vectors : Tensor ``[D, k]`` (unit columns)
    residuals : Tensor ``[k]``
        ``‖A v_i − λ_i v_i‖`` (Lanczos' bound ``|β_m s_{m,i}|``, or measured for ``eigsh``).
    matvecs : int
        Operator products used.
    method : str
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    matvecs: int
    method: str


def _orthogonalise(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Classical Gram–Schmidt twice ("twice is enough") against the columns of ``basis``."""
    for _ in range(2):
        w = w - basis @ (basis.T @ w)
    return w


def _lanczos_run(op, dim, dtype, q0: torch.Tensor, steps: int, k: Optional[int], which: str,
                 tol: float, check_every: int = 5):
    """Lanczos with full reorthogonalisation from the unit vector ``q0`` (float64).

    Returns (Q [D, m], alpha [m], beta [m]) where beta[-1] is the residual norm of the last step.
    With ``k`` given, stops early when the k wanted Ritz pairs have residual ≤ tol·max|θ|.
    """
    basis = torch.empty(dim, steps, dtype=torch.float64, device=q0.device)
    alpha, beta = [], []
    q, m = q0, 0
    for j in range(steps):
        basis[:, j] = q
        w = _apply(op, q, dtype)
        a = float(q @ w)
        w = _orthogonalise(w, basis[:, :j + 1])
        b = float(w.norm())
        alpha.append(a)
        beta.append(b)
        m = j + 1
        if b <= 1e-12 * max(abs(a), 1e-300) or m == dim:   # invariant subspace found
            break
        if k is not None and m >= k and (m % check_every == 0 or m == steps):
            theta, s = _tridiag_eigh(alpha, beta[:-1])
            idx = _wanted(theta, k, which)
            res = np.abs(b * s[-1, idx])
            if np.all(res <= tol * max(np.abs(theta).max(), 1e-300)):
                break
        q = w / b
    return basis[:, :m], alpha, beta


def _tridiag_eigh(alpha, off):
    t = np.diag(np.asarray(alpha, dtype=np.float64))
    if len(off):
        o = np.asarray(off, dtype=np.float64)
        t += np.diag(o, 1) + np.diag(o, -1)
    return np.linalg.eigh(t)


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    order = np.argsort(-theta) if which == "LA" else np.argsort(-np.abs(theta))
    return order[:k]


def _check_k(k, dim) -> int:
    return check_int("k", k, low=1, high=dim)


def lanczos(op, k: int = 1, *, which: str = "LA", method: str = "lanczos",
            max_iter: Optional[int] = None, tol: float = 1e-5,
            generator: Optional[torch.Generator] = None) -> Eigenpairs:
    """Top-k eigenpairs of a symmetric operator, never forming it.

    ``method="lanczos"``: the Lanczos process (Golub & Van Loan §10.1) with full
    reorthogonalisation, grown until the k wanted Ritz pairs have residual
    ``‖A y − θ y‖ = |β_m s_{m,i}| ≤ tol · max|θ|`` (checked every 5 steps) or ``max_iter``
    steps; one product per step, the basis ``[D, m]`` kept in float64.
    ``method="eigsh"``: ARPACK's implicitly restarted Lanczos
    (``scipy.sparse.linalg.eigsh``) on the same products, float64 on the CPU.

    Parameters
    ----------
    op : HessianOperator, GradientCovariance, square Tensor or any object with ``shape`` and
        ``matvec``.
    k : int
        Number of eigenpairs, 1 ≤ k ≤ D.
    which : {"LA", "LM"}
        Largest algebraic (default; the sharpest directions) or largest magnitude.
    max_iter : int, optional
        Largest Krylov dimension (``lanczos``; default ``min(D, max(10k, k + 100))``) or number
        of restarts (``eigsh``).
    tol : float
        Relative residual tolerance, in (0, 1).
    generator : torch.Generator, optional
        Draws the Gaussian start vector.

    Returns
    -------
    Eigenpairs
        ``values`` descending (by value for ``LA``, by magnitude for ``LM``), ``vectors [D, k]``
        in float64 on the operator's device.
    """
    op = _operator(op)
    dim, device, dtype = _op_meta(op)
    k = _check_k(k, dim)
    check_choice("which", which, ("LA", "LM"))
    check_choice("method", method, ("lanczos", "eigsh"))
    tol = check_real("tol", tol, low=0, high=1, low_open=True, high_open=True)
    generator = _as_generator(generator)
    start = _randn((dim,), generator, device, torch.float64)
    start = start / start.norm()
    if method == "eigsh":
        return _eigsh(op, dim, device, dtype, k, which, max_iter, tol, start)
    steps = min(dim, max(10 * k, k + 100)) if max_iter is None else check_int(
        "max_iter", max_iter, low=k, high=None)
    steps = min(steps, dim)
    basis, alpha, beta = _lanczos_run(op, dim, dtype, start, steps, k, which, tol)
    theta, s = _tridiag_eigh(alpha, beta[:-1])
    idx = _wanted(theta, min(k, len(theta)), which)
    if len(idx) < k:
        raise ValueError(f"the Krylov space from the start vector has dimension {len(theta)} < "
                         f"k = {k} (the operator has rank < k along it)")
    vectors = basis @ torch.from_numpy(s[:, idx]).to(basis.device)
    residuals = torch.from_numpy(np.abs(beta[-1] * s[-1, idx]))
    return Eigenpairs(torch.from_numpy(theta[idx].copy()), vectors, residuals, len(alpha),
                      "lanczos")


def _eigsh(op, dim, device, dtype, k, which, max_iter, tol, start):
    from scipy.sparse.linalg import LinearOperator, eigsh

    count = [0]

    def mv(x):
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(device)
        count[0] += 1 if t.dim() == 1 or t.shape[-1] == 1 else t.shape[-1]
        return _apply(op, t.reshape(dim, -1) if t.dim() > 1 else t, dtype).cpu().numpy().reshape(x.shape)

    lin = LinearOperator((dim, dim), matvec=mv, rmatvec=mv, dtype=np.float64)
    if k >= dim:
        raise ValueError(f"method='eigsh' needs k < D, got k = {k}, D = {dim}")
    ncv = min(dim, max(2 * k + 1, 20))
    vals, vecs = eigsh(lin, k=k, which=which, v0=start.cpu().numpy(), tol=tol, ncv=ncv,
                       maxiter=None if max_iter is None else check_int("max_iter", max_iter, low=1))
    order = np.argsort(-vals) if which == "LA" else np.argsort(-np.abs(vals))
    vals, vecs = vals[order], vecs[:, order]
    v = torch.from_numpy(vecs).to(device)
    res = (_apply(op, v, dtype) - v * torch.from_numpy(vals).to(device)).norm(dim=0).cpu()
    return Eigenpairs(torch.from_numpy(vals.copy()), v, res, count[0], "eigsh")


def hessian_eigenpairs(model: nn.Module, data, k: int = 1, loss: LossLike = "cross_entropy", *,
                       which: str = "LA", method: str = "lanczos", max_iter: Optional[int] = None,
                       tol: float = 1e-5, chunk_size: Optional[int] = None,
                       dtype: Optional[torch.dtype] = None,
                       generator: Optional[torch.Generator] = None) -> Eigenpairs:
    """Top-k Hessian eigenpairs of the mean loss (:func:`lanczos` on :class:`HessianOperator`);
    the spectrum whose fast decay is Zhu et al.'s condition Eq. 15."""
    op = hessian_operator(model, data, loss, chunk_size=chunk_size, dtype=dtype)
    return lanczos(op, k, which=which, method=method, max_iter=max_iter, tol=tol,
                   generator=generator)


# --------------------------------------------------------------------------------------------
# trace and spectral density
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TraceEstimate:
    """A trace with its standard error (0 for an exact value)."""

    value: float
    stderr: float
    samples: int
    method: str

    def __float__(self) -> float:
        return self.value


def _check_samples(samples, low=2) -> int:
    return check_int("samples", samples, low=low)


def hutchinson_trace(op, samples: int = 100, *, block: int = 16, distribution: str = "rademacher",
                     generator: Optional[torch.Generator] = None) -> TraceEstimate:
    """Hutchinson's estimate ``Tr A ≈ (1/m) Σ_j z_jᵀ A z_j`` with ``E[z zᵀ] = I``
    (Rademacher or Gaussian z), and its standard error ``std(z_jᵀ A z_j) / √m``.

    Parameters
    ----------
    op : operator as in :func:`lanczos`.
    samples : int
        m ≥ 2 probe vectors.
    block : int
        Probes drawn and handed to the operator at a time.
    distribution : {"rademacher", "gaussian"}
    generator : torch.Generator, optional
    """
    op = _operator(op)
    dim, device, dtype = _op_meta(op)
    samples = _check_samples(samples)
    batch = check_int("block", block, low=1)
    check_choice("distribution", distribution, ("rademacher", "gaussian"))
    generator = _as_generator(generator)
    draw = _rademacher if distribution == "rademacher" else _randn
    quads = []
    for i in range(0, samples, batch):
        z = draw((dim, min(batch, samples - i)), generator, device, torch.float64)
        quads.append((z * _apply(op, z, dtype)).sum(0))
    q = torch.cat(quads).cpu()
    return TraceEstimate(float(q.mean()), float(q.std() / math.sqrt(samples)), samples,
                         f"hutchinson-{distribution}")


@dataclass(frozen=True)
class SpectralDensity:
    """Eigenvalue density by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017;
    Ghorbani, Krishnan & Xiao 2019).

    Attributes
    ----------
    grid : Tensor ``[G]``
    density : Tensor ``[G]``
        ``φ(t) = (1/n_v) Σ_l Σ_j τ_{lj} N(t; θ_{lj}, σ²)``, integrates to ≈ 1.
    nodes, weights : Tensor ``[n_v, m]``
        Ritz values θ and quadrature weights τ (squared first components) per probe.
    sigma : float
        The Gaussian broadening (a standard deviation, in eigenvalue units).
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float


def spectral_density(op, steps: int = 80, probes: int = 1, *, grid: Optional[torch.Tensor] = None,
                     grid_size: int = 1000, sigma: Optional[float] = None,
                     generator: Optional[torch.Generator] = None) -> SpectralDensity:
    """The eigenvalue density of a symmetric operator by stochastic Lanczos quadrature.

    Each of ``probes`` Gaussian unit vectors v starts a ``steps``-step Lanczos run (full
    reorthogonalisation); ``vᵀ f(A) v ≈ Σ_j τ_j f(θ_j)`` with Ritz values θ_j and weights
    τ_j = (e₁ᵀ s_j)². ``sigma`` defaults to 1 % of the Ritz-value range; the grid to
    ``grid_size`` points over that range padded by 5 σ.
    """
    op = _operator(op)
    dim, device, dtype = _op_meta(op)
    steps = check_int("steps", steps, low=1, high=dim)
    probes = check_int("probes", probes, low=1)
    grid_size = check_int("grid_size", grid_size, low=2)
    generator = _as_generator(generator)
    nodes, weights = [], []
    for _ in range(probes):
        v = _randn((dim,), generator, device, torch.float64)
        _, alpha, beta = _lanczos_run(op, dim, dtype, v / v.norm(), steps, None, "LA", 0.0)
        theta, s = _tridiag_eigh(alpha, beta[:-1])
        pad = steps - len(theta)   # early breakdown: pad with zero-weight nodes
        nodes.append(np.concatenate([theta, np.full(pad, theta[-1])]))
        weights.append(np.concatenate([s[0] ** 2, np.zeros(pad)]))
    nodes_t, weights_t = torch.tensor(np.array(nodes)), torch.tensor(np.array(weights))
    lo, hi = float(nodes_t.min()), float(nodes_t.max())
    if sigma is None:
        sigma = 0.01 * max(hi - lo, abs(hi), 1e-12)
    sigma = check_real("sigma", sigma, low=0, low_open=True)
    if grid is None:
        grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_size, dtype=torch.float64)
    grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    diff = (grid[:, None, None] - nodes_t[None]) / sigma
    kern = torch.exp(-0.5 * diff ** 2) / (sigma * math.sqrt(2 * math.pi))
    density = (kern * weights_t[None]).sum((1, 2)) / probes
    return SpectralDensity(grid, density, nodes_t, weights_t, float(sigma))


# --------------------------------------------------------------------------------------------
# gradient covariance
# --------------------------------------------------------------------------------------------

class GradientCovariance:
    """A covariance ``Σ = c · Aᵀ A`` held as its factor A ``[r, D]`` (centred gradients as rows).

    For per-example gradients g_i (``batch_size=1`` in :func:`gradient_covariance`),
    ``A = G − ḡ`` and c = 1/n: ``Σ = (1/n) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ``, the SGD noise covariance
    per example (Zhu et al. Eq. 5 with m = 1). Products, trace, diagonal and eigenpairs cost
    O(rD) or O(r²D); nothing D×D is formed unless :meth:`to_dense` is asked for.

    Attributes
    ----------
    factor : Tensor ``[r, D]``
    scale : float
        c.
    mean : Tensor ``[D]``
        ḡ, the mean gradient.
    batch_size : int
        b: the minibatch size whose gradient noise this Σ describes (1: per example).
    """

    def __init__(self, factor: torch.Tensor, scale: float, mean: torch.Tensor,
                 batch_size: int = 1):
        if factor.dim() != 2:
            raise ValueError(f"factor must be a [r, D] matrix, got shape {tuple(factor.shape)}")
        self.factor, self.mean = factor, mean
        self.scale = check_real("scale", scale, low=0)
        self.batch_size = batch_size

    @property
    def shape(self) -> tuple:
        return (self.factor.shape[1], self.factor.shape[1])

    @property
    def dim(self) -> int:
        return self.factor.shape[1]

    @property
    def rank_bound(self) -> int:
        return self.factor.shape[0]

    @property
    def dtype(self):
        return self.factor.dtype

    @property
    def device(self):
        return self.factor.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Σ v for ``v`` of shape ``[D]`` or ``[D, m]``."""
        v = v.to(self.device, self.dtype)
        return self.scale * (self.factor.T @ (self.factor @ v))

    __matmul__ = matvec

    def trace(self) -> float:
        """Tr Σ = c ‖A‖_F² (exact)."""
        return self.scale * float(self.factor.double().pow(2).sum())

    def diagonal(self) -> torch.Tensor:
        """diag Σ, shape ``[D]``."""
        return self.scale * self.factor.pow(2).sum(0)

    def quadratic(self, u: torch.Tensor) -> torch.Tensor:
        """uᵀ Σ u for ``u`` ``[D]`` (a scalar) or each column of ``u`` ``[D, m]`` (``[m]``)."""
        au = self.factor.double() @ u.to(self.device, torch.float64)
        return self.scale * au.pow(2).sum(0)

    def eigenpairs(self, k: int = 1) -> Eigenpairs:
        """Top-k eigenpairs from the r×r Gram matrix ``c A Aᵀ = W Λ Wᵀ`` (float64):
        eigenvectors ``Aᵀ W Λ^{-1/2} √c``; exact up to rounding, O(r²D + r³)."""
        k = check_int("k", k, low=1, high=min(self.dim, self.rank_bound))
        a = self.factor.double()
        lam, w = torch.linalg.eigh(self.scale * (a @ a.T))
        lam, w = lam.flip(0)[:k], w.flip(1)[:, :k]
        pos = lam.clamp_min(1e-300)
        vecs = (a.T @ w) * (self.scale / pos).sqrt()
        vecs = vecs / vecs.norm(dim=0).clamp_min(1e-300)
        res = (self.matvec(vecs.to(self.dtype)).double() - vecs * lam).norm(dim=0)
        return Eigenpairs(lam.cpu(), vecs, res.cpu(), 0, "gram")

    def scaled(self, factor: float, batch_size: Optional[int] = None) -> "GradientCovariance":
        """c·Σ with the same factor (e.g. the minibatch correction)."""
        return GradientCovariance(self.factor, self.scale * factor, self.mean,
                                  self.batch_size if batch_size is None else batch_size)

    def minibatch(self, batch_size: int, replacement: bool = False) -> "GradientCovariance":
        """Σ_b, the covariance of the gradient of a minibatch of b examples drawn uniformly
        from the n (per-example Σ only): ``(n − b) / (b (n − 1)) · Σ`` without replacement,
        ``Σ / b`` with replacement (Zhu et al. Eq. 5 is the latter)."""
        if self.batch_size != 1:
            raise ValueError("minibatch() needs the per-example covariance (batch_size=1)")
        n = self.rank_bound
        b = check_int("batch_size", batch_size, low=1, high=n)
        c = 1.0 / b if replacement else ((n - b) / (b * (n - 1)) if n > 1 else 0.0)
        return self.scaled(c, b)

    def to_dense(self, max_dim: int = MAX_DENSE) -> torch.Tensor:
        """Σ as a dense ``[D, D]`` matrix (refused for D > ``max_dim``)."""
        max_dim = check_int("max_dim", max_dim, low=1)
        if self.dim > max_dim:
            raise ValueError(f"refusing to form a dense {self.dim}x{self.dim} covariance (D = "
                             f"{self.dim} > max_dim = {max_dim}); use matvec(), trace(), "
                             "diagonal() or eigenpairs()")
        return self.scale * (self.factor.T @ self.factor)

    def __repr__(self) -> str:
        return (f"GradientCovariance(D={self.dim}, rows={self.rank_bound}, "
                f"batch_size={self.batch_size}, trace={self.trace():.4g})")


def gradient_covariance(model: nn.Module, data, loss: LossLike = "cross_entropy", *,
                        batch_size: int = 1, method: str = "exact", ddof: int = 0,
                        generator: Optional[torch.Generator] = None,
                        chunk_size: Optional[int] = None) -> GradientCovariance:
    """The covariance of per-example (``batch_size=1``) or minibatch gradients at θ.

    Per example: ``Σ = (1/n) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ`` with g_i = ∇ℓ(x_i; θ) from
    :func:`gnilab.noise.minibatch_gradients` (``torch.func`` ``vmap``).

    For ``batch_size=b > 1``:

    * ``method="exact"``: Σ_b = (n − b)/(b(n − 1)) · Σ, the exact covariance of the gradient
      of a minibatch drawn without replacement (from the n per-example gradients);
    * ``method="sampled"``: the empirical covariance of the ⌊n/b⌋ minibatch gradients over one
      random partition of the data (the estimate of Zhu et al.'s code, which uses ``ddof=1``).

    ``ddof`` (0 or 1) sets the normaliser 1/(r − ddof) over the r rows (per-example and
    sampled; the exact Σ_b is always built from the 1/n-normalised Σ). The factor holds r
    gradients of D entries (n·D for the exact method: 54 MB for ConvSmall on 1200 images).
    """
    from .noise import minibatch_gradients

    n = _check_data(data)
    b = check_int("batch_size", batch_size, low=1, high=n)
    check_choice("method", method, ("exact", "sampled"))
    ddof = check_int("ddof", ddof, low=0, high=1)
    generator = _as_generator(generator)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, low=1)
    per_example = method == "exact" or b == 1
    grads = minibatch_gradients(model, data, 1 if per_example else b, loss,
                                shuffle=not per_example, generator=generator,
                                method="vmap" if per_example else "auto", chunk_size=chunk_size)
    r = grads.shape[0]
    if r - ddof < 1:
        raise ValueError(f"need more than {ddof} gradient(s) for ddof = {ddof}, got {r}")
    mean = grads.mean(0)
    if per_example and b > 1:   # exact Σ_b from the (1/n-normalised) per-example Σ
        return GradientCovariance(grads - mean, 1.0 / r, mean, 1).minibatch(b)
    return GradientCovariance(grads - mean, 1.0 / (r - ddof), mean, 1 if per_example else b)


# --------------------------------------------------------------------------------------------
# the indicator Tr(HΣ) and the projection coefficient
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoiseIndicator:
    """Zhu et al.'s escaping indicator and its isotropic counterpart at equal Tr Σ (Eq. 14).

    Attributes
    ----------
    trace_h_sigma, stderr : float
        Tr(HΣ) (Eqs. 11, 13) and its standard error (0 when exact).
    trace_h, trace_h_stderr : float
        Tr H (exact, or Hutchinson with its SE).
    trace_sigma : float
        Tr Σ (exact).
    dim : int
        D.
    isotropic : float
        Tr(H Σ̄) = Tr H · Tr Σ / D, Σ̄ = (Tr Σ / D) I.
    ratio : float
        Tr(HΣ) / Tr(H Σ̄) (Eq. 17's left side).
    method : str
    """

    trace_h_sigma: float
    stderr: float
    trace_h: float
    trace_h_stderr: float
    trace_sigma: float
    dim: int
    isotropic: float
    ratio: float
    method: str


def _check_pair(hessian, cov):
    if not isinstance(hessian, HessianOperator):
        raise TypeError(f"hessian must be a HessianOperator, got {type(hessian).__name__}")
    if not isinstance(cov, GradientCovariance):
        raise TypeError(f"cov must be a GradientCovariance, got {type(cov).__name__}")
    if hessian.dim != cov.dim:
        raise ValueError(f"hessian and cov have different dimensions: {hessian.dim} vs {cov.dim}")


def _trace_h(hessian, trace_h, samples, generator):
    if trace_h is None:
        if hessian.dim <= MAX_DENSE // 4:   # exact: D products
            eye = torch.eye(hessian.dim, device=hessian.device, dtype=hessian.dtype)
            return TraceEstimate(float(torch.diagonal(hessian.matvec(eye, batch=64)).sum()),
                                 0.0, hessian.dim, "exact")
        return hutchinson_trace(hessian, samples, generator=generator)
    if isinstance(trace_h, TraceEstimate):
        return trace_h
    return TraceEstimate(check_real("trace_h", trace_h), 0.0, 0, "given")


def noise_indicator(hessian: HessianOperator, cov: GradientCovariance, *, method: str = "exact",
                    samples: int = 100, trace_h=None, block: int = 16,
                    generator: Optional[torch.Generator] = None) -> NoiseIndicator:
    """Tr(HΣ) and its isotropic counterpart Tr H · Tr Σ / D (Zhu et al. Eqs. 13, 14, 17).

    Parameters
    ----------
    hessian : HessianOperator
    cov : GradientCovariance
        ``Σ = c AᵀA`` (rows a_i).
    method : {"exact", "hutchinson"}
        ``exact``: Tr(HΣ) = c Σ_i a_iᵀ H a_i, one Hessian–vector product per row of A.
        ``hutchinson``: ``samples`` probes w = Aᵀξ (ξ Rademacher in R^r), E[wᵀHw] = Tr(A H Aᵀ);
        the mean times c, with its SE. (With Gaussian ξ, w is exactly a draw of the noise
        N(0, Σ/c), so each term is the escaping efficiency of one draw.)
    samples : int
        Probes for ``hutchinson`` and for Tr H when it is estimated.
    trace_h : float or TraceEstimate, optional
        Tr H if already known; else exact for D ≤ 1024, Hutchinson (``samples`` probes) above.
    block : int
        Vectors handed to the Hessian operator at a time (it batches them by its ``batch``).
    generator : torch.Generator, optional
    """
    _check_pair(hessian, cov)
    check_choice("method", method, ("exact", "hutchinson"))
    samples = _check_samples(samples)
    batch = check_int("block", block, low=1)
    generator = _as_generator(generator)
    a = cov.factor
    if method == "exact":
        total = 0.0
        for i in range(0, a.shape[0], batch):
            rows = a[i:i + batch].T.to(hessian.device, hessian.dtype)
            total += float((rows.double() * hessian.matvec(rows).double()).sum())
        value, se = cov.scale * total, 0.0
    else:
        quads = []
        for i in range(0, samples, batch):
            xi = _rademacher((a.shape[0], min(batch, samples - i)), generator, a.device,
                             torch.float64)
            w = a.double().T @ xi
            quads.append((w * hessian.matvec(w).double()).sum(0).cpu())
        q = torch.cat(quads)
        value, se = cov.scale * float(q.mean()), cov.scale * float(q.std() / math.sqrt(samples))
    th = _trace_h(hessian, trace_h, samples, generator)
    ts = cov.trace()
    iso = th.value * ts / hessian.dim
    return NoiseIndicator(value, se, th.value, th.stderr, ts, hessian.dim, iso,
                          value / iso if iso != 0 else float("nan"), method)


def projection_coefficient(hessian: HessianOperator, cov: GradientCovariance, *,
                           top: Optional[Eigenpairs] = None, trace_h=None, samples: int = 100,
                           generator: Optional[torch.Generator] = None) -> float:
    """Zhu et al.'s projection coefficient (Proposition 1, Eq. 16) at equality:
    ``â = u₁ᵀ Σ u₁ · Tr H / (λ₁ · Tr Σ)`` with (λ₁, u₁) the top Hessian eigenpair.

    For isotropic Σ, â = Tr H / (D λ₁) (small for an ill-conditioned H); it is largest,
    Tr H / λ₁, for Σ* = Tr Σ · u₁u₁ᵀ, the Σ that maximises Tr(HΣ) at fixed Tr Σ; Eq. 17 then
    gives Tr(HΣ) / Tr(HΣ̄) = O(â D). ``top`` (from :func:`lanczos`) and ``trace_h`` are computed when not given
    (Lanczos to relative residual 1e-8 with ``generator``; Tr H as in
    :func:`noise_indicator`).
    """
    _check_pair(hessian, cov)
    generator = _as_generator(generator)
    if top is None:
        top = lanczos(hessian, 1, tol=1e-8, generator=generator)
    if not isinstance(top, Eigenpairs):
        raise TypeError(f"top must be an Eigenpairs, got {type(top).__name__}")
    lam1, u1 = float(top.values[0]), top.vectors[:, 0]
    th = _trace_h(hessian, trace_h, _check_samples(samples), generator).value
    ts = cov.trace()
    if lam1 == 0 or ts == 0:
        raise ValueError(f"â is undefined: λ₁ = {lam1:g}, Tr Σ = {ts:g}")
    return float(cov.quadratic(u1 / u1.norm())) * th / (lam1 * ts)


# --------------------------------------------------------------------------------------------
# expected sharpness
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SharpnessEstimate:
    """Monte Carlo expected sharpness ``E[L(θ+ν)] − L(θ)``, ν ~ N(0, δ²I).

    Attributes
    ----------
    value, stderr : float
    base_loss : float
        L(θ).
    delta : float
        δ, the standard deviation of each coordinate of ν.
    samples : int
        Draws of ν (pairs ±ν when antithetic).
    antithetic : bool
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
