"""Device, seeding and the scale switch shared by every chapter.

The *scale* decides how big an experiment is:

``fast``
    smoke runs (seconds); ``pytest`` sets it for every test and notebook.
``default``
    what the book runs on 2 CPU cores, each chapter within a few minutes.
``paper``
    the source papers' own settings, meant for a GPU.

It is read from the environment variable ``GNILAB_SCALE`` (default ``default``), or set for the
current process with :func:`set_scale`.

The *base seed* shifts every random seed a chapter uses. It is read from ``GNILAB_SEED``
(default ``0``), or set with :func:`set_seed` / ``setup(seed=...)``. A chapter derives each of
its seeds as ``derive_seed(k)`` = ``base * SEED_STRIDE + k``, so base 0 gives the seeds ``k``
the book was written with, and bases 1, 2, ... give disjoint, independent sets of seeds.
"""
from __future__ import annotations

import os
import random
from typing import Any, Optional

import numpy as np
import torch

from ._common.checks import check_choice, check_int

__all__ = [
    "SCALES",
    "get_device",
    "get_scale",
    "set_scale",
    "by_scale",
    "seed_everything",
    "resolve_device",
    "resolve_dtype",
    "setup",
    "SEED_STRIDE",
    "get_seed",
    "set_seed",
    "derive_seed",
    "subset_seed",
]

SCALES = ("fast", "default", "paper")
_scale_override: Optional[str] = None
_seed_override: Optional[int] = None
SEED_STRIDE = 10_000   # seeds k < SEED_STRIDE of different bases never coincide


def _check_scale(scale: str, name: str) -> str:
    return check_choice(name, scale, SCALES)


def get_scale() -> str:
    """The active scale: :func:`set_scale`'s value, else ``$GNILAB_SCALE``, else ``"default"``.

    Returns
    -------
    str
        One of :data:`SCALES`: ``"fast"``, ``"default"`` or ``"paper"``.
    """
    if _scale_override is not None:
        return _scale_override
    return _check_scale(os.environ.get("GNILAB_SCALE", "default").strip().lower() or "default",
                        "GNILAB_SCALE")


def set_scale(scale: Optional[str]) -> None:
    """Set the scale for this process (``None`` goes back to ``$GNILAB_SCALE``).

    Parameters
    ----------
    scale : str or None
        One of :data:`SCALES` (``"fast"``, ``"default"``, ``"paper"``), or ``None`` to drop
        the override and read ``$GNILAB_SCALE`` again.
    """
    global _scale_override
    _scale_override = None if scale is None else _check_scale(scale, "scale")


def by_scale(fast: Any, default: Any, paper: Any, scale: Optional[str] = None) -> Any:
    """Pick the value that belongs to the active (or the given) scale.

    Parameters
    ----------
    fast : Any
        Value returned under the ``"fast"`` scale.
    default : Any
        Value returned under the ``"default"`` scale.
    paper : Any
        Value returned under the ``"paper"`` scale.
    scale : str or None, optional
        Scale to use instead of the active one (:func:`get_scale`); one of :data:`SCALES`.

    Returns
    -------
    Any
        The one of ``fast``, ``default``, ``paper`` that matches the scale.

    Examples
    --------
    >>> by_scale(fast=100, default=10_000, paper=60_000, scale="fast")
    100
    """
    scale = get_scale() if scale is None else _check_scale(scale, "scale")
    return {"fast": fast, "default": default, "paper": paper}[scale]


def get_seed() -> int:
    """The active base seed: :func:`set_seed`'s value, else ``$GNILAB_SEED``, else ``0``.

    Returns
    -------
    int
        The base seed, an integer ``>= 0``.
    """
    if _seed_override is not None:
        return _seed_override
    text = os.environ.get("GNILAB_SEED", "0").strip() or "0"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"GNILAB_SEED must be an integer >= 0, got {text!r}") from None
    return check_int("GNILAB_SEED", value, low=0)


def set_seed(seed: Optional[int]) -> None:
    """Set the base seed for this process (``None`` goes back to ``$GNILAB_SEED``).

    Parameters
    ----------
    seed : int or None
        New base seed, an integer ``>= 0``, or ``None`` to drop the override and read
        ``$GNILAB_SEED`` again.
    """
    global _seed_override
    _seed_override = None if seed is None else check_int("seed", seed, low=0)


def derive_seed(offset: int = 0, base: Optional[int] = None) -> int:
    """The seed number ``offset`` of a chapter under base seed ``base`` (default
    :func:`get_seed`): ``base * SEED_STRIDE + offset``.

    Parameters
    ----------
    offset : int, optional
        Index of the seed within a chapter, ``0 <= offset < SEED_STRIDE`` (default 0).
    base : int or None, optional
        Base seed, an integer ``>= 0``; ``None`` uses :func:`get_seed`.

    Returns
    -------
    int
        The seed ``base * SEED_STRIDE + offset``.

    Examples
    --------
    >>> derive_seed(3, base=0), derive_seed(3, base=2)
    (3, 20003)
    """
    offset = check_int("offset", offset, low=0, high=SEED_STRIDE - 1)
    base = get_seed() if base is None else check_int("base", base, low=0)
    return base * SEED_STRIDE + offset


def subset_seed(offset: int = 0, base: Optional[int] = None) -> Optional[int]:
    """The seed of a random data subset, or ``None`` under base seed 0 (where a chapter keeps
    the first examples of a data set, as the book was written): pass it as ``subset_seed=`` of
    the loaders in :mod:`gnilab.data`.

    Parameters
    ----------
    offset : int, optional
        Index of the seed within a chapter, ``0 <= offset < SEED_STRIDE`` (default 0).
    base : int or None, optional
        Base seed, an integer ``>= 0``; ``None`` uses :func:`get_seed`.

    Returns
    -------
    int or None
        ``None`` when the base seed is 0, else ``derive_seed(offset, base)``.
    """
    base = get_seed() if base is None else check_int("base", base, low=0)
    return None if base == 0 else derive_seed(offset, base)


def get_device(prefer: Optional[str] = None) -> torch.device:
    """CUDA when available (or ``$GNILAB_DEVICE`` / ``prefer`` when given), else the CPU.

    Parameters
    ----------
    prefer : str or None, optional
        Device string such as ``"cpu"`` or ``"cuda:0"``; takes precedence over
        ``$GNILAB_DEVICE``. Asking for CUDA when it is unavailable raises ``ValueError``.

    Returns
    -------
    torch.device
        The chosen device.
    """
    choice = prefer or os.environ.get("GNILAB_DEVICE")
    if choice:
        dev = torch.device(choice)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} was asked for but CUDA is not available")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device=None, *tensors) -> torch.device:
    """``device`` if given, else the device of the first tensor among ``tensors``, else
    :func:`get_device`.

    Parameters
    ----------
    device : str or torch.device or None, optional
        Explicit device; when given it is returned as a :class:`torch.device`.
    *tensors : Any
        Objects searched in order for the first :class:`torch.Tensor`; non-tensors are skipped.

    Returns
    -------
    torch.device
        The resolved device.
    """
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if isinstance(t, torch.Tensor):
            return t.device
    return get_device()


def resolve_dtype(dtype=None, *tensors) -> torch.dtype:
    """``dtype`` if given, else the floating dtype of the first floating tensor, else torch's
    default dtype.

    Parameters
    ----------
    dtype : torch.dtype or None, optional
        Explicit dtype; returned unchanged when given.
    *tensors : Any
        Objects searched in order for the first floating-point :class:`torch.Tensor`.

    Returns
    -------
    torch.dtype
        The resolved dtype.
    """
    if dtype is not None:
        return dtype
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA); return a CPU generator seeded
    the same way, for functions that take ``generator=``.

    A seeded CPU run is bit-for-bit repeatable.

    Parameters
    ----------
    seed : int, optional
        Seed, an integer ``>= 0`` (default 0); NumPy gets ``seed % 2**32``.

    Returns
    -------
    torch.Generator
        A new CPU generator seeded with ``seed``.
    """
    seed = check_int("seed", seed, low=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup(seed: Optional[int] = None, style: bool = True, verbose: bool = True) -> torch.device:
    """One call at the top of a notebook: pick the device, seed everything, set the plot style,
    and print device, scale and base seed. Returns the device.

    ``seed`` is the base seed (see :func:`derive_seed`); ``None`` keeps :func:`get_seed`
    (``$GNILAB_SEED``, default 0), an integer sets it with :func:`set_seed`. The global RNGs
    are seeded with ``derive_seed(0)``.

    Parameters
    ----------
    seed : int or None, optional
        Base seed, an integer ``>= 0``, set with :func:`set_seed`; ``None`` keeps the active
        base seed.
    style : bool, optional
        Whether to apply :func:`gnilab.plotting.set_style` (default ``True``).
    verbose : bool, optional
        Whether to print the device, scale, base seed and torch version (default ``True``).

    Returns
    -------
    torch.device
        The device chosen by :func:`get_device`.
    """
    if seed is not None:
        set_seed(seed)
    seed = get_seed()
    device = get_device()
    seed_everything(derive_seed(0))
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    if style:
        from .plotting import set_style

        set_style()
    if verbose:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"gnilab: device={device} ({name}), scale={get_scale()}, seed={seed}, "
              f"torch {torch.__version__}")
    return device
