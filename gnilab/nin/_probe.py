"""What the NIW probes: the local gradient and curvature at the injected layer (Eq. N3), and the
NIW recorded during training."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional

import torch

from .. import train as _train
from .._common.checks import check_finite_data, check_finite_module, check_int, check_real
from ._injection import NoiseInjection, _check_generator, _check_layer, _check_net


@dataclass(frozen=True)
class LocalCurvature:
    r"""The NIN layer's local quantities at the current weights (no noise).

    ``niw_norm`` :math:`|\theta|`; ``grad`` :math:`\hat\theta\cdot\langle\nabla_z\ell\rangle`
    and ``grad_norm`` :math:`|\langle\nabla_z\ell\rangle|` (the local gradient); ``curvature``
    :math:`\hat\theta^\top\bar H_z\hat\theta` (the local Hessian along the NIW; NaN when
    θ = 0); ``rate`` :math:`\eta\sigma^2` times it when ``lr`` and ``sigma`` were given.
    These are the quantities of Eq. (N3) (paper §2, App. C): the NIW norm decays at about
    ``rate`` per step.

    Attributes
    ----------
    layer : str
        Name of the NIN layer measured (one of ``net.layers``).
    niw_norm : float
        :math:`|\theta_\ell|`, the Euclidean norm of the layer's NIW.
    grad : float
        :math:`\hat\theta\cdot\langle\nabla_z\ell\rangle`, the local gradient along the unit NIW
        :math:`\hat\theta = \theta/|\theta|` (NaN when θ = 0).
    grad_norm : float
        :math:`|\langle\nabla_z\ell\rangle|`, the norm of the local gradient (the batch mean of
        the per-example gradients with respect to the layer's pre-activations).
    curvature : float
        :math:`\hat\theta^\top\bar H_z\hat\theta`, the local Hessian of Eq. (N3) along the NIW
        (NaN when θ = 0).
    rate : float
        :math:`\eta\sigma^2\hat\theta^\top\bar H_z\hat\theta`, the predicted NIW decay rate per
        step of Eq. (N3), with ``sigma`` the net's NIN standard deviation; NaN when no ``lr``
        was given.
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
    time). Paper §2 and App. C: by Eq. (N3) the NIW decays at the rate
    :math:`\eta\sigma^2\hat\theta^\top\bar H_z\hat\theta`.

    Parameters
    ----------
    net : NoiseInjection
        The model with its NIN; its weights are not changed and its train/eval mode is
        restored afterwards.
    data : dataset with ``x`` and ``y``
        The examples the means :math:`\langle\cdot\rangle` run over (e.g. a
        :class:`gnilab.data.ArrayDataset`); must be finite.
    loss : str or callable
        The per-example loss :math:`\ell`, a name or function accepted by
        :func:`gnilab.train.get_loss` (default ``"cross_entropy"``).
    layer : str, optional
        The NIN layer to measure (one of ``net.layers``; default: the first).
    lr : float >= 0, optional
        Step η; when given, ``rate`` is :math:`\eta\sigma^2` times the curvature, with σ the
        net's NIN standard deviation (else ``rate`` is NaN).
    chunk_size : int >= 1, optional
        Number of examples per forward/backward pass (default: all at once); the result does
        not depend on it, up to rounding.

    Returns
    -------
    LocalCurvature
        ``layer``, ``niw_norm``, ``grad``, ``grad_norm``, ``curvature`` and ``rate``.
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
    :math:`\eta\sigma^2` is the fastest NIW decay rate of Eq. N3 (paper §2, App. C).

    Parameters
    ----------
    net : NoiseInjection
        The model with its NIN; its weights are not changed and its train/eval mode is
        restored afterwards.
    data : dataset with ``x`` and ``y``
        The examples the mean :math:`\langle\cdot\rangle` runs over; must be finite.
    loss : str or callable
        The per-example loss :math:`\ell`, a name or function accepted by
        :func:`gnilab.train.get_loss` (default ``"cross_entropy"``).
    layer : str, optional
        The NIN layer (one of ``net.layers``; default: the first).
    chunk_size : int >= 1, optional
        Number of examples per pass (default: all at once).

    Returns
    -------
    torch.Tensor
        :math:`\bar H_z`, shape ``[out, out]``, symmetrised as :math:`(H + H^\top)/2`, in the
        NIW's dtype and on its device.
    """
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
    ``lr``). Fit the decay timescales of the result with :func:`decay_timescales`. This
    records the NIW dynamics of Eq. (N3) during training (paper §2, §4).

    Parameters
    ----------
    data : dataset with ``x`` and ``y``
        The examples on which the clean loss and the local gradient and curvature are measured.
    loss : str or callable
        The loss, as accepted by :func:`gnilab.train.get_loss` (default ``"cross_entropy"``).
    every : int >= 1
        Measure every this many training steps.
    layer : str, optional
        The NIN layer to track (default: the net's first).
    test_data : dataset, optional
        Where ``test_loss`` is measured (NaN without it).
    lr : float >= 0, optional
        Step η used for ``predicted_rate`` (NaN without it).
    chunk_size : int >= 1, optional
        Examples per pass of :func:`local_curvature`.

    Returns
    -------
    gnilab.train.Callback
        A callback for :func:`gnilab.train.train`, calling the measurement every ``every``
        steps with the step and the net (a :class:`NoiseInjection`).
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
    other keyword arguments go to ``train``. The experiments of paper §4: the NIW decays as
    Eq. (N3) predicts.

    Parameters
    ----------
    net : NoiseInjection
        The model with its NIN; trained in place.
    data : dataset with ``x`` and ``y``
        The training set.
    steps : int >= 0
        Number of SGD steps.
    lr : float
        Step η of plain SGD (also used for the probes' ``predicted_rate``).
    loss : str or callable
        The loss, as accepted by :func:`gnilab.train.get_loss` (default ``"cross_entropy"``).
    batch_size : int, optional
        Minibatch size (``None``: full batch, as in :func:`gnilab.train.train`).
    test_data : dataset, optional
        Held-out set for the history and the probes' ``test_loss``.
    probe_every : int >= 1, optional
        Probe every this many steps (default: ``eval_every`` from ``train_kwargs`` if given,
        else ``max(1, steps // 50)``).
    probe_data : dataset, optional
        Where the probes measure (default: the first 2048 examples of ``data``).
    callbacks : sequence of gnilab.train.Callback
        Further callbacks, run before the probes.
    generator : torch.Generator or int, optional
        Source of the minibatches (the NIN noise follows ``net.generator``).
    progress : bool
        Show a progress bar.
    **train_kwargs
        Passed on to :func:`gnilab.train.train`.

    Returns
    -------
    gnilab.train.TrainResult
        The training result; its ``records`` has one row per NIN layer and probe step (the
        columns of :func:`niw_probe`).
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
