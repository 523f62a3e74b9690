"""One stored result per run: its key, its file (written atomically, with a checksum) and its
provenance.

A run is the pair (experiment function, config). Its **key** is the SHA-256 of the canonical
JSON of ``{"function": "module.qualname", "config": config}`` (keys sorted, no whitespace), cut
to 20 hex digits; its file is ``<function name>-<key>.json`` in the results directory. The file
holds one JSON object::

    {"schema": "gnilab.sweep/1", "key": ..., "function": ..., "config": {...},
     "status": "ok" | "failed", "result": {...} | null, "error": "traceback" | null,
     "provenance": {"gnilab": ..., "git_commit": ..., "torch": ..., "device": ..., "seed": ...,
                    "wall_s": ..., "host": ..., ...},
     "sha256": <SHA-256 of the canonical JSON of all the other fields>}

A file that does not parse, lacks a field, holds another run than its name (or the sweep)
says, or whose checksum does not match is *corrupt*: :func:`read_record` says so and the
sweep recomputes the run.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

SCHEMA = "gnilab.sweep/1"
KEY_DIGITS = 20
_FIELDS = ("schema", "key", "function", "config", "status", "result", "error", "provenance")
_STATUSES = ("ok", "failed")


class CorruptRecord(ValueError):
    """A stored result file that cannot be trusted (unparsable, incomplete, or tampered)."""


def function_name(fn) -> str:
    """``module.qualname`` of an experiment function: the name its results are keyed by."""
    return f"{fn.__module__}.{fn.__qualname__}"


def canonical_config(config, where: str = "config") -> dict:
    """A config (dict or dataclass instance) as a plain dict of JSON values, checked.

    Keys must be strings; values ``None``, bools, ints, finite floats, strings, or lists,
    tuples and dicts of these (tuples become lists; NumPy scalars become Python numbers).
    Anything else raises :class:`TypeError` naming ``where`` and the key.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise TypeError(f"{where} must be a dict or a dataclass instance, got "
                        f"{type(config).__name__}")
    return {_check_key(k, where): _plain(v, f"{where}[{k!r}]") for k, v in config.items()}


def _check_key(k, where: str) -> str:
    if not isinstance(k, str):
        raise TypeError(f"{where} has a non-string key {k!r} ({type(k).__name__}); config keys "
                        "are the experiment function's argument names")
    return k


def _plain(v, where: str):
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{where} must be finite, got {v!r}")
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        return {_check_key(k, where): _plain(x, f"{where}[{k!r}]") for k, x in v.items()}
    raise TypeError(f"{where} is not JSON-serialisable: {v!r} ({type(v).__name__}); use None, "
                    "bool, int, float, str, or lists/dicts of these")


def plain_result(value, where: str = "result"):
    """An experiment's return value as JSON values: tensors and NumPy arrays become numbers or
    (nested) lists; NaN and infinities are kept (a diverged run is a result too)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    elif isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_result(x, f"{where}[{i}]") for i, x in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): plain_result(x, f"{where}[{k!r}]") for k, x in value.items()}
    raise TypeError(f"{where} is not JSON-serialisable: {type(value).__name__}; an experiment "
                    "function returns a dict of numbers, strings, lists, tensors or arrays")


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def run_key(function: str, config: dict) -> str:
    """The key of a run: SHA-256 of the canonical JSON of its function name and config."""
    text = _dumps({"function": function, "config": config})
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_DIGITS]


def record_path(directory: Path, function: str, key: str) -> Path:
    """``directory/<short function name>-<key>.json``."""
    return Path(directory) / f"{function.rsplit('.', 1)[-1]}-{key}.json"


def _checksum(record: dict) -> str:
    return hashlib.sha256(_dumps({k: record[k] for k in _FIELDS}).encode()).hexdigest()


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` (with its checksum) to ``path`` atomically: a temporary file in the
    same directory, flushed to disk, then renamed over ``path``. Readers see the old file or
    the new one, never half of one; of two concurrent writers of one run, one file remains."""
    record = {k: record[k] for k in _FIELDS}
    record["sha256"] = _checksum(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, indent=1, allow_nan=True))
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_record(path: Path, function: Optional[str] = None, config: Optional[dict] = None) -> dict:
    """Read and validate one stored run; raise :class:`CorruptRecord` if it cannot be trusted
    (or :class:`FileNotFoundError` if it is missing). With ``function``/``config`` given, the
    record must be of that run."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptRecord(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict) or any(k not in record for k in (*_FIELDS, "sha256")):
        raise CorruptRecord(f"{path}: missing fields (schema {SCHEMA} expected)")
    if record["schema"] != SCHEMA:
        raise CorruptRecord(f"{path}: schema {record['schema']!r}, expected {SCHEMA!r}")
    if record["sha256"] != _checksum(record):
        raise CorruptRecord(f"{path}: checksum mismatch (the file was altered or truncated)")
    if record["status"] not in _STATUSES:
        raise CorruptRecord(f"{path}: status {record['status']!r}")
    if record["key"] != run_key(record["function"], record["config"]):
        raise CorruptRecord(f"{path}: the key does not match the function and config inside")
    if Path(path).name != record_path(Path(path).parent, record["function"], record["key"]).name:
        raise CorruptRecord(f"{path}: holds run {record['key']}, not the one its name says")
    if function is not None and (record["function"], record["config"]) != (function, config):
        raise CorruptRecord(f"{path}: holds another run ({record['function']}, "
                            f"{record['config']})")
    return record


_GIT_COMMIT: dict = {}


def git_commit() -> Optional[str]:
    """The git commit of the gnilab checkout (``+dirty`` when it has uncommitted changes), or
    ``None`` outside a git checkout; computed once per process."""
    if "value" not in _GIT_COMMIT:
        root = Path(__file__).resolve().parents[2]
        value = None
        try:
            out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], text=True,
                                 capture_output=True, timeout=10)
            if out.returncode == 0:
                value = out.stdout.strip()
                dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                        "--untracked-files=no", "--", "gnilab"], text=True,
                                       capture_output=True, timeout=10)
                if dirty.returncode == 0 and dirty.stdout.strip():
                    value += "+dirty"
        except (OSError, subprocess.SubprocessError):
            value = None
        _GIT_COMMIT["value"] = value
    return _GIT_COMMIT["value"]


def provenance(seed: Any, wall_s: float, started: str, engine: str) -> dict:
    """Where, when and with what a run was computed."""
    from .. import __version__
    from ..config import get_device

    device = get_device()
    return {
        "gnilab": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": str(device) if device.type != "cuda"
        else f"{device} ({torch.cuda.get_device_name(device)})",
        "threads": torch.get_num_threads(),
        "seed": seed,
        "wall_s": round(wall_s, 4),
        "started": started,
        "host": socket.gethostname(),
        "engine": engine,
    }


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
