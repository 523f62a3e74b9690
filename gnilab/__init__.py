"""gnilab — the noise inside stochastic gradient descent.

Modules (one concept each; import the ones you need, e.g. ``from gnilab import data``):

``config``    device, seeding and the ``fast``/``default``/``paper`` scale switch
``data``      real data sets (FashionMNIST, MNIST, CIFAR-10, SVHN, digits, mnist1d) and the
              papers' synthetic sets, as tensors on the device
``models``    MLPs and the small CNN of the anisotropic-noise experiments
``train``     GD / minibatch SGD loops with histories, callbacks and divergence handling
``noise``     the gradient-noise probe (minibatch noise U = g_batch - g_full and its statistics)
``plotting``  one seaborn style for the book and a few figure helpers
``stable``    alpha-stable laws: densities, sampling, fits, tail-index estimators
``levy``      Lévy-driven gradient dynamics and their metastability
``gni``       Gaussian noise injections: explicit and implicit effects, asymmetric dynamics
``curvature`` Hessian operators, Lanczos, traces, the gradient covariance and Tr(H Sigma)
``dynamics``  GD with the anisotropic noises of Zhu et al. (GLD family), the OU escape formula
``msgd``      multiplicative noise: M-SGD's weight families, Theorem 1's local complexities
``nin``       noise injection nodes: NIWs as a probe of the dynamics, the linear toy's phases
``claims``    a chapter's quantitative claims, checked with margins from their spread and recorded
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "models", "train", "noise", "plotting", "stable", "levy", "gni",
               "curvature", "dynamics", "msgd", "nin", "claims")
__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name):  # lazy submodule import: ``import gnilab; gnilab.data``
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gnilab' has no attribute {name!r}")
