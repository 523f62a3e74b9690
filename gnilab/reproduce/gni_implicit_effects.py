"""Chapter 5's grid: FashionMNIST with multiplicative Gaussian noise injections, by noise
variance σ², number of noise draws per step M (the M-sample objective) and seed (Camuto et al.
2021, Eq. 4.5 and Figs. 7-8).

One run trains the chapter's ELU MLP (two hidden layers) from a shared start (the seed-0
initialisation, as in the chapter) with multiplicative GNIs of variance σ² on the M-sample
objective, minibatches of 128 at step 0.05, and reports the test loss with the noise off, the
clean training loss and the marginal loss :math:`f(w) = E_\\epsilon\\tilde L`, averaged over the
last quarter of the steps (:func:`gnilab.gni.compare_arms`). ``sigma2 = 0`` is the noise-free
baseline (one run per seed whatever M). The chapter's claim is that a larger M, which keeps the
explicit effect and averages the implicit one out, lowers the test loss.
"""
from __future__ import annotations

__all__ = ["GRIDS", "EXPERIMENTS", "gni_fashion_run", "tables"]

_SIGMA2 = [0.1, 0.5, 1.0, 2.0, 4.0]          # the chapter's SIGMA2_GRID
GRIDS = {
    "fast": {"gni_fashion": dict(sigma2=[1.0, 4.0], copies=[1, 4], seed=[0], n_train=500,
                                 n_test=500, width=64, steps=40)},
    "default": {"gni_fashion": dict(sigma2=_SIGMA2, copies=[1, 4, 16], seed=[0, 1, 2],
                                    n_train=2_000, n_test=2_000, width=128, steps=400)},
    "extended": {"gni_fashion": dict(sigma2=_SIGMA2, copies=[1, 4, 16], seed=list(range(5)),
                                     n_train=10_000, n_test=10_000, width=128, steps=2_000)},
    "paper": {"gni_fashion": dict(sigma2=_SIGMA2, copies=[1, 4, 16], seed=list(range(5)),
                                  n_train=60_000, n_test=10_000, width=256, steps=20_000)},
}


def gni_fashion_run(sigma2: float, copies: int, seed: int, n_train: int, n_test: int,
                    width: int, steps: int, lr: float = 0.05, batch: int = 128) -> dict:
    r"""Train the chapter's FashionMNIST network with multiplicative GNIs on the M-sample
    objective :math:`\tilde L_M = \frac1M\sum_m \tilde L(\epsilon_m)` (Camuto et al. 2021,
    Eq. 4.5) and return its losses at the end.

    Parameters
    ----------
    sigma2 : float
        Variance σ² of the multiplicative noise :math:`h(1 + \sigma\epsilon)` (Eq. 2.8), >= 0.
    copies : int
        M, the noise draws averaged per step.
    seed : int
        Seed of the minibatches (and, as ``1000 + seed``, of the injected noise).
    n_train, n_test : int
        The first images of FashionMNIST's training and test splits.
    width, steps : int
        Hidden width (two hidden ELU layers) and number of steps.
    lr, batch : float, int, optional
        Step size and minibatch size (the chapter's 0.05 and 128).

    Returns
    -------
    dict
        ``test_loss``, ``loss`` (clean training loss), ``marginal_loss`` (means over the last
        quarter of the steps; NaN if diverged), ``diverged`` (bool).
    """
    import math

    import torch

    from .. import config, data, gni
    from ..models import MLP

    device = config.get_device()
    train_set = data.load_fashion_mnist("train", limit=n_train, device=device, progress=False)
    test_set = data.load_fashion_mnist("test", limit=n_test, device=device, progress=False)
    torch.manual_seed(0)                                  # the shared start of every arm
    start = MLP(784, width, 3, 10, activation="elu").to(device)
    summary, _ = gni.compare_arms(
        start, train_set, {"arm": dict(copies=copies, batch_size=batch)},
        sigma=math.sqrt(sigma2), kind="multiplicative", steps=steps, lr=lr, seeds=[seed],
        loss="cross_entropy", test_data=test_set, probe_every=max(1, steps // 8),
        probe_copies=16, window=0.25, probe_seed=0, progress=False)
    row = summary.iloc[0]
    return dict(test_loss=float(row.test_loss), loss=float(row.loss),
                marginal_loss=float(row.marginal_loss), diverged=bool(row.diverged))


EXPERIMENTS = {"gni_fashion": gni_fashion_run}


def tables(frames: dict) -> dict:
    """The chapter's result tables from the runs of :func:`gni_fashion_run`.

    Parameters
    ----------
    frames : dict
        ``{"gni_fashion": DataFrame}``, the runs as returned by :func:`gnilab.sweep.run`.

    Returns
    -------
    dict
        ``"losses"``: by σ² and M, the mean, sd and s.e. over the seeds of the test loss and
        the means of the training and marginal losses (``seeds``, ``diverged`` count);
        ``"m_gain"``: by σ², the paired difference over the seeds of the test loss at the
        smallest M minus the largest (``gain`` > 0: the larger M generalises better), with its
        sd and s.e.
    """
    import pandas as pd

    runs = frames["gni_fashion"]
    ok = runs[runs.status == "ok"]
    by = ok.groupby(["sigma2", "copies"])
    losses = by.agg(test_loss=("test_loss", "mean"), test_loss_sd=("test_loss", "std"),
                    loss=("loss", "mean"), marginal_loss=("marginal_loss", "mean"),
                    seeds=("test_loss", "count"), diverged=("diverged", "sum")).reset_index()
    losses["test_loss_se"] = losses.test_loss_sd / losses.seeds.pow(0.5)
    lo, hi = ok.copies.min(), ok.copies.max()
    rows = []
    for s2, g in ok.groupby("sigma2"):
        p = g.pivot_table(index="seed", columns="copies", values="test_loss")
        if lo in p and hi in p and lo != hi:
            d = (p[lo] - p[hi]).dropna()
            rows.append(dict(sigma2=s2, m_small=lo, m_large=hi, gain=d.mean(), gain_sd=d.std(),
                             seeds=len(d), gain_se=d.std() / len(d) ** 0.5))
    return {"losses": losses, "m_gain": pd.DataFrame(rows)}
