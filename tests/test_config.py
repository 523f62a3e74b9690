import os

import numpy as np
import pytest
import torch

from gnilab import config


def test_pytest_runs_at_fast_scale():
    assert os.environ["GNILAB_SCALE"] == "fast"
    assert config.get_scale() == "fast"
    assert config.by_scale(fast=1, default=2, paper=3) == 1


def test_set_scale_overrides_and_resets():
    try:
        config.set_scale("paper")
        assert config.by_scale(1, 2, 3) == 3
    finally:
        config.set_scale(None)
    assert config.get_scale() == "fast"


def test_bad_scale_names_the_argument(monkeypatch):
    with pytest.raises(ValueError, match="scale"):
        config.set_scale("huge")
    monkeypatch.setenv("GNILAB_SCALE", "medium")
    with pytest.raises(ValueError, match="GNILAB_SCALE"):
        config.get_scale()


def test_same_seed_gives_identical_cpu_results():
    def draw():
        g = config.seed_everything(123)
        return (torch.randn(5), np.random.rand(3), torch.randn(4, generator=g))
    a, b = draw(), draw()
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_seed_must_be_a_non_negative_integer():
    with pytest.raises(ValueError, match="seed"):
        config.seed_everything(-1)


@pytest.mark.parametrize("seed", [1.5, "0", True])
def test_seed_of_another_type_is_a_type_error(seed):
    with pytest.raises(TypeError, match="seed"):
        config.seed_everything(seed)


def test_device_follows_inputs_then_default():
    t = torch.zeros(2, dtype=torch.float64)
    assert config.resolve_device(None, t) == t.device
    assert config.resolve_dtype(None, t) == torch.float64
    assert config.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert config.get_device().type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA"):
        config.get_device("cuda")


def test_base_seed_from_the_environment_and_set_seed(monkeypatch):
    monkeypatch.delenv("GNILAB_SEED", raising=False)
    assert config.get_seed() == 0
    assert [config.derive_seed(k) for k in (0, 1, 99)] == [0, 1, 99]   # base 0: the book's seeds
    assert config.subset_seed(3) is None                                  # first examples at base 0
    monkeypatch.setenv("GNILAB_SEED", "2")
    assert config.get_seed() == 2
    assert config.derive_seed(5) == 2 * config.SEED_STRIDE + 5
    assert config.subset_seed(3) == config.derive_seed(3)
    try:
        config.set_seed(7)
        assert config.get_seed() == 7 and config.derive_seed(0) == 70_000
    finally:
        config.set_seed(None)
    assert config.get_seed() == 2


def test_seeds_of_different_bases_never_coincide():
    seen = {config.derive_seed(k, base=b) for b in range(4) for k in range(0, config.SEED_STRIDE, 7)}
    assert len(seen) == 4 * len(range(0, config.SEED_STRIDE, 7))


def test_bad_base_seeds_name_the_argument(monkeypatch):
    monkeypatch.setenv("GNILAB_SEED", "one")
    with pytest.raises(ValueError, match="GNILAB_SEED must be an integer >= 0, got 'one'"):
        config.get_seed()
    monkeypatch.setenv("GNILAB_SEED", "-3")
    with pytest.raises(ValueError, match="GNILAB_SEED"):
        config.get_seed()
    with pytest.raises(ValueError, match="seed"):
        config.set_seed(-1)
    with pytest.raises(ValueError, match="offset must be an integer in"):
        config.derive_seed(config.SEED_STRIDE)


def test_setup_seeds_with_the_base_seed(monkeypatch, capsys):
    monkeypatch.setenv("GNILAB_SEED", "1")
    config.setup(style=False)
    a = torch.rand(3)
    assert "seed=1" in capsys.readouterr().out
    torch.manual_seed(config.derive_seed(0, base=1))
    assert torch.equal(a, torch.rand(3))              # the same call repeated: exact
    try:
        config.setup(seed=0, style=False, verbose=False)
        assert config.get_seed() == 0
    finally:
        config.set_seed(None)
