"""The container every loader returns (:class:`ArrayDataset`), the errors they raise and the
argument checks they share."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from .._common.checks import check_bool, check_generator, check_int
from ..config import resolve_dtype

PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


class DataFileError(ValueError):
    """A data file is missing, truncated, corrupt or of the wrong kind.

    The message names the file (or the places searched) and says how to fix it.
    """


class DownloadError(RuntimeError):
    """A download failed (no network, HTTP error, timeout).

    The message names the URLs tried, the directory and file names to place the files in by
    hand, and the ``GNILAB_DATA`` variable.
    """


# ---------------------------------------------------------------------------------------------
# the dataset container
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class ArrayDataset:
    """A data set held as two tensors on one device.

    Parameters
    ----------
    x : torch.Tensor
        Inputs, shape ``[N, ...]``.
    y : torch.Tensor
        Targets, shape ``[N, ...]``: ``int64`` class labels or floating regression targets.
    name : str
        A short name, e.g. ``"fashion-mnist/train"``.
    classes : tuple of str, optional
        Class names for classification sets (``y[i]`` indexes into it); ``None`` otherwise.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str
    classes: Optional[tuple] = None

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or not isinstance(self.y, torch.Tensor):
            raise TypeError(f"x and y must be torch.Tensors, got {type(self.x).__name__} and "
                            f"{type(self.y).__name__}")
        if self.x.dim() == 0 or self.y.dim() == 0:
            raise ValueError(f"x and y need a leading example dimension, got shapes "
                             f"{tuple(self.x.shape)} and {tuple(self.y.shape)}")
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x and y must hold the same number of examples, got "
                             f"{self.x.shape[0]} and {self.y.shape[0]}")
        if self.x.device != self.y.device:
            raise ValueError(f"x and y must be on the same device, got {self.x.device} and "
                             f"{self.y.device}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, n={len(self)}, "
                f"x={tuple(self.x.shape)} {self.x.dtype}, y={tuple(self.y.shape)} {self.y.dtype}, "
                f"num_classes={self.num_classes}, device={self.x.device})")

    @property
    def num_classes(self) -> Optional[int]:
        """``len(classes)`` for a classification set, ``None`` otherwise."""
        return None if self.classes is None else len(self.classes)

    @property
    def device(self) -> torch.device:
        """The device both tensors live on."""
        return self.x.device

    def to(self, device=None, dtype=None) -> "ArrayDataset":
        """A copy on ``device`` (``None``: stay) with ``x`` cast to ``dtype`` (``None``: keep).

        ``dtype`` also applies to ``y`` when ``y`` is floating; integer labels stay ``int64``.
        """
        dev = self.x.device if device is None else torch.device(device)
        x = self.x.to(device=dev, dtype=dtype)
        y_dtype = dtype if (dtype is not None and self.y.is_floating_point()) else None
        y = self.y.to(device=dev, dtype=y_dtype)
        return dataclasses.replace(self, x=x, y=y)

    def subset(self, index) -> "ArrayDataset":
        """The examples picked by ``index``: a ``slice``, an integer index tensor (or sequence),
        or a boolean mask of length ``len(self)``."""
        if isinstance(index, slice):
            return dataclasses.replace(self, x=self.x[index], y=self.y[index])
        if isinstance(index, (bool, np.bool_)):
            raise TypeError(f"index must be a slice, an integer tensor or a boolean mask, got "
                            f"{index!r}")
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = torch.as_tensor(index, device=self.x.device)
        if idx.dtype == torch.bool:
            if idx.shape != (len(self),):
                raise ValueError(f"a boolean mask index must have shape ({len(self)},), got "
                                 f"{tuple(idx.shape)}")
        elif idx.is_floating_point() or idx.is_complex() or idx.dim() != 1:
            if idx.numel() == 0 and idx.dim() == 1:
                idx = idx.long()
            else:
                raise TypeError(f"index must be a slice, a 1-D integer tensor or a boolean mask, "
                                f"got a tensor of dtype {idx.dtype} and shape {tuple(idx.shape)}")
        return dataclasses.replace(self, x=self.x[idx], y=self.y[idx])

    def batches(self, batch_size: Optional[int], *, shuffle: bool = True,
                generator: Optional[torch.Generator] = None,
                drop_last: bool = False) -> list:
        """Split ``range(len(self))`` into minibatches of indices.

        Parameters
        ----------
        batch_size : int or None
            Examples per batch (a positive integer); ``None`` gives one full batch.
        shuffle : bool
            Shuffle with one ``torch.randperm`` (drawn on the CPU with ``generator``) before
            splitting; ``False`` keeps the order.
        generator : torch.Generator, optional
            CPU generator for the permutation (``None``: torch's global one).
        drop_last : bool
            Drop the last batch when it is smaller than ``batch_size``.

        Returns
        -------
        list of torch.Tensor
            ``int64`` index tensors on ``x.device``; together (unless ``drop_last`` removed a
            short tail) they hold every index exactly once. Use ``x[idx], y[idx]``.
        """
        n = len(self)
        bs = n if batch_size is None else check_int("batch_size", batch_size, low=1)
        shuffle = check_bool("shuffle", shuffle)
        if n == 0:
            return []
        if shuffle:
            order = torch.randperm(n, generator=_check_generator(generator))
        else:
            order = torch.arange(n)
        order = order.to(self.x.device)
        chunks = list(torch.split(order, max(bs, 1)))
        if drop_last and chunks and chunks[-1].numel() < bs:
            chunks.pop()
        return chunks


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
_SPLITS = ("train", "test")


def _check_limit(limit) -> Optional[int]:
    return None if limit is None else check_int("limit", limit, low=1)


def _check_subset_seed(seed) -> Optional[int]:
    return None if seed is None else check_int("subset_seed", seed, low=0)


def _kept_rows(n: int, limit: Optional[int], subset_seed: Optional[int]):
    """Which of ``n`` examples ``limit`` keeps: the first ``limit`` (``subset_seed=None``), or
    ``limit`` distinct rows drawn uniformly with that seed, in increasing order."""
    if limit is None or limit >= n:
        return slice(None)
    if subset_seed is None:
        return slice(0, limit)
    g = torch.Generator().manual_seed(subset_seed)
    return np.sort(torch.randperm(n, generator=g)[:limit].numpy())


def _check_generator(generator) -> Optional[torch.Generator]:
    return check_generator("generator", generator, cpu_only=True)


def _float_dtype(dtype) -> torch.dtype:
    dt = resolve_dtype(dtype)
    if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return dt
