"""Material for teaching a seminar from the book: student notebooks and slide decks.

Both are made from the chapter notebooks themselves, so they never drift from the book:

* a **student notebook** is a chapter with its solutions removed. Every cell of a solution (from
  the ``{solution-start}`` cell to the ``{solution-end}`` cell) carries the cell tag
  ``solution``; those cells go, and so do all outputs. The exercise statements and the empty
  code cell after each (tag ``exercise``) stay, so the copy still runs top to bottom.
* a **slide deck** is a chapter's *executed* notebook (``_build/jupyter_execute/`` after a book
  build) exported by nbconvert's reveal.js exporter without code inputs. Cells say how they
  appear through ``metadata.slideshow.slide_type`` (``slide``, ``subslide``, ``fragment`` or
  ``skip``); cells of exercises and solutions and cells holding a MyST directive (which a
  slide would show as raw text) are always skipped. The decks use the reveal.js tree that ships in the ``sphinx-revealjs`` wheel and the
  book's own MathJax 3 (``_static/mathjax``), so they work offline.

Command line (``python -m gnilab ...``)::

    python -m gnilab student-notebooks OUT/            # from notebooks/*.ipynb
    python -m gnilab slides EXECUTED_DIR/ OUT/         # e.g. _build/jupyter_execute/notebooks
"""
from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Iterable, List, Optional, Union

__all__ = ["SOLUTION_TAG", "EXERCISE_TAG", "student_notebook", "write_student_notebooks",
           "write_slides", "chapter_notebooks"]

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"

_REPO = Path(__file__).resolve().parents[2]
_MYST_DIRECTIVE = re.compile(r"^\s*(```|:::)\{", re.MULTILINE)
# a MyST cross-reference to the library reference, {py:obj}`title <target>` or {py:func}`target`
_PY_ROLE = re.compile(r"\{py:\w+\}`([^`<]*?)\s*(?:<[^`>]*>)?`")
_TEMPLATES = Path(__file__).resolve().parent / "_slides"
_STUDENT_NOTE = ("*Student copy*: the solutions of the exercises are removed; the book shows "
                 "them. Work each exercise in the code cell after it.")

PathLike = Union[str, Path]


def _tags(cell) -> set:
    return set(cell.get("metadata", {}).get("tags", []))


def chapter_notebooks(directory: Optional[PathLike] = None) -> List[Path]:
    """The chapter notebooks ``NN_*.ipynb`` of ``directory`` (default: the repository's
    ``notebooks/``), in chapter order.

    Parameters
    ----------
    directory : str or pathlib.Path, optional
        Directory to search (not recursively); the repository's ``notebooks/`` by default.

    Returns
    -------
    list of pathlib.Path
        The matching notebooks, sorted by file name.

    Raises
    ------
    ValueError
        If ``directory`` is not a directory or holds no chapter notebook.
    """
    directory = Path(directory) if directory is not None else _REPO / "notebooks"
    if not directory.is_dir():
        raise ValueError(f"directory={str(directory)!r} is not a directory")
    found = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ValueError(f"directory={str(directory)!r} holds no chapter notebook (NN_*.ipynb)")
    return found


def student_notebook(nb):
    """A copy of the notebook ``nb`` (an ``nbformat`` node) without its solutions.

    Cells tagged ``solution`` are removed, every output and execution count is cleared, and a
    markdown cell saying that this is the student copy is put after the title cell.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The chapter notebook (format version 4); it is not modified.

    Returns
    -------
    nbformat.NotebookNode
        The student copy.

    Raises
    ------
    ValueError
        If an exercise has no solution or a solution is not closed (``{solution-start}`` and
        ``{solution-end}`` outside tagged cells): a student copy would then leak or lose text.
    """
    import nbformat

    out = copy.deepcopy(nb)
    for cell in out.cells:
        src = cell.source
        tagged = SOLUTION_TAG in _tags(cell)
        if ("{solution-start}" in src or "{solution-end}" in src) and not tagged:
            raise ValueError(f"a cell with a solution fence is not tagged {SOLUTION_TAG!r}: "
                             f"{src[:80]!r}")
    out.cells = [c for c in out.cells if SOLUTION_TAG not in _tags(c)]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.get("metadata", {}).pop("execution", None)
    note = nbformat.v4.new_markdown_cell(_STUDENT_NOTE)
    note.metadata["slideshow"] = {"slide_type": "skip"}
    out.cells.insert(1 if out.cells else 0, note)
    return out


def write_student_notebooks(out_dir: PathLike, notebooks: Optional[Iterable[PathLike]] = None,
                            ) -> List[Path]:
    """Write the student copy (:func:`student_notebook`) of each chapter to ``out_dir`` under
    the same file name; returns the paths written. ``notebooks`` defaults to
    :func:`chapter_notebooks`.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Output directory, created if missing; existing files of the same name are overwritten.
    notebooks : iterable of str or pathlib.Path, optional
        The notebooks to convert; :func:`chapter_notebooks` by default.

    Returns
    -------
    list of pathlib.Path
        The paths written, one per notebook, in input order.
    """
    import nbformat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in (chapter_notebooks() if notebooks is None else [Path(p) for p in notebooks]):
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def _reveal_root() -> Path:
    """The reveal.js tree shipped in the ``sphinx-revealjs`` wheel."""
    try:
        import sphinx_revealjs
    except ImportError as err:  # pragma: no cover - pinned in requirements.txt
        raise RuntimeError("slides need the reveal.js files of the sphinx-revealjs package: "
                           "pip install sphinx-revealjs") from err
    root = Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"
    if not (root / "dist" / "reveal.js").is_file():  # pragma: no cover
        raise RuntimeError(f"no reveal.js in {root}")
    return root


def write_slides(executed_dir: PathLike, out_dir: PathLike,
                 mathjax_url: str = "../_static/mathjax/tex-chtml.js") -> List[Path]:
    """Export each executed chapter notebook of ``executed_dir`` as a reveal.js deck
    ``out_dir/<name>.slides.html`` (inputs hidden, cells placed by their ``slideshow``
    metadata) and copy reveal.js into ``out_dir/reveal.js``. ``mathjax_url`` is relative to
    ``out_dir``; the default is the book's offline MathJax when ``out_dir`` is
    ``_build/html/slides``. Returns the decks written.

    Parameters
    ----------
    executed_dir : str or pathlib.Path
        Directory of executed chapter notebooks ``NN_*.ipynb`` (see :func:`chapter_notebooks`).
    out_dir : str or pathlib.Path
        Output directory of the decks, created if missing.
    mathjax_url : str, optional
        URL of MathJax's ``tex-chtml.js``, relative to ``out_dir`` (default
        ``"../_static/mathjax/tex-chtml.js"``).

    Returns
    -------
    list of pathlib.Path
        The deck files ``out_dir/<name>.slides.html``, in chapter order.
    """
    import nbformat
    from nbconvert import SlidesExporter

    executed = chapter_notebooks(executed_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = _reveal_root()
    for part in ("dist", "plugin/notes"):
        shutil.copytree(root / part, out_dir / "reveal.js" / part, dirs_exist_ok=True)
    exporter = SlidesExporter(template_name="gnilab_reveal",
                              extra_template_basedirs=[str(_TEMPLATES)],
                              reveal_url_prefix="reveal.js", exclude_input=True,
                              exclude_input_prompt=True, exclude_output_prompt=True,
                              mathjax_url=mathjax_url)
    decks = []
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            # exercises and solutions are for the page, and MyST directives would show as raw
            # text on a slide
            if _tags(cell) & {SOLUTION_TAG, EXERCISE_TAG} or _MYST_DIRECTIVE.search(cell.source):
                cell.metadata["slideshow"] = {"slide_type": "skip"}
            elif cell.cell_type == "markdown":      # a slide has no reference to link to
                cell.source = _PY_ROLE.sub(lambda m: f"`{m.group(1)}`", cell.source)
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"name": path.stem}})
        target = out_dir / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        decks.append(target)
    return decks
