"""Spectral tools for any symmetric operator: Lanczos eigenpairs (or ARPACK), Hutchinson traces and
the spectral density by stochastic Lanczos quadrature."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from .._common.checks import check_choice, check_int, check_real
from ._hessian import (hessian_operator, LossLike, _apply, _as_generator, _op_meta, _operator,
                       _rademacher, _randn)


@dataclass(frozen=True)
class Eigenpairs:
    """Eigenpairs of a symmetric operator, eigenvalues in descending order.

    The result of :func:`lanczos` (the Lanczos process, Lanczos 1950; Golub & Van Loan §10.1),
    of ARPACK's ``eigsh`` or of :meth:`GradientCovariance.eigenpairs`.

    Attributes
    ----------
    values : Tensor ``[k]``
        The eigenvalues (Ritz values) λ_i, float64, descending (by magnitude for ``which="LM"``).
    vectors : Tensor ``[D, k]``
        The eigenvectors v_i as unit columns, float64, on the operator's device.
    residuals : Tensor ``[k]``
        ``‖A v_i − λ_i v_i‖`` (Lanczos' bound ``|β_m s_{m,i}|``, or measured for ``eigsh``).
    matvecs : int
        Operator products used.
    method : str
        ``"lanczos"``, ``"eigsh"`` or ``"gram"`` (from the Gram matrix of a covariance factor).
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
    the spectrum whose fast decay is Zhu et al.'s condition Eq. 15.

    Parameters
    ----------
    model : nn.Module
        Any model; its trainable parameters are the D coordinates (never modified).
    data
        An object with tensors ``x`` ``[n, ...]`` and ``y`` ``[n, ...]``.
    k : int
        Number of eigenpairs, 1 ≤ k ≤ D.
    loss : str or callable
        As in :func:`gnilab.train.get_loss`; must reduce by the mean over examples.
    which : {"LA", "LM"}
        Largest algebraic (default) or largest magnitude eigenvalues.
    method : {"lanczos", "eigsh"}
        As in :func:`lanczos`.
    max_iter : int, optional
        As in :func:`lanczos`.
    tol : float
        Relative residual tolerance, in (0, 1).
    chunk_size : int, optional
        Evaluate the loss over at most this many examples at a time (bounds memory).
    dtype : torch.dtype, optional
        Compute the Hessian–vector products in this dtype; default the model's.
    generator : torch.Generator, optional
        Draws the Gaussian start vector.

    Returns
    -------
    Eigenpairs
        The top-k Hessian eigenvalues (descending) and unit eigenvectors ``[D, k]``.
    """
    op = hessian_operator(model, data, loss, chunk_size=chunk_size, dtype=dtype)
    return lanczos(op, k, which=which, method=method, max_iter=max_iter, tol=tol,
                   generator=generator)


# --------------------------------------------------------------------------------------------
# trace and spectral density
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceEstimate:
    """A trace with its standard error (0 for an exact value), e.g. Hutchinson's (1989) estimate.

    Attributes
    ----------
    value : float
        The trace (or its estimate); ``float(estimate)`` returns it.
    stderr : float
        Its standard error (0 for an exact or given value).
    samples : int
        Probe vectors (or products) used; 0 for a value given by the caller.
    method : str
        How it was obtained: ``"hutchinson-rademacher"``, ``"hutchinson-gaussian"``,
        ``"exact"`` or ``"given"``.
    """

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
    (Rademacher or Gaussian z), and its standard error ``std(z_jᵀ A z_j) / √m``
    (Hutchinson 1989).

    Parameters
    ----------
    op : operator as in :func:`lanczos`.
        A square operator ``(D, D)``: :class:`HessianOperator`, :class:`GradientCovariance`,
        a square tensor or any object with ``shape`` and ``matvec``.
    samples : int
        m ≥ 2 probe vectors.
    block : int
        Probes (≥ 1) drawn and handed to the operator at a time.
    distribution : {"rademacher", "gaussian"}
        The law of the probe entries: ±1 with equal probability, or N(0, 1).
    generator : torch.Generator, optional
        Draws the probes (on the CPU, then moved to the operator's device).

    Returns
    -------
    TraceEstimate
        The mean of the m quadratic forms, its standard error, m and the method
        (``"hutchinson-rademacher"`` or ``"hutchinson-gaussian"``).
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
    ``grid_size`` points over that range padded by 5 σ (Ubaru, Chen & Saad 2017).

    Parameters
    ----------
    op : operator as in :func:`lanczos`.
        A symmetric operator ``(D, D)``: :class:`HessianOperator`,
        :class:`GradientCovariance`, a square tensor or any object with ``shape`` and
        ``matvec``.
    steps : int
        Lanczos steps m per probe, 1 ≤ m ≤ D (fewer nodes if the Krylov space breaks down).
    probes : int
        Number n_v ≥ 1 of random start vectors averaged over.
    grid : Tensor, optional
        Eigenvalue points ``[G]`` at which the density is evaluated (float64); default a
        uniform grid as described above.
    grid_size : int
        G ≥ 2, the number of points of the default grid.
    sigma : float, optional
        Gaussian broadening (> 0, a standard deviation in eigenvalue units); default 1 % of
        the Ritz-value range.
    generator : torch.Generator, optional
        Draws the Gaussian start vectors.

    Returns
    -------
    SpectralDensity
        The grid, the density on it, the Ritz nodes and weights ``[n_v, m]`` and σ.
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
