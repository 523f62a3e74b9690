"""Training with noise injections: the M-sample objective, the explicit-regulariser arm and the
stable/Gaussian replacement of the implicit effect (Figs. 4, 5, 7, 8)."""
from __future__ import annotations

import math
import time
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from .. import stable as _stable
from .. import train as _train
from .._common.checks import check_bool, check_choice, check_int, check_real
from ._effects import _split
from ._effects import explicit_regulariser as _regulariser  # train_gni's argument shadows it
from ._injection import (GaussianNoiseInjection, _check_generator, _check_net, m_sample_loss,
                         stacked_losses)


class _Replacement:
    """The replacement arm of Fig. 4: explicit-effect gradient of the M-sample objective plus,
    per layer, noise drawn from a law fitted to that step's implicit-effect gradients."""

    def __init__(self, loss_fn, copies, law, fit_method, fit_sample, include_bias, generator,
                 clip):
        self.loss_fn, self.copies, self.law, self.clip = loss_fn, copies, law, clip
        self.fit_method, self.fit_sample = fit_method, fit_sample
        self.include_bias, self.generator = include_bias, generator
        self.grads = None

    def objective(self, model, xb, yb):
        _, implicit, explicit_obj, params = _split(model, xb, yb, self.loss_fn, self.copies,
                                                   self.include_bias)
        names = list(params)
        g = torch.autograd.grad(implicit, [params[n] for n in names], retain_graph=True)
        self.grads = dict(zip(names, (v.detach() for v in g)))
        return explicit_obj

    def _fit(self, g: torch.Tensor):
        v = g.reshape(-1)
        v = v[v != 0]                  # dead units: exactly zero, and they stay so (see below)
        if v.numel() < 10:
            return None
        if self.fit_sample is not None and v.numel() > self.fit_sample:
            idx = torch.randperm(v.numel(), generator=self.generator)[:self.fit_sample]
            v = v[idx.to(v.device)]
        v = v.double().cpu().numpy()
        if self.law == "gaussian":
            return {"alpha": 2.0, "beta": 0.0, "scale": float(v.std()), "loc": float(v.mean())}
        f = _stable.fit(v, method=self.fit_method, param="S1")
        return {"alpha": f.alpha, "beta": f.beta, "scale": f.scale, "loc": f.loc}

    def grad_hook(self, step, model):
        t0 = time.perf_counter()
        params = model.weight_layers(self.include_bias)
        row = {}
        for i, (name, g) in enumerate(self.grads.items()):
            law = self._fit(g)
            if law is None:                    # (almost) no implicit gradient: no noise
                row.update({f"alpha_{i}": math.nan, f"beta_{i}": math.nan,
                            f"scale_{i}": 0.0})
                continue
            if self.law == "gaussian":
                xi = law["loc"] + law["scale"] * torch.randn(g.shape, generator=self.generator,
                                                             dtype=g.dtype)
            else:
                xi = _stable.sample(law["alpha"], law["beta"], law["scale"], law["loc"],
                                    size=tuple(g.shape), param="S1",
                                    generator=self.generator, dtype=g.dtype)
            if self.clip:                      # no draw beyond what the layer's own
                top = float(g.abs().max())       # implicit gradient reached this step
                xi = xi.clamp(-top, top)
                row[f"clipped_{i}"] = float((xi.abs() == top).double().mean())
            # entries whose implicit gradient is exactly 0 (units dead on the whole batch) get
            # no noise either: the replacement keeps the implicit effect's support
            params[name].grad.add_(torch.where(g != 0, xi.to(g.device), torch.zeros_like(g)))
            row.update({f"alpha_{i}": law["alpha"], f"beta_{i}": law["beta"],
                        f"scale_{i}": law["scale"]})
        row["fit_seconds"] = time.perf_counter() - t0
        return row


def train_gni(net, data, *, steps: int, lr: float, loss: str = "mse", copies: int = 1,
              batch_size: Optional[int] = None, replacement: Optional[str] = None,
              explicit_regulariser: bool = False, fit_method: str = "quantile",
              fit_sample: Optional[int] = 4096, clip_replacement: bool = False,
              include_bias: bool = False, test_data=None,
              eval_every: Optional[int] = None, callbacks=(), generator=None,
              progress: bool = True):
    r"""Train a noise-injected network with plain SGD (:func:`gnilab.train.train`).

    Arms (Camuto et al. 2021, Figs. 4, 5, 7, 8):

    * ``copies=M`` : the M-sample objective :math:`\tilde L_M` of Eq. 4.5 (M = 1: ordinary GNI
      training; larger M marginalises more of the implicit effect); ``net.sigma = 0`` is the
      baseline;
    * ``explicit_regulariser=True`` : :math:`L + R` without noise ("Exp Reg");
    * ``replacement="stable"`` or ``"gaussian"`` : the gradient of :math:`\tilde L_M` plus, for
      every weight matrix, i.i.d. noise of its shape drawn from an :math:`S_\alpha` law (S1,
      location and scale fitted: the implicit-effect gradient has mean zero) or a Gaussian
      fitted to that step's implicit-effect gradient :math:`\nabla E_L` (one extra draw against
      the M copies, :func:`implicit_effect`), fitted on the nonzero entries (exact zeros are
      units dead on the whole batch; they get no noise). The noise is added to the gradient, so the
      update moves it by ``lr`` times the draw, as in the paper's code. The fit uses
      ``fit_method`` (:func:`gnilab.stable.fit`; ``"quantile"`` is McCulloch's, fast;
      ``"mle"`` is exact and slower) on at most ``fit_sample`` randomly chosen entries per
      layer; the fitted parameters and the fit's wall time per step are in ``records``.
      ``clip_replacement=True`` limits each draw to the largest absolute implicit-effect
      gradient of its layer in that step (the fraction clipped is recorded): i.i.d. draws
      from a law with :math:`\alpha \approx 1` reach values no finite gradient sample does,
      and without the limit such runs diverge at learning rates where GNI training does not
      (Chapter 5 shows it).

    The history's ``loss`` is the loss on ``data`` without noise (``eval()`` mode).

    Parameters
    ----------
    net : GaussianNoiseInjection
    data, test_data : datasets with ``x`` and ``y``
    steps, lr, batch_size, eval_every, callbacks, progress : as in :func:`gnilab.train.train`
        (e.g. :func:`marginal_loss_probe`)
    loss : {"mse", "cross_entropy"} or a callable (the regulariser needs a named loss)
    copies : int >= 1, M
    generator : torch.Generator or int, optional — minibatch sampling and the replacement
        draws (the injected noise follows ``net.generator``).

    Returns
    -------
    :class:`gnilab.train.TrainResult`
    """
    net = _check_net(net)
    steps = check_int("steps", steps, low=0)
    copies = check_int("copies", copies, low=1)
    explicit_regulariser = check_bool("explicit_regulariser", explicit_regulariser)
    if replacement is not None:
        replacement = check_choice("replacement", replacement, ("stable", "gaussian"))
    fit_method = check_choice("fit_method", fit_method, ("quantile", "mle", "ecf"))
    if fit_sample is not None:
        fit_sample = check_int("fit_sample", fit_sample, low=10)
    if explicit_regulariser and replacement is not None:
        raise ValueError("explicit_regulariser and replacement are different arms; choose one")
    gen = _check_generator(generator)
    loss_fn = _train.get_loss(loss)
    grad_hook = None
    if replacement is not None:
        rep = _Replacement(loss_fn, copies, replacement, fit_method, fit_sample,
                           check_bool("include_bias", include_bias), gen,
                           check_bool("clip_replacement", clip_replacement))
        objective, grad_hook = rep.objective, rep.grad_hook
    elif explicit_regulariser:
        if not isinstance(loss, str):
            raise ValueError("explicit_regulariser needs loss='mse' or 'cross_entropy'")

        def objective(model, xb, yb):
            with model.noise_off():
                clean = loss_fn(model(xb), yb)
            return clean + _regulariser(model, xb, loss)
    else:
        def objective(model, xb, yb):
            return m_sample_loss(model, xb, yb, loss_fn, copies)
    return _train.train(net, data, steps=steps, lr=lr, batch_size=batch_size, loss=loss_fn,
                        test_data=test_data, eval_every=eval_every, callbacks=callbacks,
                        generator=gen, progress=progress, objective=objective,
                        grad_hook=grad_hook)


def marginal_loss_probe(data, loss="mse", copies: int = 64, every: int = 10, seed: int = 0):
    r"""A :class:`gnilab.train.Callback` recording ``marginal_loss``, a Monte Carlo estimate
    of :math:`f(w) = E_\epsilon[\tilde L(D; w, \epsilon)] = L + E_\epsilon[\Delta L]`, the
    objective that every M shares (Eq. 4.1), with ``copies`` draws, and its standard error.
    The draws use the same seed at every call (common random numbers: differences between
    steps and between runs are not blurred by fresh noise)."""
    copies = check_int("copies", copies, low=2)
    every = check_int("every", every, low=1)
    loss_fn = _train.get_loss(loss)

    def measure(step, net):
        gen_before = net.generator
        net.generator = torch.Generator().manual_seed(seed)
        was = net.training
        net.train()
        try:
            with torch.no_grad():
                v = stacked_losses(net, data.x, data.y, loss_fn, copies)
        finally:
            net.generator = gen_before
            net.train(was)
        return {"marginal_loss": float(v.mean()),
                "marginal_loss_se": float(v.std() / math.sqrt(copies))}
    return _train.Callback(every, measure)


def compare_arms(model: nn.Module, data, arms: Dict[str, dict], *, sigma: float,
                 kind: str = "additive", steps: int, lr: float, seeds: Sequence[int] = (0,),
                 loss: str = "mse", test_data=None, window: float = 0.5,
                 probe_copies: int = 64, probe_every: int = 10, probe_seed: int = 0,
                 progress: bool = True):
    r"""Train the arms of an experiment from the *same* weights and compare them.

    Every arm and seed starts from a copy of ``model`` (e.g. trained without noise first, so
    that all arms begin at the same point), wrapped in :class:`GaussianNoiseInjection` with
    ``sigma``/``kind`` (an arm may override them) and the noise seed ``1000 + seed``, and runs
    :func:`train_gni` with the arm's keyword arguments (``copies``, ``replacement``,
    ``explicit_regulariser``, ``batch_size``, ...). Along the way :func:`marginal_loss_probe`
    records :math:`f(w) = E_\epsilon \tilde L` on ``data`` every ``probe_every`` steps, with
    the same ``probe_copies`` draws (seed ``probe_seed``) for every arm, seed and step.

    Returns
    -------
    (summary, curves) : pandas DataFrames. ``summary`` has one row per arm and seed: the mean
    of ``marginal_loss``, of the clean training ``loss`` and (with ``test_data``) of
    ``test_loss`` over the last ``window`` fraction of the steps, ``diverged`` and
    ``diverged_step``, and the mean fit time per step of replacement arms. ``curves`` holds the
    recorded rows of every run with ``arm`` and ``seed`` columns.
    """
    import copy
    import pandas as pd
    if not isinstance(arms, dict) or not arms:
        raise ValueError("arms must be a non-empty dict name -> keyword arguments of train_gni")
    window = check_real("window", window, low=0, high=1, low_open=True)
    steps = check_int("steps", steps, low=1)
    summary, curves = [], []
    for name, kw in arms.items():
        kw = dict(kw)
        sig, knd = kw.pop("sigma", sigma), kw.pop("kind", kind)
        for seed in seeds:
            net = GaussianNoiseInjection(copy.deepcopy(model), sig, knd, generator=1000 + seed)
            res = train_gni(net, data, steps=steps, lr=lr, loss=loss, test_data=test_data,
                            eval_every=probe_every, generator=seed, progress=progress,
                            callbacks=[marginal_loss_probe(data, loss, probe_copies,
                                                           probe_every, probe_seed)], **kw)
            rec = res.records.groupby("step").first().reset_index() if len(res.records) \
                else pd.DataFrame({"step": []})
            run = res.history.merge(rec, on="step", how="left")
            run["arm"], run["seed"] = name, seed
            curves.append(run)
            late = run[run.step > (1 - window) * steps]
            row = {"arm": name, "seed": seed, "diverged": res.diverged,
                   "diverged_step": res.diverged_step}
            for col in ("marginal_loss", "loss", "test_loss"):
                row[col] = float(late[col].mean()) if (col in late and not res.diverged) \
                    else math.nan
            if "fit_seconds" in res.records:
                row["fit_seconds"] = float(res.records["fit_seconds"].mean())
            summary.append(row)
    return pd.DataFrame(summary), pd.concat(curves, ignore_index=True)
