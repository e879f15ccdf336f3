"""Exports of an executed notebook that work without internet: HTML (:func:`export_html`) and
reveal.js slides (:func:`export_slides`), written beside it, with

* MathJax copied beside them and set to the STIX web fonts its bundle ships (:func:`local_mathjax`);
* reveal.js and RequireJS copied beside them from ``data/reveal`` (:func:`local_reveal`);
* links to sibling notebooks pointing at their HTML, and links to the project's Markdown pages
  (``../docs/method.md#cap``) pointing at those pages rendered beside the outputs
  (``<output>/docs/method.html``, headings with GitHub's anchors, equations with MathJax);
* figures whose alt text is their title, which this module, loaded in the kernel as an IPython
  extension (:func:`load_ipython_extension`; the runner's kernels load it), records with each PNG.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sspa_core.paths import DATA_DIR

__all__ = ["MATHJAX_ENTRY", "MATHJAX_SETTINGS", "QUEUED_RERENDER", "REVEAL_DIR", "REVEAL_THEME", "export_html",
           "export_slides", "figure_title", "github_slug", "load_ipython_extension", "local_mathjax", "local_reveal",
           "render_markdown"]

#: MathJax's entry point inside the folder :func:`local_mathjax` copies: the bundle's combined
#: configuration, its Safe extension and this project's settings (``config/sspa.js``)
MATHJAX_ENTRY = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,sspa"
#: ``config/sspa.js``: the bundle's only fonts are the STIX web fonts of the HTML-CSS output (its
#: default, the TeX fonts, is missing), so HTML-CSS uses them, never a local or an image font; the
#: hidden MathML copy for screen readers keeps the page's font (the NativeMML output's styles
#: would fetch a TeX font for \mathcal or \mathbb)
MATHJAX_SETTINGS = {"HTML-CSS": {"webFont": "STIX-Web", "availableFonts": [], "preferredFont": None,
                                 "imageFont": None},
                    "MMLorHTML": {"prefer": "HTML"},
                    "styles": {".MJX_Assistive_MathML [mathvariant]": {"font-family": "inherit"}}}
#: reveal.js 5.2.1 and RequireJS 2.3.8, as a deck loads them (``data/reveal/README.md``)
REVEAL_DIR = DATA_DIR / "reveal"
REVEAL_THEME = "serif"  # the reveal.js theme that loads no font file
#: nbconvert's deck re-renders the equations of each slide it shows outside MathJax's queue: a
#: slide shown while the page is still being typeset got "[Math Processing Error]"
QUEUED_RERENDER = ("MathJax.Hub.Rerender(Reveal.getCurrentSlide());",
                   'MathJax.Hub.Queue(["Rerender", MathJax.Hub, Reveal.getCurrentSlide()]);')

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ max-width: 60rem; margin: 2rem auto; padding: 0 1rem; font: 16px/1.5 system-ui, sans-serif; }}
code, pre {{ background: #f6f8fa; border-radius: 4px; }}
code {{ padding: 0.1em 0.3em; }}
pre {{ padding: 0.8em; overflow: auto; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d0d7de; padding: 0.3em 0.6em; }}
div.math {{ overflow-x: auto; }}
</style>
{mathjax}
</head>
<body>
{body}
</body>
</html>
"""


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it holds it already, by an atomic rename (exports of
    concurrent notebooks write the same shared files)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def local_mathjax(output_dir: Path) -> str | None:
    """Copy MathJax (the static files of ``jupyter_server_mathjax``) into ``output_dir/mathjax``
    once, with :data:`MATHJAX_SETTINGS` as ``config/sspa.js``, so that the exports beside it render
    equations offline; the relative URL of :data:`MATHJAX_ENTRY`, or None when the package is
    missing (nbconvert's CDN default then applies)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    target = Path(output_dir) / "mathjax"
    if not (target / "MathJax.js").is_file():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", target, dirs_exist_ok=True)
    _write(target / "config" / "sspa.js", f"MathJax.Hub.Config({json.dumps(MATHJAX_SETTINGS)});\n"
                                          'MathJax.Ajax.loadComplete("[MathJax]/config/sspa.js");\n')
    return f"mathjax/{MATHJAX_ENTRY}"


def local_reveal(output_dir: Path) -> str:
    """Copy reveal.js and RequireJS (:data:`REVEAL_DIR`) into ``output_dir/reveal`` once; the
    folder's relative URL."""
    target = Path(output_dir) / "reveal"
    if not (target / "reveal.js" / "dist" / "reveal.js").is_file():
        shutil.copytree(REVEAL_DIR, target, dirs_exist_ok=True)
    return "reveal"


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading of this text: lower case, punctuation dropped (``-`` and
    ``_`` kept), spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def render_markdown(text: str) -> str:
    """A Markdown page as HTML (mistune): tables, raw HTML, headings with GitHub's anchors (a repeated
    one gets ``-1``, ``-2``, ...), and ``$...$``/``$$...$$`` kept for MathJax."""
    import mistune
    from mistune.core import BlockState
    from mistune.util import striptags

    markdown = mistune.create_markdown(escape=False, plugins=["math", "table", "strikethrough", "url"])

    def heading_ids(md: Any, state: BlockState) -> None:
        seen: dict[str, int] = {}
        for token in state.tokens:
            if token["type"] == "heading":
                words = html.unescape(striptags(md.renderer(md.inline(token["text"], state.env), BlockState())))
                slug = github_slug(words)
                token["attrs"]["id"] = f"{slug}-{seen[slug]}" if slug in seen else slug
                seen[slug] = seen.get(slug, 0) + 1

    markdown.before_render_hooks.append(heading_ids)
    return markdown(text)


class _Site:
    """Where one export's links lead: links of the notebooks' folder ``source`` (and of the Markdown
    pages of ``source.parent`` they reach) rewritten for the output folder ``out``: a notebook to its
    HTML there, a Markdown page to its rendering there (rendered once, at its place relative to
    ``source.parent``)."""

    def __init__(self, source: Path, out: Path):
        self.source, self.root, self.out = source, source.parent, out
        self.pages: dict[Path, Path] = {}

    def link(self, href: str, here: Path, page_dir: Path) -> str:
        """``href``, written in the folder ``here``, as it reads from ``page_dir`` of the outputs."""
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path:
            return href
        path = (here / unquote(parts.path)).resolve()
        if path.suffix == ".ipynb" and path.parent == self.source:
            target = self.out / f"{path.stem}.html"
        elif path.suffix == ".md" and path.is_file() and path.is_relative_to(self.root):
            target = self.page(path)
        else:
            return href
        return os.path.relpath(target, page_dir).replace(os.sep, "/") + (f"#{parts.fragment}" if parts.fragment else "")

    def page(self, markdown: Path) -> Path:
        """The rendering of the Markdown page ``markdown`` in the outputs (written on first use)."""
        if markdown in self.pages:
            return self.pages[markdown]
        from bs4 import BeautifulSoup

        target = self.pages[markdown] = self.out / markdown.relative_to(self.root).with_suffix(".html")
        text = markdown.read_text(encoding="utf-8")
        soup = BeautifulSoup(render_markdown(text), "html.parser")
        for anchor in soup.find_all("a", href=True):
            anchor["href"] = self.link(anchor["href"], markdown.parent, target.parent)
        mathjax = local_mathjax(self.out)
        script = f'<script src="{os.path.relpath(self.out, target.parent)}/{mathjax}"></script>' if mathjax else ""
        title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), markdown.stem)
        _write(target, PAGE.format(title=html.escape(title), mathjax=script, body=soup))
        return target


def _source_dir(nb: Any, executed: Path) -> Path:
    """The folder of the notebook ``executed`` was run from (papermill records it), else its own."""
    source = Path(nb.metadata.get("papermill", {}).get("input_path") or executed)
    return source.resolve().parent if source.is_file() else executed.resolve().parent


def _figure_alts(nb: Any) -> dict[str, str]:
    """Each PNG output of ``nb`` (its base64 text) -> its alt text: the figure's title the kernel
    recorded (:func:`load_ipython_extension`), else the section it is in."""
    alts, section = {}, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = re.findall(r"^#+\s+(.+)$", cell.source, flags=re.M)
            section = headings[-1].strip() if headings else section
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                alt = output.get("metadata", {}).get("image/png", {}).get("alt")
                alts[output["data"]["image/png"].strip()] = alt or (f"figure of section {section}" if section else "")
    return {data: alt for data, alt in alts.items() if alt}


def _offline(body: str, nb: Any, executed: Path) -> str:
    """An exported page with its links rewritten (:class:`_Site`) and its figures' alt text."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, "html.parser")
    site = _Site(_source_dir(nb, executed), executed.resolve().parent)
    for anchor in soup.find_all("a", href=True):
        anchor["href"] = site.link(anchor["href"], site.source, site.out)
    alts = _figure_alts(nb)
    for image in soup.select('img[src^="data:image/png;base64,"]'):
        alt = alts.get(image["src"].split(",", 1)[1].strip())
        if alt:
            image["alt"] = alt
    return str(soup)


def _export(executed: Path, exporter_name: str, suffix: str, edits: tuple[tuple[str, str], ...] = (),
            **options: Any) -> Path:
    """``executed`` through nbconvert's exporter ``exporter_name`` (with ``options`` and the local
    MathJax), its ``edits`` (``(old, new)`` text replacements) and :func:`_offline`, written beside it
    as ``<name><suffix>``."""
    import nbconvert
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    mathjax = local_mathjax(executed.parent)
    exporter = getattr(nbconvert, exporter_name)(**({"mathjax_url": mathjax} if mathjax else {}), **options)
    body, _ = exporter.from_notebook_node(nb)
    for old, new in edits:
        body = body.replace(old, new)
    out = executed.with_suffix(suffix)
    out.write_text(_offline(body, nb, executed), encoding="utf-8")
    return out


def export_html(executed: Path) -> Path:
    """Write the executed notebook as HTML beside it (nbconvert), readable offline (this module's
    docstring: local MathJax, local links, figures' alt text)."""
    return _export(executed, "HTMLExporter", ".html")


def export_slides(executed: Path) -> Path:
    """Write the executed notebook as reveal.js slides beside it (nbconvert's SlidesExporter):
    ``<name>.slides.html``. Cells carry their slide type in ``metadata.slideshow`` (each section
    heading starts a slide); reveal.js and RequireJS load from the copy :func:`local_reveal`
    makes, equations, links and figures as in :func:`export_html`, so the deck works offline; a
    slide's equations are re-rendered in MathJax's queue (:data:`QUEUED_RERENDER`)."""
    reveal = local_reveal(executed.parent)
    return _export(executed, "SlidesExporter", ".slides.html", edits=(QUEUED_RERENDER,),
                   reveal_url_prefix=f"{reveal}/reveal.js",
                   require_js_url=f"{reveal}/requirejs/require.js", reveal_theme=REVEAL_THEME)


def figure_title(figure: Any, limit: int = 200) -> str:
    """A matplotlib figure's title: its suptitle, else its axes' titles (each once, joined by
    ``"; "``), at most ``limit`` characters; ``""`` when it has none."""
    suptitle = figure.get_suptitle().strip()
    axes = (ax.get_title(loc).strip() for ax in figure.axes for loc in ("left", "center", "right"))
    titles = [suptitle] if suptitle else list(dict.fromkeys(t for t in axes if t))
    title = " ".join("; ".join(titles).split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def load_ipython_extension(ipython: Any) -> None:
    """In a kernel: record each matplotlib figure's title (:func:`figure_title`) with its PNG as
    the output's ``image/png`` metadata ``alt``, which the exports give its ``<img>``."""

    def alt(figure: Any) -> tuple[dict, dict] | None:
        title = figure_title(figure)
        return ({}, {"image/png": {"alt": title}}) if title else None

    ipython.display_formatter.mimebundle_formatter.for_type_by_name("matplotlib.figure", "Figure", alt)
