"""Tests of gnilab.msgd: the moments of every M-noise family against the closed forms (Wu et al.
2020, Proposition 1 and the module's table), M-SGD's gradient against GD / minibatch SGD /
Gᵀ W, the covariance route against M-SGD's noise, Theorem 1's exact supremum and the Khintchine
bounds, reproducibility, argument checks and divergence."""
import math

import pytest
import torch
from torch import nn

from gnilab import msgd
from gnilab.data import ArrayDataset
from gnilab.noise import minibatch_gradients
from gnilab.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

Z = 5.0          # z-score bound of the Monte Carlo checks (two-sided p ≈ 6e-7 per entry)
DRAWS = 20_000   # draws of W per family: se of a covariance entry ≈ std(product) / 141


def _setup(seed=0, n=20, d=3, classes=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d, 4), nn.Tanh(), nn.Linear(4, classes)).double()
    return model, ArrayDataset(x, y, "toy")   # D = 16 + 15 = 31


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


# -------------------------------------------------------------------------------------------
# moments of the families against the closed forms
# -------------------------------------------------------------------------------------------

FAMILIES = [
    ("gd", 5, {}),
    ("sgd", 5, dict(b=1)), ("sgd", 5, dict(b=2)), ("sgd", 5, dict(b=5)),
    ("sgd_replacement", 5, dict(b=1)), ("sgd_replacement", 6, dict(b=6)),
    ("bernoulli", 5, dict(b=1)), ("bernoulli", 5, dict(b=5)), ("bernoulli", 6, dict(p=0.3)),
    ("fisher", 5, dict(b=1)), ("fisher", 6, dict(b=6, match="without_replacement")),
    ("fisher", 4, dict(s=0.5)),
    ("cov", 5, dict(b=2)), ("cov", 6, dict(b=2, match="without_replacement")),
    ("cov", 6, dict(s=1.5, ghost=3)),
    ("rademacher", 5, dict(s=1.0)), ("rademacher", 4, dict(b=1)),
    ("fisher_sparse", 5, dict(b=2, size=1)), ("fisher_sparse", 5, dict(b=2, size=5)),
    ("cov_sparse", 6, dict(b=3, size=2)), ("cov_sparse", 5, dict(b=1, size=5)),
    ("fisher_ghost", 6, dict(b=1, size=2)), ("fisher_ghost", 5, dict(b=5, size=5)),
    ("cov_ghost", 8, dict(b=2, size=4, ghost=2)), ("cov_ghost", 6, dict(b=1, size=6, ghost=3)),
]


@pytest.mark.parametrize("kind,n,kw", FAMILIES, ids=[f"{k}-{n}-{kw}" for k, n, kw in FAMILIES])
def test_moments_match_closed_forms(kind, n, kw):
    law = msgd.MultiplicativeNoise(kind, n, **kw)
    w = law.sample(DRAWS, generator=torch.Generator().manual_seed(7), device="cpu",
                   dtype=torch.float64)
    assert w.shape == (DRAWS, n)
    mu = law.mean()
    torch.testing.assert_close(mu, torch.full((n,), 1 / n, dtype=torch.float64))
    se_mean = w.std(0) / math.sqrt(DRAWS)
    assert ((w.mean(0) - mu).abs() <= Z * se_mean + 1e-12).all()
    d = w - mu                                   # the mean is known exactly: no bias
    prod = d[:, :, None] * d[:, None, :]         # [DRAWS, n, n]
    emp, se = prod.mean(0), prod.std(0) / math.sqrt(DRAWS)
    cov = law.covariance()
    assert cov.shape == (n, n) and cov.dtype == torch.float64
    torch.testing.assert_close(cov, cov.T)
    assert ((emp - cov).abs() <= Z * se + 1e-12).all(), (emp - cov).abs().max()


def test_single_draw_shape_and_weights_helper():
    w = msgd.weights("sgd", 10, b=3, generator=1, device="cpu", dtype=torch.float64)
    assert w.shape == (10,) and int((w > 0).sum()) == 3 and math.isclose(float(w.sum()), 1.0)
    again = msgd.weights("sgd", 10, b=3, generator=1, device="cpu", dtype=torch.float64)
    assert torch.equal(w, again)
    # the sgd_replacement weights are counts / b: they sum to 1 too
    w = msgd.weights("sgd_replacement", 10, b=4, draws=50, generator=2, device="cpu")
    torch.testing.assert_close(w.sum(1), torch.ones(50))


@pytest.mark.parametrize("n,b", [(10, 1), (10, 3), (10, 10), (1000, 50)])
def test_default_scales_match_sgd_exactly(n, b):
    """The Gaussian part of Cov(W) has SGD-b's v (with / without replacement)."""
    eye = torch.eye(n, dtype=torch.float64)
    for match, sgd_kind in (("replacement", "sgd_replacement"), ("without_replacement", "sgd")):
        sgd = msgd.MultiplicativeNoise(sgd_kind, n, b=b).covariance()
        v = float(sgd[0, 0]) / (1 - 1 / n)
        # cov has the same covariance as SGD (Prop. 1); fisher and rademacher v·I
        for kind in ("cov", "fisher", "rademacher"):
            cov = msgd.MultiplicativeNoise(kind, n, b=b, match=match).covariance()
            torch.testing.assert_close(cov, sgd if kind == "cov" else v * eye,
                                       rtol=1e-12, atol=1e-15)
        big = max(2, n // 2)
        sparse = msgd.MultiplicativeNoise("cov_sparse", n, b=b, size=big, match=match)
        torch.testing.assert_close(sparse.covariance(), sgd, rtol=1e-12, atol=1e-15)
        sparse = msgd.MultiplicativeNoise("fisher_sparse", n, b=b, size=big, match=match)
        torch.testing.assert_close(sparse.covariance(), v * eye, rtol=1e-12, atol=1e-15)
        # ghost kinds: the Gaussian part on top of the large batch's own sampling noise
        large = msgd.MultiplicativeNoise("sgd", n, b=big).covariance()
        ghost = msgd.MultiplicativeNoise("fisher_ghost", n, b=b, size=big, match=match)
        torch.testing.assert_close(ghost.covariance() - large, v * eye, rtol=1e-10, atol=1e-15)
        ghost = msgd.MultiplicativeNoise("cov_ghost", n, b=b, size=big, match=match)
        torch.testing.assert_close(ghost.covariance() - large, sgd, rtol=1e-10, atol=1e-15)
    # the paper's rules: s² = N/b (fisher, with replacement) and s² = B/b (fisher_ghost)
    assert math.isclose(msgd.MultiplicativeNoise("fisher", n, b=b).s ** 2, n / b)
    assert math.isclose(msgd.MultiplicativeNoise("fisher_ghost", n, b=b, size=n).s ** 2, n / b)
    # bernoulli with p = b/N: the diagonal of SGD without replacement
    bern = msgd.MultiplicativeNoise("bernoulli", n, b=b).covariance()
    torch.testing.assert_close(bern.diagonal(), sgd.diagonal(), rtol=1e-12, atol=1e-15)


# -------------------------------------------------------------------------------------------
# the M-SGD gradient
# -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [None, 7])
def test_msgd_with_uniform_weights_is_gd(chunk_size):
    model, data = _setup()
    ref = train(model, data, steps=5, lr=0.3, batch_size=None, progress=False)
    model2, _ = _setup()
    obj = msgd.msgd_objective("gd", len(data.y), chunk_size=chunk_size)
    res = train(model2, data, steps=5, lr=0.3, batch_size=None, objective=obj, progress=False)
    torch.testing.assert_close(_params(model2), _params(model), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res.history.loss, ref.history.loss, rtol=1e-12, atol=0)
    assert obj.calls == 5
    via_train_msgd = msgd.train_msgd(_setup()[0], data, "gd", steps=5, lr=0.3, progress=False)
    torch.testing.assert_close(_params(via_train_msgd.model), _params(model), rtol=1e-12,
                               atol=1e-14)   # float64; another reduction order is allowed


def test_sgd_weights_give_the_minibatch_gradient():
    model, data = _setup()
    n = len(data.y)
    obj = msgd.msgd_objective("sgd", n, b=4)
    batch = torch.tensor([3, 11, 0, 17])
    w = torch.zeros(n, dtype=torch.float64)
    w[batch] = 1 / 4
    g_msgd = _grad(model, obj.weighted_loss(model, data.x, data.y, w))
    g_sgd = _grad(model, obj.loss_fn(model(data.x[batch]), data.y[batch]))
    torch.testing.assert_close(g_msgd, g_sgd, rtol=1e-13, atol=1e-15)
    # with replacement: counts / b is the mean over the draws, duplicates included
    draws = torch.tensor([5, 5, 2, 9, 5])
    w = torch.zeros(n, dtype=torch.float64).index_add_(0, draws, torch.full((5,), 0.2,
                                                                            dtype=torch.float64))
    g_msgd = _grad(model, obj.weighted_loss(model, data.x, data.y, w))
    g_sgd = _grad(model, obj.loss_fn(model(data.x[draws]), data.y[draws]))
    torch.testing.assert_close(g_msgd, g_sgd, rtol=1e-13, atol=1e-15)


def test_msgd_gradient_is_gradient_matrix_times_w():
    model, data = _setup()
    grads = minibatch_gradients(model, data, 1, method="vmap")    # [N, D] per example
    w = msgd.weights("fisher", len(data.y), b=5, generator=3, device="cpu", dtype=torch.float64)
    obj = msgd.msgd_objective("fisher", len(data.y), b=5)
    g = _grad(model, obj.weighted_loss(model, data.x, data.y, w))
    torch.testing.assert_close(g, grads.T @ w, rtol=1e-12, atol=1e-14)


def test_objective_rejects_other_batch_sizes():
    model, data = _setup()
    obj = msgd.msgd_objective("fisher", 20, b=5)
    with pytest.raises(ValueError, match="takes batches of 20"):
        obj(model, data.x[:10], data.y[:10])
    ghost = msgd.msgd_objective("cov_ghost", 20, b=2, size=10, ghost=5)
    assert ghost.law(10).kind == "cov" and ghost.law(10).ghost == 5
    assert ghost.law(20) is ghost.noise
    ghost(model, data.x[:10], data.y[:10])
    with pytest.raises(ValueError, match="or 10"):
        ghost(model, data.x[:7], data.y[:7])


# -------------------------------------------------------------------------------------------
# the covariance route against M-SGD's noise
# -------------------------------------------------------------------------------------------

def _within(emp_draws, target, z=Z):
    """Entrywise |empirical second moment − target| ≤ z se (zero-mean draws [k, D])."""
    prod = emp_draws[:, :, None] * emp_draws[:, None, :]
    se = prod.std(0) / math.sqrt(emp_draws.shape[0])
    return ((prod.mean(0) - target).abs() <= z * se + 1e-14).all()


@pytest.mark.parametrize("kind", ["fisher", "cov"])
def test_covariance_route_has_msgd_noise_covariance(kind):
    model, data = _setup(seed=1, n=10, d=2, classes=2)           # D = 12 + 10 = 22
    n, b, k = len(data.y), 2, 4000
    grads = minibatch_gradients(model, data, 1, method="vmap")
    a = grads if kind == "fisher" else grads - grads.mean(0)
    s = msgd.MultiplicativeNoise(kind, n, b=b).s
    target = (s / n) ** 2 * a.T @ a                              # (s²/N) F or (s²/N) Σ
    torch.testing.assert_close(target, (a.T @ a) / (n * b))      # = F/b or Σ/b
    # M-SGD: one weighted backward per draw, minus the full gradient
    obj = msgd.msgd_objective(kind, n, b=b, generator=11)
    full = grads.mean(0)
    noise = torch.stack([_grad(model, obj(model, data.x, data.y)) - full for _ in range(k)])
    assert _within(noise, target)
    for method in ("svd", "eigh"):
        xi = msgd.gaussian_noise_by_covariance(model, data, kind, b=b, method=method, draws=k,
                                               generator=12)
        assert xi.shape == (k, grads.shape[1]) and xi.dtype == torch.float64
        assert _within(xi, target)
        # and the two empirical covariances agree with each other
        d = (noise.T @ noise - xi.T @ xi) / k
        se = torch.sqrt(((noise[:, :, None] * noise[:, None, :]).var(0)
                         + (xi[:, :, None] * xi[:, None, :]).var(0)) / k)
        assert (d.abs() <= Z * se + 1e-14).all()
    one = msgd.gaussian_noise_by_covariance(model, data, kind, b=b, generator=1)
    assert one.shape == (grads.shape[1],)


# -------------------------------------------------------------------------------------------
# training: reproducibility, ghost batches, divergence
# -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,kw", [("fisher", dict(b=5)), ("sgd", dict(b=5)),
                                     ("bernoulli", dict(b=5)),
                                     ("cov_ghost", dict(b=2, size=10, ghost=5))])
def test_seeded_runs_repeat_and_seeds_differ(kind, kw):
    def run(seed):
        model, data = _setup()
        return msgd.train_msgd(model, data, kind, steps=6, lr=0.2, generator=seed,
                               progress=False, **kw)

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(_params(a.model), _params(b.model))
    assert a.history.equals(b.history)
    assert not torch.equal(_params(a.model), _params(c.model))


def test_ghost_training_sees_the_large_batch():
    model, data = _setup()
    seen = []
    obj = msgd.msgd_objective("fisher_ghost", 20, b=2, size=8, generator=0)

    def spy(m, x, y):
        seen.append(len(y))
        return obj(m, x, y)

    train(model, data, steps=3, lr=0.1, batch_size=8, sampling="independent", objective=spy,
          progress=False)
    assert seen == [8, 8, 8]
    res = msgd.train_msgd(_setup()[0], data, "fisher_ghost", b=2, size=8, steps=3, lr=0.1,
                          generator=0, progress=False)
    assert not res.diverged and res.steps == 3


def test_divergence_is_reported_not_raised():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    data = ArrayDataset(x, x @ torch.ones(4, dtype=torch.float64), "regression")
    model = nn.Linear(4, 1).double()
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = msgd.train_msgd(model, data, "fisher", b=5, loss="mse", steps=200, lr=1e3,
                              generator=0, progress=False)
    assert res.diverged and res.diverged_step is not None and res.diverged_step <= 200


# -------------------------------------------------------------------------------------------
# Theorem 1
# -------------------------------------------------------------------------------------------

def _linear(seed=0, n=8, d=3):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, generator=g, dtype=torch.float64)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    theta = torch.randn(d, generator=g, dtype=torch.float64)
    return msgd.LinearLosses(c, a), theta


def test_exact_sup_against_brute_force_on_the_sphere():
    lin, theta = _linear()
    delta = 0.5
    g = torch.Generator().manual_seed(1)
    u = torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    u = delta * u / u.norm(dim=1, keepdim=True)                  # points of the δ-sphere
    for v in torch.randn(5, lin.n, generator=g, dtype=torch.float64):
        exact = float(msgd.local_sup(lin, v, theta, delta))
        brute = float((lin(theta + u) @ v).abs().max())
        # a linear function's sup over a ball is on the sphere; 1e5 points in 3-D come within
        # an angle of ~0.01 of the maximiser: a relative shortfall ~ 1e-4 of the δ term
        assert brute <= exact * (1 + 1e-12)
        assert brute >= exact * (1 - 1e-3)
        # the stated maximiser attains it
        s0, gv = float(v @ lin(theta)), v @ lin.a
        best = theta + delta * math.copysign(1.0, s0) * gv / gv.norm()
        assert math.isclose(abs(float(v @ lin(best))), exact, rel_tol=1e-12)
    batch = msgd.local_sup(lin, torch.randn(4, lin.n, dtype=torch.float64), theta, delta)
    assert batch.shape == (4,)


def test_gaussian_over_rademacher_within_khintchine_bounds():
    """R(G)/R(A). δ = 0: E|Σ g_i x_i| = √(2/π)‖x‖ and ‖x‖/√2 ≤ E|Σ a_i x_i| ≤ ‖x‖ (Szarek's
    constant), so the ratio is in [√(2/π), 2/√π] = [0.798, 1.128]. δ > 0: the sup is the norm
    |vᵀℓ| + δ‖Aᵀv‖ of a vector sum; E‖Σ g_i x_i‖ ≥ √(2/π) E‖Σ a_i x_i‖ in any normed space
    (contraction principle) and E‖Σ a_i x_i‖ ≥ (E‖Σ a_i x_i‖²)^{1/2}/√2 ≥ E‖Σ g_i x_i‖/√2
    (Latała–Oleszkiewicz; equal second moments), so the ratio is in [√(2/π), √2]."""
    lin, theta = _linear(seed=2, n=12, d=4)
    low = math.sqrt(2 / math.pi)
    for delta, high in ((0.0, 2 / math.sqrt(math.pi)), (0.7, math.sqrt(2))):
        rg = msgd.local_complexity("gaussian", lin, theta, delta, draws=20_000, generator=1)
        ra = msgd.local_complexity("rademacher", lin, theta, delta, draws=20_000, generator=2)
        ratio = rg.value / ra.value
        se = ratio * math.hypot(rg.stderr / rg.value, ra.stderr / ra.value)
        assert low - Z * se <= ratio <= high + Z * se, (delta, ratio)
        assert rg.exact_sup and rg.n == 12 and rg.draws == 20_000
        if delta == 0.0:   # the Gaussian one in closed form
            exact = low * float(lin(theta).norm()) / lin.n
            assert abs(rg.value - exact) <= Z * rg.stderr
    # the SGD complexity: V = N W_sgd − 1, finite and positive
    rs = msgd.local_complexity("sgd", lin, theta, 0.7, b=3, draws=2000, generator=3)
    assert rs.value > 0 and math.isfinite(rs.stderr)


def test_linearise_recovers_linear_losses_and_first_order():
    lin, theta = _linear(seed=3)
    again = msgd.linearise(lambda t: lin.c + lin.a @ t, theta)
    torch.testing.assert_close(again.c, lin.c)
    torch.testing.assert_close(again.a, lin.a)
    r1 = msgd.local_complexity("gaussian", lin, theta, 0.2, draws=100, generator=5)
    r2 = msgd.local_complexity("gaussian", lambda t: lin.c + lin.a @ t, theta, 0.2, draws=100,
                               generator=5)
    assert math.isclose(r1.value, r2.value, rel_tol=1e-12) and not r2.exact_sup
    # a nonlinear loss: the linearised sup is within O(δ²) of the brute-force one
    quad = lambda t: lin.c + lin.a @ t + 0.5 * (t ** 2).sum()     # noqa: E731
    v = torch.randn(lin.n, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    delta = 1e-2
    approx = float(msgd.local_sup(msgd.linearise(quad, theta), v, theta, delta))
    u = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    u = delta * u / u.norm(dim=1, keepdim=True)
    brute = max(abs(float(v @ quad(theta + ui))) for ui in u[:2000])
    assert abs(approx - brute) <= 2 * delta ** 2 * float(v.abs().sum()) + 1e-3 * approx


# -------------------------------------------------------------------------------------------
# argument checks
# -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,kw,exc,match", [
    (("sgd", 5), dict(b=0), ValueError, r"b must be an integer in \[1, 5\], got 0"),
    (("sgd", 5), dict(b=6), ValueError, r"b must be an integer in \[1, 5\]"),
    (("sgd", 5), dict(b=2.0), TypeError, "b must be an integer"),
    (("sgd", 5), {}, ValueError, "b .*is needed"),
    (("fisher", 1), dict(b=1), ValueError, r"n must be an integer >= 2"),
    (("bernoulli", 5), dict(p=0.0), ValueError, r"p must be a number in \(0, 1\]"),
    (("bernoulli", 5), dict(p=1.5), ValueError, r"p must be"),
    (("bernoulli", 5), {}, ValueError, "p .* or b"),
    (("fisher", 5), dict(s=-1.0), ValueError, "s must be a finite number >= 0"),
    (("fisher", 5), dict(s=float("nan")), ValueError, "s must be"),
    (("fisher", 5), dict(s=float("inf")), ValueError, "s must be"),
    (("fisher", 5), {}, ValueError, "needs s"),
    (("fisher", 5), dict(s=1.0, p=0.5), ValueError, "p is not a parameter of kind='fisher'"),
    (("gaussian", 5), dict(s=1.0), ValueError, "kind must be one of"),
    (("fisher_sparse", 5), dict(b=1), ValueError, "size .*is needed"),
    (("fisher_sparse", 5), dict(b=1, size=0), ValueError, r"size must be an integer in \[1, 5\]"),
    (("cov_sparse", 5), dict(b=1, size=1), ValueError, r"size must be an integer in \[2, 5\]"),
    (("cov_ghost", 6), dict(b=1, size=7), ValueError, "size must be"),
    (("cov_ghost", 8), dict(b=1, size=6, ghost=4), ValueError, "ghost must divide size = 6"),
    (("cov", 6), dict(b=1, ghost=1), ValueError, "ghost must be an integer"),
    (("fisher", 6), dict(b=1, ghost=2), ValueError, "ghost is not a parameter"),
    (("cov", 6), dict(b=1, match="exact"), ValueError, "match must be one of"),
])
def test_invalid_parameters_are_refused(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        msgd.MultiplicativeNoise(*args, **kw)


def test_invalid_arguments_of_the_functions():
    lin, theta = _linear()
    with pytest.raises(ValueError, match="delta must be a finite number >= 0"):
        msgd.local_complexity("gaussian", lin, theta, -0.1)
    with pytest.raises(ValueError, match="delta must be"):
        msgd.local_sup(lin, torch.ones(lin.n), theta, float("nan"))
    with pytest.raises(ValueError, match="kind must be one of"):
        msgd.local_complexity("bernoulli", lin, theta, 0.1)
    with pytest.raises(ValueError, match="draws must be an integer >= 2"):
        msgd.local_complexity("gaussian", lin, theta, 0.1, draws=1)
    with pytest.raises(ValueError, match="theta must be a"):
        msgd.local_sup(lin, torch.ones(lin.n), torch.zeros(5), 0.1)
    with pytest.raises(TypeError, match="generator must be"):
        msgd.weights("fisher", 5, b=1, generator="seed")
    with pytest.raises(ValueError, match="draws must be an integer >= 1"):
        msgd.weights("fisher", 5, b=1, draws=0)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        msgd.msgd_objective("fisher", 5, b=1, chunk_size=0)
    model, data = _setup()
    with pytest.raises(ValueError, match="method must be one of"):
        msgd.gaussian_noise_by_covariance(model, data, "fisher", b=2, method="cholesky")
    with pytest.raises(ValueError, match="kind must be one of 'fisher', 'cov'"):
        msgd.gaussian_noise_by_covariance(model, data, "bernoulli", b=2)
    with pytest.raises(ValueError, match="b .*is needed for kind='sgd'"):
        msgd.train_msgd(model, data, "sgd", steps=1, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="within_batch"):
        msgd.MultiplicativeNoise("fisher", 5, b=1).within_batch()
