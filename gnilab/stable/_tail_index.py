"""Tail-index estimators for heavy-tailed samples: Mohammadi–Mohammadpour–Ogata's block-sum
estimator as Şimşekli et al. (2019) use it, and Hill's."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ._sample import _make_generator
from .._common.checks import check_choice, check_real

# =============================================================================================
# tail index
# =============================================================================================
@dataclass(frozen=True)
class TailIndex:
    r"""Result of :func:`tail_index`: the estimate, an optional bootstrap interval, the block
    sizes K1, K2 (Mohammadi et al.) or the number of order statistics k (Hill, as ``k1``;
    ``k2`` is then None) and the method.

    The estimators are Mohammadi, Mohammadpour & Ogata (2015) as used by Şimşekli, Sagun &
    Gürbüzbalaban (2019, Eq. 15), and Hill (1975).

    Attributes
    ----------
    alpha : float
        the estimated tail index :math:`\hat\alpha` (the reciprocal of the Eq. 15 estimate for
        ``"mohammadi"``; it may exceed 2 by noise).
    ci_low, ci_high : float or None
        bounds of the percentile bootstrap interval at level ``ci``; None when no ``ci`` was
        asked for.
    k1 : int
        the block size :math:`K_1` (``"mohammadi"``) or the number of order statistics k
        (``"hill"``).
    k2 : int or None
        the number of blocks :math:`K_2 = \lfloor K/K_1\rfloor` (``"mohammadi"``); None for
        ``"hill"``.
    method : str
        ``"mohammadi"`` or ``"hill"``.
    """
    alpha: float
    ci_low: Optional[float]
    ci_high: Optional[float]
    k1: int
    k2: Optional[int]
    method: str


def _largest_divisor_below_sqrt(K: int) -> int:
    """K1 rule of Şimşekli et al. (2019, code ``main.py``): the largest divisor of K that does
    not exceed sqrt(K)."""
    r = math.isqrt(K)
    for i in range(r, 0, -1):
        if K % i == 0:
            return i
    return 1


def _mohammadi(X: torch.Tensor, k1: int) -> torch.Tensor:
    """1/alpha-hat = (mean_i log|Y_i| - mean_j log|X_j|)/log K1 for X of shape [K, d] (d = 1:
    scalars), Y_i the sums of consecutive blocks of K1 rows, |.| the Euclidean norm."""
    K = X.shape[0]
    k2 = K // k1
    Y = X[: k1 * k2].reshape(k2, k1, *X.shape[1:]).sum(1)
    lx = torch.log(torch.linalg.vector_norm(X.reshape(K, -1), dim=1)).mean()
    ly = torch.log(torch.linalg.vector_norm(Y.reshape(k2, -1), dim=1)).mean()
    return (ly - lx) / math.log(k1)


def tail_index(x, k1: Optional[int] = None, method: str = "mohammadi", ci: Optional[float] = None,
               n_boot: int = 200, generator=None, k: Optional[int] = None) -> TailIndex:
    r"""Tail index alpha of a (symmetric) stable sample.

    ``method="mohammadi"`` — Mohammadi, Mohammadpour & Ogata (2015, Metrika), exactly as
    Şimşekli, Sagun & Gürbüzbalaban (2019, Eq. 15 and their ``utils.alpha_estimator``) use it:
    with :math:`K=K_1K_2` samples and :math:`Y_i=\sum_{j=1}^{K_1}X_{j+(i-1)K_1}`,

    .. math::

        \widehat{1/\alpha}=\frac1{\log K_1}\Big(\frac1{K_2}\sum_{i=1}^{K_2}\log|Y_i|
            -\frac1K\sum_{i=1}^K\log|X_i|\Big).

    ``x`` of shape [K] (scalars) or [K, d] (vectors; :math:`|\cdot|` the Euclidean norm).
    ``k1`` defaults to the largest divisor of K not above :math:`\sqrt K` (their K1 rule;
    e.g. K = 10 728 000 gives K1 = 3000); a given ``k1`` uses the first :math:`K_1\lfloor
    K/K_1\rfloor` rows. The estimator assumes a centred, strictly stable sample (it is
    scale-free); the returned alpha is 1/(estimate) and may exceed 2 by noise.

    ``method="hill"`` — Hill (1975) on the ``k`` largest ``|x|`` (default ``k = sqrt(K)``):
    :math:`\hat\alpha=1/(\frac1k\sum_{i\le k}\log|x|_{(i)}-\log|x|_{(k+1)})`. For stable laws
    it is strongly biased when alpha is above about 1.5 (the Pareto tail only sets in far
    out; e.g. it reports alpha well above 2 for Gaussian-like samples with alpha = 1.9) —
    prefer ``"mohammadi"``.

    ``ci`` (e.g. 0.95) adds a percentile bootstrap interval from ``n_boot`` resamples (rows
    drawn with replacement) using ``generator`` (torch.Generator or int seed).

    Torch tensors are used where they are (CUDA included); numpy/float input works too.

    Parameters
    ----------
    x : array-like or Tensor, shape [K] or [K, d]
        the sample: K finite scalars, or K vectors of dimension d (rows; their Euclidean
        norms enter the estimators).
    k1 : int, optional
        ``"mohammadi"``: the block size :math:`K_1`, an integer in [2, K/2] (default: the
        largest divisor of K not above :math:`\sqrt K`). ``"hill"``: used as ``k`` when
        ``k`` is not given.
    method : {"mohammadi", "hill"}
        the estimator (default ``"mohammadi"``).
    ci : float, optional
        level of the percentile bootstrap interval, in (0, 1) (e.g. 0.95); ``None`` (default)
        computes no interval.
    n_boot : int
        number of bootstrap resamples when ``ci`` is given (default 200).
    generator : torch.Generator or int seed, optional
        randomness of the bootstrap resampling; ``None`` uses torch's global generator.
    k : int, optional
        ``"hill"`` only: the number of largest order statistics, in [1, K - 1] (default
        ``k1`` if given, else :math:`\max(\lfloor\sqrt K\rfloor, 2)`); ignored by
        ``"mohammadi"``.

    Returns
    -------
    TailIndex
        the estimate ``alpha``, the bootstrap interval (``ci_low``, ``ci_high``; None without
        ``ci``), ``k1``, ``k2`` and ``method``.
    """
    check_choice("method", method, ("mohammadi", "hill"))
    if ci is not None:
        check_real("ci", ci, 0, 1, low_open=True, high_open=True)
    X = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not X.is_floating_point():
        X = X.double()
    if X.dim() == 0 or X.shape[0] == 0:
        raise ValueError("x must be a non-empty sample of shape [K] or [K, d]")
    if X.dim() > 2:
        raise ValueError(f"x must have shape [K] or [K, d], got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("x must contain only finite values (found NaN or inf)")
    K = X.shape[0]
    gen = _make_generator(generator, X.device)
    if method == "mohammadi":
        if k1 is None:
            k1 = _largest_divisor_below_sqrt(K)
        if not isinstance(k1, (int, np.integer)) or not (2 <= k1 <= K // 2):
            raise ValueError(f"k1 must be an integer in [2, K/2] = [2, {K // 2}], got {k1!r}")
        k1 = int(k1)
        k2 = K // k1

        def est(Z):
            return 1.0 / _mohammadi(Z, k1)
    else:
        kk = int(k) if k is not None else int(k1) if k1 is not None else max(int(math.sqrt(K)), 2)
        if not (1 <= kk < K):
            raise ValueError(f"k must be an integer in [1, K-1] = [1, {K - 1}], got {kk!r}")
        k1, k2 = kk, None

        def est(Z):
            return hill_estimator(Z, kk)
    alpha = float(est(X))
    lo = hi = None
    if ci is not None:
        vals = []
        for _ in range(int(n_boot)):
            idx = torch.randint(0, K, (K,), generator=gen, device=X.device) if gen is None or \
                gen.device == X.device else torch.randint(0, K, (K,), generator=gen).to(X.device)
            vals.append(float(est(X[idx])))
        vals = np.array(vals)
        lo, hi = (float(v) for v in np.quantile(vals, [(1 - ci) / 2, (1 + ci) / 2]))
    return TailIndex(alpha, lo, hi, k1, k2, method)


def hill_estimator(x, k: int):
    r"""Hill's (1975) estimator :math:`1/(\frac1k\sum_{i=1}^k\log|x|_{(i)}-\log|x|_{(k+1)})`
    on the k largest norms (rows' Euclidean norms for 2-D input). Biased for stable laws with
    alpha above ~1.5; see :func:`tail_index`.

    Parameters
    ----------
    x : array-like or Tensor, shape [K] or [K, d]
        the sample: K scalars (their absolute values are used) or K vectors (their Euclidean
        norms are used).
    k : int
        number of largest order statistics, in [1, K - 1]; :math:`|x|_{(k+1)}` is the
        threshold.

    Returns
    -------
    float
        the Hill estimate :math:`\hat\alpha` of the tail index.
    """
    X = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    r = torch.linalg.vector_norm(X.reshape(X.shape[0], -1), dim=1)
    top = torch.topk(r, k + 1).values
    lt = torch.log(top)
    return float(1.0 / (lt[:k].mean() - lt[k]))
