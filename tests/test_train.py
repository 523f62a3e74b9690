import math

import pytest
import torch

from gnilab import data
from gnilab.models import MLP
from gnilab.train import Callback, evaluate, get_loss, train


@pytest.fixture(scope="module")
def digits():
    return data.load_digits(device="cpu")


def _fit(digits, seed=0, **kw):
    torch.manual_seed(seed)
    model = MLP(64, 32, 2, 10)
    args = dict(steps=200, lr=0.1, batch_size=32, eval_every=50, progress=False,
                generator=torch.Generator().manual_seed(seed))
    args.update(kw)
    return train(model, digits, **args)


def test_sgd_loss_decreases_on_real_digits(digits):
    result = _fit(digits)
    h = result.history
    assert not result.diverged
    assert list(h.columns[:5]) == ["step", "loss", "accuracy", "test_loss", "test_accuracy"]
    assert h.step.iloc[0] == 0 and h.step.iloc[-1] == 200
    # chance level is 10 % and log(10) = 2.30; 200 SGD steps take a 64-32-10 MLP far below both.
    assert h.loss.iloc[-1] < 0.5 * h.loss.iloc[0]
    assert h.accuracy.iloc[-1] > 0.85


def test_full_batch_gd_and_test_metrics(digits):
    train_set, test_set = digits.subset(slice(0, 1200)), digits.subset(slice(1200, None))
    result = _fit(train_set, batch_size=None, steps=100, lr=0.5, test_data=test_set)
    h = result.history
    assert h.test_loss.notna().all() and h.test_accuracy.iloc[-1] > 0.7
    assert h.loss.is_monotonic_decreasing or h.loss.iloc[-1] < h.loss.iloc[0]


def test_same_seed_same_run_on_cpu(digits):
    a, b = _fit(digits, seed=3), _fit(digits, seed=3)
    assert a.history.equals(b.history)


def test_divergence_is_detected_recorded_and_reported(digits):
    torch.manual_seed(0)
    model = MLP(64, 32, 2, 10)
    targets = torch.nn.functional.one_hot(digits.y, 10).float()
    regression = type(digits)(x=digits.x * 50, y=targets, name="digits-regression")
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = train(model, regression, steps=500, lr=10.0, batch_size=64, loss="mse",
                       progress=False, generator=torch.Generator().manual_seed(0))
    assert result.diverged
    assert 1 <= result.diverged_step < 500
    assert result.steps == result.diverged_step
    assert result.history.step.iloc[-1] == result.diverged_step
    assert math.isnan(result.history.loss.iloc[-1])
    assert "diverged" in result.summary()


def test_summary_prints_only_what_was_measured(digits):
    train_set, test_set = digits.subset(slice(0, 1200)), digits.subset(slice(1200, None))
    with_test = _fit(train_set, steps=20, test_data=test_set).summary()
    assert "nan" not in with_test
    for word in ("loss", "accuracy", "test loss", "test accuracy"):
        assert word in with_test
    no_test = _fit(digits, steps=20).summary()
    assert "nan" not in no_test and "accuracy" in no_test and "test" not in no_test
    x = digits.x[:256]
    regression = type(digits)(x=x, y=x[:, :1].clone(), name="digits-regression")
    torch.manual_seed(0)
    reg = train(MLP(64, 16, 1, 1), regression, steps=20, lr=0.01, batch_size=64, loss="mse",
                progress=False, generator=torch.Generator().manual_seed(0)).summary()
    assert reg.startswith("finished after 20 steps: loss ") and "accuracy" not in reg
    assert "nan" not in reg


def test_callbacks_are_called_every_k_steps(digits):
    calls = []

    def probe(step, model):
        calls.append(step)
        return {"weight_norm": float(sum(p.detach().norm() ** 2 for p in model.parameters()) ** 0.5)}

    result = _fit(digits, steps=40, callbacks=[Callback(10, probe)])
    assert calls == [0, 10, 20, 30, 40]
    assert list(result.records.step) == calls
    assert (result.records.weight_norm > 0).all()


def test_stop_at_accuracy(digits):
    result = _fit(digits, steps=2000, eval_every=20, stop_at_accuracy=0.9)
    assert result.steps < 2000 and result.history.accuracy.iloc[-1] >= 0.9


def test_losses():
    out = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    y = torch.tensor([0, 1])
    # linear hinge, targets +1 for the true class and -1 otherwise:
    # example 1: max(0, 1-2) = 0 and max(0, 1-1) = 0 -> 0; example 2: max(0, 1+0.5) = 1.5 and
    # max(0, 1-0.5) = 0.5 -> mean 1.0; over the batch (0 + 1.0) / 2 = 0.5
    assert torch.isclose(get_loss("hinge")(out, y), torch.tensor(0.5))
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # squared error summed over outputs, mean over examples, no 1/2: (1+1 + 0.25+0.25)/2
    assert torch.isclose(get_loss("mse")(out, target), torch.tensor(1.25))
    with pytest.raises(ValueError, match="loss"):
        get_loss("l7")


@pytest.mark.parametrize("kwargs,name", [
    (dict(steps=-1), "steps"), (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(batch_size=0), "batch_size"), (dict(sampling="random"), "sampling"),
    (dict(eval_every=0), "eval_every"),
])
def test_bad_arguments_are_named(digits, kwargs, name):
    with pytest.raises(ValueError, match=name):
        _fit(digits, **kwargs)


def test_evaluate_regression_has_nan_accuracy(digits):
    model = torch.nn.Linear(64, 1)
    reg = type(digits)(x=digits.x, y=digits.y.float().view(-1, 1), name="r")
    out = evaluate(model, reg, "mse")
    assert out["loss"] > 0 and math.isnan(out["accuracy"])


def test_objective_and_grad_hook(digits):
    """``objective`` replaces loss(model(x), y) as the differentiated quantity; ``grad_hook``
    sees the gradients before the update (zeroing them freezes the model) and its dicts are
    records."""
    model = MLP(64, 16, 2, 10)
    w0 = model[1].weight.detach().clone()
    seen = []

    def objective(m, xb, yb):
        seen.append(xb.shape[0])
        return get_loss("cross_entropy")(m(xb), yb)

    def freeze(step, m):
        for p in m.parameters():
            p.grad.zero_()
        return {"frozen": True}
    res = train(model, digits, steps=3, lr=0.1, batch_size=8, objective=objective,
                grad_hook=freeze, progress=False)
    assert seen == [8, 8, 8] and torch.equal(model[1].weight, w0)
    assert list(res.records["step"]) == [1, 2, 3] and res.records["frozen"].all()
    with pytest.raises(TypeError, match="objective"):
        train(model, digits, steps=1, lr=0.1, objective=3, progress=False)


def test_callbacks_never_see_non_finite_parameters(digits):
    """Parameters that became inf/NaN after a step (finite loss before it) stop the run as a
    divergence before any due callback runs: analysis callbacks raise on such parameters."""
    torch.manual_seed(0)
    model = MLP(64, 16, 2, 10)
    seen = []

    def poison(step, m):                             # a grad hook that wrecks one gradient
        if step == 3:
            m[1].weight.grad[0, 0] = float("inf")

    def probe(step, m):
        seen.append(step)
        assert all(bool(torch.isfinite(p).all()) for p in m.parameters())

    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(model, digits, steps=10, lr=0.1, batch_size=16, eval_every=5,
                    grad_hook=poison, callbacks=[Callback(1, probe)], progress=False,
                    generator=torch.Generator().manual_seed(0))
    assert res.diverged and res.diverged_step == 3 and seen == [0, 1, 2]
