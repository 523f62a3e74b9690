"""The explicit and implicit effects of a noise injection (Eq. 3.2) and the closed-form explicit
regulariser of Camuto et al. (2020)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict

import torch

from .. import train as _train
from .._common.checks import (check_bool, check_choice, check_finite_module, check_int,
                              check_tensor_range)
from ._injection import _check_net, stacked_losses


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
        The noise-injected network; its weights must be finite. Its mode and ``enabled``
        flag are restored afterwards.
    x : torch.Tensor
        The inputs, shape ``[N, ...]`` (the paper uses the whole data set, Remark 4.1).
    y : torch.Tensor
        The targets of ``x``, N rows.
    loss : str or callable
        ``"mse"``, ``"cross_entropy"``, ``"hinge"`` or a callable (see
        :func:`gnilab.train.get_loss`).
    copies : int >= 1
        M, the number of further draws in the Monte Carlo estimate of
        :math:`E_\epsilon[\Delta L]` (the standard error needs M >= 2).
    include_bias : bool
        Also report the gradients of the biases (default: weights only, as
        :meth:`GaussianNoiseInjection.weight_layers`).

    Returns
    -------
    ImplicitEffect
        The clean loss, :math:`\Delta L(\epsilon)`, the explicit estimate and its standard
        error (NaN for M = 1), the implicit effect :math:`E_L` and, per layer, the gradients
        :math:`\nabla E_L` and :math:`\nabla \tilde L_M` (detached).
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
        The noise-injected network: its ``sigma``, ``kind`` (multiplicative scales the
        Jacobian columns by the activations) and ``sites`` define :math:`R`; evaluated with the
        noise off.
    x : torch.Tensor
        The batch of inputs, shape ``[N, ...]``.
    loss : {"mse", "cross_entropy"}
        gnilab's squared error (summed over outputs, no ½: :math:`H_L = 2I`) or cross-entropy on
        logits (:math:`H_L = \mathrm{diag}(p) - pp^\top`).
    create_graph : bool
        Keep the graph so that :math:`R` can be differentiated (training on :math:`L + R`).

    Returns
    -------
    torch.Tensor
        Scalar :math:`R` (detached when ``create_graph`` is false).
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
