"""docs/answers.md answers every "Check your understanding" question of every notebook, word for
word as the notebook asks it, so that the key cannot drift from the questions."""

from __future__ import annotations

import re

import nbformat
import pytest

from sspa_core.notebooks import list_notebooks
from sspa_core.paths import REPO_ROOT

NOTEBOOKS = list_notebooks()
ANSWERS = REPO_ROOT / "docs" / "answers.md"
HEADING = "## Check your understanding"


def _questions(text: str) -> list[str]:
    """The numbered items of ``text`` ("1. ..." and its indented continuation lines), each with
    its whitespace collapsed."""
    items: list[str] = []
    inside = False
    for line in text.splitlines():
        if re.match(r"\d+\. ", line):
            items.append(line)
            inside = True
        elif inside and line.startswith(" ") and line.strip():
            items[-1] += " " + line.strip()
        else:
            inside = False
    return [" ".join(item.split()) for item in items]


def _check_cell(path) -> str:
    cells = nbformat.read(path, as_version=4).cells
    return next(c.source for c in cells if c.cell_type == "markdown" and HEADING in c.source)


def _sections() -> dict[str, str]:
    """The body of each ``## <notebook stem>`` section of docs/answers.md."""
    parts = re.split(r"^## (\S+)\n", ANSWERS.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_question_is_answered(path):
    sections = _sections()
    assert path.stem in sections, f"docs/answers.md has no section '## {path.stem}'"
    asked = _questions(_check_cell(path).split(HEADING, 1)[1])
    body = sections[path.stem]
    assert _questions(body) == asked, f"the questions of {path.name} and of docs/answers.md differ"
    starts = [m.start() for m in re.finditer(r"^\d+\. ", body, flags=re.M)] + [len(body)]
    for question, start, end in zip(asked, starts, starts[1:]):
        answer = body[start:end].split("**Answer.**", 1)
        assert len(answer) == 2 and len(answer[1].split()) >= 20, f"{path.stem}: no answer to {question[:60]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_link_to_the_answers_leads_to_the_notebooks_own_section(path):
    for anchor in re.findall(r"\(\.\./docs/answers\.md#([^)]*)\)", _check_cell(path)):
        assert anchor == path.stem and anchor in _sections(), f"{path.name} links to #{anchor}"


def test_the_parser_reads_wrapped_questions():
    text = "1. First line\n   goes on.\n2. Second.\n\n   **Answer.** not a question\n3. Third."
    assert _questions(text) == ["1. First line goes on.", "2. Second.", "3. Third."]
