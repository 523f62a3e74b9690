import pytest
import torch

from gnilab import data, noise
from gnilab.models import MLP


@pytest.fixture(scope="module")
def setup():
    digits = data.load_digits(device="cpu")
    torch.manual_seed(0)
    return MLP(64, 16, 2, 10), digits.subset(slice(0, 1000))


def test_noise_matrix_matches_a_direct_computation(setup):
    model, d = setup
    gn = noise.gradient_noise(model, d, batch_size=100)
    assert gn.noise.shape == (10, sum(p.numel() for p in model.parameters()))
    # the full gradient is the gradient of the mean loss over the 1000 covered examples
    loss = torch.nn.functional.cross_entropy(model(d.x), d.y)
    direct = noise.flat_grad(model, loss)
    assert torch.allclose(gn.full_gradient, direct, atol=1e-6)
    # the third minibatch gradient, recomputed by hand
    idx = slice(200, 300)
    g3 = noise.flat_grad(model, torch.nn.functional.cross_entropy(model(d.x[idx]), d.y[idx]))
    assert torch.allclose(gn.noise[2], g3 - direct, atol=1e-6)
    assert torch.allclose(gn.noise.sum(0), torch.zeros_like(direct), atol=1e-5)


def test_partition_leaves_out_the_remainder(setup):
    model, d = setup
    g = noise.minibatch_gradients(model, d.subset(slice(0, 250)), batch_size=100)
    assert g.shape[0] == 2
    with pytest.raises(ValueError, match="batch_size"):
        noise.minibatch_gradients(model, d, batch_size=0)


def test_moments_against_known_values():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    z = torch.randn(n, generator=g, dtype=torch.float64)
    # sampling std of the skewness is sqrt(6/n), of the excess kurtosis sqrt(24/n); allow 5 of them
    assert abs(noise.skewness(z)) < 5 * (6 / n) ** 0.5
    assert abs(noise.excess_kurtosis(z)) < 5 * (24 / n) ** 0.5
    e = torch.empty(n, dtype=torch.float64).exponential_(generator=g)
    # exponential law: skewness 2, excess kurtosis 6 (sampling error of the kurtosis is larger)
    assert abs(noise.skewness(e) - 2) < 0.1 and abs(noise.excess_kurtosis(e) - 6) < 1.0


def test_gaussian_counterpart_has_same_second_moment(setup):
    model, d = setup
    gn = noise.gradient_noise(model, d, batch_size=50)
    ref = gn.gaussian_counterpart(torch.Generator().manual_seed(1))
    assert ref.shape == gn.noise.shape
    ratio = ref.pow(2).mean() / gn.noise.pow(2).mean()
    assert abs(ratio.item() - 1) < 5 * (2 / ref.numel()) ** 0.5


def test_coordinate_kurtosis_removes_scale_mixing():
    g = torch.Generator().manual_seed(0)
    P, p = 200, 2000
    # Gaussian coordinates with wildly different scales: pooled kurtosis is large, per-coordinate
    # kurtosis is the Gaussian value -6/(P+1) up to its standard error ~ sqrt(24/P)/sqrt(p).
    scales = torch.logspace(-3, 1, p, dtype=torch.float64)
    u = torch.randn(P, p, generator=g, dtype=torch.float64) * scales
    assert noise.excess_kurtosis(u) > 10
    k = noise.coordinate_excess_kurtosis(u)
    assert k.shape == (p,)
    assert abs(k.mean().item() + 6 / (P + 1)) < 5 * (24 / P) ** 0.5 / p ** 0.5
    # a zero-variance column is dropped
    u[:, 0] = 0
    assert noise.coordinate_excess_kurtosis(u).shape == (p - 1,)
    with pytest.raises(ValueError, match="noise"):
        noise.coordinate_excess_kurtosis(torch.zeros(1, 3))


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_vmap_and_loop_methods_agree(setup, chunk_size):
    model, d = setup
    a = noise.minibatch_gradients(model, d, 64, method="loop")
    b = noise.minibatch_gradients(model, d, 64, method="vmap", chunk_size=chunk_size)
    assert a.shape == b.shape == (1000 // 64, sum(p.numel() for p in model.parameters()))
    assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="method"):
        noise.minibatch_gradients(model, d, 64, method="magic")


def test_noise_statistics_tail_index_and_zeros():
    from gnilab import stable
    g = torch.Generator().manual_seed(0)
    # 100 x 1009 SaS(1.5) entries (K = 100 900) with 9 exactly-zero columns: the zeros are
    # dropped, leaving K = 100 000 = 316 * 316 + 144 (no divisor near sqrt(K) other than the
    # rule's), and alpha-hat is within 0.05 of 1.5 (spread ~0.01-0.02 at K = 1e5, see
    # test_stable's estimator tests).
    u = stable.sample(1.5, 0.0, size=(100, 1009), generator=g, dtype=torch.float64)
    u[:, :9] = 0
    s = noise.noise_statistics(u)
    assert abs(s["alpha"] - 1.5) < 0.05
    assert abs(s["zero_fraction"] - 9 / 1009) < 1e-12
    # a prime number of non-zero entries (the K1 rule alone would give K1 = 1) still works
    v = u[:, 9:].clone()
    v[99, -9:] = 0  # 100 000 - 9 = 99 991 non-zero entries, a prime
    s = noise.noise_statistics(v)
    assert abs(s["alpha"] - 1.5) < 0.05
    with pytest.raises(ValueError, match="non-zero"):
        noise.noise_statistics(torch.zeros(4, 4))


def test_pooled_k1_rule():
    assert noise._pooled_k1(10_728_000) == 3000  # Şimşekli et al.'s example (MNIST FC, b=500)
    assert noise._pooled_k1(99_991) == 316       # prime: falls back to floor(sqrt(K))
