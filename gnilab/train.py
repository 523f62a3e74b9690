"""Training loops: full-batch GD and minibatch SGD with histories, callbacks and divergence
handling.

A run returns a :class:`TrainResult` whose ``history`` is a pandas DataFrame with one row per
evaluation (columns ``step``, ``loss``, ``accuracy``, ``test_loss``, ``test_accuracy``,
``batch_loss``, ``lr``) and whose ``records`` collects what the callbacks returned (one row per
call, with a ``step`` column). A NaN/inf loss stops the run: ``diverged`` is set, the step is
recorded and a warning is issued. Nothing raises.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._common.checks import check_choice, check_int, check_real, finite_parameters

__all__ = ["LOSSES", "get_loss", "evaluate", "Callback", "TrainResult", "train"]


def _mse(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-example squared error ``‖f(x_i) − y_i‖²`` summed over outputs (no ½), then reduced."""
    per_example = (output - target.reshape(output.shape)).pow(2).reshape(output.shape[0], -1).sum(1)
    return _reduce(per_example, reduction)


def _linear_hinge(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """One-vs-all linear hinge of Şimşekli et al. (2019): targets ±1 per class,
    ``mean_c max(0, 1 − y_c f_c)`` per example."""
    signs = -torch.ones_like(output)
    signs.scatter_(1, target.view(-1, 1), 1.0)
    per_example = torch.clamp(1.0 - signs * output, min=0).mean(1)
    return _reduce(per_example, reduction)


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    return per_example.mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": _mse,
    "hinge": _linear_hinge,
}


def get_loss(loss: Union[str, Callable]) -> Callable[..., torch.Tensor]:
    """A loss ``fn(output, target, reduction="mean"|"sum"|"none")`` from its name or itself.

    Parameters
    ----------
    loss : str or callable
        A key of :data:`LOSSES` (``"cross_entropy"``, ``"mse"``, ``"hinge"``), or a callable
        with that signature, which is returned unchanged.

    Returns
    -------
    callable
        The loss function ``fn(output, target, reduction="mean")``.
    """
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
    return LOSSES[loss]


def _is_classification(y: torch.Tensor) -> bool:
    return not y.is_floating_point()


@torch.no_grad()
def evaluate(model: nn.Module, data, loss: Union[str, Callable] = "cross_entropy",
             batch_size: int = 4096) -> dict:
    """Mean loss and accuracy (NaN for regression) of ``model`` on ``data`` (an object with
    tensors ``x`` and ``y``), in chunks of ``batch_size`` to bound memory.

    The model is evaluated in ``eval()`` mode without gradients and put back in its previous
    mode afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        The model to evaluate.
    data : object with tensors ``x`` and ``y``
        At least one example, e.g. a :class:`gnilab.data.ArrayDataset`. Integer targets ``y``
        mean classification (accuracy is measured), floating targets regression.
    loss : str or callable, optional
        Loss name or function, as for :func:`get_loss` (default ``"cross_entropy"``).
    batch_size : int, optional
        Number of examples per forward pass (default 4096).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``: the mean per-example loss and the fraction of
        correctly classified examples (NaN for regression targets).
    """
    loss_fn = get_loss(loss)
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, len(data.y)
    if n == 0:
        raise ValueError("data must hold at least one example")
    for start in range(0, n, batch_size):
        xb, yb = data.x[start:start + batch_size], data.y[start:start + batch_size]
        out = model(xb)
        total += float(loss_fn(out, yb, reduction="sum"))
        if _is_classification(yb):
            correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    acc = correct / n if _is_classification(data.y) else float("nan")
    return {"loss": total / n, "accuracy": acc}


@dataclass(frozen=True)
class Callback:
    """Call ``fn(step, model)`` at step 0 and every ``every`` steps; a returned dict becomes a
    row of :attr:`TrainResult.records` (``step`` is added).

    Parameters
    ----------
    every : int
        Call period in optimisation steps, ≥ 1.
    fn : callable
        ``fn(step, model) -> dict or None``; ``step`` is the number of updates done so far.
    """

    every: int
    fn: Callable[[int, nn.Module], Optional[dict]]

    def __post_init__(self):
        check_int("Callback.every", self.every, low=1)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per evaluation, columns ``step``, ``loss``, ``accuracy``, ``test_loss``,
        ``test_accuracy``, ``batch_loss``, ``lr`` (NaN where not measured).
    records : pandas.DataFrame
        The dicts returned by callbacks and ``grad_hook``, one row per call, with a ``step``
        column (empty when none returned anything).
    diverged : bool
        Whether the run stopped on a non-finite loss or non-finite parameters.
    diverged_step : int or None
        The step at which it diverged, ``None`` when it did not.
    steps : int
        Number of updates performed (the divergence step for a diverged run).
    model : torch.nn.Module
        The trained model (the same object that was passed in).
    """

    history: pd.DataFrame
    records: pd.DataFrame
    diverged: bool
    diverged_step: Optional[int]
    steps: int
    model: nn.Module = field(repr=False)

    def summary(self) -> str:
        """One line: how the run ended and the last recorded loss, plus the accuracy, test loss
        and test accuracy where they were measured (a regression run has no accuracy, a run
        without test data no test columns, and a diverged run no accuracy after the NaN: those are
        left out, not printed as ``nan``).

        Returns
        -------
        str
            The summary line.
        """
        last = self.history.iloc[-1]
        state = f"diverged at step {self.diverged_step}" if self.diverged else "finished"
        parts = [f"loss {last['loss']:.4g}"]
        for column in ("accuracy", "test_loss", "test_accuracy"):
            if math.isfinite(last[column]):
                parts.append(f"{column.replace('_', ' ')} {last[column]:.4g}")
        return f"{state} after {self.steps} steps: " + ", ".join(parts)


def _step_indices(n: int, batch_size: Optional[int], sampling: str, generator, device):
    """Endless iterator over minibatch index tensors (``None`` = full batch)."""
    if batch_size is None or batch_size >= n:
        while True:
            yield None
    if sampling == "independent":  # a fresh subset each step (Zhu et al., Wu et al.)
        while True:
            yield torch.randperm(n, generator=generator)[:batch_size].to(device)
    order = torch.arange(n) if sampling == "cycle" else None  # fixed order (Şimşekli's code)
    while True:
        perm = order if order is not None else torch.randperm(n, generator=generator)
        perm = perm.to(device)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start:start + batch_size]


def _make_optimizer(optimizer, params, lr, momentum, weight_decay):
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if callable(optimizer):
        return optimizer(params)
    raise ValueError(f"optimizer must be 'sgd' or a callable params -> torch optimizer, got {optimizer!r}")


def train(model: nn.Module, data, *, steps: int, lr: float, batch_size: Optional[int] = None,
          loss: Union[str, Callable] = "cross_entropy", optimizer: Union[str, Callable] = "sgd",
          momentum: float = 0.0, weight_decay: float = 0.0, sampling: str = "shuffle",
          test_data=None, eval_every: Optional[int] = None, eval_data=None,
          callbacks: Iterable[Callback] = (), lr_schedule: Optional[Callable[[int], float]] = None,
          stop_at_accuracy: Optional[float] = None, generator: Optional[torch.Generator] = None,
          progress: bool = True, objective: Optional[Callable] = None,
          grad_hook: Optional[Callable] = None) -> TrainResult:
    """Train ``model`` on ``data`` with GD (``batch_size=None``) or minibatch SGD.

    Update (plain SGD, momentum 0): ``w ← w − η ∇L_B(w)`` with ``L_B`` the mean loss of the
    minibatch ``B`` (Şimşekli et al. 2019, Eq. 2).

    Parameters
    ----------
    model : nn.Module
        Trained in place (and returned in the result).
    data, test_data, eval_data : objects with tensors ``x`` and ``y`` (e.g. ``gnilab.data.ArrayDataset``)
        Training data; optional test data; the data the training loss/accuracy of the history is
        measured on (default: ``data``).
    steps : int
        Number of parameter updates.
    lr : float
        Step size η > 0 (multiplied by ``lr_schedule(step)`` when given).
    batch_size : int or None
        Minibatch size b; ``None`` (or ≥ n) is full-batch gradient descent.
    loss : str or callable
        Loss name or function, as for :func:`get_loss` (default ``"cross_entropy"``).
    optimizer : str or callable
        ``"sgd"`` (:class:`torch.optim.SGD` with ``lr``, ``momentum`` and ``weight_decay``), or
        a callable ``params -> torch.optim.Optimizer``; its learning rate is overwritten each
        step by ``lr`` times the schedule.
    momentum : float
        Momentum of ``"sgd"`` (default 0).
    weight_decay : float
        L2 weight decay of ``"sgd"`` (default 0).
    sampling : {"shuffle", "independent", "cycle"}
        ``shuffle``: a new random partition each epoch; ``independent``: a fresh random subset of
        size b each step; ``cycle``: the data in a fixed order (as Şimşekli et al.'s code does).
    eval_every : int, optional
        Record a history row every this many steps (default: about 50 rows), plus steps 0 and last.
    callbacks : iterable of :class:`Callback`
        E.g. gradient-noise statistics every k steps (``(every, fn)`` tuples are accepted).
    lr_schedule : callable, optional
        ``lr_schedule(k) -> float``, a factor multiplying ``lr`` for update ``k`` (0-based).
    stop_at_accuracy : float, optional
        Stop once the recorded training accuracy reaches this value (e.g. 1.0).
    generator : torch.Generator, optional
        Drives the minibatch sampling (CPU generator; the same seed gives the same run on CPU).
    progress : bool
        Show a tqdm bar (hidden automatically in non-interactive logs).
    objective : callable, optional
        ``objective(model, xb, yb) -> scalar tensor``, the quantity differentiated each step in
        place of ``loss(model(xb), yb)`` (e.g. the M-sample GNI objective of
        :mod:`gnilab.gni`). The history's ``loss`` columns stay ``loss`` on the evaluation data
        in ``eval()`` mode.
    grad_hook : callable, optional
        ``grad_hook(step, model) -> dict or None``, called after the backward pass and before
        the update (it may change the ``.grad`` of parameters); a returned dict becomes a row
        of :attr:`TrainResult.records` (``step`` is added).

    Returns
    -------
    TrainResult
        History, callback records, divergence flag and step, number of steps and the model.
    """
    n = len(data.y)
    steps = check_int("steps", steps, low=0)
    lr = check_real("lr", lr, low=0, low_open=True)
    if batch_size is not None:   # None: full batch
        batch_size = check_int("batch_size", batch_size, low=1)
    check_choice("sampling", sampling, ("shuffle", "independent", "cycle"))
    if eval_every is None:
        eval_every = max(1, steps // 50)
    eval_every = check_int("eval_every", eval_every, low=1)
    callbacks = [c if isinstance(c, Callback) else Callback(*c) for c in callbacks]
    for name, fn in (("objective", objective), ("grad_hook", grad_hook)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be None or a callable, got {type(fn).__name__}")
    loss_fn = get_loss(loss)
    eval_data = data if eval_data is None else eval_data
    opt = _make_optimizer(optimizer, model.parameters(), lr, momentum, weight_decay)
    batches = _step_indices(n, batch_size, sampling, generator, data.x.device)

    rows, records = [], []
    diverged_step: Optional[int] = None
    batch_loss = float("nan")

    def record(step: int, current_lr: float) -> bool:
        row = {"step": step, "batch_loss": batch_loss, "lr": current_lr}
        row.update(evaluate(model, eval_data, loss_fn))
        if test_data is not None:
            test = evaluate(model, test_data, loss_fn)
            row.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
        else:
            row.update(test_loss=float("nan"), test_accuracy=float("nan"))
        rows.append(row)
        return math.isfinite(row["loss"])

    def run_callbacks(step: int) -> bool:
        """Run the callbacks due at ``step``; False (and none run) when the parameters are no
        longer finite, which the caller records as a divergence (an analysis callback would
        raise on them)."""
        due = [cb for cb in callbacks if step % cb.every == 0]
        if due and not finite_parameters(model):
            return False
        for cb in due:
            out = cb.fn(step, model)
            if out is not None:
                records.append({"step": step, **out})
        return True

    model.train()
    if not record(0, lr) or not run_callbacks(0):
        diverged_step = 0
    bar = tqdm(range(1, steps + 1), disable=None if progress else True, desc="train", leave=False)
    step = 0
    for step in bar if diverged_step is None else ():
        idx = next(batches)
        xb, yb = (data.x, data.y) if idx is None else (data.x[idx], data.y[idx])
        current_lr = lr * (lr_schedule(step - 1) if lr_schedule is not None else 1.0)
        for group in opt.param_groups:
            group["lr"] = current_lr
        opt.zero_grad(set_to_none=True)
        batch = loss_fn(model(xb), yb) if objective is None else objective(model, xb, yb)
        batch_loss = float(batch.detach())
        if not math.isfinite(batch_loss):
            diverged_step = step
            rows.append({"step": step, "batch_loss": batch_loss, "lr": current_lr,
                         "loss": float("nan"), "accuracy": float("nan"),
                         "test_loss": float("nan"), "test_accuracy": float("nan")})
            break
        batch.backward()
        if grad_hook is not None:
            out = grad_hook(step, model)
            if out is not None:
                records.append({"step": step, **out})
        opt.step()
        if step % eval_every == 0 or step == steps:
            if not record(step, current_lr) or not run_callbacks(step):
                diverged_step = step
                break
            bar.set_postfix(loss=f"{rows[-1]['loss']:.3g}", refresh=False)
            if stop_at_accuracy is not None and rows[-1]["accuracy"] >= stop_at_accuracy:
                break
        elif callbacks and not run_callbacks(step):
            diverged_step = step
            break
    bar.close()
    if diverged_step is not None:
        warnings.warn(f"training diverged (non-finite loss) at step {diverged_step}; "
                      "the run was stopped and marked diverged", RuntimeWarning, stacklevel=2)
    columns = ["step", "loss", "accuracy", "test_loss", "test_accuracy", "batch_loss", "lr"]
    history = pd.DataFrame(rows, columns=columns)
    return TrainResult(history=history, records=pd.DataFrame(records),
                       diverged=diverged_step is not None, diverged_step=diverged_step,
                       steps=step if diverged_step is None else diverged_step, model=model)
