"""Chapter 6's grid: the phases of a ReLU network with a noise injection node, swept over the
noise variance σ², for noise re-drawn every epoch and for noise fixed per example, by training
set size (Levi, Bloch, Freytsis & Volansky 2022, Figs. 1-2 and §4).

One run is one :func:`gnilab.nin.train_sweep`: a 784-128-128-128-10 ReLU MLP with a NIN on the
third hidden layer's pre-activations, one copy per σ² (common random numbers), trained with
SGD on the first ``n_train`` FashionMNIST images. The first ``early_steps`` steps are run
again with a record every step, so that a catapult (over within about 15 steps) is seen. Each
copy's phase is :func:`gnilab.nin.network_phase`.

The claim this grid tests is the chapter's remark that fixed noise, which a small training set
lets the network memorise, starts to decay at a larger σ² than re-drawn noise, and that the
gap closes with more data (the paper trains on the full set and sees the same behaviour for
both). The *decay onset* :math:`\\sigma^2_{1/2}` of a run is where the NIW's end-to-start ratio
first falls below 1/2 along σ² (below the first catapult), interpolated linearly in
:math:`\\log\\sigma^2` between the two grid points around the crossing.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["GRIDS", "EXPERIMENTS", "sigma2_sweep_run", "decay_onset", "tables"]

_DEFAULT_S2 = [0, 0.1, 1, 10, 100, 300, 1_000, 3_000, 10_000]      # the chapter's grid
GRIDS = {
    "fast": {"sigma2_sweep": dict(n_train=[256], mode=["epoch", "fixed"], seed=[0], steps=60,
                                  sigma2=[[0, 10, 1_000, 3_000, 10_000]], n_test=256, n_eval=256,
                                  eval_every=10, early_steps=20)},
    "default": {"sigma2_sweep": dict(n_train=[500], mode=["epoch", "fixed"], seed=[0, 1],
                                     steps=600, sigma2=[_DEFAULT_S2], n_test=1_000, n_eval=500,
                                     eval_every=10)},
    # the onset of decay for fixed vs re-drawn noise against the training set size: 5 seeds,
    # 500 to all 60 000 images, 2000 steps for every size (512 epochs of 500 images, 4.3 of
    # 60 000), a finer sigma^2 grid below the catapult (about 20 min on 2 cores)
    "extended": {"sigma2_sweep": dict(n_train=[500, 2_000, 8_000, 60_000],
                                      mode=["epoch", "fixed"], seed=list(range(5)), steps=2_000,
                                      sigma2=[[0, 1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000]],
                                      n_test=2_000, n_eval=2_000, eval_every=50)},
    "paper": {"sigma2_sweep": dict(n_train=[60_000], mode=["epoch", "fixed"], seed=[0, 1, 2],
                                   steps=30_000, sigma2=[[0, 0.01, 0.1, 0.3, 1, 3, 10, 30, 100,
                                                          300, 1_000, 2_000, 3_000, 5_000,
                                                          10_000, 30_000]],
                                   n_test=10_000, n_eval=10_000, eval_every=100)},
}


def sigma2_sweep_run(n_train: int, mode: str, seed: int, steps: int, sigma2: list,
                     n_test: int = 1_000, n_eval: int = 2_000, eval_every: int = 10,
                     early_steps: int = 40, width: int = 128, lr: float = 0.1, batch: int = 128,
                     bound: float = 1_000.0) -> dict:
    r"""Train one copy of the chapter's ReLU network per noise variance and return each copy's
    phase and NIW decay.

    The NIW :math:`\theta` of the NIN decays on average as
    :math:`\theta \leftarrow (I - \eta\sigma^2\bar H_z)\,\theta` per step (the chapter's Eq. N3,
    reconstructed from the paper's §2), so its end-to-start ratio measures the decay.

    Parameters
    ----------
    n_train : int
        Training examples (the first ``n_train`` of FashionMNIST's training split).
    mode : {"epoch", "fixed"}
        Noise re-drawn every epoch (the paper's) or drawn once per example.
    seed : int
        Seed of the weights, the NIW, the minibatches and the noise.
    steps : int
        SGD steps at step ``lr`` with minibatches of ``batch``.
    sigma2 : list of float
        The noise variances, one network copy each (0: the network without a NIN).
    n_test, n_eval : int, optional
        Test images (the first of the test split) and training images the accuracies are
        measured on (the first of the training set).
    eval_every : int, optional
        Steps between records of the NIW norm and the accuracies.
    early_steps : int, optional
        The first steps, run again with a record every step (on 64 images) for the peak of a
        catapult.
    width, lr, batch : int, float, int, optional
        Hidden width (3 hidden layers), step size and minibatch size (the chapter's 128, 0.1,
        128).
    bound : float, optional
        A batch loss above it counts as a divergence.

    Returns
    -------
    dict
        Lists over ``sigma2``: ``phase`` (``"no NIN"`` at 0, else one of
        :data:`gnilab.nin.PHASES`), ``niw_end`` and ``niw_peak`` (the NIW norm at the end and
        at its largest, over its start; NaN for a diverged copy's end), ``diverged_step``
        (−1: none), ``train_acc`` and ``test_acc`` (NIN off, at the end; NaN if diverged).
    """
    import warnings

    import torch

    from .. import config, data, nin
    from ..models import MLP

    device = config.get_device()
    train_set = data.load_fashion_mnist("train", limit=n_train, device=device, flatten=True,
                                        progress=False)
    test_set = data.load_fashion_mnist("test", limit=n_test, device=device, flatten=True,
                                       progress=False)
    torch.manual_seed(seed)
    mlp = MLP(784, width, 4, 10).to(device)
    sigmas = np.sqrt(np.asarray(sigma2, dtype=float))
    common = dict(layers=["5"], lr=lr, batch_size=batch, mode=mode, bound=bound, generator=seed,
                  progress=False)
    with warnings.catch_warnings():          # divergences are expected: they are recorded
        warnings.simplefilter("ignore", RuntimeWarning)
        long = nin.train_sweep(mlp, train_set, sigmas, steps=steps, test_data=test_set,
                               eval_every=eval_every,
                               eval_data=train_set.subset(slice(0, min(n_eval, n_train))),
                               **common)
        early = nin.train_sweep(mlp, train_set, sigmas, steps=min(early_steps, steps),
                                eval_every=1, eval_data=train_set.subset(slice(0, 64)),
                                **common)
    out = {k: [] for k in ("phase", "niw_end", "niw_peak", "diverged_step", "train_acc",
                           "test_acc")}
    for k, s2 in enumerate(sigma2):
        run = long.history[long.history.sigma == long.sigmas[k]].sort_values("step")
        first = early.history[early.history.sigma == early.sigmas[k]].niw_norm.to_numpy()
        norms = run.niw_norm.to_numpy()
        peak = float(np.nanmax(np.concatenate([norms, first])) / norms[0])
        diverged = bool(long.diverged[k])
        last = run.iloc[-1]
        out["phase"].append("no NIN" if s2 == 0 else
                            nin.network_phase(norms, diverged, peak))
        out["niw_end"].append(math.nan if diverged else float(norms[-1] / norms[0]))
        out["niw_peak"].append(peak)
        out["diverged_step"].append(int(long.diverged_step[k]))
        out["train_acc"].append(float(last.accuracy))
        out["test_acc"].append(float(last.test_accuracy))
    return out


EXPERIMENTS = {"sigma2_sweep": sigma2_sweep_run}


def decay_onset(sigma2, niw_end, phase, level: float = 0.5) -> float:
    r"""The noise variance :math:`\sigma^2_{1/2}` at which the NIW's end-to-start ratio first
    falls below ``level`` along σ², below the first catapult or divergence.

    Interpolated linearly in :math:`\log\sigma^2` between the last grid point above ``level``
    and the first below it.

    Parameters
    ----------
    sigma2, niw_end, phase : sequences of the same length
        A run's noise variances (increasing; 0 is skipped), NIW end/start ratios and phases.
    level : float, optional
        The ratio that marks the onset, in (0, 1) (default 1/2, the threshold of the decay
        phase of :func:`gnilab.nin.network_phase`).

    Returns
    -------
    float
        :math:`\sigma^2_{1/2}`; ``inf`` when the ratio never falls below ``level`` before the
        catapult (the onset is above the grid's calm range: right-censored), NaN when it is
        already below ``level`` at the smallest positive σ².
    """
    from .._common.checks import check_real

    level = check_real("level", level, low=0, high=1, low_open=True, high_open=True)
    s2, end, ph = (np.asarray(v) for v in (sigma2, niw_end, phase))
    if not (len(s2) == len(end) == len(ph)):
        raise ValueError(f"sigma2, niw_end and phase must have the same length, got "
                         f"{len(s2)}, {len(end)}, {len(ph)}")
    keep = s2.astype(float) > 0
    s2, end, ph = s2[keep].astype(float), end[keep].astype(float), ph[keep]
    if np.any(np.diff(s2) <= 0):
        raise ValueError("sigma2 must be increasing")
    calm = np.isin(ph, ["decoupled", "decay"])
    stop = int(np.argmin(calm)) if not calm.all() else len(calm)
    s2, end = s2[:stop], end[:stop]
    below = np.flatnonzero(end < level)
    if len(below) == 0:
        return math.inf
    if below[0] == 0:
        return math.nan
    i = int(below[0])
    x0, x1 = math.log(s2[i - 1]), math.log(s2[i])
    t = (end[i - 1] - level) / (end[i - 1] - end[i])
    return float(math.exp(x0 + t * (x1 - x0)))


def tables(frames: dict) -> dict:
    """The chapter's result tables from the runs of :func:`sigma2_sweep_run`.

    Parameters
    ----------
    frames : dict
        ``{"sigma2_sweep": DataFrame}``, the runs as returned by :func:`gnilab.sweep.run`.

    Returns
    -------
    dict
        ``"copies"``: one row per run and σ² (``n_train``, ``mode``, ``seed``, ``sigma2`` and
        the lists of :func:`sigma2_sweep_run` unrolled); ``"niw_end"``: by ``n_train``, ``mode``
        and ``sigma2``, the mean, sd and s.e. over the seeds of the NIW's end/start ratio, the
        phases seen (``;``-joined with counts) and the mean accuracies; ``"onset"``: by
        ``n_train`` and ``mode``, the decay onset (:func:`decay_onset`) as the mean, sd and
        s.e. of :math:`\\log_{10}\\sigma^2_{1/2}` over the seeds (``censored``: seeds whose
        NIW kept more than half its norm up to the catapult, counted at their last σ² below it,
        so the mean is then a lower bound; ``missing``: seeds already below 1/2 at the smallest
        σ²), the smallest σ² of a catapult or divergence in any seed, and for
        ``mode == "fixed"`` the paired difference fixed minus re-drawn of
        :math:`\\log_{10}\\sigma^2_{1/2}` (``gap``, ``gap_se``).
    """
    import pandas as pd

    runs = frames["sigma2_sweep"]
    ok = runs[runs.status == "ok"]
    keys = ["n_train", "mode", "seed"]
    lists = ["phase", "niw_end", "niw_peak", "diverged_step", "train_acc", "test_acc"]
    copies = pd.DataFrame([dict(zip(keys, r[keys]), sigma2=float(s2),
                                **{c: r[c][k] for c in lists})
                           for _, r in ok.iterrows() for k, s2 in enumerate(r["sigma2"])])
    by = copies.groupby(["n_train", "mode", "sigma2"])
    niw_end = by.agg(niw_end=("niw_end", "mean"), niw_end_sd=("niw_end", "std"),
                     seeds=("niw_end", "count"), train_acc=("train_acc", "mean"),
                     test_acc=("test_acc", "mean")).reset_index()
    niw_end["niw_end_se"] = niw_end.niw_end_sd / niw_end.seeds.pow(0.5)
    niw_end["phases"] = [";".join(f"{p}:{n}" for p, n in g.phase.value_counts().sort_index()
                                  .items()) for _, g in by]

    rows = []
    for k, g in copies.groupby(keys):
        g = g.sort_values("sigma2")
        unstable = g[~g.phase.isin(["no NIN", "decoupled", "decay"])].sigma2
        first_unstable = unstable.min() if len(unstable) else math.inf
        o = decay_onset(g.sigma2, g.niw_end, g.phase)
        censored = o == math.inf             # a lower bound: the last sigma^2 below the catapult
        if censored:
            o = g[(g.sigma2 > 0) & (g.sigma2 < first_unstable)].sigma2.max()
        rows.append(dict(zip(keys, k), log10_onset=math.log10(o) if o > 0 else math.nan,
                         censored=bool(censored), first_unstable=first_unstable))
    per_run = pd.DataFrame(rows)
    by = per_run.groupby(["n_train", "mode"])
    onset = by.agg(log10_onset=("log10_onset", "mean"), log10_onset_sd=("log10_onset", "std"),
                   seeds=("log10_onset", "count"), runs=("seed", "size"),
                   censored=("censored", "sum"),
                   first_unstable=("first_unstable", "min")).reset_index()
    onset["log10_onset_se"] = onset.log10_onset_sd / onset.seeds.pow(0.5)
    onset["missing"] = onset.runs - onset.seeds
    paired = per_run.pivot_table(index=["n_train", "seed"], columns="mode",
                                 values="log10_onset", dropna=False)
    if {"fixed", "epoch"} <= set(paired.columns):
        diff = (paired["fixed"] - paired["epoch"]).groupby(level="n_train")
        gap = pd.DataFrame({"gap": diff.mean(), "gap_se": diff.std() / diff.count().pow(0.5)})
        onset = onset.merge(gap.reset_index().assign(mode="fixed"), on=["n_train", "mode"],
                            how="left")
    return {"copies": copies, "niw_end": niw_end, "onset": onset.drop(columns="runs")}
