"""gnilab — the noise inside stochastic gradient descent, as a PyTorch library.

One module or subpackage per concept; import the ones you need, e.g. ``from gnilab import data``.
Each lists its public names in ``__all__``; names starting with ``_`` are private.

Foundations (every chapter)

``config``     device, seeding and the ``fast``/``default``/``paper`` scale switch
``data``       real data sets (FashionMNIST, MNIST, CIFAR-10, SVHN, digits, MNIST-1D) and the
               papers' synthetic sets, as tensors on the device (subpackage: ``images``,
               ``synthetic``)
``models``     MLPs and the small CNN of the anisotropic-noise experiments
``train``      GD / minibatch SGD loops with histories, callbacks and divergence handling
``claims``     a chapter's quantitative claims, checked with margins from their spread
``plotting``   one seaborn style for the book and a few figure helpers (explorers)
``sweep``      grids of experiment runs on Ray or in-process, each result stored once with its
               provenance
``reproduce``  the chapters' experiment grids by scale and their committed result tables
               (``python -m gnilab reproduce``)

The noise, by chapter

``stable``     (Ch. 1, 2, 5) α-stable laws: densities, sampling, fits, tail-index estimators
``noise``      (Ch. 1, 3) the gradient-noise probe: minibatch noise U = g_batch - g_full
``levy``       (Ch. 2) Lévy-driven gradient dynamics and their metastability
``curvature``  (Ch. 3, 4) Hessian operators, Lanczos, traces, the gradient covariance, Tr(HΣ)
``langevin``   (Ch. 3) GD with the anisotropic noises of Zhu et al. (the GLD family) and the
               Ornstein–Uhlenbeck escape formula
``msgd``       (Ch. 4) multiplicative noise: M-SGD's weight families, Theorem 1's complexities
``gni``        (Ch. 5) Gaussian noise injections: explicit and implicit effects, the asymmetric
               stable dynamics
``nin``        (Ch. 6) noise injection nodes as a probe of the dynamics; ``nin.toy``: the linear
               toy and its phases

Teaching

``seminar``    student notebooks without solutions and reveal.js decks (``python -m gnilab``)
"""
import importlib
import warnings

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "models", "train", "claims", "plotting", "sweep", "reproduce",
               "stable", "noise", "levy", "curvature", "langevin", "msgd", "gni", "nin", "seminar")
_RENAMED = {"dynamics": "langevin"}      # old name -> new name (0.1.0)
__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name):  # lazy submodule import: ``import gnilab; gnilab.data``
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(f"gnilab.{name} was renamed gnilab.{new}; the old name will be removed",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(f"{__name__}.{new}")
    raise AttributeError(f"module 'gnilab' has no attribute {name!r}")
