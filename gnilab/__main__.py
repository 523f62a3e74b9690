"""``python -m gnilab COMMAND``: the seminar material (see :mod:`gnilab.seminar`).

Commands::

    student-notebooks OUT/              every chapter without its solutions, into OUT/
    slides EXECUTED_DIR/ OUT/           a reveal.js deck per executed chapter, into OUT/
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
    args = parser.parse_args(argv)

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
