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
        The noise-injected network, trained in place (``net.sigma``, ``net.kind`` and
        ``net.sites`` set the noise).
    data : dataset with tensors ``x`` and ``y``
        The training data (e.g. ``gnilab.data.ArrayDataset``).
    steps : int >= 0
        Number of parameter updates.
    lr : float > 0
        Step size η of plain SGD.
    loss : {"mse", "cross_entropy", "hinge"} or callable
        The per-example loss (see :func:`gnilab.train.get_loss`); the explicit regulariser
        needs ``"mse"`` or ``"cross_entropy"``.
    copies : int >= 1
        M of the M-sample objective (also the M of the replacement arm's split).
    batch_size : int, optional
        Minibatch size; ``None`` is full-batch gradient descent (as in
        :func:`gnilab.train.train`).
    replacement : {"stable", "gaussian"}, optional
        Replace the implicit-effect gradient by i.i.d. noise from a fitted :math:`S_\alpha`
        (S1) or Gaussian law per layer (Fig. 4); ``None``: no replacement.
    explicit_regulariser : bool
        Train on :math:`L + R` without noise (Fig. 7's "Exp Reg"); excludes ``replacement``.
    fit_method : {"quantile", "mle", "ecf"}
        The :func:`gnilab.stable.fit` method of the replacement fits.
    fit_sample : int >= 10, optional
        Fit on at most this many randomly chosen nonzero entries per layer; ``None``: all.
    clip_replacement : bool
        Clip each replacement draw to the largest absolute implicit-effect gradient of its
        layer in that step.
    include_bias : bool
        Replacement arm only: also replace the implicit-effect gradients of the biases.
    test_data : dataset with tensors ``x`` and ``y``, optional
        Held-out data evaluated at the history rows.
    eval_every : int, optional
        Record a history row every this many steps (default about 50 rows).
    callbacks : iterable of :class:`gnilab.train.Callback`
        E.g. :func:`marginal_loss_probe`.
    generator : torch.Generator or int, optional
        Drives the minibatch sampling and the replacement draws (the injected noise follows
        ``net.generator``).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    gnilab.train.TrainResult
        The history (clean training loss, test loss), the records of the callbacks and of the
        replacement fits (``alpha_i``, ``beta_i``, ``scale_i``, ``fit_seconds``, and
        ``clipped_i`` with ``clip_replacement``) and the divergence flags of
        :func:`gnilab.train.train`.
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
    steps and between runs are not blurred by fresh noise).

    Each call puts the network in ``train()`` mode (restoring its mode and its generator
    afterwards) and evaluates, without gradients, the full data set on ``copies`` stacked
    noisy copies (Camuto et al. 2021, Eq. 4.5 with M = ``copies``).

    Parameters
    ----------
    data : dataset with tensors ``x`` and ``y``
        The data the marginal loss is measured on (all of it at every call).
    loss : str or callable
        ``"mse"``, ``"cross_entropy"``, ``"hinge"`` or a callable (see
        :func:`gnilab.train.get_loss`).
    copies : int >= 2
        Number of noise draws in the Monte Carlo estimate.
    every : int >= 1
        Measure at step 0 and every this many steps.
    seed : int
        Seed of the CPU generator that draws the noise, the same at every call.

    Returns
    -------
    gnilab.train.Callback
        A callback whose rows hold ``marginal_loss`` (the mean over the draws) and
        ``marginal_loss_se`` (its standard error).
    """
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
    the same ``probe_copies`` draws (seed ``probe_seed``) for every arm, seed and step. This
    is the protocol of the comparisons of Camuto et al. (2021), Figs. 4, 5, 7 and 8.

    Parameters
    ----------
    model : nn.Module
        The starting network; every run trains a deep copy, ``model`` itself is unchanged.
    data : dataset with tensors ``x`` and ``y``
        The training data (also the data of the marginal-loss probe).
    arms : dict str -> dict
        Arm name -> keyword arguments of :func:`train_gni` (e.g. ``{"copies": 16}``,
        ``{"replacement": "stable"}``, ``{"explicit_regulariser": True}``); the keys
        ``"sigma"`` and ``"kind"`` override the common ones for that arm. Must be non-empty.
    sigma : float >= 0
        Standard deviation of the injected noise (``sigma=0`` in an arm is the baseline).
    kind : {"additive", "multiplicative"}
        The kind of injection (Eq. 2.8).
    steps : int >= 1
        Number of updates of every run.
    lr : float > 0
        Step size of every run.
    seeds : sequence of int
        Seeds of the runs: ``seed`` drives the minibatches and replacement draws,
        ``1000 + seed`` the injected noise.
    loss : {"mse", "cross_entropy", "hinge"} or callable
        The per-example loss.
    test_data : dataset with tensors ``x`` and ``y``, optional
        Held-out data; adds ``test_loss``.
    window : float in (0, 1]
        Fraction of the final steps over which the summary averages.
    probe_copies : int >= 2
        Noise draws of :func:`marginal_loss_probe`.
    probe_every : int >= 1
        Steps between probe measurements (also the history's ``eval_every``).
    probe_seed : int
        Seed of the probe's draws, shared by every arm, seed and step.
    progress : bool
        Show a tqdm bar per run.

    Returns
    -------
    (summary, curves) : tuple of pandas.DataFrame
        ``summary`` has one row per arm and seed: the mean of ``marginal_loss``, of the clean
        training ``loss`` and (with ``test_data``) of ``test_loss`` over the last ``window``
        fraction of the steps (NaN for a diverged run), ``diverged`` and ``diverged_step``,
        and the mean fit time per step of replacement arms. ``curves`` holds the recorded rows
        of every run with ``arm`` and ``seed`` columns.
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
