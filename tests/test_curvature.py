"""Tests of gnilab.curvature against dense matrices on small models (float64 throughout, so the
deterministic checks hold to ~1e-10; Monte Carlo checks use 4 standard errors, a two-sided
false-alarm rate of 6e-5 per check, with the sample size stated at each)."""
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from gnilab import curvature as cv
from gnilab.models import MLP, ConvSmall

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def dense_reference(model, data, loss=F.cross_entropy):
    """The Hessian by torch.autograd.functional.hessian, flattened to [D, D]."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = tuple(p.detach() for n, p in model.named_parameters() if p.requires_grad)

    def f(*ps):
        return loss(functional_call(model, dict(zip(names, ps)), (data.x,)), data.y)

    blocks = torch.autograd.functional.hessian(f, params)
    sizes = [p.numel() for p in params]
    return torch.cat([torch.cat([blocks[i][j].reshape(sizes[i], sizes[j])
                                 for j in range(len(params))], 1) for i in range(len(params))], 0)


def per_example_grads(model, data, loss=F.cross_entropy):
    rows = []
    for i in range(len(data.y)):
        model.zero_grad()
        loss(model(data.x[i:i + 1]), data.y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad()
    return torch.stack(rows)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = MLP(5, 8, 2, 3, activation="tanh").double()       # D = 75
    data = SimpleNamespace(x=torch.randn(40, 5, dtype=torch.float64),
                           y=torch.randint(0, 3, (40,)))
    return model, data, dense_reference(model, data)


# ------------------------------------------------------------------------------ HVP

@pytest.mark.parametrize("kwargs", [{}, {"chunk_size": 7}, {"chunk_size": 7, "cache": True},
                                    {"batch": 16}])
def test_hvp_matches_dense_hessian_mlp(small, kwargs):
    model, data, dense = small
    h = cv.hessian_operator(model, data, **kwargs)
    assert h.shape == (75, 75)
    v = torch.randn(75, 3, dtype=torch.float64, generator=gen())
    assert torch.allclose(h @ v, dense @ v, atol=1e-12)
    assert torch.allclose(h.matvec(v[:, 0]), dense @ v[:, 0], atol=1e-12)
    assert torch.allclose(h.to_dense(), dense, atol=1e-12)
    assert torch.allclose(cv.dense_hessian(model, data), dense, atol=1e-12)


def test_hvp_convsmall_against_dense_block_and_autograd_hvp():
    torch.manual_seed(1)
    net = ConvSmall().double()
    data = SimpleNamespace(x=torch.randn(4, 1, 28, 28, dtype=torch.float64),
                           y=torch.tensor([0, 3, 7, 9]))
    h = cv.hessian_operator(net, data)
    assert h.dim == 11330
    # the block of the last layer (510 coordinates) against autograd.functional.hessian
    w, b = net.classifier[3].weight, net.classifier[3].bias
    others = {n: p.detach() for n, p in net.named_parameters()}

    def f(wl, bl):
        ps = {**others, "classifier.3.weight": wl, "classifier.3.bias": bl}
        return F.cross_entropy(functional_call(net, ps, (data.x,)), data.y)

    blocks = torch.autograd.functional.hessian(f, (w.detach(), b.detach()))
    block = torch.cat([torch.cat([blocks[0][0].reshape(500, 500), blocks[0][1].reshape(500, 10)], 1),
                       torch.cat([blocks[1][0].reshape(10, 500), blocks[1][1].reshape(10, 10)], 1)])
    start = 11330 - 510
    unit = torch.zeros(11330, 510, dtype=torch.float64)
    unit[start:, :] = torch.eye(510, dtype=torch.float64)
    cols = h.matvec(unit, batch=64)
    assert torch.allclose(cols[start:], block, atol=1e-10)
    # a random direction through all layers against torch.autograd.functional.hvp
    names = [n for n, _ in net.named_parameters()]

    def g(*ps):
        return F.cross_entropy(functional_call(net, dict(zip(names, ps)), (data.x,)), data.y)

    v = torch.randn(11330, dtype=torch.float64, generator=gen(2))
    vs = tuple(t.view_as(p) for t, p in zip(v.split([p.numel() for p in net.parameters()]),
                                             net.parameters()))
    _, ref = torch.autograd.functional.hvp(g, tuple(p.detach() for p in net.parameters()), vs)
    assert torch.allclose(h @ v, torch.cat([r.reshape(-1) for r in ref]), atol=1e-10)
    with pytest.raises(ValueError, match="refusing to form a dense 11330x11330 Hessian"):
        h.to_dense()
    with pytest.raises(ValueError, match=r"v must have shape \[11330\]"):
        h @ torch.ones(5)


def test_operator_is_a_snapshot_and_leaves_model_alone(small):
    model, data, dense = small
    before = [p.detach().clone() for p in model.parameters()]
    h = cv.hessian_operator(model, data)
    h @ torch.ones(75, dtype=torch.float64)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert abs(h.loss() - F.cross_entropy(model(data.x), data.y).item()) < 1e-12
    model.zero_grad()
    F.cross_entropy(model(data.x), data.y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad()
    assert torch.allclose(h.gradient(), g, atol=1e-12)


# ------------------------------------------------------------------------------ eigenpairs

@pytest.mark.parametrize("method", ["lanczos", "eigsh"])
def test_top_k_matches_eigh(small, method):
    model, data, dense = small
    lam, vec = np.linalg.eigh(dense.numpy())
    order = np.argsort(-lam)
    top = cv.hessian_eigenpairs(model, data, 6, method=method, tol=1e-10, generator=gen())
    assert top.vectors.shape == (75, 6)
    assert np.allclose(top.values.numpy(), lam[order[:6]], rtol=1e-8, atol=1e-12)
    cos = np.abs(np.sum(top.vectors.numpy() * vec[:, order[:6]], 0))
    assert np.all(cos > 1 - 1e-6)
    assert torch.all(top.values[:-1] >= top.values[1:])
    # largest magnitude on a dense matrix with a negative extreme eigenvalue
    a = torch.diag(torch.tensor([-5.0, 3.0, 1.0, 0.5] + [0.1] * 20, dtype=torch.float64))
    lm = cv.lanczos(a, 2, which="LM", method=method, tol=1e-10, generator=gen())
    assert np.allclose(lm.values.numpy(), [-5.0, 3.0])


# ------------------------------------------------------------------------------ trace, density

@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_within_its_standard_error(small, distribution):
    model, data, dense = small
    est = cv.hutchinson_trace(cv.hessian_operator(model, data), 400, distribution=distribution,
                              generator=gen(3))
    assert est.stderr > 0
    assert abs(est.value - float(dense.trace())) < 4 * est.stderr
    # the SE is the right size: for Rademacher probes Var = 2 Σ_{i≠j} H_ij², Gaussian 2‖H‖_F²
    off = dense - torch.diag(torch.diagonal(dense))
    var = 2 * (off.pow(2).sum() if distribution == "rademacher" else dense.pow(2).sum())
    assert 0.8 < est.stderr / float((var / 400).sqrt()) < 1.2   # SE of an SE ~ 1/sqrt(2*400)


def test_spectral_density_integrates_to_one_and_finds_the_spectrum(small):
    model, data, dense = small
    lam = np.linalg.eigvalsh(dense.numpy())
    sd = cv.spectral_density(cv.hessian_operator(model, data), steps=75, probes=3,
                             generator=gen(4))
    assert abs(float(torch.trapezoid(sd.density, sd.grid)) - 1) < 1e-3
    assert abs(float(sd.nodes.max()) - lam.max()) < 1e-8 * lam.max()
    # each probe's weights sum to 1 and its first moment is v'Hv for a unit v
    assert torch.allclose(sd.weights.sum(1), torch.ones(3, dtype=torch.float64))


# ------------------------------------------------------------------------------ covariance

def test_covariance_factor_matches_dense(small):
    model, data, _ = small
    g = per_example_grads(model, data)
    centred = g - g.mean(0)
    dense = centred.T @ centred / 40
    cov = cv.gradient_covariance(model, data)
    assert cov.shape == (75, 75) and cov.rank_bound == 40
    assert torch.allclose(cov.to_dense(), dense, atol=1e-12)
    v = torch.randn(75, 2, dtype=torch.float64, generator=gen())
    assert torch.allclose(cov @ v, dense @ v, atol=1e-12)
    assert abs(cov.trace() - float(dense.trace())) < 1e-12
    assert torch.allclose(cov.diagonal(), torch.diagonal(dense), atol=1e-12)
    lam, vec = torch.linalg.eigh(dense)
    top = cov.eigenpairs(4)
    assert torch.allclose(top.values, lam.flip(0)[:4], atol=1e-12)
    assert torch.all((top.vectors * vec.flip(1)[:, :4]).sum(0).abs() > 1 - 1e-8)
    unbiased = cv.gradient_covariance(model, data, ddof=1)
    assert torch.allclose(unbiased.to_dense(), dense * 40 / 39, atol=1e-12)


def test_exact_minibatch_covariance_by_enumeration():
    torch.manual_seed(2)
    model = MLP(3, 4, 2, 2, activation="tanh").double()
    data = SimpleNamespace(x=torch.randn(6, 3, dtype=torch.float64), y=torch.randint(0, 2, (6,)))
    g = per_example_grads(model, data)
    means = torch.stack([g[list(s)].mean(0) for s in itertools.combinations(range(6), 2)])
    c = means - means.mean(0)
    exact = c.T @ c / len(means)   # minibatches of 2 drawn without replacement, all 15 equally
    cov = cv.gradient_covariance(model, data, batch_size=2)
    assert cov.batch_size == 2
    assert torch.allclose(cov.to_dense(), exact, atol=1e-12)
    sampled = cv.gradient_covariance(model, data, batch_size=2, method="sampled", ddof=1,
                                     generator=gen())
    assert sampled.rank_bound == 3 and sampled.batch_size == 2


# ------------------------------------------------------------------------------ Tr(HΣ), â

def test_indicator_against_dense(small):
    model, data, hd = small
    h = cv.hessian_operator(model, data)
    cov = cv.gradient_covariance(model, data)
    sd = cov.to_dense()
    ind = cv.noise_indicator(h, cov)
    assert abs(ind.trace_h_sigma - float(torch.trace(hd @ sd))) < 1e-10
    assert ind.stderr == 0 and ind.trace_h_stderr == 0
    iso = float(hd.trace()) * float(sd.trace()) / 75
    assert abs(ind.isotropic - iso) < 1e-10 and abs(ind.ratio - ind.trace_h_sigma / iso) < 1e-8
    mc = cv.noise_indicator(h, cov, method="hutchinson", samples=400, generator=gen(5))
    assert mc.stderr > 0
    assert abs(mc.trace_h_sigma - ind.trace_h_sigma) < 4 * mc.stderr
    # Tr H estimated by Hutchinson when passed as an estimate
    th = cv.hutchinson_trace(h, 50, generator=gen(6))
    assert cv.noise_indicator(h, cov, trace_h=th).trace_h == th.value


def test_projection_coefficient_against_definition(small):
    model, data, hd = small
    h = cv.hessian_operator(model, data)
    cov = cv.gradient_covariance(model, data)
    lam, vec = torch.linalg.eigh(hd)
    u1 = vec[:, -1]
    want = float(u1 @ cov.to_dense() @ u1) * float(hd.trace()) / (float(lam[-1]) * cov.trace())
    assert abs(cv.projection_coefficient(h, cov, generator=gen()) - want) < 1e-6 * abs(want)
    top = cv.lanczos(h, 1, tol=1e-12, generator=gen())
    assert abs(cv.projection_coefficient(h, cov, top=top) - want) < 1e-9 * abs(want)
    # isotropic Σ gives â = Tr H / (D λ₁); Σ* = Tr Σ · u₁u₁ᵀ (the optimum) gives Tr H / λ₁
    iso = cv.GradientCovariance(torch.eye(75, dtype=torch.float64), 0.3, torch.zeros(75))
    ratio = float(hd.trace()) / float(lam[-1])
    assert abs(cv.projection_coefficient(h, iso, top=top) - ratio / 75) < 1e-9 * ratio
    star = cv.GradientCovariance(u1[None], 2.0, torch.zeros(75))
    assert abs(cv.projection_coefficient(h, star, top=top) - ratio) < 1e-9 * ratio


# ------------------------------------------------------------------------------ sharpness

def test_expected_sharpness_on_a_quadratic():
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 2).double()                      # mse is quadratic in θ
    data = SimpleNamespace(x=torch.randn(50, 4, dtype=torch.float64),
                           y=torch.randn(50, 2, dtype=torch.float64))
    tr_h = float(cv.dense_hessian(model, data, "mse").trace())
    before = [p.detach().clone() for p in model.parameters()]
    se = {}
    for antithetic in (True, False):
        # n = 2000 draws; the estimate is checked against the truth δ²/2 Tr H to 4 SE
        est = cv.expected_sharpness(model, data, delta=0.05, samples=2000, loss="mse",
                                    antithetic=antithetic, generator=gen(7))
        assert abs(est.value - 0.5 * 0.05 ** 2 * tr_h) < 4 * est.stderr
        se[antithetic] = est.stderr
    # away from a minimum the linear term gᵀν dominates plain Monte Carlo; ±ν cancels it
    assert se[True] < 0.1 * se[False] and se[True] < 0.05 * 0.5 * 0.05 ** 2 * tr_h
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))

    calls = []

    def failing(out, target, reduction="mean"):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("boom")
        return F.mse_loss(out, target)

    with pytest.raises(RuntimeError, match="boom"):
        cv.expected_sharpness(model, data, 0.1, 10, loss=failing, generator=gen())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


# ------------------------------------------------------------------------------ errors

def test_bad_arguments_raise_clear_errors(small):
    model, data, _ = small
    h = cv.hessian_operator(model, data)
    cov = cv.gradient_covariance(model, data)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 75\], got 0"):
        cv.lanczos(h, 0)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 75\], got 76"):
        cv.lanczos(h, 76)
    with pytest.raises(TypeError, match="k must be an integer"):
        cv.lanczos(h, 2.0)
    with pytest.raises(ValueError, match="which must be one of"):
        cv.lanczos(h, 2, which="SM")
    with pytest.raises(ValueError, match="tol must be"):
        cv.lanczos(h, 2, tol=0)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 40\\]"):
        cov.eigenpairs(41)
    with pytest.raises(ValueError, match="delta must be a finite number > 0, got 0"):
        cv.expected_sharpness(model, data, delta=0)
    with pytest.raises(ValueError, match="delta must be"):
        cv.expected_sharpness(model, data, delta=float("nan"))
    with pytest.raises(TypeError, match="delta must be"):
        cv.expected_sharpness(model, data, delta="0.1")
    with pytest.raises(ValueError, match="samples must be an integer >= 2, got 1"):
        cv.hutchinson_trace(h, 1)
    with pytest.raises(TypeError, match="samples must be an integer"):
        cv.expected_sharpness(model, data, 0.1, samples=10.0)
    with pytest.raises(ValueError, match="samples must be an integer >= 2"):
        cv.noise_indicator(h, cov, method="hutchinson", samples=0)
    with pytest.raises(ValueError, match="method must be one of"):
        cv.noise_indicator(h, cov, method="dense")
    with pytest.raises(ValueError, match="batch_size must be an integer in \\[1, 40\\]"):
        cv.gradient_covariance(model, data, batch_size=41)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        cv.hutchinson_trace(h, 10, generator=0)
    with pytest.raises(TypeError, match="data must have tensors x and y"):
        cv.hessian_operator(model, (data.x, data.y))
    with pytest.raises(ValueError, match="loss must be one of"):
        cv.hessian_operator(model, data, loss="l1")
    with pytest.raises(ValueError, match="refusing to form a dense"):
        cv.dense_hessian(model, data, max_dim=10)


def test_seeded_estimates_repeat(small):
    model, data, _ = small
    h = cv.hessian_operator(model, data)
    a = cv.hutchinson_trace(h, 20, generator=gen(9))
    b = cv.hutchinson_trace(h, 20, generator=gen(9))
    assert a == b
    e1 = cv.lanczos(h, 3, generator=gen(1))
    e2 = cv.lanczos(h, 3, generator=gen(1))
    assert torch.equal(e1.values, e2.values)
