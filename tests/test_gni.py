"""Tests of gnilab.gni: noise injections, the M-sample objective, the explicit/implicit split
(Camuto et al. 2021, Eqs. 2.8, 3.2, 4.5), the explicit regulariser of Camuto et al. (2020),
the training arms and the tail helpers. Statistical tests state their sample size and the
tolerance it implies; every random draw is seeded."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from gnilab import gni
from gnilab.data import ArrayDataset, make_sinusoids
from gnilab.models import MLP


def _net(sigma=0.1, kind="additive", width=16, depth=3, act="relu", inp=1, out=1, seed=0,
         sites=None):
    torch.manual_seed(seed)
    model = MLP(inp, width, depth, out, activation=act).double()
    return gni.GaussianNoiseInjection(model, sigma, kind, sites=sites, generator=seed + 100)


def _data(n=32, inp=1, out=1, seed=0, classes=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inp, generator=g, dtype=torch.float64)
    if classes:
        y = torch.randint(0, classes, (n,), generator=g)
    else:
        y = torch.randn(n, out, generator=g, dtype=torch.float64)
    return x, y


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    model = MLP(1, 4, 2, 1)
    with pytest.raises(ValueError, match="sigma"):
        gni.GaussianNoiseInjection(model, -0.1)
    with pytest.raises(TypeError, match="sigma"):
        gni.GaussianNoiseInjection(model, "0.1")
    with pytest.raises(ValueError, match="kind"):
        gni.GaussianNoiseInjection(model, 0.1, kind="dropout")
    with pytest.raises(ValueError, match="not modules of the model"):
        gni.GaussianNoiseInjection(model, 0.1, sites=["relu1"])
    with pytest.raises(TypeError, match="sites"):
        gni.GaussianNoiseInjection(model, 0.1, sites="2")
    with pytest.raises(TypeError, match="model"):
        gni.GaussianNoiseInjection(lambda x: x, 0.1)
    net = gni.GaussianNoiseInjection(model, 0.1)
    x = torch.zeros(3, 1)
    with pytest.raises(ValueError, match="copies"):
        net(x, copies=0)
    with pytest.raises(TypeError, match="copies"):
        net(x, copies=1.5)
    with pytest.raises(ValueError, match="not injection sites"):
        net(x, noise={"1": torch.zeros(3, 4)})
    with pytest.raises(ValueError, match="sigma"):
        net.sigma = float("nan")
    d = ArrayDataset(x=x, y=torch.zeros(3, 1), name="zeros")
    with pytest.raises(ValueError, match="replacement"):
        gni.train_gni(net, d, steps=1, lr=0.1, replacement="cauchy")
    with pytest.raises(ValueError, match="copies"):
        gni.train_gni(net, d, steps=1, lr=0.1, copies=0)
    with pytest.raises(ValueError, match="choose one"):
        gni.train_gni(net, d, steps=1, lr=0.1, replacement="stable", explicit_regulariser=True)
    with pytest.raises(ValueError, match="loss"):
        gni.explicit_regulariser(net, x, loss="hinge")
    with pytest.raises(TypeError, match="net"):
        gni.implicit_effect(model, x, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="r"):
        gni.sub_weibull(0.0, 10)


def test_default_sites_are_hidden_activations_not_input_or_output():
    net = _net(depth=4)
    assert net.sites == ["2", "4", "6"]           # the three ReLUs of a depth-4 MLP
    assert all(isinstance(net.model.get_submodule(s), nn.ReLU) for s in net.sites)


def test_deepcopy_injects_through_the_copy():
    """A deep copy's hooks belong to the copy: it injects its own noise (at its own sigma), and
    the original stays clean outside its forward pass and keeps its sigma."""
    import copy
    net = _net(0.3)
    twin = copy.deepcopy(net)
    twin.sigma = 0.0
    x, _ = _data(8)
    with torch.no_grad():
        clean = net.model(x)
        assert torch.equal(twin(x), clean)                 # sigma 0 on the copy: exact
        assert not torch.allclose(net(x), clean)           # the original still injects
        twin.sigma = 0.3
        assert not torch.allclose(twin(x), clean)          # the copy injects through itself
        assert torch.equal(twin.model(x), clean)           # and is clean outside its forward
    assert net.sigma == 0.3


# ---------------------------------------------------------------------------------------------
# the injections themselves
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_injection_formula_with_given_noise(kind):
    """h~ = h + sigma eps (additive) or h (1 + sigma eps) (multiplicative) at the site."""
    net = _net(0.3, kind)
    x, _ = _data(8)
    eps = {s: torch.randn(8, 16, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
           for i, s in enumerate(net.sites)}
    with torch.no_grad():
        noisy = net.activations(x, noise=eps)
        # recompute layer by layer by hand
        m = net.model
        h = m[2](m[1](m[0](x)))
        h = h + 0.3 * eps["2"] if kind == "additive" else h * (1 + 0.3 * eps["2"])
        assert torch.allclose(noisy["2"], h, atol=1e-12)
        h2 = m[4](m[3](h))
        h2 = h2 + 0.3 * eps["4"] if kind == "additive" else h2 * (1 + 0.3 * eps["4"])
        assert torch.allclose(noisy["4"], h2, atol=1e-12)
        assert torch.allclose(noisy["out"], m[5](h2), atol=1e-12)


def test_noise_is_off_in_eval_and_inside_noise_off_and_at_sigma_zero():
    net = _net(0.5)
    x, _ = _data(10)
    with torch.no_grad():
        clean = net.model(x)
        net.eval()
        assert torch.equal(net(x), clean)
        net.train()
        with net.noise_off():
            assert torch.equal(net(x), clean)
        assert not torch.equal(net(x), clean)           # back on after the block
        net.sigma = 0.0
        assert torch.equal(net(x), clean)


def test_input_and_output_sites():
    net = _net(0.2, sites=["input", "2", "output"])
    x, _ = _data(5)
    eps = {"input": torch.ones(5, 1, dtype=torch.float64),
           "2": torch.zeros(5, 16, dtype=torch.float64),
           "output": torch.full((5, 1), 2.0, dtype=torch.float64)}
    with torch.no_grad():
        out = net(x, noise=eps)
        assert torch.allclose(out, net.model(x + 0.2) + 0.4, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the M-sample objective (Eq. 4.5): stacked equals the loop, copy-major grouping
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_stacked_objective_equals_loop_and_groups_copy_major(kind):
    M, N = 5, 7
    net = _net(0.2, kind)
    x, y = _data(N)
    g = torch.Generator().manual_seed(3)
    eps = {s: torch.randn(M * N, 16, generator=g, dtype=torch.float64) for s in net.sites}
    with torch.no_grad():
        per = gni.per_copy_losses(net, x, y, "mse", M, noise=eps)       # [M, N]
        loop = torch.stack([
            gni.per_copy_losses(net, x, y, "mse", 1,
                                noise={s: e[m * N:(m + 1) * N] for s, e in eps.items()})[0]
            for m in range(M)])
        assert torch.allclose(per, loop, atol=1e-12)
        # the per-example M-average groups the right rows: example i averages rows i, N+i, ...
        assert torch.allclose(per.mean(0), loop.mean(0), atol=1e-12)
        assert math.isclose(float(gni.m_sample_loss(net, x, y, "mse", M, noise=eps)),
                            float(loop.mean()), rel_tol=1e-12)
        # and a sample-major tiling would not: it pairs example i with copies of other examples
        wrong = loop.T.reshape(M, N).mean(0)
        assert not torch.allclose(per.mean(0), wrong)


def test_copies_are_independent_draws():
    """M stacked copies of one example get different noise (the per-copy losses differ)."""
    net = _net(0.5)
    x, y = _data(1)
    with torch.no_grad():
        losses = gni.stacked_losses(net, x, y, "mse", copies=8)
    assert losses.shape == (8,) and torch.unique(losses).numel() == 8


# ---------------------------------------------------------------------------------------------
# explicit / implicit split (Eq. 3.2)
# ---------------------------------------------------------------------------------------------
def test_implicit_effect_has_mean_zero():
    """E_eps[E_L] = 0: over R = 400 independent repetitions (each one draw against M = 4) the
    mean implicit effect lies within 4 standard errors of 0 (a 6e-5 false-alarm rate)."""
    net = _net(0.3)
    x, y = _data(16)
    vals = np.array([gni.implicit_effect(net, x, y, "mse", copies=4).implicit
                     for _ in range(400)])
    se = vals.std(ddof=1) / math.sqrt(len(vals))
    assert abs(vals.mean()) < 4 * se, (vals.mean(), se)
    assert vals.std() > 0


def test_implicit_effect_parts_are_consistent():
    net = _net(0.2)
    x, y = _data(16)
    ie = gni.implicit_effect(net, x, y, "mse", copies=8, include_bias=True)
    assert math.isclose(ie.implicit, ie.delta_loss - ie.explicit, rel_tol=1e-9, abs_tol=1e-12)
    assert set(ie.grads) == set(net.weight_layers(True)) and "1.bias" in ie.grads
    for name, p in net.weight_layers(True).items():
        assert ie.grads[name].shape == p.shape and torch.isfinite(ie.grads[name]).all()
    assert ie.explicit_stderr > 0 and ie.copies == 8
    assert set(gni.implicit_effect(net, x, y, "mse", copies=2).grads) == \
        {"1.weight", "3.weight", "5.weight"}


def test_implicit_gradient_is_the_difference_of_the_two_gradients():
    """grad E_L = grad L~(eps_0) - grad L~_M with the same draws, checked by finite
    differences of the implicit effect along a random direction (noise held fixed)."""
    M, N = 3, 6
    net = _net(0.2, width=8)
    x, y = _data(N)
    g = torch.Generator().manual_seed(5)
    eps = {s: torch.randn((M + 1) * N, 8, generator=g, dtype=torch.float64) for s in net.sites}
    W = net.model[3].weight

    def implicit():
        losses = gni.stacked_losses(net, x, y, "mse", M + 1, noise=eps)
        return losses[0] - losses[1:].mean()
    val = implicit()
    grad = torch.autograd.grad(val, W)[0]
    d = torch.randn(W.shape, generator=g, dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        W += h * d
        up = implicit()
        W -= 2 * h * d
        dn = implicit()
        W += h * d
    fd = float(up - dn) / (2 * h)
    assert math.isclose(fd, float((grad * d).sum()), rel_tol=1e-6, abs_tol=1e-9)


# ---------------------------------------------------------------------------------------------
# the explicit regulariser R (Camuto et al. 2020) against Monte Carlo
# ---------------------------------------------------------------------------------------------
def _mc_explicit(net, x, y, loss, draws=4000, chunk=1000):
    """Monte Carlo E_eps[Delta L] with antithetic pairs (eps, -eps), which cancel the
    first-order term exactly (its variance is O(sigma^2), that of the rest O(sigma^4)); returns
    the estimate and its standard error over ``draws`` pairs."""
    n = x.shape[0]
    with torch.no_grad():
        with net.noise_off():
            clean = float(gni.stacked_losses(net, x, y, loss, 1)[0])
            shapes = {s: v.shape[1:] for s, v in net.activations(x).items() if s != "out"}
        g = torch.Generator().manual_seed(11)
        vals = []
        for _ in range(draws // chunk):
            eps = {s: torch.randn(chunk * n, *shp, generator=g, dtype=x.dtype)
                   for s, shp in shapes.items()}
            plus = gni.stacked_losses(net, x, y, loss, chunk, noise=eps)
            minus = gni.stacked_losses(net, x, y, loss, chunk,
                                       noise={s: -e for s, e in eps.items()})
            vals.append((plus + minus) / 2 - clean)
    v = torch.cat(vals)
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_regulariser_exact_for_a_linear_network(kind):
    """With identity activations and squared error the loss is quadratic in the noise, so
    E[Delta L] = R exactly: Monte Carlo (4000 antithetic pairs) within 4 standard errors."""
    net = _net(0.3, kind, act="linear", width=6, out=2)
    x, y = _data(20, out=2)
    R = float(gni.explicit_regulariser(net, x, "mse", create_graph=False))
    mc, se = _mc_explicit(net, x, y, "mse")
    assert abs(mc - R) < 4 * se, (mc, R, se)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_regulariser_matches_monte_carlo_for_small_sigma(loss, kind):
    """A network linear in the injected noise (identity activations; multiplicative noise makes
    it multilinear across sites), sigma = 0.05: E[Delta L] = R + O(sigma^4). Monte Carlo with
    8000 antithetic pairs, tolerance 4 standard errors plus 2 % of R for the higher orders
    (dropping the -|p J|^2 term of the cross-entropy Hessian, or the factor 2 of the squared
    error's, moves R by far more)."""
    classes = 3 if loss == "cross_entropy" else None
    net = _net(0.05, kind, act="linear", width=12, inp=2, out=3 if classes else 1, seed=1)
    x, y = _data(24, inp=2, classes=classes, seed=1)
    R = float(gni.explicit_regulariser(net, x, loss, create_graph=False))
    mc, se = _mc_explicit(net, x, y, loss, draws=8000, chunk=2000)
    assert R > 0
    assert abs(mc - R) < 4 * se + 0.02 * R, (mc, R, se)


def test_regulariser_omits_the_relu_kink_term():
    """For a ReLU network R is *not* the O(sigma^2) explicit effect: units whose
    pre-activation lies within ~sigma of the kink shift their mean output by O(sigma), a
    first-order effect on the loss of total size O(sigma^2) that R leaves out. Measured here
    (cross-entropy, 12 units, sigma = 0.02): Monte Carlo differs from R by far more than its
    standard error. This documents the approximation the Exp Reg arm makes."""
    net = _net(0.02, "additive", width=12, inp=2, out=3, seed=1)
    x, y = _data(24, inp=2, classes=3, seed=1)
    R = float(gni.explicit_regulariser(net, x, "cross_entropy", create_graph=False))
    mc, se = _mc_explicit(net, x, y, "cross_entropy", draws=8000, chunk=2000)
    assert abs(mc - R) > 10 * se and abs(mc - R) > 0.2 * R, (mc, R, se)


def test_regulariser_at_the_output_site_is_closed_form():
    """Additive noise on the output alone: R = sigma^2 C for squared error (H = 2I, J = I)."""
    net = _net(0.1, sites=["output"], out=3)
    x, _ = _data(9)
    R = float(gni.explicit_regulariser(net, x, "mse", create_graph=False))
    assert math.isclose(R, 0.01 * 3, rel_tol=1e-12)


def test_regulariser_is_differentiable():
    net = _net(0.1)
    x, _ = _data(8)
    R = gni.explicit_regulariser(net, x, "mse")
    g = torch.autograd.grad(R, net.model[3].weight)[0]
    assert torch.isfinite(g).all() and g.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# accumulated noise (Eq. 2.9)
# ---------------------------------------------------------------------------------------------
def test_accumulated_noise_at_first_site_is_the_injected_noise():
    """At the first site nothing upstream is noisy: E_0 = sigma eps ~ N(0, sigma^2) exactly.
    2 x 16 x 40 = 1280 draws: the sample std is within 4 standard errors (sigma/sqrt(2n))."""
    net = _net(0.25)
    x, _ = _data(40)
    acc = gni.accumulated_noise(net, x, copies=2)
    assert set(acc) == set(net.sites) and acc["2"].shape == (2, 40, 16)
    v = acc["2"].reshape(-1)
    n = v.numel()
    assert abs(float(v.std()) - 0.25) < 4 * 0.25 / math.sqrt(2 * n)
    assert abs(float(v.mean())) < 4 * 0.25 / math.sqrt(n)


# ---------------------------------------------------------------------------------------------
# training arms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arm", [dict(copies=1), dict(copies=4), dict(explicit_regulariser=True),
                                 dict(copies=4, replacement="stable"),
                                 dict(copies=4, replacement="gaussian")])
def test_training_arms_run_and_record(arm):
    d = make_sinusoids(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = _net(0.1, width=8)
    res = gni.train_gni(net, d, steps=6, lr=1e-3, progress=False, generator=0, **arm)
    assert not res.diverged and len(res.history) == 7
    assert np.isfinite(res.history["loss"]).all()
    if "replacement" in arm:
        rec = res.records
        assert len(rec) == 6 and "fit_seconds" in rec and (rec["fit_seconds"] > 0).all()
        assert {"alpha_0", "beta_0", "scale_0"} <= set(rec.columns)
        # layer 0 (8 weights) has too few nonzero implicit gradients to fit: no noise, NaN
        assert rec["alpha_0"].isna().all() and (rec["scale_0"] == 0).all()
        assert rec["alpha_1"].notna().all() and (rec["scale_1"] > 0).all()
        if arm["replacement"] == "gaussian":
            assert (rec["alpha_1"] == 2.0).all()


def test_replacement_adds_noise_of_the_fitted_scale():
    """The replacement arm moves the weights by lr x (explicit gradient + noise): with the same
    net and data, its first update differs from the plain M-sample update."""
    d = make_sinusoids(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w0 = _net(0.1, width=8).model[3].weight.detach().clone()
    outs = []
    for rep in (None, "gaussian"):
        net = _net(0.1, width=8)
        gni.train_gni(net, d, steps=1, lr=1e-2, copies=4, replacement=rep, progress=False,
                      generator=0)
        outs.append(net.model[3].weight.detach() - w0)
    assert not torch.allclose(outs[0], outs[1])


def test_diverging_training_is_reported():
    d = make_sinusoids(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = _net(0.1, width=8)
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = gni.train_gni(net, d, steps=50, lr=1e6, copies=2, progress=False)
    assert res.diverged


# ---------------------------------------------------------------------------------------------
# tails
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("r", [0.5, 0.8, 1.0, 2.0])
def test_sub_weibull_tail_and_density(r):
    """P(|X| > x) = exp(-x^(1/r)) at three quantiles: 20000 draws, binomial standard error,
    4 SE; the density integrates to 1."""
    x = gni.sub_weibull(r, 20000, generator=7).numpy()
    for q in (0.5, 0.1, 0.01):
        t = (-math.log(q)) ** r
        p = float(np.mean(np.abs(x) > t))
        assert abs(p - q) < 4 * math.sqrt(q * (1 - q) / x.size), (r, q, p)
    from scipy.integrate import quad
    total = 2 * quad(lambda v: gni.sub_weibull_pdf(v, r), 0, np.inf, limit=200)[0]
    assert abs(total - 1) < 1e-6


def test_half_tail_fits_tell_cauchy_from_normal():
    g = np.random.default_rng(0)
    c = gni.half_tail_fits(g.standard_cauchy(5000))
    n = gni.half_tail_fits(g.standard_normal(5000))
    assert c["halfcauchy_loglik"] > c["halfnorm_loglik"]
    assert n["halfnorm_loglik"] > n["halfcauchy_loglik"]
    assert abs(n["halfnorm_scale"] - 1) < 0.05          # 2500 points: SE ~ 0.014
    assert abs(c["halfcauchy_scale"] - 1) < 0.1         # SE ~ 0.03


def test_tail_statistics_of_a_gaussian_sample():
    """20000 Gaussian draws: skewness and excess kurtosis within 4 SE (sqrt(6/n), sqrt(24/n))
    of 0, fitted alpha near 2."""
    v = torch.randn(20000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = gni.tail_statistics(v)
    assert abs(s["skewness"]) < 4 * math.sqrt(6 / 2e4)
    assert abs(s["excess_kurtosis"]) < 4 * math.sqrt(24 / 2e4)
    assert s["alpha"] > 1.9


def test_tiling_at_the_first_site_equals_tiling_the_input():
    """Copies made at the first injection site (the default: the layers before it run once)
    give the same per-copy losses as tiling the input, for the same noise."""
    M, N = 4, 6
    a = _net(0.3, "multiplicative")
    b = _net(0.3, "multiplicative")
    b.tile_at_input = True
    x, y = _data(N)
    g = torch.Generator().manual_seed(9)
    eps = {s: torch.randn(M * N, 16, generator=g, dtype=torch.float64) for s in a.sites}
    with torch.no_grad():
        assert torch.allclose(gni.per_copy_losses(a, x, y, "mse", M, noise=eps),
                              gni.per_copy_losses(b, x, y, "mse", M, noise=eps), atol=1e-12)
        assert a(x, copies=M).shape == (M * N, 1)
        a.eval()
        assert a(x, copies=M).shape == (M * N, 1)     # noise off: still M identical copies


def test_marginal_loss_probe_is_repeatable_and_matches_monte_carlo():
    d = make_sinusoids(30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = _net(0.2, width=8)
    probe = gni.marginal_loss_probe(d, "mse", copies=400, every=1)
    r1, r2 = probe.fn(0, net), probe.fn(0, net)
    assert r1 == r2                                   # common random numbers
    with torch.no_grad():
        mc = float(gni.m_sample_loss(net, d.x, d.y, "mse", 400))
    assert abs(r1["marginal_loss"] - mc) < 6 * r1["marginal_loss_se"]



def test_compare_arms_probe_seed_moves_only_the_probe_draws():
    d = make_sinusoids(30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.manual_seed(0)
    model = MLP(1, 8, 3, 1).double()
    kw = dict(sigma=0.3, steps=4, lr=0.05, seeds=[0], probe_every=2, probe_copies=8,
              progress=False)
    arms = {"M=1": dict(copies=1)}
    a, _ = gni.compare_arms(model, d, arms, **kw)
    b, _ = gni.compare_arms(model, d, arms, probe_seed=0, **kw)
    c, _ = gni.compare_arms(model, d, arms, probe_seed=7, **kw)
    assert a.marginal_loss.equals(b.marginal_loss)            # 0 is the default
    assert a.loss.equals(c.loss)                               # training is untouched
    assert not np.allclose(a.marginal_loss, c.marginal_loss)   # other probe draws

def test_tail_table_rows_and_columns():
    d = make_sinusoids(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = _net(0.1, width=32, depth=4)
    t = gni.tail_table(net, d.x, d.y, "mse", copies=4, draws=2, forward_copies=2)
    # 3 sites forward + 4 weight matrices backward, per draw
    assert len(t) == 2 * (3 + 4)
    assert set(t["pass"]) == {"forward", "backward"}
    assert {"skewness", "excess_kurtosis", "alpha", "beta", "loglik_gain", "n_zero"} <= set(t)
    assert np.isfinite(t[["skewness", "excess_kurtosis", "alpha"]].to_numpy()).all()
