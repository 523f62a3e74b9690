"""Curvature of the training loss and the structure of the gradient noise (Chapter 3).

Zhu, Wu, Yu, Wu & Ma (ICML 2019), "The anisotropic noise in stochastic gradient descent": near a
minimum the escaping efficiency of ``dθ = −∇L dt + Σ^{1/2} dW`` is governed by the indicator
``Tr(HΣ)`` (their Eqs. 11 and 13), compared at equal noise energy ``Tr Σ`` (Eq. 14) with its
isotropic counterpart ``Tr(H Σ̄) = Tr H · Tr Σ / D``; Proposition 1 (Eqs. 15–17) bounds the ratio
through the projection coefficient ``a`` of Eq. 16, ``u₁ᵀΣu₁ ≥ a λ₁ Tr Σ / Tr H``.

Everything here works on the loss ``L(θ) = (1/n) Σ_i ℓ(x_i, y_i; θ)`` (their Eq. 1) of any torch
model over a data set (an object with tensors ``x`` and ``y``), without forming a D×D matrix
unless asked to (D = number of trainable parameters):

* :class:`HessianOperator` — Hessian–vector products (double backward through a cached graph,
  or recomputed chunk by chunk), a linear operator of shape ``(D, D)``;
* :func:`lanczos` / :func:`hessian_eigenpairs` — top-k eigenpairs by Lanczos with full
  reorthogonalisation (or ARPACK's ``eigsh`` on the same operator);
* :func:`hutchinson_trace`, :func:`spectral_density` (stochastic Lanczos quadrature);
* :class:`GradientCovariance` — Σ of per-example (or minibatch) gradients as a low-rank factor;
* :func:`noise_indicator` — ``Tr(HΣ)`` and ``Tr H Tr Σ / D``; :func:`projection_coefficient`;
* :func:`expected_sharpness` — ``E[L(θ+ν)] − L(θ)``, ``ν ~ N(0, δ²I)`` (their Fig. 3, right).

The model is put in ``eval`` mode while the loss is evaluated (dropout off), as in
:mod:`gnilab.noise`; its parameters are never modified.

The parts: the loss and its Hessian operator (``_hessian.py``), Lanczos, traces and spectral
densities (``_spectrum.py``), the gradient covariance and the indicator (``_covariance.py``) and
the expected sharpness (``_sharpness.py``).
"""
from ._covariance import (GradientCovariance, NoiseIndicator, gradient_covariance, noise_indicator,
                          projection_coefficient)
from ._hessian import MAX_DENSE, HessianOperator, dense_hessian, hessian_operator
from ._sharpness import SharpnessEstimate, expected_sharpness
from ._spectrum import (Eigenpairs, SpectralDensity, TraceEstimate, hessian_eigenpairs,
                        hutchinson_trace, lanczos, spectral_density)

__all__ = [
    "MAX_DENSE", "HessianOperator", "hessian_operator", "dense_hessian",
    "Eigenpairs", "lanczos", "hessian_eigenpairs", "TraceEstimate", "hutchinson_trace",
    "SpectralDensity", "spectral_density",
    "GradientCovariance", "gradient_covariance", "NoiseIndicator", "noise_indicator",
    "projection_coefficient",
    "SharpnessEstimate", "expected_sharpness",
]
