"""The rendered book, looked at in a real (headless) browser.

What a reader sees cannot be checked from the HTML source alone: the maths is typeset by MathJax
in the browser, and the figures are files the page has to find. This test opens the prelude
chapter in headless Chromium, served from 127.0.0.1 with every other host unreachable, and checks

* a full-page screenshot is produced and is not blank;
* MathJax ran: there is at least one ``mjx-container``, no MathJax error, no raw ``$$``, ``\\(``
  or ``\\[`` left in the visible text, and MathJax itself was loaded from the book, not a CDN
  (the book must render offline);
* at least one figure from the notebook's output is on the page and its file exists.

Which book is tested:

1. ``$GNILAB_BOOK_HTML``, if set: a built ``html`` directory (the one holding ``index.html``),
   e.g. ``GNILAB_BOOK_HTML=_build/html pytest tests/test_book_browser.py``;
2. otherwise ``<repo>/_build/html`` if its prelude page is newer than
   ``notebooks/00_prelude.ipynb`` (as left by ``bash .ci/book``);
3. otherwise the test builds the book itself into a temporary directory with
   ``jupyter-book build <repo> --path-output <tmp>`` (the test plugin has set
   ``GNILAB_SCALE=fast``, so the notebooks run quickly).

The second test opens the prelude's slide deck (``slides/00_prelude.slides.html``, written by
``python -m gnilab slides``; made here if the book has none) with the same offline rules, checks
that its maths is typeset and that pressing the right arrow key moves to the next slide. The
third opens the library reference page of ``gnilab.stable`` (autodoc): its equations are typeset,
its functions have anchors, and Chapter 1 links to them.

The tests are skipped only when no Chromium binary (``chromium``, ``chromium-browser`` or
``google-chrome``) is on the PATH; Debian's ``chromium`` package provides one.
"""
from __future__ import annotations

import contextlib
import functools
import json
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = "notebooks/00_prelude.html"
NOTEBOOK = REPO / "notebooks" / "00_prelude.ipynb"

BUILD_TIMEOUT_S = 1800     # a fresh build executes every notebook at the fast scale
BROWSER_TIMEOUT_S = 120    # one Chromium run (the page itself gets a 15 s virtual-time budget)
VIRTUAL_TIME_MS = 15000

pytestmark = pytest.mark.slow


def _find_browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# --------------------------------------------------------------------------------------------
# Locating (or building) the book
# --------------------------------------------------------------------------------------------

def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run(cmd, timeout: float, **kwargs):
    """``subprocess.run`` in its own process group, so that a timeout also ends the children
    (notebook kernels, Chromium's renderers). Returns ``(CompletedProcess | None, output)``:
    ``None`` when the timeout was hit, with whatever output there was."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    def kill_group():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group()
        out, err = proc.communicate()
        return None, (out or "") + (err or "")
    except BaseException:  # e.g. Ctrl-C: leave no kernel or browser behind
        kill_group()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), out + err


def _build_book(out_dir: Path) -> Path:
    """Build the book into ``out_dir`` and return its html directory; fail with the log tail."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book"]
    env = dict(os.environ)
    env.setdefault("GNILAB_SCALE", "fast")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # A non-inline MPLBACKEND (say "Agg" exported in a CI shell) is inherited by the notebook
    # kernels and makes plt.show() draw nothing, so the book would have no figures. Let the
    # kernels use their inline backend, as they do for a reader. (A book built elsewhere with
    # such a backend is still caught below: it has no figure.)
    if "inline" not in env.get("MPLBACKEND", "inline"):
        del env["MPLBACKEND"]
    proc, log = _run(cmd + ["build", str(REPO), "--path-output", str(out_dir)],
                     timeout=BUILD_TIMEOUT_S, cwd=REPO, env=env)
    if proc is None:
        pytest.fail(f"jupyter-book build did not finish in {BUILD_TIMEOUT_S} s; log tail:\n"
                    f"{_tail(log)}")
    html_dir = out_dir / "_build" / "html"
    if proc.returncode != 0:
        reports = ""
        for report in sorted((html_dir / "reports").glob("**/*.log")):
            reports += f"\n--- {report.name}\n{_tail(report.read_text(errors='replace'), 40)}"
        pytest.fail(f"jupyter-book build exited with {proc.returncode}; log tail:\n"
                    f"{_tail(log)}{reports}")
    return html_dir


def _locate_book(tmp_path: Path) -> Path:
    """The html directory of the book to test (see the module docstring)."""
    given = os.environ.get("GNILAB_BOOK_HTML")
    if given:
        html_dir = Path(given).expanduser()
        if not html_dir.is_absolute():
            html_dir = REPO / html_dir
        if not (html_dir / PAGE).is_file():
            pytest.fail(f"GNILAB_BOOK_HTML={given!r} has no {PAGE}")
        return html_dir
    if not NOTEBOOK.is_file():
        pytest.fail(f"{NOTEBOOK.relative_to(REPO)} is missing, so the book has no prelude page "
                    "(it is listed in _toc.yml)")
    built = REPO / "_build" / "html"
    if (built / PAGE).is_file() and (built / PAGE).stat().st_mtime > NOTEBOOK.stat().st_mtime:
        return built
    return _build_book(tmp_path)


# --------------------------------------------------------------------------------------------
# Serving and browsing
# --------------------------------------------------------------------------------------------

# A page served with "?probe" gets this script at its end: once reveal.js is ready it
# presses the right arrow key (a keydown event on the document, as reveal.js's keyboard handler
# receives it) and writes the slide indices before and after into the DOM for --dump-dom.
_DECK_PROBE = """<script>
(function () {
  function report(key, value) {
    var el = document.createElement('pre');
    el.id = 'gnilab-probe-' + key;
    el.textContent = JSON.stringify(value);
    document.body.appendChild(el);
  }
  function press() {
    var before = Reveal.getIndices();
    var ev = new KeyboardEvent('keydown', {key: 'ArrowRight', code: 'ArrowRight', bubbles: true});
    Object.defineProperty(ev, 'keyCode', {get: function () { return 39; }});
    Object.defineProperty(ev, 'which', {get: function () { return 39; }});
    document.dispatchEvent(ev);
    setTimeout(function () {
      report('before', before);
      report('after', Reveal.getIndices());
      report('slides', Reveal.getTotalSlides());
    }, 1500);
  }
  if (typeof Reveal === 'undefined') { report('error', 'no Reveal'); return; }
  if (Reveal.isReady()) { press(); } else { Reveal.on('ready', press); }
})();
</script>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass

    def do_GET(self):  # noqa: N802 - name of the base class's method
        path, _, query = self.path.partition("?")
        if query != "probe":
            return super().do_GET()
        page = Path(self.translate_path(path))
        if not page.is_file():
            return self.send_error(404)
        body = page.read_text(encoding="utf-8")
        at = body.rfind("</html>")   # after the deck's own scripts (they follow </body>)
        body = body[:at] + _DECK_PROBE + body[at:] if at >= 0 else body + _DECK_PROBE
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def _serve(html_dir: Path):
    """Serve ``html_dir`` on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}",
           # Only the local server resolves: a page that needs the internet fails here too.
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           *args]
    proc, log = _run(cmd, timeout=BROWSER_TIMEOUT_S)
    if proc is None:
        pytest.fail(f"{Path(browser).name} did not finish within {BROWSER_TIMEOUT_S} s "
                    f"({' '.join(args)}); output tail:\n{_tail(log, 20)}")
    return proc


class _PageText(HTMLParser):
    """Visible text of a page, and its <img> sources and MathJax elements."""

    SKIP = {"script", "style", "pre", "code", "textarea", "noscript", "template", "mjx-container"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.images: list[str] = []
        self.mathjax = 0
        self.math_errors = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        if tag == "mjx-container":
            self.mathjax += 1
        if tag == "mjx-merror":
            self.math_errors += 1
        if tag in self.SKIP:
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _is_output_figure(src: str) -> bool:
    return "_images/" in src or src.startswith("data:image/png") or src.startswith("data:image/svg")


def _check_screenshot(png: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    assert png.is_file(), "Chromium wrote no screenshot"
    assert png.stat().st_size > 10_000, f"screenshot is only {png.stat().st_size} bytes"
    pixels = mpimg.imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000, pixels.shape
    rgb = (np.asarray(pixels[..., :3]) * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb[:: max(1, len(rgb) // 200_000)], axis=0)
    assert len(colours) > 50, f"screenshot has only {len(colours)} colours: a blank page?"
    assert float(rgb.std()) > 5.0, "screenshot is (nearly) a single colour"


@pytest.fixture(scope="module")
def browser():
    found = _find_browser()
    if found is None:
        pytest.skip("no Chromium found (chromium, chromium-browser or google-chrome); "
                    "install Debian's 'chromium' to run the browser test")
    return found


@pytest.fixture(scope="module")
def html_dir(browser, tmp_path_factory):
    """The built book (located or built once for all tests of this module)."""
    return _locate_book(tmp_path_factory.mktemp("book"))


def test_prelude_renders_in_browser(tmp_path, browser, html_dir):
    source = (html_dir / PAGE).read_text(encoding="utf-8", errors="replace")
    mathjax_src = [src for src in re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)", source)
                   if "mathjax" in src.lower()]
    assert mathjax_src, f"{PAGE} loads no MathJax script"
    for src in mathjax_src:
        assert "//" not in src, f"MathJax is loaded from the network ({src}): no maths offline"

    with _serve(html_dir) as base:
        url = f"{base}/{PAGE}"
        png = tmp_path / "prelude.png"
        shot = _chromium(browser, tmp_path / "profile-shot", "--hide-scrollbars",
                         "--window-size=1280,2400", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                         f"--screenshot={png}", url)
        dump = _chromium(browser, tmp_path / "profile-dom", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                         "--dump-dom", url)

    assert shot.returncode == 0, f"screenshot run failed ({shot.returncode}):\n{_tail(shot.stderr, 20)}"
    _check_screenshot(png)

    assert dump.returncode == 0, f"--dump-dom failed ({dump.returncode}):\n{_tail(dump.stderr, 20)}"
    page = _PageText()
    page.feed(dump.stdout)
    page.close()
    assert page.mathjax >= 1, "no mjx-container in the page: MathJax did not typeset the maths"
    assert page.math_errors == 0, f"MathJax reported {page.math_errors} TeX error(s) on the page"
    visible = " ".join(page.text)
    for raw in ("$$", "\\(", "\\["):
        assert raw not in visible, (
            f"unrendered maths ({raw!r}) in the visible text: "
            f"...{visible[max(0, visible.find(raw) - 80): visible.find(raw) + 80]}...")

    figures = [src for src in page.images if _is_output_figure(src)]
    assert figures, f"no figure from the notebook output on the page; <img> sources: {page.images}"
    for src in figures:
        if src.startswith("data:"):
            continue
        path = (html_dir / PAGE).parent / unquote(urlsplit(src).path)
        assert path.is_file() and path.stat().st_size > 1000, f"figure {src} is missing or empty"


DECK = "slides/00_prelude.slides.html"


def test_slide_deck_typesets_and_advances(tmp_path, browser, html_dir):
    """The prelude's reveal.js deck opens offline: its maths is typeset by the book's MathJax,
    it has figures and several slides, and the right arrow key moves to the next slide."""
    deck = html_dir / DECK
    if not deck.is_file():  # a book built by the test (or by hand): make the decks as .ci/book does
        from gnilab import seminar

        seminar.write_slides(html_dir.parent / "jupyter_execute" / "notebooks", html_dir / "slides")
    source = deck.read_text(encoding="utf-8")
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)", source)
    assert any("mathjax" in src.lower() for src in scripts), f"{DECK} loads no MathJax: {scripts}"
    assert any("reveal.js" in src for src in scripts), f"{DECK} loads no reveal.js: {scripts}"
    for src in scripts:
        assert "//" not in src, f"{DECK} loads {src} from the network: the deck must work offline"
        assert (deck.parent / src).resolve().is_file(), f"{DECK} loads {src}, which is missing"
    assert "```{" not in source, "a MyST directive leaked onto a slide (tag its cell 'skip')"

    with _serve(html_dir) as base:
        dump = _chromium(browser, tmp_path / "profile-deck", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                         "--window-size=1280,800", "--dump-dom", f"{base}/{DECK}?probe")
    assert dump.returncode == 0, f"--dump-dom failed ({dump.returncode}):\n{_tail(dump.stderr, 20)}"
    probe = dict(re.findall(r'<pre id="gnilab-probe-(\w+)">([^<]*)</pre>', dump.stdout))
    assert "error" not in probe, f"the deck has no reveal.js: {probe['error']}"
    assert {"before", "after", "slides"} <= set(probe), (
        f"reveal.js never became ready (probe output {probe}); page tail:\n{_tail(dump.stdout, 20)}")
    before, after = json.loads(probe["before"]), json.loads(probe["after"])
    assert json.loads(probe["slides"]) >= 3, f"the deck has only {probe['slides']} slides"
    assert (after["h"], after.get("v", 0)) != (before["h"], before.get("v", 0)), (
        f"the right arrow did not move the deck: indices {before} -> {after}")

    page = _PageText()
    page.feed(dump.stdout)
    page.close()
    assert page.mathjax >= 1, "no mjx-container in the deck: MathJax did not typeset the maths"
    assert page.math_errors == 0, f"MathJax reported {page.math_errors} TeX error(s) in the deck"
    assert any(_is_output_figure(src) for src in page.images), "the deck shows no figure"


REFERENCE = "book/reference/stable.html"
CHAPTER = "notebooks/01_stable_laws.html"


def test_reference_page_typesets_and_is_linked_from_a_chapter(tmp_path, browser, html_dir):
    """The library reference is generated from the docstrings: its equations are typeset by
    the book's MathJax, each public function has an anchor, and a chapter's text links to it."""
    chapter = (html_dir / CHAPTER).read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]*reference/stable\.html#gnilab\.stable\.[A-Za-z_]+)"', chapter)
    assert links, f"{CHAPTER} has no link into {REFERENCE}"
    source = (html_dir / REFERENCE).read_text(encoding="utf-8")
    for link in links:
        anchor = link.split("#", 1)[1]
        assert f'id="{anchor}"' in source, f"{CHAPTER} links #{anchor}, which {REFERENCE} lacks"

    with _serve(html_dir) as base:
        dump = _chromium(browser, tmp_path / "profile-ref", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                         "--dump-dom", f"{base}/{REFERENCE}")
    assert dump.returncode == 0, f"--dump-dom failed ({dump.returncode}):\n{_tail(dump.stderr, 20)}"
    page = _PageText()
    page.feed(dump.stdout)
    page.close()
    assert page.mathjax >= 5, f"only {page.mathjax} typeset equations on {REFERENCE}"
    assert page.math_errors == 0, f"MathJax reported {page.math_errors} TeX error(s) on {REFERENCE}"
    for anchor in ("gnilab.stable.fit", "gnilab.stable.tail_index", "gnilab.stable.Stable"):
        assert f'id="{anchor}"' in dump.stdout, f"{anchor} is not documented on {REFERENCE}"
    visible = " ".join(page.text)
    for section in ("Parameters", "Returns"):
        assert section in visible, f"no {section!r} section on {REFERENCE}"
