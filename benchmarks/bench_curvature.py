"""Benchmark: top-k Hessian eigenpairs, Hessian trace and Tr(HΣ) of ConvSmall (11 330 parameters)
on the first 1,200 FashionMNIST training images — gnilab.curvature against the dense route of
Zhu et al.'s code (dense Hessian + numpy.linalg.eigh) and PyHessian (power iteration, Hutchinson).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_curvature.py [--repeats 3] [--k 20]``.
The net is first trained for ``--steps`` SGD steps (b = 100, lr 0.1) so that the spectrum is
that of a trained net. Prints one table (median seconds over ``--repeats``) and a last line of
ratios.

The dense route is D = 11 330 Hessian–vector products plus a D×D ``eigh``: about an hour on
one CPU core, so by default it is *extrapolated* from measured parts (``--dense-cols`` columns of
the Hessian, scaled by D / cols; ``eigh`` of a random symmetric matrix of size ``--eigh-size``,
scaled by (D / size)³). ``--dense full`` runs it for real. Eigenvalue accuracy is measured against
ARPACK ``eigsh`` at tol 1e-8 on the same operator (``--dense full``: against ``eigh``).
PyHessian (``pip install -r benchmarks/requirements.txt``) is skipped when missing; its power
iteration computes ``--peer-k`` eigenvalues (default 5, each to its relative tol 1e-4) and its
time for k is extrapolated linearly (k / peer_k), which favours it (later eigenvalues converge
slower).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from gnilab import config, curvature, data
from gnilab.models import ConvSmall


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _rel_err(values, reference) -> float:
    v, r = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.max(np.abs(v - r[:len(v)]) / np.abs(r[:len(v)])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=1200, help="training images used")
    parser.add_argument("--k", type=int, default=20, help="eigenpairs wanted")
    parser.add_argument("--steps", type=int, default=300, help="SGD steps before measuring")
    parser.add_argument("--dense", choices=("extrapolate", "full"), default="extrapolate")
    parser.add_argument("--dense-cols", type=int, default=64)
    parser.add_argument("--eigh-size", type=int, default=2000)
    parser.add_argument("--peer-k", type=int, default=5)
    parser.add_argument("--probes", type=int, default=50, help="Hutchinson probes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = config.get_device()
    gen = config.seed_everything(0)
    train = data.load_fashion_mnist("train", limit=args.n, device=device, progress=False)
    net = ConvSmall().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(args.steps):
        idx = torch.randint(0, args.n, (100,), generator=gen).to(device)
        opt.zero_grad()
        F.cross_entropy(net(train.x[idx]), train.y[idx]).backward()
        opt.step()
    net.zero_grad(set_to_none=True)
    h = curvature.hessian_operator(net, train)
    dim = h.dim
    h @ torch.zeros(dim, device=device)   # build the cached graph once
    rows, ratios = [], {}

    def row(name, seconds, matvecs, err, note=""):
        rows.append((name, seconds, matvecs, err, note))

    # --- gnilab: Lanczos (full reorthogonalisation) and ARPACK on the same operator -------------
    t_lan, lan = _median_time(lambda: curvature.lanczos(
        h, args.k, generator=torch.Generator().manual_seed(1)), args.repeats)
    t_arp, arp = _median_time(lambda: curvature.lanczos(
        h, args.k, method="eigsh", tol=1e-8, generator=torch.Generator().manual_seed(1)),
        max(1, args.repeats - 2))
    reference, ref_name = arp.values.numpy(), "eigsh tol 1e-8"

    # --- the dense route ------------------------------------------------------------------------
    if args.dense == "full":
        t0 = time.perf_counter()
        dense = h.to_dense(max_dim=dim)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        lam = np.linalg.eigvalsh(dense.double().cpu().numpy())
        t_eigh = time.perf_counter() - t0
        reference, ref_name = lam[::-1][:args.k], "dense eigh"
        note = "measured"
    else:
        eye = torch.zeros(dim, args.dense_cols, device=device)
        eye[torch.arange(args.dense_cols), torch.arange(args.dense_cols)] = 1.0
        t_cols, _ = _median_time(lambda: h.matvec(eye), args.repeats)
        t_build = t_cols * dim / args.dense_cols
        m = args.eigh_size
        a = np.random.default_rng(0).standard_normal((m, m))
        a = a + a.T
        t_small, _ = _median_time(lambda: np.linalg.eigh(a), args.repeats)
        t_eigh = t_small * (dim / m) ** 3
        note = f"extrapolated: {args.dense_cols} columns, eigh at {m}"
    t_dense = t_build + t_eigh
    row("dense Hessian + numpy eigh", t_dense, dim, 0.0 if args.dense == "full" else float("nan"),
        note)
    row(f"gnilab lanczos top-{args.k}", t_lan, lan.matvecs, _rel_err(lan.values, reference),
        "tol 1e-5")
    row(f"gnilab eigsh (ARPACK) top-{args.k}", t_arp, arp.matvecs,
        _rel_err(arp.values, reference), "tol 1e-8")
    ratios["dense/lanczos"] = t_dense / t_lan
    ratios["eigsh/lanczos"] = t_arp / t_lan

    # --- PyHessian ------------------------------------------------------------------------------
    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        PyHessian = None
    if PyHessian is not None:
        def peer():
            comp = PyHessian(net, torch.nn.CrossEntropyLoss(), data=(train.x, train.y),
                             cuda=device.type == "cuda")
            return comp, comp.eigenvalues(maxIter=200, tol=1e-4, top_n=args.peer_k)[0]

        torch.manual_seed(0)
        t_peer, (comp, peer_vals) = _median_time(peer, 1)
        t_peer_k = t_peer * args.k / args.peer_k
        # power iteration finds the largest |λ|: compare with gnilab's which="LM" at tol 1e-8
        lm = curvature.lanczos(h, args.peer_k, which="LM", tol=1e-8,
                               generator=torch.Generator().manual_seed(1))
        row(f"PyHessian power iteration top-{args.peer_k}", t_peer, -1,
            _rel_err(peer_vals, lm.values.numpy()),
            f"vs gnilab LM; top-{args.k} ~ {t_peer_k:.1f} s (x k/peer_k)")
        ratios["pyhessian/lanczos (extrap.)"] = t_peer_k / t_lan
        torch.manual_seed(0)
        t_ptr, tr_vals = _median_time(lambda: comp.trace(maxIter=args.probes, tol=float("-inf")), 1)
        ph_tr = float(np.mean(tr_vals))
        ph_se = float(np.std(tr_vals, ddof=1) / np.sqrt(len(tr_vals)))
        row(f"PyHessian trace ({len(tr_vals)} probes)", t_ptr, len(tr_vals), float("nan"),
            f"Tr H = {ph_tr:.4g} ± {ph_se:.2g}")
        net.zero_grad(set_to_none=True)
        del comp

    # --- traces ---------------------------------------------------------------------------------
    t_tr, tr = _median_time(lambda: curvature.hutchinson_trace(
        h, args.probes, generator=torch.Generator().manual_seed(2)), args.repeats)
    row(f"gnilab hutchinson_trace ({args.probes} probes)", t_tr, args.probes, float("nan"),
        f"Tr H = {tr.value:.4g} ± {tr.stderr:.2g}")
    t_cov, cov = _median_time(lambda: curvature.gradient_covariance(net, train), args.repeats)
    row(f"gnilab gradient_covariance ({args.n} per-example)", t_cov, 0, float("nan"),
        f"Tr Σ = {cov.trace():.4g}")
    t_ind, ind = _median_time(lambda: curvature.noise_indicator(
        h, cov, method="hutchinson", samples=args.probes, trace_h=tr,
        generator=torch.Generator().manual_seed(3)), args.repeats)
    row(f"gnilab Tr(HΣ) hutchinson ({args.probes} probes)", t_ind, args.probes, float("nan"),
        f"{ind.trace_h_sigma:.4g} ± {ind.stderr:.2g}; ratio to iso {ind.ratio:.3g}")
    if PyHessian is not None:
        ratios["pyhessian trace/gnilab trace"] = t_ptr / t_tr
        ratios["gnilab Tr(HΣ)/pyhessian trace"] = (t_ind + t_cov) / t_ptr

    print(f"ConvSmall D = {dim}, n = {args.n}, device = {device}, threads = "
          f"{torch.get_num_threads()}, repeats = {args.repeats}, accuracy vs {ref_name}")
    print(f"{'method':44s} {'seconds':>9s} {'HVPs':>6s} {'max rel err':>12s}  note")
    for name, sec, mv, err, note in rows:
        mv_s = "" if mv < 0 else str(mv)
        err_s = "" if err != err else f"{err:.1e}"
        print(f"{name:44s} {sec:9.2f} {mv_s:>6s} {err_s:>12s}  {note}")
    print("top eigenvalues:", np.array2string(np.asarray(lan.values[:5]), precision=5))
    print("ratios: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
