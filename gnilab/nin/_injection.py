"""The noise injection node: a scalar noise per example fed through a trainable weight vector
(the NIW) into the pre-activations of chosen layers (paper §2, Eq. N1)."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from .._common.injection import NoiseSwitch, SiteHook
from .._common.checks import check_choice, check_generator, check_int, check_real

#: Laws of the NIN output, each scaled to variance 1 and then multiplied by ``sigma``.
LAWS = ("gaussian", "uniform", "rademacher", "laplace")
#: When the NIN output is re-drawn: every training step, every epoch, or once per example.
MODES = ("step", "epoch", "fixed")


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
        from ..data import ArrayDataset
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
