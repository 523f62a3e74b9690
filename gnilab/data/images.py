"""The image data sets the book trains on, as :class:`~gnilab.data.ArrayDataset` on the device:
Fashion-MNIST (from the Debian package ``dataset-fashion-mnist``, ``$GNILAB_DATA`` or the cache),
MNIST, CIFAR-10 and SVHN (``$GNILAB_DATA``, the cache, or ``download=True`` with MD5 checks),
and scikit-learn's 8x8 digits (offline).

Inputs are scaled to [0, 1] and, with ``normalize=True``, standardised by the training set's
pixel mean and standard deviation (per channel for the colour sets)."""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .._common.checks import check_bool, check_choice
from ..config import resolve_device
from . import _idx
from ._dataset import (_SPLITS, ArrayDataset, DataFileError, PathLike, _check_limit,
                       _check_subset_seed, _float_dtype, _kept_rows)
from ._idx import _idx_error, _locate, read_idx

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
           f"{_idx._SYSTEM_DIR / 'fashion-mnist'})")
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

    Parameters
    ----------
    split : {"train", "test"}
        The 60000 training or the 10000 test examples.
    root, download, limit, flatten, device, dtype, mirrors, progress, subset_seed
        As in :func:`load_fashion_mnist`.
    normalize : bool
        After scaling pixels to [0, 1], subtract the training-set mean 0.1307 and divide by
        its standard deviation 0.3081 (the same constants for both splits).

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

    Parameters
    ----------
    normalize : bool
        Standardise with the scalar mean and standard deviation of all values (default
        ``True``); ``False`` keeps the [0, 1] scaling.
    device, dtype
        Where ``x`` and ``y`` go (default :func:`gnilab.config.get_device`) and ``x``'s
        floating dtype (default torch's, normally float32).

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
