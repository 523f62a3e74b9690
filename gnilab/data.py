"""Data sets as tensors on the device: the real image sets the book trains on, and the papers'
synthetic sets.

Everything here returns an :class:`ArrayDataset` (inputs ``x``, targets ``y``, a name and the
class names) whose tensors already sit on the device (:func:`gnilab.config.resolve_device`).
Minibatching is done by index (:meth:`ArrayDataset.batches`), never by a per-sample Python loop.

Real data
---------
:func:`load_fashion_mnist`
    Zalando's Fashion-MNIST, read from the Debian package ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist``), from ``$GNILAB_DATA``, or from the cache.
:func:`load_mnist`, :func:`load_cifar10`, :func:`load_svhn`
    read from ``$GNILAB_DATA`` or the cache; ``download=True`` fetches the official files (MD5
    checked) into the cache ``~/.cache/gnilab/<name>`` (``$XDG_CACHE_HOME/gnilab/<name>``).
:func:`load_digits`, :func:`load_mnist1d`
    scikit-learn's 8x8 digits and MNIST-1D, both available offline.

Synthetic data (all deterministic given a CPU ``torch.Generator``)
-----------------------------------------------------------------
:func:`make_sinusoids`, :func:`make_rotated_gaussian_2d`, :func:`make_linear_regression`,
:func:`make_separable_2d`, and :func:`corrupt_labels` for the random-label experiments.

Random numbers are always drawn on the CPU and the result moved to the device, so a seeded run
gives the same data on CPU and CUDA.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import random
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ._validation import check_bool, check_choice, check_generator, check_int, check_real
from .config import resolve_device, resolve_dtype

__all__ = [
    "DataFileError",
    "DownloadError",
    "ArrayDataset",
    "read_idx",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "SVHN_CLASSES",
    "cache_dir",
    "download_fashion_mnist",
    "load_fashion_mnist",
    "load_mnist",
    "load_cifar10",
    "load_svhn",
    "load_digits",
    "load_mnist1d",
    "make_sinusoids",
    "make_rotated_gaussian_2d",
    "make_linear_regression",
    "make_separable_2d",
    "corrupt_labels",
]

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


# ---------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)
# ---------------------------------------------------------------------------------------------
# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_IDX_FIX = ("To fix it: if the file came from the Debian package, reinstall it "
            "(`sudo apt-get install --reinstall dataset-fashion-mnist`); if it was downloaded into "
            "the gnilab cache, delete it so that it is downloaded again (download=True); or point "
            "the GNILAB_DATA environment variable at a directory holding good files.")


def _idx_error(path: Path, problem: str) -> DataFileError:
    return DataFileError(f"{path}: {problem}. {_IDX_FIX}")


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is a big-endian magic number ``0x0000TTDD`` (``TT`` the type code: ``0x08``
    uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64;
    ``DD`` the number of dimensions), then ``DD`` big-endian uint32 sizes, then the data in C
    order. Label files are ``0x00000801`` (1-D uint8), image files ``0x00000803`` (3-D uint8).
    Compression is recognised from the content (gzip magic bytes), not the file name.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the header's shape.

    Raises
    ------
    DataFileError
        Missing, unreadable, truncated or corrupt file, wrong magic number, or a payload whose
        size is not exactly the product of the dimensions times the item size. The message names
        the file and how to fix it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise _idx_error(path, "file not found") from None
    except OSError as exc:
        raise _idx_error(path, f"cannot be read ({exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise _idx_error(path, f"is a truncated or corrupt gzip file ({exc})") from None
    elif path.suffix == ".gz" and raw[:2] != b"\x00\x00":
        raise _idx_error(path, "is named .gz but is neither gzip-compressed nor an IDX file")
    if len(raw) < 4:
        raise _idx_error(path, f"is too short ({len(raw)} bytes) to hold an IDX header")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise _idx_error(path, f"has the wrong magic number 0x{raw[:4].hex()} (an IDX file "
                               f"starts with 0x000008DD for uint8 data with DD dimensions, e.g. "
                               f"0x00000801 for labels and 0x00000803 for images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _idx_error(path, f"is truncated inside its header ({len(raw)} bytes, the header "
                               f"of a {ndim}-D IDX file needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise _idx_error(path, f"is {what}: the header promises dims {dims} of {dtype.name} "
                               f"({expected} payload bytes) but the file holds {got}")
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


# ---------------------------------------------------------------------------------------------
# where the files live, and downloads
# ---------------------------------------------------------------------------------------------
# The Debian/Ubuntu data-set packages (e.g. dataset-fashion-mnist) install here.
_SYSTEM_DIR = Path("/usr/share/datasets")

# Official base URLs, in the order tried.
_MIRRORS = {
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/",),
}

# File name -> official MD5 of the file as published (the compressed file where compressed).
# (The Debian package recompresses Fashion-MNIST, so its .gz files have other MD5s; installed
# and user-supplied files are therefore validated by parsing, and MD5s are checked on download.)
_MD5 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    },
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
}

_PRETTY = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10",
           "svhn": "SVHN"}

_TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def cache_dir(name: Optional[str] = None) -> Path:
    """gnilab's download cache: ``$XDG_CACHE_HOME/gnilab`` (default ``~/.cache/gnilab``), or its
    sub-directory ``name`` (``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``, ``"svhn"``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "gnilab"
    return path if name is None else path / name


def _search_dirs(name: str, root: Optional[PathLike], bare_data_dir: bool) -> list:
    """The directories searched for data set ``name``, as ``(path, why)`` pairs, in order."""
    if root is not None:
        return [(Path(root).expanduser(), "root argument")]
    dirs = []
    env = os.environ.get("GNILAB_DATA", "")
    for entry in (e for e in env.split(os.pathsep) if e):
        base = Path(entry).expanduser()
        dirs.append((base / name, "$GNILAB_DATA/" + name))
        if bare_data_dir:
            dirs.append((base, "$GNILAB_DATA"))
    dirs.append((_SYSTEM_DIR / name, "Debian package dataset-fashion-mnist"
                 if name == "fashion-mnist" else "system data sets"))
    dirs.append((cache_dir(name), "gnilab download cache"))
    return dirs


def _find(dirs, groups) -> Optional[list]:
    """In the first directory of ``dirs`` that holds one of the alternatives of every group of
    ``groups``, return those paths; ``None`` if no directory does."""
    for d, _ in dirs:
        found = []
        for alternatives in groups:
            hit = next((d / a for a in alternatives if (d / a).exists()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def _locate(name: str, groups, files: Sequence[str], root, download: bool, mirrors,
            progress: bool, bare_data_dir: bool = True, extra_fix: str = "",
            also: str = "") -> list:
    """Paths of data set ``name``: one alternative of every group of ``groups`` from the first
    searched directory that holds them all (:func:`_search_dirs`, :func:`_find`); else, with
    ``download``, the ``files`` fetched into the target directory; else a
    :class:`DataFileError` that lists the directories searched and the fixes."""
    dirs = _search_dirs(name, root, bare_data_dir)
    paths = _find(dirs, groups)
    if paths is None and download:
        paths = _download(name, files, _target_dir(name, root), mirrors, progress)
    if paths is None:
        raise DataFileError(_missing_message(name, files, dirs, root, extra_fix, also=also))
    return paths


def _target_dir(name: str, root: Optional[PathLike]) -> Path:
    return Path(root).expanduser() if root is not None else cache_dir(name)


def _normalise_mirrors(name: str, mirrors) -> tuple:
    if mirrors is None:
        return _MIRRORS[name]
    if isinstance(mirrors, (str, bytes)):
        mirrors = [mirrors]
    mirrors = tuple(str(m) for m in mirrors)
    if not mirrors:
        raise ValueError(f"mirrors must be None or a non-empty sequence of base URLs, got "
                         f"{mirrors!r}")
    return mirrors


def _missing_message(name: str, split_files: Sequence[str], dirs, root, extra_fix: str = "",
                     also: str = ""):
    pretty = _PRETTY[name]
    lines = [f"{pretty} files {', '.join(split_files)}{also} were not found. Searched:"]
    for d, why in dirs:
        lines.append(f"  - {d}  ({why})")
    if root is None and not os.environ.get("GNILAB_DATA"):
        lines.append("  (GNILAB_DATA is not set)")
    lines.append("To fix it, do one of:")
    if extra_fix:
        lines.append(extra_fix)
    target = _target_dir(name, root)
    lines.append(f"  - place the files by hand in {target} as {', '.join(split_files)} "
                 f"(official source: {_MIRRORS[name][0]})")
    lines.append(f"  - set GNILAB_DATA to a directory holding them, directly or in a "
                 f"'{name}' sub-directory")
    lines.append(f"  - call gnilab.data.load_{name.replace('-', '_')}(..., download=True) where "
                 f"the internet is reachable (it downloads into {target})")
    return "\n".join(lines)


def _fetch(url: str, dest: Path, md5: Optional[str], progress: bool) -> None:
    """Download ``url`` to ``dest`` via a temporary file in the same directory, check the MD5,
    and rename atomically. Network problems raise ``OSError``/``HTTPException``; an MD5
    mismatch raises :class:`DataFileError`. No partial file is left behind either way."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        got = 0
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "gnilab"})
            with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=dest.name, disable=None if progress else True,
                          leave=False) as bar:
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        h.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
        if total is not None and got != total:
            raise http.client.IncompleteRead(b"", total - got)
        if md5 is not None and h.hexdigest() != md5:
            raise DataFileError(
                f"{dest.name} downloaded from {url} has MD5 {h.hexdigest()}, expected {md5}; "
                f"the partial file was deleted. The mirror may serve a different or damaged "
                f"file: try again, pass another mirror (mirrors=[...]), or place a good copy of "
                f"{dest.name} in {dest.parent} by hand.")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _download(name: str, files: Sequence[str], target: Path, mirrors, progress: bool) -> list:
    """Make sure every file of ``files`` exists in ``target``, downloading the missing ones
    from ``mirrors`` (tried in order). Returns the paths."""
    mirrors = _normalise_mirrors(name, mirrors)
    paths = []
    for fname in files:
        dest = target / fname
        paths.append(dest)
        if dest.exists():
            continue
        md5 = _MD5[name].get(fname)
        failures, bad_checksum = [], None
        for base in mirrors:
            url = base.rstrip("/") + "/" + fname
            try:
                _fetch(url, dest, md5, progress)
                break
            except DataFileError as exc:
                bad_checksum = exc
                failures.append(f"  {url}: checksum mismatch")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # URLError / HTTPError / timeouts are OSErrors; a malformed mirror URL is a
                # ValueError from urllib.
                if isinstance(exc, urllib.error.HTTPError):
                    reason = f"HTTP {exc.code} {exc.reason}"
                else:
                    reason = getattr(exc, "reason", None) or exc
                failures.append(f"  {url}: {type(exc).__name__}: {reason}")
        else:
            if bad_checksum is not None:
                raise bad_checksum
            raise DownloadError(
                f"Could not download {_PRETTY[name]} file {fname}; tried:\n"
                + "\n".join(failures)
                + f"\nThe internet may not be reachable from this machine. Download the files "
                  f"elsewhere (official source: {_MIRRORS[name][0]}) and place them by hand "
                  f"in\n  {target}\nnamed exactly\n  "
                + ", ".join(files)
                + f"\nor set the GNILAB_DATA environment variable to a directory holding them "
                  f"(directly or in a '{name}' sub-directory).")
    return paths


def download_fashion_mnist(*, root: Optional[PathLike] = None, mirrors=None,
                           progress: bool = True) -> Path:
    """Download the four Fashion-MNIST files (MD5-checked) into ``root`` or the cache
    (``cache_dir("fashion-mnist")``); files already there are kept. Returns the directory.

    Raises
    ------
    DownloadError
        When no mirror could be reached; the message says where to place the files by hand.
    DataFileError
        When a download has the wrong MD5 (the partial file is deleted).
    """
    target = _target_dir("fashion-mnist", root)
    _download("fashion-mnist", list(_MD5["fashion-mnist"]), target, mirrors, progress)
    return target


# ---------------------------------------------------------------------------------------------
# MNIST-like loaders
# ---------------------------------------------------------------------------------------------
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))
SVHN_CLASSES = MNIST_CLASSES
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

# Training-set pixel mean and (population, ddof=0) standard deviation on the [0, 1] scale.
# Fashion-MNIST: computed here from the 60000 x 784 uint8 pixels of the Debian package's
# train-images-idx3-ubyte.gz as (pixels / 255).mean() and .std() in float64 (0.28604059698...,
# 0.35302424451...); tests/test_data.py recomputes them from the files.
_FASHION_MNIST_MEAN, _FASHION_MNIST_STD = 0.2860406, 0.3530242
# MNIST, CIFAR-10, SVHN: the same statistics of the official training sets as widely published
# (MNIST 0.1307 / 0.3081; CIFAR-10 and SVHN per channel R, G, B). Not recomputed here: these
# sets are not installed where this module was written.
_MNIST_MEAN, _MNIST_STD = 0.1306605, 0.3081078
_CIFAR10_MEAN = (0.4913997, 0.4821584, 0.4465309)
_CIFAR10_STD = (0.2470322, 0.2434851, 0.2615878)
_SVHN_MEAN = (0.4376821, 0.4437697, 0.4728044)
_SVHN_STD = (0.1980301, 0.2010156, 0.1970361)


def _idx_names(split: str) -> tuple:
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _images_to_tensor(images: np.ndarray, mean, std, normalize: bool, device, dtype):
    """uint8 ``[N, C, H, W]`` -> float on ``device`` scaled to [0, 1], then standardised with
    the per-channel (or scalar) ``mean`` and ``std`` when ``normalize``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).to(dtype).div_(255)
    if normalize:
        shape = (1, -1, 1, 1)
        m = torch.tensor(mean, dtype=torch.float64).reshape(shape).to(device=device, dtype=dtype)
        s = torch.tensor(std, dtype=torch.float64).reshape(shape).to(device=device, dtype=dtype)
        x.sub_(m).div_(s)
    return x


def _labels_to_tensor(labels: np.ndarray, device) -> torch.Tensor:
    return torch.tensor(np.asarray(labels, dtype=np.int64), device=device)


def _load_idx_pair(name: str, split: str, paths, limit, normalize, flatten, device, dtype,
                   mean, std, classes, subset_seed=None) -> ArrayDataset:
    img_path, lab_path = paths
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise _idx_error(img_path, f"is not an image file: expected 3-D uint8 data, got "
                                   f"{images.ndim}-D {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise _idx_error(lab_path, f"is not a label file: expected 1-D uint8 data, got "
                                   f"{labels.ndim}-D {labels.dtype} of shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise _idx_error(lab_path, f"holds {labels.shape[0]} labels but {img_path.name} holds "
                                   f"{images.shape[0]} images")
    if labels.size and int(labels.max()) >= len(classes):
        raise _idx_error(lab_path, f"holds label {int(labels.max())}, outside "
                                   f"0..{len(classes) - 1}")
    rows = _kept_rows(images.shape[0], limit, subset_seed)
    images, labels = images[rows], labels[rows]
    x = _images_to_tensor(images[:, None], mean, std, normalize, device, dtype)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return ArrayDataset(x=x, y=_labels_to_tensor(labels, device), name=f"{name}/{split}",
                        classes=classes)


def _locate_idx(name, split, root, download, mirrors, progress, bare_data_dir, extra_fix):
    images, labels = _idx_names(split)
    return _locate(name, [(images, images + ".gz"), (labels, labels + ".gz")],
                   [images + ".gz", labels + ".gz"], root, download, mirrors, progress,
                   bare_data_dir=bare_data_dir, extra_fix=extra_fix,
                   also=" (or uncompressed, without .gz)")


def load_fashion_mnist(split: str = "train", *, root: Optional[PathLike] = None,
                       download: bool = False, limit: Optional[int] = None,
                       normalize: bool = True, flatten: bool = False, device=None, dtype=None,
                       mirrors=None, progress: bool = True,
                       subset_seed: Optional[int] = None) -> ArrayDataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28x28 grey images of 10 kinds of clothing,
    60000 training and 10000 test examples, 6000 / 1000 per class.

    Files ``train-images-idx3-ubyte`` etc. (plain or ``.gz``) are looked for in this order:
    ``root`` (only there, when given); ``$GNILAB_DATA/fashion-mnist`` and ``$GNILAB_DATA``;
    ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``); the cache
    ``cache_dir("fashion-mnist")``, which ``download=True`` / :func:`download_fashion_mnist`
    fill.

    Parameters
    ----------
    split : {"train", "test"}
    root : path-like, optional
        Directory holding the files (then nothing else is searched, and downloads go there).
    download : bool
        Download the official files into the cache (or ``root``) when they are not found.
    limit : int, optional
        Keep only the first ``limit`` examples (all when ``limit`` exceeds the size), or, with
        ``subset_seed``, ``limit`` examples drawn without replacement (kept in file order).
    normalize : bool
        After scaling pixels to [0, 1], subtract the training-set mean 0.2860406 and divide by
        its standard deviation 0.3530242 (the same constants for both splits).
    flatten : bool
        Return ``x`` of shape ``[N, 784]`` instead of ``[N, 1, 28, 28]``.
    device, dtype
        Where ``x`` and ``y`` go (default :func:`gnilab.config.get_device`) and ``x``'s
        floating dtype (default torch's, normally float32).
    mirrors : sequence of str, optional
        Base URLs to download from instead of the official ones.
    progress : bool
        Show a download progress bar.
    subset_seed : int, optional
        Seed of the random subset that ``limit`` keeps (``None``: the first ``limit``). The
        chapters pass :func:`gnilab.config.subset_seed`, which is ``None`` at base seed 0.

    Returns
    -------
    ArrayDataset
        ``x`` float ``[N, 1, 28, 28]`` (or ``[N, 784]``), ``y`` int64 ``[N]`` in 0..9, ``classes``
        :data:`FASHION_MNIST_CLASSES`.
    """
    split = check_choice("split", split, _SPLITS)
    limit = _check_limit(limit)
    download, normalize, flatten = (check_bool("download", download),
                                    check_bool("normalize", normalize),
                                    check_bool("flatten", flatten))
    device, dtype = resolve_device(device), _float_dtype(dtype)
    apt = ("  - `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs the files in "
           f"{_SYSTEM_DIR / 'fashion-mnist'})")
    paths = _locate_idx("fashion-mnist", split, root, download, mirrors, progress, True, apt)
    return _load_idx_pair("fashion-mnist", split, paths, limit, normalize, flatten, device, dtype,
                          _FASHION_MNIST_MEAN, _FASHION_MNIST_STD, FASHION_MNIST_CLASSES,
                          _check_subset_seed(subset_seed))


def load_mnist(split: str = "train", *, root: Optional[PathLike] = None, download: bool = False,
               limit: Optional[int] = None, normalize: bool = True, flatten: bool = False,
               device=None, dtype=None, mirrors=None, progress: bool = True,
               subset_seed: Optional[int] = None) -> ArrayDataset:
    """MNIST handwritten digits (LeCun et al. 1998): 28x28 grey images, 60000 / 10000 examples.

    Files (plain or ``.gz``) are looked for in ``root`` (only there, when given), else in
    ``$GNILAB_DATA/mnist`` (not ``$GNILAB_DATA`` itself: Fashion-MNIST uses the same file
    names), ``/usr/share/datasets/mnist`` and the cache ``cache_dir("mnist")``. With
    ``download=True`` missing files are fetched (MD5-checked) into ``root`` or the cache.

    Parameters are as in :func:`load_fashion_mnist`; ``normalize`` uses the training-set mean
    0.1307 and standard deviation 0.3081.

    Returns
    -------
    ArrayDataset
        ``x`` float ``[N, 1, 28, 28]`` (or ``[N, 784]``), ``y`` int64 ``[N]``.

    Raises
    ------
    DataFileError
        Files missing (and ``download=False``), corrupt, or a download with the wrong MD5.
    DownloadError
        No mirror reachable; the message says where to place the files by hand.
    """
    split = check_choice("split", split, _SPLITS)
    limit = _check_limit(limit)
    download, normalize, flatten = (check_bool("download", download),
                                    check_bool("normalize", normalize),
                                    check_bool("flatten", flatten))
    device, dtype = resolve_device(device), _float_dtype(dtype)
    paths = _locate_idx("mnist", split, root, download, mirrors, progress, False, "")
    return _load_idx_pair("mnist", split, paths, limit, normalize, flatten, device, dtype,
                          _MNIST_MEAN, _MNIST_STD, MNIST_CLASSES, _check_subset_seed(subset_seed))


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
                  "test": ("test_batch",)}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batches: builtin containers and numpy arrays only, so that a
    tampered file cannot run code."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles from Python 3
            return super().find_class(module, name)  # store bytes; harmless
        if module.split(".")[0] == "numpy" and name in self._ALLOWED:
            if module.startswith("numpy.core") and hasattr(np, "_core"):
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _cifar_batch(blob: bytes, where: str):
    try:
        d = _NumpyOnlyUnpickler(io.BytesIO(blob), encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as exc:  # any unpickling / key / shape problem is a bad file
        raise DataFileError(f"{where}: not a CIFAR-10 python batch ({type(exc).__name__}: "
                            f"{exc}). {_CIFAR_FIX}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise DataFileError(f"{where}: expected data [n, 3072] and n labels, got data "
                            f"{data.shape} and labels {labels.shape}. {_CIFAR_FIX}")
    return data, labels


_CIFAR_FIX = ("To fix it: delete the file so that it is downloaded again (download=True), or "
              "point GNILAB_DATA at a directory holding a good cifar-10-python.tar.gz.")


def _read_cifar(path: Path, split: str):
    wanted = _CIFAR_BATCHES[split]
    blobs = {}
    if path.is_dir():
        for b in wanted:
            try:
                blobs[b] = ((path / b).read_bytes(), str(path / b))
            except OSError as exc:
                raise DataFileError(f"{path / b}: cannot be read ({exc}). {_CIFAR_FIX}") from None
    else:
        try:
            # Stream through the archive once, reading only the wanted members into memory.
            with tarfile.open(path, mode="r:*") as tar:
                for member in tar:
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in wanted and base not in blobs:
                        blobs[base] = (tar.extractfile(member).read(), f"{path}:{member.name}")
                        if len(blobs) == len(wanted):
                            break
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataFileError(f"{path}: truncated or corrupt archive ({exc}). "
                                f"{_CIFAR_FIX}") from None
        missing = [b for b in wanted if b not in blobs]
        if missing:
            raise DataFileError(f"{path}: the archive lacks {', '.join(missing)}. {_CIFAR_FIX}")
    parts = [_cifar_batch(*blobs[b]) for b in wanted]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def load_cifar10(split: str = "train", *, root: Optional[PathLike] = None, download: bool = False,
                 limit: Optional[int] = None, normalize: bool = True, device=None, dtype=None,
                 mirrors=None, progress: bool = True) -> ArrayDataset:
    """CIFAR-10 (Krizhevsky 2009): 32x32 colour images in 10 classes, 50000 / 10000 examples.

    Reads the python version ``cifar-10-python.tar.gz`` (batches ``data_batch_1`` .. ``_5`` and
    ``test_batch``) straight from the archive without extracting it; an extracted
    ``cifar-10-batches-py/`` directory works too. Searched: ``root`` (only, when given), else
    ``$GNILAB_DATA/cifar10``, ``$GNILAB_DATA``, ``/usr/share/datasets/cifar10`` and the cache
    ``cache_dir("cifar10")``; ``download=True`` fetches the archive (163 MiB, MD5-checked).
    The batches are pickles; they are read with an unpickler that only admits numpy arrays.

    Parameters
    ----------
    split : {"train", "test"}
    root, download, limit, device, dtype, mirrors, progress
        As in :func:`load_mnist`.
    normalize : bool
        After scaling to [0, 1], standardise each channel with the training-set means
        (0.4914, 0.4822, 0.4465) and standard deviations (0.2470, 0.2435, 0.2616).

    Returns
    -------
    ArrayDataset
        ``x`` float ``[N, 3, 32, 32]`` (channels R, G, B), ``y`` int64 ``[N]``, ``classes``
        :data:`CIFAR10_CLASSES`.
    """
    split = check_choice("split", split, _SPLITS)
    limit = _check_limit(limit)
    download, normalize = check_bool("download", download), check_bool("normalize", normalize)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    paths = _locate("cifar10", [(_CIFAR_ARCHIVE, _CIFAR_DIR)], [_CIFAR_ARCHIVE], root, download,
                    mirrors, progress, also=f" (or its extracted {_CIFAR_DIR}/ folder)")
    data, labels = _read_cifar(paths[0], split)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(f"{paths[0]}: labels outside 0..9. {_CIFAR_FIX}")
    if limit is not None:
        data, labels = data[:limit], labels[:limit]
    x = _images_to_tensor(data.reshape(-1, 3, 32, 32), _CIFAR10_MEAN, _CIFAR10_STD, normalize,
                          device, dtype)
    return ArrayDataset(x=x, y=_labels_to_tensor(labels, device), name=f"cifar10/{split}",
                        classes=CIFAR10_CLASSES)


# ---------------------------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------------------------
def load_svhn(split: str = "train", *, root: Optional[PathLike] = None, download: bool = False,
              limit: Optional[int] = None, normalize: bool = True, device=None, dtype=None,
              mirrors=None, progress: bool = True) -> ArrayDataset:
    """SVHN cropped digits (Netzer et al. 2011): 32x32 colour images of house-number digits,
    73257 training and 26032 test examples (the ``extra`` set is not offered).

    Reads ``train_32x32.mat`` / ``test_32x32.mat`` (MATLAB files with ``X`` uint8
    ``[32, 32, 3, N]`` and ``y`` ``[N, 1]`` in 1..10, where 10 stands for the digit 0) with
    :func:`scipy.io.loadmat`. Searched: ``root`` (only, when given), else ``$GNILAB_DATA/svhn``,
    ``$GNILAB_DATA``, ``/usr/share/datasets/svhn`` and the cache ``cache_dir("svhn")``;
    ``download=True`` fetches the split's file (MD5-checked).

    Parameters
    ----------
    split : {"train", "test"}
    root, download, limit, device, dtype, mirrors, progress
        As in :func:`load_mnist`.
    normalize : bool
        After scaling to [0, 1], standardise each channel with the training-set means
        (0.4377, 0.4438, 0.4728) and standard deviations (0.1980, 0.2010, 0.1970).

    Returns
    -------
    ArrayDataset
        ``x`` float ``[N, 3, 32, 32]``, ``y`` int64 ``[N]`` in 0..9 (label 10 mapped to 0).
    """
    import scipy.io

    split = check_choice("split", split, _SPLITS)
    limit = _check_limit(limit)
    download, normalize = check_bool("download", download), check_bool("normalize", normalize)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    fname = f"{split}_32x32.mat"
    path = _locate("svhn", [(fname,)], [fname], root, download, mirrors, progress)[0]
    fix = ("To fix it: delete the file so that it is downloaded again (download=True), or point "
           "GNILAB_DATA at a directory holding a good copy.")
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
        X, y = mat["X"], mat["y"]
    except Exception as exc:  # scipy raises assorted errors for damaged files
        raise DataFileError(f"{path}: not a readable SVHN .mat file ({type(exc).__name__}: "
                            f"{exc}). {fix}") from None
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or y.size != X.shape[3]:
        raise DataFileError(f"{path}: expected X [32, 32, 3, N] and y [N, 1], got X {X.shape} "
                            f"and y {y.shape}. {fix}")
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > 10):
        raise DataFileError(f"{path}: labels outside 1..10. {fix}")
    y[y == 10] = 0
    if limit is not None:
        X, y = X[..., :limit], y[:limit]
    images = np.transpose(X, (3, 2, 0, 1)).astype(np.uint8, copy=False)  # [N, C, H, W]
    x = _images_to_tensor(images, _SVHN_MEAN, _SVHN_STD, normalize, device, dtype)
    return ArrayDataset(x=x, y=_labels_to_tensor(y, device), name=f"svhn/{split}",
                        classes=SVHN_CLASSES)


# ---------------------------------------------------------------------------------------------
# offline sets: scikit-learn digits, MNIST-1D
# ---------------------------------------------------------------------------------------------
def load_digits(*, normalize: bool = True, device=None, dtype=None) -> ArrayDataset:
    """scikit-learn's 8x8 handwritten digits (UCI optical digits test set; ships with
    scikit-learn, so no download): 1797 examples, 10 classes.

    Pixels (counts 0..16) are scaled to [0, 1] by dividing by 16; with ``normalize`` they are
    then standardised with the scalar mean and standard deviation of all 1797 x 64 values (the
    set has no train/test split; per-pixel standardisation is avoided because some border
    pixels are always 0).

    Returns
    -------
    ArrayDataset
        ``x`` float ``[1797, 64]``, ``y`` int64 ``[1797]``, ``classes`` ``("0", ..., "9")``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    normalize = check_bool("normalize", normalize)
    device, dtype = resolve_device(device), _float_dtype(dtype)
    bunch = _sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    if normalize:
        x = (x - x.mean()) / x.std()
    return ArrayDataset(x=torch.from_numpy(x).to(device=device, dtype=dtype),
                        y=_labels_to_tensor(bunch.target, device), name="digits",
                        classes=MNIST_CLASSES)


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
