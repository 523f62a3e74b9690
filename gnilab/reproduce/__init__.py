"""The chapters' experiment grids, run through :mod:`gnilab.sweep` and written as result tables
with their provenance: ``python -m gnilab reproduce CHAPTER --scale SCALE``.

A chapter registers its experiment functions (keyword arguments in, a dict of summary values
out), a grid per scale, and how its runs become its result tables. Scales:

``fast``
    a smoke run of the grid (seconds; what the tests run);
``default``
    the chapter's own default-scale settings;
``extended``
    the grid a claim needs beyond the default scale (more seeds, wider networks), sized for
    about two hours on 2 CPU cores; computed once and committed under ``results/<chapter>/``;
``paper``
    the paper's grid, for a GPU or a cluster.

``results/<chapter>/<scale>/`` holds ``runs/`` (one JSON record per run, see
:mod:`gnilab.sweep`) and one CSV per table, each row with the provenance of its runs
(``git_commit``, ``host``, ``device``, ``torch``, ``finished``). A chapter reads its committed
tier with :func:`cached`, which never recomputes.

Chapters registered so far: ``01_stable_laws`` (:mod:`gnilab.reproduce.stable_laws`, the tail
index by width, depth and batch), ``04_msgd`` (:mod:`gnilab.reproduce.msgd`, large batches with
and without Gaussian masks against SGD), ``05_gni_implicit_effects``
(:mod:`gnilab.reproduce.gni_implicit_effects`, test loss by noise variance and number of noise
draws on FashionMNIST; no committed tier yet) and ``06_nin_phases`` (:mod:`gnilab.reproduce.nin_phases`,
the NIN phases over σ² for fixed and re-drawn noise, by training set size).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, Optional, Union

from .._common.checks import check_choice

__all__ = ["CHAPTERS", "SCALES", "RESULTS", "PROVENANCE_COLUMNS", "grids", "reproduce",
           "cached"]

CHAPTERS = {"01_stable_laws": "stable_laws", "04_msgd": "msgd",
            "05_gni_implicit_effects": "gni_implicit_effects", "06_nin_phases": "nin_phases"}
SCALES = ("fast", "default", "extended", "paper")
RESULTS = Path(__file__).resolve().parents[2] / "results"
PathLike = Union[str, Path]
_PROVENANCE_FIELDS = ("git_commit", "host", "device", "torch", "gnilab")
# the columns reproduce() adds to every table row, after the chapter's own
PROVENANCE_COLUMNS = ("scale",) + _PROVENANCE_FIELDS + ("finished",)


def _chapter(chapter: str):
    chapter = check_choice("chapter", chapter, tuple(CHAPTERS))
    return importlib.import_module(f"{__name__}.{CHAPTERS[chapter]}")


def grids(chapter: str, scale: str) -> Dict[str, tuple]:
    """The experiment functions and configs of a chapter at a scale.

    Parameters
    ----------
    chapter : str
        One of :data:`CHAPTERS` (the notebook's name without ``.ipynb``).
    scale : str
        One of :data:`SCALES`.

    Returns
    -------
    dict
        ``{name: (function, configs)}``, one entry per experiment of the chapter.
    """
    from .. import sweep

    module = _chapter(chapter)
    scale = check_choice("scale", scale, SCALES)
    return {name: (module.EXPERIMENTS[name], sweep.grid(**axes))
            for name, axes in module.GRIDS[scale].items()}


def reproduce(chapter: str, scale: str = "default", engine: str = "ray",
              results: Optional[PathLike] = None, force: bool = False,
              progress: bool = True, **sweep_options) -> Dict[str, "object"]:
    """Run a chapter's grids at a scale and write its result tables.

    Parameters
    ----------
    chapter : str
        One of :data:`CHAPTERS`.
    scale : str, optional
        One of :data:`SCALES` (default ``"default"``).
    engine : {"ray", "serial"}, optional
        The :func:`gnilab.sweep.run` engine (default ``"ray"``).
    results : str or Path, optional
        Root of the results (default the repository's ``results/``); the runs go to
        ``<results>/<chapter>/<scale>/runs`` and the tables beside them.
    force : bool, optional
        Recompute stored runs (default ``False``: only what is missing or failed).
    progress : bool, optional
        Show the sweep's progress bar (default ``True``).
    **sweep_options
        Passed to :func:`gnilab.sweep.run` (``num_cpus``, ``num_gpus``, ``max_retries``, ...).

    Returns
    -------
    dict
        ``{table name: pandas.DataFrame}``, as written to ``<table name>.csv``.
    """
    import pandas as pd

    from .. import sweep

    module = _chapter(chapter)
    out = Path(results if results is not None else RESULTS) / chapter / scale
    frames = {}
    for name, (fn, configs) in grids(chapter, scale).items():
        frames[name] = sweep.run(fn, configs, out / "runs", engine=engine, force=force,
                                 progress=progress, provenance=True, **sweep_options)
    provenance = _provenance_summary(pd.concat(frames.values(), ignore_index=True))
    tables = module.tables(frames)
    for name, table in tables.items():
        table = table.assign(scale=scale, **provenance)
        table.to_csv(out / f"{name}.csv", index=False)
        tables[name] = table
    return tables


def _provenance_summary(runs) -> dict:
    """One value per provenance field over the runs (joined with ``;`` when they differ)."""
    out = {k: ";".join(sorted({str(v) for v in runs[f"prov.{k}"].dropna()}))
           if f"prov.{k}" in runs else "" for k in _PROVENANCE_FIELDS}
    out["finished"] = str(runs["prov.started"].max()) if "prov.started" in runs else ""
    return out


def cached(chapter: str, scale: str = "extended", table: Optional[str] = None,
           results: Optional[PathLike] = None):
    """A committed result table (or the runs) of a chapter, read, never recomputed.

    Parameters
    ----------
    chapter : str
        One of :data:`CHAPTERS`.
    scale : str, optional
        The tier (default ``"extended"``).
    table : str, optional
        The table name; ``None`` returns the table of all stored runs with provenance.
    results : str or Path, optional
        Root of the results (default the repository's ``results/``).

    Returns
    -------
    pandas.DataFrame
        The table as written by :func:`reproduce`, or every stored run.
    """
    import pandas as pd

    from .. import sweep

    _chapter(chapter)
    scale = check_choice("scale", scale, SCALES)
    out = Path(results if results is not None else RESULTS) / chapter / scale
    if table is None:
        return sweep.load(out / "runs", provenance=True)
    path = out / f"{table}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no {scale} results for {chapter}: {path} is missing; "
                                f"run python -m gnilab reproduce {chapter} --scale {scale}")
    return pd.read_csv(path)
