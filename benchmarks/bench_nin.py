"""Benchmark gnilab.nin: the cost of a noise injection node, and a sigma sweep batched against
a loop over sigma, in one process; one table, last line = ratios.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nin.py --threads 1   # about 1.5 minutes
    .venv/bin/python benchmarks/bench_nin.py --quick

Sections (issue 12's targets)
-----------------------------
1. **NIN overhead on a training step.** The FashionMNIST MLP of the paper's Fig. 1 shape (3
   hidden ReLU layers of width 128, ``MLP(784, 128, 4, 10)``), batch 128, plain SGD: one step
   (zero_grad, forward, cross-entropy, backward, update) without a NIN, with one NIN on the first
   hidden layer (``mode="step"``: a fresh Gaussian per example), and with ``mode="fixed"`` (the
   per-example table indexed through :meth:`NoiseInjection.indexed` positions). The same 16
   batches are cycled through by every variant, and the variants are timed in interleaved
   blocks so that machine noise hits them alike. Goal: NIN / plain <= 1.1.
2. **A sigma sweep.** ``K`` copies of the same network, one per sigma, ``S`` SGD steps each on
   the same minibatches: ``train_sweep`` (one ``vmap``-ed gradient over the stacked copies per
   step) against a Python loop over sigma of ``train_nin`` (the stateful module through
   ``gnilab.train.train``), and against a loop of one-sigma ``train_sweep`` calls (the same
   functional step unbatched). Evaluation at the start and the end only, on 256 images, so
   the training steps dominate. On a CPU the batched step does the same arithmetic as K
   separate steps (the products are already large enough to run at full speed), so it saves
   only per-call overhead; the gain is an accelerator's.

Times are medians of repeats (``time.perf_counter``) on the threads given.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402
from gnilab import data, nin  # noqa: E402
from gnilab.models import MLP  # noqa: E402

BATCH, LR, WIDTH = 128, 0.05, 128


def _network(seed=0):
    torch.manual_seed(seed)
    return MLP(784, WIDTH, 4, 10)            # 3 hidden ReLU layers


def _stepper(net, x, y, batches):
    """One SGD step per call on the next of the prepared batches (index tensors), gathering
    ``x[idx], y[idx]`` as ``gnilab.train.train`` does."""
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.functional.cross_entropy
    state = {"i": 0}

    def step():
        idx = batches[state["i"]]
        state["i"] = (state["i"] + 1) % len(batches)
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()
    return step


def bench_overhead(ds, args, rows, ratios):
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randperm(len(ds), generator=gen)[:BATCH] for _ in range(16)]
    step_net = nin.NoiseInjection(_network(), ["1"], 0.5, generator=1)
    fixed_net = nin.NoiseInjection(_network(), ["1"], 0.5, mode="fixed", generator=1)
    fixed_ds = fixed_net.indexed(ds)       # x = positions; the wrapper gathers the images
    variants = {
        "plain SGD step (no NIN)": _stepper(_network(), ds.x, ds.y, idx),
        "NIN on layer 1, mode='step'": _stepper(step_net, ds.x, ds.y, idx),
        "NIN on layer 1, mode='fixed' (indexed)": _stepper(fixed_net, fixed_ds.x, ds.y, idx),
    }
    times = {k: [] for k in variants}
    for fn in variants.values():             # warm up
        for _ in range(20):
            fn()
    for _ in range(args.blocks):             # interleaved blocks of `per_block` steps
        for name, fn in variants.items():
            t = time.perf_counter()
            for _ in range(args.per_block):
                fn()
            times[name].append((time.perf_counter() - t) / args.per_block)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain SGD step (no NIN)"]
    task = f"SGD step, MLP 784-{WIDTH}x3-10, batch {BATCH}"
    for name, t in med.items():
        rows.append((task, name, t, f"{t / base:.3f} x plain"))
    ratios["nin_step_over_plain"] = med["NIN on layer 1, mode='step'"] / base
    ratios["nin_fixed_over_plain"] = med["NIN on layer 1, mode='fixed' (indexed)"] / base


def bench_sweep(ds, args, rows, ratios):
    sigmas = [0.05 * 2 ** k for k in range(args.k)]
    steps = args.sweep_steps
    model = _network()
    small = ds.subset(slice(0, 256))       # evaluation data: the training steps dominate
    common = dict(steps=steps, lr=LR, batch_size=BATCH, progress=False, eval_data=small)

    def batched():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # a divergent sigma is fine
            nin.train_sweep(model, ds, sigmas, layers=["1"], eval_every=steps, generator=0,
                            **common)

    def loop_train():
        for s in sigmas:
            net = nin.NoiseInjection(copy.deepcopy(model), ["1"], s, generator=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                nin.train_nin(net, ds, eval_every=steps, probe_every=10 * steps,
                              probe_data=small, generator=0, **common)

    def loop_sweep():
        for s in sigmas:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                nin.train_sweep(model, ds, [s], layers=["1"], eval_every=steps, generator=0,
                                **common)

    t_b = median_time(batched, args.reps, warmup=True)
    t_l = median_time(loop_train, args.reps, warmup=True)
    t_s = median_time(loop_sweep, args.reps, warmup=True)
    task = f"sigma sweep, K={len(sigmas)}, {steps} steps, batch {BATCH}, N={len(ds)}"
    rows.append((task, "train_sweep (batched, vmap)", t_b, ""))
    rows.append((task, "loop over sigma: train_nin", t_l, f"{t_l / t_b:.2f} x batched"))
    rows.append((task, "loop over sigma: train_sweep(K=1)", t_s, f"{t_s / t_b:.2f} x batched"))
    ratios["loop_train_nin_over_batched"] = t_l / t_b
    ratios["loop_sweep1_over_batched"] = t_s / t_b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--n", type=int, default=10_000, help="FashionMNIST training images")
    ap.add_argument("--k", type=int, default=8, help="sigma values in the sweep")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.blocks, args.per_block = (5, 20) if args.quick else (15, 40)
    args.reps = 1 if args.quick else 3
    args.sweep_steps = 50 if args.quick else 100
    ds = data.load_fashion_mnist("train", limit=args.n, progress=False, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), FashionMNIST "
          f"train[:{len(ds)}]")
    rows, ratios = [], {}
    bench_overhead(ds, args, rows, ratios)
    bench_sweep(ds, args, rows, ratios)
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print(f"{'task':<{w}}  {'implementation':<{v}}  {'seconds':>9}  note")
    for task, impl, sec, note in rows:
        print(f"{task:<{w}}  {impl:<{v}}  {sec:9.5f}  {note}")
    print("ratios: " + ", ".join(f"{k} = {val:.3f}" for k, val in ratios.items()))


if __name__ == "__main__":
    main()
