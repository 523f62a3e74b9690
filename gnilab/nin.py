r"""Noise injection nodes (NINs) as a probe of learning dynamics (Levi, Bloch, Freytsis &
Volansky 2022, *Noise Injection as a Probe of Deep Learning Dynamics*, arXiv:2210.13599).

The paper's equations were lost from the text we have; what follows is re-derived here from
its prose (and ``shared/reference/experiment_settings.md`` §5.2), and every formula is checked
numerically in ``tests/test_nin.py``. Symbols and equation labels are ours.

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

The linear toy (paper §3; normalisation ours)
--------------------------------------------
A two-layer linear network of width n, no biases, a NIN on the first layer, univariate
regression :math:`y = a x`, :math:`x\sim N(0,\sigma_x^2)`, :math:`\varepsilon\sim N(0,\sigma^2)`,
NTK scaling:

.. math::  f(x,\varepsilon) = \tfrac1{\sqrt n}\,v\cdot(u\,x + \theta\,\varepsilon),\qquad
           L = \tfrac12\langle (f - y)^2\rangle .

With :math:`A = v\cdot u/\sqrt n`, :math:`\Phi = v\cdot\theta/\sqrt n` (the NIW as the output
sees it) and the batch moments :math:`S_{xx} = \langle x^2\rangle`, :math:`S_{x\varepsilon}`,
:math:`S_{\varepsilon\varepsilon}`, :math:`S_{xy}`, :math:`S_{\varepsilon y}`, the residual is
:math:`r = A x + \Phi\varepsilon - y`, and with :math:`g_x = \langle r x\rangle = A S_{xx} +
\Phi S_{x\varepsilon} - S_{xy}`, :math:`g_\varepsilon = \langle r\varepsilon\rangle = A
S_{x\varepsilon} + \Phi S_{\varepsilon\varepsilon} - S_{\varepsilon y}` one SGD step is
exactly (:func:`toy_step`)

.. math::  u' = u - \tfrac{\eta g_x}{\sqrt n} v,\quad
           \theta' = \theta - \tfrac{\eta g_\varepsilon}{\sqrt n} v,\quad
           v' = v - \tfrac{\eta}{\sqrt n}(g_x u + g_\varepsilon\theta).      \qquad (T1)

The update is linear in (u, θ, v), so the dynamics close on their 3×3 Gram matrix
:math:`G' = M G M^\top`; :func:`simulate_toy` runs that exact reduction for many (σ, η) at once,
at a cost independent of n. With population moments (:math:`S_{xx} = \sigma_x^2`,
:math:`S_{\varepsilon\varepsilon} = \sigma^2`, :math:`S_{x\varepsilon} = 0`) and the data terms
dropped (:math:`g_x = 0`: the paper's noise-dominated Eq. 7), the noise channel reduces exactly
to two numbers, :math:`\Phi` and :math:`\lambda_\theta = (|v|^2 + |\theta|^2)/n`
(:func:`reduced_map`):

.. math::  \Phi' = \Phi\big(1 - \eta\sigma^2\lambda_\theta + \tfrac{\eta^2\sigma^4}n\Phi^2\big),
           \qquad \lambda_\theta' = \lambda_\theta + \tfrac{\eta\sigma^2\Phi^2}n
           \big(\eta\sigma^2\lambda_\theta - 4\big),       \qquad (T2)

Lewkowycz et al.'s (2020) catapult map with :math:`\eta\lambda \to \eta\sigma^2\lambda_\theta`.
:math:`\sigma^2\lambda_\theta` is the top eigenvalue of the noise part of the loss Hessian in
(θ, v), so with :math:`c = \eta\sigma^2\lambda_\theta` (:func:`predict_phase`):

* ``decoupled``: :math:`c \le 2` but the NIW e-folding time :math:`\tau = -1/\ln|1 - c|`
  exceeds the training horizon: the probe barely moves while the data are learnt;
* ``decay``: :math:`c < 2` and :math:`\tau \le` the horizon: :math:`\Phi_t \approx
  \Phi_0(1-c)^t`;
* ``catapult``: :math:`2 < c < 4`: Φ and the loss grow until the :math:`\Phi^2/n` term lowers
  :math:`\lambda_\theta` below :math:`2/(\eta\sigma^2)`, then decay;
* ``divergent``: :math:`c \ge 4`: :math:`\lambda_\theta` grows, the run diverges.

This assumes the data channel itself is stable, :math:`\eta\sigma_x^2\lambda_u < 2` with
:math:`\lambda_u = (|u|^2 + |v|^2)/n`.

A remark on §5.2 and on the paper's Eq. 2: (N3) holds θ's downstream weights fixed; in the toy
the *local* Hessian is :math:`v v^\top/n`, which would give the rate
:math:`\eta\sigma^2|v|^2/n`. The exact rate of Φ is :math:`\eta\sigma^2(|v|^2 + |\theta|^2)/n`
because v learns from the noise too; the two agree when :math:`|\theta| \ll |v|`. And in the
toy only the component of θ along v decays: for n > 1 the NIW becomes orthogonal to v rather
than small (:math:`|\theta|^2/n` moves by :math:`O(\Phi^2/n)`), so the toy's "NIW" is Φ.

Timescales (paper §4, App. D): in the decay phase, per step, Φ decays as :math:`|1-c|^t` and
the clean loss :math:`L_0 = \frac12\sigma_x^2(A-a)^2` as :math:`|1 - \eta\sigma_x^2\lambda_u|^{2t}`
(in continuous time, rates :math:`\eta\sigma^2\lambda_\theta` and :math:`2\eta\,\mathrm{tr}H`,
:math:`\mathrm{tr}H = \sigma_x^2\lambda_u` at the minimum): :func:`toy_timescales`.
:func:`fit_decay` fits such timescales, with standard errors, to measured series.

Sweeps over σ
-------------
:func:`train_sweep` trains one copy of a network per σ in a single batched computation
(``torch.func.vmap`` over stacked parameters, the same minibatches and the same standard noise
draws for every σ), with per-σ divergence flags.
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings
from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import train as _train
from ._injection import NoiseSwitch, SiteHook
from ._validation import (check_bool, check_choice, check_finite_data, check_finite_module,
                          check_generator, check_int, check_real)

__all__ = [
    "LAWS", "MODES", "PHASES",
    "NoiseInjection",
    "LocalCurvature", "local_curvature", "local_hessian",
    "DecayFit", "fit_decay", "decay_timescales",
    "niw_probe", "train_nin",
    "SweepResult", "train_sweep",
    "ToyState", "ToyMoments", "toy_init", "toy_moments", "toy_step",
    "reduced_map", "PhaseBoundaries", "phase_boundaries", "predict_phase",
    "ToyTimescales", "toy_timescales", "ToyRun", "simulate_toy", "classify_phase",
]

#: Laws of the NIN output, each scaled to variance 1 and then multiplied by ``sigma``.
LAWS = ("gaussian", "uniform", "rademacher", "laplace")
#: When the NIN output is re-drawn: every training step, every epoch, or once per example.
MODES = ("step", "epoch", "fixed")
#: The four phases of the paper, in order of increasing noise.
PHASES = ("decoupled", "decay", "catapult", "divergent")


def _check_generator(generator) -> Optional[torch.Generator]:
    return check_generator("generator", generator, seeds=True)


def _standard_noise(law: str, n: int, generator, device, dtype) -> torch.Tensor:
    """``n`` i.i.d. draws of ``law`` scaled to mean 0 and variance 1, on ``device``."""
    dev = generator.device if generator is not None else device
    kw = dict(generator=generator, device=dev, dtype=dtype)
    if law == "gaussian":
        out = torch.randn(n, **kw)
    elif law == "uniform":                                   # U(-sqrt 3, sqrt 3)
        out = (torch.rand(n, **kw) * 2 - 1) * math.sqrt(3.0)
    elif law == "rademacher":
        out = torch.randint(0, 2, (n,), generator=generator, device=dev).to(dtype) * 2 - 1
    else:                                                    # Laplace(0, 1/sqrt 2): E1 - E2
        e = torch.empty(2, n, device=dev, dtype=dtype).exponential_(generator=generator)
        out = (e[0] - e[1]) / math.sqrt(2.0)
    return out.to(device)


class _NoiseSource:
    """Standard (unit-variance) NIN draws per example, for one of :data:`MODES`.

    ``"fixed"``/``"epoch"`` keep a table of ``n_samples`` draws indexed by the position of an
    example in the training set. In ``"epoch"`` mode the table is re-drawn as soon as a batch
    holds an example already used since the last draw: for shuffled or cyclic partitions of
    the data (``gnilab.train``'s ``"shuffle"``/``"cycle"`` sampling, and full-batch GD) that is
    exactly once per epoch.
    """

    def __init__(self, mode: str, law: str, n_samples: Optional[int], generator):
        self.mode, self.law, self.n_samples, self.generator = mode, law, n_samples, generator
        self.table: Optional[torch.Tensor] = None
        self.used: Optional[torch.Tensor] = None
        self.draws = 0          # number of tables drawn so far

    def _draw_table(self, device, dtype) -> None:
        self.table = _standard_noise(self.law, self.n_samples, self.generator, device, dtype)
        self.used = torch.zeros(self.n_samples, dtype=torch.bool, device=device)
        self.draws += 1

    def redraw(self) -> None:
        """Forget the table: the next lookup draws a new one."""
        self.table = None

    def __call__(self, n: int, index: Optional[torch.Tensor], device, dtype) -> torch.Tensor:
        if self.mode == "step":
            return _standard_noise(self.law, n, self.generator, device, dtype)
        if index is None:
            raise ValueError(f"mode {self.mode!r} needs the position of every example in the "
                             "training set: train on net.indexed(data) (what train_nin does) or "
                             "call net(x, index=idx)")
        if self.n_samples is None:
            raise ValueError(f"mode {self.mode!r} needs n_samples (the size of the training "
                             "set); pass it or call net.indexed(data) first")
        index = index.to(device)
        if index.numel():
            low, high = (int(v) for v in torch.aminmax(index))
            if low < 0 or high >= self.n_samples:
                raise ValueError(f"index must lie in [0, {self.n_samples - 1}] (n_samples = "
                                 f"{self.n_samples}), got values in [{low}, {high}]")
        if self.table is not None and self.table.device != torch.device(device):
            self.table, self.used = self.table.to(device), self.used.to(device)   # model moved
        if self.table is None:
            self._draw_table(device, dtype)
        elif self.mode == "epoch" and bool(self.used[index].any()):
            self._draw_table(device, dtype)       # an example comes back: a new epoch
        if self.mode == "epoch":
            self.used[index] = True
        return self.table[index].to(device=device, dtype=dtype)


# =============================================================================================
# the node
# =============================================================================================

class NoiseInjection(NoiseSwitch, nn.Module):
    r"""A model with a noise injection node feeding chosen ``nn.Linear`` layers (Eq. N1).

    Parameters
    ----------
    model : nn.Module
        Any model (e.g. :class:`gnilab.models.MLP`); it is wrapped, not copied.
    layers : sequence of str
        Names (as in ``model.named_modules()``) of the ``nn.Linear`` layers whose outputs (the
        pre-activations :math:`z`) receive :math:`\theta_\ell\varepsilon`. For ``MLP`` the
        linear layers are ``"1"``, ``"3"``, ``"5"``, ...
    sigma : float >= 0
        Standard deviation of the NIN output (variance :math:`\sigma^2`).
    mode : {"step", "epoch", "fixed"}
        Re-draw :math:`\varepsilon_i` at every forward pass in training mode, once per epoch, or
        once for good. The last two need the position of each example in the training set:
        train on :meth:`indexed` data (as :func:`train_nin` does) or pass ``index=``.
    n_samples : int, optional
        Size of the training set (``"epoch"``/``"fixed"``); set by :meth:`indexed` if omitted.
    law : {"gaussian", "uniform", "rademacher", "laplace"}
        Law of :math:`\varepsilon/\sigma` (all symmetric, variance 1).
    niw_std : float >= 0, optional
        The NIWs start as :math:`N(0, s^2)` entries; default :math:`s = 1/\sqrt{\text{fan-in}}`
        of the layer (the scale of one column of its weight matrix: the NIN is like one more
        input to the layer). 0 starts them at zero.
    generator : torch.Generator or int, optional
        Source of the NIW initialisation and of the noise (a CPU generator draws on the CPU
        and moves the draws to the model's device).

    Notes
    -----
    One scalar per example feeds every layer in ``layers`` (one node, one NIW per layer). The
    noise is on in ``train()`` mode while ``enabled`` is true; in ``eval()`` mode and inside
    ``with net.noise_off():`` the forward pass is exactly the wrapped model's. Calling the
    wrapped ``model`` directly runs it without the node. ``net(x, noise=eps)`` injects the given
    NIN outputs :math:`\varepsilon` (shape ``[N]``, already scaled) in any mode, for tests
    and paired comparisons.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], sigma: float, *,
                 mode: str = "step", n_samples: Optional[int] = None, law: str = "gaussian",
                 niw_std: Optional[float] = None, generator=None):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.sigma = sigma
        self.mode = check_choice("mode", mode, MODES)
        self.law = check_choice("law", law, LAWS)
        if n_samples is not None:
            n_samples = check_int("n_samples", n_samples, low=1)
        self.generator = _check_generator(generator)
        names = dict(model.named_modules())
        linear = sorted(n for n, m in names.items() if n and isinstance(m, nn.Linear))
        if isinstance(layers, str) or not all(isinstance(s, str) for s in layers):
            raise TypeError(f"layers must be a sequence of layer names, got {layers!r}")
        layers = list(layers)
        if not layers:
            raise ValueError(f"layers must name at least one nn.Linear layer of the model; "
                             f"allowed: {linear}")
        bad = [s for s in layers if not isinstance(names.get(s), nn.Linear)]
        if bad:
            raise ValueError(f"layers {bad} are not nn.Linear layers of the model; allowed: "
                             f"{linear}")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers must not repeat, got {layers}")
        self.layers = layers
        if niw_std is not None:
            niw_std = check_real("niw_std", niw_std, low=0)
        self.niws = nn.ParameterList()
        for name in layers:
            lin = names[name]
            w = lin.weight
            s = 1.0 / math.sqrt(lin.in_features) if niw_std is None else niw_std
            draw = _standard_noise("gaussian", lin.out_features, self.generator, w.device, w.dtype)
            self.niws.append(nn.Parameter(draw * s))
        self.enabled = True
        self._source = _NoiseSource(self.mode, self.law, n_samples, self.generator)
        self._inputs: Optional[torch.Tensor] = None
        self._eps: Optional[torch.Tensor] = None         # NIN output of the current pass
        self._shifts: Optional[Dict[str, torch.Tensor]] = None
        self._position = {name: i for i, name in enumerate(layers)}
        for name in layers:
            names[name].register_forward_hook(SiteHook(self, name))

    # ---- parameters (sigma, variance, noise_off, noisy: NoiseSwitch) ----------------------
    @property
    def n_samples(self) -> Optional[int]:
        """Size of the training set the noise table is indexed by (``None``: not set)."""
        return self._source.n_samples

    def niw(self, layer: Optional[str] = None) -> nn.Parameter:
        """The NIW vector :math:`\\theta_\\ell` of ``layer`` (default: the first layer)."""
        return self.niws[self._position[_check_layer(self, layer)]]

    def niw_norms(self) -> Dict[str, float]:
        """:math:`|\\theta_\\ell|` for every layer."""
        return {name: float(p.detach().norm()) for name, p in zip(self.layers, self.niws)}

    def redraw(self) -> None:
        """Draw a new noise table at the next use (modes ``"epoch"``/``"fixed"``)."""
        self._source.redraw()

    # ---- data with example indices -------------------------------------------------------
    def indexed(self, data):
        """``data`` as :func:`gnilab.train.train` should see it in modes ``"epoch"`` and
        ``"fixed"``: an :class:`gnilab.data.ArrayDataset` whose ``x`` holds the positions
        ``0..n-1`` (``int64``) and ``y`` the labels. The wrapper keeps ``data.x`` and, when
        given a 1-D integer tensor, looks the inputs up and uses it as the index of the noise
        table. (``gnilab.train.train`` passes only ``x[idx]`` to the model; carrying the
        position in ``x`` needs no change there.) Sets ``n_samples`` if it was not given."""
        from .data import ArrayDataset
        n = len(data.y)
        if self._source.n_samples is None:
            self._source.n_samples = n
        elif self._source.n_samples != n:
            raise ValueError(f"data has {n} examples but n_samples is "
                             f"{self._source.n_samples}")
        self._inputs = data.x
        idx = torch.arange(n, device=data.x.device)
        return ArrayDataset(idx, data.y, getattr(data, "name", "data") + "/indexed",
                            getattr(data, "classes", None))

    # ---- injection ---------------------------------------------------------------------
    def _inject(self, name: str, output: torch.Tensor) -> Optional[torch.Tensor]:
        if self._shifts is not None:
            shift = self._shifts.get(name)
            return None if shift is None else output + shift
        if self._eps is None:
            return None                              # the model's own output, untouched
        theta = self.niws[self._position[name]]
        if output.dim() == 2:                        # z + eps thetaᵀ: one rank-1 update
            return torch.addr(output, self._eps, theta)
        eps = self._eps.reshape(-1, *([1] * (output.dim() - 1)))
        return torch.addcmul(output, eps, theta)

    def _positions(self, x: torch.Tensor, index: Optional[torch.Tensor]):
        """(index, inputs): a 1-D integer ``x`` after :meth:`indexed` holds positions."""
        if (self._inputs is not None and x.dim() == 1 and not x.is_floating_point()
                and not x.is_complex()):
            return x, self._inputs[x]
        return index, x

    def forward(self, x: torch.Tensor, index: Optional[torch.Tensor] = None,
                noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        index, x = self._positions(x, index)
        n = x.shape[0]
        if noise is not None:
            if noise.shape != (n,):
                raise ValueError(f"noise must have shape ({n},) (one NIN output per example), "
                                 f"got {tuple(noise.shape)}")
            eps = noise.to(self.niws[0].dtype)
        elif self.noisy:
            w = self.niws[0]
            eps = self._source(n, index, w.device, w.dtype) * self._sigma
        else:
            eps = None
        self._eps = eps
        try:
            return self.model(x)
        finally:
            self._eps = None

    def _shifted(self, x: torch.Tensor, shifts: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The model with ``shifts[layer]`` (a vector) added to those layers' pre-activations of
        every example, and no noise."""
        self._shifts = shifts
        try:
            return self.model(self._positions(x, None)[1])
        finally:
            self._shifts = None

    def extra_repr(self) -> str:
        return (f"layers={self.layers}, sigma={self._sigma:g}, mode={self.mode!r}, "
                f"law={self.law!r}")


def _check_net(net) -> NoiseInjection:
    if not isinstance(net, NoiseInjection):
        raise TypeError(f"net must be a gnilab.nin.NoiseInjection, got {type(net).__name__}")
    return net


def _check_layer(net: NoiseInjection, layer: Optional[str]) -> str:
    layer = net.layers[0] if layer is None else layer
    if layer not in net.layers:
        raise ValueError(f"layer must be one of the NIN layers {net.layers}, got {layer!r}")
    return layer


# =============================================================================================
# local gradient and curvature at the NIN layer (Eq. N3)
# =============================================================================================

@dataclass(frozen=True)
class LocalCurvature:
    r"""The NIN layer's local quantities at the current weights (no noise).

    ``niw_norm`` :math:`|\theta|`; ``grad`` :math:`\hat\theta\cdot\langle\nabla_z\ell\rangle`
    and ``grad_norm`` :math:`|\langle\nabla_z\ell\rangle|` (the local gradient); ``curvature``
    :math:`\hat\theta^\top\bar H_z\hat\theta` (the local Hessian along the NIW; NaN when
    θ = 0); ``rate`` :math:`\eta\sigma^2` times it when ``lr`` and ``sigma`` were given.
    """

    layer: str
    niw_norm: float
    grad: float
    grad_norm: float
    curvature: float
    rate: float


def _shift_grads(net: NoiseInjection, data, loss, layer: str, chunk_size: Optional[int]):
    """Per chunk: (the zero shift t of ``layer``'s pre-activations, ∇_t of the chunk's share of
    the mean loss, with its graph)."""
    loss_fn = _train.get_loss(loss)
    p = net.niw(layer)
    n = len(data.y)
    size = n if chunk_size is None else check_int("chunk_size", chunk_size, low=1)
    for start in range(0, n, size):
        xb, yb = data.x[start:start + size], data.y[start:start + size]
        t = torch.zeros_like(p, requires_grad=True)
        with torch.enable_grad():
            value = loss_fn(net._shifted(xb, {layer: t}), yb) * (len(yb) / n)
            g, = torch.autograd.grad(value, t, create_graph=True)
        yield t, g


@contextlib.contextmanager
def _eval_mode(net):
    was = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was)


def local_curvature(net: NoiseInjection, data, loss="cross_entropy", layer: Optional[str] = None,
                    *, lr: Optional[float] = None, chunk_size: Optional[int] = None
                    ) -> LocalCurvature:
    r"""The local gradient and the local Hessian along the NIW at ``layer`` (Eq. N3).

    With a common shift :math:`t` of the layer's pre-activations, :math:`F(t) =
    \frac1n\sum_i\ell_i(z_i + t)` has :math:`\nabla F(0) = \langle\nabla_z\ell\rangle` and
    :math:`\nabla^2F(0) = \bar H_z`: the NIW's own gradient and Hessian with every
    :math:`\varepsilon_i = 1`. One Hessian-vector product with :math:`\hat\theta` gives the
    curvature. Computed in ``eval()`` mode on all of ``data`` (``chunk_size`` examples at a
    time).
    """
    net = check_finite_module("net", _check_net(net))
    check_finite_data("data", data)
    layer = _check_layer(net, layer)
    theta = net.niw(layer).detach()
    norm = float(theta.norm())
    unit = theta / norm if norm > 0 else torch.full_like(theta, math.nan)
    grad = torch.zeros_like(theta)
    hv = torch.zeros_like(theta)
    with _eval_mode(net):
        for t, g in _shift_grads(net, data, loss, layer, chunk_size):
            grad += g.detach()
            if g.requires_grad and norm > 0:
                part, = torch.autograd.grad(g, t, grad_outputs=unit, allow_unused=True)
                if part is not None:
                    hv += part
    curvature = float(unit @ hv)
    rate = math.nan if lr is None else check_real("lr", lr, low=0) * net.variance * curvature
    return LocalCurvature(layer, norm, float(unit @ grad), float(grad.norm()), curvature, rate)


def local_hessian(net: NoiseInjection, data, loss="cross_entropy", layer: Optional[str] = None,
                  *, chunk_size: Optional[int] = None) -> torch.Tensor:
    r"""The dense local Hessian :math:`\bar H_z = \langle\nabla_z^2\ell\rangle`, shape
    ``[out, out]`` for the layer's ``out_features`` (one batched double-backward pass per
    chunk; use it for layers of up to a few thousand units). Its top eigenvalue times
    :math:`\eta\sigma^2` is the fastest NIW decay rate of Eq. N3."""
    net = check_finite_module("net", _check_net(net))
    check_finite_data("data", data)
    layer = _check_layer(net, layer)
    p = net.niw(layer)
    dim = p.numel()
    eye = torch.eye(dim, device=p.device, dtype=p.dtype)
    h = torch.zeros(dim, dim, device=p.device, dtype=p.dtype)
    with _eval_mode(net):
        for t, g in _shift_grads(net, data, loss, layer, chunk_size):
            if g.requires_grad:
                part, = torch.autograd.grad(g, t, grad_outputs=eye, is_grads_batched=True,
                                            allow_unused=True)
                if part is not None:
                    h += part
    return 0.5 * (h + h.T)


# =============================================================================================
# exponential fits
# =============================================================================================

@dataclass(frozen=True)
class DecayFit:
    r"""A fit :math:`y = C + A\,e^{-(t - t_0)/\tau}` by least squares.

    ``tau`` and ``tau_stderr`` (in the units of t; the standard error by the delta method from
    that of the rate), ``rate`` = 1/τ and ``rate_stderr`` (from the least-squares covariance
    scaled by the residual variance), ``amplitude`` A, ``offset`` C (0 when not fitted),
    ``n`` points used; ``reason`` is empty for a valid fit, else says why every number is NaN.
    """

    tau: float
    tau_stderr: float
    rate: float
    rate_stderr: float
    amplitude: float
    offset: float
    n: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def _failed(reason: str, n: int) -> DecayFit:
    nan = math.nan
    return DecayFit(nan, nan, nan, nan, nan, nan, n, reason)


def fit_decay(t, y, *, offset: bool = True) -> DecayFit:
    r"""Fit an exponential decay to a series and give its timescale ± standard error.

    Parameters
    ----------
    t, y : 1-D arrays or tensors of the same length
        Times (e.g. training steps) and values (an NIW norm, a loss).
    offset : bool
        Fit a constant floor C (a test loss decays to its plateau, an NIW norm to the part of
        θ the local Hessian does not see); ``False`` fits :math:`y = A e^{-(t-t_0)/\tau}`.

    Returns
    -------
    DecayFit
        NaN everywhere, with ``reason`` set, when y has non-finite values, there are too few
        points, the series does not decay (fitted rate <= 0, or it rises towards its limit),
        or the fit fails or leaves the rate unidentified (a flat or too short a series).
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    offset = check_bool("offset", offset)
    t = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if t.ndim != 1 or y.shape != t.shape:
        raise ValueError(f"t and y must be 1-D of the same length, got shapes {t.shape} and "
                         f"{y.shape}")
    n = len(y)
    bad = int((~np.isfinite(y)).sum() + (~np.isfinite(t)).sum())
    if bad:
        return _failed(f"non-finite values ({bad} of {n})", n)
    need = 4 if offset else 3
    if n < need:
        return _failed(f"too few points ({n}; the fit needs {need})", n)
    t0, span = t[0], float(t.max() - t.min())
    s = t - t0
    if span <= 0 or np.ptp(y) == 0:
        return _failed("does not decay (constant series)", n)
    # start: the log-linear fit of y - C0 against t, C0 just below the series' minimum
    c0 = float(y.min() - 0.05 * np.ptp(y)) if offset else 0.0
    pos = y - c0 > 0
    if pos.sum() >= 2 and np.ptp(s[pos]) > 0:
        slope, icpt = np.polyfit(s[pos], np.log(y[pos] - c0), 1)
        k0, a0 = max(-slope, 1.0 / span), math.exp(icpt)
    else:
        k0, a0 = 1.0 / span, float(y[0] - c0)
    scale = 1.0 / span                           # fit k in units of 1/span: better conditioned
    if offset:
        def model(s_, a, k, c):
            return c + a * np.exp(-k * scale * s_)
        p0 = (a0, k0 / scale, c0)
    else:
        def model(s_, a, k):
            return a * np.exp(-k * scale * s_)
        p0 = (a0, k0 / scale)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            with np.errstate(over="ignore", invalid="ignore"):
                popt, pcov = curve_fit(model, s, y, p0=p0, maxfev=4000)
    except (RuntimeError, OptimizeWarning, ValueError) as exc:
        return _failed(f"fit failed: {str(exc).splitlines()[0]}", n)
    a, k = popt[0], popt[1] * scale
    k_se = math.sqrt(pcov[1, 1]) * scale if np.isfinite(pcov[1, 1]) and pcov[1, 1] >= 0 \
        else math.nan
    if not (math.isfinite(k) and math.isfinite(a)):
        return _failed("fit failed (non-finite parameters)", n)
    if k <= 0:
        return _failed("does not decay (fitted rate <= 0)", n)
    if a <= 0:
        return _failed("does not decay (it rises towards its limit)", n)
    if not math.isfinite(k_se):
        return _failed("rate not identified (flat or too short a series)", n)
    c = float(popt[2]) if offset else 0.0
    return DecayFit(1.0 / k, k_se / k ** 2, k, k_se, float(a), c, n)


def decay_timescales(frame: pd.DataFrame, columns: Sequence[str] = ("niw_norm", "loss",
                                                                     "test_loss"), *,
                     offset: bool = True, start: float = 0, by: Optional[str] = "layer"
                     ) -> pd.DataFrame:
    """:func:`fit_decay` of each ``column`` of ``frame`` against its ``step`` column, from
    ``step >= start`` on (e.g. ``result.records`` of :func:`train_nin`, or a history).

    Returns one row per column (and per value of ``by`` when ``frame`` has that column, e.g.
    the NIN ``layer``) with ``quantity``, ``tau``, ``tau_stderr``, ``rate``, ``rate_stderr``,
    ``amplitude``, ``offset``, ``n`` and ``reason``; a missing column gives a row with reason
    "no such column"."""
    if not isinstance(frame, pd.DataFrame) or "step" not in frame:
        raise TypeError("frame must be a pandas DataFrame with a 'step' column")
    groups = frame.groupby(by, sort=False) if by is not None and by in frame else [(None, frame)]
    rows = []
    for key, part in groups:
        part = part[part.step >= start]
        for col in columns:
            if col not in part:
                fit = _failed("no such column", 0)
            else:
                sub = part[["step", col]]
                fit = fit_decay(sub.step.to_numpy(), sub[col].to_numpy(), offset=offset)
            row = {"quantity": col, **fit.__dict__}
            if key is not None:
                row = {by: key, **row}
            rows.append(row)
    return pd.DataFrame(rows)


# =============================================================================================
# training with the probe
# =============================================================================================

def niw_probe(data, loss="cross_entropy", *, every: int = 10, layer: Optional[str] = None,
              test_data=None, lr: Optional[float] = None, chunk_size: Optional[int] = None):
    r"""A :class:`gnilab.train.Callback` tracking one NIN layer every ``every`` steps.

    Each row of ``records`` holds ``layer``, ``niw_norm`` :math:`|\theta|`, ``loss`` (clean,
    on ``data``), ``test_loss`` (on ``test_data``, NaN without it), ``local_grad``
    (:math:`\hat\theta\cdot\langle\nabla_z\ell\rangle`), ``local_grad_norm``,
    ``local_curvature`` (:math:`\hat\theta^\top\bar H_z\hat\theta` by a Hessian-vector product,
    :func:`local_curvature`) and ``predicted_rate`` :math:`\eta\sigma^2` times it (NaN without
    ``lr``). Fit the decay timescales of the result with :func:`decay_timescales`.
    """
    every = check_int("every", every, low=1)
    loss_fn = _train.get_loss(loss)

    def measure(step, net):
        lc = local_curvature(net, data, loss_fn, layer, lr=lr, chunk_size=chunk_size)
        row = {"layer": lc.layer, "niw_norm": lc.niw_norm,
               "loss": _train.evaluate(net, data, loss_fn)["loss"],
               "test_loss": (_train.evaluate(net, test_data, loss_fn)["loss"]
                             if test_data is not None else math.nan),
               "local_grad": lc.grad, "local_grad_norm": lc.grad_norm,
               "local_curvature": lc.curvature, "predicted_rate": lc.rate}
        return row
    return _train.Callback(every, measure)


def train_nin(net: NoiseInjection, data, *, steps: int, lr: float, loss="cross_entropy",
              batch_size: Optional[int] = None, test_data=None, probe_every: Optional[int] = None,
              probe_data=None, callbacks=(), generator=None, progress: bool = True,
              **train_kwargs) -> _train.TrainResult:
    """Train a model with a NIN by plain SGD (:func:`gnilab.train.train`) and probe it.

    In modes ``"epoch"``/``"fixed"`` the model sees :meth:`NoiseInjection.indexed` data, so
    that each example keeps its noise. Every ``probe_every`` steps (default: the history's
    ``eval_every``) one :func:`niw_probe` per NIN layer records its NIW norm, the losses and the
    local gradient and curvature on ``probe_data`` (default: the first 2048 examples of
    ``data``). ``generator`` drives the minibatches (the noise follows ``net.generator``);
    other keyword arguments go to ``train``.

    Returns
    -------
    gnilab.train.TrainResult — ``records`` has one row per layer and probe step.
    """
    net = _check_net(net)
    steps = check_int("steps", steps, low=0)
    if probe_every is None:
        probe_every = train_kwargs.get("eval_every") or max(1, steps // 50)
    probe_every = check_int("probe_every", probe_every, low=1)
    probe_data = data.subset(slice(0, 2048)) if probe_data is None else probe_data
    probes = [niw_probe(probe_data, loss, every=probe_every, layer=name, test_data=test_data,
                        lr=lr) for name in net.layers]
    train_data = net.indexed(data) if net.mode != "step" else data
    return _train.train(net, train_data, steps=steps, lr=lr, loss=loss, batch_size=batch_size,
                        test_data=test_data, callbacks=list(callbacks) + probes,
                        generator=_check_generator(generator), progress=progress,
                        **train_kwargs)


# =============================================================================================
# a sweep over sigma in one batched computation
# =============================================================================================

@dataclass
class SweepResult:
    """What :func:`train_sweep` returns.

    ``history``: one row per σ and recorded step, columns ``sigma``, ``step``, ``loss``,
    ``accuracy``, ``test_loss``, ``test_accuracy`` (clean, ``eval()`` mode), ``batch_loss``
    (with noise), ``niw_norm`` (all NIWs together; per layer ``niw_norm[<layer>]`` when there
    are several), ``diverged``; rows after a divergence hold NaN. ``diverged`` and
    ``diverged_step`` (−1: none) are numpy arrays over σ; ``params`` the final stacked
    parameters (``{name: [K, ...]}``, frozen at their last finite values for diverged runs).
    """

    history: pd.DataFrame
    sigmas: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    steps: int
    params: Dict[str, torch.Tensor]

    def final(self) -> pd.DataFrame:
        """The last recorded row of each σ that did not diverge, with ``diverged`` flags for
        all (NaN metrics for the diverged ones)."""
        last = self.history[self.history.step == self.steps].set_index("sigma")
        out = pd.DataFrame({"sigma": self.sigmas, "diverged": self.diverged,
                            "diverged_step": self.diverged_step})
        return out.join(last.drop(columns=["diverged", "step"]), on="sigma")


def train_sweep(model: nn.Module, data, sigmas, *, layers: Sequence[str], steps: int, lr: float,
                batch_size: Optional[int] = None, loss="cross_entropy", mode: str = "step",
                law: str = "gaussian", niw_std: Optional[float] = None,
                sampling: str = "shuffle", test_data=None, eval_every: Optional[int] = None,
                eval_data=None, bound: float = math.inf, generator=None,
                progress: bool = True) -> SweepResult:
    r"""Train one copy of ``model`` with a NIN per noise level σ, all in one batched computation.

    Every copy starts from ``model``'s weights and the same NIW initialisation, sees the same
    minibatches and the same standard noise draws :math:`\xi_i` (its NIN output is
    :math:`\sigma_k\xi_i`): common random numbers, so the sweep is a clean function of σ. A
    step is one ``torch.func.vmap`` of ``grad`` over the stacked parameters and plain SGD
    (:math:`w \leftarrow w - \eta\nabla L_B`). A copy whose batch loss turns non-finite or
    exceeds ``bound`` is marked diverged at that step and frozen; the others go on.

    Parameters
    ----------
    model : nn.Module
        Not modified (copied).
    sigmas : sequence of float >= 0
        Standard deviations of the NIN output, one copy each.
    layers, mode, law, niw_std : as in :class:`NoiseInjection`
    steps, lr, batch_size, loss, sampling, test_data, eval_every, eval_data, progress
        As in :func:`gnilab.train.train`.
    bound : float
        A batch loss above it counts as a divergence (default: only non-finite ones).
    generator : torch.Generator or int, optional
        Minibatches, NIW initialisation and noise.

    Returns
    -------
    SweepResult
    """
    from torch.func import functional_call, grad_and_value, vmap

    sig = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if sig.numel() == 0:
        raise ValueError("sigmas must hold at least one value")
    for s in sig.tolist():
        check_real("sigmas", s, low=0)
    steps = check_int("steps", steps, low=0)
    lr = check_real("lr", lr, low=0, low_open=True)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1)
    check_choice("sampling", sampling, ("shuffle", "independent", "cycle"))
    eval_every = max(1, steps // 50) if eval_every is None else eval_every
    eval_every = check_int("eval_every", eval_every, low=1)
    bound = check_real("bound", bound, low=0, low_open=True, finite=False)
    gen = _check_generator(generator)
    loss_fn = _train.get_loss(loss)
    eval_data = data if eval_data is None else eval_data

    net = NoiseInjection(copy.deepcopy(model), layers, 1.0, mode=mode, law=law,
                         n_samples=len(data.y), niw_std=niw_std, generator=gen)
    names = [k for k, _ in net.named_parameters()]
    k_runs = sig.numel()
    first = next(net.parameters())
    sig = sig.to(first.device, first.dtype)
    params = {k: p.detach().unsqueeze(0).repeat(k_runs, *([1] * p.dim())).contiguous()
              for k, p in net.named_parameters()}
    niw_keys = [f"niws.{i}" for i in range(len(net.layers))]
    n = len(data.y)
    batches = _train._step_indices(n, batch_size, sampling, gen, data.x.device)

    def batch_loss(p, s, xb, yb, xi):
        return loss_fn(functional_call(net, p, (xb,), {"noise": s * xi}), yb)

    step_fn = vmap(grad_and_value(batch_loss), in_dims=(0, 0, None, None, None))

    def clean_outputs(p, xb):
        return functional_call(net, p, (xb,))

    eval_fn = vmap(clean_outputs, in_dims=(0, None))

    @torch.no_grad()
    def evaluate(d):
        total = torch.zeros(k_runs, dtype=torch.float64, device=first.device)
        correct = torch.zeros_like(total)
        classify = not d.y.is_floating_point()
        for start in range(0, len(d.y), 4096):
            xb, yb = d.x[start:start + 4096], d.y[start:start + 4096]
            out = eval_fn(params, xb)                            # [K, N, ...]
            total += torch.stack([loss_fn(o, yb, reduction="sum") for o in out]).double()
            if classify:
                correct += (out.argmax(-1) == yb).sum(1).double()
        m = len(d.y)
        return (total / m).cpu().numpy(), ((correct / m).cpu().numpy() if classify
                                           else np.full(k_runs, math.nan))

    active = torch.ones(k_runs, dtype=torch.bool, device=first.device)
    diverged_step = np.full(k_runs, -1)
    rows = []
    last_batch = np.full(k_runs, math.nan)
    sig_np = sig.double().cpu().numpy()

    def record(step):
        net.eval()
        loss_v, acc = evaluate(eval_data)
        test_loss, test_acc = evaluate(test_data) if test_data is not None else \
            (np.full(k_runs, math.nan), np.full(k_runs, math.nan))
        net.train()
        norms = {lay: params[key].double().norm(dim=1).cpu().numpy()
                 for lay, key in zip(net.layers, niw_keys)}
        total_norm = np.sqrt(sum(v ** 2 for v in norms.values()))
        alive = active.cpu().numpy()
        for k in range(k_runs):
            ok = alive[k] and math.isfinite(loss_v[k])
            nan = math.nan
            row = {"sigma": sig_np[k], "step": step, "loss": loss_v[k] if ok else nan,
                   "accuracy": acc[k] if ok else nan,
                   "test_loss": test_loss[k] if ok else nan,
                   "test_accuracy": test_acc[k] if ok else nan,
                   "batch_loss": last_batch[k] if ok else nan,
                   "niw_norm": total_norm[k] if ok else nan, "diverged": not alive[k]}
            if len(net.layers) > 1:
                for lay, v in norms.items():
                    row[f"niw_norm[{lay}]"] = v[k] if ok else nan
            rows.append(row)

    net.train()
    record(0)
    bar = tqdm(range(1, steps + 1), disable=None if progress else True, desc="sweep",
               leave=False)
    for step in bar:
        if not bool(active.any()):
            break
        idx = next(batches)
        xb, yb = (data.x, data.y) if idx is None else (data.x[idx], data.y[idx])
        pos = torch.arange(n, device=data.x.device) if idx is None else idx
        xi = net._source(len(yb), pos, first.device, first.dtype)
        grads, values = step_fn(params, sig, xb, yb, xi)
        values = values.detach()
        bad = ~torch.isfinite(values) | (values > bound)
        newly = (bad & active).cpu().numpy()
        diverged_step[newly] = step
        active &= ~bad
        last_batch = values.double().cpu().numpy()
        with torch.no_grad():
            for key in names:
                mask = active.view(-1, *([1] * (params[key].dim() - 1)))
                params[key] = torch.where(mask, params[key] - lr * grads[key], params[key])
        if step % eval_every == 0 or step == steps:
            record(step)
    bar.close()
    done = int(rows[-1]["step"]) if rows else 0
    if done < steps:                    # every copy diverged: fill the remaining steps once
        record(steps)
    diverged = diverged_step >= 0
    if diverged.any():
        warnings.warn(f"{int(diverged.sum())} of {k_runs} runs diverged (sigma = "
                      f"{', '.join(f'{s:g}' for s in sig_np[diverged])}); they were frozen and "
                      "marked", RuntimeWarning, stacklevel=2)
    return SweepResult(pd.DataFrame(rows), sig_np, diverged, diverged_step, steps, params)


# =============================================================================================
# the linear toy model (paper §3)
# =============================================================================================

class ToyState(NamedTuple):
    r"""Weights of the linear toy, each ``[..., n]`` (leading dimensions: configurations).

    ``u`` input → hidden, ``theta`` the NIW (NIN → hidden), ``v`` hidden → output; the network
    is :math:`f = v\cdot(u x + \theta\varepsilon)/\sqrt n`.
    """

    u: torch.Tensor
    theta: torch.Tensor
    v: torch.Tensor

    @property
    def width(self) -> int:
        return self.u.shape[-1]

    @property
    def A(self) -> torch.Tensor:
        """:math:`v\\cdot u/\\sqrt n`, the data weight of the end-to-end map."""
        return (self.v * self.u).sum(-1) / math.sqrt(self.width)

    @property
    def phi(self) -> torch.Tensor:
        """:math:`\\Phi = v\\cdot\\theta/\\sqrt n`, the NIW as the output sees it."""
        return (self.v * self.theta).sum(-1) / math.sqrt(self.width)

    @property
    def lam_theta(self) -> torch.Tensor:
        """:math:`\\lambda_\\theta = (|v|^2 + |\\theta|^2)/n`, the noise channel's NTK."""
        return (self.v.pow(2) + self.theta.pow(2)).sum(-1) / self.width

    @property
    def lam_u(self) -> torch.Tensor:
        """:math:`\\lambda_u = (|u|^2 + |v|^2)/n`, the data channel's NTK."""
        return (self.u.pow(2) + self.v.pow(2)).sum(-1) / self.width


class ToyMoments(NamedTuple):
    """Batch moments ``sxx``, ``sxe``, ``see``, ``sxy``, ``sye``, ``syy`` (``<x^2>``,
    ``<x eps>``, ...; each a tensor or float broadcastable to the configurations)."""

    sxx: torch.Tensor
    sxe: torch.Tensor
    see: torch.Tensor
    sxy: torch.Tensor
    sye: torch.Tensor
    syy: torch.Tensor

    @classmethod
    def population(cls, sigma, sigma_x=1.0, a=1.0) -> "ToyMoments":
        """The infinite-batch moments: ``sxx = sigma_x²``, ``see = sigma²``, ``sxe = sye = 0``,
        ``sxy = a sigma_x²``, ``syy = a² sigma_x²`` (``sigma``: the NIN's standard deviation)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        sxx = torch.as_tensor(sigma_x, dtype=torch.float64) ** 2
        zero = torch.zeros_like(sigma)
        return cls(sxx + zero, zero, sigma ** 2, a * sxx + zero, zero, a * a * sxx + zero)

    def loss(self, A, phi) -> torch.Tensor:
        """The batch loss :math:`\\frac12\\langle(Ax + \\Phi\\varepsilon - y)^2\\rangle`."""
        return 0.5 * (A * A * self.sxx + phi * phi * self.see + 2 * A * phi * self.sxe
                      - 2 * A * self.sxy - 2 * phi * self.sye + self.syy)


def toy_moments(x: torch.Tensor, eps: torch.Tensor, y: torch.Tensor) -> ToyMoments:
    """The moments of a batch (means over the last dimension) of inputs ``x``, NIN outputs
    ``eps`` (variance σ²) and targets ``y``."""
    return ToyMoments((x * x).mean(-1), (x * eps).mean(-1), (eps * eps).mean(-1),
                      (x * y).mean(-1), (eps * y).mean(-1), (y * y).mean(-1))


def toy_init(width: int, *, shape=(), u_std: float = 1.0, v_std: float = 1.0,
             theta_std: float = 1.0, generator=None, device=None,
             dtype=torch.float64) -> ToyState:
    """Random toy weights, i.i.d. :math:`N(0, s^2)` entries (NTK scaling: O(1) entries),
    shape ``[*shape, width]``."""
    width = check_int("width", width, low=1)
    gen = _check_generator(generator)
    stds = [check_real(nm, s, low=0) for nm, s in (("u_std", u_std), ("theta_std", theta_std),
                                                   ("v_std", v_std))]
    dev = gen.device if gen is not None else device
    draws = [torch.randn(*shape, width, generator=gen, device=dev, dtype=dtype) * s
             for s in stds]
    return ToyState(*(d.to(device) if device is not None else d for d in draws))


def toy_step(state: ToyState, moments: ToyMoments, lr) -> ToyState:
    r"""One exact SGD step (Eq. T1) of the toy on a batch with ``moments`` and step ``lr``
    (a float or a tensor over the configurations)."""
    rn = math.sqrt(state.width)
    A, phi = state.A, state.phi
    gx = A * moments.sxx + phi * moments.sxe - moments.sxy
    ge = A * moments.sxe + phi * moments.see - moments.sye
    al, be = (lr * gx / rn).unsqueeze(-1), (lr * ge / rn).unsqueeze(-1)
    u, th, v = state
    return ToyState(u - al * v, th - be * v, v - al * u - be * th)


def reduced_map(phi, lam, lr, sigma, width: int):
    r"""One step of the noise channel's reduced map (Eq. T2): ``(phi', lam')`` from
    :math:`\Phi`, :math:`\lambda_\theta`. Exact for the toy with population moments and the data
    terms dropped (:math:`g_x = 0`); elementwise over tensors."""
    s2 = torch.as_tensor(sigma, dtype=torch.float64) ** 2 if not torch.is_tensor(sigma) \
        else sigma ** 2
    c = lr * s2
    return (phi * (1 - c * lam + c * c * phi * phi / width),
            lam + c * phi * phi / width * (c * lam - 4))


class PhaseBoundaries(NamedTuple):
    """Noise **variances** σ² at the phase boundaries for a step ``lr`` and curvature λ:
    ``sigma2_decay`` (decoupled → decay for the horizon given; NaN without one),
    ``sigma2_catapult`` = 2/(ηλ) and ``sigma2_divergent`` = 4/(ηλ)."""

    sigma2_decay: np.ndarray
    sigma2_catapult: np.ndarray
    sigma2_divergent: np.ndarray


def _arr(name, value, low=0.0, low_open=True) -> np.ndarray:
    a = np.asarray(value.detach().cpu() if torch.is_tensor(value) else value, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < low) or \
            (low_open and np.any(a == low)):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise ValueError(f"{name} must hold finite numbers {bound}, got {a.ravel()[:4]}")
    return a


def phase_boundaries(lr, curvature, steps: Optional[int] = None) -> PhaseBoundaries:
    """The σ² of the phase boundaries (see :func:`predict_phase`), elementwise."""
    c = _arr("lr", lr) * _arr("curvature", curvature)
    decay = np.full_like(c, math.nan)
    if steps is not None:
        steps = check_int("steps", steps, low=1)
        decay = -np.expm1(-1.0 / steps) / c      # c with -ln(1 - c) = 1/steps
    return PhaseBoundaries(decay, 2.0 / c, 4.0 / c)


def predict_phase(lr, sigma, curvature, steps: int) -> np.ndarray:
    r"""The phase of each configuration, from :math:`c = \eta\sigma^2\lambda`.

    ``divergent`` for c >= 4, ``catapult`` for 2 < c < 4; below, ``decay`` when the
    e-folding time :math:`-1/\ln|1-c|` fits in the horizon ``steps``, else ``decoupled``.
    ``lr``, ``sigma`` (a standard deviation) and ``curvature`` (:math:`\lambda_\theta` for the
    toy, :math:`\hat\theta^\top\bar H_z\hat\theta` or the top eigenvalue of :math:`\bar H_z`
    for a network) broadcast together. Returns a numpy array of phase names.
    """
    steps = check_int("steps", steps, low=1)
    c = _arr("lr", lr) * _arr("sigma", sigma, low_open=False) ** 2 * \
        _arr("curvature", curvature, low_open=False)
    with np.errstate(divide="ignore"):
        rate = -np.log(np.abs(1.0 - c))           # inf at c = 1 (one step kills Φ)
    out = np.where(c >= 4, "divergent", np.where(c > 2, "catapult",
                   np.where(rate * steps >= 1, "decay", "decoupled")))
    return out.astype(object)


class ToyTimescales(NamedTuple):
    """Decay timescales of the toy in steps, elementwise: ``niw`` (Φ: −1/ln|1 − ησ²λ_θ|),
    ``loss`` (the clean loss: −1/(2 ln|1 − ησ_x²λ_u|)) and their continuous-time limits
    ``niw_continuous`` = 1/(ησ²λ_θ), ``loss_continuous`` = 1/(2ησ_x²λ_u) = 1/(2η tr H)."""

    niw: torch.Tensor
    loss: torch.Tensor
    niw_continuous: torch.Tensor
    loss_continuous: torch.Tensor


def toy_timescales(state: ToyState, lr, sigma, sigma_x: float = 1.0) -> ToyTimescales:
    """:class:`ToyTimescales` at ``state`` (valid in the decay phase, near the data fit)."""
    sigma = torch.as_tensor(sigma, dtype=state.u.dtype)
    cn = lr * sigma ** 2 * state.lam_theta
    cl = lr * sigma_x ** 2 * state.lam_u
    return ToyTimescales(-1.0 / torch.log(torch.abs(1 - cn)), -0.5 / torch.log(torch.abs(1 - cl)),
                         1.0 / cn, 0.5 / cl)


@dataclass
class ToyRun:
    """What :func:`simulate_toy` returns: tensors ``[R, *S]`` over the ``R`` recorded steps
    (``step``, a numpy array) and the configuration shape ``S``.

    ``A``, ``phi``, ``niw_norm`` (|θ|), ``lam_theta``, ``lam_u``, ``loss`` (the clean, i.e.
    test, loss :math:`\\frac12\\sigma_x^2(A-a)^2`), ``noisy_loss`` (the population loss with the
    NIN on, :math:`+\\frac12\\sigma^2\\Phi^2`), ``batch_loss`` (the loss of the step's batch;
    equal to ``noisy_loss`` for population moments); NaN from a configuration's divergence
    on. ``diverged`` (bool) and ``diverged_step`` (−1: none) have shape ``S``; ``sigma`` and
    ``lr`` too.
    """

    step: np.ndarray
    sigma: torch.Tensor
    lr: torch.Tensor
    A: torch.Tensor
    phi: torch.Tensor
    niw_norm: torch.Tensor
    lam_theta: torch.Tensor
    lam_u: torch.Tensor
    loss: torch.Tensor
    noisy_loss: torch.Tensor
    batch_loss: torch.Tensor
    diverged: torch.Tensor
    diverged_step: torch.Tensor
    width: int
    steps: int

    def predicted(self) -> np.ndarray:
        """:func:`predict_phase` from the initial :math:`\\lambda_\\theta`."""
        return predict_phase(self.lr, self.sigma, self.lam_theta[0], self.steps)

    def phases(self, growth: float = 2.0) -> np.ndarray:
        """:func:`classify_phase` of the simulated trajectories."""
        return classify_phase(self, growth=growth)

    def frame(self) -> pd.DataFrame:
        """Long format: one row per configuration and recorded step."""
        r = len(self.step)
        flat = {k: getattr(self, k).reshape(r, -1).cpu().numpy()
                for k in ("A", "phi", "niw_norm", "lam_theta", "lam_u", "loss", "noisy_loss",
                          "batch_loss")}
        k = flat["A"].shape[1]
        out = pd.DataFrame({"config": np.tile(np.arange(k), r), "step": np.repeat(self.step, k),
                            "sigma": np.tile(self.sigma.reshape(-1).cpu().numpy(), r),
                            "lr": np.tile(self.lr.reshape(-1).cpu().numpy(), r)})
        for key, val in flat.items():
            out[key] = val.reshape(-1)
        return out


def _gram_step(G: torch.Tensor, mom: ToyMoments, lr: torch.Tensor, rn: float) -> torch.Tensor:
    """Eq. T1 on the Gram matrices ``G[k] = W W^T`` of (u, θ, v): ``M G M^T``."""
    A, phi = G[:, 0, 2] / rn, G[:, 1, 2] / rn
    gx = A * mom.sxx + phi * mom.sxe - mom.sxy
    ge = A * mom.sxe + phi * mom.see - mom.sye
    al, be = lr * gx / rn, lr * ge / rn
    M = torch.eye(3, dtype=G.dtype, device=G.device).repeat(G.shape[0], 1, 1)
    M[:, 0, 2], M[:, 1, 2], M[:, 2, 0], M[:, 2, 1] = -al, -be, -al, -be
    return M @ G @ M.transpose(1, 2)


def simulate_toy(sigma, lr, steps: int, *, width: int = 1000, state: Optional[ToyState] = None,
                 batch_size: Optional[int] = None, sigma_x: float = 1.0, a: float = 1.0,
                 bound: float = 1e12, record_every: int = 1, generator=None, device=None,
                 progress: bool = True) -> ToyRun:
    r"""Run the toy's exact recursion for many (σ, η) configurations at once.

    The dynamics (Eq. T1) are run on the 3×3 Gram matrices of (u, θ, v), an exact reduction,
    so the cost does not depend on the width n.

    Parameters
    ----------
    sigma, lr : floats or tensors, broadcast together to the configuration shape S
        The NIN's standard deviation σ and the step η (e.g. a meshgrid for a phase diagram).
    steps : int
        Number of SGD steps.
    width : int
        n, when ``state`` is not given (then ``toy_init(width, generator=generator)``).
    state : ToyState, optional
        Initial weights ``[n]`` (shared by every configuration) or ``[*S, n]``.
    batch_size : int, optional
        ``None``: population moments (the infinite-batch GD limit, deterministic). B: online
        SGD, a fresh batch of B inputs :math:`x\sim N(0,\sigma_x^2)` and standard noises ξ each
        step, the same for every configuration (ε = σξ; common random numbers).
    sigma_x, a : float
        Input scale and the target map y = a x.
    bound : float
        A configuration diverges at the first step its noisy loss exceeds ``bound`` or turns
        non-finite; it is then frozen (NaN records), and never poisons the others.
    record_every : int
        Record every this many steps (and steps 0 and ``steps``).
    generator : torch.Generator or int, optional
    device : optional
        Where to run (default: the state's device, else the CPU). Everything is float64.

    Returns
    -------
    ToyRun
    """
    steps = check_int("steps", steps, low=1)
    record_every = check_int("record_every", record_every, low=1)
    sigma_x = check_real("sigma_x", sigma_x, low=0, low_open=True)
    a = check_real("a", a)
    bound = check_real("bound", bound, low=0, low_open=True, finite=False)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1)
    gen = _check_generator(generator)
    f64 = torch.float64
    sig = torch.as_tensor(_arr("sigma", sigma, low_open=False), dtype=f64)
    eta = torch.as_tensor(_arr("lr", lr), dtype=f64)
    sig, eta = torch.broadcast_tensors(sig, eta)
    shape = sig.shape
    if state is None:
        state = toy_init(check_int("width", width, low=1), generator=gen, dtype=f64)
    if not isinstance(state, ToyState):
        raise TypeError(f"state must be a ToyState, got {type(state).__name__}")
    dev = torch.device(device) if device is not None else state.u.device
    k = max(1, int(np.prod(shape)))
    W = torch.stack([t.to(dev, f64) for t in state], dim=-2)           # [..., 3, n]
    if W.dim() == 2:
        W = W.expand(*shape, 3, W.shape[-1])
    elif W.shape[:-2] != shape:
        raise ValueError(f"state must have shape [n] or [*S, n] with S = {tuple(shape)} (the "
                         f"shape of sigma and lr broadcast), got {tuple(state.u.shape)}")
    G = (W @ W.transpose(-1, -2)).reshape(k, 3, 3).clone()
    n = W.shape[-1]
    rn = math.sqrt(n)
    s, lrs = sig.reshape(k).to(dev), eta.reshape(k).to(dev)
    pop = ToyMoments.population(s, sigma_x, a)
    active = torch.ones(k, dtype=torch.bool, device=dev)
    div_step = torch.full((k,), -1, dtype=torch.long, device=dev)
    keys = ("A", "phi", "niw_norm", "lam_theta", "lam_u", "loss", "noisy_loss", "batch_loss")
    rec = {key: [] for key in keys}
    rec_steps = []

    def observe(G, batch_loss):
        A, phi = G[:, 0, 2] / rn, G[:, 1, 2] / rn
        d = torch.diagonal(G, dim1=1, dim2=2) / n
        return {"A": A, "phi": phi, "niw_norm": G[:, 1, 1].clamp(min=0).sqrt(),
                "lam_theta": d[:, 1] + d[:, 2], "lam_u": d[:, 0] + d[:, 2],
                "loss": 0.5 * sigma_x ** 2 * (A - a) ** 2, "noisy_loss": pop.loss(A, phi),
                "batch_loss": batch_loss}

    def record(t, obs):
        rec_steps.append(t)
        for key in keys:
            rec[key].append(torch.where(active, obs[key], torch.full_like(obs[key], math.nan)))

    obs = observe(G, pop.loss(G[:, 0, 2] / rn, G[:, 1, 2] / rn))
    bad = ~torch.isfinite(obs["noisy_loss"]) | (obs["noisy_loss"] > bound)
    div_step[bad] = 0
    active &= ~bad
    record(0, obs)
    bar = tqdm(range(1, steps + 1), disable=None if progress else True, desc="toy", leave=False)
    for t in bar:
        if batch_size is None:
            mom = pop
        else:
            gdev = gen.device if gen is not None else dev
            x = (torch.randn(batch_size, generator=gen, device=gdev, dtype=f64) * sigma_x).to(dev)
            xi = torch.randn(batch_size, generator=gen, device=gdev, dtype=f64).to(dev)
            mxx, mxe, mee = (x * x).mean(), (x * xi).mean(), (xi * xi).mean()
            mom = ToyMoments(mxx, s * mxe, s * s * mee, a * mxx, a * s * mxe, a * a * mxx)
        batch_loss = mom.loss(G[:, 0, 2] / rn, G[:, 1, 2] / rn)
        G_new = _gram_step(G, mom, lrs, rn)
        obs = observe(G_new, batch_loss)
        bad = active & (~torch.isfinite(obs["noisy_loss"]) | (obs["noisy_loss"] > bound)
                        | ~torch.isfinite(G_new).all(-1).all(-1))
        div_step[bad] = t
        active &= ~bad
        G = torch.where(active.view(k, 1, 1), G_new, G)
        if t % record_every == 0 or t == steps:
            record(t, obs)
        if not bool(active.any()):
            if rec_steps[-1] != steps:
                record(steps, obs)
            break
    bar.close()
    out = {key: torch.stack(v).reshape(len(rec_steps), *shape) for key, v in rec.items()}
    return ToyRun(step=np.asarray(rec_steps), sigma=sig, lr=eta, diverged=(div_step >= 0)
                  .reshape(shape), diverged_step=div_step.reshape(shape), width=n, steps=steps,
                  **out)


def classify_phase(run: ToyRun, growth: float = 2.0) -> np.ndarray:
    r"""The phase each simulated trajectory shows (compare with :meth:`ToyRun.predicted`).

    ``divergent``: the run diverged. ``catapult``: it did not, but its noisy loss rose above
    ``growth`` times its initial value on the way. ``decay``: neither, and
    :math:`|\Phi|` ended at most :math:`e^{-1}` of its start. ``decoupled``: otherwise.
    """
    growth = check_real("growth", growth, low=1, low_open=True)
    shape = run.diverged.shape
    div = run.diverged.reshape(-1).cpu().numpy()
    nl = run.noisy_loss.reshape(len(run.step), -1).cpu().numpy()
    phi = run.phi.reshape(len(run.step), -1).cpu().numpy()
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.where(np.isfinite(nl), nl, -np.inf), axis=0)
        cat = peak > growth * nl[0]
        decayed = np.abs(phi[-1]) <= math.exp(-1) * np.abs(phi[0])
    out = np.where(div, "divergent", np.where(cat, "catapult",
                   np.where(decayed, "decay", "decoupled")))
    return out.astype(object).reshape(shape)
