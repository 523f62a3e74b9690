"""Benchmark the asymmetric stable dynamics of Camuto et al. (2021, Eq. 4.4) in one process.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gni_sde.py [--quick]

Task: f(w) = w^4/4 - w^2/2, alpha = 1.5, theta = 0.5 (S1 beta), eps = 1, eta = 1e-3,
1e5 paths from w0 = 1, final states kept. Implementations:

* ``gnilab.gni.simulate_gni`` for Eq. 4.4 (runs through gnilab.levy.simulate: block noise,
  divergence detection, stiff paths substepped);
* the same with Eq. 4.8's drift b_{h,K} (h = 0.03, K = 300, tabulated once, clamped Euler);
* a straightforward numpy loop: every step draws the noise by Chambers-Mallows-Stuck in numpy
  (S1, beta != 0) and applies w -= eta f'(w) plus the noise;
* the same loop with ``scipy.stats.levy_stable.rvs`` as the per-step draw (fewer steps: it is
  slow; its time is scaled to the task's steps, noted in the table).

``bench_sde(quick)`` returns rows ``(task, impl, seconds, note)``; ``__main__`` prints them and
a last line of ratios (numpy time / gnilab time for the same task).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time  # noqa: E402
from gnilab import gni as G  # noqa: E402
from gnilab.levy import Quartic  # noqa: E402

ALPHA, THETA, EPS, ETA = 1.5, 0.5, 1.0, 1e-3
POT = Quartic()


def _cms_s1(rng, alpha, beta, n):
    """Standard S1 variates (Chambers-Mallows-Stuck, Weron's form), alpha != 1."""
    V = (rng.random(n) - 0.5) * np.pi
    W = -np.log1p(-rng.random(n))
    t = beta * np.tan(np.pi * alpha / 2)
    aB = np.arctan(t)
    S = (1 + t * t) ** (1 / (2 * alpha))
    return (S * np.sin(alpha * V + aB) / np.cos(V) ** (1 / alpha)
            * (np.cos(V - (alpha * V + aB)) / W) ** ((1 - alpha) / alpha))


def numpy_loop(n_paths, steps, seed=0, draw="cms"):
    rng = np.random.default_rng(seed)
    scale = EPS * ETA ** (1 / ALPHA)
    w = np.full(n_paths, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):   # no divergence handling: NaN paths
        for _ in range(steps):
            if draw == "cms":
                z = _cms_s1(rng, ALPHA, THETA, n_paths)
            else:
                z = stats.levy_stable.rvs(ALPHA, THETA, size=n_paths, random_state=rng)
            w = w - ETA * (w ** 3 - w) + scale * z
    return w


def gnilab_eq44(n_paths, steps, seed=0):
    return G.simulate_gni(POT, ALPHA, THETA, EPS, ETA, steps, n_paths, 1.0,
                          snapshots=[steps], generator=seed)


def gnilab_corrected(n_paths, steps, seed=0):
    return G.simulate_gni(POT, ALPHA, THETA, EPS, ETA, steps, n_paths, 1.0, h=0.03, K=300,
                          center_weight=2.0, snapshots=[steps], generator=seed)


def _time(fn, repeats):
    return median_time(fn, repeats)


def bench_sde(quick: bool):
    """Rows (task, impl, seconds, note) for 1e5 paths (200 steps quick, 1000 full)."""
    n = 100_000
    steps = 200 if quick else 1000
    reps = 1 if quick else 3
    task = f"Eq.4.4 quartic a={ALPHA} th={THETA} {n} paths x {steps} steps"
    rows = []
    gnilab_eq44(1000, 10)                           # warm-up
    out = {}
    t = _time(lambda: out.update(r=gnilab_eq44(n, steps)), reps)
    rows.append((task, "gnilab simulate_gni (Eq. 4.4)", t,
                 f"levy.simulate inside; {out['r'].n_exploded} paths exploded"))
    t = _time(lambda: out.update(w=numpy_loop(n, steps)), reps)
    rows.append((task, "numpy per-step loop (CMS)", t,
                 f"one numpy CMS draw per step; {int((~np.isfinite(out['w'])).sum())} paths "
                 f"non-finite (plain Euler overshoots after big jumps)"))
    s_steps = 5 if quick else 20
    t = _time(lambda: numpy_loop(n, s_steps, draw="scipy"), 1)
    rows.append((task, "numpy per-step loop (scipy levy_stable.rvs)", t * steps / s_steps,
                 f"timed on {s_steps} steps, scaled x{steps / s_steps:g}"))
    t = _time(lambda: out.update(r=gnilab_corrected(n, steps)), reps)
    rows.append((task.replace("Eq.4.4", "Eq.4.8 b_{h,K}"),
                 "gnilab simulate_gni (h=0.03, K=300)", t,
                 f"table (built in the call) + clamped Euler; {out['r'].n_exploded} exploded"))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = bench_sde(args.quick)
    print(f"{'task':62s} {'implementation':44s} {'seconds':>9s}  note")
    for task, impl, sec, note in rows:
        print(f"{task:62s} {impl:44s} {sec:9.3f}  {note}")
    g = rows[0][2]
    print(f"ratios (time / gnilab Eq. 4.4): numpy CMS loop {rows[1][2] / g:.2f}x, "
          f"scipy rvs loop {rows[2][2] / g:.1f}x, gnilab corrected drift "
          f"{rows[3][2] / g:.2f}x")
    if not all(math.isfinite(r[2]) for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
