r"""Noise injection nodes (NINs) as a probe of learning dynamics (Levi, Bloch, Freytsis &
Volansky 2022, *Noise Injection as a Probe of Deep Learning Dynamics*, arXiv:2210.13599).

The paper's equations were lost from the text we have; what follows is re-derived here from
its prose (and ``shared/reference/experiment_settings.md`` §5.2), and every formula is checked
numerically in the test suite. Symbols and equation labels are ours.

The node (paper §2)
-------------------
A NIN emits one scalar :math:`\varepsilon_i` per example, :math:`E\varepsilon = 0`,
:math:`E\varepsilon^2 = \sigma^2` (``sigma`` is a **standard deviation**), symmetric about 0,
and feeds it through a trainable noise-injection weight (NIW) vector :math:`\theta_\ell` into
the pre-activations of a chosen layer ℓ:

.. math::  \tilde z_i^{(\ell)} = z_i^{(\ell)} + \theta_\ell\,\varepsilon_i .      \qquad (N1)

:class:`NoiseInjection` attaches it to named ``nn.Linear`` layers of any model. The noise is
re-drawn every step (``mode="step"``), every epoch (``"epoch"``) or drawn once per example
(``"fixed"``, which puts it on a par with a data input); it is zero in ``eval()`` mode, as the
paper evaluates.

The expansion and the NIW update (paper Eqs. 1-3, App. C)
---------------------------------------------------------
Taylor-expanding each per-example loss :math:`\ell_i(z_i)` in the shift :math:`\theta\varepsilon_i`,

.. math::  L = \frac1B\sum_i \ell_i(z_i + \theta\varepsilon_i)
             = L_0 + \underbrace{\theta^\top\langle\varepsilon\nabla_z\ell\rangle}_{R_1}
             + \underbrace{\tfrac12\theta^\top\langle\varepsilon^2\nabla_z^2\ell\rangle\theta}_{R_2}
             + \sum_{k\ge3}\tfrac1{k!}\langle\varepsilon^k(\theta\cdot\nabla_z)^k\ell\rangle ,
             \qquad (N2)

with :math:`\langle\cdot\rangle` the batch average. For a symmetric law every odd term has mean
zero and a spread :math:`\propto 1/\sqrt B` (App. C, Theorem 1); :math:`E R_2 =
\frac{\sigma^2}2\theta^\top\bar H_z\theta` with the *local Hessian* :math:`\bar H_z =
\langle\nabla_z^2\ell\rangle`. The SGD step on θ is therefore

.. math::  \theta_{t+1} = \theta_t - \eta\big[\langle\varepsilon\nabla_z\ell\rangle
           + \langle\varepsilon^2\nabla_z^2\ell\rangle\theta_t + O(\varepsilon^3)\big],\qquad
           E\,\theta_{t+1} \approx (I - \eta\sigma^2\bar H_z)\,\theta_t ,      \qquad (N3)

so the NIW decays along each eigen-direction of :math:`\bar H_z` at the rate
:math:`\eta\sigma^2\lambda`, and its norm at about :math:`\eta\sigma^2\hat\theta^\top\bar
H_z\hat\theta` ("the NIW dynamics is dictated by the local curvature", claim (iii)).
:func:`local_curvature` measures :math:`\hat\theta^\top\langle\nabla_z\ell\rangle` and
:math:`\hat\theta^\top\bar H_z\hat\theta` by a Hessian-vector product with respect to a common
shift of the layer's pre-activations (the NIW with :math:`\varepsilon_i = 1`);
:func:`niw_probe` records them during training.

The linear toy (paper §3)
-------------------------
:mod:`gnilab.nin.toy` holds a two-layer linear network with a NIN, whose SGD dynamics reduce
exactly to a 3×3 Gram matrix, its catapult-like map (T2) and the four phases
(:data:`PHASES`: decoupled, decay, catapult, divergent) predicted from
:math:`c = \eta\sigma^2\lambda_\theta`; its names are also importable from here
(``nin.simulate_toy``, ``nin.predict_phase``, ...).

Sweeps over σ
-------------
:func:`train_sweep` trains one copy of a network per σ in a single batched computation
(``torch.func.vmap`` over stacked parameters, the same minibatches and the same standard noise
draws for every σ), with per-σ divergence flags.

The parts: the node (``_injection.py``), the local curvature and the probe during training
(``_probe.py``), exponential fits (``_decay.py``), the batched sweep (``_sweep.py``) and the
linear toy (:mod:`gnilab.nin.toy`).
"""
from . import toy
from ._decay import DecayFit, decay_timescales, fit_decay
from ._injection import LAWS, MODES, NoiseInjection
from ._probe import LocalCurvature, local_curvature, local_hessian, niw_probe, train_nin
from ._sweep import SweepResult, network_phase, train_sweep
from .toy import (PHASES, PhaseBoundaries, ToyMoments, ToyRun, ToyState, ToyTimescales,
                  classify_phase, phase_boundaries, predict_phase, reduced_map, simulate_toy,
                  toy_init, toy_moments, toy_step, toy_timescales)

__all__ = [
    "LAWS", "MODES", "PHASES",
    "NoiseInjection",
    "LocalCurvature", "local_curvature", "local_hessian",
    "DecayFit", "fit_decay", "decay_timescales",
    "niw_probe", "train_nin",
    "SweepResult", "train_sweep", "network_phase",
    "toy",      # the linear toy; its names are also attributes of gnilab.nin (nin.simulate_toy)
]
