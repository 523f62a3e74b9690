"""The gradient covariance Σ as a low-rank factor, the escaping indicator Tr(HΣ) against its
isotropic counterpart (Zhu et al. 2019, Eqs. 13–14) and the projection coefficient (Eq. 16)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .._common.checks import check_choice, check_int, check_real
from ._hessian import HessianOperator, LossLike, MAX_DENSE, _as_generator, _check_data, _rademacher
from ._spectrum import Eigenpairs, TraceEstimate, _check_samples, hutchinson_trace, lanczos


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

    This is the SGD noise covariance of Zhu et al. (2019), Eq. 5.

    Parameters
    ----------
    model : nn.Module
        Any model; its trainable parameters are the D coordinates (never modified).
    data
        An object with tensors ``x`` ``[n, ...]`` and ``y`` ``[n, ...]``.
    loss : str or callable
        As in :func:`gnilab.train.get_loss` (mean over examples).
    batch_size : int
        b, 1 ≤ b ≤ n: the minibatch size whose gradient noise Σ describes (1: per example).
    method : {"exact", "sampled"}
        How Σ_b is obtained for b > 1 (see above); ignored for b = 1.
    ddof : int
        0 or 1, the normaliser 1/(r − ddof) (see above).
    generator : torch.Generator, optional
        Draws the random partition of ``method="sampled"``.
    chunk_size : int, optional
        Compute the gradients over at most this many examples at a time (bounds memory).

    Returns
    -------
    GradientCovariance
        Σ (or Σ_b) as the factor of centred gradients ``[r, D]``, its scale c, the mean
        gradient ḡ ``[D]`` and the batch size it describes.
    """
    from ..noise import minibatch_gradients

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
        Draws the Rademacher ξ (``hutchinson``) and the probes of an estimated Tr H.

    Returns
    -------
    NoiseIndicator
        Tr(HΣ) with its standard error, Tr H (with its SE), Tr Σ, D, the isotropic
        counterpart Tr H · Tr Σ / D and the ratio of the two (NaN when the latter is 0).
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

    Parameters
    ----------
    hessian : HessianOperator
        H, of the same dimension D as ``cov``.
    cov : GradientCovariance
        Σ.
    top : Eigenpairs, optional
        The top Hessian eigenpair (λ₁, u₁) as the first of ``top``; computed when not given.
    trace_h : float or TraceEstimate, optional
        Tr H if already known; else computed as in :func:`noise_indicator`.
    samples : int
        Hutchinson probes (≥ 2) for Tr H when it is estimated (D > 1024).
    generator : torch.Generator, optional
        Draws the Lanczos start vector and the Hutchinson probes.

    Returns
    -------
    float
        â (dimensionless); raises ValueError when λ₁ = 0 or Tr Σ = 0.
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
