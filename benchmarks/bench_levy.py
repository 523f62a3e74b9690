"""Benchmark gnilab.levy.simulate against two numpy peers in one process.

Run:  .venv/bin/python benchmarks/bench_levy.py [--quick]

Same potential (DoubleWell(-1, 2)), alpha = 1.5, eps = 0.2, dt = 0.01, paths start at m1,
exit times from (-inf, 0) recorded, all paths run all steps. Peers:
(a) per-path loop: each path simulated alone, one scipy.stats.levy_stable.rvs draw per step
    (timed on a few paths, scaled to path-steps/s);
(b) per-step vectorised numpy: all paths per step, Chambers–Mallows–Stuck in numpy.
Times are medians of repeats; the last line gives ratios (gnilab rate / peer rate).
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_time  # noqa: E402
from gnilab import levy as L  # noqa: E402

A, EPS, DT = 1.5, 0.2, 0.01
POT = L.DoubleWell(-1.0, 2.0)
K1 = POT._coefs["cubic"]   # f' = kappa w (w - m1)(w - m2): gamma = 0 for default depths


def grad_np(w):
    return np.polyval(K1, w)


def per_path_loop(n_paths, steps, seed=0):
    rng = np.random.default_rng(seed)
    scale = EPS * DT ** (1 / A)
    out = np.full(n_paths, np.inf)
    for p in range(n_paths):
        w = -1.0
        for k in range(steps):
            w = w - DT * float(grad_np(w)) + scale * float(
                stats.levy_stable.rvs(A, 0.0, random_state=rng))
            if w >= 0 and out[p] == np.inf:
                out[p] = (k + 1) * DT
    return out


def cms_np(rng, n):
    V = (rng.random(n) - 0.5) * np.pi
    W = -np.log1p(-rng.random(n))
    return (np.sin(A * V) / np.cos(V) ** (1 / A)
            * (np.cos(V - A * V) / W) ** ((1 - A) / A))


def per_step_numpy(n_paths, steps, seed=0):
    rng = np.random.default_rng(seed)
    scale = EPS * DT ** (1 / A)
    w = np.full(n_paths, -1.0)
    out = np.full(n_paths, np.inf)
    for k in range(steps):
        w = w - DT * grad_np(w) + scale * cms_np(rng, n_paths)
        new = (w >= 0) & np.isinf(out)
        out[new] = (k + 1) * DT
    return out


def gnilab_run(n_paths, steps, device="cpu", record="both", dtype=torch.float64):
    g = torch.Generator(device=device).manual_seed(0)
    r = L.simulate(POT, A, EPS, DT, steps, n_paths, -1.0, record=record, generator=g,
                   device=device, dtype=dtype, progress=False)
    if device != "cpu":
        torch.cuda.synchronize()
    return r


def timeit(fn, repeats):
    return median_time(fn, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    steps = 200 if args.quick else 1000
    n = 10_000 if args.quick else 100_000
    reps = 3
    rows = []
    n_loop, steps_loop = (3, 100) if args.quick else (10, 200)
    t = timeit(lambda: per_path_loop(n_loop, steps_loop), 1)
    rows.append(("numpy per-path loop (scipy rvs)", f"{n_loop} x {steps_loop}",
                 n_loop * steps_loop / t))
    t = timeit(lambda: per_step_numpy(n, steps), reps)
    rows.append(("numpy per-step vectorised (CMS)", f"{n} x {steps}", n * steps / t))
    gnilab_run(1000, 10)
    t = timeit(lambda: gnilab_run(n, steps), reps)
    thr = torch.get_num_threads()
    rows.append((f"gnilab.simulate CPU ({thr} thr)", f"{n} x {steps}", n * steps / t))
    # the notebook's regime: few paths, many steps (per-step overhead dominates)
    ns, ss = 2000, (500 if args.quick else 3000)
    t = timeit(lambda: per_step_numpy(ns, ss), reps)
    rows.append(("numpy per-step vectorised (CMS)", f"{ns} x {ss}", ns * ss / t))
    t = timeit(lambda: gnilab_run(ns, ss), reps)
    rows.append((f"gnilab.simulate CPU ({thr} thr)", f"{ns} x {ss}", ns * ss / t))
    if torch.cuda.is_available():
        for nc in (1_000_000, 10_000_000):
            gnilab_run(nc, 10, "cuda", dtype=torch.float32)
            t = timeit(lambda: gnilab_run(nc, steps, "cuda", dtype=torch.float32), reps)
            rows.append(("gnilab.simulate CUDA float32", f"{nc} x {steps}", nc * steps / t))
    print(f"{'method':40s} {'paths x steps':>16s} {'path-steps/s':>14s}")
    for name, size, rate in rows:
        print(f"{name:40s} {size:>16s} {rate:14.3e}")
    # memory: exit times for 10^6 paths (CPU), no trajectories stored
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r = gnilab_run(1_000_000, 50 if args.quick else 200, record="exit")
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    traj = 1_000_000 * (50 if args.quick else 200) * 8 / 2 ** 20
    print(f"memory: peak RSS {rss1:.0f} MiB after exit-time run with 10^6 paths "
          f"(before: {rss0:.0f} MiB); storing the trajectories would take {traj:.0f} MiB; "
          f"exited {int(r.exited.sum())}")
    base = rows[2][2]
    ratio = (f"ratios (gnilab CPU / peer): per-path loop {base / rows[0][2]:.0f}x, "
             f"per-step numpy {base / rows[1][2]:.2f}x at {n} paths, "
             f"{rows[4][2] / rows[3][2]:.2f}x at {ns} paths")
    if len(rows) > 5:
        best = max(r[2] for r in rows[5:])
        ratio += (f"; gnilab CUDA float32 / CPU {best / base:.0f}x, "
                  f"{best:.2e} path-steps/s (goal 1e10)")
    print(ratio)


if __name__ == "__main__":
    main()
