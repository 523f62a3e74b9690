"""Tests of gnilab.nin: the noise injection node (zero at evaluation, the switch, seeds, modes),
the expansion of the loss in the NIN output (odd terms vanish on average, the even part is the
local curvature), the linear toy (its recursion against autograd SGD, the exact Gram and
reduced maps, the four phases against simulation, the NIW decay rate), fit_decay's coverage,
the batched sigma sweep against one run per sigma, and argument checks."""
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from gnilab import nin
from gnilab.nin._injection import _standard_noise
from gnilab.train import evaluate
from gnilab.data import ArrayDataset
from gnilab.models import MLP

pytestmark = pytest.mark.usefixtures("one_thread")

Z = 5.0        # z-score bound of the Monte Carlo checks (two-sided p ≈ 6e-7)


class Toy(nn.Module):
    """The linear toy as a module: f = v·(u x + θ ε)/√n, θ supplied by the NIN on ``l1``."""

    def __init__(self, state: nin.ToyState):
        super().__init__()
        n = state.width
        self.l1 = nn.Linear(1, n, bias=False, dtype=torch.float64)
        self.l2 = nn.Linear(n, 1, bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.l1.weight.copy_(state.u.reshape(n, 1))
            self.l2.weight.copy_(state.v.reshape(1, n))
        self.n = n

    def forward(self, x):
        return self.l2(self.l1(x)).squeeze(-1) / math.sqrt(self.n)


def _half_mse(out, y, reduction="mean"):
    per = 0.5 * (out - y) ** 2
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


def _classification(n=96, d=6, classes=3, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(d, classes, generator=g, dtype=dtype)
    y = (x @ w).argmax(1)
    return ArrayDataset(x, y, "toy-classes")


# -------------------------------------------------------------------------------------------
# the node
# -------------------------------------------------------------------------------------------

def test_zero_at_evaluation_and_switch():
    torch.manual_seed(0)
    model = MLP(6, 16, 3, 3)
    x = torch.randn(32, 6)
    bare = model(x)
    net = nin.NoiseInjection(model, ["1", "3"], sigma=0.7, generator=1)
    net.eval()
    assert torch.equal(net(x), bare)                 # exactly the model without the node
    net.train()
    noisy = net(x)
    assert not torch.allclose(noisy, bare)
    with net.noise_off():
        assert torch.equal(net(x), bare)
    assert net.enabled
    net.enabled = False
    assert torch.equal(net(x), bare)
    net.enabled = True
    net.sigma = 0.0
    assert torch.equal(net(x), bare)
    assert torch.equal(model(x), bare)               # the wrapped model alone stays clean
    # explicit NIN outputs: z + theta * eps on both layers
    eps = torch.randn(32)
    net.sigma = 0.7
    h = model[0](x)
    z1 = model[1](h) + eps[:, None] * net.niw("1")
    z3 = model[3](model[2](z1)) + eps[:, None] * net.niw("3")
    acts = model[5](model[4](z3))
    torch.testing.assert_close(net(x, noise=eps), acts)
    # a deep copy injects through its own NIWs, not the original's
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.niw("1").mul_(2)
    assert not torch.allclose(twin(x, noise=eps), acts)
    torch.testing.assert_close(net(x, noise=eps), acts)


def test_reproducible_seeds_and_modes():
    torch.manual_seed(0)
    model = MLP(6, 8, 2, 3)
    x = torch.randn(10, 6)
    a = nin.NoiseInjection(copy.deepcopy(model), ["1"], 0.5, generator=3)
    b = nin.NoiseInjection(copy.deepcopy(model), ["1"], 0.5, generator=3)
    c = nin.NoiseInjection(copy.deepcopy(model), ["1"], 0.5, generator=4)
    assert torch.equal(a.niw(), b.niw()) and not torch.equal(a.niw(), c.niw())
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert not torch.equal(a(x), a(x))               # "step": fresh noise every pass
    # default NIW scale 1/sqrt(fan-in); niw_std overrides it
    assert abs(float(a.niw().detach().std()) - 1 / math.sqrt(6)) < 0.3
    assert float(nin.NoiseInjection(copy.deepcopy(model), ["1"], 0.5, niw_std=0.0)
                 .niw().detach().abs().max()) == 0.0

    idx = torch.arange(10)
    fixed = nin.NoiseInjection(copy.deepcopy(model), ["1"], 0.5, mode="fixed", n_samples=10,
                               generator=5)
    out = fixed(x, index=idx)
    # outputs over 4, 5 or 10 rows may take other BLAS kernels: equal to float32 rounding, not
    # bit for bit (a different noise draw would differ by O(sigma))
    close = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fixed(x[3:7], index=idx[3:7]), out[3:7], **close)  # keeps its noise
    epoch = nin.NoiseInjection(copy.deepcopy(model), ["1"], 0.5, mode="epoch", n_samples=10,
                               generator=5)
    first = epoch(x[:5], index=idx[:5])
    torch.testing.assert_close(epoch(x[5:], index=idx[5:]), out[5:], **close)  # one table an epoch
    again = epoch(x[:5], index=idx[:5])                           # example 0 comes back: new epoch
    torch.testing.assert_close(first, out[:5], **close)
    assert not torch.allclose(again, first, **close)
    assert epoch._source.draws == 2
    # the toy simulator and the sweep repeat themselves under a seed
    runs = [nin.simulate_toy([0.5, 1.0], 0.2, 20, width=8, batch_size=4, generator=seed,
                             progress=False) for seed in (0, 0, 1)]
    assert torch.equal(runs[0].phi, runs[1].phi) and not torch.equal(runs[0].phi, runs[2].phi)


def test_indexed_data_trains_fixed_noise():
    ds = _classification()
    torch.manual_seed(0)
    net = nin.NoiseInjection(MLP(6, 16, 2, 3), ["1"], 0.3, mode="fixed", generator=2)
    res = nin.train_nin(net, ds, steps=20, lr=0.1, batch_size=16, generator=0, eval_every=10,
                        progress=False)
    assert net.n_samples == 96 and not res.diverged
    # the history's loss is the clean loss (eval mode), as on the plain data
    net.eval()
    clean = evaluate(net, ds, "cross_entropy")["loss"]
    assert abs(res.history.loss.iloc[-1] - clean) < 1e-6
    rec = res.records
    assert {"layer", "niw_norm", "loss", "local_grad", "local_curvature"} <= set(rec.columns)
    assert (rec.local_curvature > 0).all()           # cross-entropy is convex in the logits' layer
    # mode "epoch" under train()'s shuffled batches: one table per epoch of 96 / 16 = 6 steps
    torch.manual_seed(0)
    net = nin.NoiseInjection(MLP(6, 16, 2, 3), ["1"], 0.3, mode="epoch", generator=2)
    nin.train_nin(net, ds, steps=20, lr=0.1, batch_size=16, generator=0, eval_every=10,
                  progress=False)
    assert net._source.draws == 4                    # steps 1-6, 7-12, 13-18, 19-20
    tab = nin.decay_timescales(rec)
    assert list(tab.quantity) == ["niw_norm", "loss", "test_loss"]
    assert tab.reason.iloc[2] == "non-finite values (3 of 3)"   # no test set: NaN test_loss


# -------------------------------------------------------------------------------------------
# the expansion: odd terms vanish on average, the even part is the local curvature
# -------------------------------------------------------------------------------------------

def _expansion_parts(net, x, y, sigma, draws, gen):
    """Per draw of ε (one per example): the odd part (L(ε) − L(−ε))/2 and the even part
    (L(ε) + L(−ε))/2 − L(0) of the batch loss, for ε = sigma ξ with common ξ."""
    xi = torch.randn(draws, len(y), generator=gen, dtype=x.dtype)
    with torch.no_grad():
        base = nn.functional.cross_entropy(net(x, noise=torch.zeros(len(y), dtype=x.dtype)), y)
        plus = torch.stack([nn.functional.cross_entropy(net(x, noise=sigma * e), y) for e in xi])
        minus = torch.stack([nn.functional.cross_entropy(net(x, noise=-sigma * e), y)
                             for e in xi])
    return (plus - minus) / 2, (plus + minus) / 2 - base


def test_odd_terms_vanish_and_even_part_is_local_curvature():
    torch.manual_seed(0)
    model = MLP(5, 12, 3, 3, activation="tanh").double()
    ds = _classification(n=64, d=5, seed=1, dtype=torch.float64)
    net = nin.NoiseInjection(model, ["3"], 0.0, niw_std=0.8, generator=0)
    draws = 400
    gen = torch.Generator().manual_seed(1)
    sigma = 0.2
    odd, even = _expansion_parts(net, ds.x, ds.y, sigma, draws, gen)
    # odd terms: mean 0 within Z standard errors of the 400-draw mean
    se = float(odd.std()) / math.sqrt(draws)
    assert abs(float(odd.mean())) < Z * se
    # their spread falls like 1/sqrt(B) (paper App. C): the first 16 vs all 64 examples
    sub = ArrayDataset(ds.x[:16], ds.y[:16], "sub")
    odd16, _ = _expansion_parts(net, sub.x, sub.y, sigma, draws, torch.Generator().manual_seed(2))
    ratio = float(odd16.std() / odd.std())            # expect sqrt(64/16) = 2
    assert 1.4 < ratio < 2.8                          # ±40 %: spreads of 400 draws, examples differ
    # even part: E(s) = a s² + b s⁴ + O(s⁶) with a s² = s²/2 θᵀ H̄_z θ. With the same draws at
    # s/2, (16 E(s/2) − E(s))/3 = a s² − b' s⁶/4: its per-draw values give the se of the mean
    _, even_half = _expansion_parts(net, ds.x, ds.y, sigma / 2, draws,
                                    torch.Generator().manual_seed(1))
    lc = nin.local_curvature(net, ds, "cross_entropy")
    second = 0.5 * sigma ** 2 * lc.niw_norm ** 2 * lc.curvature
    richardson = (16 * even_half - even) / 3
    tol = Z * float(richardson.std()) / math.sqrt(draws)
    assert abs(float(richardson.mean()) - second) < tol, (float(richardson.mean()), second, tol)
    assert tol < 0.1 * second                         # and the check is not vacuous


def test_local_curvature_against_dense_and_brute_force():
    torch.manual_seed(0)
    model = MLP(5, 7, 3, 3, activation="tanh").double()
    ds = _classification(n=40, d=5, seed=2, dtype=torch.float64)
    net = nin.NoiseInjection(model, ["3"], 0.5, generator=0)
    theta = net.niw("3").detach()
    unit = theta / theta.norm()

    def f(t):        # the mean loss with the layer's pre-activations shifted by t
        return nn.functional.cross_entropy(net._shifted(ds.x, {"3": t}), ds.y)
    zero = torch.zeros_like(theta)
    h = torch.autograd.functional.hessian(f, zero)
    g = torch.autograd.functional.jacobian(f, zero)
    lc = nin.local_curvature(net, ds, "cross_entropy", "3", lr=0.1, chunk_size=16)
    torch.testing.assert_close(lc.curvature, float(unit @ h @ unit), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lc.grad, float(unit @ g), rtol=1e-10, atol=1e-12)
    assert math.isclose(lc.rate, 0.1 * 0.25 * lc.curvature)
    torch.testing.assert_close(nin.local_hessian(net, ds, "cross_entropy", "3"), h,
                               rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------------------------
# the linear toy
# -------------------------------------------------------------------------------------------

def test_toy_recursion_matches_autograd_sgd():
    n, batch, steps, lr, sigma, a = 6, 8, 25, 0.05, 0.8, 1.5
    g = torch.Generator().manual_seed(0)
    state = nin.toy_init(n, generator=g)
    module = Toy(state)
    net = nin.NoiseInjection(module, ["l1"], sigma, niw_std=0.0)
    with torch.no_grad():
        net.niw("l1").copy_(state.theta)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    s = state
    for _ in range(steps):
        x = torch.randn(batch, generator=g, dtype=torch.float64) * 1.3
        eps = torch.randn(batch, generator=g, dtype=torch.float64) * sigma
        y = a * x
        opt.zero_grad()
        _half_mse(net(x[:, None], noise=eps), y).backward()
        opt.step()
        s = nin.toy_step(s, nin.toy_moments(x, eps, y), lr)
    for mine, ref in ((s.u, module.l1.weight[:, 0]), (s.theta, net.niw("l1")),
                      (s.v, module.l2.weight[0])):
        assert float((mine - ref.detach()).abs().max()) < 1e-10


def test_gram_simulator_matches_vector_recursion():
    n, steps, lr, batch = 9, 30, 0.1, 16
    state = nin.toy_init(n, generator=torch.Generator().manual_seed(1))
    sig = torch.tensor([0.3, 1.0, 1.4])
    run = nin.simulate_toy(sig, lr, steps, state=state, batch_size=batch, sigma_x=1.2, a=0.7,
                           generator=5, progress=False)
    g = torch.Generator().manual_seed(5)                 # the simulator's draws, in its order
    s = nin.ToyState(*(t.expand(3, n) for t in state))
    for _ in range(steps):
        x = torch.randn(batch, generator=g, dtype=torch.float64) * 1.2
        xi = torch.randn(batch, generator=g, dtype=torch.float64)
        s = nin.toy_step(s, nin.toy_moments(x, sig[:, None].double() * xi, 0.7 * x), lr)
    torch.testing.assert_close(run.phi[-1], s.phi, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.A[-1], s.A, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.lam_theta[-1], s.lam_theta, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.niw_norm[-1], s.theta.norm(dim=-1), rtol=1e-10, atol=1e-12)


def test_reduced_map_is_exact_for_the_noise_channel():
    """With g_x = 0 (no data term: the paper's noise-dominated Eq. 7) and population moments,
    the vector recursion closes on (Φ, λ_θ) (Eq. T2), through decay and catapult."""
    n, lr = 400, 1.0
    state = nin.toy_init(n, generator=torch.Generator().manual_seed(2))
    lam0 = float(state.lam_theta)
    for c in (0.5, 1.5, 2.5, 3.5):
        sigma = math.sqrt(c / (lr * lam0))
        mom = nin.ToyMoments(0.0, 0.0, sigma ** 2, 0.0, 0.0, 0.0)
        s, phi, lam = state, state.phi, state.lam_theta
        for _ in range(40):
            s = nin.toy_step(s, mom, lr)
            phi, lam = nin.reduced_map(phi, lam, lr, sigma, n)
            assert abs(float(phi - s.phi)) <= 1e-9 * (1 + abs(float(s.phi)))
            assert abs(float(lam - s.lam_theta)) <= 1e-9 * float(s.lam_theta)


def test_noise_channel_curvature_is_sigma2_lambda_theta():
    """At Φ = 0 the Hessian of the noise part ½σ²Φ² of the population loss in (θ, v) has top
    eigenvalue σ²λ_θ = σ²(|v|² + |θ|²)/n: the curvature of predict_phase's c = ησ²λ_θ."""
    n, sigma = 5, 0.7
    g = torch.Generator().manual_seed(4)
    v, th = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g,
                                                                          dtype=torch.float64)
    th = th - (th @ v) / (v @ v) * v                     # Φ = 0
    state = nin.ToyState(torch.zeros(n, dtype=torch.float64), th, v)

    def noise_loss(w):
        return 0.5 * sigma ** 2 * (w[:n] @ w[n:]) ** 2 / n
    h = torch.autograd.functional.hessian(noise_loss, torch.cat([th, v]))
    top = float(torch.linalg.eigvalsh(h)[-1])
    assert math.isclose(top, sigma ** 2 * float(state.lam_theta), rel_tol=1e-12)


@pytest.mark.parametrize("batch_size", [None, 2048])
def test_phase_predictions_against_the_full_toy(batch_size):
    """Configurations spanning the four phases (c = ησ²λ_θ from 5e-4 to 6) of the full toy
    (data channel on, ησ_x²λ_u ≈ 0.5), deterministic and with online SGD: the phase predicted
    from the initial curvature is the phase the simulation shows."""
    lr, steps = 0.25, 200
    state = nin.toy_init(512, generator=torch.Generator().manual_seed(0))
    lam = float(state.lam_theta)
    cs = torch.tensor([5e-4, 2e-3, 0.3, 1.0, 1.7, 2.5, 3.0, 3.5, 5.0, 6.0])
    sig = (cs / (lr * lam)).sqrt()
    run = nin.simulate_toy(sig, lr, steps, state=state, batch_size=batch_size, generator=3,
                           progress=False)
    predicted, seen = run.predicted(), run.phases()
    assert list(predicted) == list(seen)
    assert set(predicted) == set(nin.PHASES)
    # the boundaries are where predict_phase switches
    b = nin.phase_boundaries(lr, lam, steps)
    s2 = sig.double().numpy() ** 2
    assert list(predicted == "decoupled") == list(s2 < b.sigma2_decay)
    assert list(predicted == "divergent") == list(s2 >= b.sigma2_divergent)
    assert list(predicted == "catapult") == list((s2 > b.sigma2_catapult)
                                                 & (s2 < b.sigma2_divergent))
    # divergences are recorded at their step, frozen as NaN, and poison nothing else
    div = run.diverged.numpy()
    assert div.sum() == 2 and (run.diverged_step.numpy()[div] > 0).all()
    k = int(np.flatnonzero(div)[0])
    after = run.step > int(run.diverged_step[k])
    assert torch.isnan(run.phi[after, k]).all()
    assert torch.isfinite(run.phi[:, ~run.diverged]).all()
    frame = run.frame()
    assert np.isfinite(frame.groupby("step").phi.mean()).all()


def test_niw_decay_rate_in_the_decay_phase():
    """Φ decays at −ln|1 − ησ²λ_θ| per step (≈ ησ²λ_θ): measured over T online-SGD steps from a
    fitted network. Margin: per step, ln|1 − c S/σ²| with S = <ε²> over B draws has sd
    ≈ c√(2/B)/(1 − c), so the T-step average has sd/√T; plus the measured drift of c."""
    n, a, lr, c, steps, batch = 2000, 1.0, 0.5, 0.05, 300, 256
    g = torch.Generator().manual_seed(5)
    v, u, th = (torch.randn(n, generator=g, dtype=torch.float64) for _ in range(3))
    u = u - (u @ v) / (v @ v) * v + a * math.sqrt(n) * v / (v @ v)      # A = a: data fitted
    th = 0.3 * (th - (th @ u) / (u @ u) * u)                            # θ ⊥ u
    state = nin.ToyState(u, th, v)
    sigma = math.sqrt(c / (lr * float(state.lam_theta)))
    run = nin.simulate_toy(sigma, lr, steps, state=state, batch_size=batch, generator=7,
                           progress=False)
    phi = run.phi.numpy()
    measured = -math.log(abs(phi[-1] / phi[0])) / steps
    predicted = float(nin.toy_timescales(state, lr, sigma).niw) ** -1
    sd = c * math.sqrt(2 / batch) / (1 - c) / math.sqrt(steps)
    drift = float((lr * sigma ** 2 * (run.lam_theta - run.lam_theta[0])).abs().max())
    assert abs(measured - predicted) < Z * sd + drift, (measured, predicted, sd, drift)
    assert abs(predicted - c) < c * c                                   # ≈ ησ²λ_θ
    # the NIW's decay shows in fit_decay too (|Φ| with no floor)
    fit = nin.fit_decay(run.step, np.abs(phi), offset=False)
    assert fit.ok and abs(1 / fit.tau - predicted) < 0.05 * predicted


def test_clean_loss_timescale():
    """The clean loss falls like |1 − ησ_x²λ_u|^{2t} (App. D's 2η tr H in continuous time)."""
    state = nin.toy_init(4000, generator=torch.Generator().manual_seed(3), theta_std=0.1)
    lr = 0.05
    run = nin.simulate_toy(0.0, lr, 60, state=state, progress=False)
    ts = nin.toy_timescales(state, lr, 0.0)
    loss = run.loss.numpy()
    measured = -math.log(loss[-1] / loss[0]) / 60
    assert abs(measured * float(ts.loss) - 1) < 0.02          # λ_u drifts by O(1/√n)
    assert abs(float(ts.loss_continuous / ts.loss) - 1) < 0.2


# -------------------------------------------------------------------------------------------
# fit_decay
# -------------------------------------------------------------------------------------------

def test_fit_decay_coverage_and_failures():
    rng = np.random.default_rng(0)
    t = np.arange(0, 100.0)
    reps, tau = 200, 20.0
    hits = 0
    for _ in range(reps):
        y = 0.1 + 2.0 * np.exp(-t / tau) + rng.normal(0, 0.02, t.size)
        fit = nin.fit_decay(t, y)
        assert fit.ok
        hits += abs(fit.tau - tau) <= 1.96 * fit.tau_stderr
    # nominal 95 %; a binomial proportion of 200 has sd 1.5 %, so 4 sd below is 0.89
    assert hits / reps >= 0.95 - 4 * math.sqrt(0.95 * 0.05 / reps)
    assert hits / reps <= 1.0
    fit = nin.fit_decay(t, 3 * np.exp(-t / 15), offset=False)
    assert math.isclose(fit.tau, 15, rel_tol=1e-6)

    def reason(y, **kw):
        f = nin.fit_decay(t[:len(y)], y, **kw)
        assert math.isnan(f.tau) and math.isnan(f.tau_stderr)
        return f.reason
    assert reason(np.exp(t / 30)).startswith("does not decay")
    assert reason(1 - np.exp(-t / 10)).startswith("does not decay")
    assert reason(np.ones(100)).startswith("does not decay")
    y = np.exp(-t / 10)
    y[5] = np.nan
    assert reason(y).startswith("non-finite")
    assert reason(np.array([1.0, 0.5, 0.2])).startswith("too few points")
    with pytest.raises(ValueError, match="same length"):
        nin.fit_decay(t, t[:5])


# -------------------------------------------------------------------------------------------
# the batched sweep
# -------------------------------------------------------------------------------------------

def test_sweep_matches_one_run_per_sigma_and_flags_divergence():
    ds = _classification(n=64, seed=3, dtype=torch.float64)
    torch.manual_seed(0)
    model = MLP(6, 10, 3, 3).double()
    sigmas = [0.0, 0.5, 2.0, 1e6]
    with pytest.warns(RuntimeWarning, match="1 of 4 runs diverged"):
        res = nin.train_sweep(model, ds, sigmas, layers=["1"], steps=4, lr=0.1, mode="fixed",
                              bound=100.0, eval_every=2, generator=7, progress=False)
    assert list(res.diverged) == [False, False, False, True]
    assert res.diverged_step[3] == 1 and list(res.diverged_step[:3]) == [-1, -1, -1]
    h = res.history
    assert h[h.sigma == 1e6].loss.iloc[1:].isna().all()
    assert h[h.sigma < 1e6].loss.notna().all()
    assert np.isfinite(res.final().loss.mean())
    # the same runs one sigma at a time with the stateful module and the same draws
    ref = nin.NoiseInjection(copy.deepcopy(model), ["1"], 1.0, mode="fixed", n_samples=64,
                             generator=7)
    xi = ref._source(64, torch.arange(64), torch.device("cpu"), torch.float64)
    for k, s in enumerate(sigmas[:3]):
        net = copy.deepcopy(ref)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(4):
            opt.zero_grad()
            nn.functional.cross_entropy(net(ds.x, noise=s * xi), ds.y).backward()
            opt.step()
        for name, p in net.named_parameters():
            torch.testing.assert_close(res.params[name][k], p.detach(), rtol=1e-9, atol=1e-11)


# -------------------------------------------------------------------------------------------
# argument checks
# -------------------------------------------------------------------------------------------

def test_bad_arguments_raise_clear_errors():
    model = MLP(6, 8, 2, 3)
    with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0, got -1"):
        nin.NoiseInjection(model, ["1"], -1.0)
    with pytest.raises(ValueError, match="sigma"):
        nin.NoiseInjection(model, ["1"], float("nan"))
    with pytest.raises(TypeError, match="sigma"):
        nin.NoiseInjection(model, ["1"], "0.1")
    with pytest.raises(ValueError,
                       match=r"layers \['2'\] are not nn.Linear.*allowed: \['1', '3'\]"):
        nin.NoiseInjection(model, ["2"], 0.1)
    with pytest.raises(ValueError, match="not nn.Linear"):
        nin.NoiseInjection(model, ["fc"], 0.1)
    with pytest.raises(ValueError, match="must not repeat"):
        nin.NoiseInjection(model, ["1", "1"], 0.1)
    with pytest.raises(ValueError, match="at least one"):
        nin.NoiseInjection(model, [], 0.1)
    with pytest.raises(TypeError, match="layers must be a sequence"):
        nin.NoiseInjection(model, "1", 0.1)
    with pytest.raises(ValueError, match=r"mode must be one of 'step', 'epoch', 'fixed'"):
        nin.NoiseInjection(model, ["1"], 0.1, mode="batch")
    with pytest.raises(ValueError, match="law must be one of"):
        nin.NoiseInjection(model, ["1"], 0.1, law="cauchy")
    with pytest.raises(ValueError, match="n_samples"):
        nin.NoiseInjection(model, ["1"], 0.1, mode="fixed", n_samples=0)
    with pytest.raises(TypeError, match="generator"):
        nin.NoiseInjection(model, ["1"], 0.1, generator="seed")
    net = nin.NoiseInjection(model, ["1"], 0.1, mode="fixed", n_samples=4)
    with pytest.raises(ValueError, match="needs the position"):
        net(torch.randn(3, 6))
    with pytest.raises(ValueError, match=r"index must lie in \[0, 3\]"):
        net(torch.randn(2, 6), index=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="noise must have shape"):
        net(torch.randn(3, 6), noise=torch.zeros(4))
    with pytest.raises(ValueError, match="layer must be one of"):
        net.niw("3")
    with pytest.raises(ValueError, match="steps"):
        nin.predict_phase(0.1, 1.0, 1.0, steps=0)
    with pytest.raises(ValueError, match="lr"):
        nin.predict_phase(-0.1, 1.0, 1.0, steps=10)
    with pytest.raises(ValueError, match="sigma"):
        nin.simulate_toy(float("nan"), 0.1, 10, width=4, progress=False)
    with pytest.raises(ValueError, match="sigmas"):
        nin.train_sweep(model, _classification(), [0.1, -0.2], layers=["1"], steps=1, lr=0.1)


def test_laws_have_unit_variance():
    g = torch.Generator().manual_seed(0)
    for law in nin.LAWS:
        xi = _standard_noise(law, 40_000, g, torch.device("cpu"), torch.float64)
        # se of the variance of 40k unit-variance draws: sqrt((kurtosis - 1)/40k) <= 0.011
        assert abs(float(xi.mean())) < Z * 0.005 and abs(float(xi.var()) - 1) < Z * 0.011
