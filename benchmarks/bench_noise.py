"""Benchmark: all minibatch gradients at once (torch.func vmap) against the straightforward
one-backward-per-minibatch loop (the method of Şimşekli et al.'s code), on real FashionMNIST.

Run: ``.venv/bin/python benchmarks/bench_noise.py [--repeats 5] [--n 10000]``. Prints one table
(median seconds of the repeats) and a last line of speed-up ratios (loop time / vmap time).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gnilab import config, data, noise
from gnilab.models import ConvSmall, MLP


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=10_000, help="training images used")
    args = parser.parse_args()
    device = config.get_device()
    config.seed_everything(0)
    train_set = data.load_fashion_mnist("train", limit=args.n, device=device)
    cases = [("MLP 784-128-128-10, no bias", MLP(784, 128, 3, 10, bias=False)),
             ("ConvSmall (11 330 params)", ConvSmall())]
    rows, ratios = [], []
    for name, model in cases:
        model = model.to(device)
        for b in (10, 100, 500):
            loop = _median_time(lambda: noise.minibatch_gradients(model, train_set, b, method="loop"), args.repeats)
            vmap = _median_time(lambda: noise.minibatch_gradients(model, train_set, b, method="vmap"), args.repeats)
            a = noise.minibatch_gradients(model, train_set, b, method="loop")
            v = noise.minibatch_gradients(model, train_set, b, method="vmap")
            err = ((a - v).abs().max() / a.abs().max()).item()
            rows.append((name, b, args.n // b, loop, vmap, loop / vmap, err))
            ratios.append(f"{name.split()[0]} b={b}: {loop / vmap:.2f}x")
    print(f"device: {device}, threads: {torch.get_num_threads()}, n = {args.n}, "
          f"median of {args.repeats} repeats")
    print(f"{'model':30s} {'b':>5s} {'P':>6s} {'loop [s]':>10s} {'vmap [s]':>10s} {'speed-up':>9s} {'max rel diff':>13s}")
    for name, b, P, loop, vmap, ratio, err in rows:
        print(f"{name:30s} {b:5d} {P:6d} {loop:10.4f} {vmap:10.4f} {ratio:8.2f}x {err:13.2e}")
    print("ratios (loop / vmap): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
