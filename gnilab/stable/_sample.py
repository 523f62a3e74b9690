"""Stable variates by the Chambers–Mallows–Stuck method (Weron's correction), differentiable in
the parameters, with a fast path for scalar parameters on the CPU."""
from __future__ import annotations

import math

import numpy as np
import torch

PI = math.pi


def _cms_standard_s1(alpha, beta, V, W):
    r"""Standard S1 variates from :math:`V\sim U(-\pi/2,\pi/2)`, :math:`W\sim\mathrm{Exp}(1)`
    (Chambers, Mallows & Stuck 1976; Weron 1996, Eq. 3.1–3.2):

    .. math::

        X = S_{\alpha,\beta}\frac{\sin\alpha(V+B)}{(\cos V)^{1/\alpha}}
            \Big(\frac{\cos(V-\alpha(V+B))}{W}\Big)^{(1-\alpha)/\alpha},\quad
        B=\frac{\arctan(\beta\tan\frac{\pi\alpha}2)}\alpha,\
        S=(1+\beta^2\tan^2\tfrac{\pi\alpha}2)^{1/(2\alpha)},

        X = \frac2\pi\Big[(\tfrac\pi2+\beta V)\tan V-\beta\log
            \frac{\frac\pi2 W\cos V}{\frac\pi2+\beta V}\Big]\quad(\alpha=1).

    Every factor is a smooth function of (alpha, beta) for fixed (V, W), so gradients flow.
    """
    one = alpha == 1
    any1, all1 = bool(one.any()), bool(one.all())
    out = None
    if not all1:
        a = torch.where(one, torch.full_like(alpha, 0.5), alpha) if any1 else alpha
        t = beta * torch.tan(PI * a / 2)
        aB = torch.atan(t)                         # alpha * B
        aVB = a * V + aB
        logS = torch.log1p(t * t) / (2 * a)
        logmag = (logS - torch.log(torch.cos(V)) / a
                  + (1 - a) / a * (torch.log(torch.cos(V - aVB)) - torch.log(W)))
        out = torch.sin(aVB) * torch.exp(logmag)
    if any1:
        bV = PI / 2 + beta * V
        x1 = 2 / PI * (bV * torch.tan(V) - beta * torch.log(PI / 2 * W * torch.cos(V) / bV))
        out = x1 if all1 else torch.where(one, x1, out)
    return out


def _draw_uniforms(shape, dtype, device, generator):
    """Two arrays of U[0, 1) variates. On the CPU they come from NumPy's PCG64 (about 3x
    faster than torch's Mersenne twister for float64) seeded by one draw from the torch
    generator (``generator`` or torch's global one), so ``torch.manual_seed`` /
    ``generator=`` make runs bit-for-bit repeatable; elsewhere from ``torch.rand``."""
    n = int(np.prod(shape)) if len(shape) else 1
    if torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64):
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        rng = np.random.Generator(np.random.PCG64(seed))
        npdt = np.float64 if dtype == torch.float64 else np.float32
        u1 = torch.from_numpy(rng.random(n, dtype=npdt)).reshape(shape)
        u2 = torch.from_numpy(rng.random(n, dtype=npdt)).reshape(shape)
        return u1, u2
    u1 = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    u2 = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    return u1, u2


def _draw_vw(shape, dtype, device, generator):
    """V ~ U(-pi/2, pi/2), W ~ Exp(1) (W = -log(1 - U))."""
    u1, u2 = _draw_uniforms(shape, dtype, device, generator)
    # rand's grid includes 0: keep cos V > 0 (fl32(pi/2) > pi/2) and W > 0
    hv = float(torch.nextafter(torch.tensor(PI / 2, dtype=dtype), torch.tensor(0.0, dtype=dtype)))
    V = ((u1 - 0.5) * PI).clamp(-hv, hv)
    W = (-torch.log1p(-u2)).clamp(min=torch.finfo(dtype).tiny)
    return V, W


def _fast_scalar_sample(a: float, b: float, s: float, m: float, shape, param, dtype, generator,
                        chunk: int = 1 << 20):
    """CMS for scalar parameters without autograd on the CPU: the same formulas as
    :func:`_cms_standard_s1`, evaluated in place on chunks. Chunks of 2^20 rather than
    cache-sized ones: each in-place op is an OpenMP parallel region, and with a busy second
    core 64k-element chunks ran 50x slower (5.5 s instead of 0.1 s for 2e6 draws)."""
    # float32 output is computed in float64 (no cos V <= 0 / W = 0 at the ends of the float32
    # uniform grid) and rounded once at the end
    u1, u2 = _draw_uniforms(shape, torch.float64, "cpu", generator)
    u1, u2 = u1.reshape(-1), u2.reshape(-1)
    n = u1.shape[0]
    out = torch.empty(n, dtype=torch.float64)
    if a != 1:
        t = b * math.tan(PI * a / 2)
        aB = math.atan(t)
        logS = math.log1p(t * t) / (2 * a)
        c = (1 - a) / a
        for i in range(0, n, chunk):
            V = u1[i:i + chunk].sub(0.5).mul_(PI)
            W = torch.log1p(-u2[i:i + chunk]).neg_().clamp_(min=1e-300)
            aVB = V.mul(a).add_(aB)
            cV = torch.cos(V)
            r = torch.cos(V.sub_(aVB)).div_(W).log_().mul_(c)
            r.sub_(cV.log_().div_(a)).add_(logS).exp_()
            torch.mul(torch.sin(aVB, out=aVB), r, out=out[i:i + chunk])
        shift = m if param == 1 else m - s * t       # S0: X0 = X1 - beta tan(pi a/2)
    else:
        for i in range(0, n, chunk):
            V = u1[i:i + chunk].sub(0.5).mul_(PI)
            W = torch.log1p(-u2[i:i + chunk]).neg_()
            bV = V.mul(b).add_(PI / 2)
            lg = W.mul_(PI / 2).mul_(torch.cos(V)).div_(bV).log_().mul_(-b)
            torch.add(lg, torch.tan(V).mul_(bV), out=out[i:i + chunk])
        out.mul_(2 / PI)
        shift = m + (2 / PI * b * s * math.log(s) if param == 1 else 0.0)
    return out.mul_(s).add_(shift).reshape(shape).to(dtype)


def _rsample(alpha, beta, scale, loc, shape, param, generator):
    """Differentiable CMS draws for (broadcast) tensor parameters of the given shape."""
    V, W = _draw_vw(shape, alpha.dtype, alpha.device, generator)
    x1 = _cms_standard_s1(alpha, beta, V, W)
    one = alpha == 1
    if param == 1:
        # sigma X1 + mu1, plus (2/pi) beta sigma log sigma at alpha = 1
        if bool(one.any()):
            return scale * x1 + loc + torch.where(one, 2 / PI * beta * scale * torch.log(scale),
                                                  torch.zeros_like(scale))
        return scale * x1 + loc
    # S0: X0 = X1 - beta tan(pi alpha/2) (standard), then location-scale
    a_safe = torch.where(one, torch.full_like(alpha, 0.5), alpha)
    x0 = x1 - torch.where(one, torch.zeros_like(alpha), beta * torch.tan(PI * a_safe / 2))
    return scale * x0 + loc


def _make_generator(generator, device):
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return torch.Generator(device=device).manual_seed(int(generator))
    raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
