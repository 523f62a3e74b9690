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
------------------------------------------------------------------
:func:`make_sinusoids`, :func:`make_rotated_gaussian_2d`, :func:`make_linear_regression`,
:func:`make_separable_2d`, and :func:`corrupt_labels` for the random-label experiments.

Random numbers are always drawn on the CPU and the result moved to the device, so a seeded run
gives the same data on CPU and CUDA.

The parts: the container and errors (``_dataset.py``), files, the search path and downloads
(``_idx.py``), the image sets (:mod:`gnilab.data.images`) and the generated sets
(:mod:`gnilab.data.synthetic`).
"""
from . import images, synthetic
from ._dataset import ArrayDataset, DataFileError, DownloadError
from ._idx import cache_dir, download_fashion_mnist, read_idx
from .images import (CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES, SVHN_CLASSES,
                     load_cifar10, load_digits, load_fashion_mnist, load_mnist, load_svhn)
from .synthetic import (corrupt_labels, load_mnist1d, make_linear_regression,
                        make_rotated_gaussian_2d, make_separable_2d, make_sinusoids)

__all__ = [
    "DataFileError", "DownloadError", "ArrayDataset", "read_idx", "cache_dir",
    "download_fashion_mnist",
    # images
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "CIFAR10_CLASSES", "SVHN_CLASSES",
    "load_fashion_mnist", "load_mnist", "load_cifar10", "load_svhn", "load_digits",
    # generated
    "load_mnist1d", "make_sinusoids", "make_rotated_gaussian_2d", "make_linear_regression",
    "make_separable_2d", "corrupt_labels",
]
