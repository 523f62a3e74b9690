r"""Asymptotic series of the standard stable law, used by :mod:`._density` where the quadrature
would lose precision: Zolotarev's tail expansion (alpha != 1) and a 12-term series of the
alpha = 1 density and tail probability derived from the characteristic function."""
from __future__ import annotations

import math
from functools import lru_cache

import torch

PI = math.pi
_LOG_PI = math.log(PI)
_ALPHA1_LINEAR = 1e-5   # 1 + beta at and below which the alpha = 1 series is its Taylor
                        # polynomial in 1 + beta (see _alpha1_series)


def _tail_series_logpdf(x1, a, b, nterms=8):
    """Zolotarev's expansion of the S1 density for x1 -> +inf (alpha != 1):
    f(x) ~ (1/pi) sum_k (-1)^{k+1} Gamma(k alpha + 1)/k! gamma^k sin(k alpha Phi) x^{-k alpha - 1},
    gamma = (1 + beta^2 tan^2(pi alpha/2))^{1/2}; used only where x^{-alpha} gamma < 1e-6 and
    not on the light side (alpha > 1, beta = -1, where sin(alpha Phi) = 0). Summed relative to
    the leading term, so the log stays exact where the density itself underflows."""
    s = torch.sin(PI * a / 2)
    c = torch.cos(PI * a / 2)
    t = b * s / c
    lgam = 0.5 * torch.log1p(t * t)
    aPhi = PI * a / 2 + torch.atan(t)
    lx = torch.log(x1)
    lg1 = torch.lgamma(a + 1) + lgam - a * lx
    rel = torch.sin(aPhi)
    for k in range(2, nterms + 1):
        lgk = torch.lgamma(k * a + 1) - math.lgamma(k + 1) + k * (lgam - a * lx)
        rel = rel + (-1) ** (k + 1) * torch.exp(lgk - lg1) * torch.sin(k * aPhi)
    return lg1 + torch.log(rel) - lx - _LOG_PI


_ALPHA1_TERMS = 12


@lru_cache(maxsize=None)
def _alpha1_series_consts(n_terms: int, kind: str):
    """Taylor coefficients A_j = psi^(j-1)(m)/j! (j = 2..n) of log Gamma(s + 1) (``pdf``,
    m = n + 1) or log Gamma(s) (``sf``, m = n) around s = n, for n = 1..n_terms."""
    from scipy.special import polygamma
    out = []
    for n in range(1, n_terms + 1):
        m = n + 1 if kind == "pdf" else n
        out.append((float(polygamma(0, m)),
                    [float(polygamma(j - 1, m)) / math.factorial(j) for j in range(2, n + 1)]))
    return tuple(out)


def _alpha1_series(x, b, kind="pdf", n_terms=_ALPHA1_TERMS):
    r"""Asymptotic series of the standard S1 law with alpha = 1 for x -> +inf (any beta):
    the density (``kind="pdf"``) or P(X > x) (``"sf"``).

    Expanding :math:`\varphi(t)=\exp(-t(1+ic\log t))`, :math:`c=2\beta/\pi`, for t > 0 and
    integrating term by term with :math:`\int_0^\infty t^s e^{-itx}dt=\Gamma(s+1)e^{-(s+1)L}`,
    :math:`L=\log x+i\pi/2` (Erdelyi's lemma; powers of log t are s-derivatives):

    .. math::

        f(x)\sim\frac1\pi\,\mathrm{Re}\sum_{n\ge1}\frac{(-1)^n}{n!}
            \big[(1+ic\,\partial_s)^n\,\Gamma(s+1)e^{-(s+1)L}\big]_{s=n},\qquad
        P(X>x)\sim\frac1\pi\,\mathrm{Im}\sum_{n\ge1}\frac{(-1)^n}{n!}
            \big[(1+ic\,\partial_s)^n\,\Gamma(s)e^{-sL}\big]_{s=n}

    (the second from Gil-Pelaez's formula). The leading terms are :math:`(1+\beta)/(\pi x^2)`
    and :math:`(1+\beta)/(\pi x)`. The s-derivatives come from the power series of
    :math:`\exp` of the Taylor series of :math:`\log\Gamma` (polygamma constants). With 12
    terms it agrees with the quadrature and with 30-digit mpmath to ~1e-14 for x >= 30 (see
    :func:`_alpha1_series_from`). Returns :math:`x^2 f(x)` (pdf) or :math:`x P(X>x)` (sf), so
    that nothing underflows for huge x."""
    lx = torch.log(x)
    L = lx.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64) + 1j * PI / 2
    lead = 2 * lx if kind == "pdf" else lx          # factored out: x^-2 resp. x^-1
    ic = 1j * (2 * b / PI)
    i2 = 2j / PI
    tot = torch.zeros_like(L)
    dtot = torch.zeros_like(L)        # first and second beta-derivatives of the sum at
    d2tot = torch.zeros_like(L)       # beta = -1 (see below)
    for n, (psi, A) in enumerate(_alpha1_series_consts(n_terms, kind), start=1):
        A1 = psi - L
        E = [torch.ones_like(L)]              # E_k = [eps^k] exp(A1 eps + sum_j A_j eps^j)
        for k in range(1, n + 1):
            acc = A1 * E[k - 1]
            for j in range(2, k + 1):
                acc = acc + (j * A[j - 2]) * E[k - j]
            E.append(acc / k)
        inner = sum(math.comb(n, k) * math.factorial(k) * ic ** k * E[k] for k in range(n + 1))
        dinner = sum(math.comb(n, k) * math.factorial(k) * k * i2 ** k * (-1) ** (k - 1) * E[k]
                     for k in range(1, n + 1))
        d2inner = sum(math.comb(n, k) * math.factorial(k) * k * (k - 1) * i2 ** k
                      * (-1) ** (k - 2) * E[k] for k in range(2, n + 1))
        if kind == "pdf":            # Gamma(n + 1)/n! = 1
            w = (-1) ** n * torch.exp(lead - (n + 1) * L)
        else:                        # Gamma(n)/n! = 1/n
            w = ((-1) ** n / n) * torch.exp(lead - n * L)
        tot = tot + w * inner
        dtot = dtot + w * dinner
        d2tot = d2tot + w * d2inner
    # The sum is a polynomial in beta that vanishes at beta = -1 (the light side of a totally
    # skewed law is below every power of 1/x); its terms cancel to ~1e-16 of their size, a
    # relative error of ~1e-16/(1 + beta). For 1 + beta <= 1e-5 it is evaluated instead by its
    # Taylor polynomial at beta = -1, (1 + beta) S' + (1 + beta)^2 S''/2 (relative error
    # O((1 + beta)^2) <= ~1e-10).
    onep = 1 + b
    tot = torch.where(onep <= _ALPHA1_LINEAR, onep * dtot + onep * onep / 2 * d2tot, tot)
    return (tot.real if kind == "pdf" else tot.imag) / PI


def _alpha1_series_from(b):
    """x beyond which :func:`_alpha1_series` is used for S1(1, beta) at x > 0: the neglected
    terms are about (3/x)^12 relative to the leading one, which carries the factor 1 + beta,
    so x >= 3 (1e13/(1 + beta))^(1/12), and at least 30 (checked against 30-digit mpmath
    in the tests). Where 0 < 1 + beta <= 1e-5 the series is a Taylor polynomial in 1 + beta
    (see :func:`_alpha1_series`) and holds from 30 on; at 1 + beta = 0 there is no series
    (the density is the light tail alone)."""
    onep = (1 + b).clamp(min=1e-300)
    return torch.where(1 + b > _ALPHA1_LINEAR,
                       torch.clamp(3 * (1e13 / onep) ** (1 / 12), min=30.0),
                       torch.where(1 + b > 0, torch.full_like(b, 30.0),
                                   torch.full_like(b, math.inf)))
