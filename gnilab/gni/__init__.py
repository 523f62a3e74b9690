r"""Gaussian noise injections (GNIs), their explicit and implicit effects, and the asymmetric
heavy-tailed dynamics they induce (Camuto, Wang, Zhu, Holmes, Gürbüzbalaban & Şimşekli 2021,
*Asymmetric heavy tails and implicit bias in Gaussian noise injections*, ICML; the explicit
regulariser is from Camuto, Willetts, Şimşekli, Roberts & Holmes 2020, NeurIPS).

Noise injections (paper Eq. 2.8)
--------------------------------
:class:`GaussianNoiseInjection` wraps any feed-forward ``nn.Module`` and injects, at chosen
*sites* (module outputs, plus optionally the input and the output of the network),

* additive noise :math:`\tilde h = h + \sigma\epsilon`, or
* multiplicative noise :math:`\tilde h = h\odot(1+\sigma\epsilon)`,

:math:`\epsilon\sim\mathcal N(0, I)` fresh for every row and every forward pass. ``sigma`` is a
**standard deviation** (the papers' code calls it ``sig``; its comments say "variance"). By
default the sites are every activation module of the model (after each hidden non-linearity,
not the input or the output), as in the paper's experiments.

The M-sample objective (Eq. 4.5) and the two effects (Eq. 3.2)
--------------------------------------------------------------
:math:`\tilde L_M(D; w) = \frac1M\sum_{m=1}^M \tilde L(D; w, \epsilon_m)` is evaluated in one
forward pass over M stacked copies of the data in *copy-major* order: row ``m * N + i`` is
copy ``m`` of example ``i``, so ``per_row.view(M, N)`` groups copies (the public code tiled
sample-major and averaged as if copy-major, mis-grouping per-example averages).

With :math:`\Delta L(\epsilon) = \tilde L(\epsilon) - L` (``L`` the loss without noise), the
*explicit effect* is :math:`E_\epsilon[\Delta L]`, estimated by Monte Carlo over M draws, and
the *implicit effect* is :math:`E_L = \Delta L(\epsilon) - E_\epsilon[\Delta L]` for one further
independent draw :math:`\epsilon` (:func:`implicit_effect`). Its gradient is the gradient noise
that GNIs add to (full-batch) gradient descent (Remark 4.1), heavy-tailed and skewed (Thm 3.1).

The explicit regulariser
------------------------
:func:`explicit_regulariser` is the closed form of Camuto et al. (2020): to second order in
:math:`\sigma`,

.. math::

    E_\epsilon[\Delta L] \approx R = \frac{\sigma^2}{2}\sum_k \operatorname{tr}
    \big(J_k^\top H_L J_k\big),\qquad J_k = \partial h_L/\partial h_k,

averaged over examples, with :math:`H_L` the Hessian of the per-example loss in the network
output (``2I`` for gnilab's squared error without ½, :math:`\mathrm{diag}(p) - pp^\top` for
cross-entropy) and, for multiplicative noise, column ``j`` of :math:`J_k` multiplied by
:math:`h_{k,j}`. It keeps only the curvature of the loss: it is exact to :math:`O(\sigma^2)`
when the network output is (multi)linear in the injected noise. The network's own curvature
enters at the same order and is left out; for ReLU networks that is the kinks: a unit whose
pre-activation lies within about :math:`\sigma` of 0 shifts its mean output by
:math:`O(\sigma)`, a first-order effect on the loss that adds up to :math:`O(\sigma^2)`
(measured in the tests and in Chapter 5's exercise 5.2).

Training (Figs. 4, 5, 7, 8)
---------------------------
:func:`train_gni` trains on :math:`\tilde L_M` (``copies=M``; M = 1 is ordinary GNI training),
on :math:`L + R` (``explicit_regulariser=True``, the "Exp Reg" arm), or, with
``replacement="stable"|"gaussian"``, on the explicit-effect gradient of :math:`\tilde L_M` plus
noise drawn per layer from an :math:`S_\alpha` law (or a Gaussian) fitted to the implicit-effect
gradients of the same step (the paper's Fig. 4 "replacement"). It runs
:func:`gnilab.train.train`, so it shares its history, evaluation and divergence handling.

Dynamics (Eqs. 4.4-4.9)
-----------------------
The asymmetric stable SDE :math:`dw_t = -f'(w_t)dt + \varepsilon\,dL^{\alpha,\theta}_t`
(Eq. 4.3) and its Euler scheme (Eq. 4.4, :func:`simulate_gni`); the Feller skewness conversion
(:func:`feller_to_stable`); the corrected drift :math:`b_{h,K}` of Eq. 4.8
(:func:`corrected_drift`), whose stationary law is the Gibbs measure
:math:`\pi\propto e^{-\varepsilon^{-\alpha}f}` of Theorem 4.1 (:func:`gibbs_density`,
:func:`tv_to_gibbs`).

The parts: the wrapper and the stacked objective (``_injection.py``), the two effects and the
explicit regulariser (``_effects.py``), training (``_training.py``), the tail diagnostics
(``_tails.py``), the SDE and its drift (``_dynamics.py``) and the Gibbs measure
(``_gibbs.py``).
"""
from ._dynamics import (CorrectedDrift, GNIRun, corrected_drift, feller_to_stable, grunwald_weights,
                        h0, simulate_gni, stable_to_feller)
from ._effects import ImplicitEffect, explicit_regulariser, implicit_effect
from ._gibbs import (TVDistance, density_modes, gibbs_density, gibbs_probabilities, gibbs_sample,
                     tv_to_gibbs)
from ._injection import (GaussianNoiseInjection, accumulated_noise, m_sample_loss,
                         per_copy_losses, stacked_losses)
from ._tails import half_tail_fits, sub_weibull, sub_weibull_pdf, tail_statistics, tail_table
from ._training import compare_arms, marginal_loss_probe, train_gni

__all__ = [
    # injections and the M-sample objective (Eqs. 2.8, 4.5)
    "GaussianNoiseInjection", "per_copy_losses", "stacked_losses", "m_sample_loss",
    "accumulated_noise",
    # the explicit/implicit split (Eq. 3.2) and the explicit regulariser
    "ImplicitEffect", "implicit_effect", "explicit_regulariser",
    # training (Figs. 4, 5, 7, 8)
    "train_gni", "marginal_loss_probe", "compare_arms",
    # tails (Fig. 2, Fig. 3, Definition 3.2)
    "sub_weibull", "sub_weibull_pdf", "half_tail_fits", "tail_statistics", "tail_table",
    # the asymmetric stable dynamics (Eqs. 4.3-4.9, Theorem 4.1)
    "feller_to_stable", "stable_to_feller", "grunwald_weights", "h0", "CorrectedDrift",
    "corrected_drift", "GNIRun", "simulate_gni", "gibbs_density", "gibbs_probabilities",
    "gibbs_sample", "TVDistance", "tv_to_gibbs", "density_modes",
]
