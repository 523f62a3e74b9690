"""Robustness run: execute every chapter at one scale for several base seeds and tabulate each
claim the chapter checks (``gnilab.claims.check``).

    .venv/bin/python benchmarks/robustness.py                    # default scale, seeds 0 1 2
    .venv/bin/python benchmarks/robustness.py --seeds 3 --chapters 03 05

Each notebook runs top to bottom on a fresh kernel with ``GNILAB_SEED=<seed>`` and
``GNILAB_CLAIMS=record`` (a failed claim is recorded and the chapter goes on, so one run reports
every claim). The table (chapter, cell, claim, seed, measured value, op, threshold, margin, slack,
pass) is written to ``benchmarks/results/robustness.csv``; a cell that raised anything else is a
row with ``claim = "error: ..."`` and ``passed = False``. The script exits 1 when any row failed.
Chapters can be run one at a time into ``--out benchmarks/results/robustness_<prefix>.csv``;
``--merge`` then concatenates those tables into ``robustness.csv``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
COLUMNS = ["chapter", "cell", "claim", "seed", "scale", "measured", "op", "threshold", "margin",
           "slack", "passed", "seconds"]


def run_chapter(path: Path, seed: int, scale: str, timeout: int) -> pd.DataFrame:
    """Execute one notebook with base seed ``seed``; its claims (and any error) as a table."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "claims.jsonl"
        env = dict(GNILAB_SEED=str(seed), GNILAB_SCALE=scale, GNILAB_CLAIMS="record",
                   GNILAB_CLAIMS_LOG=str(log), GNILAB_CHAPTER=path.stem)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        error = None
        t0 = time.perf_counter()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        except CellExecutionError as exc:
            error = exc
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        seconds = time.perf_counter() - t0
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    by_count = {c.get("execution_count"): i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and c.get("execution_count") is not None}
    table = pd.DataFrame([dict(chapter=path.stem, cell=by_count.get(r["cell"], r["cell"]),
                               claim=r["name"], seed=seed, scale=scale, measured=r["measured"],
                               op=r["op"], threshold=r["threshold"], margin=r["margin"],
                               slack=r["slack"], passed=r["passed"]) for r in rows],
                         columns=COLUMNS)
    if error is not None:
        failed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))]
        message = str(error).strip().splitlines()[-1][:200] if str(error).strip() else "error"
        table.loc[len(table)] = dict(chapter=path.stem, cell=failed[0] if failed else None,
                                     claim=f"error: {message}", seed=seed, scale=scale,
                                     passed=False)
    table["seconds"] = round(seconds, 1)
    return table


def _claim_cell(nb, cell) -> object:
    """The notebook index of the code cell that checked a claim. Tables written before the
    claims module recorded the running cell hold the next code cell's index (or, after the
    last one, the raw execution count): step back to the cell that calls claims.check."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    checks = {i for i in code if "claims.check" in nb.cells[i].source}
    if pd.isna(cell) or int(cell) in checks:
        return cell
    cell = int(cell)
    if cell in code and code.index(cell) > 0 and code[code.index(cell) - 1] in checks:
        return code[code.index(cell) - 1]
    if 2 <= cell <= len(code) + 1 and code[cell - 2] in checks:
        return code[cell - 2]
    return cell


def merge(out: Path) -> int:
    """Concatenate the per-chapter tables ``robustness_<prefix>.csv`` beside ``out`` into
    ``out`` (the cell column checked against the notebooks); print the summary."""
    parts = sorted(p for p in out.parent.glob("robustness_*.csv"))
    table = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    for chapter, rows in table.groupby("chapter"):
        nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
        table.loc[rows.index, "cell"] = [_claim_cell(nb, c) for c in rows.cell]
    table.to_csv(out, index=False)
    return _report(table, sorted(table.chapter.unique()), [int(s) for s in sorted(table.seed.unique())],
                   ", ".join(sorted(table.scale.unique())), out)


def _report(table, chapters, seeds, scale, out) -> int:
    summary = table.groupby(["chapter", "seed"]).agg(
        claims=("claim", "size"), passed=("passed", "sum"), least_slack=("slack", "min"),
        seconds=("seconds", "first"))
    print(summary.to_string())
    failed = table[~table.passed.astype(bool)]
    print(f"\n{len(table) - len(failed)} passed, {len(failed)} failed "
          f"({len(chapters)} chapters x seeds {list(seeds)} at scale {scale}); table: {out}")
    return 1 if len(failed) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chapters", nargs="+", default=None,
                        help="notebook name prefixes (default: every notebook)")
    parser.add_argument("--scale", default="default", choices=["fast", "default", "paper"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results"
                        / "robustness.csv")
    parser.add_argument("--merge", action="store_true",
                        help="only merge the per-chapter tables robustness_<prefix>.csv into --out")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.out)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.chapters:
        paths = [p for p in paths if any(p.stem.startswith(c) for c in args.chapters)]
        if not paths:
            parser.error(f"no notebook matches --chapters {args.chapters}")
    jobs = [(p, s) for s in args.seeds for p in paths]
    tables = []
    bar = tqdm(jobs, desc="chapters", unit="run")
    for path, seed in bar:
        bar.set_postfix_str(f"{path.stem}, seed {seed}")
        t = run_chapter(path, seed, args.scale, args.timeout)
        tables.append(t)
        bad = t[~t.passed.astype(bool)]
        tqdm.write(f"{path.stem} seed {seed}: {len(t) - len(bad)}/{len(t)} passed "
                   f"in {t.seconds.iloc[0] if len(t) else 0:.0f} s"
                   + "".join(f"\n   FAILED cell {r.cell}: {r.claim} (slack {r.slack})"
                             for r in bad.itertuples()))
    table = pd.concat(tables, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    return _report(table, paths, args.seeds, args.scale, args.out)


if __name__ == "__main__":
    sys.exit(main())
