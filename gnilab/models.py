"""Models used across the book: fully connected networks and the small CNN of the
anisotropic-noise experiments.

Conventions follow the papers:

* :class:`MLP` counts ``depth`` as the number of *weight layers* (Şimşekli et al. 2019, §3:
  depth 2 = one hidden layer), so ``MLP(784, 100, 3, 10, bias=False)`` is their "width 100,
  depth 3" fully connected network with 784·100 + 100·100 + 100·10 = 89 400 weights.
* :class:`ConvSmall` is the LeNet-style network of Zhu et al. (2019, FashionMNIST experiment)
  and Wu et al. (2020): 11 330 parameters, VALID convolutions, weights drawn from N(0, 0.02²).
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import nn

from ._common.checks import check_choice, check_int, check_real

__all__ = ["MLP", "ConvSmall", "FixedOutputNet", "count_parameters", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "linear": nn.Identity,
}

Init = Union[None, str, float, Callable[[nn.Module], None]]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The model whose parameters are counted.
    trainable_only : bool, optional
        Count only parameters with ``requires_grad`` (default ``True``); ``False`` counts all.

    Returns
    -------
    int
        The total number of scalar entries of the counted parameter tensors.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _apply_init(model: nn.Module, init: Init) -> None:
    """``None``/``"default"``: PyTorch's default initialisation. A float ``s`` or ``"normal"``
    (s = 0.02): weights and biases ~ N(0, s²). ``"xavier"``/``"kaiming"``: the named scheme on
    weights, zero biases. A callable is applied to every ``nn.Linear``/``nn.Conv2d``."""
    if init is None or init == "default":
        return
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if callable(init):
        for m in layers:
            init(m)
        return
    if init == "normal":
        init = 0.02
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        std = check_real("init", init, low=0, low_open=True)   # a standard deviation
        with torch.no_grad():
            for m in layers:
                for p in m.parameters():
                    p.normal_(0.0, std)
        return
    schemes = {"xavier": nn.init.xavier_normal_,
               "kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu")}
    if init not in schemes:
        raise ValueError(f"init must be None, 'default', 'normal', 'xavier', 'kaiming', a positive "
                         f"standard deviation or a callable, got {init!r}")
    for m in layers:
        schemes[init](m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class MLP(nn.Sequential):
    """Fully connected network ``in → width → … → width → out`` with ``depth`` weight layers.

    Parameters
    ----------
    in_features, out_features : int
        Input and output sizes (inputs of any shape ``[N, ...]`` are flattened).
    width : int
        Units per hidden layer.
    depth : int
        Number of weight layers, ≥ 1 (depth 1 is a linear model; Şimşekli et al.'s convention).
    activation : str
        One of :data:`ACTIVATIONS` (``relu`` by default).
    bias : bool
        Whether the linear layers carry biases (Şimşekli et al. use none).
    init : None, str, float or callable
        ``None`` keeps PyTorch's default; see :func:`_apply_init` for the others.
    """

    def __init__(self, in_features: int, width: int, depth: int, out_features: int, *,
                 activation: str = "relu", bias: bool = True, init: Init = None,
                 device=None, dtype=None):
        in_features = check_int("in_features", in_features, low=1)
        width = check_int("width", width, low=1)
        depth = check_int("depth", depth, low=1)
        out_features = check_int("out_features", out_features, low=1)
        check_choice("activation", activation, ACTIVATIONS)
        sizes = [in_features] + [width] * (depth - 1) + [out_features]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, bias=bias, device=device, dtype=dtype))
            if i < depth - 1:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.width, self.depth = width, depth
        _apply_init(self, init)

    def __getitem__(self, idx):
        """A layer, or for a slice an ``nn.Sequential`` of those layers (shared, not copied):
        ``nn.Sequential`` would rebuild a slice through ``MLP.__init__``, whose arguments are
        sizes, not layers."""
        if isinstance(idx, slice):
            return nn.Sequential(*list(self._modules.values())[idx])
        return super().__getitem__(idx)


class ConvSmall(nn.Module):
    """The 11 330-parameter CNN of Zhu et al. (2019) and Wu et al. (2020) for 28×28 inputs.

    ``conv 5×5 (1→10) → maxpool 2 → ReLU → conv 5×5 (10→10) → maxpool 2 → ReLU →
    FC 160→50 → ReLU → FC 50→10`` with VALID padding:
    250+10 + 2500+10 + 8000+50 + 500+10 = 11 330 parameters. ``init=0.02`` (default) draws all
    weights and biases from N(0, 0.02²) as the papers' code does; ``init=None`` keeps PyTorch's.

    Parameters
    ----------
    in_channels : int, optional
        Input channels, ≥ 1 (default 1). Inputs are ``[N, in_channels, 28, 28]``; a flattened
        batch ``[N, in_channels·784]`` is reshaped.
    num_classes : int, optional
        Number of outputs (logits), ≥ 1 (default 10).
    init : None, str, float or callable, optional
        Initialisation; a float is the standard deviation of N(0, s²) for all weights and
        biases (default 0.02), ``None`` keeps PyTorch's default; see :func:`_apply_init`.
    device : torch.device or str, optional
        Device of the parameters.
    dtype : torch.dtype, optional
        Dtype of the parameters.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, init: Init = 0.02,
                 device=None, dtype=None):
        super().__init__()
        in_channels = check_int("in_channels", in_channels, low=1)
        num_classes = check_int("num_classes", num_classes, low=1)
        kw = dict(device=device, dtype=dtype)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 10, 5, **kw), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 10, 5, **kw), nn.MaxPool2d(2), nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(160, 50, **kw), nn.ReLU(), nn.Linear(50, num_classes, **kw),
        )
        _apply_init(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # flattened images
            x = x.view(x.shape[0], -1, 28, 28)
        return self.classifier(self.features(x))


class FixedOutputNet(nn.Module):
    r"""One hidden ReLU layer with fixed output weights: the network of Zhu et al.'s (2019)
    one-hidden-layer experiment (their Fig. 4),

    .. math::  f(x) = \operatorname{clip}\Big(\sum_{j=1}^m a_j\,\mathrm{ReLU}(w_j^\top x + b_j),
               \ \delta,\ 1-\delta\Big),\qquad a_j = +1\ (j \le m/2),\ -1\ (j > m/2),

    with only the input weights :math:`w_j` and biases :math:`b_j` trained (``D = m(d + 1)``
    parameters; the output weights are a buffer). Output shape ``[N, 1]``.

    Parameters
    ----------
    in_features : int, optional
        Input dimension :math:`d`, ≥ 1 (default 2); inputs have shape ``[N, d]``.
    hidden : int, optional
        Number of hidden units :math:`m`, ≥ 2 (default 100); the first ``m // 2`` output
        weights are :math:`+1`, the others :math:`-1`.
    delta : float, optional
        Clipping level :math:`\delta`, ``0 <= delta < 0.5`` (default ``1e-3``): outputs lie in
        :math:`[\delta, 1-\delta]`.
    device : torch.device or str, optional
        Device of the parameters and the output-weight buffer.
    dtype : torch.dtype, optional
        Dtype of the hidden layer (and of the buffer).
    """

    def __init__(self, in_features: int = 2, hidden: int = 100, delta: float = 1e-3, *,
                 device=None, dtype=None):
        super().__init__()
        in_features = check_int("in_features", in_features, low=1)
        hidden = check_int("hidden", hidden, low=2)
        delta = check_real("delta", delta, low=0, high=0.5, high_open=True)
        self.hidden = nn.Linear(in_features, hidden, device=device, dtype=dtype)
        a = torch.cat([torch.ones(hidden // 2), -torch.ones(hidden - hidden // 2)])
        self.register_buffer("out_weights", a.to(device=device, dtype=self.hidden.weight.dtype))
        self.delta = delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.hidden(x)) @ self.out_weights
        return out.clamp(self.delta, 1 - self.delta)[:, None]

