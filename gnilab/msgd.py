r"""Multiplicative noise: SGD as gradient descent on randomly re-weighted per-example losses
(Wu, Hu, Xiong, Huan, Braverman & Zhu 2020, *On the noisy gradient descent that generalizes as
SGD*, ICML; arXiv:1906.07405).

M-SGD (their Eq. 6)
-------------------
With the loss vector :math:`\mathbf L(\theta) = (\ell_1(\theta), \dots, \ell_N(\theta))` and the
gradient matrix :math:`\nabla\mathbf L = [\nabla\ell_1, \dots, \nabla\ell_N] \in \mathbb
R^{D\times N}`,

.. math::  \theta_{t+1} = \theta_t - \eta\,\nabla_\theta \textstyle\sum_i W_i\,\ell_i(\theta_t),
           \qquad E\,W = \tfrac1N \mathbf 1,

with a random weight vector :math:`W \in \mathbb R^N` ("M-noise"), drawn afresh each step and
independent of θ. :math:`W = \mathbf 1/N` is GD; :math:`W_i = \mathbb 1[i\in B]/b` is minibatch
SGD (Eq. 3). One step is **one weighted backward pass** (their Algorithm 1): no per-example
gradient is ever formed. The gradient noise is :math:`\nabla\mathbf L\,(W - \mathbf 1/N)`, with
covariance :math:`\nabla\mathbf L\,\mathrm{Cov}(W)\,\nabla\mathbf L^\top`.

The public code writes :math:`W = m/N` with a *mask* :math:`m` of mean 1 and passes
``s`` = the standard deviation of :math:`m_i` (``--std``); so does this module.

The families (``kind``)
-----------------------
W (through its mask m = N W) and its exact covariance, with :math:`C = I - \mathbf 1\mathbf
1^\top/N` and B = ``size``:

* ``"gd"``: W = 1/N; Cov 0.
* ``"sgd"``: W_i = 1[i ∈ B]/b, B a uniform subset of b (no replacement);
  Cov = (N−b)/(bN(N−1)) C (Proposition 1, Eq. 5).
* ``"sgd_replacement"``: W_i = c_i/b, c ~ Multinomial(b; 1/N); Cov = 1/(bN) C (Eq. 4).
* ``"bernoulli"``: m_i = Bernoulli(p)/p i.i.d.; Cov = (1−p)/(pN²) I.
* ``"fisher"``: m_i ~ N(1, s²) i.i.d.; Cov = s²/N² I.
* ``"cov"``: m = 1 + s(z − z̄), z ~ N(0, I_N); Cov = s²/N² C.
* ``"rademacher"``: m_i = 1 + s a_i, a_i = ±1 i.i.d.; Cov = s²/N² I.
* ``"fisher_sparse"`` (M-SGD-[Fisher-B]): m_i = 1 + s z_i on B random examples, 1 elsewhere;
  Cov = s²B/N³ I.
* ``"cov_sparse"`` (M-SGD-[Cov-B]): the same with z centred over the B;
  Cov = s²(B−1)/(N²(N−1)) C.
* ``"fisher_ghost"`` ([M-SGD-Fisher]-B): a batch S of B examples without replacement,
  W_S = m_S/B with m_i ~ N(1, s²), W = 0 off S; Cov = (N−B)/(BN(N−1)) C + s²/(NB) I.
* ``"cov_ghost"`` ([M-SGD-Cov]-B): the same with m centred within ghost batches of g;
  Cov = [(N−B)/(BN(N−1)) + s²(g−1)/(gB(N−1))] C.

``"cov"`` accepts ``ghost=g`` too (centring within consecutive groups of g; then Cov(W) =
s²/N² · blockdiag(I_g − 11ᵀ/g)). Every E W is 1/N.

The matching noise covariances: with :math:`F = \frac1N\nabla\mathbf L\nabla\mathbf L^\top`
(the "Fisher") and :math:`\Sigma = F - \nabla L\nabla L^\top` (the per-example gradient
covariance), Cov(W) = v C gives gradient noise v N Σ and Cov(W) = v I gives v N F. Minibatch
SGD has v = 1/(bN) (with replacement: noise Σ/b) or v = (N−b)/(bN(N−1)) (without replacement, as
the papers' code samples: noise (N−b)/(b(N−1)) Σ). When ``s`` is not given it is set from ``b``
so that the Gaussian part of Cov(W) has this v (``match="replacement"``, the paper's scale, or
``"without_replacement"``): s² = N²v for ``fisher``/``cov``/``rademacher`` (so s² = N/b with
replacement, giving F/b and Σ/b), N³v/B for ``fisher_sparse``, N²(N−1)v/(B−1) for
``cov_sparse``, NBv for ``fisher_ghost`` (B/b with replacement, the rule for the public
``sgdF.py``) and gB(N−1)v/(g−1) for ``cov_ghost`` (≈ B/b). ``bernoulli`` takes p = b/N, whose
Var W_i = (N−b)/(bN²) equals that of SGD without replacement: it is SGD's M-noise with the
correlations dropped ("the independent approximation").

The ghost kinds are large-batch SGD plus Gaussian masks: train with
``train.train(batch_size=B, sampling="independent", objective=obj)`` (:func:`train_msgd` does
this); the objective sees the B examples of the step and re-weights them with the law of
:meth:`MultiplicativeNoise.within_batch`. Their total noise is the large-batch SGD noise
(N−B)/(B(N−1)) Σ plus the injected F/b (Fisher) or ≈ Σ/b (Cov): slightly *more* than small-batch
SGD's Σ/b, the excess being the large batch's own sampling noise.

GD-Rademacher (their Fig. 1)
----------------------------
"GD on the loss with a Rademacher regulariser, solved approximately by abandoning the supremum
and absolute value": GD on :math:`L(\theta) + \lambda\frac1N\sum_i a_i\ell_i(\theta)` with a
fresh :math:`a \in \{\pm1\}^N` each step. That is M-SGD with ``kind="rademacher"`` and
``s = λ``. It is a noise, not a regulariser: in expectation the added term is 0, and what it
does to training it does as multiplicative noise with Cov(W) = λ²/N² I (the public code has no
such script; this is our reading of the sentence).

Theorem 1: local complexities
-----------------------------
Writing :math:`W = (\mathbf 1 + V)/N` (so :math:`V = m - 1` is the centred mask), M-SGD
minimises :math:`L(\theta) + \frac1N\sum_i v_i\ell_i(\theta)`, bounded by
:math:`L(\theta) + \frac1N\sup_{\|\theta'-\theta\|\le\delta}|\sum_i v_i\ell_i(\theta')|`, whose
mean over V is the local complexity
:math:`R(V,\theta,\delta,N) = E_V\big[\frac1N\sup_{\|\theta'-\theta\|\le\delta}|\sum_i
v_i\ell_i(\theta')|\big]` (the data are held fixed here; the paper also averages over them).
V = a Rademacher vector: local Rademacher complexity; V ~ N(0, I): local Gaussian complexity;
V = N W_sgd − 1: local SGD complexity (Cov = (N/b) C with replacement). Theorem 1:
c R(A) ≤ R(G) ≤ C ln N R(A) (Eq. 10) and, for N = kb, R(V_sgd, θ, δ, N) ≤ 2(k−1) R(A, θ, δ, b)
(Eq. 11, as the text we have prints it). :func:`local_complexity` estimates R by Monte Carlo
over V; for losses linear in θ, :math:`\ell_i = c_i + a_i^\top\theta` (:class:`LinearLosses`),
the supremum is exact:
:math:`|\sum_i v_i\ell_i(\theta)| + \delta\|\sum_i v_i a_i\|`; other losses are linearised at θ
(:func:`linearise`: exact to first order in δ).

The traditional peer
--------------------
:func:`gaussian_noise_by_covariance` draws the same Gaussian gradient noise as M-SGD-Fisher/Cov
the way one does without the multiplicative trick: form the N per-example gradients, then
decompose (the SVD of the N×D gradient matrix, the "SVD way" of their Remark, or the
eigendecomposition of the D×D covariance for small D) and colour white noise. It is exact and
costly; ``benchmarks/bench_msgd.py`` measures how costly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import nn

from ._common.checks import check_choice, check_generator, check_int, check_real, check_tensor_range
from .config import resolve_device, resolve_dtype
from .train import get_loss

__all__ = [
    "KINDS",
    "MATCHES",
    "MultiplicativeNoise",
    "weights",
    "MSGDObjective",
    "msgd_objective",
    "train_msgd",
    "COMPLEXITY_KINDS",
    "LinearLosses",
    "linearise",
    "local_sup",
    "Complexity",
    "local_complexity",
    "gaussian_noise_by_covariance",
]

#: The M-noise families (see the module docstring for each law and its covariance).
KINDS = ("gd", "sgd", "sgd_replacement", "bernoulli", "fisher", "cov", "rademacher",
         "fisher_sparse", "cov_sparse", "fisher_ghost", "cov_ghost")
#: Which minibatch SGD a default ``s`` matches.
MATCHES = ("replacement", "without_replacement")

_SCALED = ("fisher", "cov", "rademacher", "fisher_sparse", "cov_sparse", "fisher_ghost",
           "cov_ghost")                                  # take s (the std of the masks)
_SIZED = ("fisher_sparse", "cov_sparse", "fisher_ghost", "cov_ghost")   # take size = B
_GHOST = ("fisher_ghost", "cov_ghost")
_GROUPED = ("cov", "cov_ghost")                          # take ghost = g (centring groups)

LossLike = Union[str, Callable[..., torch.Tensor]]


def _check_generator(generator) -> Optional[torch.Generator]:
    return check_generator("generator", generator, seeds=True, cpu_only=True)


def _target_variance(match: str, n: int, b: int) -> float:
    """v of SGD-b's Cov(W) = v C: 1/(bN) with replacement, (N−b)/(bN(N−1)) without."""
    return 1.0 / (b * n) if match == "replacement" else (n - b) / (b * n * (n - 1))


def _positions(k: int, n: int, size: int, generator) -> torch.Tensor:
    """``[k, size]`` indices: k independent uniform subsets of ``size`` among n (random order)."""
    return torch.rand(k, n, generator=generator, dtype=torch.float64).argsort(1)[:, :size]


def _gaussian_masks(k: int, n: int, s: float, group: Optional[int], generator) -> torch.Tensor:
    """``[k, n]`` masks ``1 + s z``, z ~ N(0, I), centred within consecutive groups of ``group``
    (``None``: not centred)."""
    z = torch.randn(k, n, generator=generator, dtype=torch.float64)
    if group is not None:
        z = z.view(k, n // group, group)
        z = (z - z.mean(-1, keepdim=True)).view(k, n)
    return 1.0 + s * z


@dataclass(frozen=True)
class MultiplicativeNoise:
    r"""The law of the M-noise W ∈ ℝᴺ (E W = 1/N) of one family of Wu et al. (2020).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS` (listed with their laws in the module docstring).
    n : int >= 2
        N, the number of training examples the weights spread over.
    b : int in [1, n], optional
        The minibatch size: needed by ``sgd``/``sgd_replacement``, and sets the default ``s``
        (``p`` for ``bernoulli``) so that the noise has SGD-b's scale.
    s : float >= 0, optional
        Standard deviation (not a variance) of the random masks m_i of the Gaussian and
        Rademacher kinds (W = m/N; on the large batch of the ghost kinds W = m/B); default
        from ``b`` and ``match``.
    p : float in (0, 1], optional
        Keep probability of ``bernoulli`` (default b/N).
    size : int, optional
        B: the number of noisy examples (``*_sparse``, in [1, n], [2, n] for ``cov_sparse``) or
        the large batch (``*_ghost``, in [2, n]).
    ghost : int, optional
        g, the ghost-batch size of ``cov``/``cov_ghost``: masks are centred within consecutive
        groups of g (>= 2, dividing n resp. ``size``); default n resp. ``size``.
    match : {"replacement", "without_replacement"}
        The SGD-b covariance a default ``s`` matches (see the module docstring).

    After construction every parameter the kind uses holds its value (``s`` resolved from
    ``b``, ...); parameters a kind does not use are refused, so a typo is not silently ignored.

    Notes
    -----
    Not a ``torch.distributions.Distribution``: several laws are discrete or have a singular
    covariance (no density, no ``log_prob``), and draws take an explicit ``generator``.
    """

    kind: str
    n: int
    b: Optional[int] = None
    s: Optional[float] = None
    p: Optional[float] = None
    size: Optional[int] = None
    ghost: Optional[int] = None
    match: str = "replacement"

    def __post_init__(self):
        kind = check_choice("kind", self.kind, KINDS)
        n = check_int("n", self.n, low=2)
        match = check_choice("match", self.match, MATCHES)
        b = None if self.b is None else check_int("b", self.b, low=1, high=n)
        for name, users in (("s", _SCALED), ("p", ("bernoulli",)), ("size", _SIZED),
                            ("ghost", _GROUPED)):
            if getattr(self, name) is not None and kind not in users:
                raise ValueError(f"{name} is not a parameter of kind={kind!r} (only of "
                                 f"{', '.join(map(repr, users))})")
        if kind in ("sgd", "sgd_replacement") and b is None:
            raise ValueError(f"b (the minibatch size, an integer in [1, {n}]) is needed for "
                             f"kind={kind!r}")
        size = ghost = p = s = None
        if kind in _SIZED:
            if self.size is None:
                raise ValueError(f"size (B, an integer <= n = {n}) is needed for kind={kind!r}")
            size = check_int("size", self.size, low=1 if kind == "fisher_sparse" else 2, high=n)
        if kind in _GROUPED:
            pool, pool_name = (n, "n") if kind == "cov" else (size, "size")
            ghost = pool if self.ghost is None else check_int("ghost", self.ghost, low=2,
                                                              high=pool)
            if pool % ghost:
                raise ValueError(f"ghost must divide {pool_name} = {pool}, got {ghost}")
        if kind == "bernoulli":
            if self.p is None and b is None:
                raise ValueError("bernoulli needs p (in (0, 1]) or b (then p = b/n)")
            p = b / n if self.p is None else check_real("p", self.p, low=0, high=1,
                                                         low_open=True)
        if kind in _SCALED:
            if self.s is None and b is None:
                raise ValueError(f"kind={kind!r} needs s (the std of the masks, >= 0) or b "
                                 "(then s matches the scale of SGD with batch b)")
            s = (math.sqrt(self._matched_variance(kind, n, b, size, ghost, match))
                 if self.s is None else check_real("s", self.s, low=0))
        for name, value in (("n", n), ("b", b), ("s", s), ("p", p), ("size", size),
                            ("ghost", ghost)):
            object.__setattr__(self, name, value)

    @staticmethod
    def _matched_variance(kind, n, b, size, ghost, match) -> float:
        """s² that gives the Gaussian part of Cov(W) SGD-b's v (module docstring)."""
        v = _target_variance(match, n, b)
        if kind in ("fisher", "cov", "rademacher"):
            return n * n * v
        if kind == "fisher_sparse":
            return n ** 3 * v / size
        if kind == "cov_sparse":
            return n * n * (n - 1) * v / (size - 1)
        if kind == "fisher_ghost":
            return n * size * v
        return ghost * size * (n - 1) * v / (ghost - 1)          # cov_ghost

    # ---- moments -----------------------------------------------------------------------
    def mean(self) -> torch.Tensor:
        """E W = 1/N, a float64 ``[N]`` tensor (CPU)."""
        return torch.full((self.n,), 1.0 / self.n, dtype=torch.float64)

    def covariance(self) -> torch.Tensor:
        """Cov(W), the exact float64 ``[N, N]`` matrix of the module docstring's table."""
        n, kind, s = self.n, self.kind, self.s
        eye = torch.eye(n, dtype=torch.float64)
        centred = eye - 1.0 / n
        if kind == "gd":
            return torch.zeros(n, n, dtype=torch.float64)
        if kind in ("sgd", "sgd_replacement"):
            return _target_variance("replacement" if kind == "sgd_replacement"
                                    else "without_replacement", n, self.b) * centred
        if kind == "bernoulli":
            return (1 - self.p) / (self.p * n * n) * eye
        if kind in ("fisher", "rademacher"):
            return s * s / n ** 2 * eye
        if kind == "cov":
            g = self.ghost
            block = torch.eye(g, dtype=torch.float64) - 1.0 / g
            return s * s / n ** 2 * torch.block_diag(*[block] * (n // g))
        big = self.size
        if kind == "fisher_sparse":
            return s * s * big / n ** 3 * eye
        if kind == "cov_sparse":
            return s * s * (big - 1) / (n * n * (n - 1)) * centred
        sampling = (n - big) / (big * n * (n - 1)) * centred   # the large batch B itself
        if kind == "fisher_ghost":
            return sampling + s * s / (n * big) * eye
        g = self.ghost
        return sampling + s * s * (g - 1) / (g * big * (n - 1)) * centred   # cov_ghost

    # ---- draws -------------------------------------------------------------------------
    def within_batch(self) -> "MultiplicativeNoise":
        """For the ghost kinds: the law of the weights over the B examples of one large batch
        (``fisher`` or ``cov`` with n = B and the same s and ghost size)."""
        if self.kind not in _GHOST:
            raise ValueError(f"within_batch() is for the ghost kinds {_GHOST}, not {self.kind!r}")
        if self.kind == "fisher_ghost":
            return MultiplicativeNoise("fisher", self.size, s=self.s)
        return MultiplicativeNoise("cov", self.size, s=self.s, ghost=self.ghost)

    def _masks(self, k: int, generator) -> torch.Tensor:
        """``[k, N]`` float64 CPU masks m = N W."""
        n, kind, s = self.n, self.kind, self.s
        if kind == "gd":
            return torch.ones(k, n, dtype=torch.float64)
        if kind == "sgd":
            idx = _positions(k, n, self.b, generator)
            return torch.zeros(k, n, dtype=torch.float64).scatter_(1, idx, n / self.b)
        if kind == "sgd_replacement":
            idx = torch.randint(0, n, (k, self.b), generator=generator)
            fill = torch.full((k, self.b), n / self.b, dtype=torch.float64)
            return torch.zeros(k, n, dtype=torch.float64).scatter_add_(1, idx, fill)
        if kind == "bernoulli":
            keep = torch.rand(k, n, generator=generator, dtype=torch.float64) < self.p
            return keep.to(torch.float64) / self.p
        if kind == "rademacher":
            a = 2.0 * torch.randint(0, 2, (k, n), generator=generator).to(torch.float64) - 1.0
            return 1.0 + s * a
        if kind in ("fisher", "cov"):
            return _gaussian_masks(k, n, s, self.ghost if kind == "cov" else None, generator)
        # sparse and ghost kinds: random positions, Gaussian masks there
        idx = _positions(k, n, self.size, generator)
        if kind in _GHOST:
            inner = self.within_batch()._masks(k, generator) * (n / self.size)
            base = torch.zeros(k, n, dtype=torch.float64)
        else:
            inner = _gaussian_masks(k, self.size, s, self.size if kind == "cov_sparse" else None,
                                    generator)
            base = torch.ones(k, n, dtype=torch.float64)
        return base.scatter_(1, idx, inner)

    def sample(self, draws: Optional[int] = None, generator=None, device=None,
               dtype=None) -> torch.Tensor:
        """Draws of W: ``[N]`` (``draws=None``) or ``[draws, N]``.

        Drawn in float64 on the CPU from ``generator`` (a CPU ``torch.Generator``, an int seed
        or ``None`` for torch's global one), so a seed gives the same weights on every device;
        then moved to ``device``/``dtype`` (default :func:`gnilab.config.get_device` and
        torch's default dtype).
        """
        k = 1 if draws is None else check_int("draws", draws, low=1)
        w = self._masks(k, _check_generator(generator)) / self.n
        w = w.to(resolve_device(device), resolve_dtype(dtype))
        return w[0] if draws is None else w


def weights(kind: str, n: int, *, draws: Optional[int] = None, b: Optional[int] = None,
            s: Optional[float] = None, p: Optional[float] = None, size: Optional[int] = None,
            ghost: Optional[int] = None, match: str = "replacement", generator=None,
            device=None, dtype=None) -> torch.Tensor:
    """Draws of W from ``MultiplicativeNoise(kind, n, b, s, p, size, ghost, match)``:
    ``[N]`` or ``[draws, N]`` (see :meth:`MultiplicativeNoise.sample`).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS` (the families of Wu et al. 2020, module docstring).
    n : int >= 2
        N, the number of training examples the weights spread over.
    draws : int, optional
        Number of draws (≥ 1); ``None``: a single draw ``[N]``.
    b : int in [1, n], optional
        The minibatch size (needed by ``sgd``/``sgd_replacement``; sets the default ``s``
        or ``p``).
    s : float >= 0, optional
        Standard deviation of the masks m_i of the Gaussian and Rademacher kinds.
    p : float in (0, 1], optional
        Keep probability of ``bernoulli`` (default b/N).
    size : int, optional
        B of the ``*_sparse`` and ``*_ghost`` kinds.
    ghost : int, optional
        g, the centring group size of ``cov``/``cov_ghost``.
    match : {"replacement", "without_replacement"}
        The SGD-b covariance a default ``s`` matches.
    generator : torch.Generator or int, optional
        A CPU generator or an int seed; ``None``: torch's global generator.
    device : torch.device or str, optional
        Device of the result (default :func:`gnilab.config.get_device`).
    dtype : torch.dtype, optional
        Dtype of the result (default torch's default dtype).

    Returns
    -------
    Tensor
        W, ``[N]`` (``draws=None``) or ``[draws, N]`` (E W = 1/N).
    """
    law = MultiplicativeNoise(kind, n, b=b, s=s, p=p, size=size, ghost=ghost, match=match)
    return law.sample(draws, generator=generator, device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------
# training: the objective of one M-SGD step
# --------------------------------------------------------------------------------------------

class MSGDObjective:
    r"""``objective(model, x, y) -> Σ_i W_i ℓ_i(θ)`` with a fresh W each call: the quantity
    differentiated by one M-SGD step (Wu et al. Eq. 6, Algorithm 1), for
    ``gnilab.train.train(..., objective=obj)``.

    Parameters
    ----------
    noise : MultiplicativeNoise
        The law of W. The objective accepts batches of ``noise.n`` examples (full batch:
        ``train(batch_size=None)``) and, for the ghost kinds, of ``noise.size`` examples (the
        large batch: ``train(batch_size=size, sampling="independent")``), re-weighted then with
        :meth:`MultiplicativeNoise.within_batch`.
    loss : str or callable
        Per-example losses come from ``get_loss(loss)(out, y, reduction="none")``.
    chunk_size : int, optional
        Run the forward and backward passes over at most this many examples at a time (bounds
        memory, as the public code's chunked ``CEwithMask``). The gradients are then
        accumulated inside the call and the returned scalar is a detached leaf carrying the
        value only (so ``train``'s ``backward()`` adds nothing).
    generator : torch.Generator or int, optional
        Source of the weights (CPU); ``None``: torch's global generator.

    Notes
    -----
    Examples with weight 0 (``sgd``, ``sgd_replacement``, ``bernoulli``, ghost kinds) are left
    out of the forward pass, so ``sgd`` costs what a minibatch step costs and gives exactly the
    minibatch gradient. (For a model with BatchNorm in training mode this changes the batch
    statistics the way minibatch SGD does.) Nothing is recorded but the number of calls.
    """

    def __init__(self, noise: MultiplicativeNoise, loss: LossLike = "cross_entropy", *,
                 chunk_size: Optional[int] = None, generator=None):
        if not isinstance(noise, MultiplicativeNoise):
            raise TypeError(f"noise must be a MultiplicativeNoise, got {type(noise).__name__}")
        self.noise = noise
        self.loss_fn = get_loss(loss)
        self.chunk_size = None if chunk_size is None else check_int("chunk_size", chunk_size,
                                                                     low=1)
        self.generator = _check_generator(generator)
        self._batch_law = noise.within_batch() if noise.kind in _GHOST else None
        self.calls = 0

    def law(self, n_step: int) -> MultiplicativeNoise:
        """The law of W for a step that sees ``n_step`` examples."""
        if n_step == self.noise.n:
            return self.noise
        if self._batch_law is not None and n_step == self._batch_law.n:
            return self._batch_law
        allowed = f"{self.noise.n} (batch_size=None)" + (
            f" or {self._batch_law.n} (batch_size=size)" if self._batch_law is not None else "")
        raise ValueError(f"this M-SGD objective (kind={self.noise.kind!r}) takes batches of "
                         f"{allowed} examples, got {n_step}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.law(len(y))._masks(1, self.generator)[0] / len(y)
        self.calls += 1
        return self.weighted_loss(model, x, y, w)

    def weighted_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      w: torch.Tensor) -> torch.Tensor:
        """``Σ_i w_i ℓ_i(θ)`` for given weights ``w`` ``[n]`` (any device or dtype), over the
        examples with ``w_i ≠ 0`` (chunked as set by ``chunk_size``)."""
        w = torch.as_tensor(w)
        if w.shape != (len(y),):
            raise ValueError(f"w must have shape ({len(y)},), got {tuple(w.shape)}")
        check_tensor_range("w", w)   # NaN/inf weights would give a NaN loss silently
        keep = w != 0
        if not bool(keep.all()):
            idx = keep.nonzero().squeeze(1)
            w, idx = w[idx], idx.to(x.device)
            x, y = x[idx], y[idx]
        w = w.to(x.device)
        if self.chunk_size is None:
            per = self.loss_fn(model(x), y, reduction="none")
            return (per * w.to(per.dtype)).sum()
        total = 0.0
        for start in range(0, len(y), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            per = self.loss_fn(model(x[sl]), y[sl], reduction="none")
            part = (per * w[sl].to(per.dtype)).sum()
            part.backward()
            total = total + part.detach()
        return torch.as_tensor(total).requires_grad_()

    def __repr__(self) -> str:
        return f"MSGDObjective({self.noise!r}, chunk_size={self.chunk_size}, calls={self.calls})"


def msgd_objective(kind: str, n: int, *, b: Optional[int] = None, s: Optional[float] = None,
                   p: Optional[float] = None, size: Optional[int] = None,
                   ghost: Optional[int] = None, match: str = "replacement",
                   loss: LossLike = "cross_entropy", chunk_size: Optional[int] = None,
                   generator=None) -> MSGDObjective:
    """:class:`MSGDObjective` for ``MultiplicativeNoise(kind, n, b, s, p, size, ghost, match)``
    (the objective of one M-SGD step, Wu et al. 2020, Eq. 6).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS` (the families of Wu et al. 2020, module docstring).
    n : int >= 2
        N, the number of training examples the weights spread over.
    b : int in [1, n], optional
        The minibatch size (needed by ``sgd``/``sgd_replacement``; sets the default ``s``
        or ``p``).
    s : float >= 0, optional
        Standard deviation of the masks m_i of the Gaussian and Rademacher kinds.
    p : float in (0, 1], optional
        Keep probability of ``bernoulli`` (default b/N).
    size : int, optional
        B of the ``*_sparse`` and ``*_ghost`` kinds.
    ghost : int, optional
        g, the centring group size of ``cov``/``cov_ghost``.
    match : {"replacement", "without_replacement"}
        The SGD-b covariance a default ``s`` matches.
    loss : str or callable
        Per-example losses come from ``get_loss(loss)(out, y, reduction="none")``.
    chunk_size : int, optional
        Forward and backward over at most this many examples at a time (bounds memory).
    generator : torch.Generator or int, optional
        Source of the weights (CPU); ``None``: torch's global generator.

    Returns
    -------
    MSGDObjective
        The objective, for ``gnilab.train.train(..., objective=obj)``.
    """
    law = MultiplicativeNoise(kind, n, b=b, s=s, p=p, size=size, ghost=ghost, match=match)
    return MSGDObjective(law, loss, chunk_size=chunk_size, generator=generator)


def train_msgd(model: nn.Module, data, kind: str, *, steps: int, lr: float,
               b: Optional[int] = None, s: Optional[float] = None, p: Optional[float] = None,
               size: Optional[int] = None, ghost: Optional[int] = None,
               match: str = "replacement", loss: LossLike = "cross_entropy",
               chunk_size: Optional[int] = None, generator=None, **train_kwargs):
    """Train with M-SGD of one family through :func:`gnilab.train.train`.

    ``kind="gd"``: full-batch GD; ``"sgd"``: ``train``'s own minibatches of ``b``, each drawn
    independently without replacement (``sampling="independent"``, as the papers' code does);
    the ghost kinds: large batches of ``size`` drawn the same way, re-weighted by the
    objective; every other kind: full batch with the :class:`MSGDObjective`. ``generator``
    drives both the batches and the weights. Other keyword arguments (``test_data``,
    ``eval_every``, ``momentum``, ``progress``, ...) go to ``train``. This is M-SGD
    (Wu et al. 2020, Eq. 6, Algorithm 1).

    Parameters
    ----------
    model : nn.Module
        The model to train (updated in place by ``train``).
    data
        The training set (tensors ``x`` and ``y``, N examples).
    kind : str
        One of :data:`KINDS`.
    steps : int
        Number of optimiser steps.
    lr : float
        η, the step size.
    b : int, optional
        The minibatch size (needed by ``sgd`` and ``sgd_replacement``; else sets the default
        ``s`` or ``p``), in [1, N].
    s : float, optional
        Standard deviation of the masks, see :class:`MultiplicativeNoise`.
    p : float, optional
        Keep probability of ``bernoulli``.
    size : int, optional
        B of the ``*_sparse`` and ``*_ghost`` kinds (for the ghost kinds, the large batch).
    ghost : int, optional
        g, the centring group size of ``cov``/``cov_ghost``.
    match : {"replacement", "without_replacement"}
        The SGD-b covariance a default ``s`` matches.
    loss : str or callable
        As in :func:`gnilab.train.get_loss`.
    chunk_size : int, optional
        Passed to the :class:`MSGDObjective` (memory bound).
    generator : torch.Generator or int, optional
        Drives both the batches and the weights.
    **train_kwargs
        Passed on to :func:`gnilab.train.train`.

    Returns
    -------
    gnilab.train.TrainResult
    """
    from .train import train

    check_choice("kind", kind, KINDS)
    generator = _check_generator(generator)
    common = dict(steps=steps, lr=lr, loss=loss, generator=generator, **train_kwargs)
    if kind == "gd":
        return train(model, data, batch_size=None, **common)
    if kind == "sgd":
        if b is None:
            raise ValueError("b (the minibatch size) is needed for kind='sgd'")
        b = check_int("b", b, low=1, high=len(data.y))
        return train(model, data, batch_size=b, sampling="independent", **common)
    obj = msgd_objective(kind, len(data.y), b=b, s=s, p=p, size=size, ghost=ghost, match=match,
                         loss=loss, chunk_size=chunk_size, generator=generator)
    batch = obj.noise.size if kind in _GHOST else None
    return train(model, data, batch_size=batch, sampling="independent", objective=obj, **common)


# --------------------------------------------------------------------------------------------
# Theorem 1: local Rademacher, Gaussian and SGD complexities
# --------------------------------------------------------------------------------------------

#: The V of :func:`local_complexity`: Rademacher, N(0, I), and V = N W − 1 for SGD's W.
COMPLEXITY_KINDS = ("rademacher", "gaussian", "sgd", "sgd_replacement")


@dataclass(frozen=True)
class LinearLosses:
    """Per-example losses linear in θ: ``ℓ_i(θ) = c_i + a_iᵀθ``, for which the supremum in
    Wu et al.'s (2020) Theorem 1 complexities is exact (:func:`local_sup`).

    Attributes
    ----------
    c : Tensor ``[N]``
        The offsets c_i (N ≥ 2).
    a : Tensor ``[N, D]``
        The gradients a_i as rows.
    """

    c: torch.Tensor
    a: torch.Tensor

    def __post_init__(self):
        if not (isinstance(self.c, torch.Tensor) and isinstance(self.a, torch.Tensor)):
            raise TypeError("c and a must be tensors")
        if self.c.dim() != 1 or self.a.dim() != 2 or self.a.shape[0] != self.c.shape[0]:
            raise ValueError(f"c must be [N] and a [N, D], got {tuple(self.c.shape)} and "
                             f"{tuple(self.a.shape)}")
        check_int("N (the number of losses)", self.c.shape[0], low=2)

    @property
    def n(self) -> int:
        return self.c.shape[0]

    @property
    def dim(self) -> int:
        return self.a.shape[1]

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """The loss vector at θ ``[D]`` (or at each row of ``[k, D]``: ``[k, N]``)."""
        return self.c + theta.to(self.a.dtype) @ self.a.T


def linearise(losses: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor) -> LinearLosses:
    """First-order Taylor expansion at θ of ``losses: θ [D] -> [N]``:
    ``ℓ(θ') ≈ ℓ(θ) + J (θ' − θ)``, J the ``[N, D]`` Jacobian (``torch.func.jacrev``); used
    for the local complexities of Wu et al. (2020), Theorem 1, of non-linear losses.

    Parameters
    ----------
    losses : callable
        θ ``[D]`` → the loss vector ``[N]`` (differentiable by ``torch.func``).
    theta : Tensor ``[D]``
        The expansion point (detached).

    Returns
    -------
    LinearLosses
        ``c = ℓ(θ) − J θ`` and ``a = J``.
    """
    from torch.func import jacrev

    theta = theta.detach()
    jac = jacrev(losses)(theta)
    value = losses(theta).detach()
    return LinearLosses(value - jac @ theta, jac.detach())


def _check_theta(theta, dim: int) -> torch.Tensor:
    if not isinstance(theta, torch.Tensor) or theta.shape != (dim,):
        raise ValueError(f"theta must be a [{dim}] tensor, got "
                         f"{tuple(theta.shape) if isinstance(theta, torch.Tensor) else theta!r}")
    return theta


def local_sup(losses: LinearLosses, v: torch.Tensor, theta: torch.Tensor,
              delta: float) -> torch.Tensor:
    """``sup_{‖θ'−θ‖₂ ≤ δ} |Σ_i v_i ℓ_i(θ')| = |vᵀℓ(θ)| + δ ‖Σ_i v_i a_i‖₂`` for linear losses
    (exact: the maximiser is θ' = θ + δ sign(vᵀℓ(θ)) u, u the unit vector along Σ v_i a_i).
    ``v``: ``[N]`` or ``[k, N]``; returns a scalar or ``[k]``. The supremum inside
    Wu et al.'s (2020) Theorem 1 complexities.

    Parameters
    ----------
    losses : LinearLosses
        The linear losses ℓ_i(θ) = c_i + a_iᵀθ.
    v : Tensor ``[N]`` or ``[k, N]``
        One or k vectors V.
    theta : Tensor ``[D]``
        The centre of the ball.
    delta : float
        δ ≥ 0, the radius of the (Euclidean) ball.

    Returns
    -------
    Tensor
        The supremum: a scalar for ``v`` ``[N]``, ``[k]`` for ``v`` ``[k, N]``.
    """
    if not isinstance(losses, LinearLosses):
        raise TypeError(f"losses must be LinearLosses (see linearise), got {type(losses).__name__}")
    delta = check_real("delta", delta, low=0)
    theta = _check_theta(theta, losses.dim)
    v = v.to(losses.a.dtype)
    return (v @ losses(theta)).abs() + delta * (v @ losses.a).norm(dim=-1)


@dataclass(frozen=True)
class Complexity:
    """A Monte Carlo estimate of R(V, θ, δ, N) (Wu et al. Theorem 1).

    Attributes
    ----------
    value, stderr : float
        The mean over ``draws`` of ``(1/N) sup |Σ v_i ℓ_i(θ')|`` and its standard error.
    kind : str
    delta : float
    n, draws : int
    exact_sup : bool
        The supremum is exact (linear losses) rather than that of the linearised losses.
    """

    value: float
    stderr: float
    kind: str
    delta: float
    n: int
    draws: int
    exact_sup: bool


def local_complexity(kind: str, losses, theta: torch.Tensor, delta: float, *,
                     draws: int = 1000, b: Optional[int] = None,
                     generator=None) -> Complexity:
    r"""Estimate :math:`R(V,\theta,\delta,N) = E_V[\frac1N\sup_{\|\theta'-\theta\|\le\delta}
    |\sum_i v_i\ell_i(\theta')|]` (Wu et al. 2020, Theorem 1) by Monte Carlo over V.

    Parameters
    ----------
    kind : {"rademacher", "gaussian", "sgd", "sgd_replacement"}
        V: i.i.d. ±1, N(0, I), or V = N W_sgd − 1 (minibatch of ``b`` without / with
        replacement; Cov V = (N−b)/(b(N−1)) C resp. (N/b) C).
    losses : LinearLosses or callable θ [D] -> [N]
        Linear losses (the supremum is exact) or any differentiable loss vector, linearised at
        θ (:func:`linearise`; exact to first order in δ).
    theta : Tensor ``[D]``
    delta : float >= 0
        Radius of the ball (Euclidean).
    draws : int >= 2
    b : int, optional
        Minibatch size for the SGD kinds.
    generator : torch.Generator or int, optional
        Draws V (on the CPU); ``None``: torch's global generator.

    Returns
    -------
    Complexity
        The Monte Carlo mean of ``(1/N) sup |Σ v_i ℓ_i(θ')|`` over ``draws`` draws of V, its
        standard error, and whether the supremum was exact.
    """
    check_choice("kind", kind, COMPLEXITY_KINDS)
    delta = check_real("delta", delta, low=0)
    draws = check_int("draws", draws, low=2)
    generator = _check_generator(generator)
    theta = check_tensor_range("theta", theta)
    exact = isinstance(losses, LinearLosses)
    if not exact:
        if not callable(losses):
            raise TypeError(f"losses must be LinearLosses or a callable, got "
                            f"{type(losses).__name__}")
        losses = linearise(losses, theta)
    n = losses.n
    if kind == "rademacher":
        v = 2.0 * torch.randint(0, 2, (draws, n), generator=generator).to(torch.float64) - 1.0
    elif kind == "gaussian":
        v = torch.randn(draws, n, generator=generator, dtype=torch.float64)
    else:
        v = MultiplicativeNoise(kind, n, b=b)._masks(draws, generator) - 1.0
    vals = local_sup(losses, v.to(losses.a.device), theta, delta).double() / n
    return Complexity(float(vals.mean()), float(vals.std()) / math.sqrt(draws), kind, delta, n,
                      draws, exact)


# --------------------------------------------------------------------------------------------
# the traditional peer: Gaussian gradient noise through the covariance
# --------------------------------------------------------------------------------------------

def gaussian_noise_by_covariance(model: nn.Module, data, kind: str = "fisher", *,
                                 b: Optional[int] = None, s: Optional[float] = None,
                                 match: str = "replacement", method: str = "svd",
                                 draws: Optional[int] = None, loss: LossLike = "cross_entropy",
                                 generator=None, chunk_size: Optional[int] = None) -> torch.Tensor:
    r"""The gradient noise of M-SGD-Fisher/Cov, :math:`\xi = \nabla\mathbf L\,(W - \mathbf 1/N)`,
    drawn without the multiplicative trick: from the per-example gradients and a decomposition.

    With G the ``[N, D]`` per-example gradients (:func:`gnilab.curvature.gradient_covariance`,
    ``torch.func`` vmap), A = G (``"fisher"``) or G − ḡ (``"cov"``), the noise is
    N(0, (s²/N²) AᵀA) = N(0, (s²/N) F) resp. N(0, (s²/N) Σ), s as in
    :class:`MultiplicativeNoise` (s² = N/b: F/b resp. Σ/b). ``method``:

    * ``"svd"``: A = U S Vᵀ (economy SVD), ξ = (s/N) ε S Vᵀ, ε ~ N(0, I_r), r = min(N, D): the
      "SVD way" of Wu et al.'s Remark;
    * ``"eigh"``: the dense D×D covariance (D ≤ :data:`gnilab.curvature.MAX_DENSE`),
      eigendecomposed (it is singular for D > N, so no Cholesky), ξ = ε Λ^{1/2} Uᵀ.

    Given A, (s/N) Aᵀε with ε ~ N(0, I_N) already has this law with no decomposition at all:
    that is M-SGD, and it does not need A, only one weighted backward pass.

    Parameters
    ----------
    model : nn.Module
        The model at θ (never modified).
    data
        The training set (tensors ``x`` and ``y``, N examples).
    kind : {"fisher", "cov"}
        A = G (noise covariance ∝ F) or A = G − ḡ (∝ Σ).
    b : int, optional
        Minibatch size that sets the default ``s`` (as in :class:`MultiplicativeNoise`).
    s : float, optional
        Standard deviation of the masks (≥ 0); default from ``b`` and ``match``.
    match : {"replacement", "without_replacement"}
        The SGD-b covariance a default ``s`` matches.
    method : {"svd", "eigh"}
        The decomposition, see above.
    draws : int, optional
        Number of draws (≥ 1); ``None``: one draw ``[D]``.
    loss : str or callable
        As in :func:`gnilab.train.get_loss`.
    generator : torch.Generator or int, optional
        Draws ε (on the CPU); ``None``: torch's global generator.
    chunk_size : int, optional
        Compute the per-example gradients over at most this many examples at a time.

    Returns
    -------
    Tensor ``[D]`` (``draws=None``) or ``[draws, D]`` in the model's dtype and device.
    """
    from .curvature import GradientCovariance, gradient_covariance

    check_choice("kind", kind, ("fisher", "cov"))
    check_choice("method", method, ("svd", "eigh"))
    k = 1 if draws is None else check_int("draws", draws, low=1)
    generator = _check_generator(generator)
    n = len(data.y)
    s = MultiplicativeNoise(kind, n, b=b, s=s, match=match).s
    cov = gradient_covariance(model, data, loss, chunk_size=chunk_size)
    factor = cov.factor if kind == "cov" else cov.factor + cov.mean
    scale = s / n
    if method == "svd":
        _, sing, vh = torch.linalg.svd(factor.double(), full_matrices=False)
        eps = torch.randn(k, sing.shape[0], generator=generator, dtype=torch.float64)
        xi = scale * (eps.to(sing.device) * sing) @ vh
    else:
        dense = GradientCovariance(factor, scale * scale, cov.mean).to_dense().double()
        lam, vecs = torch.linalg.eigh(dense)
        eps = torch.randn(k, lam.shape[0], generator=generator, dtype=torch.float64)
        xi = (eps.to(lam.device) * lam.clamp_min(0).sqrt()) @ vecs.T
    xi = xi.to(factor.dtype)
    return xi[0] if draws is None else xi
