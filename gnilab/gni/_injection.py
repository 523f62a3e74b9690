"""The Gaussian-noise-injection wrapper (paper Eq. 2.8) and the M-sample objective over stacked
copies of the data (Eq. 4.5)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import nn

from .. import train as _train
from .._common.injection import NoiseSwitch, SiteHook
from .._common.checks import check_bool, check_choice, check_generator, check_int

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
    r"""Per-example losses ``[M, N]`` of M stacked noisy copies: entry ``[m, i]`` is
    :math:`\ell(\tilde h(x_i; \epsilon_m), y_i)` (copy-major rows, grouped by ``view``), the
    terms of the M-sample objective of Eq. 4.5 (Camuto et al. 2021) with the injections of
    Eq. 2.8.

    The noise is drawn only while ``net`` is in ``train()`` mode with ``enabled`` true (in
    ``eval()`` mode every copy is the clean network); gradients flow through the result.

    Parameters
    ----------
    net : GaussianNoiseInjection
        The noise-injected network (its ``sigma``, ``kind``, ``sites`` and ``generator`` set
        the noise).
    x : torch.Tensor
        The batch of inputs, shape ``[N, ...]``.
    y : torch.Tensor
        The targets of ``x``, N rows (class indices ``[N]`` or regression targets
        ``[N, C]``); tiled to the M copies internally.
    loss : str or callable
        ``"mse"``, ``"cross_entropy"``, ``"hinge"`` or a callable
        ``fn(output, target, reduction="none")`` (see :func:`gnilab.train.get_loss`).
    copies : int >= 1
        M, the number of independent noise draws stacked in one forward pass.
    noise : dict str -> torch.Tensor, optional
        Given :math:`\epsilon` per site instead of random draws, each of shape
        ``[M * N, *site_shape]`` in copy-major order (for tests and paired comparisons).

    Returns
    -------
    torch.Tensor
        Shape ``[M, N]``: row ``m`` holds the per-example losses of noise draw ``m``.
    """
    net = _check_net(net)
    loss_fn = _train.get_loss(loss)
    out = net(x, copies=copies, noise=noise)
    per_row = loss_fn(out, _tile(y, copies), reduction="none")
    return per_row.reshape(copies, x.shape[0])


def stacked_losses(net, x, y, loss="mse", copies: int = 1, noise=None) -> torch.Tensor:
    r""":math:`\tilde L(D; w, \epsilon_m)` for m = 1..M, the mean loss of each of M stacked
    noisy copies of the batch ``(x, y)``, in one forward pass (shape ``[M]``); the terms
    averaged in the M-sample objective of Eq. 4.5 (Camuto et al. 2021).

    Parameters
    ----------
    net : GaussianNoiseInjection
        The noise-injected network (noise on only in ``train()`` mode with ``enabled`` true).
    x : torch.Tensor
        The batch of inputs, shape ``[N, ...]``.
    y : torch.Tensor
        The targets of ``x``, N rows.
    loss : str or callable
        ``"mse"``, ``"cross_entropy"``, ``"hinge"`` or a callable (see
        :func:`gnilab.train.get_loss`).
    copies : int >= 1
        M, the number of independent noise draws.
    noise : dict str -> torch.Tensor, optional
        Given :math:`\epsilon` per site (copy-major, ``[M * N, *site_shape]``) instead of
        random draws.

    Returns
    -------
    torch.Tensor
        Shape ``[M]``: entry ``m`` is the mean over the N examples of the loss under draw
        :math:`\epsilon_m` (differentiable).
    """
    return per_copy_losses(net, x, y, loss, copies, noise).mean(1)


def m_sample_loss(net, x, y, loss="mse", copies: int = 1, noise=None) -> torch.Tensor:
    r"""The M-sample objective of Eq. 4.5, :math:`\tilde L_M = \frac1M\sum_m \tilde L(D; w,
    \epsilon_m)`, in one stacked forward pass (M = ``copies``; M = 1 is plain GNI).

    Parameters
    ----------
    net : GaussianNoiseInjection
        The noise-injected network (noise on only in ``train()`` mode with ``enabled`` true).
    x : torch.Tensor
        The batch of inputs, shape ``[N, ...]``.
    y : torch.Tensor
        The targets of ``x``, N rows.
    loss : str or callable
        ``"mse"``, ``"cross_entropy"``, ``"hinge"`` or a callable (see
        :func:`gnilab.train.get_loss`).
    copies : int >= 1
        M, the number of independent noise draws averaged.
    noise : dict str -> torch.Tensor, optional
        Given :math:`\epsilon` per site (copy-major, ``[M * N, *site_shape]``) instead of
        random draws.

    Returns
    -------
    torch.Tensor
        Scalar :math:`\tilde L_M(D; w)`, differentiable in the weights of ``net``.
    """
    return stacked_losses(net, x, y, loss, copies, noise).mean()


def accumulated_noise(net, x, copies: int = 1) -> Dict[str, torch.Tensor]:
    r"""The accumulated noise of Eq. 2.9 at every site, :math:`\mathcal E_i = \tilde h_i -
    h_i` (noisy minus clean activation, the noise injected at the site *and* upstream), as
    tensors ``[M, N, *site_shape]`` for M = ``copies`` independent draws.

    Computed without gradients; the noise is on for the noisy pass whatever the module's mode
    (it is put in ``train()`` mode and restored afterwards).

    Parameters
    ----------
    net : GaussianNoiseInjection
        The noise-injected network.
    x : torch.Tensor
        The batch of inputs, shape ``[N, ...]``.
    copies : int >= 1
        M, the number of independent noise draws.

    Returns
    -------
    dict str -> torch.Tensor
        For every injection site of ``net`` (its ``sites``, in order), the noisy minus the
        clean activation, shape ``[M, N, *site_shape]``.
    """
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
