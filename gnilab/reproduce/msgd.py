"""Chapter 4's grid: large batches with and without Gaussian multiplicative noise against
small-batch SGD (Wu et al. 2020, §5, the [M-SGD-Fisher]-B runs of their Figs. 3-4).

One run trains the chapter's ``ConvSmall`` (11 330 weights, N(0, 0.02²), raw pixels, step 0.01:
the settings of the paper's FashionMNIST code) on the first ``n_train`` images of
FashionMNIST's official *test* split with one method, and scores it on the first ``n_test``
images of the disjoint *training* split:

``"sgd"``
    SGD with minibatches of ``b``, drawn independently each step without replacement;
``"large"``
    the same with batches of ``size`` (B);
``"large_masks"``
    [M-SGD-Fisher]-B: batches of B re-weighted by Gaussian masks :math:`m_i \\sim N(1, B/b)`
    (``msgd.MultiplicativeNoise("fisher_ghost")``), which add SGD-b's Fisher noise to the
    large batch's own (the chapter's large-batch section computes the noise sizes exactly);
``"gd"``
    full-batch gradient descent (one run per initialisation: it draws no noise).

The paper's claim: the large batch generalises worse than SGD-b, and the masks restore SGD-b's
test accuracy at the large batch's cost per step. The paper shows it on SVHN and CIFAR-10 with
25 000-50 000 training images and B/b = 10; on a CPU the extended tier keeps B/b = 10 on 2000
images (b = 20, B = 200, a tenth of the data).
"""
from __future__ import annotations

__all__ = ["GRIDS", "EXPERIMENTS", "METHODS", "large_batch_run", "tables"]

METHODS = ("gd", "sgd", "large", "large_masks")
GRIDS = {
    "fast": {"large_batch": dict(method=list(METHODS), seed=[0], n_train=500, n_test=500,
                                 steps=20, b=50, size=250)},
    # the chapter's own large-batch comparison (N = 1000, B = 500), made a grid
    "default": {"large_batch": dict(method=list(METHODS), seed=list(range(8)), n_train=1_000,
                                    n_test=60_000, steps=2_000, b=50, size=500)},
    # N = 2000 with b = 20 and B = 200 (B/b = 10, as the paper's SVHN and CIFAR runs; the noise
    # of the plain large batch is a 11th of SGD-b's): 5 seeds, 3000 steps (SGD-20 has not yet
    # fitted the images) and 10 000 (the paper's FashionMNIST length); about 35 min on 2 cores.
    # GD, 2000 examples a step, is left out
    "extended": {"large_batch": dict(method=["sgd", "large", "large_masks"], seed=list(range(5)),
                                     n_train=2_000, n_test=20_000, steps=[3_000, 10_000], b=20,
                                     size=200)},
    "paper": {"large_batch": dict(method=list(METHODS), seed=list(range(8)), n_train=10_000,
                                  n_test=60_000, steps=10_001, b=50, size=1_000)},
}


def large_batch_run(method: str, seed: int, n_train: int, n_test: int, steps: int, b: int,
                    size: int, lr: float = 0.01) -> dict:
    r"""Train ``ConvSmall`` with one of :data:`METHODS` and return its accuracies at the end.

    M-SGD descends :math:`\sum_i W_i\ell_i(\theta)` with random weights :math:`W` of mean
    :math:`\mathbf 1/N` (Wu et al. 2020, Eq. 6); SGD is the case
    :math:`W_i = \mathbb 1[i\in B]/b`, [M-SGD-Fisher]-B draws a batch of B and Gaussian masks
    on it.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    seed : int
        Seed of the initialisation and of the batches and masks (the initialisation is the
        same for every method of a seed).
    n_train, n_test : int
        Training images (the first of FashionMNIST's test split) and test images (the first of
        its training split).
    steps : int
        Optimiser steps at step size ``lr``.
    b, size : int
        The small batch b and the large batch B (``size``).
    lr : float, optional
        Step size (default 0.01, the paper's FashionMNIST setting).

    Returns
    -------
    dict
        ``test_acc``, ``train_acc`` (on the whole training set), ``train_loss``,
        ``diverged`` (bool) and ``examples_per_step`` (the batch the step's gradient sees).
    """
    import torch

    from .. import config, data, msgd
    from .._common.checks import check_choice
    from ..models import ConvSmall

    method = check_choice("method", method, METHODS)
    device = config.get_device()

    def raw(split, limit):
        d = data.load_fashion_mnist(split, limit=limit, normalize=False, device=device,
                                    progress=False)
        return data.ArrayDataset(x=d.x * 255.0, y=d.y, name=d.name)

    train_set, test_set = raw("test", n_train), raw("train", n_test)
    torch.manual_seed(seed)
    net = ConvSmall().to(device)
    kind, kw = {"gd": ("gd", {}), "sgd": ("sgd", dict(b=b)), "large": ("sgd", dict(b=size)),
                "large_masks": ("fisher_ghost", dict(b=b, size=size))}[method]
    res = msgd.train_msgd(net, train_set, kind, steps=steps, lr=lr, eval_every=steps,
                          generator=torch.Generator().manual_seed(seed), progress=False, **kw)

    @torch.no_grad()
    def score(d):
        net.eval()
        hits, loss = 0.0, 0.0
        for i in range(0, len(d.y), 5_000):
            out = net(d.x[i:i + 5_000])
            hits += float((out.argmax(1) == d.y[i:i + 5_000]).sum())
            loss += float(torch.nn.functional.cross_entropy(out, d.y[i:i + 5_000],
                                                            reduction="sum"))
        return hits / len(d.y), loss / len(d.y)

    train_acc, train_loss = score(train_set)
    test_acc, _ = score(test_set)
    return dict(test_acc=test_acc, train_acc=train_acc, train_loss=train_loss,
                diverged=bool(res.diverged),
                examples_per_step={"gd": n_train, "sgd": b}.get(method, size))


EXPERIMENTS = {"large_batch": large_batch_run}


def tables(frames: dict) -> dict:
    """The chapter's result tables from the runs of :func:`large_batch_run`.

    Parameters
    ----------
    frames : dict
        ``{"large_batch": DataFrame}``, the runs as returned by :func:`gnilab.sweep.run`.

    Returns
    -------
    dict
        ``"methods"``: by number of steps and method, the mean, sd and s.e. over the seeds of
        the test accuracy, the mean training accuracy and loss (``seeds``, ``diverged``
        count); ``"gaps"``: by number of steps, for each method, the paired difference of its
        test accuracy from SGD's over the seeds (same initialisation), ``gap``, ``gap_sd``,
        ``gap_se``.
    """
    import pandas as pd

    runs = frames["large_batch"]
    ok = runs[runs.status == "ok"]
    by = ok.groupby(["steps", "method"])
    methods = by.agg(test_acc=("test_acc", "mean"), test_acc_sd=("test_acc", "std"),
                     train_acc=("train_acc", "mean"), train_loss=("train_loss", "mean"),
                     seeds=("test_acc", "size"), diverged=("diverged", "sum"),
                     examples_per_step=("examples_per_step", "first")).reset_index()
    methods["test_acc_se"] = methods.test_acc_sd / methods.seeds.pow(0.5)
    rows = []
    for steps, g in ok.groupby("steps"):
        paired = g.pivot_table(index="seed", columns="method", values="test_acc")
        for m in paired.columns:
            if m == "sgd" or "sgd" not in paired:
                continue
            d = (paired[m] - paired["sgd"]).dropna()
            rows.append(dict(steps=steps, method=m, gap=d.mean(), gap_sd=d.std(), seeds=len(d),
                             gap_se=d.std() / len(d) ** 0.5))
    return {"methods": methods, "gaps": pd.DataFrame(rows)}
