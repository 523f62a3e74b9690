"""The shared argument checks (gnilab._common.checks) and the behaviour they give the public
functions: TypeError for a wrong type, ValueError for a wrong value, and a message that names
the argument, shows the value and states what is allowed."""
import math

import numpy as np
import pytest
import torch

from gnilab import config, data, levy, models, noise, train
from gnilab._common.checks import (check_bool, check_choice, check_int, check_real,
                                check_tensor_range)


# ------------------------------------------------------------------------------------------
# check_int
# ------------------------------------------------------------------------------------------
def test_check_int_accepts_python_and_numpy_integers():
    assert check_int("n", 3, low=1) == 3
    for v in (np.int8(3), np.int64(3), np.uint16(3)):
        out = check_int("n", v, low=1)
        assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [2.5, 3.0, True, False, np.bool_(True), "3", None,
                                   torch.tensor(3), [3]])
def test_check_int_rejects_other_types_with_type_error(value):
    with pytest.raises(TypeError, match="n_paths must be an integer >= 1, got ") as info:
        check_int("n_paths", value, low=1)
    assert type(value).__name__ in str(info.value)   # the type received is named


def test_check_int_range_is_a_value_error_with_the_full_message():
    with pytest.raises(ValueError) as info:
        check_int("n_paths", 0, low=1)
    assert str(info.value) == "n_paths must be an integer >= 1, got 0"
    with pytest.raises(ValueError, match=r"^basin must be an integer in \[0, 2\], got 3$"):
        check_int("basin", 3, low=0, high=2)
    with pytest.raises(ValueError, match=r"^k must be an integer <= 5, got 6$"):
        check_int("k", np.int64(6), high=5)


def test_check_int_bounds_are_inclusive():
    assert check_int("i", 0, low=0, high=2) == 0
    assert check_int("i", 2, low=0, high=2) == 2
    assert check_int("i", -10**30) == -10**30   # no bounds: any integer
    for bad in (-1, 3):
        with pytest.raises(ValueError):
            check_int("i", bad, low=0, high=2)


# ------------------------------------------------------------------------------------------
# check_real
# ------------------------------------------------------------------------------------------
def test_check_real_accepts_numbers_and_returns_float():
    for v in (1, 1.5, np.float32(1.5), np.float64(1.5), np.int64(1), torch.tensor(1.5)):
        out = check_real("x", v)
        assert type(out) is float and out == float(v)


@pytest.mark.parametrize("value", [True, np.bool_(False), "1.5", None, 1 + 0j, [1.5],
                                   torch.tensor([1.5]), torch.tensor(True)])
def test_check_real_rejects_non_numbers_with_type_error(value):
    with pytest.raises(TypeError, match=r"alpha must be a number in \(0, 2\], got "):
        check_real("alpha", value, low=0, high=2, low_open=True)


def test_check_real_message_names_argument_value_and_range():
    with pytest.raises(ValueError) as info:
        check_real("alpha", 2.5, low=0, high=2, low_open=True)
    assert str(info.value) == "alpha must be a number in (0, 2], got 2.5"
    with pytest.raises(ValueError, match=r"^eps must be a finite number >= 0, got -0\.1$"):
        check_real("eps", -0.1, low=0)
    with pytest.raises(ValueError, match=r"^m1 must be a finite number < 0, got 1$"):
        check_real("m1", 1, high=0, high_open=True)
    with pytest.raises(ValueError, match=r"^p must be a number in \[0, 1\), got 1\.0$"):
        check_real("p", np.float64(1.0), low=0, high=1, high_open=True)


@pytest.mark.parametrize("low_open,high_open,ok_low,ok_high", [
    (False, False, True, True), (True, False, False, True),
    (False, True, True, False), (True, True, False, False),
])
def test_check_real_open_and_closed_bounds_at_the_boundary(low_open, high_open, ok_low,
                                                            ok_high):
    for value, ok in ((-1.0, ok_low), (1.0, ok_high)):
        if ok:
            assert check_real("beta", value, -1, 1, low_open, high_open) == value
        else:
            with pytest.raises(ValueError, match="beta"):
                check_real("beta", value, -1, 1, low_open, high_open)
    assert check_real("beta", 0.0, -1, 1, low_open, high_open) == 0.0
    # just inside an open bound is fine
    assert check_real("beta", math.nextafter(-1.0, 0.0), -1, 1, True, True) > -1


def test_check_real_rejects_nan_always_and_inf_unless_allowed():
    for kw in (dict(), dict(low=0), dict(finite=False), dict(low=0, finite=False)):
        with pytest.raises(ValueError, match="got nan"):
            check_real("x", math.nan, **kw)
    with pytest.raises(ValueError, match=r"^x must be a finite number, got inf$"):
        check_real("x", math.inf)
    with pytest.raises(ValueError, match=r"^x must be a finite number > 0, got inf$"):
        check_real("x", np.float64(np.inf), low=0, low_open=True)
    assert check_real("x", math.inf, low=0, finite=False) == math.inf
    with pytest.raises(ValueError, match=r"in \[0, 1\], got -inf"):
        check_real("x", -math.inf, low=0, high=1, finite=False)


# ------------------------------------------------------------------------------------------
# check_bool, check_choice
# ------------------------------------------------------------------------------------------
def test_check_bool():
    assert check_bool("shuffle", True) is True and check_bool("shuffle", np.bool_(False)) is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="shuffle must be a bool, got"):
            check_bool("shuffle", bad)


def test_check_choice():
    assert check_choice("split", "test", ("train", "test")) == "test"
    with pytest.raises(ValueError) as info:
        check_choice("split", "val", ("train", "test"))
    assert str(info.value) == "split must be one of 'train', 'test', got 'val'"
    for bad in (1, None, torch.tensor(1.0)):   # not among the choices: a value error
        with pytest.raises(ValueError, match="split must be one of"):
            check_choice("split", bad, ("train", "test"))
    assert check_choice("activation", "relu", {"relu": None, "tanh": None}) == "relu"


# ------------------------------------------------------------------------------------------
# check_tensor_range
# ------------------------------------------------------------------------------------------
def test_check_tensor_range_passes_when_all_values_are_in_range():
    t = torch.tensor([[0.5, 2.0], [1.0, 1e-9]])
    assert check_tensor_range("alpha", t, low=0, high=2, low_open=True) is t
    assert check_tensor_range("beta", torch.tensor(-1.0), low=-1, high=1).shape == ()
    assert check_tensor_range("loc", torch.zeros(0)).numel() == 0   # empty: nothing to check
    out = check_tensor_range("scale", np.array([1.0, 2.0]), low=0, low_open=True)
    assert isinstance(out, torch.Tensor)


def test_check_tensor_range_shows_up_to_four_offending_values():
    t = torch.tensor([1.0, 2.5, 0.0, 1.5, -1.0, math.nan, 3.0])
    with pytest.raises(ValueError) as info:
        check_tensor_range("alpha", t, low=0, high=2, low_open=True)
    assert str(info.value) == "alpha must be in (0, 2], got 2.5, 0, -1, nan, ..."
    with pytest.raises(ValueError) as info:
        check_tensor_range("beta", torch.tensor([[0.0, 1.5], [-2.0, 1.0]]), low=-1, high=1)
    assert str(info.value) == "beta must be in [-1, 1], got 1.5, -2"
    with pytest.raises(ValueError, match=r"^alpha must be in \(0, 2\], got 2\.5$"):
        check_tensor_range("alpha", torch.tensor(2.5), low=0, high=2, low_open=True)


def test_check_tensor_range_finite_wording_and_infinities():
    with pytest.raises(ValueError, match=r"^scale must be finite and > 0, got inf, -1$"):
        check_tensor_range("scale", torch.tensor([1.0, math.inf, -1.0]), low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^loc must be finite, got -inf$"):
        check_tensor_range("loc", torch.tensor([0.0, -math.inf]))
    assert check_tensor_range("x", torch.tensor([math.inf]), low=0, finite=False).numel() == 1
    with pytest.raises(ValueError, match=r"^x must be non-NaN, got nan$"):
        check_tensor_range("x", torch.tensor([math.nan]), finite=False)


def test_check_tensor_range_bounds_at_the_boundary():
    edge = torch.tensor([0.0, 2.0])
    assert check_tensor_range("a", edge, low=0, high=2) is edge
    with pytest.raises(ValueError, match=r"^a must be in \(0, 2\], got 0$"):
        check_tensor_range("a", edge, low=0, high=2, low_open=True)
    with pytest.raises(ValueError, match=r"^a must be in \[0, 2\), got 2$"):
        check_tensor_range("a", edge, low=0, high=2, high_open=True)


def test_check_tensor_range_rejects_complex_and_bool_tensors():
    for t in (torch.tensor([1 + 1j]), torch.tensor([True])):
        with pytest.raises(TypeError, match="alpha must be a real tensor"):
            check_tensor_range("alpha", t, low=0, high=2, low_open=True)


def test_check_tensor_range_reimplements_stable_validate_messages():
    """The four checks gnilab.stable._validate makes, with its message wording."""
    alpha, beta = torch.tensor([1.5, 2.5]), torch.tensor([0.0, -1.5])
    scale, loc = torch.tensor([1.0, 0.0]), torch.tensor([math.inf])
    cases = (("alpha", alpha, dict(low=0, high=2, low_open=True), "alpha must be in (0, 2], got 2.5"),
             ("beta", beta, dict(low=-1, high=1), "beta must be in [-1, 1], got -1.5"),
             ("scale", scale, dict(low=0, low_open=True), "scale must be finite and > 0, got 0"),
             ("loc", loc, dict(), "loc must be finite, got inf"))
    for name, t, kw, message in cases:
        with pytest.raises(ValueError) as info:
            check_tensor_range(name, t, **kw)
        assert str(info.value) == message


# ------------------------------------------------------------------------------------------
# the public functions share the rule
# ------------------------------------------------------------------------------------------
def _simulate(**kw):
    args = dict(alpha=1.5, eps=0.1, dt=0.01, steps=5, n_paths=4, w0=-1.0, progress=False)
    args.update(kw)
    return levy.simulate(levy.Quartic(), **args)


def test_levy_simulate_type_and_value_errors():
    with pytest.raises(TypeError, match=r"n_paths must be an integer >= 1, got 2\.5"):
        _simulate(n_paths=2.5)
    with pytest.raises(ValueError, match=r"^n_paths must be an integer >= 1, got 0$"):
        _simulate(n_paths=0)
    with pytest.raises(TypeError, match="steps must be an integer"):
        _simulate(steps=True)
    with pytest.raises(TypeError, match=r"alpha must be a number in \(0, 2\]"):
        _simulate(alpha="1.5")
    with pytest.raises(ValueError, match=r"^alpha must be a number in \(0, 2\], got 2\.5$"):
        _simulate(alpha=2.5)
    with pytest.raises(ValueError, match=r"^eps must be a finite number >= 0, got nan$"):
        _simulate(eps=math.nan)
    with pytest.raises(ValueError, match=r"^dt must be a finite number > 0, got inf$"):
        _simulate(dt=math.inf)
    with pytest.raises(TypeError, match="snapshots entry must be an integer"):
        _simulate(snapshots=[1.5])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        _simulate(generator="seed")
    assert _simulate(n_paths=np.int64(4), steps=np.int32(5)).exit_times.shape == (4,)


def test_levy_theory_functions_share_the_rule():
    with pytest.raises(ValueError, match=r"^alpha must be a number in \(0, 2\), got 2\.0$"):
        levy.transition_rates((-1.0, 1.0), (0.0,), 2.0)
    with pytest.raises(TypeError, match="basin must be an integer"):
        levy.mean_exit_time((-1.0, 1.0), (0.0,), 1.5, 0.1, basin=0.0)
    with pytest.raises(ValueError, match=r"^basin must be an integer in \[0, 1\], got 2$"):
        levy.mean_exit_time((-1.0, 1.0), (0.0,), 1.5, 0.1, basin=2)
    with pytest.raises(ValueError, match="curvature_max must be a nonzero"):
        levy.kramers_exit_time(0.25, 2.0, 0.0, 0.1)
    with pytest.raises(TypeError, match="depth1 must be a finite number > 0"):
        levy.DoubleWell(-1.0, 2.0, depth1="deep")
    with pytest.raises(ValueError, match=r"^m2 must be a finite number > 0, got -2\.0$"):
        levy.DoubleWell(-1.0, -2.0)


def test_data_functions_share_the_rule():
    with pytest.raises(TypeError, match=r"n must be an integer >= 1, got 2\.5"):
        data.make_separable_2d(2.5)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        data.make_separable_2d(0)
    with pytest.raises(TypeError, match="theta must be a finite number"):
        data.make_rotated_gaussian_2d(10, theta="pi")
    with pytest.raises(ValueError, match=r"^theta must be a finite number, got inf$"):
        data.make_rotated_gaussian_2d(10, theta=math.inf)
    with pytest.raises(TypeError, match=r"stds\[0\] must be a finite number > 0"):
        data.make_rotated_gaussian_2d(10, stds=("a", 1.0))
    with pytest.raises(ValueError, match="stds must be a pair"):
        data.make_rotated_gaussian_2d(10, stds=(1.0, 1.0, 1.0))
    with pytest.raises(TypeError, match="noise_std must be a finite number >= 0"):
        data.make_linear_regression(10, 2, noise_std=None)
    with pytest.raises(TypeError, match="k must be an integer"):
        data.corrupt_labels(torch.arange(10) % 2, 2.0, 2)
    with pytest.raises(TypeError, match="exclude_true must be a bool"):
        data.corrupt_labels(torch.arange(10) % 2, 2, 2, exclude_true=1)
    with pytest.raises(TypeError, match="seed must be an integer >= 0"):
        data.load_mnist1d(seed=1.0)
    with pytest.raises(ValueError, match=r"^num_samples must be an integer >= 10, got 5$"):
        data.load_mnist1d(num_samples=5)
    with pytest.raises(TypeError, match="limit must be an integer >= 1"):
        data.load_mnist("train", limit=10.0)
    ds = data.make_separable_2d(10, generator=torch.Generator().manual_seed(0), device="cpu")
    with pytest.raises(TypeError, match="shuffle must be a bool"):
        ds.batches(2, shuffle=1)
    assert [len(b) for b in ds.batches(np.int64(5), shuffle=False)] == [5, 5]


def test_models_train_noise_config_share_the_rule():
    with pytest.raises(TypeError, match="depth must be an integer >= 1"):
        models.MLP(3, 4, "2", 2)
    with pytest.raises(ValueError, match=r"^num_classes must be an integer >= 1, got 0$"):
        models.ConvSmall(num_classes=0)
    with pytest.raises(ValueError, match=r"^init must be a finite number > 0, got nan$"):
        models.MLP(3, 4, 2, 2, init=math.nan)
    with pytest.raises(ValueError, match="activation must be one of 'relu', 'tanh'"):
        models.MLP(3, 4, 2, 2, activation="swish")
    with pytest.raises(TypeError, match="Callback.every must be an integer >= 1"):
        train.Callback(1.0, lambda step, model: None)
    with pytest.raises(TypeError, match="start must be an integer >= 0"):
        noise.probe(None, 10, every=5, start=0.5)
    with pytest.raises(ValueError, match=r"^start must be an integer >= 0, got -1$"):
        noise.probe(None, 10, every=5, start=-1)
    with pytest.raises(ValueError, match="scale must be one of 'fast', 'default', 'paper'"):
        config.set_scale("huge")


def test_check_generator():
    import torch
    from gnilab._common.checks import check_generator
    g = torch.Generator()
    assert check_generator("generator", None) is None
    assert check_generator("generator", g) is g
    s = check_generator("generator", 3, seeds=True)
    assert isinstance(s, torch.Generator) and s.initial_seed() == 3
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        check_generator("generator", 3)
    with pytest.raises(TypeError, match="an int seed"):
        check_generator("generator", True, seeds=True)
    with pytest.raises(TypeError, match="rng must be"):
        check_generator("rng", "seed")


# ---------------------------------------------------------------------------------------------
# non-finite input to the analysis entry points: a clear ValueError, never a silent NaN
# ---------------------------------------------------------------------------------------------

def _nan_model_and_data():
    import torch
    from gnilab import data, models
    torch.manual_seed(0)
    model = models.MLP(4, 8, 2, 3)
    ds = data.ArrayDataset(torch.randn(12, 4), torch.randint(0, 3, (12,)), "toy")
    return model, ds


def _poison(model):
    import torch
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    return model


def _entry_points():
    import torch
    from gnilab import curvature, msgd, nin, noise

    def nin_net(model):
        return nin.NoiseInjection(model, ["1"], 0.1, generator=0)

    return {
        "hessian_operator": lambda m, d: curvature.hessian_operator(m, d),
        "dense_hessian": lambda m, d: curvature.dense_hessian(m, d),
        "gradient_covariance": lambda m, d: curvature.gradient_covariance(m, d),
        "expected_sharpness": lambda m, d: curvature.expected_sharpness(m, d, 0.01, 2),
        "gradient_noise": lambda m, d: noise.gradient_noise(m, d, 3),
        "gaussian_noise_by_covariance": lambda m, d: msgd.gaussian_noise_by_covariance(m, d, b=3),
        "local_hessian": lambda m, d: nin.local_hessian(nin_net(m), d),
        "local_curvature": lambda m, d: nin.local_curvature(nin_net(m), d),
    }


@pytest.mark.parametrize("entry", list(_entry_points()))
def test_nan_parameters_are_a_clear_error(entry):
    model, ds = _nan_model_and_data()
    fn = _entry_points()[entry]
    fn(model, ds)                                   # finite: runs
    with pytest.raises(ValueError, match=r"finite parameters, got NaN or inf in .*1\.weight"):
        fn(_poison(model), ds)


@pytest.mark.parametrize("entry", ["hessian_operator", "gradient_covariance", "gradient_noise",
                                   "local_hessian"])
def test_non_finite_inputs_are_a_clear_error(entry):
    import torch
    from gnilab import data
    model, ds = _nan_model_and_data()
    x = ds.x.clone()
    x[3, 1] = float("inf")
    with pytest.raises(ValueError, match=r"data\.x must be finite, got inf"):
        _entry_points()[entry](model, data.ArrayDataset(x, ds.y, "toy"))


def test_msgd_weights_theta_and_gni_inputs_must_be_finite():
    import torch
    from gnilab import gni, models, msgd
    model, ds = _nan_model_and_data()
    obj = msgd.msgd_objective("sgd", 12, b=3)
    w = torch.full((12,), 1 / 12)
    obj.weighted_loss(model, ds.x, ds.y, w)
    w[5] = float("nan")
    with pytest.raises(ValueError, match=r"^w must be finite, got nan$"):
        obj.weighted_loss(model, ds.x, ds.y, w)
    x = torch.randn(20, 3, dtype=torch.float64)
    losses = msgd.LinearLosses(c=torch.ones(20, dtype=torch.float64), a=x)
    theta = torch.zeros(3, dtype=torch.float64)
    msgd.local_complexity("gaussian", losses, theta, 0.1, draws=4, generator=0)
    with pytest.raises(ValueError, match=r"^theta must be finite, got nan, nan, nan$"):
        msgd.local_complexity("gaussian", losses, theta.fill_(float("nan")), 0.1, draws=4)
    net = gni.GaussianNoiseInjection(models.MLP(1, 8, 3, 1), 0.1, "additive", generator=0)
    xs, ys = torch.randn(10, 1), torch.randn(10, 1)
    gni.implicit_effect(net, xs, ys, copies=2)
    with pytest.raises(ValueError, match=r"^x must be finite"):
        gni.implicit_effect(net, xs.clone().fill_(float("nan")), ys, copies=2)
    _poison(net.model)
    with pytest.raises(ValueError, match=r"net must have finite parameters"):
        gni.implicit_effect(net, xs, ys, copies=2)
