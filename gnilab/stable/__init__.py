r"""α-stable distributions: sampling, densities, distribution functions, fitting and the
tail-index estimator used for stochastic-gradient noise.

Parameterisations
-----------------
Every object and function takes ``param="S1"`` (the default, as in ``scipy.stats.levy_stable``)
or ``param="S0"`` explicitly; there is no global state. With :math:`\sigma` the *scale* (not a
standard deviation: at :math:`\alpha=2` the variance is :math:`2\sigma^2`) the characteristic
functions are (Nolan, *Univariate Stable Distributions*, 2020, Def. 1.3–1.4)

.. math::

    \text{S1:}\quad \log E e^{itX} = -\sigma^\alpha|t|^\alpha\big(1-i\beta\,\mathrm{sgn}(t)
        \tan\tfrac{\pi\alpha}2\big) + i\mu_1 t \quad(\alpha\ne1),\qquad
        -\sigma|t|\big(1+i\beta\tfrac2\pi\mathrm{sgn}(t)\log|t|\big)+i\mu_1 t\quad(\alpha=1),

    \text{S0:}\quad \log E e^{itX} = -\sigma^\alpha|t|^\alpha\big(1+i\beta\,\mathrm{sgn}(t)
        \tan\tfrac{\pi\alpha}2(|\sigma t|^{1-\alpha}-1)\big) + i\mu_0 t \quad(\alpha\ne1),\qquad
        -\sigma|t|\big(1+i\beta\tfrac2\pi\mathrm{sgn}(t)\log(\sigma|t|)\big)+i\mu_0 t.

Expanding the S0 exponent gives the S1 one plus :math:`-i\beta\sigma\tan(\pi\alpha/2)t`
(resp. :math:`-i\beta\tfrac2\pi\sigma\log\sigma\,t`), hence (checked numerically in the tests)

.. math::

    \mu_1 = \mu_0 - \beta\sigma\tan\tfrac{\pi\alpha}2\quad(\alpha\ne1),\qquad
    \mu_1 = \mu_0 - \tfrac2\pi\beta\sigma\log\sigma\quad(\alpha=1).

S0 is jointly continuous in all four parameters (and a location-scale family); S1 is what
scipy, Şimşekli et al. (2019) and Camuto et al. (2021, :math:`\mathcal S_\alpha(\sigma,\theta,\mu)`)
write; PyLevy's fits are S0.

Contents
--------
:class:`Stable`
    a ``torch.distributions.Distribution`` (``rsample`` reparameterised, ``log_prob``, ``cdf``).
:func:`sample`, :func:`pdf`, :func:`logpdf`, :func:`cdf`
    numpy-friendly module functions.
:func:`fit`
    McCulloch's quantile method, Koutrouvelis' characteristic-function regression and maximum
    likelihood; returns a :class:`StableFit`.
:func:`tail_index`
    the Mohammadi–Mohammadpour–Ogata estimator exactly as Şimşekli, Sagun & Gürbüzbalaban (2019,
    Eq. 15) use it, and Hill's estimator; returns a :class:`TailIndex`.
:func:`s0_to_s1`, :func:`s1_to_s0`
    parameter conversions.

The parts: the law and its module functions (``_law.py``), the Chambers–Mallows–Stuck sampler
(``_sample.py``), the S0/S1 conversions (``_params.py``), the fits (``_fit.py``, with the
maximum-likelihood table ``_ml_table.py`` and McCulloch's quantiles ``_tables.py``), the
tail-index estimators (``_tail_index.py``), and the density code (Nolan 1997 integral,
peak-adapted Gauss–Legendre quadrature, ``_density.py``, with its asymptotic series in
``_series.py``). When every point shares one law (scalar alpha and beta, no
gradient with respect to them: plots, likelihoods, the fits), ``log_prob``/``logpdf``/``pdf``
use a piecewise Chebyshev interpolant of that law built once from the quadrature and cached
(``_interp.py``; ~0.1 s to build, then ~0.1 µs a point, within ~1e-12 of the
quadrature); per-point parameters, and gradients in alpha or beta, use the quadrature.
"""
from ._fit import StableFit, fit
from ._law import Stable, cdf, logpdf, pdf, sample
from ._params import s0_to_s1, s1_to_s0
from ._tail_index import TailIndex, hill_estimator, tail_index

__all__ = ["Stable", "StableFit", "TailIndex", "sample", "pdf", "logpdf", "cdf", "fit",
           "tail_index", "hill_estimator", "s0_to_s1", "s1_to_s0"]
