"""``python -m gnilab COMMAND``: the seminar material (see :mod:`gnilab.seminar`) and the
chapters' experiment grids (see :mod:`gnilab.reproduce`).

Commands::

    student-notebooks OUT/              every chapter without its solutions, into OUT/
    slides EXECUTED_DIR/ OUT/           a reveal.js deck per executed chapter, into OUT/
    reproduce CHAPTER [--scale S] [--engine ray|serial] [--results DIR] [--force]
              [--num-cpus C] [--num-gpus G]
                                        a chapter's grids at scale S (fast, default,
                                        extended, paper), runs and tables into
                                        DIR/CHAPTER/S (default results/)
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gnilab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("student-notebooks", help="chapters without their solutions")
    p.add_argument("out", help="output directory")
    p.add_argument("--notebooks", default=None,
                   help="directory of the chapter notebooks (default: the repository's notebooks/)")
    p = sub.add_parser("slides", help="reveal.js decks from executed chapters")
    p.add_argument("executed", help="directory of executed chapter notebooks, e.g. "
                                    "_build/jupyter_execute/notebooks")
    p.add_argument("out", help="output directory, e.g. _build/html/slides")
    p = sub.add_parser("reproduce", help="a chapter's experiment grids and result tables")
    p.add_argument("chapter", help="the chapter, e.g. 01_stable_laws")
    p.add_argument("--scale", default="default", help="fast, default, extended or paper")
    p.add_argument("--engine", default="ray", help="ray (default) or serial")
    p.add_argument("--results", default=None, help="results root (default: results/)")
    p.add_argument("--force", action="store_true", help="recompute stored runs too")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs per run (default 1)")
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs per run (default 0)")
    args = parser.parse_args(argv)

    if args.command == "reproduce":
        from . import reproduce

        tables = reproduce.reproduce(args.chapter, args.scale, engine=args.engine,
                                     results=args.results, force=args.force,
                                     num_cpus=args.num_cpus, num_gpus=args.num_gpus)
        for name, table in tables.items():
            print(f"== {args.chapter} / {args.scale}: {name} ({len(table)} rows)")
            print(table.drop(columns=list(reproduce.PROVENANCE_COLUMNS)).to_string(index=False))
        return 0

    from . import seminar

    if args.command == "student-notebooks":
        nbs = seminar.chapter_notebooks(args.notebooks) if args.notebooks else None
        written = seminar.write_student_notebooks(args.out, nbs)
        print(f"wrote {len(written)} student notebooks to {args.out}")
    else:
        decks = seminar.write_slides(args.executed, args.out)
        print(f"wrote {len(decks)} slide decks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
