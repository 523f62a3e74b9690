"""Every public name of gnilab documents itself: the docstrings are the library reference of the
book (book/reference/, built by autodoc with warnings as errors), so a public function or class
without its parameters, its return value or, in the modules that implement the papers, the
source it implements, is a gap in the book."""
import importlib
import inspect
import pkgutil
import re

import pytest

import gnilab

# Modules that implement a paper: each public callable cites what it implements (an equation,
# theorem, figure, table, section or a dated reference).
PAPER_MODULES = {"gnilab.stable", "gnilab.noise", "gnilab.levy", "gnilab.curvature",
                 "gnilab.langevin", "gnilab.msgd", "gnilab.gni", "gnilab.nin", "gnilab.nin.toy"}
SOURCE = re.compile(r"Eqs?\.|Theorem|Thm|Prop(osition|\.)|Lemma|Corollary|Definition|Def\.|"
                    r"Figs?\.|Table|§|App\.|Remark|\b(19|20)\d\d\b")
SECTION = "^{}\n-+$"


def _public_modules():
    names = ["gnilab." + m for m in gnilab._SUBMODULES]
    for info in pkgutil.walk_packages(gnilab.__path__, "gnilab."):
        parts = info.name.split(".")
        if not any(p.startswith("_") for p in parts[1:]) and info.name not in names:
            names.append(info.name)
    return sorted(names)


def _public_callables():
    out = []
    for modname in _public_modules():
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and \
                    obj.__module__.startswith("gnilab"):
                out.append((modname, name, obj))
    return out


CALLABLES = _public_callables()
IDS = [f"{m}.{n}" for m, n, _ in CALLABLES]


def _has_section(doc, *titles):
    return any(re.search(SECTION.format(t), doc, re.M) for t in titles)


def _parameters(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters.values() if p.name not in ("self", "cls", "_instance")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_walk_finds_every_public_module_and_many_names():
    mods = _public_modules()
    for m in ("gnilab.stable", "gnilab.nin.toy", "gnilab.data.images", "gnilab.langevin"):
        assert m in mods
    assert not any("._" in m for m in mods)
    assert len(CALLABLES) > 150


@pytest.mark.parametrize("modname", _public_modules())
def test_module_docstring_opens_with_a_plain_sentence(modname):
    doc = inspect.getdoc(importlib.import_module(modname)) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    assert first and first[0].isalnum(), f"{modname}: the docstring must open with a sentence"
    assert not re.match(r"^[=\-~^]{3,}", first)


@pytest.mark.parametrize("modname,name,obj", CALLABLES, ids=IDS)
def test_public_callable_documents_parameters_returns_and_source(modname, name, obj):
    doc = inspect.getdoc(obj) or ""
    where = f"{modname}.{name}"
    assert doc.strip(), f"{where} has no docstring"
    if _parameters(obj):
        titles = ("Parameters", "Attributes") if inspect.isclass(obj) else ("Parameters",)
        assert _has_section(doc, *titles), f"{where}: no 'Parameters' section"
    if inspect.isfunction(obj):
        ret = inspect.signature(obj).return_annotation
        if ret not in (None, "None"):
            assert _has_section(doc, "Returns", "Yields"), f"{where}: no 'Returns' section"
    if modname in PAPER_MODULES:
        assert SOURCE.search(doc), f"{where}: cite the paper equation (or source) it implements"
