"""Benchmark gnilab.gni against its peers, one process, one table, last line = ratios.

Run::

    .venv/bin/python benchmarks/bench_gni.py            # a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_gni.py --quick    # fewer repeats and steps
    .venv/bin/python benchmarks/bench_gni.py --threads 1

Sections (issue 9's targets)
----------------------------
1. **One step of the M-sample objective** (Eq. 4.5), M = 16, on the network of the paper's
   Fig. 2 (MLP 1-256-256-256-1, ReLU, additive GNIs after every hidden activation) and the
   200-point sinusoid data: gnilab's stacked pass (one forward/backward over 16 copies,
   tiled at the first injection site) against a Python loop over the 16 copies (one forward
   per copy, the losses averaged, one backward). Goal >= 3x on CPU. Also at width 64 (the
   networks of Chapter 5's default scale). Memory: the peak resident set of a fresh process
   that runs 20 such steps (``resource.getrusage``), for both. Both keep the activations of
   all 16 copies until the backward pass, so they need about the same memory; the time is
   matrix products of the same total size either way, so on a CPU the stacked pass gains
   only the per-call overhead (large for narrow networks, small for 256 units).
2. **The per-step S_alpha fit** of the replacement arm (Fig. 4) against the training step it
   accompanies, at the default scale of Chapter 5 (MLP 1-64-64-64-1, M = 16, 200 points): the
   fit of all four layers' implicit-effect gradients with gnilab's McCulloch quantile fit on up
   to 4096 entries (what ``train_gni`` does), gnilab's exact MLE on the same entries, and PyLevy's
   ``fit_levy`` (what the paper used) on the same entries when PyLevy is installed
   (``pip install -r benchmarks/requirements.txt``).
3. **The Eq. 4.4 simulation** with 10^5 paths against a per-step numpy loop
   (``benchmarks/bench_gni_sde.py``).

Times are medians of repeats (``time.perf_counter``), on the threads given (default: torch's).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402
from gnilab import data, gni, stable  # noqa: E402
from gnilab.models import MLP  # noqa: E402

try:
    import levy  # PyLevy, benchmark-only peer
    HAVE_LEVY = True
except ImportError:          # pragma: no cover
    HAVE_LEVY = False


def med_time(fn, repeats):
    return median_time(fn, repeats, warmup=True)


def fig2_setup(width=256, depth=4, n=200, seed=0):
    d = data.make_sinusoids(n, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    net = gni.GaussianNoiseInjection(MLP(1, width, depth, 1), 0.1, "additive", generator=1)
    return net, d


def step_stacked(net, d, M):
    net.zero_grad(set_to_none=True)
    gni.m_sample_loss(net, d.x, d.y, "mse", M).backward()


def step_loop(net, d, M):
    net.zero_grad(set_to_none=True)
    loss = sum(gni.m_sample_loss(net, d.x, d.y, "mse", 1) for _ in range(M)) / M
    loss.backward()


def memory_child(variant, M, steps=20):
    """Run in a fresh process: peak RSS (MiB) after ``steps`` steps of ``variant``."""
    net, d = fig2_setup()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn = step_stacked if variant == "stacked" else step_loop
    for _ in range(steps):
        fn(net, d, M)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": peak / 1024, "growth_mib": (peak - base) / 1024}))


def peak_memory(variant, M):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, __file__, "--memory-child", variant, str(M)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_stacked(args, rows, ratios):
    M = 16
    for width, key in ((256, "stacked_vs_loop_fig2"), (64, "stacked_vs_loop_width64")):
        net, d = fig2_setup(width=width)
        t_stack = med_time(lambda: step_stacked(net, d, M), args.reps)
        t_loop = med_time(lambda: step_loop(net, d, M), args.reps)
        task = f"L~_M step, M=16, MLP 1-{width}x3-1, N=200"
        note_s = note_l = ""
        if width == 256:
            mem_s, mem_l = peak_memory("stacked", M), peak_memory("loop", M)
            note_s = f"peak RSS {mem_s['peak_mib']:.0f} MiB (+{mem_s['growth_mib']:.0f} over setup)"
            note_l = f"peak RSS {mem_l['peak_mib']:.0f} MiB (+{mem_l['growth_mib']:.0f} over setup)"
        rows.append((task, "gnilab stacked pass", t_stack, note_s))
        rows.append((task, "Python loop over M", t_loop, note_l))
        ratios[key] = t_loop / t_stack


def bench_fit(args, rows, ratios):
    """The replacement arm's fit against its training step (Chapter 5 default scale)."""
    d = data.make_sinusoids(200, freqs=(1, 2, 3), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = gni.GaussianNoiseInjection(MLP(1, 64, 4, 1), 0.5, "additive", generator=1)
    ie = gni.implicit_effect(net, d.x, d.y, "mse", copies=16)
    gen = torch.Generator().manual_seed(0)
    samples = []
    for g in ie.grads.values():
        v = g.reshape(-1)
        v = v[v != 0]
        if v.numel() > 4096:
            v = v[torch.randperm(v.numel(), generator=gen)[:4096]]
        if v.numel() >= 10:
            samples.append(v.double().numpy())

    # the training step of the replacement arm without its fit: M = 16 (+1 copy) forward and
    # backward, the implicit gradient and the update
    def train_step():
        losses = gni.stacked_losses(net, d.x, d.y, "mse", 17)
        exp_obj = losses[1:].mean()
        imp = losses[0] - exp_obj
        params = list(net.weight_layers().values())
        torch.autograd.grad(imp, params, retain_graph=True)
        net.zero_grad(set_to_none=True)
        exp_obj.backward()
    t_step = med_time(train_step, args.reps)
    t_q = med_time(lambda: [stable.fit(v, method="quantile") for v in samples], args.reps)
    t_mle = med_time(lambda: [stable.fit(v, method="mle") for v in samples], 1)
    task = f"S_alpha fit of {len(samples)} layers ({', '.join(str(v.size) for v in samples)} entries)"
    rows.append(("replacement training step (no fit), M=16, MLP 1-64x3-1", "gnilab", t_step, ""))
    rows.append((task, "gnilab quantile (train_gni default)", t_q,
                 f"{t_q / t_step:.2f} x the training step"))
    rows.append((task, "gnilab exact MLE", t_mle, f"{t_mle / t_step:.1f} x the training step"))
    ratios["fit_quantile_over_step"] = t_q / t_step
    if HAVE_LEVY:
        def pylevy():
            for v in samples:
                levy.fitting.fit_levy(v)
        t_levy = med_time(pylevy, 1)
        rows.append((task, "PyLevy fit_levy (the paper's)", t_levy,
                     f"{t_levy / t_step:.1f} x the training step"))
        ratios["pylevy_fit_over_gnilab_quantile"] = t_levy / t_q
        ratios["pylevy_fit_over_gnilab_mle"] = t_levy / t_mle
    else:
        rows.append((task, "PyLevy fit_levy", float("nan"), "not installed"))


def bench_sde(args, rows, ratios):
    from bench_gni_sde import bench_sde as run
    out = run(args.quick)
    times = {}
    for task, impl, sec, note in out:
        rows.append((task, impl, sec, note))
        times[impl] = sec
    g = times.get("gnilab simulate_gni (Eq. 4.4)")
    if g:
        for impl, key in (("numpy per-step loop (CMS)", "sde_numpy_cms_loop_over_gnilab"),
                          ("numpy per-step loop (scipy levy_stable.rvs)",
                           "sde_scipy_loop_over_gnilab")):
            if impl in times:
                ratios[key] = times[impl] / g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory-child", nargs=2, metavar=("VARIANT", "M"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    args.reps = 3 if args.quick else 7
    rows, ratios = [], {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), PyLevy: {HAVE_LEVY}")
    bench_stacked(args, rows, ratios)
    bench_fit(args, rows, ratios)
    bench_sde(args, rows, ratios)
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print(f"{'task':<{w}}  {'implementation':<{v}}  {'seconds':>9}  note")
    for task, impl, sec, note in rows:
        print(f"{task:<{w}}  {impl:<{v}}  {sec:9.4f}  {note}")
    print("ratios: " + ", ".join(f"{k} = {val:.3g}" for k, val in ratios.items())
          + "   (goals: stacked_vs_loop_fig2 >= 3; fit_quantile_over_step < 1)")


if __name__ == "__main__":
    main()
