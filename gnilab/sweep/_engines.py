"""Running pending runs: in this process (``serial``) or as Ray tasks (``ray``).

Both engines call the same :func:`execute` for a run, so one config gives the same record on
either (bit for bit on one machine with the same thread count: the run sets
``torch.set_num_threads(num_cpus)`` and seeds everything from ``config["seed"]`` first). The
driver writes each record as it arrives, so an interrupted sweep keeps what finished.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Callable, List

import torch

from ._store import SCHEMA, plain_result, provenance, utc_now, write_record

_TRACEBACK_CHARS = 20_000


def execute(fn: Callable, function: str, key: str, config: dict, num_cpus: int,
            engine: str) -> dict:
    """Run ``fn(**config)`` once and return its record (status ``ok`` with the result, or
    ``failed`` with the traceback). Never raises for an exception inside ``fn``."""
    from ..config import seed_everything

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(num_cpus)))
    seed = config.get("seed")
    started, t0 = utc_now(), time.perf_counter()
    status, result, error = "ok", None, None
    try:
        seed_everything(seed if isinstance(seed, int) and not isinstance(seed, bool)
                        and seed >= 0 else 0)
        out = fn(**config)
        if not isinstance(out, dict):
            raise TypeError(f"{function} returned {type(out).__name__}; an experiment function "
                            "returns a dict of summary values")
        result = plain_result(out)
    except Exception:  # the run failed: record why and let the sweep go on
        status, error = "failed", traceback.format_exc()[-_TRACEBACK_CHARS:]
    try:
        prov = provenance(seed, time.perf_counter() - t0, started, engine)
    finally:
        torch.set_num_threads(threads)
    return {"schema": SCHEMA, "key": key, "function": function, "config": config,
            "status": status, "result": result, "error": error, "provenance": prov}


def _crash_record(run, function: str, err: BaseException, engine: str) -> dict:
    """The record of a run whose worker died (after its retries) or could not be scheduled."""
    key, config, _ = run
    return {"schema": SCHEMA, "key": key, "function": function, "config": config,
            "status": "failed",
            "result": None, "error": f"{type(err).__name__}: {err}"[-_TRACEBACK_CHARS:],
            "provenance": {"engine": engine, "seed": config.get("seed"), "started": utc_now(),
                           "wall_s": None}}


def run_serial(fn, function: str, runs: List[tuple], num_cpus: int, bar) -> None:
    """Run each ``(key, config, path)`` in this process, writing its record."""
    failed = 0
    for key, config, path in runs:
        bar.set_postfix_str(f"running 1, failed {failed}")
        record = execute(fn, function, key, config, num_cpus, "serial")
        write_record(path, record)
        failed += record["status"] == "failed"
        bar.update(1)
        bar.set_postfix_str(f"running 0, failed {failed}")


def import_ray():
    """``import ray`` with a clear message when it is missing."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is pinned in requirements.txt
        raise ImportError("engine='ray' needs Ray: pip install ray==2.60.0 (or use "
                          "engine='serial')") from None
    return ray


def init_ray(ray, init_kwargs: dict):
    """Connect to the cluster at ``$RAY_ADDRESS`` or start a local one (all cores, no
    dashboard), unless Ray is already initialised in this process."""
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False,
                  "configure_logging": False}
        address = os.environ.get("RAY_ADDRESS")
        if address:
            kwargs["address"] = address
        kwargs.update(init_kwargs)
        ray.init(**kwargs)
    return ray.cluster_resources()


def _ship_by_value(ray, fn) -> None:
    """Functions from modules that workers may not import (a test file, a user script) are
    pickled by value; gnilab's own are imported by name on the worker."""
    module = sys.modules.get(fn.__module__)
    if module is not None and fn.__module__ != "__main__" and \
            fn.__module__.split(".")[0] != "gnilab":
        ray.cloudpickle.register_pickle_by_value(module)


def run_ray(fn, function: str, runs: List[tuple], num_cpus: float, num_gpus: float,
            max_retries: int, max_calls: int, slots: int, bar) -> None:
    """Submit every ``(key, config, path)`` as a Ray task and write records as they finish.

    A task whose worker dies is retried ``max_retries`` times by Ray, then recorded as
    failed; an exception inside the run is recorded by :func:`execute` (not retried)."""
    ray = import_ray()
    _ship_by_value(ray, fn)
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                        max_calls=max_calls, retry_exceptions=False)(execute)
    fn_ref = ray.put(fn)
    pending = {remote.remote(fn_ref, function, key, config, max(1, int(num_cpus)), "ray"): run
               for run in runs for key, config, _ in [run]}
    failed = 0
    try:
        while pending:
            bar.set_postfix_str(f"running {min(len(pending), slots)}, failed {failed}")
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                run = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as err:  # the worker died after its retries
                    record = _crash_record(run, function, err, "ray")
                write_record(run[2], record)
                failed += record["status"] == "failed"
                bar.update(1)
        bar.set_postfix_str(f"running 0, failed {failed}")
    finally:
        for ref in pending:  # interrupted: stop what is still queued or running
            ray.cancel(ref, force=True)
