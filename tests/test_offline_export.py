"""The exports read offline: MathJax's settings name only files its bundle has, the notebooks'
links to docs/method.md land on headings of its rendering, decks load a local reveal.js, and in
headless Chromium with the network off an exported notebook and its deck render their equations,
figures and links, and the deck advances."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from bs4 import BeautifulSoup

from sspa_core import notebooks as runner
from sspa_core.notebooks import export

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
STYLES = {"": "Regular", "-bold": "Bold", "-italic": "Italic", "-bold-italic": "BoldItalic"}


def test_mathjax_settings_name_only_files_of_the_bundle(tmp_path):
    """Every configuration file of MATHJAX_ENTRY is in the copy, and every font of the web font the
    settings choose has its metrics (``Main.js``) and its ``.woff`` there."""
    url = export.local_mathjax(tmp_path)
    if url is None:
        pytest.skip("jupyter_server_mathjax is not installed")
    mathjax = tmp_path / "mathjax"
    for name in url.split("config=", 1)[1].split(","):
        assert (mathjax / "config" / f"{name}.js").is_file(), name
    font = export.MATHJAX_SETTINGS["HTML-CSS"]["webFont"]
    metrics = mathjax / "jax" / "output" / "HTML-CSS" / "fonts" / font
    fonts = set(re.findall(r'"(STIXMathJax_[A-Za-z]+(?:-[a-z-]+)?)"', (metrics / "fontdata.js").read_text()))
    assert len(fonts) > 40
    for name in fonts:
        family, _, style = name.partition("-")
        style = STYLES["-" + style if style else ""]
        assert (mathjax / "fonts" / "HTML-CSS" / font / "woff" / f"{family}-{style}.woff").is_file(), name
        assert (metrics / family.split("_", 1)[1] / style / "Main.js").is_file(), name
    assert "STIX-Web" in (mathjax / "config" / "sspa.js").read_text()


def test_notebook_links_to_the_method_land_on_its_headings():
    """Each ``../docs/method.md#anchor`` of a notebook names a heading id of the rendered page
    (GitHub's slugs, as the notebooks write them)."""
    ids = {tag["id"] for tag in BeautifulSoup(export.render_markdown(METHOD.read_text()), "html.parser")
           .find_all(id=True)}
    assert {"soft-aggregator", "training-defaults", "offline-world"} <= ids
    for path in runner.list_notebooks():
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        for anchor in re.findall(r"\]\(\.\./docs/method\.md#([^)]+)\)", text):
            assert anchor in ids, f"{path.name}: #{anchor}"


def test_the_vendored_reveal_is_small_licensed_and_self_contained():
    assert sum(p.stat().st_size for p in export.REVEAL_DIR.rglob("*") if p.is_file()) < 500_000
    for folder in ("reveal.js", "requirejs"):
        assert "Permission is hereby granted" in (export.REVEAL_DIR / folder / "LICENSE").read_text()  # MIT
    theme = export.REVEAL_DIR / "reveal.js" / "dist" / "theme" / f"{export.REVEAL_THEME}.css"
    assert "@import" not in theme.read_text()  # it loads no font from elsewhere


def _cell(kind: str, source: str) -> nbformat.NotebookNode:
    cell = getattr(nbformat.v4, f"new_{kind}_cell")(source)
    if source.startswith("#"):
        cell.metadata["slideshow"] = {"slide_type": "slide"}
    return cell


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny notebook tree (a copy of docs/method.md beside it) run and exported as HTML and
    slides, and the next notebook exported as HTML: the output folder."""
    root = tmp_path_factory.mktemp("site")
    (root / "docs").mkdir()
    shutil.copy(METHOD, root / "docs" / "method.md")
    notebooks, out = root / "notebooks", root / "out"
    notebooks.mkdir()
    out.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [
        _cell("markdown", "# 00 · Tiny\n\nThe reference: [§Soft aggregator](../docs/method.md#soft-aggregator)."),
        _cell("markdown", "## 1 · A figure\n\nThe regional logit, with $x_0$ inline:\n\n"
                          "$$s^R_j = \\sum_{i=1}^{M} w_{ij}\\, s_{ij}. \\tag{16}$$"),
        _cell("code", "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\n"
                      "ax.plot([0, 1], [1, 0])\nfig.suptitle('a falling line')\nplt.show()"),
        _cell("markdown", "## Next\n\n[01 · Next](01_next.ipynb)"),
    ]
    nbformat.write(nb, notebooks / "00_tiny.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[_cell("markdown", "# 01 · Next")]), out / "01_next.ipynb")
    runner.execute_notebook(notebooks / "00_tiny.ipynb", {}, out / "00_tiny.ipynb", formats=("html", "slides"))
    runner.export_html(out / "01_next.ipynb")
    return out


def test_exports_link_locally_and_describe_their_figures(exported):
    soup = BeautifulSoup((exported / "00_tiny.html").read_text(), "html.parser")
    links = {a["href"] for a in soup.find_all("a", href=True) if not a["href"].startswith("#")}
    assert links == {"docs/method.html#soft-aggregator", "01_next.html"}
    assert [img["alt"] for img in soup.find_all("img")] == ["a falling line"]
    slides = (exported / "00_tiny.slides.html").read_text()
    assert "reveal/reveal.js/dist/reveal.js" in slides and "unpkg.com" not in slides
    assert "reveal/requirejs/require.js" in slides and (exported / "reveal" / "requirejs" / "require.js").is_file()
    assert export.QUEUED_RERENDER[0] not in slides and export.QUEUED_RERENDER[1] in slides


class Chromium:
    """Headless Chromium with the network off, driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: JSON messages ending in NUL, on the browser's fds 3 and 4)."""

    def __init__(self, profile: Path):
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()

        def pipes() -> None:  # the browser reads fd 3 and writes fd 4
            read, write = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--window-size=1200,1600", "--allow-file-access-from-files"],
            preexec_fn=pipes, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", self.session)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._reader], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params) -> dict:
        self._id += 1
        os.write(self._writer, json.dumps({"id": self._id, "method": method, "params": params,
                                           **({"sessionId": session} if session else {})}).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while (message := self._message(deadline)).get("id") != self._id:
            self.events.append(message)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]

    def js(self, expression: str, timeout: float = 30):
        """The value of ``expression`` in the page (a promise is awaited)."""
        result = self.send("Runtime.evaluate", self.session, timeout=timeout, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, condition: str, timeout: float = 30) -> None:
        """Wait until ``condition`` (a JavaScript expression) is true in the page."""
        deadline = time.monotonic() + timeout
        while not self.js(f"!!({condition})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"not true after {timeout} s: {condition}")
            time.sleep(0.2)

    def open(self, url: str, ready: str) -> None:
        """Load ``url`` and wait until it has loaded and ``ready`` is true."""
        self.events.clear()
        self.send("Page.navigate", self.session, url=url)
        self.wait(f"document.readyState === 'complete' && {ready}")

    def press(self, key: str, code: int) -> None:
        """Press and release the key ``key`` (its Windows virtual key code ``code``)."""
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", self.session, type=kind, key=key, code=key,
                      windowsVirtualKeyCode=code)

    def failed_files(self) -> list[str]:
        """The local files the page asked for and could not load."""
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"}
        failed = [urls.get(e["params"]["requestId"], "?") for e in self.events
                  if e.get("method") == "Network.loadingFailed"]
        return [url for url in failed if url.startswith("file:")]

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", self.session)["data"]))
        return path

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._writer)
        os.close(self._reader)


#: MathJax, started (``MathJax.isReady``), has done what its queue holds: the page's typesetting
TYPESET = "new Promise(done => MathJax.Hub.Queue(() => done(true)))"
MATH = """(() => ({
  displays: [...document.querySelectorAll('.MathJax_Display')].map(d => d.innerText),
  inline: document.querySelectorAll('span.MathJax').length,
  errors: [...document.querySelectorAll('.MathJax_Error, merror')].map(e => e.textContent),
  stix: [...document.fonts].filter(f => f.family.includes('STIXMathJax') && f.status === 'loaded').length,
  raw: document.body.innerText.includes('$$'),
}))()"""


@pytest.fixture
def chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    browser = Chromium(tmp_path / "profile")
    yield browser
    browser.close()


def _checked(browser: Chromium, tmp_path: Path, name: str, checks) -> None:
    """Run ``checks()``; on failure keep a screenshot of the page in ``tmp_path`` and say where."""
    try:
        checks()
    except Exception:
        print(f"screenshot of the failing page: {browser.screenshot(tmp_path / f'{name}.png')}")
        raise


def test_offline_chromium_renders_the_notebook_and_advances_the_deck(exported, chromium, tmp_path):
    page = exported / "00_tiny.html"

    def notebook() -> None:
        chromium.open(page.as_uri(), "window.MathJax && MathJax.isReady")
        assert chromium.js(TYPESET)
        math = chromium.js(MATH)
        assert math["errors"] == [] and not math["raw"], math
        assert len(math["displays"]) == 1 and "(16)" in math["displays"][0], math  # the paper's number
        assert math["inline"] >= 2 and math["stix"] > 0, math  # typeset with the bundle's STIX web fonts
        images = chromium.js("[...document.images].map(i => [i.naturalWidth, i.alt])")
        assert images == [[images[0][0], "a falling line"]] and images[0][0] > 0
        for url in chromium.js("[...document.querySelectorAll('a[href]')].map(a => a.href)"):
            parts = urlsplit(url)
            if parts.scheme == "file" and not url.startswith(page.as_uri() + "#"):
                target = Path(unquote(parts.path))
                assert target.is_file(), url
                assert not parts.fragment or f'id="{parts.fragment}"' in target.read_text(), url
        assert chromium.failed_files() == []

    def method() -> None:
        chromium.open((exported / "docs" / "method.html").as_uri(), "window.MathJax && MathJax.isReady")
        assert chromium.js(TYPESET, timeout=60)
        math = chromium.js(MATH)
        assert math["errors"] == [] and len(math["displays"]) >= 19, math
        assert chromium.failed_files() == []

    def deck() -> None:  # reveal.js is a RequireJS module there: no global Reveal
        # on a slow CPU, the next slide is shown as soon as the deck is: often while MathJax still
        # typesets the page, when nbconvert's deck re-rendered it outside MathJax's queue and got
        # "[Math Processing Error]" (a race: twice; the exports test checks the queued call itself)
        chromium.send("Emulation.setCPUThrottlingRate", chromium.session, rate=6)
        for _ in range(2):
            chromium.open((exported / "00_tiny.slides.html").as_uri(), "document.querySelector('.reveal.ready')")
            assert "00 · Tiny" in chromium.js("document.querySelector('.slides > section.present').innerText")
            chromium.press("ArrowRight", 39)
            chromium.wait("location.hash === '#/1'")
            assert "1 · A figure" in chromium.js("document.querySelector('.slides > section.present').innerText")
            assert chromium.js(TYPESET) and chromium.js(MATH)["errors"] == []
            assert chromium.failed_files() == []

    for name, checks in (("notebook", notebook), ("method", method), ("deck", deck)):
        _checked(chromium, tmp_path, name, checks)
