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
(``tests/test_gni.py`` measures it).

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
The asymmetric stable SDE, the Feller skewness conversion and the corrected drift
:math:`b_{h,K}` live in :mod:`gnilab._gni_dynamics` and are re-exported here.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from . import stable as _stable
from . import train as _train
from . import _gni_dynamics
from ._gni_dynamics import (  # noqa: F401  (Eqs. 4.4-4.9, re-exported: see __all__)
    CorrectedDrift, GNIRun, TVDistance, corrected_drift, density_modes, feller_to_stable,
    gibbs_density, gibbs_probabilities, gibbs_sample, grunwald_weights, h0, simulate_gni,
    stable_to_feller, tv_to_gibbs)
from ._injection import NoiseSwitch, SiteHook
from ._validation import (check_bool, check_choice, check_finite_module, check_generator,
                          check_int, check_real, check_tensor_range)

__all__ = [
    "GaussianNoiseInjection",
    "stacked_losses",
    "m_sample_loss",
    "accumulated_noise",
    "ImplicitEffect",
    "implicit_effect",
    "explicit_regulariser",
    "train_gni",
    "marginal_loss_probe",
    "compare_arms",
    "sub_weibull",
    "sub_weibull_pdf",
    "half_tail_fits",
    "tail_statistics",
    "tail_table",
] + list(_gni_dynamics.__all__)     # the asymmetric stable dynamics, imported above

# activation modules: the default injection sites (nn.Identity is models.MLP's "linear")
_ACTIVATIONS = (nn.ReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.SiLU,
                nn.Softplus, nn.Identity)
_KINDS = ("additive", "multiplicative")


def _check_generator(generator) -> Optional[torch.Generator]:
    return check_generator("generator", generator, seeds=True)


class GaussianNoiseInjection(NoiseSwitch, nn.Module):
    r"""A feed-forward model with Gaussian noise injected on chosen activations (Eq. 2.8).

    Parameters
    ----------
    model : nn.Module
        Any feed-forward model taking a batch ``[N, ...]`` (e.g. :class:`gnilab.models.MLP`).
    sigma : float >= 0
        Standard deviation :math:`\sigma` of the injected noise (variance :math:`\sigma^2`).
    kind : {"additive", "multiplicative"}
        :math:`h + \sigma\epsilon` or :math:`h\odot(1 + \sigma\epsilon)`.
    sites : sequence of str, optional
        Names (as in ``model.named_modules()``) of the modules after whose output noise is
        injected, plus the special names ``"input"`` (the network input) and ``"output"`` (the
        network output). Default: every activation module of the model (ReLU, ELU, ... and
        ``nn.Identity``) except one that produces the output itself.
    generator : torch.Generator or int, optional
        Source of the noise (a CPU generator draws on the CPU and moves the noise to the
        model's device). ``None``: torch's global generator.
    tile_at_input : bool
        Stacked copies (``copies=M``) are made at the first injection site reached, so the
        layers before it run once on the plain batch (for an MLP on images, the first and
        largest matrix product). Set this for models whose output also depends on
        activations before the first site by another path (skip connections around it):
        then the input itself is tiled.

    Notes
    -----
    The noise is on while the module is in ``train()`` mode and ``enabled`` is true; it is off
    in ``eval()`` mode and inside ``with net.noise_off():``. ``net(x, copies=M)`` runs M
    stacked noisy copies of the batch (copy-major rows) and returns ``[M * N, ...]``;
    ``noise={site: tensor}`` replaces the random draws by given :math:`\epsilon` (copy-major,
    shape ``[M * N, *site_shape]``), for tests and paired comparisons. Calling the wrapped
    ``model`` directly runs it without noise.
    """

    def __init__(self, model: nn.Module, sigma: float, kind: str = "additive",
                 sites: Optional[Sequence[str]] = None, generator=None,
                 tile_at_input: bool = False):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.sigma = sigma
        self.kind = check_choice("kind", kind, _KINDS)
        self.generator = _check_generator(generator)
        self.enabled = True
        names = dict(model.named_modules())
        last = list(names)[-1] if len(names) > 1 else None
        if sites is None:
            sites = [n for n, m in names.items()
                     if n and isinstance(m, _ACTIVATIONS) and n != last]
            if not sites:
                raise ValueError("model has no activation modules to inject noise after; give "
                                 "sites= explicitly (module names, 'input' or 'output')")
        if isinstance(sites, str) or not all(isinstance(s, str) for s in sites):
            raise TypeError(f"sites must be a sequence of module names, got {sites!r}")
        allowed = {"input", "output"} | {n for n in names if n}
        bad = [s for s in sites if s not in allowed]
        if bad:
            raise ValueError(f"sites {bad} are not modules of the model; allowed: 'input', "
                             f"'output' or one of {sorted(n for n in names if n)}")
        if len(set(sites)) != len(sites):
            raise ValueError(f"sites must not repeat, got {list(sites)}")
        self.sites = list(sites)
        self._noise_override: Optional[Dict[str, torch.Tensor]] = None
        self._capture: Optional[Dict[str, torch.Tensor]] = None
        self._active = False
        self._pending = 1
        self.tile_at_input = check_bool("tile_at_input", tile_at_input)
        self._handles = [names[s].register_forward_hook(SiteHook(self, s))
                         for s in self.sites if s not in ("input", "output")]

    # ---- injection ---------------------------------------------------------------------
    def _draw(self, site: str, h: torch.Tensor) -> torch.Tensor:
        if self._noise_override is not None and site in self._noise_override:
            eps = self._noise_override[site].to(device=h.device, dtype=h.dtype)
            if eps.shape != h.shape:
                raise ValueError(f"noise for site {site!r} has shape {tuple(eps.shape)}, "
                                 f"the activation has {tuple(h.shape)}")
            return eps
        gen = self.generator
        dev = gen.device if gen is not None else h.device
        return torch.randn(h.shape, generator=gen, device=dev, dtype=h.dtype).to(h.device)

    def _inject(self, site: str, h: torch.Tensor) -> torch.Tensor:
        if not self._active:                   # a hooked site outside this wrapper's forward
            return h                           # pass: model(x) is clean
        if self._pending > 1:                  # the first site reached: tile the copies here
            h = h.repeat(self._pending, *([1] * (h.dim() - 1)))        # copy-major rows
            self._pending = 1
        if self.noisy:                         # one fused kernel each: h + s eps, h + s h eps
            eps = self._draw(site, h)
            h = torch.add(h, eps, alpha=self._sigma) if self.kind == "additive" else \
                torch.addcmul(h, h, eps, value=self._sigma)
        if self._capture is not None:
            self._capture[site] = h
        return h


    def forward(self, x: torch.Tensor, copies: int = 1,
                noise: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        copies = check_int("copies", copies, low=1)
        if copies > 1 and self.tile_at_input:
            x = x.repeat(copies, *([1] * (x.dim() - 1)))          # copy-major rows
            copies = 1
        self._pending = copies
        if noise is not None:
            unknown = set(noise) - set(self.sites)
            if unknown:
                raise ValueError(f"noise given for {sorted(unknown)}, which are not injection "
                                 f"sites ({self.sites})")
        self._noise_override, self._active = noise, True
        try:
            if "input" in self.sites:
                x = self._inject("input", x)
            out = self.model(x)
            if "output" in self.sites:
                out = self._inject("output", out)
            if self._pending > 1:              # no site on the way (cannot happen for sites
                out = out.repeat(self._pending, *([1] * (out.dim() - 1)))   # in the path)
        finally:
            self._noise_override, self._active, self._pending = None, False, 1
        return out

    def activations(self, x: torch.Tensor, copies: int = 1, noise=None) -> Dict[str, torch.Tensor]:
        """The values at every site (after injection when the noise is on) and ``"out"``, the
        network output, for ``copies`` stacked copies of ``x``; gradients flow through them."""
        self._capture = {}
        try:
            out = self(x, copies=copies, noise=noise)
            acts = dict(self._capture)
        finally:
            self._capture = None
        acts["out"] = out
        return acts

    def weight_layers(self, include_bias: bool = False) -> Dict[str, torch.nn.Parameter]:
        """The trainable weights of the model by layer name (``name.weight``; with
        ``include_bias`` also ``name.bias``), the parameters whose implicit-effect gradients
        :func:`implicit_effect` reports."""
        out = {}
        for name, mod in self.model.named_modules():
            w = getattr(mod, "weight", None)
            if isinstance(w, nn.Parameter) and w.requires_grad:
                out[f"{name}.weight"] = w
                b = getattr(mod, "bias", None)
                if include_bias and isinstance(b, nn.Parameter) and b.requires_grad:
                    out[f"{name}.bias"] = b
        return out

    def extra_repr(self) -> str:
        return f"sigma={self._sigma:g}, kind={self.kind!r}, sites={self.sites}"


def _check_net(net) -> GaussianNoiseInjection:
    if not isinstance(net, GaussianNoiseInjection):
        raise TypeError(f"net must be a gnilab.gni.GaussianNoiseInjection, got "
                        f"{type(net).__name__}")
    return net


def _tile(y: torch.Tensor, copies: int) -> torch.Tensor:
    return y.repeat(copies, *([1] * (y.dim() - 1))) if copies > 1 else y


def per_copy_losses(net, x, y, loss="mse", copies: int = 1, noise=None) -> torch.Tensor:
    """Per-example losses ``[M, N]`` of M stacked noisy copies: entry ``[m, i]`` is
    :math:`\\ell(\\tilde h(x_i; \\epsilon_m), y_i)` (copy-major rows, grouped by ``view``)."""
    net = _check_net(net)
    loss_fn = _train.get_loss(loss)
    out = net(x, copies=copies, noise=noise)
    per_row = loss_fn(out, _tile(y, copies), reduction="none")
    return per_row.reshape(copies, x.shape[0])


def stacked_losses(net, x, y, loss="mse", copies: int = 1, noise=None) -> torch.Tensor:
    r""":math:`\tilde L(D; w, \epsilon_m)` for m = 1..M, the mean loss of each of M stacked
    noisy copies of the batch ``(x, y)``, in one forward pass (shape ``[M]``)."""
    return per_copy_losses(net, x, y, loss, copies, noise).mean(1)


def m_sample_loss(net, x, y, loss="mse", copies: int = 1, noise=None) -> torch.Tensor:
    r"""The M-sample objective of Eq. 4.5, :math:`\tilde L_M = \frac1M\sum_m \tilde L(D; w,
    \epsilon_m)`, in one stacked forward pass (M = ``copies``; M = 1 is plain GNI)."""
    return stacked_losses(net, x, y, loss, copies, noise).mean()


def accumulated_noise(net, x, copies: int = 1) -> Dict[str, torch.Tensor]:
    r"""The accumulated noise of Eq. 2.9 at every site, :math:`\mathcal E_i = \tilde h_i -
    h_i` (noisy minus clean activation, the noise injected at the site *and* upstream), as
    tensors ``[M, N, *site_shape]`` for M = ``copies`` independent draws."""
    net = _check_net(net)
    with torch.no_grad():
        with net.noise_off():
            clean = net.activations(x)
        was = net.training
        net.train()
        try:
            noisy = net.activations(x, copies=copies)
        finally:
            net.train(was)
    n = x.shape[0]
    return {s: (noisy[s].reshape(copies, n, *clean[s].shape[1:]) - clean[s][None])
            for s in net.sites}


@dataclass(frozen=True)
class ImplicitEffect:
    r"""What :func:`implicit_effect` measures, for one draw :math:`\epsilon` and M further ones.

    Attributes
    ----------
    clean_loss : float
        :math:`L(D; w)`, no noise.
    delta_loss : float
        :math:`\Delta L(\epsilon) = \tilde L(\epsilon) - L` for the single draw.
    explicit, explicit_stderr : float
        Monte Carlo estimate of :math:`E_\epsilon[\Delta L]` over the M draws and its standard
        error.
    implicit : float
        :math:`E_L = \Delta L(\epsilon) - \widehat{E_\epsilon[\Delta L]}` (Eq. 3.2).
    grads : dict name -> Tensor
        :math:`\nabla E_L` per layer (weights; biases when asked), the implicit-effect
        gradient noise of full-batch GNI training (Remark 4.1).
    explicit_grads : dict name -> Tensor
        :math:`\nabla \tilde L_M`, the explicit-effect (M-sample) gradient.
    copies : int
        M.
    """
    clean_loss: float
    delta_loss: float
    explicit: float
    explicit_stderr: float
    implicit: float
    grads: Dict[str, torch.Tensor] = field(repr=False)
    explicit_grads: Dict[str, torch.Tensor] = field(repr=False)
    copies: int = 16


def _split(net, x, y, loss_fn, copies, include_bias):
    """One stacked pass over 1 + M copies: (per-copy losses [1 + M], implicit, explicit
    objective, parameters)."""
    params = net.weight_layers(include_bias)
    losses = stacked_losses(net, x, y, loss_fn, copies + 1)
    single, mc = losses[0], losses[1:]
    explicit_obj = mc.mean()
    return losses, single - explicit_obj, explicit_obj, params


def implicit_effect(net, x, y, loss="mse", copies: int = 16,
                    include_bias: bool = False) -> ImplicitEffect:
    r"""Split the effect of the injected noise on the loss into its explicit and implicit
    parts (Eq. 3.2) and return the implicit-effect gradient per layer.

    One stacked forward pass over 1 + M copies of the (full) batch ``(x, y)``: copy 0 is the
    single draw :math:`\epsilon`, copies 1..M estimate :math:`E_\epsilon[\Delta L]`. The noise
    is on whatever the module's mode (this is a measurement of the noisy model).

    Parameters
    ----------
    net : GaussianNoiseInjection
    x, y : tensors, the data (the paper uses the whole data set, Remark 4.1)
    loss : str or callable, see :func:`gnilab.train.get_loss`
    copies : int >= 1, M
    include_bias : bool, also report bias gradients
    """
    net = check_finite_module("net", _check_net(net))
    check_tensor_range("x", x)
    copies = check_int("copies", copies, low=1)
    include_bias = check_bool("include_bias", include_bias)
    loss_fn = _train.get_loss(loss)
    was, prev = net.training, net.enabled
    net.train()
    net.enabled = True
    try:
        with torch.no_grad(), net.noise_off():
            clean = float(loss_fn(net(x), y))
        losses, implicit, explicit_obj, params = _split(net, x, y, loss_fn, copies, include_bias)
        names = list(params)
        g_imp = torch.autograd.grad(implicit, [params[n] for n in names], retain_graph=True)
        g_exp = torch.autograd.grad(explicit_obj, [params[n] for n in names])
    finally:
        net.train(was)
        net.enabled = prev
    mc = losses[1:].detach() - clean
    se = float(mc.std(unbiased=True) / math.sqrt(copies)) if copies > 1 else math.nan
    return ImplicitEffect(clean_loss=clean, delta_loss=float(losses[0].detach()) - clean,
                          explicit=float(mc.mean()), explicit_stderr=se,
                          implicit=float(implicit.detach()),
                          grads={n: g.detach() for n, g in zip(names, g_imp)},
                          explicit_grads={n: g.detach() for n, g in zip(names, g_exp)},
                          copies=copies)


def _loss_hessian_quadratic(loss_name: str, out: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
    """Per-example tr(J^T H_L J) for J [N, C, n]: H_L = 2I (squared error, no ½) or
    diag(p) - pp^T (cross-entropy on logits)."""
    if loss_name == "mse":
        return 2 * J.pow(2).sum((1, 2))
    p = torch.softmax(out, dim=1)                               # [N, C]
    a = (p[:, :, None] * J.pow(2)).sum((1, 2))
    pj = (p[:, :, None] * J).sum(1)                             # [N, n]
    return a - pj.pow(2).sum(1)


def explicit_regulariser(net, x, loss: str = "mse", create_graph: bool = True) -> torch.Tensor:
    r"""The explicit regulariser :math:`R` of Camuto et al. (2020) for the injections of
    ``net`` (module docstring): :math:`\frac{\sigma^2}{2}\sum_k \operatorname{tr}(J_k^\top H_L
    J_k)` averaged over the examples of ``x``, with Jacobians by autograd (one backward pass
    per output unit). Exact to :math:`O(\sigma^2)` only where the output is (multi)linear in
    the noise; see the module docstring for what it omits in ReLU networks.

    Parameters
    ----------
    net : GaussianNoiseInjection
    x : tensor, the batch
    loss : {"mse", "cross_entropy"}
        gnilab's squared error (summed over outputs, no ½: :math:`H_L = 2I`) or cross-entropy on
        logits (:math:`H_L = \mathrm{diag}(p) - pp^\top`).
    create_graph : bool
        Keep the graph so that :math:`R` can be differentiated (training on :math:`L + R`).

    Returns
    -------
    Scalar tensor.
    """
    net = _check_net(net)
    loss = check_choice("loss", loss, ("mse", "cross_entropy"))
    create_graph = check_bool("create_graph", create_graph)
    with torch.enable_grad(), net.noise_off():
        xin = x.detach().requires_grad_(True) if "input" in net.sites else x
        acts = net.activations(xin)
        out = acts["out"].reshape(x.shape[0], -1)
        inner = [s for s in net.sites if s != "output"]
        hs = [xin if s == "input" else acts[s] for s in inner]
        total = torch.zeros(x.shape[0], dtype=out.dtype, device=out.device)
        if hs:
            rows = [torch.autograd.grad(out[:, c].sum(), hs, retain_graph=True,
                                        create_graph=create_graph)
                    for c in range(out.shape[1])]
            for k, h in enumerate(hs):
                J = torch.stack([r[k].reshape(x.shape[0], -1) for r in rows], 1)   # [N, C, n]
                if net.kind == "multiplicative":
                    J = J * h.reshape(x.shape[0], 1, -1)
                total = total + _loss_hessian_quadratic(loss, out, J)
        if "output" in net.sites:           # J = I at the output
            eye = torch.eye(out.shape[1], dtype=out.dtype, device=out.device)
            J = eye.expand(x.shape[0], -1, -1)
            if net.kind == "multiplicative":
                J = J * out.reshape(x.shape[0], 1, -1)
            total = total + _loss_hessian_quadratic(loss, out, J)
    R = net.variance / 2 * total.mean()
    return R if create_graph else R.detach()


_regulariser = explicit_regulariser      # train_gni's argument of that name shadows it


# =============================================================================================
# training
# =============================================================================================
class _Replacement:
    """The replacement arm of Fig. 4: explicit-effect gradient of the M-sample objective plus,
    per layer, noise drawn from a law fitted to that step's implicit-effect gradients."""

    def __init__(self, loss_fn, copies, law, fit_method, fit_sample, include_bias, generator,
                 clip):
        self.loss_fn, self.copies, self.law, self.clip = loss_fn, copies, law, clip
        self.fit_method, self.fit_sample = fit_method, fit_sample
        self.include_bias, self.generator = include_bias, generator
        self.grads = None

    def objective(self, model, xb, yb):
        _, implicit, explicit_obj, params = _split(model, xb, yb, self.loss_fn, self.copies,
                                                   self.include_bias)
        names = list(params)
        g = torch.autograd.grad(implicit, [params[n] for n in names], retain_graph=True)
        self.grads = dict(zip(names, (v.detach() for v in g)))
        return explicit_obj

    def _fit(self, g: torch.Tensor):
        v = g.reshape(-1)
        v = v[v != 0]                  # dead units: exactly zero, and they stay so (see below)
        if v.numel() < 10:
            return None
        if self.fit_sample is not None and v.numel() > self.fit_sample:
            idx = torch.randperm(v.numel(), generator=self.generator)[:self.fit_sample]
            v = v[idx.to(v.device)]
        v = v.double().cpu().numpy()
        if self.law == "gaussian":
            return {"alpha": 2.0, "beta": 0.0, "scale": float(v.std()), "loc": float(v.mean())}
        f = _stable.fit(v, method=self.fit_method, param="S1")
        return {"alpha": f.alpha, "beta": f.beta, "scale": f.scale, "loc": f.loc}

    def grad_hook(self, step, model):
        t0 = time.perf_counter()
        params = model.weight_layers(self.include_bias)
        row = {}
        for i, (name, g) in enumerate(self.grads.items()):
            law = self._fit(g)
            if law is None:                    # (almost) no implicit gradient: no noise
                row.update({f"alpha_{i}": math.nan, f"beta_{i}": math.nan,
                            f"scale_{i}": 0.0})
                continue
            if self.law == "gaussian":
                xi = law["loc"] + law["scale"] * torch.randn(g.shape, generator=self.generator,
                                                             dtype=g.dtype)
            else:
                xi = _stable.sample(law["alpha"], law["beta"], law["scale"], law["loc"],
                                    size=tuple(g.shape), param="S1",
                                    generator=self.generator, dtype=g.dtype)
            if self.clip:                      # no draw beyond what the layer's own
                top = float(g.abs().max())       # implicit gradient reached this step
                xi = xi.clamp(-top, top)
                row[f"clipped_{i}"] = float((xi.abs() == top).double().mean())
            # entries whose implicit gradient is exactly 0 (units dead on the whole batch) get
            # no noise either: the replacement keeps the implicit effect's support
            params[name].grad.add_(torch.where(g != 0, xi.to(g.device), torch.zeros_like(g)))
            row.update({f"alpha_{i}": law["alpha"], f"beta_{i}": law["beta"],
                        f"scale_{i}": law["scale"]})
        row["fit_seconds"] = time.perf_counter() - t0
        return row


def train_gni(net, data, *, steps: int, lr: float, loss: str = "mse", copies: int = 1,
              batch_size: Optional[int] = None, replacement: Optional[str] = None,
              explicit_regulariser: bool = False, fit_method: str = "quantile",
              fit_sample: Optional[int] = 4096, clip_replacement: bool = False,
              include_bias: bool = False, test_data=None,
              eval_every: Optional[int] = None, callbacks=(), generator=None,
              progress: bool = True):
    r"""Train a noise-injected network with plain SGD (:func:`gnilab.train.train`).

    Arms (Camuto et al. 2021, Figs. 4, 5, 7, 8):

    * ``copies=M`` : the M-sample objective :math:`\tilde L_M` of Eq. 4.5 (M = 1: ordinary GNI
      training; larger M marginalises more of the implicit effect); ``net.sigma = 0`` is the
      baseline;
    * ``explicit_regulariser=True`` : :math:`L + R` without noise ("Exp Reg");
    * ``replacement="stable"`` or ``"gaussian"`` : the gradient of :math:`\tilde L_M` plus, for
      every weight matrix, i.i.d. noise of its shape drawn from an :math:`S_\alpha` law (S1,
      location and scale fitted: the implicit-effect gradient has mean zero) or a Gaussian
      fitted to that step's implicit-effect gradient :math:`\nabla E_L` (one extra draw against
      the M copies, :func:`implicit_effect`), fitted on the nonzero entries (exact zeros are
      units dead on the whole batch; they get no noise). The noise is added to the gradient, so the
      update moves it by ``lr`` times the draw, as in the paper's code. The fit uses
      ``fit_method`` (:func:`gnilab.stable.fit`; ``"quantile"`` is McCulloch's, fast;
      ``"mle"`` is exact and slower) on at most ``fit_sample`` randomly chosen entries per
      layer; the fitted parameters and the fit's wall time per step are in ``records``.
      ``clip_replacement=True`` limits each draw to the largest absolute implicit-effect
      gradient of its layer in that step (the fraction clipped is recorded): i.i.d. draws
      from a law with :math:`\alpha \approx 1` reach values no finite gradient sample does,
      and without the limit such runs diverge at learning rates where GNI training does not
      (Chapter 5 shows it).

    The history's ``loss`` is the loss on ``data`` without noise (``eval()`` mode).

    Parameters
    ----------
    net : GaussianNoiseInjection
    data, test_data : datasets with ``x`` and ``y``
    steps, lr, batch_size, eval_every, callbacks, progress : as in :func:`gnilab.train.train`
        (e.g. :func:`marginal_loss_probe`)
    loss : {"mse", "cross_entropy"} or a callable (the regulariser needs a named loss)
    copies : int >= 1, M
    generator : torch.Generator or int, optional — minibatch sampling and the replacement
        draws (the injected noise follows ``net.generator``).

    Returns
    -------
    :class:`gnilab.train.TrainResult`
    """
    net = _check_net(net)
    steps = check_int("steps", steps, low=0)
    copies = check_int("copies", copies, low=1)
    explicit_regulariser = check_bool("explicit_regulariser", explicit_regulariser)
    if replacement is not None:
        replacement = check_choice("replacement", replacement, ("stable", "gaussian"))
    fit_method = check_choice("fit_method", fit_method, ("quantile", "mle", "ecf"))
    if fit_sample is not None:
        fit_sample = check_int("fit_sample", fit_sample, low=10)
    if explicit_regulariser and replacement is not None:
        raise ValueError("explicit_regulariser and replacement are different arms; choose one")
    gen = _check_generator(generator)
    loss_fn = _train.get_loss(loss)
    grad_hook = None
    if replacement is not None:
        rep = _Replacement(loss_fn, copies, replacement, fit_method, fit_sample,
                           check_bool("include_bias", include_bias), gen,
                           check_bool("clip_replacement", clip_replacement))
        objective, grad_hook = rep.objective, rep.grad_hook
    elif explicit_regulariser:
        if not isinstance(loss, str):
            raise ValueError("explicit_regulariser needs loss='mse' or 'cross_entropy'")

        def objective(model, xb, yb):
            with model.noise_off():
                clean = loss_fn(model(xb), yb)
            return clean + _regulariser(model, xb, loss)
    else:
        def objective(model, xb, yb):
            return m_sample_loss(model, xb, yb, loss_fn, copies)
    return _train.train(net, data, steps=steps, lr=lr, batch_size=batch_size, loss=loss_fn,
                        test_data=test_data, eval_every=eval_every, callbacks=callbacks,
                        generator=gen, progress=progress, objective=objective,
                        grad_hook=grad_hook)


def marginal_loss_probe(data, loss="mse", copies: int = 64, every: int = 10, seed: int = 0):
    r"""A :class:`gnilab.train.Callback` recording ``marginal_loss``, a Monte Carlo estimate
    of :math:`f(w) = E_\epsilon[\tilde L(D; w, \epsilon)] = L + E_\epsilon[\Delta L]`, the
    objective that every M shares (Eq. 4.1), with ``copies`` draws, and its standard error.
    The draws use the same seed at every call (common random numbers: differences between
    steps and between runs are not blurred by fresh noise)."""
    copies = check_int("copies", copies, low=2)
    every = check_int("every", every, low=1)
    loss_fn = _train.get_loss(loss)

    def measure(step, net):
        gen_before = net.generator
        net.generator = torch.Generator().manual_seed(seed)
        was = net.training
        net.train()
        try:
            with torch.no_grad():
                v = stacked_losses(net, data.x, data.y, loss_fn, copies)
        finally:
            net.generator = gen_before
            net.train(was)
        return {"marginal_loss": float(v.mean()),
                "marginal_loss_se": float(v.std() / math.sqrt(copies))}
    return _train.Callback(every, measure)


def compare_arms(model: nn.Module, data, arms: Dict[str, dict], *, sigma: float,
                 kind: str = "additive", steps: int, lr: float, seeds: Sequence[int] = (0,),
                 loss: str = "mse", test_data=None, window: float = 0.5,
                 probe_copies: int = 64, probe_every: int = 10, probe_seed: int = 0,
                 progress: bool = True):
    r"""Train the arms of an experiment from the *same* weights and compare them.

    Every arm and seed starts from a copy of ``model`` (e.g. trained without noise first, so
    that all arms begin at the same point), wrapped in :class:`GaussianNoiseInjection` with
    ``sigma``/``kind`` (an arm may override them) and the noise seed ``1000 + seed``, and runs
    :func:`train_gni` with the arm's keyword arguments (``copies``, ``replacement``,
    ``explicit_regulariser``, ``batch_size``, ...). Along the way :func:`marginal_loss_probe`
    records :math:`f(w) = E_\epsilon \tilde L` on ``data`` every ``probe_every`` steps, with
    the same ``probe_copies`` draws (seed ``probe_seed``) for every arm, seed and step.

    Returns
    -------
    (summary, curves) : pandas DataFrames. ``summary`` has one row per arm and seed: the mean
    of ``marginal_loss``, of the clean training ``loss`` and (with ``test_data``) of
    ``test_loss`` over the last ``window`` fraction of the steps, ``diverged`` and
    ``diverged_step``, and the mean fit time per step of replacement arms. ``curves`` holds the
    recorded rows of every run with ``arm`` and ``seed`` columns.
    """
    import copy
    import pandas as pd
    if not isinstance(arms, dict) or not arms:
        raise ValueError("arms must be a non-empty dict name -> keyword arguments of train_gni")
    window = check_real("window", window, low=0, high=1, low_open=True)
    steps = check_int("steps", steps, low=1)
    summary, curves = [], []
    for name, kw in arms.items():
        kw = dict(kw)
        sig, knd = kw.pop("sigma", sigma), kw.pop("kind", kind)
        for seed in seeds:
            net = GaussianNoiseInjection(copy.deepcopy(model), sig, knd, generator=1000 + seed)
            res = train_gni(net, data, steps=steps, lr=lr, loss=loss, test_data=test_data,
                            eval_every=probe_every, generator=seed, progress=progress,
                            callbacks=[marginal_loss_probe(data, loss, probe_copies,
                                                           probe_every, probe_seed)], **kw)
            rec = res.records.groupby("step").first().reset_index() if len(res.records) \
                else pd.DataFrame({"step": []})
            run = res.history.merge(rec, on="step", how="left")
            run["arm"], run["seed"] = name, seed
            curves.append(run)
            late = run[run.step > (1 - window) * steps]
            row = {"arm": name, "seed": seed, "diverged": res.diverged,
                   "diverged_step": res.diverged_step}
            for col in ("marginal_loss", "loss", "test_loss"):
                row[col] = float(late[col].mean()) if (col in late and not res.diverged) \
                    else math.nan
            if "fit_seconds" in res.records:
                row["fit_seconds"] = float(res.records["fit_seconds"].mean())
            summary.append(row)
    return pd.DataFrame(summary), pd.concat(curves, ignore_index=True)


# =============================================================================================
# tails: sub-Weibull laws (Fig. 3) and the diagnostics of Fig. 2
# =============================================================================================
def sub_weibull(r: float, size, generator=None, dtype=torch.float64) -> torch.Tensor:
    r"""Symmetric sub-Weibull draws with tail parameter ``r`` (Definition 3.2):
    :math:`X = \pm E^r`, :math:`E\sim\mathrm{Exp}(1)`, so :math:`P(|X| > x) = e^{-x^{1/r}}` and
    :math:`\|X\|_m = \Gamma(1 + rm)^{1/m} \asymp m^r` (r = 1/2: sub-Gaussian; r = 1: Laplace;
    larger r: heavier tails)."""
    r = check_real("r", r, low=0, low_open=True)
    gen = _check_generator(generator)
    size = (size,) if isinstance(size, int) else tuple(size)
    e = torch.empty(size, dtype=dtype).exponential_(generator=gen)
    sign = torch.where(torch.rand(size, generator=gen, dtype=dtype) < 0.5, -1.0, 1.0)
    return sign * e.pow(r)


def sub_weibull_pdf(x, r: float):
    r"""Density of :func:`sub_weibull`: :math:`\frac{1}{2r}|x|^{1/r-1}e^{-|x|^{1/r}}`."""
    r = check_real("r", r, low=0, low_open=True)
    a = np.abs(np.asarray(x, dtype=float))
    with np.errstate(divide="ignore"):
        return a ** (1 / r - 1) * np.exp(-a ** (1 / r)) / (2 * r)


def half_tail_fits(x) -> dict:
    r"""Maximum-likelihood half-normal and half-Cauchy fits to the positive part of ``x``
    (the comparison of the paper's Fig. 2): scales and mean log-likelihoods per point; the
    half-Cauchy fitting better (higher mean log-likelihood) marks a heavy tail."""
    v = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=float).ravel()
    v = v[v > 0]
    if v.size < 10:
        raise ValueError(f"x must have at least 10 positive entries, got {v.size}")
    s_n = math.sqrt(float(np.mean(v ** 2)))
    ll_n = float(np.mean(0.5 * math.log(2 / math.pi) - math.log(s_n) - v ** 2 / (2 * s_n ** 2)))
    # half-Cauchy: the MLE scale solves mean(v^2 / (v^2 + s^2)) = 1/2 (monotone in s)
    lo, hi = float(v.min()), float(v.max())
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if np.mean(v ** 2 / (v ** 2 + mid ** 2)) > 0.5:
            lo = mid
        else:
            hi = mid
    s_c = math.sqrt(lo * hi)
    ll_c = float(np.mean(math.log(2 / (math.pi * s_c)) - np.log1p((v / s_c) ** 2)))
    return {"halfnorm_scale": s_n, "halfnorm_loglik": ll_n, "halfcauchy_scale": s_c,
            "halfcauchy_loglik": ll_c, "n_positive": int(v.size)}


def tail_statistics(x, fit_method: str = "quantile") -> dict:
    r"""Skewness, excess kurtosis, the half-normal / half-Cauchy comparison of the positive part
    (:func:`half_tail_fits`) and an :math:`S_\alpha` fit (S1) of the standardised sample: the
    per-layer numbers of the paper's Figs. 2 and A.3. Exact zeros (units dead on the whole
    batch: ReLU, or multiplicative noise on a zero activation) are left out and counted in
    ``n_zero``."""
    v = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x,
                        dtype=torch.float64).reshape(-1)
    n_all = v.numel()
    v = v[v != 0]
    if v.numel() < 10:
        raise ValueError(f"x must have at least 10 nonzero entries, got {v.numel()}")
    z = (v - v.mean()) / v.std()
    skew = float(z.pow(3).mean())
    kurt = float(z.pow(4).mean() - 3)
    f = _stable.fit(z.numpy(), method=fit_method, param="S1")
    out = {"n": int(v.numel()), "n_zero": n_all - int(v.numel()), "skewness": skew, "excess_kurtosis": kurt,
           "alpha": f.alpha, "beta": f.beta}
    out.update(half_tail_fits(z))
    return out


def tail_table(net, x, y, loss="mse", copies: int = 16, draws: int = 3,
               forward_copies: int = 4, fit_method: str = "quantile"):
    r"""Per-layer tail statistics of the forward and the backward noise of ``net`` (the
    comparison of the paper's Figs. 2 and A.3), for ``draws`` independent noise draws.

    Forward: the accumulated noise :math:`\mathcal E_i` (:func:`accumulated_noise`, with
    ``forward_copies`` draws pooled) at every site. Backward: the implicit-effect gradient of
    every weight matrix (:func:`implicit_effect` with ``copies`` = M). Each is pooled over its
    entries and summarised by :func:`tail_statistics`; ``loglik_gain`` is the half-Cauchy
    minus the half-normal mean log-likelihood of the positive part (> 0: Cauchy-like tail).

    Returns
    -------
    pandas.DataFrame with columns ``pass`` ("forward"/"backward"), ``layer`` (0-based site or
    weight-matrix index), ``name``, ``draw`` and the statistics.
    """
    import pandas as pd
    net = _check_net(net)
    draws = check_int("draws", draws, low=1)
    rows = []
    for draw in range(draws):
        ie = implicit_effect(net, x, y, loss, copies=copies)
        fwd = accumulated_noise(net, x, copies=forward_copies)
        for pass_, items in (("forward", fwd.items()), ("backward", ie.grads.items())):
            for layer, (name, v) in enumerate(items):
                st = tail_statistics(v, fit_method)
                st["loglik_gain"] = st["halfcauchy_loglik"] - st["halfnorm_loglik"]
                rows.append({"pass": pass_, "layer": layer, "name": name, "draw": draw, **st})
    return pd.DataFrame(rows)

