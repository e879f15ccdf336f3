"""Every notebook has the course structure: a header with learning objectives, prerequisites,
time and the paper's sections; numbered sections; take-aways; check-your-understanding
questions; a link to the next notebook."""

from __future__ import annotations

import re

import nbformat
import pytest

from sspa_core.notebooks import NOTEBOOKS_DIR, list_notebooks

NOTEBOOKS = list_notebooks()


def _markdown(path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


def test_the_series_is_complete():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(8)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_the_course_structure(path):
    cells = _markdown(path)
    number = path.name[:2]
    header = cells[0]
    assert header.startswith(f"# {number} · "), "the first cell is the title '# NN · ...'"
    for part in ("**Learning objectives.**", "**Prerequisites.**", "**Time.**"):
        assert part in header, f"the header lacks {part}"
    assert re.search(r"\*\*Learning objectives\.\*\*[^\n]*\n1\. .+\n2\. ", header), "objectives are a numbered list"
    assert "§" in header or "Paper:" in header, "the header names the paper's sections"
    headings = [line for cell in cells[1:] for line in cell.splitlines() if line.startswith("## ")]
    sections = [h for h in headings if h not in ("## Take-aways", "## Check your understanding")]
    assert sections, "the notebook has sections"
    assert [h.split(" · ")[0] for h in sections] == [f"## {k}" for k in range(1, len(sections) + 1)], \
        "sections are numbered 1, 2, 3, ... as '## k · title'"
    assert headings[-2:] == ["## Take-aways", "## Check your understanding"]
    questions = cells[-1].split("## Check your understanding", 1)[1]
    assert len(re.findall(r"^\d\. ", questions, flags=re.M)) >= 2, "at least two questions"
    following = [p.stem for p in NOTEBOOKS if p.name[:2] == f"{int(number) + 1:02d}"]
    link = f"({following[0]}.ipynb)" if following else "(../README.md)"
    assert link in cells[-1], f"the last cell links to {link}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_heading_starts_a_slide(path):
    for cell in nbformat.read(path, as_version=4).cells:
        kind = cell.metadata.get("slideshow", {}).get("slide_type")
        if cell.cell_type == "markdown" and cell.source.startswith(("# ", "## ")):
            assert kind == "slide", cell.source.splitlines()[0]
        if "parameters" in cell.metadata.get("tags", []):
            assert kind == "skip"


METHOD = NOTEBOOKS[0].parents[1] / "docs" / "method.md"


def _tag_numbers(tag: str) -> list[int]:
    """The equation numbers of a tag's text: ``"14"`` or a range ``"14–16"``."""
    match = re.fullmatch(r"(\d+)(?:[–-](\d+))?", tag.strip())
    assert match, f"\\tag{{{tag}}} is neither a number nor a range"
    return list(range(int(match[1]), int(match[2] or match[1]) + 1))


def test_equation_tags_are_the_papers_numbers():
    """Every ``\\tag{n}`` of a notebook's display equations is a number docs/method.md gives one
    of its equations (each once), and no notebook gives a number to two of its displays."""
    numbered = re.findall(r"\\tag\{(\d+)\}", METHOD.read_text(encoding="utf-8"))
    assert len(numbered) == len(set(numbered)), "docs/method.md numbers an equation twice"
    for path in NOTEBOOKS:
        tags = [n for cell in _markdown(path) for tag in re.findall(r"\\tag\{([^}]*)\}", cell)
                for n in _tag_numbers(tag)]
        assert set(map(str, tags)) <= set(numbered), f"{path.name}: tags not in docs/method.md"
        assert len(tags) == len(set(tags)), f"{path.name}: an equation number on two displays"


def test_the_prose_number_check_flags_a_typed_claim_and_passes_a_printed_one(tmp_path):
    """A number quoted in Markdown must be printed by the run (or set by its code, or stated in the
    references): tests/test_notebooks_smoke.py applies this to every executed smoke notebook."""
    import nbformat
    from helpers import prose_numbers, unbacked_prose_numbers

    markdown = ("SSPA scores 62.9 (eq. 14, Table VI, notebook 04; Smith et al. (2019))\n$$s = 0.5$$ and `lr=0.1`"
                "\n## 3 · Section\n**Time.** about 2 minutes")
    assert [number for number, _ in prose_numbers(markdown)] == ["62.9"]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("SSPA scores 62.9, the gate opens 0.38 and τ starts at 0.05."),
                      nbformat.v4.new_code_cell("tau = 0.05", outputs=[
                          nbformat.v4.new_output("stream", name="stdout", text="SSPA 62.9 mAP\n")])]
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    assert [n for n, _ in unbacked_prose_numbers(path, references="")] == ["0.38"]  # typed, printed nowhere
    assert unbacked_prose_numbers(path, references="a gate of 0.38") == []  # stated in the references


def _minutes(text: str) -> str:
    """'about 2 minutes' / 'under a minute' / '2 min' / '< 1 min' as one spelling: '2' or '<1'."""
    text = text.strip().lower()
    if text.startswith(("under a minute", "< 1 min")):
        return "<1"
    match = re.match(r"(?:about\s+)?(\d+)\s+min", text)
    assert match, f"not a time: {text!r}"
    return match.group(1)


def test_each_notebooks_time_is_stated_once():
    """The run and read times in a notebook's **Time.** line are those of the syllabus table
    (notebooks/README.md), so the two cannot tell a learner different times."""
    rows = {}
    for line in (NOTEBOOKS_DIR / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"\d\d", cells[0]):
            rows[cells[0]] = (_minutes(cells[4]), _minutes(cells[5]))
    for path in sorted(NOTEBOOKS_DIR.glob("0*.ipynb")):
        header = nbformat.read(path, as_version=4).cells[0].source
        stated = re.search(r"\*\*Time\.\*\*\s*(.+?) to run.*?(\d+ minutes) to read", header, flags=re.S)
        assert stated, f"{path.name}: no '**Time.** ... to run ..., N minutes to read' line"
        assert rows[path.stem[:2]] == (_minutes(stated.group(1)), _minutes(stated.group(2))), path.name
