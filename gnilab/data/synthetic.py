"""Data sets generated on the spot, all deterministic given a CPU ``torch.Generator`` (random
numbers are drawn on the CPU and the result moved to the device, so a seeded run gives the same
data on CPU and CUDA): MNIST-1D (Greydanus 2020, offline), the papers' synthetic sets
(sinusoids, a rotated 2-D Gaussian, linear regression, separable 2-D points) and label
corruption for the random-label experiments."""
from __future__ import annotations

import functools
import math
import random
from typing import Optional, Sequence

import numpy as np
import torch

from .._common.checks import check_bool, check_choice, check_int, check_real
from ..config import resolve_device
from ._dataset import _SPLITS, ArrayDataset, _check_generator, _float_dtype
from .images import MNIST_CLASSES, _labels_to_tensor


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, train_split: float, seed: int):
    import mnist1d.data as m1d

    args = m1d.get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_split, seed
    # make_dataset seeds and draws from the *global* numpy and random generators; restore
    # them so loading data does not disturb the caller's random streams. (get_dataset, which
    # may download, is deliberately not used.)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = m1d.make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    out = tuple(np.ascontiguousarray(d[k]) for k in ("x", "y", "x_test", "y_test"))
    for a in out:
        a.setflags(write=False)
    return out


def load_mnist1d(*, num_samples: int = 5000, train_split: float = 0.8, seed: int = 0,
                 split: str = "train", device=None, dtype=None) -> ArrayDataset:
    """MNIST-1D (Greydanus 2020): 1-D signals of length 40 in 10 classes, generated locally with
    the ``mnist1d`` package (``make_dataset``; nothing is downloaded).

    Parameters
    ----------
    num_samples : int
        Total examples before the split; the package makes ``num_samples // 10`` per class, so
        the total is rounded down to a multiple of 10 (at least 10).
    train_split : float
        Fraction in (0, 1) that goes to the training split.
    seed : int
        Seed of the generator (non-negative). The package's default data set uses seed 42.
    split : {"train", "test"}

    Returns
    -------
    ArrayDataset
        ``x`` float ``[N, 40]`` (standardised by the package), ``y`` int64 ``[N]``.
    """
    num_samples = check_int("num_samples", num_samples, low=10)   # one example per class
    train_split = check_real("train_split", train_split, low=0, high=1, low_open=True,
                             high_open=True)
    seed = check_int("seed", seed, low=0)
    split = check_choice("split", split, _SPLITS)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    x, y, x_test, y_test = _mnist1d_arrays(num_samples, float(train_split), int(seed))
    xs, ys = (x, y) if split == "train" else (x_test, y_test)
    if len(ys) == 0:
        raise ValueError(f"split {split!r} is empty with num_samples={num_samples} and "
                         f"train_split={train_split}; increase num_samples")
    return ArrayDataset(x=torch.tensor(xs).to(device=device, dtype=dtype),
                        y=_labels_to_tensor(ys, device), name=f"mnist1d/{split}",
                        classes=MNIST_CLASSES)


# ---------------------------------------------------------------------------------------------
# the papers' synthetic sets
# ---------------------------------------------------------------------------------------------


def make_sinusoids(n: int = 200, *, freqs: Sequence[float] = tuple(range(5, 55, 5)),
                   generator: Optional[torch.Generator] = None, device=None,
                   dtype=None) -> ArrayDataset:
    """The sum-of-sinusoids regression toy of Camuto et al. (2020), *Explicit regularisation in
    Gaussian noise injections* (NeurIPS).

    ``t_i = i / n`` for ``i = 0, ..., n-1`` and

    .. math:: y(t) = \\sum_k \\sin(2\\pi f_k t + 2\\pi \\phi_k), \\qquad \\phi_k \\sim U(0, 1),

    with one random phase per frequency (frequencies in cycles per unit of ``t``).

    Parameters
    ----------
    n : int
        Number of points.
    freqs : sequence of float
        The frequencies ``f_k`` (default 5, 10, ..., 50).
    generator : torch.Generator, optional
        CPU generator for the phases.

    Returns
    -------
    ArrayDataset
        ``x = t`` of shape ``[n, 1]`` and ``y`` of shape ``[n, 1]``, both floating.
    """
    n = check_int("n", n, low=1)
    try:
        f = torch.as_tensor([float(v) for v in freqs], dtype=torch.float64)
    except (TypeError, ValueError):
        raise TypeError(f"freqs must be a sequence of numbers, got {freqs!r}") from None
    if f.numel() == 0 or not torch.isfinite(f).all():
        raise ValueError(f"freqs must be a non-empty sequence of finite numbers, got {freqs!r}")
    generator = _check_generator(generator)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    phases = torch.rand(f.numel(), generator=generator, dtype=torch.float64)
    t = torch.arange(n, dtype=torch.float64) / n
    y = torch.sin(2 * math.pi * (t[:, None] * f + phases)).sum(dim=1)
    return ArrayDataset(x=t[:, None].to(device=device, dtype=dtype),
                        y=y[:, None].to(device=device, dtype=dtype), name="sinusoids")


def make_rotated_gaussian_2d(n: int = 100, *, theta: float = math.pi / 4,
                             variances: Optional[Sequence[float]] = None,
                             stds: Optional[Sequence[float]] = None,
                             generator: Optional[torch.Generator] = None, device=None,
                             dtype=None) -> ArrayDataset:
    """The 2-D anisotropic Gaussian toy data of Zhu et al. (2019), *The anisotropic noise in
    stochastic gradient descent* (ICML), the 2-D toy example.

    Their generator is ``X = (randn(n, 2) * [sqrt(10), 1]) @ K * 1e-2`` with
    ``K = [[cos t, -sin t], [sin t, cos t]]``: a centred Gaussian with **variance** ``1e-3``
    along ``u1 = (cos t, -sin t)`` and ``1e-4`` along ``u2 = (sin t, cos t)``; at the default
    ``t = pi/4`` these are ``(1, -1)/sqrt(2)`` and ``(1, 1)/sqrt(2)``. Here
    ``X = (randn(n, 2) * sqrt(variances)) @ K`` with the same ``K``, so the rows of ``K`` are the
    principal axes and ``variances`` the variances along them.

    Parameters
    ----------
    n : int
        Number of points.
    theta : float
        Rotation angle ``t`` in radians.
    variances : pair of float, optional
        Variances along ``u1`` and ``u2`` (default ``(1e-3, 1e-4)``, the paper's).
    stds : pair of float, optional
        The same given as standard deviations (default ``(0.0316, 0.01)``); give at most one of
        ``variances`` and ``stds``.
    generator : torch.Generator, optional
        CPU generator.

    Returns
    -------
    ArrayDataset
        ``x`` ``[n, 2]``; ``y`` floating zeros ``[n]`` (the data are unlabelled).
    """
    n = check_int("n", n, low=1)
    theta = check_real("theta", theta)
    if variances is not None and stds is not None:
        raise ValueError(f"give at most one of variances and stds, got variances={variances!r} "
                         f"and stds={stds!r}")
    if stds is not None:
        sd = _check_pair(stds, "stds")
    else:
        sd = tuple(math.sqrt(v) for v in _check_pair((1e-3, 1e-4) if variances is None
                                                     else variances, "variances"))
    generator = _check_generator(generator)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    c, s = math.cos(theta), math.sin(theta)
    K = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    x = (z * torch.tensor(sd, dtype=torch.float64)) @ K
    return ArrayDataset(x=x.to(device=device, dtype=dtype),
                        y=torch.zeros(n, device=device, dtype=dtype), name="rotated-gaussian-2d")


def _check_pair(values, name: str) -> tuple:
    """Two finite numbers > 0, checked one by one as ``name[0]`` and ``name[1]``."""
    try:
        pair = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be a pair of numbers > 0, got {values!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair of numbers > 0, got {len(pair)} values: "
                         f"{values!r}")
    return tuple(check_real(f"{name}[{i}]", v, low=0, low_open=True) for i, v in enumerate(pair))


def make_linear_regression(n: int = 1000, d: int = 10, *, noise_std: float = 0.1,
                           generator: Optional[torch.Generator] = None, device=None,
                           dtype=None):
    """A Gaussian linear-regression problem: ``x ~ N(0, I_d)``, ``w* ~ N(0, I_d / d)`` and
    ``y = x w* + noise_std * eps`` with ``eps ~ N(0, 1)``, so ``Var(x w*) ~= 1`` and the
    noise-free signal-to-noise ratio is about ``1 / noise_std**2``.

    Parameters
    ----------
    n, d : int
        Examples and input dimension.
    noise_std : float
        Standard deviation (not variance) of the label noise, ``>= 0``.
    generator : torch.Generator, optional
        CPU generator; ``w*`` is drawn first, then ``x``, then the noise.

    Returns
    -------
    dataset : ArrayDataset
        ``x`` ``[n, d]``, ``y`` ``[n, 1]``.
    w_star : torch.Tensor
        The true weights, shape ``[d, 1]`` (so ``y = x @ w_star + noise``).
    """
    n, d = check_int("n", n, low=1), check_int("d", d, low=1)
    noise_std = check_real("noise_std", noise_std, low=0)
    generator = _check_generator(generator)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    w = torch.randn(d, 1, generator=generator, dtype=torch.float64) / math.sqrt(d)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    eps = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    y = x @ w + noise_std * eps
    ds = ArrayDataset(x=x.to(device=device, dtype=dtype), y=y.to(device=device, dtype=dtype),
                      name="linear-regression")
    return ds, w.to(device=device, dtype=dtype)


def make_separable_2d(n: int = 1000, *, generator: Optional[torch.Generator] = None,
                      device=None, dtype=None) -> ArrayDataset:
    """The linearly separable 2-D toy of Zhu et al. (2019) (one-hidden-layer experiment):
    ``x`` uniform on ``[-2, 2]^2`` and label 1 when ``x1 >= x2``, else 0.

    Labels are computed from ``x`` after the cast to ``dtype``, so they are exactly right for
    the returned inputs.

    Parameters
    ----------
    n : int
        Number of examples, ≥ 1 (default 1000).
    generator : torch.Generator, optional
        CPU generator for the inputs (drawn in float64 on the CPU; ``None``: torch's global
        one).
    device, dtype
        Where ``x`` and ``y`` go (default :func:`gnilab.config.get_device`) and ``x``'s
        floating dtype (default torch's, normally float32).

    Returns
    -------
    ArrayDataset
        ``x`` ``[n, 2]``, ``y`` int64 ``[n]``, ``classes`` ``("x1 < x2", "x1 >= x2")``.
    """
    n = check_int("n", n, low=1)
    generator = _check_generator(generator)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    x = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 4 - 2).to(dtype)
    y = (x[:, 0] >= x[:, 1]).long()
    return ArrayDataset(x=x.to(device), y=y.to(device), name="separable-2d",
                        classes=("x1 < x2", "x1 >= x2"))


def corrupt_labels(y: torch.Tensor, k: int, num_classes: int, *,
                   generator: Optional[torch.Generator] = None,
                   exclude_true: bool = False) -> tuple:
    """Replace the labels of ``k`` randomly chosen examples by uniformly random labels (the
    random-label experiments of Zhang et al. 2017 / Zhu et al. 2019).

    The ``k`` examples are chosen without replacement. With ``exclude_true=False`` (default)
    the new label is uniform over all ``num_classes`` classes, so about ``k / num_classes`` of
    the chosen examples keep their true label by chance; with ``exclude_true=True`` it is
    uniform over the other ``num_classes - 1`` classes, so every chosen label changes.

    Parameters
    ----------
    y : torch.Tensor
        Integer labels ``[N]`` in ``0 .. num_classes - 1``.
    k : int
        How many examples to corrupt, ``0 <= k <= N``.
    num_classes : int
        Number of classes (``>= 2`` with ``exclude_true``).
    generator : torch.Generator, optional
        CPU generator (the choice and the new labels are drawn on the CPU).
    exclude_true : bool
        Never draw the true label.

    Returns
    -------
    new_labels : torch.Tensor
        int64 ``[N]`` on ``y.device``.
    mask : torch.Tensor
        bool ``[N]``: which examples were chosen (not which changed).
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a 1-D integer tensor, got {type(y).__name__}")
    if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must be a 1-D integer tensor, got dtype {y.dtype} and shape "
                        f"{tuple(y.shape)}")
    n = y.shape[0]
    k = check_int("k", k, low=0, high=n)   # at most len(y)
    exclude_true = check_bool("exclude_true", exclude_true)
    num_classes = check_int("num_classes", num_classes, low=1)
    if exclude_true and num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 with exclude_true=True, got {num_classes}")
    generator = _check_generator(generator)
    y_cpu = y.detach().to("cpu", torch.int64)
    if n and (int(y_cpu.min()) < 0 or int(y_cpu.max()) >= num_classes):
        raise ValueError(f"labels y must lie in [0, num_classes) = [0, {num_classes}), got "
                         f"values in [{int(y_cpu.min())}, {int(y_cpu.max())}]")
    chosen = torch.randperm(n, generator=generator)[:k]
    if exclude_true:
        shift = torch.randint(1, num_classes, (k,), generator=generator)
        new = (y_cpu[chosen] + shift) % num_classes
    else:
        new = torch.randint(0, num_classes, (k,), generator=generator)
    out = y_cpu.clone()
    out[chosen] = new
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    return out.to(y.device), mask.to(y.device)
