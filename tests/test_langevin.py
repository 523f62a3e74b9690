"""Tests of gnilab.langevin: the noise of Zhu et al.'s Table 1 (budget, structure, refresh,
where it enters) and the OU escaping efficiency of their Eq. 13 against simulation."""
import math

import pytest
import torch
from torch import nn

from gnilab import langevin as dy
from gnilab.curvature import dense_hessian, gradient_covariance
from gnilab.data import ArrayDataset
from gnilab.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

Z = 4.5   # z-score bound of the statistical checks (two-sided p ≈ 7e-6 each)


def _mlp_setup(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    return model, ArrayDataset(x, y, "toy")   # D = 16 + 15 = 31


def _toy_setup(seed=0, w0=(0.95, 1.03)):
    g = torch.Generator().manual_seed(seed)
    data = dy.toy2d_data(100, generator=g, dtype=torch.float64)
    return dy.Toy2D(w0, dtype=torch.float64), data


def _sq_norm_check(samples, budget):
    sq = samples.pow(2).sum(1)
    se = float(sq.std()) / math.sqrt(sq.numel())
    assert abs(float(sq.mean()) - budget) < Z * se + 1e-12 * budget, (float(sq.mean()), budget)


# -------------------------------------------------------------------------------------------
# the 2-D toy against gnilab.curvature
# -------------------------------------------------------------------------------------------

def test_toy2d_stats_match_curvature():
    model, data = _toy_setup()
    g, cov, hess = dy._toy_stats(model.w.detach().reshape(1, 2), data.x.unsqueeze(0))
    ref_cov = gradient_covariance(model, data, dy.toy2d_loss).to_dense()
    ref_h = dense_hessian(model, data, dy.toy2d_loss)
    torch.testing.assert_close(cov[0], ref_cov, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hess[0], ref_h, rtol=1e-10, atol=1e-10)
    model.zero_grad()
    dy.toy2d_loss(model(data.x), data.y).backward()
    torch.testing.assert_close(g[0], model.w.grad, rtol=1e-10, atol=1e-12)
    # the sharp minimum: eigenvalues 20 along (1, -1), 200 along (1, 1)
    lam, vec = torch.linalg.eigh(ref_h)
    torch.testing.assert_close(lam, torch.tensor([20.0, 200.0], dtype=torch.float64))
    assert abs(abs(float(vec[0, 1] * vec[1, 1])) - 0.5) < 1e-8


# -------------------------------------------------------------------------------------------
# noise budget and structure (20,000 draws each)
# -------------------------------------------------------------------------------------------

N_DRAWS = 20000


@pytest.mark.parametrize("kind", [k for k in dy.KINDS if k != "gd"])
@pytest.mark.parametrize("budget", [0.3, "trace"])
def test_budget_every_kind(kind, budget):
    model, data = _mlp_setup()
    hook = dy.GLDNoise(kind, data, budget=budget, k=3, batch_size=4,
                       generator=torch.Generator().manual_seed(1))
    hook.update(model)
    tr = gradient_covariance(model, data, batch_size=4).trace()
    expected = 0.3 if budget == 0.3 else tr
    assert hook.budget == pytest.approx(expected, rel=1e-12)
    _sq_norm_check(hook.sample(N_DRAWS).double(), expected)


def test_budget_trace_on_weights_is_lr2_trace():
    model, data = _mlp_setup()
    hook = dy.GLDNoise("gld_dynamic", data, budget="trace", target="weights", lr=0.1,
                       generator=torch.Generator().manual_seed(2))
    hook.update(model)
    assert hook.budget == pytest.approx(0.01 * gradient_covariance(model, data).trace(),
                                        rel=1e-12)


def _cov_z_scores(samples, target):
    """|Ĉ − C| / SE elementwise for Gaussian samples: Var(x_i x_j) = C_ii C_jj + C_ij²."""
    n = samples.shape[0]
    emp = samples.T @ samples / n
    se = ((torch.outer(target.diagonal(), target.diagonal()) + target ** 2) / n).sqrt()
    return (emp - target).abs() / se.clamp_min(1e-30)


def test_diag_matches_diag_sigma():
    model, data = _mlp_setup()
    hook = dy.GLDNoise("gld_diag", data, budget="trace", generator=torch.Generator().manual_seed(3))
    hook.update(model)
    target = torch.diag(gradient_covariance(model, data).diagonal())
    s = hook.sample(N_DRAWS)
    assert float(_cov_z_scores(s, target).max()) < Z


def test_isotropic_kinds_are_isotropic():
    model, data = _mlp_setup()
    for kind in ("gld_const", "gld_dynamic"):
        hook = dy.GLDNoise(kind, data, budget=0.31, generator=torch.Generator().manual_seed(4))
        hook.update(model)
        target = 0.01 * torch.eye(31, dtype=torch.float64)
        assert float(_cov_z_scores(hook.sample(N_DRAWS), target).max()) < Z


def test_leading_lies_in_top_k_span_of_sigma():
    model, data = _mlp_setup()
    k = 3
    hook = dy.GLDNoise("gld_leading", data, budget=0.5, k=k,
                       generator=torch.Generator().manual_seed(5))
    hook.update(model)
    sigma = gradient_covariance(model, data).to_dense()
    lam, vec = torch.linalg.eigh(sigma)
    lam, top = lam.flip(0)[:k], vec.flip(1)[:, :k]
    s = hook.sample(N_DRAWS)
    resid = s - (s @ top) @ top.T
    assert float(resid.norm() / s.norm()) < 1e-8
    target = 0.5 * (top * (lam / lam.sum())) @ top.T
    assert float(_cov_z_scores(s @ top, top.T @ target @ top).max()) < Z


def test_hessian_lies_in_top_k_span_of_h():
    model, data = _mlp_setup()
    k = 3
    hook = dy.GLDNoise("gld_hessian", data, budget=0.5, k=k, lanczos_tol=1e-10,
                       generator=torch.Generator().manual_seed(6))
    hook.update(model)
    lam, vec = torch.linalg.eigh(dense_hessian(model, data))
    lam, top = lam.flip(0)[:k], vec.flip(1)[:, :k]
    assert float(lam.min()) > 0
    s = hook.sample(N_DRAWS)
    resid = s - (s @ top) @ top.T
    assert float(resid.norm() / s.norm()) < 1e-6
    # variances along u_i: budget λ_i / Σλ (Table 1: eigenvalues rescaled to sum to the budget)
    var = (s @ top).pow(2).mean(0)
    want = 0.5 * lam / lam.sum()
    assert float(((var - want).abs() / (want * math.sqrt(2 / N_DRAWS))).max()) < Z


def test_eigvec_is_parallel_to_v1():
    model, data = _mlp_setup()
    hook = dy.GLDNoise("gld_eigvec", data, budget=0.2, lanczos_tol=1e-10,
                       generator=torch.Generator().manual_seed(7))
    hook.update(model)
    lam, vec = torch.linalg.eigh(dense_hessian(model, data))
    v1 = vec[:, -1]
    s = hook.sample(1000)
    cos = (s @ v1).abs() / s.norm(dim=1)
    assert float((1 - cos).max()) < 1e-8


def test_eigvec_lanczos_branch_wide_mlp():
    """D = 213 > 110: the top eigenvector comes from Lanczos (gnilab.curvature)."""
    g = torch.Generator().manual_seed(21)
    data = ArrayDataset(torch.randn(60, 3, generator=g, dtype=torch.float64),
                        torch.randint(0, 3, (60,), generator=g), "toy")
    torch.manual_seed(21)
    model = nn.Sequential(nn.Linear(3, 30), nn.Tanh(), nn.Linear(30, 3)).double()
    hook = dy.GLDNoise("gld_eigvec", data, budget=0.2, lanczos_tol=1e-10,
                       generator=torch.Generator().manual_seed(22))
    hook.update(model)
    v1 = torch.linalg.eigh(dense_hessian(model, data))[1][:, -1]
    s = hook.sample(2000)
    _sq_norm_check(s, 0.2)
    assert float((1 - (s @ v1).abs() / s.norm(dim=1)).max()) < 1e-8


def test_hessian_kind_with_repeated_eigenvalues():
    """In the toy's flat basin H = 2I (a Krylov space of dimension 1): the noise is still
    isotropic with the full budget."""
    model, data = _toy_setup(w0=(-1.0, -1.0))
    hook = dy.GLDNoise("gld_hessian", data, dy.toy2d_loss, budget=0.01, k=2,
                       generator=torch.Generator().manual_seed(23))
    hook.update(model)
    target = 0.005 * torch.eye(2, dtype=torch.float64)
    assert float(_cov_z_scores(hook.sample(N_DRAWS), target).max()) < Z


def test_toy_leading_is_full_covariance():
    model, data = _toy_setup()
    hook = dy.GLDNoise("gld_leading", data, dy.toy2d_loss, budget=0.01, k=2,
                       generator=torch.Generator().manual_seed(8))
    hook.update(model)
    sigma = gradient_covariance(model, data, dy.toy2d_loss).to_dense()
    target = 0.01 * sigma / torch.trace(sigma)
    assert float(_cov_z_scores(hook.sample(N_DRAWS), target).max()) < Z


# -------------------------------------------------------------------------------------------
# through gnilab.train: GD, refresh, noise on weights vs gradient
# -------------------------------------------------------------------------------------------

def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_gd_adds_nothing():
    model, data = _mlp_setup()
    ref, _ = _mlp_setup()
    res = dy.train_dynamics(model, data, "gd", steps=5, lr=0.1, progress=False)
    train(ref, data, steps=5, lr=0.1, progress=False)
    assert torch.equal(_flat(model), _flat(ref))
    assert len(res.records) == 5 and (res.records["noise_sq"] == 0).all()


@pytest.mark.parametrize("only", [False, True])
def test_refresh_interval_respected(only):
    model, data = _mlp_setup()
    res = dy.train_dynamics(model, data, "gld_dynamic", steps=10, lr=0.05, refresh=3,
                            noise_on_refresh_only=only, progress=False,
                            generator=torch.Generator().manual_seed(9))
    rec = res.records.set_index("step")
    assert list(rec.index[rec["refreshed"]]) == [1, 4, 7, 10]
    assert (rec.loc[~rec["refreshed"], "stats_time"] == 0).all()
    assert (rec.loc[rec["refreshed"], "stats_time"] > 0).all()
    # the budget (Tr Σ at the last refresh) is constant between refreshes, changes across them
    for a, b in ((1, 3), (4, 6), (7, 9)):
        assert rec.loc[a:b, "budget"].nunique() == 1
    assert rec.loc[[1, 4, 7, 10], "budget"].nunique() == 4
    noisy = rec["noise_sq"] > 0
    assert noisy.equals(rec["refreshed"]) if only else bool(noisy.all())


def test_gld_const_fixes_trace_budget_once():
    model, data = _mlp_setup()
    res = dy.train_dynamics(model, data, "gld_const", steps=6, lr=0.2, refresh=2,
                            progress=False, generator=torch.Generator().manual_seed(10))
    assert res.records["budget"].nunique() == 1
    assert res.records["budget"].iloc[0] == pytest.approx(res.records["trace_sigma"].iloc[0])


def test_noise_on_weights_is_added_after_the_gd_step():
    """target='weights' through train (plain SGD) = the loop w ← w − η∇L + ξ."""
    lr, steps = 0.05, 6
    model, data = _mlp_setup()
    dy.train_dynamics(model, data, "gld_diag", steps=steps, lr=lr, budget=1e-3,
                      target="weights", progress=False,
                      generator=torch.Generator().manual_seed(11))
    ref, _ = _mlp_setup()
    hook = dy.GLDNoise("gld_diag", data, budget=1e-3, target="weights", lr=lr,
                       generator=torch.Generator().manual_seed(11))
    for _ in range(steps):
        ref.zero_grad()
        nn.functional.cross_entropy(ref(data.x), data.y).backward()
        hook.update(ref)
        xi = hook.sample()
        with torch.no_grad():
            off = 0
            for p in ref.parameters():
                p.add_(-lr * p.grad + xi[off:off + p.numel()].view_as(p))
                off += p.numel()
    torch.testing.assert_close(_flat(model), _flat(ref), rtol=0, atol=1e-12)


def test_weights_and_gradient_targets_agree_pathwise():
    """Same seed: weight noise of budget η²B is η × the gradient noise of budget B, so one step
    of each straddles the GD step: ½(w_weights + w_gradient) = w − η∇L."""
    lr = 0.1
    outs = {}
    for target, budget in (("gradient", 2.0), ("weights", 2.0 * lr ** 2), ("none", None)):
        model, data = _mlp_setup()
        if target == "none":
            train(model, data, steps=1, lr=lr, progress=False)
        else:
            hook = dy.GLDNoise("gld_eigvec", data, budget=budget, target=target, lr=lr,
                               generator=torch.Generator().manual_seed(12))
            train(model, data, steps=1, lr=lr, progress=False, grad_hook=hook)
            outs[target + "_xi"] = hook.last_noise
        outs[target] = _flat(model)
    torch.testing.assert_close(outs["weights_xi"], lr * outs["gradient_xi"], rtol=1e-12,
                               atol=0)
    torch.testing.assert_close(0.5 * (outs["weights"] + outs["gradient"]), outs["none"],
                               rtol=0, atol=1e-12)


def test_train_dynamics_toy_and_sgd():
    model, data = _toy_setup(w0=(1.0, 1.0))
    res = dy.train_dynamics(model, data, "gld_hessian", steps=20, lr=0.005, budget=0.01,
                            target="weights", k=2, loss=dy.toy2d_loss, progress=False,
                            generator=torch.Generator().manual_seed(13))
    rec = res.records
    assert len(rec) == 20 and {"noise_sq", "stats_time", "budget"} <= set(rec.columns)
    assert rec["noise_sq"].mean() == pytest.approx(0.01, rel=0.8)
    model2, _ = _toy_setup(w0=(1.0, 1.0))
    res2 = dy.train_dynamics(model2, data, "sgd", steps=5, lr=0.005, batch_size=10,
                             loss=dy.toy2d_loss, progress=False,
                             generator=torch.Generator().manual_seed(14))
    assert len(res2.history) >= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    outs = []
    for device in ("cpu", "cuda"):
        model, data = _mlp_setup()
        model = model.to(device)
        data = ArrayDataset(data.x.to(device), data.y.to(device), "toy")
        hook = dy.GLDNoise("gld_leading", data, budget=0.5, k=3,
                           generator=torch.Generator().manual_seed(15))
        train(model, data, steps=3, lr=0.05, progress=False, grad_hook=hook)
        outs.append(_flat(model).cpu())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-8)


# -------------------------------------------------------------------------------------------
# argument checks
# -------------------------------------------------------------------------------------------

def test_bad_arguments():
    model, data = _mlp_setup()
    with pytest.raises(ValueError, match="kind"):
        dy.GLDNoise("langevin", data)
    with pytest.raises(ValueError, match="kind"):
        dy.train_dynamics(model, data, "adam", steps=1, lr=0.1)
    with pytest.raises(ValueError, match="^k must"):
        dy.GLDNoise("gld_leading", data, k=0)
    with pytest.raises(TypeError, match="^k must"):
        dy.GLDNoise("gld_leading", data, k=2.0)
    with pytest.raises(ValueError, match="^k must"):   # k > D (31)
        dy.GLDNoise("gld_hessian", data, k=32).update(model)
    with pytest.raises(ValueError, match="^k must"):   # k > number of gradients (40)
        big, bdata = _mlp_setup(n=5)
        dy.GLDNoise("gld_leading", bdata, k=6).update(big)
    with pytest.raises(ValueError, match="budget"):
        dy.GLDNoise("gld_const", data, budget=-0.1)
    with pytest.raises(ValueError, match="budget"):
        dy.GLDNoise("gld_const", data, budget=0.0)
    with pytest.raises(ValueError, match="budget"):
        dy.GLDNoise("gld_const", data, budget="sgd")
    with pytest.raises(TypeError, match="budget"):
        dy.GLDNoise("gld_const", data, budget=True)
    with pytest.raises(ValueError, match="refresh"):
        dy.GLDNoise("gld_diag", data, refresh=0)
    with pytest.raises(TypeError, match="refresh"):
        dy.GLDNoise("gld_diag", data, refresh=1.5)
    with pytest.raises(ValueError, match="target"):
        dy.GLDNoise("gld_diag", data, target="bias")
    with pytest.raises(ValueError, match="lr"):
        dy.GLDNoise("gld_diag", data, target="weights")
    with pytest.raises(ValueError, match="batch_size"):
        dy.GLDNoise("gld_diag", data, batch_size=41)
    with pytest.raises(TypeError, match="generator"):
        dy.GLDNoise("gld_diag", data, generator=0)
    with pytest.raises(ValueError, match="target='weights'"):
        dy.train_dynamics(model, data, "gld_diag", steps=1, lr=0.1, target="weights",
                          momentum=0.9)
    h = torch.eye(2)
    with pytest.raises(ValueError, match="hessian"):
        dy.ou_escaping_efficiency(torch.ones(2, 3), h, 1.0)
    with pytest.raises(ValueError, match="positive semi-definite"):
        dy.ou_escaping_efficiency(-h, h, 1.0)
    with pytest.raises(ValueError, match="^t must"):
        dy.ou_escaping_efficiency(h, h, -1.0)
    with pytest.raises(ValueError, match="method"):
        dy.simulate_ou(h, h, 1.0, method="milstein")
    with pytest.raises(ValueError, match="kinds"):
        dy.toy2d_escape(kinds=("gd", "sgd"))


# -------------------------------------------------------------------------------------------
# Ornstein–Uhlenbeck escaping efficiency (Eq. 13)
# -------------------------------------------------------------------------------------------

def _ou_pair(seed=0, dim=3):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    h = q @ torch.diag(torch.tensor([5.0, 1.0, 0.2], dtype=torch.float64)) @ q.T
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return h, a @ a.T / dim


def test_ou_formula_diagonal_h_exact_solution():
    """Diagonal H: θ_i(t) ~ N(0, η Σ_ii (1 − e^{−2λ_i t}) / (2λ_i)), E L = Σ_i λ_i Var θ_i / 2."""
    lam = torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64)
    sigma = torch.tensor([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.01, 0.5, 3.0, 50.0], dtype=torch.float64)
    got = dy.ou_escaping_efficiency(torch.diag(lam), sigma, t, lr=0.3)
    var = 0.3 * sigma.diagonal() * (1 - torch.exp(-2 * lam * t[:, None])) / (2 * lam)
    torch.testing.assert_close(got, 0.5 * (lam * var).sum(1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("t", [0.01, 0.3, 1e-5])
def test_ou_formula_keeps_float64_for_python_numbers(t):
    """Python floats and nested lists give the float64 result: they must not pass through
    float32 (0.01 as float32 is off by 2e-10, a relative error of 1e-8 in the result)."""
    lam = [100.0, 0.1]
    sigma = [[0.0, 0.0], [0.0, 2.0]]
    got = dy.ou_escaping_efficiency([[lam[0], 0.0], [0.0, lam[1]]], sigma, t)
    want = -0.25 * 2.0 * math.expm1(-2 * lam[1] * t)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(want, rel=1e-14)


def test_ou_formula_small_t_and_limit():
    h, s = _ou_pair()
    t = 1e-6
    assert float(dy.ou_escaping_efficiency(h, s, t, lr=0.5)) == pytest.approx(
        0.5 * 0.5 * t * float(torch.trace(h @ s)), rel=1e-5)
    assert float(dy.ou_escaping_efficiency(h, s, 1e3, lr=0.5)) == pytest.approx(
        dy.ou_escaping_limit(h, s, lr=0.5), rel=1e-12)
    assert dy.ou_escaping_limit(h, s, lr=0.5) == pytest.approx(0.125 * float(torch.trace(s)))
    # a flat direction: no loss gained along the null space of H
    h0 = torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert dy.ou_escaping_limit(h0, torch.eye(2, dtype=torch.float64)) == pytest.approx(0.25)


@pytest.mark.parametrize("method", ["exact", "euler"])
def test_ou_formula_against_simulation(method):
    """20,000 paths (tolerance 4.5 SE); Euler–Maruyama with Δ = 2e-3 and λ_max = 5 has a
    relative bias of at most about λΔ/2 = 0.5 %, added to its tolerance."""
    h, s = _ou_pair(1)
    sim = dy.simulate_ou(h, s, 2.0, steps=1000 if method == "euler" else 40, paths=20000,
                         lr=0.5, method=method, record_every=100 if method == "euler" else 4,
                         generator=torch.Generator().manual_seed(16))
    want = dy.ou_escaping_efficiency(h, s, sim.times, lr=0.5)
    bias = 0.0 if method == "exact" else 0.5 * 5.0 * 2e-3
    err = (sim.mean - want).abs()
    assert bool((err[1:] < Z * sim.stderr[1:] + bias * want[1:]).all()), (sim.mean, want)


def test_compare_alignment():
    lam = torch.tensor([100.0, 10.0, 1.0, 0.1, 0.1, 0.1], dtype=torch.float64)
    h = torch.diag(lam)
    cmp = dy.compare_alignment(h, [0.0, 1e-3, 0.1, 1e3], trace=2.0, lr=1.0)
    d = lam.numel()
    assert cmp.ratio == pytest.approx(d * float((lam ** 2).sum()) / float(lam.sum()) ** 2)
    assert cmp.indicator_top == pytest.approx(2.0 * 100.0)
    assert cmp.indicator_isotropic == pytest.approx(2.0 * float(lam.sum()) / d)
    assert bool((cmp.top_eigvec[1:3] > cmp.aligned[1:3]).all())
    assert bool((cmp.aligned[1:3] > cmp.isotropic[1:3]).all())
    for eff in (cmp.aligned, cmp.isotropic, cmp.top_eigvec):
        assert float(eff[-1]) == pytest.approx(cmp.limit, rel=1e-9)
    assert cmp.limit == pytest.approx(0.5)


# -------------------------------------------------------------------------------------------
# the 2-D escape experiment (batched)
# -------------------------------------------------------------------------------------------

def test_toy2d_escape_small():
    res = dy.toy2d_escape(runs=10, steps=50, keep_paths=2,
                          generator=torch.Generator().manual_seed(17))
    assert res.counts["gd"] == 0
    gd = res.final["gd"]
    assert float((gd - 1.0).abs().max()) < 0.05       # GD stays at the sharp minimum
    assert res.path["gld_eigvec"].shape == (51, 2, 2)
    # Tr(HΣ) at the sharp minimum: H Σ_x H with Σ_x the data covariance, Tr(H²Σ_x H) ≈
    # 20³·1e-3 + 200³·1e-4 = 808 (the data's empirical covariance varies by ~1/√100 per run)
    ind = res.trace_h_sigma["gd"]
    assert ind.shape == (50,) and 600 < float(ind[0]) < 1000
    p, lo, hi = res.rates()["gd"]
    assert p == 0 and lo == 0 and 0 < hi < 0.35


def test_toy2d_escape_noise_laws():
    """One step from the same w with a tiny lr: the weight noise of each batched dynamic has the
    covariance that GLDNoise gives on Toy2D (budget 0.01), 4,000 runs."""
    runs, lr = 4000, 1e-12
    res = dy.toy2d_escape(kinds=("gld_diag", "gld_leading", "gld_hessian", "gld_eigvec"),
                          runs=runs, steps=1, lr=lr, generator=torch.Generator().manual_seed(18))
    for kind, xi in res.final.items():
        xi = xi - 1.0
        _sq_norm_check(xi, 0.01)
        if kind in ("gld_hessian", "gld_eigvec"):   # H ≈ the same at w0 for every data draw
            model, data = _toy_setup(w0=(1.0, 1.0))
            hook = dy.GLDNoise(kind, data, dy.toy2d_loss, budget=0.01, k=2,
                               generator=torch.Generator().manual_seed(19))
            hook.update(model)
            target = (hook.basis * hook.scales.pow(2)) @ hook.basis.T
            target = target + 1e-9 * torch.eye(2, dtype=target.dtype)
            assert float(_cov_z_scores(xi, target).max()) < Z, kind


@pytest.mark.slow
def test_toy2d_escape_ordering():
    """Zhu et al. Fig. 2: 100 runs each; anisotropic dynamics escape, GD never does."""
    res = dy.toy2d_escape(runs=100, generator=torch.Generator().manual_seed(20))
    c = res.counts
    assert c["gd"] == 0
    assert c["gld_const"] <= 6 and c["gld_diag"] <= 6
    for kind in ("gld_leading", "gld_hessian", "gld_eigvec"):
        assert c[kind] >= 12, c


def test_toy2d_losses_on_a_grid_match_the_module():
    x = dy.toy2d_data(20, generator=torch.Generator().manual_seed(3),
                            dtype=torch.float64).x
    grid = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.3, -0.2]], dtype=torch.float64)
    many = dy.toy2d_losses(grid, x)
    assert many.shape == (3, 20)
    for i, w in enumerate(grid):
        assert torch.allclose(many[i], dy.Toy2D(tuple(w.tolist()),
                                                      dtype=torch.float64)(x))
