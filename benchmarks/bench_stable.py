"""Benchmark gnilab.stable against its peers (scipy.stats.levy_stable, PyLevy) in one process.

Run:  .venv/bin/python benchmarks/bench_stable.py [--quick] [--threads N]

Times are medians of repeats (wall clock, ``time.perf_counter``). Where a peer is too slow to
run at the target size it is timed on a smaller input and scaled linearly; the table says so.
Prints one table and, last, one line of ratios (peer time / gnilab time; > 1 means gnilab is
faster).

PyLevy (``pip install levy-stable``, ``import levy``) is optional: its rows are skipped when it
is not installed. scipy's ``levy_stable.fit`` takes minutes even at n = 100 and is not run.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gnilab import stable as S  # noqa: E402

warnings.filterwarnings("ignore")


def med_time(fn, repeats=3):
    ts = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer seeds/repeats")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 2 if args.quick else 3
    n_seeds = 6 if args.quick else 20
    rows = []          # (task, gnilab, peer, peer name, note)
    ratios = {}

    print(f"torch {torch.__version__}, scipy {scipy.__version__}, numpy {np.__version__}, "
          f"threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}, "
          f"CUDA {torch.cuda.is_available()}")

    # ---------------------------------------------------------------- sampling
    n = 10 ** 7
    S.sample(1.5, 0.5, size=1000, generator=0)
    t_g, _ = med_time(lambda: S.sample(1.5, 0.5, size=n, generator=0), reps)
    t_g32, _ = med_time(lambda: S.sample(1.5, 0.5, size=n, generator=0, dtype=torch.float32), reps)
    t_s6, _ = med_time(lambda: stats.levy_stable.rvs(1.5, 0.5, size=10 ** 6, random_state=1), reps)
    t_s = 10 * t_s6
    rows.append(("sample 1e7 float64 CPU (a=1.5,b=0.5)", t_g, t_s, "scipy rvs",
                 "scipy timed on 1e6, x10"))
    rows.append(("sample 1e7 float32 CPU", t_g32, t_s, "scipy rvs (f64)", "scipy timed on 1e6, x10"))
    ratios["sample"] = t_s / t_g
    # KS spot check (the full grid is a test)
    ks = stats.ks_2samp(S.sample(0.8, 1.0, size=20000, generator=3),
                        stats.levy_stable.rvs(0.8, 1.0, size=20000, random_state=4)).pvalue
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        S.sample(1.5, 0.5, size=1000, device=dev, dtype=torch.float64)
        torch.cuda.synchronize()

        def cu():
            x = S.sample(1.5, 0.5, size=n, device=dev, dtype=torch.float64)
            torch.cuda.synchronize()
            return x
        t_cu, _ = med_time(cu, reps)
        rows.append(("sample 1e7 float64 CUDA", t_cu, t_s, "scipy rvs (CPU)", "scipy timed on 1e6, x10"))
        ratios["sample_cuda"] = t_s / t_cu

    # ---------------------------------------------------------------- log-density
    x = np.linspace(-10, 10, 10 ** 4)
    res = {}
    for a, b in [(1.5, 0.5), (0.8, 0.0), (1.0, 0.3)]:
        S.logpdf(x[:100], a, b)
        t_g, _ = med_time(lambda: S.logpdf(x, a, b), reps)
        xs = x[::20]           # 500 points for scipy
        t_s5, ps = med_time(lambda: stats.levy_stable.pdf(xs, a, b), 1)
        t_s = t_s5 * 20
        rel = np.max(np.abs(S.pdf(xs, a, b) / ps - 1))
        rows.append((f"logpdf 1e4 pts a={a},b={b}", t_g, t_s, "scipy pdf (default)",
                     f"scipy on 500 pts x20; max rel diff {rel:.1e}"))
        res[(a, b)] = t_s / t_g
    ratios["logpdf"] = float(np.median(list(res.values())))
    if torch.cuda.is_available():
        xt = torch.tensor(x, device="cuda")
        d = S.Stable(torch.tensor(1.5, dtype=torch.float64, device="cuda"),
                     torch.tensor(0.5, dtype=torch.float64, device="cuda"))
        d.log_prob(xt[:100])
        torch.cuda.synchronize()

        def cul():
            v = d.log_prob(xt)
            torch.cuda.synchronize()
            return v
        t_cu, _ = med_time(cul, reps)
        rows.append(("logpdf 1e4 pts CUDA a=1.5,b=0.5", t_cu, res[(1.5, 0.5)] * 0 + np.nan,
                     "-", "CUDA"))

    # accuracy on Nolan's table
    data = Path(scipy.__file__).parent / "stats" / "tests" / "data" / "levy_stable"
    d = np.load(data / "stable-Z1-pdf-sample-data.npy")
    rel = np.abs(S.pdf(d[:, 0], d[:, 2], d[:, 3]) / d[:, 1] - 1)
    q = np.quantile(rel, [0.5, 0.9, 0.99])
    acc = (f"Nolan pdf table ({len(d)} rows): rel err median {q[0]:.1e}, 90% {q[1]:.1e}, "
           f"99% {q[2]:.1e}, max {rel.max():.1e}, rows > 1e-10: {(rel > 1e-10).sum()}")
    dc = np.load(data / "stable-Z1-cdf-sample-data.npy")
    errc = np.abs(S.cdf(dc[:, 0], dc[:, 2], dc[:, 3]) - dc[:, 1])
    accc = (f"Nolan cdf table ({len(dc)} rows): abs err median {np.median(errc):.1e}, "
            f"max {errc.max():.1e} (the 12 rows > 1e-11 are alpha=1, |beta|<=0.3, 1%/99%: "
            f"stablec's own error, ours = scipy's there)")

    # ---------------------------------------------------------------- MLE
    t0 = time.perf_counter()
    S._ml_table()
    t_table = time.perf_counter() - t0
    try:
        import levy  # PyLevy
        have_levy = True
    except Exception:  # pragma: no cover - optional peer
        have_levy = False
    true = (1.5, 0.5, 1.0, 0.0)
    for n in (1000, 10000):
        tg, tl, ag, al = [], [], [], []
        for seed in range(n_seeds):
            xs = S.sample(*true, size=n, generator=1000 + seed)
            t = time.perf_counter()
            f = S.fit(xs, method="mle")
            tg.append(time.perf_counter() - t)
            ag.append(f.alpha)
            if have_levy:
                t = time.perf_counter()
                r = levy.fit(xs)
                tl.append(time.perf_counter() - t)
                al.append(r.params.alpha)
        rmse_g = math.sqrt(np.mean((np.array(ag) - true[0]) ** 2))
        note = f"alpha RMSE over {n_seeds} seeds: gnilab {rmse_g:.4f}"
        peer = np.nan
        if have_levy:
            rmse_l = math.sqrt(np.mean((np.array(al) - true[0]) ** 2))
            note += f", PyLevy {rmse_l:.4f}"
            peer = float(np.median(tl))
            ratios[f"mle_n{n}"] = peer / float(np.median(tg))
            ratios[f"rmse_ratio_n{n}"] = rmse_l / rmse_g
        rows.append((f"fit mle n={n} (S1 1.5,0.5,1,0)", float(np.median(tg)), peer,
                     "PyLevy fit" if have_levy else "PyLevy (not installed)", note))
    rows.append(("  one-time MLE table build", t_table, np.nan, "-",
                 "first MLE call in a process only"))
    tq, _ = med_time(lambda: S.fit(S.sample(*true, size=10000, generator=5), method="quantile"), reps)
    te, _ = med_time(lambda: S.fit(S.sample(*true, size=10000, generator=5), method="ecf"), reps)
    rows.append(("fit quantile n=1e4", tq, np.nan, "-", "McCulloch"))
    rows.append(("fit ecf n=1e4", te, np.nan, "-", "Koutrouvelis"))
    rows.append(("scipy levy_stable.fit", np.nan, np.nan, "scipy", "not run (> 300 s at n=1e3)"))

    # ---------------------------------------------------------------- tail index
    biases = []
    for a in (0.5, 0.8, 1.1, 1.4, 1.7, 2.0):
        est = [S.tail_index(S.sample(a, 0.0, size=10 ** 5, generator=50 + s), k1=100).alpha
               for s in range(3 if args.quick else 5)]
        biases.append(np.mean(est) - a)
    t_ti, _ = med_time(lambda: S.tail_index(S.sample(1.5, 0.0, size=10 ** 5, generator=1)), reps)
    rows.append(("tail_index K=1e5 (K1=100)", t_ti, np.nan, "-",
                 "bias over alpha in {0.5..2}: " + ", ".join(f"{b:+.3f}" for b in biases)))
    ratios["max_abs_tail_bias"] = float(np.max(np.abs(biases)))

    # ---------------------------------------------------------------- print
    w = max(len(r[0]) for r in rows)
    print()
    print(f"{'task':<{w}}  {'gnilab s':>10}  {'peer s':>10}  {'peer':<22} note")
    print("-" * (w + 80))
    for task, tg, tp, peer, note in rows:
        fg = f"{tg:10.4f}" if np.isfinite(tg) else f"{'-':>10}"
        fp = f"{tp:10.4f}" if np.isfinite(tp) else f"{'-':>10}"
        print(f"{task:<{w}}  {fg}  {fp}  {peer:<22} {note}")
    print(acc)
    print(accc)
    print(f"KS two-sample p (alpha=0.8, beta=1, n=2e4 each) vs scipy: {ks:.3f}")
    print("ratios (peer/gnilab time; rmse_ratio = PyLevy/gnilab alpha RMSE): "
          + ", ".join(f"{k}={v:.3g}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
