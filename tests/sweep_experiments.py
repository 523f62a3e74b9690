"""Small experiment functions for tests/test_sweep.py and benchmarks/bench_sweep.py (imported
by name here, shipped to Ray workers by value). Each counts its calls in ``calls_dir`` (one
file per call), so a test can tell which runs were really computed."""
import os
import time
import uuid
from pathlib import Path

import torch


def _count(calls_dir, tag) -> None:
    if calls_dir is not None:
        Path(calls_dir, f"{tag}-{uuid.uuid4().hex}").touch()


def regression(width: int, lr: float, seed: int = 0, steps: int = 30, calls_dir=None,
               fail: bool = False):
    """SGD on a random least-squares problem of ``width`` features; raises when ``fail``."""
    _count(calls_dir, f"regression-{width}-{lr}-{seed}")
    if fail:
        raise RuntimeError(f"this run fails on purpose (width={width})")
    x, w_true = torch.randn(64, width), torch.randn(width)
    y = x @ w_true + 0.1 * torch.randn(64)
    w = torch.zeros(width, requires_grad=True)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, 64, (8,))
        loss = ((x[idx] @ w - y[idx]) ** 2).mean()
        g, = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= lr * g
        losses.append(float(loss.detach()))
    w = w.detach()
    return {"final_loss": float(((x @ w - y) ** 2).mean()), "losses": losses,
            "norm": {"w": float(w.norm()), "true": float(w_true.norm())}}


def dies_once(x: int, marker_dir: str, calls_dir=None):
    """Kills its worker process the first time it runs for ``x == 0`` (a marker file remembers),
    as a worker lost to the OOM killer or a node failure would be."""
    _count(calls_dir, f"dies_once-{x}")
    marker = Path(marker_dir, f"died-{x}")
    if x == 0 and not marker.exists():
        marker.touch()
        os._exit(1)
    return {"x2": x * x}


def dies_always(x: int, calls_dir=None):
    """Kills its worker for ``x == 0`` every time."""
    _count(calls_dir, f"dies_always-{x}")
    if x == 0:
        os._exit(1)
    return {"x2": x * x}


def sleep(seconds: float, i: int = 0):
    """A run of fixed length with a little torch work (for the benchmark)."""
    t0 = time.perf_counter()
    a = torch.randn(64, 64)
    while time.perf_counter() - t0 < seconds:
        a = torch.tanh(a @ a.T / 64)
    return {"sum": float(a.sum())}
