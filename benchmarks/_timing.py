"""Timing helper shared by the benchmarks (``bench_levy.py``, ``bench_gni.py``, ``bench_gni_sde.py``)."""
import statistics
import time


def median_time(fn, repeats: int, warmup: bool = False) -> float:
    """Median wall time (``time.perf_counter``) of ``repeats`` calls of ``fn``, after one
    untimed call when ``warmup``."""
    if warmup:
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)
