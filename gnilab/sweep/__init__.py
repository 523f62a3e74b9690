"""Run a grid of experiment configurations, on Ray or in this process, with every result stored
once, with its provenance, and read back as one table.

An *experiment function* takes its configuration as keyword arguments and returns a dict of
summary values (numbers, strings, lists, tensors or arrays); a *grid* is a list of configs
(dicts or dataclass instances), e.g. from :func:`grid`::

    from gnilab import sweep

    table = sweep.run(nin_decay_run, sweep.grid(sigma2=[0.0, 0.1, 0.2], seed=range(5)),
                      results="results/06_nin_phases", engine="ray")

Each run is stored as one JSON file under a hash of its function name and config (see
:mod:`gnilab.sweep._store`), written atomically with a checksum and its provenance (config,
gnilab version and git commit, torch version, device, seed, wall time, host). A rerun skips
what is stored and computes only what is missing or failed; ``force=True`` recomputes all; a
corrupt or truncated file is detected, reported and recomputed, never read. A run that raises
is stored as a failure with its traceback and the sweep goes on.

Before a run, ``torch.set_num_threads(num_cpus)`` and :func:`gnilab.config.seed_everything`
with ``config["seed"]`` (0 without one), so a config gives the same numbers on either engine
(bit for bit on one machine; within floating-point tolerance across CPUs and thread counts).

Engines
-------
``engine="serial"``
    the runs one after the other in this process: no Ray, what tests compare against.
``engine="ray"``
    one Ray task per run. With ``$RAY_ADDRESS`` unset and Ray not yet initialised, a local
    Ray is started on all cores, without the dashboard (``ray_init=`` passes other
    :func:`ray.init` arguments, e.g. ``{"num_cpus": 2}``); an already initialised Ray is used
    as it is. Workers are reused between runs (``max_calls=0``), so torch is imported once per
    worker; a worker that dies is retried ``max_retries`` times.

On a cluster
------------
Start a head (``ray start --head --port=6379``) and workers (``ray start
--address=HEAD:6379``) in the same Python environment, then set ``RAY_ADDRESS=HEAD:6379``
before ``python -m gnilab reproduce ... --engine ray``. Ray 2.60 authenticates with a token
(``RAY_AUTH_MODE=token``, the default): the head writes it when it starts, and every worker and
driver must see the same one, e.g. ``export RAY_AUTH_TOKEN=$(cat ~/.ray/auth_token)`` on a
shared home directory (``ray get-auth-token`` prints it). The results directory must be on a
file system the driver writes to (the driver, not the workers, writes the records). Under
Slurm, the usual pattern is one batch script::

    #SBATCH --nodes=4 --ntasks-per-node=1 --cpus-per-task=16 [--gpus-per-task=1]
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
    srun -N1 -n1 -w "$head" ray start --head --port=6379 --block &
    sleep 30
    srun -N$((SLURM_NNODES - 1)) -n$((SLURM_NNODES - 1)) -x "$head" \\
         ray start --address="$head:6379" --block &
    sleep 30
    RAY_ADDRESS="$head:6379" python -m gnilab reproduce 04_msgd --scale paper --engine ray

GPUs: ``num_gpus`` (fractional, e.g. 0.25 to share one GPU among four runs) is refused, before
anything runs, where no GPU is available (on a CPU-only cluster such a task would wait
forever).
"""
from __future__ import annotations

import inspect
import itertools
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from .._common.checks import check_bool, check_choice, check_int, check_real
from ._store import (CorruptRecord, canonical_config, function_name, read_record, record_path,
                     run_key)

__all__ = ["run", "grid", "load", "ENGINES", "CorruptRecord"]

ENGINES = ("ray", "serial")
PathLike = Union[str, Path]


def grid(**axes) -> List[Dict[str, Any]]:
    """The Cartesian product of the axes, as a list of configs (the last axis varies fastest).

    Parameters
    ----------
    **axes
        ``name=values``: a list, tuple, range or NumPy array is an axis; any other value (a
        number, a string, ``None``, a dict) is held fixed in every config.

    Returns
    -------
    list of dict
        One dict per point of the grid; lists of configs concatenate with ``+``.

    Examples
    --------
    >>> grid(lr=0.1, width=[16, 32], seed=range(2))  # doctest: +NORMALIZE_WHITESPACE
    [{'lr': 0.1, 'width': 16, 'seed': 0}, {'lr': 0.1, 'width': 16, 'seed': 1},
     {'lr': 0.1, 'width': 32, 'seed': 0}, {'lr': 0.1, 'width': 32, 'seed': 1}]
    """
    names = list(axes)
    values = []
    for name in names:
        v = axes[name]
        if isinstance(v, (list, tuple, range)) or type(v).__name__ == "ndarray":
            v = list(v)
            if not v:
                raise ValueError(f"grid axis {name!r} is empty")
        else:
            v = [v]
        values.append(v)
    return [dict(zip(names, point)) for point in itertools.product(*values)]


def _check_grid(fn: Callable, configs) -> List[dict]:
    """The configs as canonical dicts, checked against ``fn``'s signature, before anything
    runs: unknown or missing arguments, values that are not JSON, repeated configs."""
    if isinstance(configs, dict) or not isinstance(configs, Iterable):
        raise TypeError(f"configs must be a list of dicts or dataclass instances, got "
                        f"{type(configs).__name__}")
    configs = [canonical_config(c, f"configs[{i}]") for i, c in enumerate(configs)]
    if not configs:
        raise ValueError("configs is empty: nothing to run")
    params = inspect.signature(fn).parameters.values()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = {p.name for p in params if p.name in named and p.default is p.empty}
    seen = {}
    for i, config in enumerate(configs):
        unknown = sorted(set(config) - named) if not takes_any else []
        if unknown:
            raise ValueError(f"configs[{i}] has unknown key(s) {unknown}: "
                             f"{fn.__qualname__} accepts {sorted(named)}")
        missing = sorted(required - set(config))
        if missing:
            raise ValueError(f"configs[{i}] lacks {missing}, which {fn.__qualname__} requires")
        text = repr(sorted(config.items()))
        if text in seen:
            raise ValueError(f"configs[{i}] repeats configs[{seen[text]}] ({config})")
        seen[text] = i
    return configs


def _check_resources(engine: str, num_cpus: float, num_gpus: float, ray_init: dict) -> int:
    """Refuse what could never be scheduled; return how many runs can run at once."""
    import torch

    if num_gpus > 0 and engine == "serial" and not torch.cuda.is_available():
        raise ValueError(f"num_gpus={num_gpus:g} but CUDA is not available here: "
                         "use num_gpus=0 on a CPU-only machine")
    if engine == "serial":
        return 1
    from ._engines import import_ray, init_ray

    ray = import_ray()
    if num_gpus > 0 and not ray.is_initialized() and not os.environ.get("RAY_ADDRESS") \
            and not torch.cuda.is_available():
        raise ValueError(f"num_gpus={num_gpus:g} but CUDA is not available on this machine "
                         "and no Ray cluster is set ($RAY_ADDRESS): use num_gpus=0")
    resources = init_ray(ray, ray_init)
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if num_gpus > gpus:
        raise ValueError(f"num_gpus={num_gpus:g} per run but the Ray cluster has {gpus:g} GPU(s):"
                         " such a run would wait forever; use num_gpus=0")
    if num_cpus > cpus:
        raise ValueError(f"num_cpus={num_cpus:g} per run but the Ray cluster has {cpus:g} CPU(s)")
    slots = math.floor(cpus / num_cpus) if num_cpus > 0 else int(cpus)
    if num_gpus > 0:
        slots = min(slots, math.floor(gpus / num_gpus))
    return max(1, slots)


def run(fn: Callable, configs, results: PathLike, *, engine: str = "ray", num_cpus: float = 1,
        num_gpus: float = 0, max_retries: int = 2, max_calls: int = 0, force: bool = False,
        progress: bool = True, ray_init: Optional[dict] = None, provenance: bool = False):
    """Run ``fn(**config)`` for every config not yet stored in ``results``; return the table of
    all of them.

    Parameters
    ----------
    fn : callable
        The experiment function: keyword arguments in, a dict of summary values out. Its
        ``module.qualname`` is part of every run's key.
    configs : list of dict or dataclass instances
        The grid (see :func:`grid`). Checked before anything runs: every key must be an
        argument of ``fn``, every required argument given, every value JSON (None, bool, int,
        finite float, str, lists/dicts of these), and no config repeated.
    results : str or Path
        Directory of the stored runs (created if needed), one JSON file per run.
    engine : {"ray", "serial"}, optional
        Ray tasks (default) or a loop in this process.
    num_cpus : float, optional
        CPUs per run (default 1, > 0): the Ray resource request and the torch thread count.
    num_gpus : float, optional
        GPUs per run, >= 0, fractional allowed (default 0); refused where no GPU is available.
    max_retries : int, optional
        Ray's retries of a run whose worker died (default 2, >= 0). Exceptions are not retried.
    max_calls : int, optional
        Runs per Ray worker before it is replaced (default 0: never, workers keep torch
        imported).
    force : bool, optional
        Recompute stored runs too (default ``False``).
    progress : bool, optional
        Show a progress bar with the running and failed runs and the time left (default True).
    ray_init : dict, optional
        Extra arguments of :func:`ray.init` when this call starts Ray.
    provenance : bool, optional
        Add the provenance fields of the runs as columns ``prov.<field>`` (default ``False``).

    Returns
    -------
    pandas.DataFrame
        One row per config, in the order given: the config's keys, the result's keys (nested
        dicts flattened as ``"a.b"``; a key also in the config gets a ``result.`` prefix),
        ``status`` (``"ok"``/``"failed"``), ``error`` (the last line of the traceback),
        ``wall_s`` and ``key``.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    engine = check_choice("engine", engine, ENGINES)
    num_cpus = check_real("num_cpus", num_cpus, low=0, low_open=True)
    num_gpus = check_real("num_gpus", num_gpus, low=0)
    max_retries = check_int("max_retries", max_retries, low=0)
    max_calls = check_int("max_calls", max_calls, low=0)
    force, progress = check_bool("force", force), check_bool("progress", progress)
    if ray_init is not None and not isinstance(ray_init, dict):
        raise TypeError(f"ray_init must be a dict of ray.init arguments, got "
                        f"{type(ray_init).__name__}")
    configs = _check_grid(fn, configs)
    function = function_name(fn)
    directory = Path(results)
    keys = [run_key(function, c) for c in configs]
    paths = [record_path(directory, function, k) for k in keys]

    todo, corrupt = [], []
    for key, config, path in zip(keys, configs, paths):
        if not force and path.exists():
            try:
                if read_record(path, function, config)["status"] == "ok":
                    continue
            except CorruptRecord as err:
                corrupt.append(str(err))
        todo.append((key, config, path))
    if corrupt:
        warnings.warn(f"{len(corrupt)} stored run(s) are corrupt and are recomputed:\n  "
                      + "\n  ".join(corrupt), RuntimeWarning, stacklevel=2)

    if todo:
        slots = _check_resources(engine, num_cpus, num_gpus, ray_init or {})
        directory.mkdir(parents=True, exist_ok=True)
        from tqdm.auto import tqdm

        from . import _engines

        stored = len(configs) - len(todo)
        with tqdm(total=len(todo), desc=f"{fn.__name__} ({stored} stored)", unit="run",
                  disable=not progress, dynamic_ncols=True) as bar:
            if engine == "serial":
                _engines.run_serial(fn, function, todo, num_cpus, bar)
            else:
                _engines.run_ray(fn, function, todo, num_cpus, num_gpus, max_retries,
                                 max_calls, slots, bar)
    records = [read_record(p, function, c) for p, c in zip(paths, configs)]
    for record, config in zip(records, configs):
        record["config"] = config        # equal; the grid's key order for the table's columns
    return _frame(records, provenance=provenance)


def load(results: PathLike, function: Optional[Union[str, Callable]] = None,
         provenance: bool = False):
    """The table of every valid run stored in ``results`` (e.g. a committed result tier).

    Corrupt files are skipped with a :class:`RuntimeWarning` naming them, never read.

    Parameters
    ----------
    results : str or Path
        Directory of stored runs.
    function : str or callable, optional
        Only the runs of this experiment function (its ``module.qualname``, or the function).
    provenance : bool, optional
        Add the provenance fields as columns ``prov.<field>`` (default ``False``).

    Returns
    -------
    pandas.DataFrame
        One row per run, as :func:`run` returns, sorted by function and key; empty when the
        directory holds no runs.
    """
    directory = Path(results)
    if not directory.is_dir():
        raise FileNotFoundError(f"results={str(results)!r} is not a directory")
    if callable(function):
        function = function_name(function)
    records, corrupt = [], []
    for path in sorted(directory.glob("*.json")):
        try:
            record = read_record(path)
        except CorruptRecord as err:
            corrupt.append(str(err))
            continue
        if function is None or record["function"] == function:
            records.append(record)
    if corrupt:
        warnings.warn(f"{len(corrupt)} stored run(s) are corrupt and were skipped:\n  "
                      + "\n  ".join(corrupt), RuntimeWarning, stacklevel=2)
    records.sort(key=lambda r: (r["function"], r["key"]))
    return _frame(records, provenance=provenance)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _frame(records: List[dict], provenance: bool = False):
    import pandas as pd

    rows = []
    for r in records:
        row = dict(r["config"])
        for k, v in _flatten(r["result"] or {}).items():
            row[f"result.{k}" if k in r["config"] else k] = v
        error = (r["error"] or "").strip().splitlines()
        row.update(status=r["status"], error=error[-1] if error else None,
                   wall_s=r["provenance"].get("wall_s"), key=r["key"])
        if provenance:
            row.update({f"prov.{k}": v for k, v in r["provenance"].items()})
        rows.append(row)
    return pd.DataFrame(rows)
