"""What the two noise-injection wrappers share (:class:`gnilab.gni.GaussianNoiseInjection`,
:class:`gnilab.nin.NoiseInjection`): the noise scale with its switch, and the forward hook."""
from __future__ import annotations

import contextlib

from .checks import check_real


class NoiseSwitch:
    """Mixin for an ``nn.Module`` that injects noise of standard deviation ``sigma`` while it is
    in training mode and ``enabled``. The host sets ``self.sigma`` and ``self.enabled``."""

    @property
    def sigma(self) -> float:
        """Standard deviation of the injected noise (finite, ≥ 0)."""
        return self._sigma

    @sigma.setter
    def sigma(self, value):
        self._sigma = check_real("sigma", value, low=0)

    @property
    def variance(self) -> float:
        """:math:`\\sigma^2`."""
        return self._sigma ** 2

    @contextlib.contextmanager
    def noise_off(self):
        """Context manager: no noise inside ``with net.noise_off():`` (even in training mode)."""
        prev, self.enabled = self.enabled, False
        try:
            yield self
        finally:
            self.enabled = prev

    @property
    def noisy(self) -> bool:
        """Whether a forward pass injects noise now."""
        return self.training and self.enabled and self._sigma > 0


class SiteHook:
    """The forward hook of one injection site: ``owner._inject(site, output)``. An object, not
    a closure, so that ``copy.deepcopy`` of the wrapper rebinds it to the copy (a closure keeps
    injecting through, and reading the switches of, the original)."""

    def __init__(self, owner, site: str):
        self.owner, self.site = owner, site

    def __call__(self, module, inputs, output):
        return self.owner._inject(self.site, output)
