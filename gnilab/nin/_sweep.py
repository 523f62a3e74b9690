"""Training one copy of a network per noise level σ in a single batched computation."""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import train as _train
from .._common.checks import check_choice, check_int, check_real
from ._injection import NoiseInjection, _check_generator


def network_phase(niw_norm, diverged: bool = False, peak: Optional[float] = None,
                  growth: float = 1.3, blow_up: float = 10.0) -> str:
    r"""The phase of one network run with a NIN (paper §3's four, read off the NIW norm).

    The rules mirror :func:`gnilab.nin.toy.classify_phase` for a network whose NIW does not
    decay to zero (the directions the local Hessian does not see and the first-order random
    walk of Eq. (N3) leave a floor):

    * ``"divergent"``: the run diverged (its loss passed a bound or turned non-finite), or the
      NIW grew more than ``blow_up``-fold (a growing NIW kills the ReLU units it feeds before
      the loss blows up);
    * ``"catapult"``: otherwise, if the NIW rose above ``growth`` times its start on the way;
    * ``"decay"``: otherwise, if the NIW ended below half its start;
    * ``"decoupled"``: the rest.

    Parameters
    ----------
    niw_norm : sequence of float
        The NIW norm :math:`|\theta_t|` at the recorded steps, in step order (NaN after a
        divergence).
    diverged : bool, optional
        Whether the run diverged (default ``False``).
    peak : float, optional
        The largest NIW norm over the run divided by its start, when it was recorded more
        often than ``niw_norm`` (e.g. by a re-run of the first steps); default from
        ``niw_norm``.
    growth, blow_up : float, optional
        The catapult and divergence thresholds on the peak (defaults 1.3 and 10, both > 1,
        ``blow_up > growth``).

    Returns
    -------
    str
        One of :data:`gnilab.nin.PHASES`.
    """
    growth = check_real("growth", growth, low=1, low_open=True)
    blow_up = check_real("blow_up", blow_up, low=growth, low_open=True)
    n = np.asarray(niw_norm, dtype=float).reshape(-1)
    if n.size == 0 or not math.isfinite(n[0]) or n[0] <= 0:
        raise ValueError("niw_norm must start with a finite, positive NIW norm")
    finite = n[np.isfinite(n)]
    peak = float(finite.max() / n[0]) if peak is None else check_real("peak", peak, low=0)
    if diverged or peak > blow_up:
        return "divergent"
    if peak > growth:
        return "catapult"
    return "decay" if finite[-1] < n[0] / 2 else "decoupled"


# a sweep over sigma in one batched computation
# =============================================================================================


@dataclass
class SweepResult:
    """What :func:`train_sweep` returns.

    ``history``: one row per σ and recorded step, columns ``sigma``, ``step``, ``loss``,
    ``accuracy``, ``test_loss``, ``test_accuracy`` (clean, ``eval()`` mode), ``batch_loss``
    (with noise), ``niw_norm`` (all NIWs together; per layer ``niw_norm[<layer>]`` when there
    are several), ``diverged``; rows after a divergence hold NaN. ``diverged`` and
    ``diverged_step`` (−1: none) are numpy arrays over σ; ``params`` the final stacked
    parameters (``{name: [K, ...]}``, frozen at their last finite values for diverged runs).
    A sweep over σ maps the phases of paper §3 (decay, catapult, divergent) in a network,
    whose NIW decays as Eq. (N3) predicts.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per σ and recorded step, with the columns above.
    sigmas : numpy.ndarray
        The K noise standard deviations σ, float64, in the order given.
    diverged : numpy.ndarray
        Bool ``[K]``: whether each copy diverged.
    diverged_step : numpy.ndarray
        Int ``[K]``: the step at which each copy diverged (−1: none).
    steps : int
        Number of SGD steps asked for.
    params : dict of str to torch.Tensor
        The final parameters of the wrapped :class:`NoiseInjection` stacked over σ
        (``{name: [K, ...]}``, the NIWs under ``niws.<i>``).
    """

    history: pd.DataFrame
    sigmas: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    steps: int
    params: Dict[str, torch.Tensor]

    def final(self) -> pd.DataFrame:
        """The last recorded row of each σ that did not diverge, with ``diverged`` flags for
        all (NaN metrics for the diverged ones)."""
        last = self.history[self.history.step == self.steps].set_index("sigma")
        out = pd.DataFrame({"sigma": self.sigmas, "diverged": self.diverged,
                            "diverged_step": self.diverged_step})
        return out.join(last.drop(columns=["diverged", "step"]), on="sigma")


def train_sweep(model: nn.Module, data, sigmas, *, layers: Sequence[str], steps: int, lr: float,
                batch_size: Optional[int] = None, loss="cross_entropy", mode: str = "step",
                law: str = "gaussian", niw_std: Optional[float] = None,
                sampling: str = "shuffle", test_data=None, eval_every: Optional[int] = None,
                eval_data=None, bound: float = math.inf, generator=None,
                progress: bool = True) -> SweepResult:
    r"""Train one copy of ``model`` with a NIN per noise level σ, all in one batched computation.

    Every copy starts from ``model``'s weights and the same NIW initialisation, sees the same
    minibatches and the same standard noise draws :math:`\xi_i` (its NIN output is
    :math:`\sigma_k\xi_i`): common random numbers, so the sweep is a clean function of σ. A
    step is one ``torch.func.vmap`` of ``grad`` over the stacked parameters and plain SGD
    (:math:`w \leftarrow w - \eta\nabla L_B`). A copy whose batch loss turns non-finite or
    exceeds ``bound`` is marked diverged at that step and frozen; the others go on. It maps
    the phases of paper §3 in a network as a function of σ, the NIW decaying at the rate
    :math:`\eta\sigma^2\hat\theta^\top\bar H_z\hat\theta` of Eq. (N3).

    Parameters
    ----------
    model : nn.Module
        The network to wrap with a NIN; not modified (copied).
    data : dataset with ``x`` and ``y``
        The training set (also the default ``eval_data``).
    sigmas : sequence of float >= 0
        Standard deviations of the NIN output, one copy each.
    layers, mode, law, niw_std
        As in :class:`NoiseInjection` (the NIN layers, when the noise is re-drawn, its law and
        the NIWs' initial scale).
    steps, lr, batch_size, loss, sampling, test_data, progress
        As in :func:`gnilab.train.train`: number of steps (>= 0), step η (> 0), minibatch
        size (``None``: full batch), loss, minibatch sampling (``"shuffle"``,
        ``"independent"`` or ``"cycle"``), held-out set and progress bar.
    eval_every : int >= 1, optional
        Record the history every this many steps (and at the last); default
        ``max(1, steps // 50)``.
    eval_data : dataset, optional
        Where the clean ``loss`` and ``accuracy`` are measured (default: ``data``).
    bound : float
        A batch loss above it counts as a divergence (default: only non-finite ones).
    generator : torch.Generator or int, optional
        Minibatches, NIW initialisation and noise.

    Returns
    -------
    SweepResult
        The history over σ and steps, the divergence flags and the final stacked parameters.
        A ``RuntimeWarning`` lists the σ whose runs diverged.
    """
    from torch.func import functional_call, grad_and_value, vmap

    sig = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if sig.numel() == 0:
        raise ValueError("sigmas must hold at least one value")
    for s in sig.tolist():
        check_real("sigmas", s, low=0)
    steps = check_int("steps", steps, low=0)
    lr = check_real("lr", lr, low=0, low_open=True)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1)
    check_choice("sampling", sampling, ("shuffle", "independent", "cycle"))
    eval_every = max(1, steps // 50) if eval_every is None else eval_every
    eval_every = check_int("eval_every", eval_every, low=1)
    bound = check_real("bound", bound, low=0, low_open=True, finite=False)
    gen = _check_generator(generator)
    loss_fn = _train.get_loss(loss)
    eval_data = data if eval_data is None else eval_data

    net = NoiseInjection(copy.deepcopy(model), layers, 1.0, mode=mode, law=law,
                         n_samples=len(data.y), niw_std=niw_std, generator=gen)
    names = [k for k, _ in net.named_parameters()]
    k_runs = sig.numel()
    first = next(net.parameters())
    sig = sig.to(first.device, first.dtype)
    params = {k: p.detach().unsqueeze(0).repeat(k_runs, *([1] * p.dim())).contiguous()
              for k, p in net.named_parameters()}
    niw_keys = [f"niws.{i}" for i in range(len(net.layers))]
    n = len(data.y)
    batches = _train._step_indices(n, batch_size, sampling, gen, data.x.device)

    def batch_loss(p, s, xb, yb, xi):
        return loss_fn(functional_call(net, p, (xb,), {"noise": s * xi}), yb)

    step_fn = vmap(grad_and_value(batch_loss), in_dims=(0, 0, None, None, None))

    def clean_outputs(p, xb):
        return functional_call(net, p, (xb,))

    eval_fn = vmap(clean_outputs, in_dims=(0, None))

    @torch.no_grad()
    def evaluate(d):
        total = torch.zeros(k_runs, dtype=torch.float64, device=first.device)
        correct = torch.zeros_like(total)
        classify = not d.y.is_floating_point()
        for start in range(0, len(d.y), 4096):
            xb, yb = d.x[start:start + 4096], d.y[start:start + 4096]
            out = eval_fn(params, xb)                            # [K, N, ...]
            total += torch.stack([loss_fn(o, yb, reduction="sum") for o in out]).double()
            if classify:
                correct += (out.argmax(-1) == yb).sum(1).double()
        m = len(d.y)
        return (total / m).cpu().numpy(), ((correct / m).cpu().numpy() if classify
                                           else np.full(k_runs, math.nan))

    active = torch.ones(k_runs, dtype=torch.bool, device=first.device)
    diverged_step = np.full(k_runs, -1)
    rows = []
    last_batch = np.full(k_runs, math.nan)
    sig_np = sig.double().cpu().numpy()

    def record(step):
        net.eval()
        loss_v, acc = evaluate(eval_data)
        test_loss, test_acc = evaluate(test_data) if test_data is not None else \
            (np.full(k_runs, math.nan), np.full(k_runs, math.nan))
        net.train()
        norms = {lay: params[key].double().norm(dim=1).cpu().numpy()
                 for lay, key in zip(net.layers, niw_keys)}
        total_norm = np.sqrt(sum(v ** 2 for v in norms.values()))
        alive = active.cpu().numpy()
        for k in range(k_runs):
            ok = alive[k] and math.isfinite(loss_v[k])
            nan = math.nan
            row = {"sigma": sig_np[k], "step": step, "loss": loss_v[k] if ok else nan,
                   "accuracy": acc[k] if ok else nan,
                   "test_loss": test_loss[k] if ok else nan,
                   "test_accuracy": test_acc[k] if ok else nan,
                   "batch_loss": last_batch[k] if ok else nan,
                   "niw_norm": total_norm[k] if ok else nan, "diverged": not alive[k]}
            if len(net.layers) > 1:
                for lay, v in norms.items():
                    row[f"niw_norm[{lay}]"] = v[k] if ok else nan
            rows.append(row)

    net.train()
    record(0)
    bar = tqdm(range(1, steps + 1), disable=None if progress else True, desc="sweep",
               leave=False)
    for step in bar:
        if not bool(active.any()):
            break
        idx = next(batches)
        xb, yb = (data.x, data.y) if idx is None else (data.x[idx], data.y[idx])
        pos = torch.arange(n, device=data.x.device) if idx is None else idx
        xi = net._source(len(yb), pos, first.device, first.dtype)
        grads, values = step_fn(params, sig, xb, yb, xi)
        values = values.detach()
        bad = ~torch.isfinite(values) | (values > bound)
        newly = (bad & active).cpu().numpy()
        diverged_step[newly] = step
        active &= ~bad
        last_batch = values.double().cpu().numpy()
        with torch.no_grad():
            for key in names:
                mask = active.view(-1, *([1] * (params[key].dim() - 1)))
                params[key] = torch.where(mask, params[key] - lr * grads[key], params[key])
        if step % eval_every == 0 or step == steps:
            record(step)
    bar.close()
    done = int(rows[-1]["step"]) if rows else 0
    if done < steps:                    # every copy diverged: fill the remaining steps once
        record(steps)
    diverged = diverged_step >= 0
    if diverged.any():
        warnings.warn(f"{int(diverged.sum())} of {k_runs} runs diverged (sigma = "
                      f"{', '.join(f'{s:g}' for s in sig_np[diverged])}); they were frozen and "
                      "marked", RuntimeWarning, stacklevel=2)
    return SweepResult(pd.DataFrame(rows), sig_np, diverged, diverged_step, steps, params)


# =============================================================================================
