"""Chapter 1's grid: the tail index of SGD noise after training, by width, depth and batch size
(Şimşekli, Sagun & Gürbüzbalaban 2019, Fig. 4 and §4.1).

One run trains a bias-free ReLU MLP (the paper's ``FullyConnected``: ``depth`` weight layers)
on FashionMNIST with SGD, then estimates α of the minibatch gradient noise with the block-sum
estimator (Mohammadi et al. 2015; the paper's Eq. 15, :func:`gnilab.stable.tail_index`) at the
last ``last`` probe points, every ``probe_every`` steps, as the chapter does.
"""
from __future__ import annotations

import math

__all__ = ["GRIDS", "EXPERIMENTS", "tail_index_run",
           "tail_index_after_training", "tables"]

_TRAIN = dict(n_train=10_000, probe_every=100, last=3)      # the chapter's default scale
GRIDS = {
    # scale: {experiment: axes of its grid}
    "fast": {"tail_index": dict(width=[16, 32], depth=[2], batch=[100], seed=[0, 1], steps=40,
                                n_train=1_000, probe_every=20, last=2)},
    "default": {"tail_index": dict(width=[32, 128, 256], depth=[2, 3, 4], batch=[100], seed=[0],
                                   steps=500, **_TRAIN)},
    # the claim of Fig. 4 (alpha falls with width and depth) needs the seed spread: 5 seeds,
    # a 16x range of widths, depths up to 8, twice the chapter's steps (about 15 min on 2 cores)
    "extended": {"tail_index": dict(width=[32, 128, 512], depth=[2, 3, 4, 6, 8], batch=[100],
                                    seed=list(range(5)), steps=1_000, **_TRAIN)},
    "paper": {"tail_index": dict(width=[32, 64, 128, 256, 512, 1024], depth=list(range(2, 11)),
                                 batch=[100, 500], seed=[0, 1, 2], steps=10_000, n_train=60_000,
                                 probe_every=100, last=100)},
}


def tail_index_run(width: int, depth: int, batch: int, seed: int, steps: int, n_train: int,
                   probe_every: int, last: int, lr: float = 0.1) -> dict:
    r"""Train one MLP with SGD and return the tail index of its gradient noise at the end.

    The noise is :math:`U_k = \nabla f_{\Omega_k}(w) - \nabla f(w)` over the partition of the
    training set into minibatches of size ``batch`` (Şimşekli et al. 2019, Eq. 9); α̂ is the
    block-sum estimator of its pooled entries (Eq. 15), averaged over the last ``last``
    probes.

    Parameters
    ----------
    width, depth : int
        Hidden width and number of weight layers of :class:`gnilab.models.MLP` (no biases).
    batch : int
        SGD and probe minibatch size.
    seed : int
        Seed of the initialisation and of the minibatch order (the sweep seeds torch with it).
    steps : int
        SGD steps at step size ``lr``.
    n_train : int
        Training examples (the first ``n_train`` of FashionMNIST's training split).
    probe_every, last : int
        The noise is measured every ``probe_every`` steps, at the last ``last`` such points.
    lr : float, optional
        Step size (default 0.1, the paper's).

    Returns
    -------
    dict
        ``alpha`` (mean α̂ of the last probes), ``alpha_se`` (their standard error; NaN for
        one probe), ``accuracy`` (training accuracy at the end), ``diverged`` (bool),
        ``params`` (number of weights).
    """
    import torch

    from .. import config, data
    from ..models import MLP

    device = config.get_device()
    train_set = data.load_fashion_mnist("train", limit=n_train, device=device, progress=False)
    torch.manual_seed(seed)
    return tail_index_after_training(MLP(784, width, depth, 10, bias=False), train_set,
                                     steps=steps, lr=lr, batch=batch, probe_every=probe_every,
                                     last=last, seed=seed)


def tail_index_after_training(model, train_set, steps: int, lr: float, batch: int,
                              probe_every: int, last: int, seed: int) -> dict:
    r"""Train ``model`` with SGD and return the tail index of its gradient noise at the end
    (Şimşekli et al. 2019, Eq. 9 for the noise, Eq. 15 for α̂); the step of
    :func:`tail_index_run` and of Chapter 1's own grid.

    Parameters
    ----------
    model : torch.nn.Module
        The network, moved to the device of ``train_set``.
    train_set : gnilab.data.ArrayDataset
        The training set, also partitioned by the noise probe.
    steps, lr, batch : int, float, int
        SGD steps, step size and minibatch size (also the probe's minibatch size).
    probe_every, last : int
        The noise is measured every ``probe_every`` steps, at the last ``last`` such points.
    seed : int
        Seed of the minibatch order.

    Returns
    -------
    dict
        As :func:`tail_index_run`.
    """
    import torch

    from .. import noise
    from ..models import count_parameters
    from ..train import train

    result = train(model.to(train_set.x.device), train_set, steps=steps, lr=lr, batch_size=batch,
                   callbacks=[noise.probe(train_set, batch, every=probe_every,
                                          start=steps - (last - 1) * probe_every)],
                   generator=torch.Generator().manual_seed(seed), progress=False)
    probes = result.records.tail(last)
    return dict(alpha=float(probes.alpha.mean()),
                alpha_se=float(probes.alpha.std() / math.sqrt(len(probes))) if len(probes) > 1
                else math.nan,
                accuracy=float(result.history.accuracy.iloc[-1]), diverged=bool(result.diverged),
                params=int(count_parameters(model)))


EXPERIMENTS = {"tail_index": tail_index_run}


def tables(frames: dict) -> dict:
    """The chapter's result table: α̂ by width, depth and batch, its mean and seed spread.

    Parameters
    ----------
    frames : dict
        ``{"tail_index": DataFrame}``, the runs of :func:`tail_index_run` as returned by
        :func:`gnilab.sweep.run` (one row per run, with ``status``).

    Returns
    -------
    dict
        ``{"tail_index": DataFrame}`` with one row per (depth, width, batch): ``alpha`` (mean
        over the seeds), ``alpha_sd``, ``alpha_se`` (sd over √seeds), ``seeds``, ``accuracy``,
        ``diverged`` (count) and ``params``. Failed runs are left out of the means.
    """
    runs = frames["tail_index"]
    ok = runs[runs.status == "ok"]
    by = ok.groupby(["depth", "width", "batch"])
    summary = by.agg(alpha=("alpha", "mean"), alpha_sd=("alpha", "std"), seeds=("alpha", "size"),
                     accuracy=("accuracy", "mean"), diverged=("diverged", "sum"),
                     params=("params", "first")).reset_index()
    summary["alpha_se"] = summary.alpha_sd / summary.seeds.pow(0.5)
    return {"tail_index": summary}
