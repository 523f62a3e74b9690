"""Benchmark: the per-step cost of M-SGD-Gaussian (one weighted backward pass, Wu et al. 2020
Algorithm 1) against plain GD and against the traditional route to the same Gaussian noise
(per-example gradients, then an SVD of the N×D gradient matrix or an eigendecomposition of the
D×D covariance: ``gnilab.msgd.gaussian_noise_by_covariance``).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_msgd.py [--repeats 9]
[--route-repeats 2] [--threads 1]`` (about 2 minutes on one thread).

Data: the first N images of the FashionMNIST *test* split (the paper's 1 000 training images).
Models: ``ConvSmall`` (D = 11 330) with N in {250, 500, 1000}; one-hidden-layer MLPs 784-w-10
(D = 795 w + 10) with N = 1000 as D grows. A step is zero_grad + forward + backward + the SGD
update; the covariance route's step is a GD step plus one noise draw (its noise is added to the
full gradient). Medians of ``--repeats`` timed steps after one untimed one, and of
``--route-repeats`` draws of the covariance route (seconds each); the column ``grads`` times the
per-example gradients alone (part of that route). The dense D×D eigendecomposition is timed for
D <= 2000 only (cubic in D). The table gives seconds per step and the ratios M-SGD over GD (goal
<= 1.2) and covariance route over M-SGD (goal >= 10 at N = 1000, D ≈ 11k); the last line lists
the ConvSmall N = 1000 ratios.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402
from gnilab import data, msgd  # noqa: E402
from gnilab.curvature import gradient_covariance  # noqa: E402
from gnilab.models import MLP, ConvSmall, count_parameters  # noqa: E402

B = 50          # the minibatch size the noise matches (the paper's FashionMNIST SGD batch)
LR = 0.01
EIGH_MAX = 2000  # largest D whose dense D×D eigendecomposition is timed (cubic in D)


def _step_fn(model, ds, objective=None):
    """One update of a copy of ``model``: GD (``objective=None``) or M-SGD."""
    net = copy.deepcopy(model)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(ds.x), ds.y) if objective is None else objective(net, ds.x, ds.y)
        loss.backward()
        opt.step()
    return step


def _route_fn(model, ds, method):
    def draw():
        msgd.gaussian_noise_by_covariance(model, ds, "cov", b=B, method=method, generator=0)
    return draw


def bench(name, model, ds, repeats, route_repeats):
    n, dim = len(ds.y), count_parameters(model)
    gd = median_time(_step_fn(model, ds), repeats, warmup=True)
    row = {"setting": name, "N": n, "D": dim, "gd": gd}
    for kind in ("fisher", "cov"):
        obj = msgd.msgd_objective(kind, n, b=B, generator=1)
        row[kind] = median_time(_step_fn(model, ds, obj), repeats, warmup=True)
    row["grads"] = median_time(lambda: gradient_covariance(model, ds), route_repeats)
    row["svd"] = gd + median_time(_route_fn(model, ds, "svd"), route_repeats)
    row["eigh"] = (gd + median_time(_route_fn(model, ds, "eigh"), route_repeats)
                   if dim <= EIGH_MAX else float("nan"))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed GD / M-SGD steps")
    ap.add_argument("--route-repeats", type=int, default=2,
                    help="timed draws of the covariance route (seconds each)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--widths", type=int, nargs="*", default=[2, 16, 64])
    ap.add_argument("--sizes", type=int, nargs="*", default=[250, 500, 1000])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    full = data.load_fashion_mnist("test", limit=max(args.sizes + [1000]), progress=False,
                                   device="cpu")
    rows = []
    torch.manual_seed(0)
    conv = ConvSmall()
    for n in args.sizes:
        rows.append(bench("ConvSmall", conv, full.subset(slice(0, n)), args.repeats,
                          args.route_repeats))
    ds = full.subset(slice(0, 1000))
    for w in args.widths:
        torch.manual_seed(0)
        rows.append(bench(f"MLP 784-{w}-10", MLP(784, w, 2, 10), ds, args.repeats,
                          args.route_repeats))

    print(f"FashionMNIST test images, b = {B}, {torch.get_num_threads()} thread(s), "
          f"median of {args.repeats} steps / {args.route_repeats} route draws; seconds per "
          "step (grads: the per-example gradients alone, part of both routes)")
    head = (f"{'setting':<14} {'N':>5} {'D':>6} {'GD':>8} {'M-Fisher':>9} {'M-Cov':>8} "
            f"{'grads':>7} {'cov-SVD':>8} {'cov-eigh':>9} {'M/GD':>6} {'SVD/M':>7} "
            f"{'eigh/M':>7}")
    print(head)
    for r in rows:
        m = r["cov"]
        print(f"{r['setting']:<14} {r['N']:>5} {r['D']:>6} {r['gd']:8.4f} {r['fisher']:9.4f} "
              f"{m:8.4f} {r['grads']:7.3f} {r['svd']:8.3f} {r['eigh']:9.3f} {m / r['gd']:6.2f} "
              f"{r['svd'] / m:7.1f} {r['eigh'] / m:7.1f}")
    key = next((r for r in rows if r["setting"] == "ConvSmall" and r["N"] == 1000), rows[0])
    print(f"ratios (ConvSmall, N = {key['N']}): M-SGD-Fisher/GD = {key['fisher'] / key['gd']:.2f}, "
          f"M-SGD-Cov/GD = {key['cov'] / key['gd']:.2f}, covariance route (SVD)/M-SGD-Cov = "
          f"{key['svd'] / key['cov']:.1f}")


if __name__ == "__main__":
    main()
