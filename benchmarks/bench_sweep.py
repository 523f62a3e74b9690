"""Benchmark: gnilab.sweep on 2 local Ray workers against a Python loop, and the serial engine's
overhead against a bare loop.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--runs 16] [--seconds 0.5]``.

Each run is ``tests/sweep_experiments.sleep``: ``--seconds`` of small matrix products on one
thread. Timed in the same process:

* a bare Python loop calling the function (the peer);
* ``engine="serial"`` into a fresh results directory (hashing, seeding, provenance, an atomic
  JSON write per run): its overhead over the loop, goal <= 5 %;
* Ray's start-up (``ray.init`` of a local 2-CPU cluster), reported on its own;
* ``engine="ray"`` with 2 workers, first sweep (workers start and import torch) and a second
  sweep of new configs on the warm workers: the speed-up over the loop (ideal 2 on 2 cores).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnilab import sweep  # noqa: E402
from tests import sweep_experiments as ex  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    grid = sweep.grid(seconds=args.seconds, i=range(args.runs))

    t = time.perf_counter()
    for config in grid:
        ex.sleep(**config)
    t_loop = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        sweep.run(ex.sleep, grid, Path(tmp, "serial"), engine="serial", progress=False)
        t_serial = time.perf_counter() - t

        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        t_init = time.perf_counter() - t
        t = time.perf_counter()
        sweep.run(ex.sleep, grid, Path(tmp, "ray"), engine="ray", progress=False)
        t_ray_cold = time.perf_counter() - t
        warm = sweep.grid(seconds=args.seconds, i=range(args.runs, 2 * args.runs))
        t = time.perf_counter()
        sweep.run(ex.sleep, warm, Path(tmp, "ray"), engine="ray", progress=False)
        t_ray_warm = time.perf_counter() - t
        ray.shutdown()

    print(f"{args.runs} runs of {args.seconds:g} s each, 1 thread per run")
    print(f"{'':34s}{'seconds':>9s}{'ratio to loop':>15s}")
    for name, value in [("Python loop", t_loop), ("engine='serial'", t_serial),
                        ("engine='ray', 2 workers, cold", t_ray_cold),
                        ("engine='ray', 2 workers, warm", t_ray_warm)]:
        print(f"{name:34s}{value:9.2f}{value / t_loop:15.3f}")
    print(f"{'ray.init (local, 2 CPUs)':34s}{t_init:9.2f}")
    print(f"serial overhead: {100 * (t_serial / t_loop - 1):+.1f} % (goal <= 5 %); "
          f"Ray speed-up over the loop: {t_loop / t_ray_cold:.2f} cold, {t_loop / t_ray_warm:.2f} "
          "warm (2 workers)")


if __name__ == "__main__":
    main()
