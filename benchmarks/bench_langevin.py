"""Benchmark: the per-step overhead of each dynamic of Zhu et al. (2019, Table 1) relative to GD.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_langevin.py [--steps 30] [--k 5]``.

ConvSmall (11 330 parameters) on the first ``--n`` FashionMNIST training images, full-batch
steps of ``gnilab.train.train`` with a ``gnilab.langevin.GLDNoise`` hook: the noise budget is
tr Σ_b (b = 20), the statistics (Σ_b and its top-k eigenpairs, or the top-k Hessian eigenpairs)
are refreshed every ``--refresh`` steps and the noise is resampled every step, as in the paper's
FashionMNIST code. Each dynamic runs ``--steps`` steps from the same weights; the table gives the
mean seconds a step, the ratio to GD, and the share of the time spent on the statistics
(``stats_time`` recorded by the hook). The last line lists the ratios.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gnilab import data, langevin  # noqa: E402
from gnilab.models import ConvSmall  # noqa: E402
from gnilab.train import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--refresh", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = data.load_fashion_mnist("train", limit=args.n, progress=False)
    torch.manual_seed(0)
    start = ConvSmall()
    # warm-up (allocator, first evaluation): not timed
    train(copy.deepcopy(start), ds, steps=3, lr=0.07, eval_every=3, progress=False)
    rows, ratios = [], {}
    t_gd = None
    for kind in langevin.KINDS:
        net = copy.deepcopy(start)
        hook = None if kind == "gd" else langevin.GLDNoise(
            kind, ds, budget="trace", lr=0.07, k=args.k, refresh=args.refresh, batch_size=20,
            generator=torch.Generator().manual_seed(1))
        t0 = time.perf_counter()
        res = train(net, ds, steps=args.steps, lr=0.07, grad_hook=hook,
                    eval_every=args.steps, progress=False)
        sec = (time.perf_counter() - t0) / args.steps
        stats = float(res.records["stats_time"].sum()) / args.steps \
            if len(res.records) and "stats_time" in res.records else 0.0
        if kind == "gd":
            t_gd = sec
        rows.append((kind, sec, sec / t_gd, stats / sec))
        ratios[kind] = sec / t_gd
    print(f"ConvSmall, {args.n} images, {args.steps} full-batch steps, refresh every "
          f"{args.refresh}, k = {args.k}, {torch.get_num_threads()} thread(s)")
    print(f"{'dynamic':<12} {'s/step':>8} {'x GD':>7} {'statistics share':>17}")
    for kind, sec, r, share in rows:
        print(f"{kind:<12} {sec:8.3f} {r:7.2f} {share:17.0%}")
    print("ratios (s/step over GD): " + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
