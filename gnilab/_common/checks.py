"""Argument checks shared by every module of the package: one rule, one message shape.

Rules
-----
* A value of the wrong **type** raises :class:`TypeError`: a float, a bool or a str where an
  integer is needed; anything but a real number where a number is needed; anything but a bool
  where a flag is needed.
* A value of the right type but a wrong **value** raises :class:`ValueError`: out of range,
  NaN, an infinity where a finite number is needed, a value that is not among the choices.
* Every message names the argument, shows the value received and states what is allowed::

      n_paths must be an integer >= 1, got 0
      alpha must be a number in (0, 2], got 2.5
      steps must be an integer >= 1, got 2.5 (float)

  (a type error adds the type received).

Ranges are written ``[low, high]`` (closed), ``(low, high]`` (open at ``low``) and so on, or
``>= low`` / ``< high`` when only one bound is given.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["check_int", "check_real", "check_bool", "check_choice", "check_tensor_range",
           "check_generator", "check_finite_module", "check_finite_data", "finite_parameters"]

_SHOW_AT_MOST = 4   # offending values listed by check_tensor_range


def _show(value) -> str:
    """``repr`` of ``value``, with numpy scalars as plain Python numbers and long reprs cut."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_error(name: str, allowed: str, value) -> TypeError:
    return TypeError(f"{name} must be {allowed}, got {_show(value)} ({type(value).__name__})")


def _num(bound) -> str:
    """A bound as written in a message: integers exactly, floats in ``%g`` form."""
    return str(int(bound)) if isinstance(bound, (int, np.integer)) else f"{float(bound):g}"


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    """``"in (0, 2]"``, ``">= 1"``, ``"< 5"`` or ``""`` (no bounds)."""
    if low is not None and high is not None:
        return (f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}"
                f"{')' if high_open else ']'}")
    if low is not None:
        return f"{'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_num(high)}"
    return ""


def _in_range(x, low, high, low_open: bool, high_open: bool):
    """Elementwise ``low <(=) x <(=) high`` for a float or a tensor (NaN is never in range)."""
    ok = x == x   # False at NaN
    if low is not None:
        ok = ok & ((x > low) if low_open else (x >= low))
    if high is not None:
        ok = ok & ((x < high) if high_open else (x <= high))
    return ok


def _bounded(low, high) -> bool:
    """Whether ``[low, high]`` already excludes the infinities."""
    return all(b is not None and math.isfinite(b) for b in (low, high))


def check_int(name: str, value, low=None, high=None) -> int:
    """An integer argument in ``[low, high]`` (bounds inclusive, ``None`` for none).

    Parameters
    ----------
    name : str
        The argument's name, used in the message.
    value
        What was passed: a Python ``int`` or a numpy integer.
    low, high : int, optional
        Smallest and largest allowed value.

    Returns
    -------
    int
        ``value`` as a Python ``int``.

    Raises
    ------
    TypeError
        ``value`` is not an integer (a ``bool``, ``float`` or ``str`` included).
    ValueError
        ``value`` is outside ``[low, high]``, e.g. "n_paths must be an integer >= 1, got 0".
    """
    allowed = f"an integer {_range_text(low, high, False, False)}".rstrip()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _type_error(name, allowed, value)
    if not _in_range(value, low, high, False, False):
        raise ValueError(f"{name} must be {allowed}, got {_show(value)}")
    return int(value)


def check_real(name: str, value, low=None, high=None, low_open: bool = False,
               high_open: bool = False, finite: bool = True) -> float:
    """A real scalar argument in the interval from ``low`` to ``high``.

    Parameters
    ----------
    name : str
        The argument's name, used in the message.
    value
        What was passed: a Python or numpy real number (ints included, bools not) or a 0-d
        real tensor.
    low, high : float, optional
        Bounds (``None``: unbounded on that side).
    low_open, high_open : bool
        Exclude the bound itself (``(low, ...`` rather than ``[low, ...``).
    finite : bool
        Reject ``+-inf`` (NaN is always rejected).

    Returns
    -------
    float
        ``value`` as a Python ``float``.

    Raises
    ------
    TypeError
        ``value`` is not a real number (a ``bool``, ``str``, complex number, sequence, ...).
    ValueError
        ``value`` is NaN, infinite with ``finite=True``, or out of range, e.g.
        "alpha must be a number in (0, 2], got 2.5".
    """
    rng = _range_text(low, high, low_open, high_open)
    kind = ("a finite number" if finite and not _bounded(low, high)
            else "a number" if rng else "a non-NaN number")
    allowed = f"{kind} {rng}".rstrip()
    is_tensor = (isinstance(value, torch.Tensor) and value.dim() == 0
                 and not value.is_complex() and value.dtype != torch.bool)
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, numbers.Real) or is_tensor):
        raise _type_error(name, allowed, value)
    x = float(value)
    if not _in_range(x, low, high, low_open, high_open) or (finite and math.isinf(x)):
        raise ValueError(f"{name} must be {allowed}, got {_show(x if is_tensor else value)}")
    return x


def check_bool(name: str, value) -> bool:
    """A flag: a Python or numpy bool (``0``/``1`` are not flags).

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        ``value`` is not a bool.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise _type_error(name, "a bool", value)
    return bool(value)


def check_choice(name: str, value, choices):
    """One of a fixed set of values (names such as ``"train"``/``"test"``).

    A value outside the set is a wrong *value* whatever its type, so it raises ValueError.

    Parameters
    ----------
    name : str
        The argument's name, used in the message.
    value
        What was passed.
    choices : iterable
        The allowed values, in the order the message lists them.

    Returns
    -------
    ``value`` unchanged.

    Raises
    ------
    ValueError
        ``value`` is not among ``choices``, e.g.
        "split must be one of 'train', 'test', got 'val'".
    """
    choices = tuple(choices)
    if not any(value is c or (isinstance(value, type(c)) and value == c) for c in choices):
        listed = ", ".join(_show(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {_show(value)}")
    return value


def check_tensor_range(name: str, t, low=None, high=None, low_open: bool = False,
                       high_open: bool = False, finite: bool = True):
    """Every entry of a tensor in the interval from ``low`` to ``high`` (the array form of
    :func:`check_real`); one device synchronisation.

    Parameters
    ----------
    name : str
        The argument's name, used in the message.
    t : torch.Tensor
        Real tensor of any shape, on any device (array-likes are converted with
        ``torch.as_tensor``).
    low, high, low_open, high_open, finite
        As in :func:`check_real`: NaN is always rejected, ``+-inf`` with ``finite=True``.

    Returns
    -------
    torch.Tensor
        ``t`` (converted if it was not a tensor).

    Raises
    ------
    TypeError
        ``t`` is complex or boolean.
    ValueError
        Some entry is out of range; the message shows up to four of the offending values,
        e.g. "alpha must be in (0, 2], got 2.5, 3, nan".
    """
    t = t if isinstance(t, torch.Tensor) else torch.as_tensor(t)
    rng = _range_text(low, high, low_open, high_open)
    clauses = ["finite"] if finite and not _bounded(low, high) else []
    allowed = " and ".join(clauses + ([rng] if rng else [])) or "non-NaN"
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be a real tensor with values {allowed}, got dtype {t.dtype}")
    ok = _in_range(t, low, high, low_open, high_open)
    if finite:
        ok = ok & torch.isfinite(t)
    if not bool(ok.all()):
        bad = t[~ok].detach().cpu().reshape(-1)
        shown = ", ".join(f"{float(v):g}" for v in bad[:_SHOW_AT_MOST])
        more = ", ..." if bad.numel() > _SHOW_AT_MOST else ""
        raise ValueError(f"{name} must be {allowed}, got {shown}{more}")
    return t


def as_float64(x) -> torch.Tensor:
    """``x`` as a float64 tensor: a tensor is cast (and detached), anything else (a float, a
    list, an array) is converted to float64 directly, so that Python floats do not pass through
    float32, torch's default dtype, and lose half of their digits."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def check_generator(name: str, value, seeds: bool = False, cpu_only: bool = False):
    """A random-number source argument: ``None`` (torch's global generator) or a
    ``torch.Generator`` (on the CPU only, with ``cpu_only``); with ``seeds``, an int seed is
    accepted too and turned into a fresh CPU generator. TypeError for anything else."""
    if value is None:
        return None
    if isinstance(value, torch.Generator):
        if cpu_only and value.device.type != "cpu":
            raise ValueError(f"{name} must be a CPU torch.Generator (draws are made on the CPU "
                             f"and then moved), got one on {value.device}")
        return value
    if seeds and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return torch.Generator().manual_seed(int(value))
    allowed = "None, an int seed or a torch.Generator" if seeds else "a torch.Generator or None"
    raise TypeError(f"{name} must be {allowed}, got {type(value).__name__}")



def check_finite_module(name: str, module):
    """Every parameter of ``module`` (an ``nn.Module``) finite: one synchronisation per device.

    A NaN or an infinity here is almost always a diverged run reaching an analysis function,
    which would otherwise return NaN silently; the message names the first offending tensors.
    """
    if finite_parameters(module):
        return module
    bad = [k for k, p in module.named_parameters() if not bool(torch.isfinite(p).all())]
    shown = ", ".join(bad[:_SHOW_AT_MOST]) + (", ..." if len(bad) > _SHOW_AT_MOST else "")
    raise ValueError(f"{name} must have finite parameters, got NaN or inf in {shown} "
                     f"(a diverged run?)")


def check_finite_data(name: str, data):
    """The floating inputs ``data.x`` (and floating targets ``data.y``) finite: one check each."""
    for part in ("x", "y"):
        t = getattr(data, part, None)
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            check_tensor_range(f"{name}.{part}", t)
    return data


def finite_parameters(module) -> bool:
    """Whether every parameter of ``module`` is finite: one synchronisation per device."""
    by_device = {}
    for p in module.parameters():
        by_device.setdefault(p.device, []).append(torch.isfinite(p).all())
    return all(bool(torch.stack(flags).all()) for flags in by_device.values())
