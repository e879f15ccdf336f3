"""Knowledge-Aware Prompting (KAP, eq. 4; docs/method.md §KAP): label descriptions ``D_j = LLM(P_j)``.

``P_j`` is an in-context prompt read from ``data/prompts/<domain>.yaml``: a domain
description and an instruction (the system turn), in-context examples (question/answer
turns) and the query for label j. The answer is one sentence that starts with the label's
readable name and gives visual attributes plus the objects or places seen with it.

Description files (``data/descriptions/<label set>.json``) hold ``descriptions`` (label →
sentence), ``names`` (label → the readable name the sentence starts with; e.g.
``hs-BaldHead`` → ``bald head``) and ``provenance`` (how they were produced, the template and
its hash, the model, the date). The shipped files are curated, not LLM output (their
provenance says so); :func:`generate_descriptions` / ``sspa describe`` produce new ones with
any causal LM, by default the offline SmolLM2 (:mod:`sspa_core.llm`). Generation runs that the
project ships lie in ``data/descriptions/llm/<label set>.json`` (:data:`LLM_RUNS_DIR`), written
there by the command their provenance records, beside its model, seconds and post-processing.

Post-processing of an answer (:func:`postprocess`), in order:

1. keep the first non-empty line, drop an ``Answer:``-style lead and surrounding quotes or
   asterisks, and keep its first sentence (up to ``.``, ``!`` or ``?`` followed by a space);
2. the sentence must start with the name (case-insensitive, after an optional article; a
   plural ``s``/``es`` is accepted). Repair rule otherwise: a leading pronoun (``It is``,
   ``This is``, ``They are`` …) is replaced by the name; any other sentence is kept behind
   ``"{Name}: "`` (status ``repaired``);
3. a sentence of more than ``max_words`` words is cut to ``max_words`` words (status
   ``truncated``); a sentence without final punctuation (cut, or stopped by the token limit)
   loses its trailing connectives (``and``, ``with``, commas …) and gets a full stop;
4. an empty answer, or one shorter than ``min_words`` words, falls back to ``"{Name}."``
   (status ``fallback``): it adds no knowledge, and eq. 4's text becomes
   ``"{Name}. A photo of a {label}."``.
The labels repaired, truncated or fallen back are listed in the file's provenance.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sspa_core import __version__, paths
from sspa_core.domains import canonical_domain, canonical_name
from sspa_core.llm import Message

PROMPTS_DIR = paths.DATA_DIR / "prompts"
DESCRIPTIONS_DIR = paths.DATA_DIR / "descriptions"
LLM_RUNS_DIR = DESCRIPTIONS_DIR / "llm"  # shipped `sspa describe` runs, not the curated files
POSTPROCESS_STATUSES = ("ok", "repaired", "truncated", "fallback")
TEMPLATE_KEYS = ("domain", "domain_description", "instruction", "query", "naive_query", "examples")
MIN_WORDS = 5
MAX_WORDS = 40

_LEAD = re.compile(r"^(?:answer|description|a)\s*:\s*", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_PRONOUN = re.compile(r"^(?:it|this|they|these|that)(?:\s+|['’]s\s*)(?=\w)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_TRAILING = re.compile(r"(?:[\s,;:\-]|\b(?:and|or|with|of|the|a|an|to|in|on|often|such as)\b)+$",
                       re.IGNORECASE)


def label_phrase(label: str) -> str:
    """Readable lower-case form of a raw label: ``Age18-60`` → ``age 18 to 60``,
    ``hs-BaldHead`` → ``hs bald head``, ``Skirt&Dress`` → ``skirt or dress``,
    ``bare-soil`` → ``bare soil``. Curated description files may name a label better."""
    text = re.sub(r"(\d)\s*-\s*(\d)", r"\1 to \2", label.strip())
    text = text.replace("&", " or ").replace("_", " ").replace("-", " ")
    text = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    text = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", text)
    phrase = " ".join(text.split()).lower()
    if not phrase:
        raise ValueError(f"label {label!r} has no readable characters")
    return phrase


def _capitalised(name: str) -> str:
    return name if any(c.isupper() for c in name) else name[:1].upper() + name[1:]


# --- prompt templates -------------------------------------------------------------------------

def template_path(domain: str | os.PathLike) -> Path:
    """``data/prompts/<domain>.yaml`` for a domain name, or ``domain`` itself when it is a file."""
    if Path(domain).suffix in {".yaml", ".yml"}:
        path = Path(domain)
        if not path.is_file():
            raise FileNotFoundError(f"prompt template not found: {path}")
        return path
    try:
        return PROMPTS_DIR / f"{canonical_domain(str(domain))}.yaml"
    except ValueError as err:
        raise ValueError(f"{err}; or a .yaml template file") from None


def load_template(domain: str | os.PathLike) -> dict[str, Any]:
    """Read and check a prompt template (keys :data:`TEMPLATE_KEYS`; each example has a
    ``name`` and an ``answer`` that starts with it)."""
    path = template_path(domain)
    template = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(template, dict):
        raise ValueError(f"{path}: a prompt template must be a mapping")
    missing = [k for k in TEMPLATE_KEYS if k not in template]
    if missing:
        raise ValueError(f"{path}: prompt template lacks {missing}")
    for key in ("query", "naive_query"):
        if "{name}" not in template[key]:
            raise ValueError(f"{path}: {key!r} must contain the placeholder {{name}}")
    examples = template["examples"]
    if not isinstance(examples, list) or not examples:
        raise ValueError(f"{path}: 'examples' must be a non-empty list of {{name, answer}}")
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not {"name", "answer"} <= set(ex):
            raise ValueError(f"{path}: example {i} needs 'name' and 'answer'")
        if not ex["answer"].lower().startswith(ex["name"].lower()):
            raise ValueError(f"{path}: example {i} answer does not start with {ex['name']!r}")
    return template


def template_hash(template: dict[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the template's content, independent of YAML layout."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def build_messages(name: str, template: dict[str, Any], naive: bool = False) -> list[Message]:
    """The chat prompt ``P_j`` for the label named ``name``: system turn (domain description +
    instruction), one user/assistant pair per in-context example, then the query. ``naive``
    gives the bare question (``naive_query``) with no context, the paper's poor baseline."""
    if naive:
        return [{"role": "user", "content": template["naive_query"].format(name=name)}]
    messages: list[Message] = [
        {"role": "system", "content": f"{template['domain_description']} {template['instruction']}"}
    ]
    for ex in template["examples"]:
        messages.append({"role": "user", "content": template["query"].format(name=ex["name"])})
        messages.append({"role": "assistant", "content": ex["answer"]})
    messages.append({"role": "user", "content": template["query"].format(name=name)})
    return messages


# --- post-processing --------------------------------------------------------------------------

def first_sentence(text: str) -> str:
    """First sentence of the first non-empty line, without an ``Answer:`` lead, quotes or
    markdown emphasis."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = _LEAD.sub("", line.replace("**", "").replace("*", "")).strip().strip("\"'“”‘’ ")
    match = _SENTENCE_END.search(line)
    return line[: match.end()] if match else line


def postprocess(text: str, name: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> tuple[str, str]:
    """One description sentence from an LLM answer; returns ``(sentence, status)`` with status
    ``ok``, ``repaired``, ``truncated`` or ``fallback`` (rules in the module docstring)."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words (got {min_words}, {max_words})")
    title = _capitalised(name)
    sentence, status = first_sentence(text), "ok"
    body = _ARTICLE.sub("", sentence)
    starts_with_name = re.match(re.escape(name) + r"(?:e?s)?(?!\w)", body, re.IGNORECASE)  # "Keyboards are …" too
    if starts_with_name:
        sentence = title + body[len(name):]
    elif sentence and _PRONOUN.match(sentence):
        lead = _PRONOUN.match(sentence).group(0)
        verb = "is " if re.search(r"['’]s", lead) else ""  # "It's a …" → "{Name} is a …"
        sentence, status = f"{title} {verb}{sentence[len(lead):]}", "repaired"
    elif sentence:
        sentence, status = f"{title}: {sentence}", "repaired"
    words = sentence.split()
    if len(words) < min_words:
        return f"{title}.", "fallback"
    if len(words) > max_words:
        sentence, status = " ".join(words[:max_words]), "truncated"
    if not sentence.endswith((".", "!", "?")):  # cut off by the token limit, or truncated
        sentence = _TRAILING.sub("", sentence) + "."
    return sentence, status


# --- description files ------------------------------------------------------------------------

def validate_descriptions(descriptions: dict[str, str], label_names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the labels missing from ``descriptions``, the extra ones, and
    those whose description is not a non-empty string."""
    names = list(label_names)
    missing = [n for n in names if n not in descriptions]
    extra = sorted(set(descriptions) - set(names))
    empty = [n for n in names if n in descriptions
             and (not isinstance(descriptions[n], str) or not descriptions[n].strip())]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing label(s): {missing}")
    if extra:
        problems.append(f"{len(extra)} extra label(s) not in the label list: {extra}")
    if empty:
        problems.append(f"{len(empty)} empty or non-text description(s): {empty}")
    if problems:
        raise ValueError("descriptions do not match the label list: " + "; ".join(problems))


def description_path(name_or_path: str | os.PathLike) -> Path:
    """A JSON file path, or ``data/descriptions/<name>.json`` for a shipped name."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or os.sep in str(name_or_path):
        if not candidate.is_file():
            raise FileNotFoundError(f"description file not found: {candidate}")
        return candidate
    path = DESCRIPTIONS_DIR / f"{canonical_name(str(name_or_path))}.json"
    if not path.is_file():
        shipped = sorted(p.stem for p in DESCRIPTIONS_DIR.glob("*.json"))
        raise FileNotFoundError(f"no description file {path}; shipped: {', '.join(shipped) or 'none'}")
    return path


def load_description_file(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The whole document (``label_set``, ``domain``, ``provenance``, ``names``,
    ``descriptions``) of a shipped name (file stem in ``data/descriptions/``) or a JSON path."""
    path = description_path(name_or_path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("descriptions"), dict):
        raise ValueError(f"{path}: not a description file (no 'descriptions' mapping)")
    if "provenance" not in doc:
        raise ValueError(f"{path}: a description file must state its provenance")
    return doc


def load_descriptions(name_or_path: str | os.PathLike) -> dict[str, str]:
    """Label → description sentence, from a shipped name (e.g. ``"coco"``) or a JSON path."""
    return dict(load_description_file(name_or_path)["descriptions"])


def postprocess_statuses(doc: dict[str, Any]) -> dict[str, str]:
    """Label → what post-processing did to its description (:data:`POSTPROCESS_STATUSES`), read
    from a generated document's provenance; ``curated`` for every label of a hand-written file."""
    done = doc["provenance"].get("postprocess")
    if done is None:
        return {label: "curated" for label in doc["descriptions"]}
    return {label: next((kind for kind in POSTPROCESS_STATUSES[1:] if label in done[kind]), "ok")
            for label in doc["descriptions"]}


def save_description_file(doc: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a description document as readable UTF-8 JSON (label order kept); returns the path."""
    for key in ("provenance", "names", "descriptions"):
        if key not in doc:
            raise ValueError(f"a description document needs {key!r}")
    validate_descriptions(doc["descriptions"], list(doc["names"]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --- generation -------------------------------------------------------------------------------

def generate_descriptions(
    label_names: Sequence[str],
    domain: str | os.PathLike = "natural",
    model: str | os.PathLike | None = None,
    names: dict[str, str] | None = None,
    naive: bool = False,
    batch_size: int = 8,
    max_new_tokens: int = 48,
    seed: int = 0,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    label_set: str = "",
    llm: tuple[Any, Any, str] | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Ask a causal LM for one description per label (eq. 4) and return a description document
    with provenance (save it with :func:`save_description_file`): the model, the template, the
    generation settings, the seconds the call took and the torch threads it ran on, and
    ``command``, the command line that produced it (``sspa describe`` passes its own).

    ``names`` maps labels to the readable names used in the prompt (default
    :func:`label_phrase`). The answer is primed with the name (the assistant turn starts with
    it), so a small model stays on topic; generation is greedy and batched (see
    :func:`sspa_core.llm.generate`). ``llm`` reuses an already loaded ``(model, tokenizer,
    model_id)`` from :func:`sspa_core.llm.load_causal_lm` instead of loading ``model``.
    """
    import torch

    from sspa_core.llm import generate, load_causal_lm, render_chat

    start = time.perf_counter()
    labels = [str(n) for n in label_names]
    if not labels:
        raise ValueError("label_names is empty: at least one label is needed")
    if len(set(labels)) != len(labels):
        raise ValueError(f"label_names has duplicates: {sorted({n for n in labels if labels.count(n) > 1})}")
    names = {label: (names or {}).get(label) or label_phrase(label) for label in labels}
    template = load_template(domain)
    lm, tokenizer, model_id = llm if llm is not None else load_causal_lm(model)
    prompts = [render_chat(tokenizer, build_messages(names[n], template, naive), _capitalised(names[n]))
               for n in labels]
    answers = generate(lm, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    descriptions: dict[str, str] = {}
    statuses: dict[str, list[str]] = {"repaired": [], "truncated": [], "fallback": []}
    for label, answer in zip(labels, answers):
        sentence, status = postprocess(_capitalised(names[label]) + answer, names[label], min_words, max_words)
        descriptions[label] = sentence
        if status != "ok":
            statuses[status].append(label)
    source = template_path(domain)
    return {
        "label_set": label_set,
        "domain": template["domain"],
        "provenance": {
            "produced_by": "llm",
            "statement": f"generated by {model_id} with `sspa describe` (sspa {__version__}); "
                         "not reviewed by hand",
            "model": model_id,
            "template": _relative(source),
            "template_sha256": template_hash(template),
            "prompt": "naive" if naive else "in-context",
            **({"command": command} if command else {}),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generation": {"greedy": True, "seed": seed, "batch_size": batch_size,
                           "max_new_tokens": max_new_tokens, "answer_primed_with_name": True,
                           "seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads()},
            "postprocess": {"min_words": min_words, "max_words": max_words, **statuses},
        },
        "names": names,
        "descriptions": descriptions,
    }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)
