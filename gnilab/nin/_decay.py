"""Exponential fits of a decaying series, with standard errors: the timescales of the NIW, the
loss and the linear toy (paper §4, App. D)."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .._common.checks import check_bool

# exponential fits
# =============================================================================================


@dataclass(frozen=True)
class DecayFit:
    r"""A fit :math:`y = C + A\,e^{-(t - t_0)/\tau}` by least squares.

    ``tau`` and ``tau_stderr`` (in the units of t; the standard error by the delta method from
    that of the rate), ``rate`` = 1/τ and ``rate_stderr`` (from the least-squares covariance
    scaled by the residual variance), ``amplitude`` A, ``offset`` C (0 when not fitted),
    ``n`` points used; ``reason`` is empty for a valid fit, else says why every number is NaN.
    Used for the timescales of the NIW and the loss (paper §4, App. D).

    Attributes
    ----------
    tau : float
        The timescale τ = 1/rate, in the units of t (e.g. training steps).
    tau_stderr : float
        Standard error of τ, ``rate_stderr / rate**2`` (delta method).
    rate : float
        The decay rate 1/τ, per unit of t.
    rate_stderr : float
        Standard error of the rate, from the least-squares covariance scaled by the residual
        variance.
    amplitude : float
        A, the value of :math:`y - C` at the first time :math:`t_0` (> 0).
    offset : float
        The fitted floor C (0 when ``offset=False``).
    n : int
        Number of points of the series.
    reason : str
        Empty for a valid fit; else why it failed (then every float above is NaN).
    """

    tau: float
    tau_stderr: float
    rate: float
    rate_stderr: float
    amplitude: float
    offset: float
    n: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def _failed(reason: str, n: int) -> DecayFit:
    nan = math.nan
    return DecayFit(nan, nan, nan, nan, nan, nan, n, reason)


def fit_decay(t, y, *, offset: bool = True) -> DecayFit:
    r"""Fit an exponential decay to a series and give its timescale ± standard error.

    The model is :math:`y = C + A\,e^{-(t - t_0)/\tau}`, fitted by nonlinear least squares; it
    measures the decay timescales of the NIW and of the loss (paper §4, App. D), e.g. the NIW
    decay of Eq. (N3).

    Parameters
    ----------
    t, y : 1-D arrays or tensors of the same length
        Times (e.g. training steps) and values (an NIW norm, a loss).
    offset : bool
        Fit a constant floor C (a test loss decays to its plateau, an NIW norm to the part of
        θ the local Hessian does not see); ``False`` fits :math:`y = A e^{-(t-t_0)/\tau}`.
        :math:`t_0` is the first time of the series.

    Returns
    -------
    DecayFit
        NaN everywhere, with ``reason`` set, when y has non-finite values, there are too few
        points, the series does not decay (fitted rate <= 0, or it rises towards its limit),
        or the fit fails or leaves the rate unidentified (a flat or too short a series).
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    offset = check_bool("offset", offset)
    t = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    if t.ndim != 1 or y.shape != t.shape:
        raise ValueError(f"t and y must be 1-D of the same length, got shapes {t.shape} and "
                         f"{y.shape}")
    n = len(y)
    bad = int((~np.isfinite(y)).sum() + (~np.isfinite(t)).sum())
    if bad:
        return _failed(f"non-finite values ({bad} of {n})", n)
    need = 4 if offset else 3
    if n < need:
        return _failed(f"too few points ({n}; the fit needs {need})", n)
    t0, span = t[0], float(t.max() - t.min())
    s = t - t0
    if span <= 0 or np.ptp(y) == 0:
        return _failed("does not decay (constant series)", n)
    # start: the log-linear fit of y - C0 against t, C0 just below the series' minimum
    c0 = float(y.min() - 0.05 * np.ptp(y)) if offset else 0.0
    pos = y - c0 > 0
    if pos.sum() >= 2 and np.ptp(s[pos]) > 0:
        slope, icpt = np.polyfit(s[pos], np.log(y[pos] - c0), 1)
        k0, a0 = max(-slope, 1.0 / span), math.exp(icpt)
    else:
        k0, a0 = 1.0 / span, float(y[0] - c0)
    scale = 1.0 / span                           # fit k in units of 1/span: better conditioned
    if offset:
        def model(s_, a, k, c):
            return c + a * np.exp(-k * scale * s_)
        p0 = (a0, k0 / scale, c0)
    else:
        def model(s_, a, k):
            return a * np.exp(-k * scale * s_)
        p0 = (a0, k0 / scale)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            with np.errstate(over="ignore", invalid="ignore"):
                popt, pcov = curve_fit(model, s, y, p0=p0, maxfev=4000)
    except (RuntimeError, OptimizeWarning, ValueError) as exc:
        return _failed(f"fit failed: {str(exc).splitlines()[0]}", n)
    a, k = popt[0], popt[1] * scale
    k_se = math.sqrt(pcov[1, 1]) * scale if np.isfinite(pcov[1, 1]) and pcov[1, 1] >= 0 \
        else math.nan
    if not (math.isfinite(k) and math.isfinite(a)):
        return _failed("fit failed (non-finite parameters)", n)
    if k <= 0:
        return _failed("does not decay (fitted rate <= 0)", n)
    if a <= 0:
        return _failed("does not decay (it rises towards its limit)", n)
    if not math.isfinite(k_se):
        return _failed("rate not identified (flat or too short a series)", n)
    c = float(popt[2]) if offset else 0.0
    return DecayFit(1.0 / k, k_se / k ** 2, k, k_se, float(a), c, n)


def decay_timescales(frame: pd.DataFrame, columns: Sequence[str] = ("niw_norm", "loss",
                                                                     "test_loss"), *,
                     offset: bool = True, start: float = 0, by: Optional[str] = "layer"
                     ) -> pd.DataFrame:
    """:func:`fit_decay` of each ``column`` of ``frame`` against its ``step`` column, from
    ``step >= start`` on (e.g. ``result.records`` of :func:`train_nin`, or a history).

    Returns one row per column (and per value of ``by`` when ``frame`` has that column, e.g.
    the NIN ``layer``) with ``quantity``, ``tau``, ``tau_stderr``, ``rate``, ``rate_stderr``,
    ``amplitude``, ``offset``, ``n`` and ``reason``; a missing column gives a row with reason
    "no such column". The measured timescales of paper §4 and App. D (to compare with the
    rate of Eq. (N3)).

    Parameters
    ----------
    frame : pandas.DataFrame
        A table with a ``step`` column and the columns to fit.
    columns : sequence of str
        The columns to fit against ``step`` (default ``niw_norm``, ``loss``, ``test_loss``).
    offset : bool
        Fit a constant floor, as in :func:`fit_decay`.
    start : float
        Use only the rows with ``step >= start``.
    by : str, optional
        Fit each group of rows with the same value of this column separately (default
        ``"layer"``; ignored when ``frame`` has no such column; ``None``: no grouping).

    Returns
    -------
    pandas.DataFrame
        One row per group and column: the group's ``by`` value (when grouped), ``quantity``
        (the column name) and the fields of :class:`DecayFit`.
    """
    if not isinstance(frame, pd.DataFrame) or "step" not in frame:
        raise TypeError("frame must be a pandas DataFrame with a 'step' column")
    groups = frame.groupby(by, sort=False) if by is not None and by in frame else [(None, frame)]
    rows = []
    for key, part in groups:
        part = part[part.step >= start]
        for col in columns:
            if col not in part:
                fit = _failed("no such column", 0)
            else:
                sub = part[["step", col]]
                fit = fit_decay(sub.step.to_numpy(), sub[col].to_numpy(), offset=offset)
            row = {"quantity": col, **fit.__dict__}
            if key is not None:
                row = {by: key, **row}
            rows.append(row)
    return pd.DataFrame(rows)


# =============================================================================================
