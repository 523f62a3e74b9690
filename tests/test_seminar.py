"""The seminar kit: exercises in every chapter, student copies without solutions, slide decks.

The structure tests read the committed notebooks (no kernel). ``test_student_copy_runs`` executes
each student copy top to bottom at the fast scale (the plugin has set ``GNILAB_SCALE=fast``), so
the exercise cells left for the student must not break a chapter.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gnilab import seminar

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = seminar.chapter_notebooks()
IDS = [p.stem for p in CHAPTERS]
EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n:label: (ex-(\d+)-(\d+))")
SOLUTION_START = re.compile(r"```\{solution-start\} (ex-\d+-\d+)")


def _read(path):
    return nbformat.read(path, as_version=4)


def _tags(cell):
    return set(cell.metadata.get("tags", []))


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_exercises_have_executed_solutions(path):
    """3-5 exercises labelled ex-N-k in order, each followed by its student cell and by a
    solution of tagged code cells between {solution-start} and {solution-end}, ending with a
    claims.check."""
    nb = _read(path)
    chapter = int(path.name[:2])
    labels = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        found = EXERCISE.search(cell.source) if cell.cell_type == "markdown" else None
        if not found:
            continue
        label, n, k = found.group(1), int(found.group(2)), int(found.group(3))
        assert n == chapter and k == len(labels) + 1, f"{path.name}: label {label} out of order"
        labels.append(label)
        assert seminar.SOLUTION_TAG not in _tags(cell), f"{label}: exercise tagged as solution"
        student = cells[i + 1]
        assert student.cell_type == "code" and seminar.EXERCISE_TAG in _tags(student), (
            f"{label}: the cell after the exercise must be a code cell tagged 'exercise'")
        start = cells[i + 2]
        m = SOLUTION_START.search(start.source)
        assert m and m.group(1) == label and seminar.SOLUTION_TAG in _tags(start), (
            f"{label}: no tagged {{solution-start}} {label} after the student cell")
        j = i + 3
        body = []
        while "{solution-end}" not in cells[j].source:
            assert seminar.SOLUTION_TAG in _tags(cells[j]), f"{label}: untagged cell in solution"
            body.append(cells[j])
            j += 1
        assert seminar.SOLUTION_TAG in _tags(cells[j]), f"{label}: untagged {{solution-end}}"
        code = [c for c in body if c.cell_type == "code"]
        assert code, f"{label}: the solution has no code cell"
        assert "claims.check(" in code[-1].source, (
            f"{label}: the solution's last code cell must end with a claims.check")
    assert 3 <= len(labels) <= 5, f"{path.name} has {len(labels)} exercises (3-5 wanted)"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_no_solution_text_outside_tagged_cells_and_no_link_to_tests(path):
    nb = _read(path)
    for cell in nb.cells:
        if seminar.SOLUTION_TAG not in _tags(cell):
            assert "{solution" not in cell.source, "solution fence in an untagged cell"
        assert "tests/" not in cell.source, (
            f"{path.name} points at tests/ (a reader of the book has no test suite): "
            f"{cell.source[:120]!r}")
        assert not cell.get("outputs"), f"{path.name} is committed with outputs"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_student_copy_keeps_exercises_and_drops_solutions(path):
    nb = _read(path)
    student = seminar.student_notebook(nb)
    text = [c.source for c in student.cells]
    assert sum(bool(EXERCISE.search(t)) for t in text) == sum(
        bool(EXERCISE.search(c.source)) for c in nb.cells)
    assert not any("{solution" in t for t in text)
    assert not any(seminar.SOLUTION_TAG in _tags(c) for c in student.cells)
    kept = [c for c in nb.cells if seminar.SOLUTION_TAG not in _tags(c)]
    assert len(student.cells) == len(kept) + 1          # plus the "student copy" note
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    nbformat.validate(student)


def test_student_notebook_removes_tagged_cells_and_outputs():
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Title"),
        v4.new_markdown_cell("```{exercise} A\n:label: ex-9-1\nq\n```"),
        v4.new_code_cell("# your code", metadata={"tags": ["exercise"]}),
        v4.new_markdown_cell("```{solution-start} ex-9-1\n```", metadata={"tags": ["solution"]}),
        v4.new_code_cell("x = 1", metadata={"tags": ["solution"]},
                         outputs=[v4.new_output("stream", text="1")], execution_count=3),
        v4.new_markdown_cell("```{solution-end}\n```", metadata={"tags": ["solution"]}),
        v4.new_code_cell("y = 2", outputs=[v4.new_output("stream", text="2")], execution_count=4),
    ])
    out = seminar.student_notebook(nb)
    assert [c.source for c in out.cells][0] == "# Title"
    assert "Student copy" in out.cells[1].source
    assert [c.source for c in out.cells[2:]] == ["```{exercise} A\n:label: ex-9-1\nq\n```",
                                                 "# your code", "y = 2"]
    assert out.cells[-1].outputs == [] and out.cells[-1].execution_count is None
    assert len(nb.cells) == 7 and nb.cells[-1].outputs, "the input notebook must not change"

    nb.cells[3].metadata["tags"] = []
    with pytest.raises(ValueError, match="not tagged 'solution'"):
        seminar.student_notebook(nb)


def test_command_line_writes_every_chapter(tmp_path):
    out = tmp_path / "student"
    proc = subprocess.run([sys.executable, "-m", "gnilab", "student-notebooks", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in CHAPTERS]
    bad = subprocess.run([sys.executable, "-m", "gnilab", "student-notebooks", str(out),
                          "--notebooks", str(tmp_path / "nowhere")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "is not a directory" in bad.stderr


def test_chapter_notebooks_rejects_a_directory_without_chapters(tmp_path):
    with pytest.raises(ValueError, match="directory="):
        seminar.chapter_notebooks(tmp_path / "missing")
    with pytest.raises(ValueError, match="no chapter notebook"):
        seminar.chapter_notebooks(tmp_path)


def test_slides_are_offline_and_skip_tagged_cells(tmp_path):
    v4 = nbformat.v4
    show = {"slideshow": {"slide_type": "slide"}}
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Deck title $\\alpha$", metadata=show),
        v4.new_code_cell("print('claim')", metadata={"slideshow": {"slide_type": "subslide"}},
                         outputs=[v4.new_output("stream", text="claim holds\n")]),
        v4.new_markdown_cell("```{exercise} A\n:label: ex-9-1\nq\n```", metadata=show),
        v4.new_code_cell("secret_solution = 1", metadata={"tags": ["solution"], **show},
                         outputs=[v4.new_output("stream", text="SOLUTION-OUTPUT\n")]),
    ])
    nb.cells[2].metadata["tags"] = ["exercise"]
    executed = tmp_path / "exe"
    executed.mkdir()
    nbformat.write(nb, executed / "09_demo.ipynb")
    decks = seminar.write_slides(executed, tmp_path / "slides")
    assert decks == [tmp_path / "slides" / "09_demo.slides.html"]
    html = decks[0].read_text(encoding="utf-8")
    assert "Deck title" in html and "claim holds" in html
    assert "SOLUTION-OUTPUT" not in html and "secret_solution" not in html
    assert "print('claim')" not in html, "code inputs are hidden in the decks"
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)", html)
    assert "reveal.js/dist/reveal.js" in scripts
    assert all("//" not in s for s in scripts), scripts
    assert (tmp_path / "slides" / "reveal.js" / "dist" / "reveal.js").is_file()
    assert (tmp_path / "slides" / "reveal.js" / "plugin" / "notes" / "notes.js").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_student_copy_runs(path, tmp_path):
    from nbclient import NotebookClient

    student = seminar.student_notebook(_read(path))
    client = NotebookClient(student, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in student.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
