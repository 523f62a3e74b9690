"""How long each chapter notebook and each exercise solution takes, for the seminar plan.

Executes every chapter notebook (``notebooks/NN_*.ipynb``) top to bottom in a fresh kernel at
each requested scale, with the cell timings nbclient records, and writes a markdown table that
``book/seminar.md`` includes:

* per notebook, the wall time of the whole run (kernel start included) and the sum of its
  solution cells;
* per exercise (``Exercise N.k`` as the book numbers it; the unnumbered prelude's are
  ``Prelude exercise k``), the seconds of its solution's code cells.

Usage (nothing else should run on the machine, or the times are inflated)::

    python benchmarks/seminar_timings.py                        # fast and default, all chapters
    python benchmarks/seminar_timings.py --scales fast --notebooks notebooks/02_levy_metastability.ipynb

Writes ``book/_generated/seminar_timings.md`` (``--out``) and prints the table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from gnilab import seminar  # noqa: E402

SOLUTION_START = re.compile(r"\{solution-start\}\s+(ex-(\d+)-(\d+))")


def _seconds(cell) -> float:
    ex = cell.metadata.get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def time_notebook(path: Path, scale: str, timeout: int = 3600):
    """Execute ``path`` at ``scale``; returns ``(wall seconds, {label: solution seconds})``."""
    nb = nbformat.read(path, as_version=4)
    os.environ["GNILAB_SCALE"] = scale          # inherited by the kernel
    os.environ["GNILAB_WIDGETS"] = "0"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - t0
    solutions, label = {}, None
    for cell in nb.cells:
        m = SOLUTION_START.search(cell.source)
        if m:
            label = m.group(1)
            solutions[label] = 0.0
        if label and cell.cell_type == "code" and seminar.SOLUTION_TAG in cell.metadata.get("tags", []):
            solutions[label] += _seconds(cell)
        if "{solution-end}" in cell.source:
            label = None
    return wall, solutions


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["fast", "default"],
                    choices=["fast", "default", "paper"])
    ap.add_argument("--notebooks", nargs="+", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "book" / "_generated" / "seminar_timings.md")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or seminar.chapter_notebooks()

    results = {}
    for path in notebooks:
        for scale in args.scales:
            print(f"running {path.name} at scale {scale} ...", flush=True)
            results[path.stem, scale] = time_notebook(path, scale)
            wall, sol = results[path.stem, scale]
            print(f"  {wall:.0f} s, solutions {sum(sol.values()):.1f} s", flush=True)

    head = "| notebook / exercise | " + " | ".join(f"{s} scale (s)" for s in args.scales) + " |"
    rule = "|---|" + "---:|" * len(args.scales)
    lines = [head, rule]
    for path in notebooks:
        cells = [f"{results[path.stem, s][0]:.0f}" for s in args.scales]
        sums = [f"{sum(results[path.stem, s][1].values()):.1f}" for s in args.scales]
        lines.append(f"| **{path.stem}** (whole notebook) | " + " | ".join(cells) + " |")
        lines.append(f"| {path.stem}: all solutions | " + " | ".join(sums) + " |")
        labels = list(results[path.stem, args.scales[0]][1])
        for label in labels:
            _, n, k = label.split("-")
            vals = [f"{results[path.stem, s][1].get(label, float('nan')):.1f}" for s in args.scales]
            name = f"Exercise {int(n)}.{int(k)}" if int(n) else f"Prelude exercise {int(k)}"
            lines.append(f"| &nbsp;&nbsp;{name} solution | " + " | ".join(vals) + " |")
    import torch

    machine = (f"Measured {dt.date.today().isoformat()} by `python benchmarks/seminar_timings.py` on "
               f"{_cpu()}, {os.cpu_count()} CPU cores, torch {torch.__version__} with "
               f"{torch.get_num_threads()} threads, no GPU; each notebook in a fresh kernel, "
               "base seed 0. The whole-notebook time includes the kernel start.")
    text = machine + "\n\n" + "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
