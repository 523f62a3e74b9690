"""Tests for gnilab.gni (the asymmetric stable dynamics) (Camuto et al. 2021, §4: Eqs. 4.3, 4.4, 4.6-4.9).

Deterministic identities are checked to rounding; statistical ones use fixed seeds, with the
tolerance derived from the sample size stated next to each check (empirical characteristic
function: standard error sd/sqrt(n); histogram distances: the exact noise floor of
``tv_to_gibbs`` for the number of independent paths).
"""
import math

import numpy as np
import pytest
import torch
from scipy import special

from gnilab import gni as G
from gnilab.gni import _dynamics, _gibbs
from gnilab import stable as S
from gnilab.levy import MultiWell, Quartic

f64 = torch.float64
QUARTIC = Quartic()


pytestmark = pytest.mark.usefixtures("one_thread")


class _Poly:
    """A potential with only value and grad (what Eq. 4.8 needs)."""

    def value(self, w):
        return w ** 4 / 4 - w ** 2 / 2 + 0.3 * w

    def grad(self, w):
        return w ** 3 - w + 0.3


# ------------------------------------------------------------------------------------------
# Grünwald weights
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [-0.9, -0.5, -0.1, 0.3, 1.7])
def test_grunwald_weights_gamma_closed_form(gamma):
    """g_k = Gamma(k - gamma) / (Gamma(-gamma) Gamma(k + 1)) in signed log-gamma form (all
    positive for gamma in (-1, 0)); relative error ~ K eps."""
    K = 400
    g = G.grunwald_weights(gamma, K).numpy()
    k = np.arange(K + 1)
    sign = special.gammasgn(k - gamma) * special.gammasgn(-gamma)
    ref = sign * np.exp(special.gammaln(k - gamma) - special.gammaln(-gamma)
                        - special.gammaln(k + 1))
    if gamma < 0:
        assert np.all(g > 0)
    np.testing.assert_allclose(g, ref, rtol=1e-11, atol=1e-300)
    assert g[0] == 1.0 and g.dtype == np.float64


@pytest.mark.parametrize("gamma", [-0.9, -0.5, -0.1, 0.6])
@pytest.mark.parametrize("z", [-0.9, -0.3, 0.4, 0.8])
def test_grunwald_weights_generating_function(gamma, z):
    """sum_k g_k z^k = (1 - z)^gamma for |z| < 1; with K = 600 the tail is below
    0.9^600 ~ 1e-27."""
    g = G.grunwald_weights(gamma, 600).numpy()
    total = np.polynomial.polynomial.polyval(z, g)
    assert total == pytest.approx((1 - z) ** gamma, rel=1e-12)


def test_grunwald_weights_k0_and_decay():
    """K = 0 is [1]; for gamma in (-1, 0) g_k ~ k^{-gamma-1} / Gamma(-gamma)."""
    assert G.grunwald_weights(-0.5, 0).tolist() == [1.0]
    g = G.grunwald_weights(-0.4, 100000)
    k = 100000
    assert float(g[k]) == pytest.approx(k ** (0.4 - 1) / math.gamma(0.4), rel=1e-4)


# ------------------------------------------------------------------------------------------
# h0 and the identity K = 0, h = h0  =>  b = -f'
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [1.05, 1.3, 1.5, 1.75, 1.95])
@pytest.mark.parametrize("theta", [-0.8, 0.0, 0.6])
@pytest.mark.parametrize("eps", [0.3, 1.0, 2.5])
def test_k0_h0_gives_minus_gradient(alpha, theta, eps):
    """Eq. 4.8 with K = 0 and h = h0 is -f' to rounding, for every eps (the prefactor
    eps^alpha cancels the eps^-alpha of phi'), for both centre weights and two potentials."""
    w = torch.linspace(-3, 3, 61, dtype=f64)
    for pot in (QUARTIC, MultiWell((-2.0, 0.5, 2.0), (-1.0, 1.2), kappa=0.3), _Poly()):
        for cw in (1.0, 2.0):
            b = G.corrected_drift(pot, alpha, theta, eps, G.h0(alpha, eps, cw), 0, cw)(w)
            ref = -pot.grad(w)
            assert torch.allclose(b, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


def test_h0_values_and_paper_formula():
    """h0 = (2 cos(gamma pi/2))^{1/(2-alpha)}: h0(1.5) = 2 exactly; it does not depend on eps,
    and the paper's printed [2 eps^-alpha cos((alpha-2) pi/2)]^{1/(2-alpha)} agrees only at
    eps = 1 (at eps = 2 it does not give -f')."""
    assert G.h0(1.5) == pytest.approx(2.0, rel=1e-14)
    assert G.h0(1.9) == pytest.approx((2 * math.cos(0.05 * math.pi)) ** 10, rel=1e-14)
    assert G.h0(1.3, eps=0.2) == G.h0(1.3, eps=5.0)
    a = 1.3
    paper = lambda eps: (2 * eps ** (-a) * math.cos((a - 2) * math.pi / 2)) ** (1 / (2 - a))
    assert paper(1.0) == pytest.approx(G.h0(a), rel=1e-14)
    w = torch.tensor([1.7], dtype=f64)
    b = G.corrected_drift(QUARTIC, a, 0.0, 2.0, paper(2.0), 0)(w)
    assert abs(float(b + QUARTIC.grad(w))) > 0.5


def test_center_weight_difference_is_exact():
    """The k = 0 term alone separates the printed weight 1 from weight 2:
    b_1 - b_2 = c_gamma h^{-gamma} f' (an anti-restoring term of size h^{2-alpha})."""
    w = torch.linspace(-2, 2, 9, dtype=f64)
    for a in (1.2, 1.8):
        d1 = G.corrected_drift(QUARTIC, a, 0.3, 1.0, 0.05, 60, 1.0)
        d2 = G.corrected_drift(QUARTIC, a, 0.3, 1.0, 0.05, 60, 2.0)
        diff = d1(w) - d2(w)
        ref = d1.c_gamma * 0.05 ** (2 - a) * QUARTIC.grad(w)
        assert torch.allclose(diff, ref, rtol=1e-10, atol=1e-12)


def _cauchy_rate(alpha, cw):
    """Observed order p of b_h -> b_0: |b_h - b_{h/3}| ~ h^p, from h = 0.09, 0.03, 0.01
    with h K = 9 fixed (the sum covers the support of phi')."""
    w = torch.tensor([-1.5, -0.7, 0.4, 1.0, 1.6], dtype=f64)
    bs = [G.corrected_drift(QUARTIC, alpha, 0.4, 1.0, h, round(9 / h), cw)(w)
          for h in (0.09, 0.03, 0.01)]
    d1 = (bs[0] - bs[1]).abs().max()
    d2 = (bs[1] - bs[2]).abs().max()
    return math.log(float(d1 / d2)) / math.log(3.0)


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.8])
def test_convergence_order_in_h(alpha):
    """With centre weight 2 the drift converges at order 1 in h (Theorem 4.2's rate). Eq. 4.8
    as printed (weight 1) differs from it by exactly c h^{2-alpha} f' (test above), so it
    converges only at order 2 - alpha (at alpha = 1.8: like h^0.2)."""
    assert _cauchy_rate(alpha, 2.0) == pytest.approx(1.0, abs=0.15)


# ------------------------------------------------------------------------------------------
# the drift callable
# ------------------------------------------------------------------------------------------
def test_drift_shapes_dtype_and_overflow():
    """Same shape out; float32 in -> float32 out; far out the exact drift overflows to inf with
    the restoring sign (never NaN); NaN in -> NaN out."""
    d = G.corrected_drift(QUARTIC, 1.4, 0.2, 1.0, 0.05, 100)
    w = torch.linspace(-2, 2, 12, dtype=f64).reshape(3, 4)
    assert d(w).shape == (3, 4)
    assert d(w.float()).dtype == torch.float32
    far = d(torch.tensor([-40.0, 40.0, math.nan], dtype=f64))
    assert far[0] == math.inf and far[1] == -math.inf and math.isnan(far[2])
    assert d.nonfinite(torch.tensor([0.0, 40.0], dtype=f64)) == 1
    assert torch.isfinite(d(torch.linspace(-5, 5, 101, dtype=f64))).all()


@pytest.mark.parametrize("h,K", [(0.01, 400), (0.25, 12), (0.003, 50)])
def test_table_matches_exact(h, K):
    """The tabulated drift (direct convolution) equals the log-space sum to ~1e-11 relative,
    over the whole table including where b ~ 1e80."""
    d = G.corrected_drift(_Poly(), 1.3, -0.4, 0.8, h, K, center_weight=2.0)
    grid, vals = d.table()
    sel = torch.arange(0, grid.numel(), 37)
    ex = d(grid[sel])
    fin = torch.isfinite(ex)
    assert fin.float().mean() > 0.95
    rel = ((vals[sel] - ex).abs() / ex.abs())[fin]
    assert float(rel.max()) < 1e-10
    lo, hi = d.stable_range(1e-3)
    assert grid[0] < lo < -1.0 and 1.0 < hi < grid[-1]


# ------------------------------------------------------------------------------------------
# Feller <-> S1
# ------------------------------------------------------------------------------------------
def test_feller_round_trip_and_extremes():
    for a in (0.4, 0.8, 1.2, 1.5, 1.9):
        bound = min(a, 2 - a)
        for t in np.linspace(-bound, bound, 7):
            b, s = G.feller_to_stable(float(t), a)
            t2, s2 = G.stable_to_feller(b, a)
            assert t2 == pytest.approx(t, abs=1e-12) and s2 == pytest.approx(1 / s, rel=1e-12)
    assert G.feller_to_stable(0.5, 1.5)[0] == pytest.approx(1.0)      # theta = 2 - alpha
    assert G.feller_to_stable(-0.5, 0.5)[0] == pytest.approx(1.0)     # theta = -alpha
    assert G.feller_to_stable(0.0, 2.0) == (0.0, 1.0)
    assert G.stable_to_feller(0.7, 2.0) == (0.0, 1.0)


@pytest.mark.parametrize("alpha,theta", [(1.5, 0.4), (1.2, -0.7), (1.8, 0.15), (0.7, 0.5)])
def test_feller_against_empirical_cf(alpha, theta):
    """S1 draws with (beta, scale) = feller_to_stable(theta, alpha) have
    E e^{i k X} = exp(-|k|^alpha e^{i theta pi/2}) (k > 0): n = 2e5, each of Re/Im within
    4.5 standard errors (sd/sqrt(n)) at k = 0.5, 1, 2; the opposite sign is > 20 SE off."""
    b, s = G.feller_to_stable(theta, alpha)
    n = 200_000
    x = S.sample(alpha, b, scale=s, size=n, generator=11, dtype=f64)
    worst_wrong = 0.0
    for k in (0.5, 1.0, 2.0):
        c, si = torch.cos(k * x), torch.sin(k * x)
        ref = complex(np.exp(-k ** alpha * np.exp(1j * theta * np.pi / 2)))
        wrong = complex(np.exp(-k ** alpha * np.exp(-1j * theta * np.pi / 2)))
        se_c, se_s = float(c.std()) / math.sqrt(n), float(si.std()) / math.sqrt(n)
        assert abs(float(c.mean()) - ref.real) < 4.5 * se_c
        assert abs(float(si.mean()) - ref.imag) < 4.5 * se_s
        worst_wrong = max(worst_wrong, abs(float(si.mean()) - wrong.imag) / se_s)
    assert worst_wrong > 20


def test_stable_gaussian_convention():
    """gnilab.stable at alpha = 2, scale 1 has variance 2 (n = 1e5: SE of the variance
    2 sqrt(2/n) = 0.009), so Eq. 4.4 at alpha = 2 has Gibbs law exp(-f / eps^2)."""
    x = S.sample(2.0, 0.0, size=100_000, generator=5, dtype=f64)
    assert float(x.var()) == pytest.approx(2.0, abs=0.04)


# ------------------------------------------------------------------------------------------
# Gibbs measure and the distance
# ------------------------------------------------------------------------------------------
def test_gibbs_density_normalised():
    grid = torch.linspace(-6, 6, 120001, dtype=f64)
    for eps, a in ((1.0, 1.5), (0.5, 2.0)):
        p = G.gibbs_density(QUARTIC, eps, a, grid)
        assert float(torch.trapezoid(p, grid)) == pytest.approx(1.0, abs=1e-9)
        r = p[70000] / p[60000]          # w = 1 against w = 0
        assert float(r) == pytest.approx(math.exp(0.25 / eps ** a), rel=1e-12)
    probs = G.gibbs_probabilities(QUARTIC, 1.0, 1.5, torch.linspace(-2, 2, 9))
    assert probs.shape == (10,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-12)


def test_binomial_mad_exact():
    """de Moivre's mean absolute deviation against the pmf sum."""
    from scipy import stats
    for n, p in ((7, 0.3), (50, 0.02), (200, 0.5), (1000, 0.137)):
        k = np.arange(n + 1)
        ref = np.sum(np.abs(k - n * p) * stats.binom.pmf(k, n, p))
        assert _gibbs._binomial_mad(n, np.array([p]))[0] == pytest.approx(ref, rel=1e-9)


def test_tv_floor_matches_gibbs_draws():
    """30 data sets of n = 4000 exact Gibbs draws: mean TV within 3 SE of the stated floor,
    and ~5% above floor_q95."""
    tvs = []
    for seed in range(30):
        x = G.gibbs_sample(QUARTIC, 1.0, 1.5, 4000, generator=seed)
        r = G.tv_to_gibbs(x, QUARTIC, 1.0, 1.5)
        tvs.append(r.tv)
    tvs = np.array(tvs)
    assert abs(tvs.mean() - r.floor) < 3 * tvs.std() / math.sqrt(30)
    assert np.mean(tvs > r.floor_q95) < 0.2
    assert r.n == 4000 and r.n_dropped == 0


def test_density_modes_of_gibbs_samples():
    """Modes of exp(-f) are +-1: within 4 bootstrap SE on 1e5 draws (SE ~ 0.02)."""
    x = G.gibbs_sample(QUARTIC, 1.0, 1.5, 100_000, generator=2)
    m, se = G.density_modes(x.reshape(10, -1).T.contiguous(), n_boot=40, generator=1)
    assert torch.all(se > 0) and torch.all(se < 0.06)
    assert abs(float(m[0]) + 1) < 4 * float(se[0]) + 0.01
    assert abs(float(m[1]) - 1) < 4 * float(se[1]) + 0.01


# ------------------------------------------------------------------------------------------
# simulations
# ------------------------------------------------------------------------------------------
def test_alpha2_stationary_law_is_gibbs():
    """alpha = 2 (Brownian noise, variance 2 eps^2 eta a step): Eq. 4.4 with eta = 1e-3 from
    a spread start reaches exp(-f/eps^2) (eps = 0.8): 20 000 paths, states at t = 3; the TV is
    below the 95% noise floor for 20 000 draws, while exp(-f/(2 eps^2)) (the variance-1
    convention) is > 3x the floor off. Euler's O(eta) bias is ~1e-3, below the floor 0.01."""
    n = 20_000
    w0 = torch.linspace(-2, 2, n, dtype=f64)
    r = G.simulate_gni(QUARTIC, 2.0, 0.0, 0.8, 1e-3, 3000, n, w0, snapshots=[3000],
                       generator=0)
    x = r.snapshots[3000]
    good = G.tv_to_gibbs(x, QUARTIC, 0.8, 2.0)
    bad = G.tv_to_gibbs(x, QUARTIC, 0.8 * math.sqrt(2), 2.0)
    assert r.n_exploded == 0
    assert good.tv < good.floor_q95, good
    assert bad.tv > 3 * bad.floor_q95


def _run_corrected(alpha, drift_theta, noise_theta, h, K, cw, n=10_000, steps=3000, seed=0):
    d = G.corrected_drift(QUARTIC, alpha, drift_theta, 1.0, h, K, cw)
    w0 = G.gibbs_sample(QUARTIC, 1.0, alpha, n, generator=seed + 1)
    snaps = [1000, 2000, 3000]
    import time
    return _dynamics._simulate_corrected(d, noise_theta, 1e-3, steps, n, w0, snaps, seed, None, 1e6,
                                 1 << 21, time.perf_counter())


@pytest.mark.slow
def test_corrected_drift_targets_gibbs_and_theta_is_s1_beta():
    """alpha = 1.5, theta = 0.5, eta = 1e-3, 10 000 paths from the Gibbs law, states at
    t = 1, 2, 3 (30 000 draws, floor computed for the 10 000 independent paths, i.e.
    conservatively): with b_{h,K} (h = 0.03, K = 300, centre weight 2) the law stays Gibbs
    (TV below the 95% floor); with the drift's theta of the opposite sign to the noise's it
    moves far away (TV > 5x the floor) — so Eq. 4.8's theta is the S1 beta of the noise;
    Eq. 4.4 itself (-f') is off as well."""
    good = _run_corrected(1.5, 0.5, 0.5, 0.03, 300, 2.0)
    flip = _run_corrected(1.5, -0.5, 0.5, 0.03, 300, 2.0)
    tv_good = G.tv_to_gibbs(good.samples(1000), QUARTIC, 1.0, 1.5, n_independent=10_000)
    tv_flip = G.tv_to_gibbs(flip.samples(1000), QUARTIC, 1.0, 1.5, n_independent=10_000)
    assert good.n_exploded == 0 and flip.n_exploded == 0
    assert tv_good.tv < tv_good.floor_q95, tv_good
    assert tv_flip.tv > 5 * tv_flip.floor_q95, tv_flip
    plain = G.simulate_gni(QUARTIC, 1.5, 0.5, 1.0, 1e-3, 3000, 10_000,
                           G.gibbs_sample(QUARTIC, 1.0, 1.5, 10_000, generator=1),
                           snapshots=[1000, 2000, 3000], generator=0)
    tv_plain = G.tv_to_gibbs(plain.samples(1000), QUARTIC, 1.0, 1.5, n_independent=10_000)
    assert tv_plain.tv > 3 * tv_plain.floor_q95


def test_simulate_api_snapshots_and_determinism():
    r1 = G.simulate_gni(QUARTIC, 1.3, 0.3, 1.0, 1e-3, 200, 500, 1.0, h=0.05, K=100,
                        snapshots=[0, 100, 200], generator=4)
    r2 = G.simulate_gni(QUARTIC, 1.3, 0.3, 1.0, 1e-3, 200, 500, 1.0, h=0.05, K=100,
                        snapshots=[0, 100, 200], generator=4)
    assert sorted(r1.snapshots) == [0, 100, 200]
    assert torch.equal(r1.snapshots[200], r2.snapshots[200])
    assert torch.all(r1.snapshots[0] == 1.0)
    assert r1.samples(100).shape == (2, 500)
    assert r1.drift is not None and r1.stable_range[0] < -1 < 1 < r1.stable_range[1]
    r3 = G.simulate_gni(QUARTIC, 1.3, 0.3, 1.0, 1e-3, 200, 500, 1.0, snapshots=[200],
                        generator=4)
    assert r3.drift is None and r3.n_clamped == 0 and r3.snapshots[200].shape == (500,)


def test_k0_h0_simulation_equals_eq44_in_law():
    """K = 0, h = h0 (b = -f') and Eq. 4.4 give the same stationary law: alpha = 1.7,
    theta = -0.5, 10 000 paths each at t = 2 and 3; the two histograms differ by less than
    the noise floor of their difference (sum of the two 95% floors)."""
    n = 10_000
    w0 = G.gibbs_sample(QUARTIC, 1.0, 1.7, n, generator=3)
    kw = dict(snapshots=[2000, 3000], generator=7)
    a = G.simulate_gni(QUARTIC, 1.7, -0.5, 1.0, 1e-3, 3000, n, w0, **kw)
    b = G.simulate_gni(QUARTIC, 1.7, -0.5, 1.0, 1e-3, 3000, n, w0, h=G.h0(1.7), K=0, **kw)
    edges = torch.linspace(-2.5, 2.5, 21)
    xa, xb = a.samples(2000).reshape(-1), b.samples(2000).reshape(-1)
    ha = torch.histogram(xa.clamp(-3, 3), torch.cat([torch.tensor([-3.0]), edges,
                                                    torch.tensor([3.0])]).double())[0]
    hb = torch.histogram(xb.clamp(-3, 3), torch.cat([torch.tensor([-3.0]), edges,
                                                    torch.tensor([3.0])]).double())[0]
    tv = 0.5 * float((ha / ha.sum() - hb / hb.sum()).abs().sum())
    floor = G.tv_to_gibbs(xa, QUARTIC, 1.0, 1.7, edges, n_independent=n).floor_q95
    assert tv < 2 * floor


def test_exploding_paths_are_counted_not_raised():
    """A tiny max_abs makes paths 'explode': they are counted, frozen and NaN in snapshots."""
    for kw in ({}, {"h": 0.05, "K": 50}):
        r = G.simulate_gni(QUARTIC, 1.2, 0.0, 1.0, 1e-3, 500, 2000, 0.5, snapshots=[500],
                           generator=1, max_abs=2.5, **kw)
        assert 0 < r.n_exploded < 2000
        x = r.snapshots[500]
        assert int(torch.isnan(x).sum()) == r.n_exploded
        assert torch.equal(torch.isnan(x), r.exploded)
        tv = G.tv_to_gibbs(x, QUARTIC, 1.0, 1.2)
        assert tv.n_dropped == r.n_exploded


# ------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(alpha=1.0), ValueError, "alpha"),
    (dict(alpha=2.0), ValueError, "alpha"),
    (dict(alpha=2.5), ValueError, "alpha"),
    (dict(alpha="1.5"), TypeError, "alpha"),
    (dict(theta=1.2), ValueError, "theta"),
    (dict(theta=-1.01), ValueError, "theta"),
    (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(h=0.0), ValueError, "h must"),
    (dict(h=-0.1), ValueError, "h must"),
    (dict(h=math.inf), ValueError, "h must"),
    (dict(K=-1), ValueError, "K must"),
    (dict(K=2.0), TypeError, "K must"),
    (dict(K="3"), TypeError, "K must"),
    (dict(K=True), TypeError, "K must"),
    (dict(center_weight=0.0), ValueError, "center_weight"),
])
def test_corrected_drift_bad_arguments(kwargs, exc, match):
    args = dict(potential=QUARTIC, alpha=1.5, theta=0.2, eps=1.0, h=0.1, K=10)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        G.corrected_drift(**args)


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="potential"):
        G.corrected_drift(object(), 1.5, 0.0, 1.0, 0.1, 10)
    with pytest.raises(ValueError, match="alpha"):
        G.feller_to_stable(0.0, 1.0)
    with pytest.raises(ValueError, match="theta"):
        G.feller_to_stable(0.6, 1.5)             # |theta| <= 2 - alpha = 0.5
    with pytest.raises(ValueError, match="beta"):
        G.stable_to_feller(1.5, 1.5)
    with pytest.raises(ValueError, match="K"):
        G.grunwald_weights(-0.5, -1)
    with pytest.raises(TypeError, match="gamma"):
        G.grunwald_weights("x", 3)
    with pytest.raises(ValueError, match="alpha"):
        G.h0(1.0)
    with pytest.raises(ValueError, match="both h and K"):
        G.simulate_gni(QUARTIC, 1.5, 0.0, 1.0, 1e-3, 10, 10, h=0.1)
    with pytest.raises(ValueError, match="alpha"):
        G.simulate_gni(QUARTIC, 2.0, 0.0, 1.0, 1e-3, 10, 10, h=0.1, K=3)
    with pytest.raises(ValueError, match="eta"):
        G.simulate_gni(QUARTIC, 1.5, 0.0, 1.0, 0.0, 10, 10)
    with pytest.raises(TypeError, match="levy potential"):
        G.simulate_gni(_Poly(), 1.5, 0.0, 1.0, 1e-3, 10, 10)
    with pytest.raises(ValueError, match="eps"):
        G.gibbs_density(QUARTIC, 0.0, 1.5, [0.0])
