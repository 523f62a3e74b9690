r"""Property-based and regression tests for :mod:`gnilab.stable` (issue 8): what "done" means
for the densities, distribution functions and maximum-likelihood fits of alpha-stable laws.

Run: ``pytest tests/test_stable_properties.py -q`` (``-m "not slow"`` for the fast part).

Property-based tests (hypothesis, derandomised so that CI sees the same examples every run;
shrinking is switched off so that a failure costs no more time than a pass — the assertion
messages list every failing point instead). Each example is one law (alpha, beta, scale, loc,
parameterisation, input kind) evaluated on a grid of about 100 x values in one call:

* alpha over (0, 2] (log-uniform down to 1e-3, uniform, 1 +- 10^-k for k in [1, 15], exactly
  1 and 2), beta over [-1, 1] (uniform, +-(1 - 10^-k), exactly -1, 0, 1), scale 10^[-3, 3],
  loc in [-1e3, 1e3], "S0" and "S1", numpy input and float32 / float64 torch tensors;
* x: +-10^[-3, 12] and 0, plus points near the location and near the support edge.

Invariants (exactly those of the issue):

(a) ``logpdf`` is never NaN and never +inf. It may be -inf only outside the support
    (alpha < 1, beta = +-1: the S1 support is [loc1, inf) for beta = 1 and (-inf, loc1] for
    beta = -1; S0 locations are converted with :func:`gnilab.stable.s0_to_s1`), on the light
    side of a totally skewed law (|beta| = 1 and beta * (x - loc0)/scale < -1, loc0 the S0
    location: the density decays like exp(-c|x|^{alpha/(alpha-1)}) there and may underflow
    even in log space, e.g. log f = -3.6e681 for S(1, -1) at x = 1000), or beyond
    |x| > 1e300. Everywhere else it is finite.
(b) ``cdf`` is never NaN, lies in [0, 1] and does not decrease along a sorted grid (no
    tolerance: the issue asks for a cdf that never decreases).
(c) agreement with ``scipy.stats.levy_stable`` (S1, set explicitly and restored) where scipy
    is accurate: pdf to 1e-6 relative, cdf to 1e-7 absolute. scipy's default ("piecewise")
    quadrature is only good to ~1e-8..1e-7 in general, and in scipy 1.17 it is plainly wrong
    in places that we checked against 30-digit mpmath values and against the integral of
    the pdf: within ~0.012 of the S1 origin (it switches to a special formula there; errors
    up to 4e-3), for alpha within 0.003 of 2, and the cdf for alpha in ~[0.8, 1.17] with
    |beta| >= 0.3 (errors up to 1e-3). The comparison is therefore restricted to
    0.5 <= alpha <= 1.95, |alpha - 1| >= 0.05, |beta| <= 0.9, 0.05 <= |x1| <= 50 (x1 the
    S1-standardised value), and for the cdf additionally |alpha - 1| >= 0.25.
(d) the cdf is the integral of the pdf: cdf(b) - cdf(a) equals an independent composite
    Gauss–Legendre rule applied to the pdf over [a, b], to 1e-8 relative (+1e-13 absolute), on
    two drawn intervals and one tail interval per law. The rule (:func:`gl_integral`) cuts the
    interval at the S0 centre and the S1 origin (the support edge when alpha < 1, |beta| = 1)
    and uses 40 panels x 24 nodes per piece, equal in asinh((z - c)/1e-3); it reproduces
    Cauchy, Gaussian and Lévy (support edge + heavy tail) integrals to 1e-14. alpha >= 0.3:
    below that the mode is a spike (f ~ 1e6 at alpha = 0.1) that a fixed rule need not resolve.

Regression tests at every point listed in the issue (finite logpdf; monotone alpha = 1 cdf
without a jump across the far-tail switch near |x| = 1e7; the issue's (alpha, beta, x, param)
sweep, once per law as a user calls it and once vectorised over per-point parameters), with
the log-densities compared to stored 30-digit mpmath values (:func:`_mp_logpdf`; the slow
tests recompute some of them and cross-check the method against Fourier inversion), the
light sides of nearly totally skewed laws where Nolan's integrand has two bumps (against
Fourier inversion), and the MLE recovery target of the issue (slow). The issue's speed target
for those fits is measured by ``benchmarks/bench_stable.py``: a timing is not a unit test.

hypothesis keeps a cache of constants in ``.hypothesis/`` (it carries its own .gitignore);
no example database is written (``database=None``).
"""
import math
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import levy_stable

from gnilab import stable
from gnilab.stable import _density as _sd
from gnilab.stable import _series

PI = math.pi
PARAMS = ("S0", "S1")
KINDS = ("numpy", "torch64", "torch32")

# hypothesis settings shared by the property tests: deterministic, no deadline (the first call
# for a law may build caches), no shrinking (a failing example is reported as drawn, with every
# failing point in the message, so a failure does not turn the fast suite into a slow one)
_PROP = dict(deadline=None, derandomize=True, database=None,
             phases=(Phase.explicit, Phase.generate),
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# =============================================================================================
# helpers
# =============================================================================================
def _locs(a, b, s, m, param):
    """(loc0, loc1): the S0 and S1 locations of the law, in float64."""
    if param == "S0":
        return m, float(stable.s0_to_s1(a, b, s, m)[3])
    return float(stable.s1_to_s0(a, b, s, m)[3]), m


def _call(fn, x, a, b, s, m, param, kind):
    """Evaluate ``fn`` on x as numpy (float64) or a torch tensor (float32/float64), with the
    parameters as Python floats. Returns (values, x as evaluated, effective parameters), all
    float64: a float32 call rounds x and the parameters to float32 (the parameters follow the
    dtype of x), and the invariants are checked for the law that was actually evaluated."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "numpy":
        out = fn(x, a, b, s, m, param=param)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        return out, x, (a, b, s, m)
    dt = torch.float32 if kind == "torch32" else torch.float64
    xt = torch.as_tensor(x, dtype=dt)
    out = fn(xt, a, b, s, m, param=param)
    assert isinstance(out, torch.Tensor) and out.dtype == dt, (type(out), getattr(out, "dtype", ""))
    eff = tuple(float(torch.tensor(v, dtype=dt)) for v in (a, b, s, m))
    return out.detach().double().numpy(), xt.double().numpy(), eff


def _neg_inf_allowed(x, a, b, s, m, param, rtol):
    """Where logpdf may be -inf: outside the support (alpha < 1, |beta| = 1, with a rounding
    band of relative width rtol at the edge), on the light side of a totally skewed law
    (beta * (x - loc0)/scale < -1), or at |x| > 1e300."""
    loc0, loc1 = _locs(a, b, s, m, param)
    x1 = (x - loc1) / s
    z0 = (x - loc0) / s
    fuzz = rtol * (np.abs(x) + abs(m) + abs(loc1) + abs(loc0)) / s + 1e-300
    outside = (a < 1) & (abs(b) == 1) & (b * x1 <= fuzz)
    light = (abs(b) == 1) & (b * z0 < -1)
    return outside | light | (np.abs(x) > 1e300)


def _describe(x, v, mask, n=8):
    idx = np.nonzero(mask)[0][:n]
    return ", ".join(f"x={x[i]:.6g}: {v[i]:.6g}" for i in idx) + (" ..." if mask.sum() > n else "")


def check_logpdf(lp, x, a, b, s, m, param, kind="numpy"):
    """Invariant (a); returns a list of failure messages (empty: fine)."""
    rtol = 1e-6 if kind == "torch32" else 1e-13
    errs = []
    nan, pinf = np.isnan(lp), lp == np.inf
    if nan.any():
        errs.append(f"NaN at {_describe(x, lp, nan)}")
    if pinf.any():
        errs.append(f"+inf at {_describe(x, lp, pinf)}")
    bad = (lp == -np.inf) & ~_neg_inf_allowed(x, a, b, s, m, param, rtol)
    if bad.any():
        errs.append(f"-inf inside the support, off the light tail at {_describe(x, lp, bad)}")
    return errs


def check_cdf(F, x):
    """Invariant (b) on a grid sorted ascending; returns a list of failure messages."""
    errs = []
    nan = np.isnan(F)
    if nan.any():
        errs.append(f"NaN at {_describe(x, F, nan)}")
    out = (F < 0) | (F > 1)
    if out.any():
        errs.append(f"outside [0, 1] at {_describe(x, F, out)}")
    dF = np.diff(F)
    dec = np.zeros_like(F, dtype=bool)
    dec[1:] = dF < 0
    if dec.any():
        i = int(np.argmin(dF))
        errs.append(f"decreases at {dec.sum()} points, most by {-dF[i]:.3g} from x={x[i]:.9g} "
                    f"to x={x[i + 1]:.9g} (F = {F[i]:.17g} -> {F[i + 1]:.17g})")
    return errs


# =============================================================================================
# strategies
# =============================================================================================
_sign = st.sampled_from([-1.0, 1.0])
alphas = st.one_of(
    st.sampled_from([1.0, 2.0]),
    st.builds(lambda k, sg: 1.0 + sg * 10.0 ** -k, st.floats(1.0, 15.0), _sign),
    st.builds(lambda u: 10.0 ** u, st.floats(-3.0, 0.0)),
    st.floats(1e-3, 2.0),
)
betas = st.one_of(
    st.sampled_from([-1.0, 0.0, 1.0]),
    st.builds(lambda k, sg: sg * (1.0 - 10.0 ** -k), st.floats(1.0, 15.0), _sign),
    st.floats(-1.0, 1.0),
)
scales = st.one_of(st.just(1.0), st.builds(lambda u: 10.0 ** u, st.floats(-3.0, 3.0)))
locs = st.one_of(st.just(0.0), st.floats(-1e3, 1e3))
_x_extra = st.lists(st.builds(lambda sg, u: sg * 10.0 ** u, _sign, st.floats(-3.0, 12.0)),
                    max_size=24)
_offsets = st.lists(st.builds(lambda sg, u: sg * 10.0 ** u, _sign, st.floats(-12.0, 2.0)),
                    max_size=8)
_BASE_X = np.concatenate([-np.logspace(-3, 12, 31), [0.0], np.logspace(-3, 12, 31)])


@st.composite
def laws(draw):
    """A law and a sorted grid of ~100 x values: +-10^[-3, 12] and 0, drawn points of the same
    form, the S0/S1 locations and points within scale * 10^[-12, 2] of the S1 location
    (the support edge when alpha < 1 and |beta| = 1)."""
    a, b, s, m = draw(alphas), draw(betas), draw(scales), draw(locs)
    param, kind = draw(st.sampled_from(PARAMS)), draw(st.sampled_from(KINDS))
    loc0, loc1 = _locs(a, b, s, m, param)
    near = [loc1 + s * o for o in draw(_offsets)] + [loc0 - s, loc0, loc0 + s, loc1]
    x = np.unique(np.concatenate([_BASE_X, draw(_x_extra), near]))
    return dict(a=a, b=b, s=s, m=m, param=param, kind=kind, x=x)


# =============================================================================================
# (a), (b): invariants over the whole parameter space
# =============================================================================================
@settings(max_examples=100, **_PROP)
@given(law=laws())
def test_logpdf_never_nan_or_plus_inf(law):
    """(a) logpdf: no NaN, no +inf; -inf only outside the support / on the light side of a
    totally skewed law (see the module docstring)."""
    lp, x, (a, b, s, m) = _call(stable.logpdf, law["x"], law["a"], law["b"], law["s"],
                                law["m"], law["param"], law["kind"])
    errs = check_logpdf(lp, x, a, b, s, m, law["param"], law["kind"])
    assert not errs, f"{law['param']}({a!r}, {b!r}, scale={s!r}, loc={m!r}) {law['kind']}: " \
                     + "; ".join(errs)


@settings(max_examples=200, **_PROP)
@given(law=laws())
def test_cdf_in_unit_interval_and_nondecreasing(law):
    """(b) cdf: no NaN, in [0, 1], non-decreasing along the sorted grid (one call).

    One corner is left out here and pinned by ``test_alpha1_faint_tail_cdf_inner_corner``
    (strict xfail, open in issue 8): alpha = 1 with 0 < 1 - |beta| < 1e-12, whose light side
    carries a faint Pareto tail of weight 1 - |beta|; beyond |x| = 30 the series (a Taylor
    polynomial in 1 - |beta| there) has it, inside the quadrature misses it at the 1e-18 level."""
    assume(not (law["a"] == 1 and 0 < 1 - abs(law["b"]) < 1e-12))
    F, x, (a, b, s, m) = _call(stable.cdf, law["x"], law["a"], law["b"], law["s"], law["m"],
                               law["param"], law["kind"])
    order = np.argsort(x, kind="stable")          # float32 rounding keeps the order anyway
    errs = check_cdf(F[order], x[order])
    assert not errs, f"{law['param']}({a!r}, {b!r}, scale={s!r}, loc={m!r}) {law['kind']}: " \
                     + "; ".join(errs)


# =============================================================================================
# (c): agreement with scipy where scipy is accurate
# =============================================================================================
@contextmanager
def scipy_s1():
    """scipy's levy_stable in S1 (its default, but set explicitly); restored afterwards."""
    old = levy_stable.parameterization
    levy_stable.parameterization = "S1"
    try:
        yield levy_stable
    finally:
        levy_stable.parameterization = old


_scipy_alpha = st.one_of(st.floats(0.5, 0.95), st.floats(1.05, 1.95))
_x1_pts = st.lists(st.builds(lambda sg, u: sg * u, _sign, st.floats(0.05, 50.0)),
                   min_size=10, max_size=20)


@settings(max_examples=40, **_PROP)
@given(a=_scipy_alpha, b=st.floats(-0.9, 0.9), s=scales,
       m=st.one_of(st.just(0.0), st.floats(-100.0, 100.0)), param=st.sampled_from(PARAMS),
       x1=_x1_pts)
def test_agrees_with_scipy_where_scipy_is_accurate(a, b, s, m, param, x1):
    """(c) pdf to 1e-6 relative and (for |alpha - 1| >= 0.25) cdf to 1e-7 absolute against
    scipy's default quadrature, in the region where that quadrature is accurate (module
    docstring); x1 in S1-standardised units."""
    x1 = np.unique(np.concatenate([np.linspace(-50, -0.05, 8), np.linspace(0.05, 50, 8), x1]))
    _, loc1 = _locs(a, b, s, m, param)
    x = loc1 + s * x1
    ours = stable.pdf(x, a, b, s, m, param=param)
    with scipy_s1() as ls:
        ref = ls.pdf(x, a, b, loc=loc1, scale=s)
        Fr = ls.cdf(x, a, b, loc=loc1, scale=s) if abs(a - 1) >= 0.25 else None
    rel = np.abs(ours / ref - 1)
    assert np.all(rel <= 1e-6), \
        f"pdf {param}({a}, {b}, {s}, {m}): worst rel {rel.max():.3g} at x1={x1[rel.argmax()]:.6g}"
    if abs(a - 1) >= 0.25:
        Fo = stable.cdf(x, a, b, s, m, param=param)
        err = np.abs(Fo - Fr)
        assert np.all(err <= 1e-7), (f"cdf {param}({a}, {b}, {s}, {m}): worst abs "
                                     f"{err.max():.3g} at x1={x1[err.argmax()]:.6g}")


# =============================================================================================
# (d): the pdf integrates to the cdf
# =============================================================================================
@lru_cache(maxsize=None)
def _gl(n):
    t, w = np.polynomial.legendre.leggauss(n)
    return t, w


def gl_integral(f, za, zb, centres=(0.0,), delta=1e-3, panels=40, nodes=24):
    """Integral of f(z) over [za, zb] by composite Gauss–Legendre. [za, zb] is cut at the
    centres inside it (and half-way between them); each piece is mapped by
    t = asinh((z - c) / delta), c its nearest centre, and split into equal panels in t, which
    resolves features of width ~delta at the centres (the mode, a support edge) and the
    power-law tails alike."""
    t, w = _gl(nodes)
    cs = sorted(c for c in centres)
    cuts = [c for c in cs if za < c < zb] + [(p + q) / 2 for p, q in zip(cs[:-1], cs[1:])
                                            if za < (p + q) / 2 < zb]
    ends = sorted(set([za, zb] + cuts))
    total = 0.0
    for p, q in zip(ends[:-1], ends[1:]):
        c = min(cs, key=lambda v: abs(v - (p + q) / 2))
        e = np.linspace(np.arcsinh((p - c) / delta), np.arcsinh((q - c) / delta), panels + 1)
        mid, h = (e[1:] + e[:-1])[:, None] / 2, (e[1:] - e[:-1])[:, None] / 2
        T = (mid + h * t).ravel()
        z = c + delta * np.sinh(T)
        total += float(np.sum(f(z) * delta * np.cosh(T) * (h * w).ravel()))
    return total


_intervals = st.lists(st.tuples(st.floats(-20.0, 20.0), st.floats(0.05, 30.0)),
                      min_size=2, max_size=2)


@settings(max_examples=40, **_PROP)
@given(a=st.one_of(st.sampled_from([1.0, 2.0, 0.5, 1.5]), st.floats(0.3, 2.0)),
       b=st.one_of(st.sampled_from([-1.0, 0.0, 1.0]), st.floats(-1.0, 1.0)),
       s=st.one_of(st.just(1.0), st.builds(lambda u: 10.0 ** u, st.floats(-2.0, 2.0))),
       m=st.one_of(st.just(0.0), st.floats(-10.0, 10.0)), param=st.sampled_from(PARAMS),
       iv=_intervals)
def test_cdf_differences_are_integrals_of_the_pdf(a, b, s, m, param, iv):
    """(d) cdf(hi) - cdf(lo) = integral of pdf over [lo, hi] (independent Gauss–Legendre rule)
    to 1e-8 relative, on two drawn intervals and one in a tail (S0-standardised units)."""
    loc0, _ = _locs(a, b, s, m, param)
    edge = 0.0 if a == 1 else -b * math.tan(PI * a / 2)      # the S1 origin, S0 units
    sides = [(c - w / 2, c + w / 2) for c, w in iv] + [(3.0, 300.0) if b >= 0 else (-300.0, -3.0)]
    for za, zb in sides:
        xa, xb = loc0 + s * za, loc0 + s * zb
        Fa, Fb = stable.cdf(np.array([xa, xb]), a, b, s, m, param=param)
        integral = gl_integral(lambda z: s * stable.pdf(loc0 + s * z, a, b, s, m, param=param),
                               (xa - loc0) / s, (xb - loc0) / s, centres=(0.0, edge))
        assert abs((Fb - Fa) - integral) <= 1e-8 * abs(integral) + 1e-13, \
            (f"{param}({a}, {b}, {s}, {m}) on [{xa:.6g}, {xb:.6g}]: cdf difference "
             f"{Fb - Fa:.15g}, integral of pdf {integral:.15g}")


def test_gauss_legendre_rule_is_accurate():
    """The rule of (d) on closed forms: Cauchy, Gaussian and Lévy (alpha = 1, 2, 1/2 with
    beta = 1: a support edge at z0 = -1 and a heavy tail) to 1e-14."""
    from scipy.stats import levy
    for za, zb in [(-15.0, 15.0), (-1.2, -0.5), (-0.999, 3.0), (2.0, 400.0)]:
        got = gl_integral(lambda z: levy.pdf(z + 1.0), za, zb, centres=(0.0, -1.0))
        assert abs(got / (levy.cdf(zb + 1.0) - levy.cdf(za + 1.0)) - 1) < 1e-14
    cauchy = gl_integral(lambda z: 1 / (PI * (1 + z * z)), -3.7, 250.0)
    assert abs(cauchy - (math.atan(250.0) - math.atan(-3.7)) / PI) < 1e-14
    gauss = gl_integral(lambda z: np.exp(-z * z / 4) / math.sqrt(4 * PI), -1.3, 7.0)
    assert abs(gauss - 0.5 * (math.erf(7.0 / 2) - math.erf(-1.3 / 2))) < 1e-14


# =============================================================================================
# regression: the points of the issue
# =============================================================================================
# (param, alpha, beta, x) of the issue, each with its log-density from _mp_logpdf (30 digits,
# rounded to 17): every one is finite in double precision, so logpdf must be finite there
ISSUE_POINTS = [
    ("S1", 0.95, 1.0, 0.0018, -3.4093763146558856e+72),
    ("S1", 0.9, 1.0, 0.0058, -5.943006829264083e+26),
    ("S0", 1.01, 1.0, -100.0, -6.0404148781836699e+40),
    ("S0", 1.05, 1.0, -100.0, -1.7288807149535015e+19),
    ("S0", 1.001, 1.0, -100.0, -6.2444365544049338e+62),
    ("S0", 1.1, 1.0, -2270.0, -2.615521047119652e+27),
    ("S0", 1.1, -1.0, 2270.0, -2.615521047119652e+27),
] + [(p, a, b, x, ref) for a, b, x, ref in [
    (1.0, -1.0, -8.2e6, -32.290869801148066),
    (1.0, -1.0, -5.9e7, -36.237678342805502),
    (1.0, -0.5, -4.8e7, -36.112687693147065),
    (1.0, 0.012, -7.0e5, -28.074473968760664),
] for p in PARAMS]

# further reference points: moderate light tails (where a finite but wrong value would go
# unnoticed by the invariants), the alpha = 1 +- 1e-4 interpolation zone, the alpha = 1 series
# switch, and one point where the true log-density is below the double range (-inf expected)
MORE_POINTS = [
    ("S1", 0.95, 1.0, 0.05, -1.2659672018618985e+45),
    ("S1", 0.9, 1.0, 0.1, -4414262661515231.4),
    ("S1", 0.3, 1.0, 1e-3, -2.6526714975371975),
    ("S0", 0.7, -1.0, 0.5, -1.1375843875416274),
    ("S0", 0.99, 1.0, -3.0, -27.106755421764535),
    ("S0", 1.01, 1.0, -3.0, -23.014338808423455),
    ("S0", 1.05, 1.0, -5.0, -225.82800214957458),
    ("S0", 1.1, 1.0, -10.0, -6697.3005088183242),
    ("S1", 1.7, 1.0, -8.0, -26.286094596475494),
    ("S0", 1.5, -1.0, 8.0, -54.225281600899211),
    ("S0", 1.9, -1.0, 30.0, -305.11471002389929),
    ("S1", 1.0, 1.0, -3.0, -24.905932365482477),
    ("S0", 1.0, 1.0, -6.0, -2898.5963096941913),
    ("S1", 1.0, 1.0, -20.0, -10312148999593.793),
    ("S1", 1.0, 0.3, -40.0, -8.9058043605083383),
    ("S1", 1.0, 0.3, -1e9, -42.947936511244187),
    ("S0", 1.00005, 1.0, -3.0, -24.895758660235604),
    ("S0", 1.00005, 1.0, -30.0, -6.4884760709631962e+19),
    ("S0", 0.99997, -1.0, 10.0, -1559162.2662248362),
    ("S0", 1.0000001, 1.0, -5.0, -600.55515185442786),
    ("S0", 1.0, -1.0, 1e3, -math.inf),       # log f = -3.6121232619907726e+681
    # next to the mode of totally skewed laws at and near alpha = 1 (values ~ -1.45)
    ("S0", 1.05, 1.0, -0.95985, -1.477277872930143),
    ("S0", 1.05, 1.0, -0.9594, -1.476889537760027),
    ("S1", 1.0, 1.0, -0.9172, -1.430664572726231),
    ("S1", 1.0, 1.0, -0.9163, -1.4299385514082401),
    ("S0", 1.0, -1.0, 0.9172, -1.430664572726231),
]


def _id(p):
    return f"{p[0]}({p[1]},{p[2]})@{p[3]:g}"


@pytest.mark.parametrize("pt", ISSUE_POINTS, ids=_id)
def test_issue_points_logpdf_finite(pt):
    """logpdf at the points of the issue is finite: neither +inf nor NaN, and not -inf either
    (the true values, from _mp_logpdf, are all within the double range)."""
    param, a, b, x, _ = pt
    v = stable.logpdf(x, a, b, param=param)
    assert math.isfinite(v), v
    vt = stable.logpdf(torch.tensor([x], dtype=torch.float64), a, b, param=param)
    assert bool(torch.isfinite(vt).all()), vt


_NEAR1_LIGHT = {("S0", 1.00005, 1.0, -3.0), ("S0", 1.00005, 1.0, -30.0), ("S0", 0.99997, -1.0, 10.0)}
_NEAR1_REASON = ("issue 8, open: for 0 < |alpha - 1| < 1e-4 the density is a quadratic "
                 "interpolation in alpha between 1 - 1e-4, 1, 1 + 1e-4; in the light tails of "
                 "|beta| = 1 that is good to ~1e-7 of log f, not 1e-8")


def _ref_params(points):
    return [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=_NEAR1_REASON))
            if p[:4] in _NEAR1_LIGHT else p for p in points]


@pytest.mark.parametrize("pt", _ref_params(ISSUE_POINTS + MORE_POINTS), ids=_id)
def test_logpdf_vs_mpmath_reference(pt):
    """logpdf against the stored 30-digit references to 1e-8 relative (where the reference is
    below the double range, -inf is the right answer)."""
    param, a, b, x, ref = pt
    v = stable.logpdf(x, a, b, param=param)
    if ref == -math.inf:
        assert v == -math.inf, v
    else:
        assert abs(v / ref - 1) <= 1e-8, (v, ref, abs(v / ref - 1))


# Light sides of nearly totally skewed laws where the faint Pareto tail (weight (1 - |beta|)/2)
# and the light tail have comparable densities: Nolan's integrand has two bumps there, and a
# quadrature that follows one of them was off by up to 4e-4 in log f (2e-2 with 24 nodes).
# References: 40-digit Fourier inversion of the characteristic function (_mp_logpdf_cf),
# independent of Nolan's integral.
TWO_BUMP_POINTS = [
    ("S0", 1.0053, 0.999, -2.0, -4.9473090276979335),
    ("S0", 1.0053, 0.999, -2.2, -6.673028845847925),
    ("S0", 1.0053, 0.999, -2.7, -9.947983243281953),
    ("S0", 1.01, 0.9999, -2.2, -6.621168048295663),
    ("S1", 1.05, 0.9999, -14.6, -3.853104140268866),
    ("S0", 1.0, -0.999, 1.9, -4.319759080331748),
    ("S0", 0.9, 0.9999, -1.64, -3.63900022944209),
    ("S0", 1.3, 0.9999, -2.2, -3.7395974642858163),
    ("S0", 1.1, 0.9999, -1.9, -3.56471140000692),
]


@pytest.mark.parametrize("pt", TWO_BUMP_POINTS, ids=_id)
def test_logpdf_two_bump_light_side(pt):
    """logpdf within 1e-9 of the reference where the integrand has two bumps, and the
    24-node quadrature the fits build their interpolants from within 1e-5 (24 nodes give
    ~4e-6 where the faint tail is a shoulder rather than a bump; it was 2e-2 at -2.2)."""
    param, a, b, x, ref = pt
    assert abs(stable.logpdf(x, a, b, param=param) / ref - 1) <= 1e-9
    z = torch.tensor([x], dtype=torch.float64)
    v24 = float(_sd.std_logpdf(z, torch.full_like(z, a), torch.full_like(z, b),
                               0 if param == "S0" else 1, 24))
    assert abs(v24 / ref - 1) <= 1e-5, v24


@pytest.mark.slow
@pytest.mark.parametrize("pt", TWO_BUMP_POINTS[:3], ids=_id)
def test_two_bump_reference_recomputed(pt):
    """The stored two-bump references are what _mp_logpdf_cf computes."""
    param, a, b, x, ref = pt
    assert abs(float(_mp_logpdf_cf(_to_s1(param, a, b, x), a, b)) / ref - 1) < 1e-14


def test_alpha1_faint_tail_cdf_monotone():
    """The example hypothesis found: S1(1, 0.9999999999999867, 0.6838, -1.375e-4) at x in
    [-1000, -316]. The faint Pareto tail has weight 1 - beta = 1.3e-14; the cdf there is
    (1 - beta)/(pi |z|) to within its log corrections (F ~ 3e-18 to 9e-18), positive and
    increasing. (It was 0 or 7e-69 before the alpha = 1 series became a Taylor polynomial in
    1 + beta on the faint side.)"""
    x = -np.logspace(np.log10(1000.0), np.log10(316.0), 200)
    F = stable.cdf(x, 1.0, 0.9999999999999867, 0.6838, -1.375e-4)
    assert np.all(np.diff(F) >= 0) and np.all(F > 0), F[:: 40]
    z = np.abs(x + 1.375e-4) / 0.6838
    lead = (1 - 0.9999999999999867) / (np.pi * z)
    assert np.all(np.abs(F / lead - 1) < 0.05), F / lead       # log corrections: ~1 %


@pytest.mark.xfail(strict=True, reason="issue 8, open: alpha = 1, 1 - |beta| < 1e-12, |x| < 30: "
                   "the quadrature misses the faint Pareto tail (F ~ 1e-16) and the cdf dips "
                   "by ~2e-18 where it meets the series at |x| = 30")
def test_alpha1_faint_tail_cdf_inner_corner():
    x = -np.logspace(np.log10(60.0), np.log10(2.0), 400)
    F = stable.cdf(x, 1.0, 1 - 1.3e-14)
    assert np.all(np.diff(F) >= 0), np.diff(F).min()


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("b, sign", [(0.012, -1.0), (-0.84, 1.0)])
def test_alpha1_cdf_monotone_across_far_tail_switch(b, sign, param):
    """alpha = 1: the cdf does not decrease across |x| = 1e7 (the old switch to the Pareto
    tail made S(1, 0.012) drop by 3e-8 near x = -1e7 and S(1, -0.84) by 2e-9 near +1e7);
    2000 points, log-spaced over [0.5e7, 2e7]."""
    x = np.sort(sign * np.logspace(np.log10(0.5e7), np.log10(2e7), 2000))
    F = stable.cdf(x, 1.0, b, param=param)
    errs = check_cdf(F, x)
    assert not errs, errs
    # no jump either way: each step of F lies between min f and max f (f monotone out here)
    # times the step in x, up to 1e-4 relative and the rounding of F
    f = stable.pdf(x, 1.0, b, param=param)
    dF, dx = np.diff(F), np.diff(x)
    hi = np.maximum(f[1:], f[:-1]) * dx * (1 + 1e-4) + 4e-16
    lo = np.minimum(f[1:], f[:-1]) * dx * (1 - 1e-4) - 4e-16
    bad = (dF > hi) | (dF < lo)
    assert not bad.any(), [(x[i], dF[i], lo[i], hi[i]) for i in np.nonzero(bad)[0][:5]]


@pytest.mark.parametrize("param", PARAMS)
def test_continuity_at_alpha_one_and_beta_zero(param):
    """The standard law is continuous in beta at alpha = 1 (S1(1, beta) -> Cauchy) and, in S0,
    in alpha through 1: pdf and cdf at beta = +-1e-10, +-1e-6, +-0.99e-4 (the small-beta zone
    of the alpha = 1 code and beyond) and at alpha = 1 +- 1e-12, 1e-8, 0.99e-4, 1e-3 differ
    from their limits by at most 100 times the perturbation (the derivatives are O(1) for
    |x| <= 5, |beta| <= 0.5). alpha = 1, beta = 1e-10 once gave cdf(-0.5) = 1e-6 (Cauchy:
    0.352). One vectorised call per function (per-point parameters)."""
    x = np.linspace(-5.0, 5.0, 41)
    cases = [((1.0, b), (1.0, 0.0), abs(b))
             for b in (1e-10, -1e-10, 1e-6, -1e-6, 0.99e-4, -0.99e-4)]
    if param == "S0":
        cases += [((1.0 + e, b), (1.0, b), abs(e))
                  for e in (1e-12, -1e-12, 1e-8, -1e-8, 0.99e-4, -0.99e-4, 1e-3, -1e-3)
                  for b in (0.0, 0.5, -0.5)]
    a, b, a0, b0 = (np.array(v)[:, None] for v in zip(*(c[0] + c[1] for c in cases)))
    eps = np.array([c[2] for c in cases])
    X = np.tile(x, (len(cases), 1))
    f, f0 = stable.pdf(X, a, b, param=param), stable.pdf(X, a0, b0, param=param)
    F, F0 = stable.cdf(X, a, b, param=param), stable.cdf(X, a0, b0, param=param)
    df, dF = np.abs(f / f0 - 1), np.abs(F - F0)
    errs = []
    for k in range(len(cases)):
        if df[k].max() > 100 * eps[k] + 1e-12 or dF[k].max() > 100 * eps[k] + 1e-13:
            i, j = int(df[k].argmax()), int(dF[k].argmax())
            errs.append(f"S({float(a[k, 0])!r}, {float(b[k, 0])!r}) vs "
                        f"S({float(a0[k, 0])}, {float(b0[k, 0])}): pdf rel {df[k, i]:.3g} at "
                        f"x={x[i]:g}, cdf abs {dF[k, j]:.3g} at x={x[j]:g}")
    assert not errs, "\n".join(errs)


SWEEP_ALPHA = [0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.999, 1.0, 1.001, 1.01, 1.05, 1.1, 1.3, 1.5,
               1.7, 1.9, 2.0]
SWEEP_BETA = [-1.0, -0.5, 0.0, 0.3, 1.0]
SWEEP_X = np.concatenate([-np.logspace(-3, 12, 60)[::-1], [0.0], np.logspace(-3, 12, 60)])


@pytest.mark.parametrize("param", PARAMS)
def test_issue_sweep_vectorised(param):
    """The issue's sweep, all (alpha, beta) in one call per function (per-point parameters):
    invariants (a) and (b) on x = +-logspace(-3, 12, 60) and 0."""
    A, B = np.meshgrid(SWEEP_ALPHA, SWEEP_BETA, indexing="ij")
    a, b = A.reshape(-1, 1), B.reshape(-1, 1)
    X = np.tile(SWEEP_X, (a.size, 1))
    lp = stable.logpdf(X, a, b, param=param)
    F = stable.cdf(X, a, b, param=param)
    errs = []
    for i in range(a.size):
        e = (check_logpdf(lp[i], SWEEP_X, a[i, 0], b[i, 0], 1.0, 0.0, param)
             + check_cdf(F[i], SWEEP_X))
        errs += [f"{param}({a[i, 0]}, {b[i, 0]}): {m}" for m in e]
    assert not errs, "\n".join(errs)


@pytest.mark.slow
@pytest.mark.parametrize("param", PARAMS)
def test_issue_sweep_per_law(param):
    """The issue's sweep as a user runs it: one logpdf and one cdf call per (alpha, beta)
    (scalar parameters: the shared-(alpha, beta) path)."""
    errs = []
    for a in SWEEP_ALPHA:
        for b in SWEEP_BETA:
            lp = stable.logpdf(SWEEP_X, a, b, param=param)
            F = stable.cdf(SWEEP_X, a, b, param=param)
            e = check_logpdf(lp, SWEEP_X, a, b, 1.0, 0.0, param) + check_cdf(F, SWEEP_X)
            errs += [f"{param}({a}, {b}): {m}" for m in e]
    assert not errs, "\n".join(errs)


# =============================================================================================
# the mpmath reference
# =============================================================================================
def _mp_logpdf(x1, a, b, dps=30):
    r"""log f(x1) of the standard S1(alpha, beta) law (alpha = 1: S0 = S1) to ``dps`` digits,
    computed independently of gnilab with mpmath from Nolan's (1997, Theorem 1) integral

    .. math::

        f(x_1)=\frac{\alpha}{\pi|\alpha-1|x_1}\int_{-\theta_0}^{\pi/2}g e^{-g}d\theta,\quad
        g=x_1^{\alpha/(\alpha-1)}V(\theta)\quad(x_1>0;\ f(x_1;\beta)=f(-x_1;-\beta)),

    resp. :math:`f(x)=\frac1{2\beta}\int_{-\pi/2}^{\pi/2}g e^{-g}d\theta` at alpha = 1. Every
    trigonometric factor of log g is written in the offset d > 0 from the nearer end point of
    the theta range (exact end-point values, so the 0/0 of the light tails of beta = +-1 keeps
    full relative precision); theta = lo + L sigmoid(u) maps the range to the real line, where
    the log-integrand psi(u) = log g - g + log dtheta/du has a single peak of width O(1) or
    less, also when g >> 1 everywhere (light tails: the peak sits at offsets ~ g^-c from an
    end). The peak is found by a scan and golden-section search, psi is evaluated with
    dps + log10|max psi| digits (so psi - max psi keeps dps digits even when log f ~ -1e72),
    and exp(psi - max psi) is integrated by tanh-sinh (mpmath.quad) on breakpoints at the
    peak +- multiples of its width and two infinite tails.

    Checked during development against 25-digit values in tests/test_stable.py (_MP_REF),
    the Lévy law (alpha = 1/2, beta = 1), scipy at moderate points, and Fourier inversion of
    the characteristic function (:func:`_mp_logpdf_cf`) on light tails, to all 17 digits.
    """
    mp = pytest.importorskip("mpmath")
    x1, a, b = mp.mpf(x1), mp.mpf(a), mp.mpf(b)
    if (b < 0) if a == 1 else (x1 < 0):
        x1, b = -x1, -b
    if a < 1 and b == -1:
        return -mp.inf
    if a == 1 and b == 0:
        return -mp.log(mp.pi) - mp.log(1 + x1 ** 2)

    def setup():
        if a == 1:
            c = -mp.pi * x1 / (2 * b) + mp.log(2 / mp.pi)

            def logg(d, lo_side):
                C = mp.sin(d)
                w = mp.pi / 2 * (1 - b) + b * d if lo_side else mp.pi / 2 * (1 + b) - b * d
                tn = -mp.cos(d) / C if lo_side else mp.cos(d) / C
                return c + mp.log(w / C) + w * tn / b
            return logg, mp.pi, -mp.log(2 * b)
        t = b * mp.tan(mp.pi * a / 2)
        p = a / (a - 1)
        c = -mp.log(1 + t * t) / (2 * (a - 1)) + p * mp.log(x1)
        if a < 1 and b == 1:                         # theta0 = pi/2 exactly
            th0, c0, s0 = mp.pi / 2, mp.mpf(0), mp.mpf(1)
            sA, cA = mp.sin(mp.pi * a), mp.cos(mp.pi * a)
        else:
            th0 = mp.atan(t) / a
            c0, s0 = mp.cos(th0), mp.sin(th0)
            if a > 1 and b == -1:                    # alpha (theta0 + pi/2) = pi exactly
                sA, cA = mp.mpf(0), mp.mpf(-1)
            else:
                sA, cA = mp.sin(a * (th0 + mp.pi / 2)), mp.cos(a * (th0 + mp.pi / 2))

        def logg(d, lo_side):
            if lo_side:        # theta = -theta0 + d
                S, C = mp.sin(a * d), c0 * mp.cos(d) + s0 * mp.sin(d)
                K = c0 * mp.cos((a - 1) * d) - s0 * mp.sin((a - 1) * d)
            else:              # theta = pi/2 - d
                C = mp.sin(d)
                S = sA * mp.cos(a * d) - cA * mp.sin(a * d)
                K = sA * mp.cos((a - 1) * d) - cA * mp.sin((a - 1) * d)
            return c + p * mp.log(C / S) + mp.log(K / C)
        return logg, mp.pi / 2 + th0, mp.log(a / (mp.pi * abs(a - 1) * x1))

    def make_psi(logg, L):
        def psi(u):
            if abs(u) > 3000:                        # offsets below e^-3000: nothing there
                return -mp.inf
            e = mp.exp(-abs(u))
            small, big = L * e / (1 + e), L / (1 + e)
            lg = logg(small, u < 0)
            if lg > 10 ** 6:
                return -mp.inf
            return lg - mp.exp(lg) + mp.log(small * big / L)
        return psi

    with mp.workdps(dps + 10):                       # locate the peak, size the precision
        logg, L, _ = setup()
        psi = make_psi(logg, L)
        grid = [mp.mpf(k) / 2 for k in range(-1400, 1401)]
        vals = [psi(u) for u in grid]
        k = max(range(len(grid)), key=lambda i: vals[i])
        u0, est = grid[k], vals[k]
    wd = dps + 10 + int(mp.log10(abs(est) + 1))
    with mp.workdps(wd):
        logg, L, pref = setup()
        psi = make_psi(logg, L)
        lo_, hi_ = u0 - mp.mpf(1) / 2, u0 + mp.mpf(1) / 2
        gr = (mp.sqrt(5) - 1) / 2
        for _ in range(60):
            c_, d_ = hi_ - gr * (hi_ - lo_), lo_ + gr * (hi_ - lo_)
            if psi(c_) > psi(d_):
                hi_ = d_
            else:
                lo_ = c_
        us = (lo_ + hi_) / 2
        shift = psi(us)
        h = mp.mpf(10) ** -6
        d2 = (psi(us + h) - 2 * shift + psi(us - h)) / h ** 2
        w = min(1 / mp.sqrt(-d2) if d2 < 0 else mp.mpf(1), mp.mpf(1))

    def integrand(u):
        with mp.workdps(wd):
            v = psi(u) - shift
        return +mp.exp(v) if v > -10 ** 5 else mp.mpf(0)
    with mp.workdps(dps + 5):
        us, w = +us, +w
        pts = [us + w * j for j in range(-40, 41, 4)]
        tot = (mp.quad(integrand, [-mp.inf, pts[0]]) + mp.quad(integrand, pts)
               + mp.quad(integrand, [pts[-1], mp.inf]))
        return +(pref + shift + mp.log(tot))


def _mp_logpdf_cf(x1, a, b, dps=40):
    r"""log f(x1) of the standard S1 law by Fourier inversion of the characteristic function,
    :math:`f(x)=\frac1\pi\int_0^\infty e^{-t^\alpha}\cos(\beta\tan\frac{\pi\alpha}2t^\alpha-tx)dt`
    (alpha != 1), :math:`\frac1\pi\int_0^\infty e^{-t}\cos(tx+\beta\frac2\pi t\log t)dt`
    (alpha = 1); only for moderate densities (the cancellation costs log10(1/f) digits)."""
    mp = pytest.importorskip("mpmath")
    with mp.workdps(dps):
        x1, a, b = mp.mpf(x1), mp.mpf(a), mp.mpf(b)
        if a == 1:
            def h(t):
                if t == 0:
                    return mp.mpf(1)
                return mp.exp(-t) * mp.cos(t * x1 + b * 2 / mp.pi * t * mp.log(t))
        else:
            T = b * mp.tan(mp.pi * a / 2)

            def h(t):
                return mp.exp(-t ** a) * mp.cos(T * t ** a - t * x1)
        return mp.log(mp.quad(h, mp.linspace(0, 60, 121) + [mp.inf]) / mp.pi)


def _to_s1(param, a, b, x):
    """The S1-standardised point (mpmath) of x under the standard law in ``param``."""
    import mpmath as mp
    with mp.workdps(60):
        A, B, X = mp.mpf(a), mp.mpf(b), mp.mpf(x)
        return X + B * mp.tan(mp.pi * A / 2) if (param == "S0" and a != 1) else X


# a subset that covers each branch of the reference (alpha < 1 edge, alpha > 1 light tail,
# alpha = 1 light and heavy tails, the near-1 zone); the full tables take ~1 min to recompute
_RECOMPUTE = [p for p in ISSUE_POINTS + MORE_POINTS if p[:4] in {
    ("S1", 0.95, 1.0, 0.0018), ("S0", 1.01, 1.0, -100.0), ("S0", 1.0, -1.0, -8.2e6),
    ("S1", 1.7, 1.0, -8.0), ("S1", 1.0, 1.0, -20.0), ("S0", 1.00005, 1.0, -30.0)}]


@pytest.mark.slow
@pytest.mark.parametrize("pt", _ref_params(_RECOMPUTE), ids=_id)
def test_mpmath_reference_recomputed(pt):
    """The stored references are what _mp_logpdf computes (to 1e-14), and logpdf agrees with
    the live computation to 1e-8 relative."""
    param, a, b, x, ref = pt
    live = float(_mp_logpdf(_to_s1(param, a, b, x), a, b))
    assert abs(live / ref - 1) < 1e-14, (live, ref)
    v = stable.logpdf(x, a, b, param=param)
    assert abs(v / live - 1) <= 1e-8, (v, live)


@pytest.mark.slow
@pytest.mark.parametrize("x1, a, b", [(-4.0, 1.5, 1.0), (-3.0, 1.0, 1.0), (1.2, 1.7, -1.0)])
def test_mpmath_reference_two_methods_agree(x1, a, b):
    """Nolan's integral (_mp_logpdf) and Fourier inversion (_mp_logpdf_cf) agree to 1e-20
    on light tails: the reference is not one method checked against itself."""
    assert abs(_mp_logpdf(x1, a, b) / _mp_logpdf_cf(x1, a, b) - 1) < 1e-20


# =============================================================================================
# maximum likelihood on totally skewed samples
# =============================================================================================
# The fits' wall time (the issue's target: under 2 s each) is measured by
# benchmarks/bench_stable.py, not here: a timing is not a unit test.
MLE_CASES = [(1.0, 1.0), (1.0, -1.0), (0.95, 1.0), (1.05, -1.0)]


@lru_cache(maxsize=None)
def _mle(a, b):
    """fit(method="mle") on 2000 draws of S1(a, b) (seed 0)."""
    return stable.fit(stable.sample(a, b, size=2000, generator=0), method="mle")


@pytest.mark.slow
@pytest.mark.parametrize("a, b", MLE_CASES)
def test_mle_recovers_totally_skewed_laws(a, b):
    """2000 draws of S1(1, +-1), S1(0.95, 1), S1(1.05, -1): finite log-likelihood,
    |alpha_hat - alpha| < 0.07, |beta_hat - beta| < 0.15 (over 2 standard errors)."""
    f = _mle(a, b)
    assert f.loglik is not None and math.isfinite(f.loglik), f
    assert abs(f.alpha - a) < 0.07 and abs(f.beta - b) < 0.15, f


def test_alpha1_series_taylor_branch_on_the_faint_side():
    """alpha = 1, faint side (1 + beta small after reflection): the series is its Taylor
    polynomial in 1 + beta for 1 + beta <= 1e-5. At 1 + beta = 1e-4, where the plain sum is
    accurate to ~1e-12, the Taylor form agrees to 1e-9 (its truncation error is O((1+beta)^2));
    at 1 + beta = 1e-13 (where the plain sum is rounding noise) x^2 f / (1 + beta) is the
    leading coefficient 1/pi up to the log corrections (within 15 % for x >= 30)."""
    X = torch.tensor([30.0, 100.0, 1e3, 1e6], dtype=torch.float64)
    for kind in ("pdf", "sf"):
        B = torch.full_like(X, -1 + 1e-4)
        plain = _series._alpha1_series(X, B, kind)
        old = _series._ALPHA1_LINEAR
        try:
            _series._ALPHA1_LINEAR = 1.0          # force the Taylor branch
            taylor = _series._alpha1_series(X, B, kind)
        finally:
            _series._ALPHA1_LINEAR = old
        assert torch.allclose(taylor, plain, rtol=1e-9, atol=0), (kind, taylor / plain - 1)
        tiny = _series._alpha1_series(X, torch.full_like(X, -1 + 1e-13), kind)
        ratio = tiny / 1e-13 * math.pi
        assert bool(((ratio > 0.85) & (ratio < 1.15)).all()), (kind, ratio)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("a", [0.3, 0.8174098134040833, 0.99])
def test_cdf_is_exactly_zero_at_the_support_edge(a, dtype):
    """alpha < 1, beta = 1: F(0) = 0 exactly in S1 (hypothesis found -7e-17 in float32 at
    alpha = 0.8174: theta0 = atan(tan(pi alpha/2))/alpha missed pi/2 by rounding); beta = -1
    mirrors it. Every cdf value lies in [0, 1]."""
    x = torch.tensor([-1e-3, 0.0, 1e-3], dtype=dtype)
    F = stable.cdf(x, a, 1.0)
    assert float(F[0]) == 0.0 and float(F[1]) == 0.0 and 0.0 <= float(F[2]) <= 1.0, F
    G = stable.cdf(-x, a, -1.0)
    assert float(G[0]) == 1.0 and float(G[1]) == 1.0, G
