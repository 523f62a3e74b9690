"""Sphinx extension of the gnilab book: each chapter page links its seminar material.

Under its title, every page built from ``notebooks/NN_*.ipynb`` gets two links: the chapter's
reveal.js deck (``slides/NN_*.slides.html``) and its student notebook (``student/NN_*.ipynb``,
the chapter without its solutions). Both are written next to the HTML by ``bash .ci/book``
(``python -m gnilab slides ...`` and ``python -m gnilab student-notebooks ...``, see
:mod:`gnilab.seminar`) once the book is built.
"""
import re

_CHAPTER = re.compile(r"^notebooks/(\d\d_[A-Za-z0-9_]+)$")


def _links(app, pagename, templatename, context, doctree):
    match = _CHAPTER.match(pagename)
    body = context.get("body")
    if not match or not body:
        return
    name = match.group(1)
    block = ('<p class="gnilab-seminar-links">Seminar material: '
             f'<a class="reference external" href="../slides/{name}.slides.html">slides</a>'
             ' &middot; '
             f'<a class="reference external" href="../student/{name}.ipynb" download>'
             'student notebook (solutions removed)</a></p>')
    end = body.find("</h1>")
    at = end + len("</h1>") if end >= 0 else 0
    context["body"] = body[:at] + block + body[at:]


def setup(app):
    app.connect("html-page-context", _links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
