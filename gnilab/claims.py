"""The quantitative claims of a chapter, checked with their margins and recorded.

A chapter states each claim of its paper as a comparison between a *measured* number and a
*threshold*, with a *margin* derived from the spread of the measurement (a standard error over
seeds, a binomial or bootstrap interval, a Monte Carlo error)::

    claims.check("SGD ends flatter than GD", sharp_sgd, "<", sharp_gd, margin=3 * se)

passes when the measured value clears the threshold by more than the margin:

=========  ==========================================
``op``     passes when
=========  ==========================================
``">"``    ``measured - margin > threshold``
``">="``   ``measured - margin >= threshold``
``"<"``    ``measured + margin < threshold``
``"<="``   ``measured + margin <= threshold``
``"=="``   ``|measured - threshold| <= margin``
=========  ==========================================

So a claim never passes by a distance smaller than its own measured uncertainty. Where the
measured number is already standardised (a z-score, a count of failures) the margin is ``0``
and the threshold carries the confidence level (``|z| < 4``).

``measured`` (and ``margin``) may be arrays: the claim must hold for every element, and the
record shows the worst one.

Every check prints one line (measured value, threshold, margin and the *slack*, the distance
by which it cleared, negative when it failed) and returns a :class:`Claim`. When the
environment variable ``GNILAB_CLAIMS_LOG`` names a file, the claim is appended to it as a JSON
line (with the chapter from ``GNILAB_CHAPTER``, the base seed, the scale and the notebook cell),
which is how ``benchmarks/robustness.py`` builds its table. A failed claim raises
:class:`AssertionError`, unless ``GNILAB_CLAIMS=record``, where it is only recorded and
printed (so that one run reports every claim of a chapter).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from ._common.checks import check_choice
from .config import get_scale, get_seed

__all__ = ["Claim", "check", "mean_se", "OPS"]

OPS = ("<", "<=", ">", ">=", "==")


@dataclass(frozen=True)
class Claim:
    """One checked claim: ``measured op threshold`` with ``margin`` (the worst element when
    arrays were given). ``slack`` is how far it cleared (``< 0``: it failed).

    Attributes
    ----------
    name : str
        What is claimed, in words.
    measured : float
        The measured value (the worst element when an array was checked).
    op : str
        The comparison, one of :data:`OPS`: ``"<"``, ``"<="``, ``">"``, ``">="``, ``"=="``.
    threshold : float
        The value the measurement is compared with.
    margin : float
        The uncertainty the measurement had to clear (``>= 0``), for the worst element.
    slack : float
        Distance by which the claim cleared its margin; negative (or ``-inf`` for NaN) when
        it failed.
    passed : bool
        Whether the claim held (``slack > 0`` for strict ops, ``slack >= 0`` otherwise).
    """
    name: str
    measured: float
    op: str
    threshold: float
    margin: float
    slack: float
    passed: bool

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗ FAILED"
        how = (f"|measured - {self.threshold:.4g}| <= margin" if self.op == "=="
               else f"{self.op} {self.threshold:.4g}")
        return (f"{mark} {self.name}: measured {self.measured:.4g} (margin {self.margin:.3g}), "
                f"claim {how}; slack {self.slack:.3g}")


def _as_array(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got "
                        f"{type(value).__name__}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one value, got an empty array")
    return arr


def _slack(measured: np.ndarray, op: str, threshold: float, margin: np.ndarray) -> np.ndarray:
    if op in (">", ">="):
        return measured - margin - threshold
    if op in ("<", "<="):
        return threshold - (measured + margin)
    return margin - np.abs(measured - threshold)


def _cell() -> Optional[int]:
    """The execution count of the notebook cell running this check (None outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    shell = get_ipython()
    # while a cell runs, IPython's counter already holds the next cell's number
    return None if shell is None else int(shell.execution_count) - 1


def check(name: str, measured, op: str, threshold, margin=0.0) -> Claim:
    """Check the claim ``measured op threshold`` with ``margin``, print it and record it.

    Parameters
    ----------
    name : str
        What is claimed, in words a reader understands ("SGD flatter than GD, seed median").
    measured : float or array
        The measured value(s); NaN never passes.
    op : {"<", "<=", ">", ">=", "=="}
        The comparison; see the table in the module docstring for when each passes.
    threshold : float
        The value the claim is compared with (another method's value, 0 for a sign, ...).
    margin : float or array, >= 0
        The uncertainty the measurement must clear (same shape as ``measured`` or a scalar).

    Returns
    -------
    Claim
        The record of the check, at the worst element when arrays were given.

    Raises
    ------
    AssertionError
        When the claim fails (unless ``$GNILAB_CLAIMS`` is ``record``).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    op = check_choice("op", op, OPS)
    values = _as_array("measured", measured)
    margins = _as_array("margin", margin)
    if margins.size not in (1, values.size):
        raise ValueError(f"margin must be a scalar or hold one value per measured value "
                         f"({values.size}), got {margins.size}")
    margins = np.broadcast_to(margins, values.shape)
    if np.isnan(margins).any() or (margins < 0).any():
        raise ValueError(f"margin must be >= 0 (and not NaN), got {margins.min()!r}")
    thr = _as_array("threshold", threshold)
    thr = float(thr.item()) if thr.size == 1 else None
    if thr is None or math.isnan(thr):
        raise ValueError(f"threshold must be one number (not NaN), got {threshold!r}")
    slack = _slack(values, op, thr, margins)
    slack = np.where(np.isnan(slack), -np.inf, slack)
    worst = int(np.argmin(slack))
    s = float(slack[worst])
    passed = bool(s > 0 if op in ("<", ">") else s >= 0)
    claim = Claim(name, float(values[worst]), op, thr, float(margins[worst]), s, passed)
    print(claim)
    log = os.environ.get("GNILAB_CLAIMS_LOG")
    if log:
        row = dict(asdict(claim), chapter=os.environ.get("GNILAB_CHAPTER", ""), seed=get_seed(),
                   scale=get_scale(), cell=_cell(), elements=int(values.size))
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    if not passed and os.environ.get("GNILAB_CLAIMS", "").strip().lower() != "record":
        raise AssertionError(str(claim))
    return claim


def mean_se(values) -> tuple:
    """Mean and standard error (``std(ddof=1) / sqrt(n)``) of the finite ``values``, e.g. a
    quantity over seeds; the standard error is ``inf`` with fewer than two values.

    Parameters
    ----------
    values : float or array-like or torch.Tensor
        The values (any shape, flattened); NaN and infinite entries are dropped.

    Returns
    -------
    tuple of (float, float)
        ``(mean, standard_error)``; ``(nan, inf)`` when no finite value is left.
    """
    arr = _as_array("values", values)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("inf")
    if arr.size < 2:
        return float(arr.mean()), float("inf")
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))
