"""The exercises of notebook 02 (descriptions)."""

from __future__ import annotations

import numpy as np

from sspa_core.descriptions import build_messages, load_template
from sspa_core.exercises.core import Exercise
from sspa_core.viz import cosine_similarity_matrix


def _messages_solution(name: str, template: dict) -> list[dict]:
    messages = [{"role": "system", "content": template["domain_description"] + " " + template["instruction"]}]
    for example in template["examples"]:
        messages += [{"role": "user", "content": template["query"].format(name=example["name"])},
                     {"role": "assistant", "content": example["answer"]}]
    return messages + [{"role": "user", "content": template["query"].format(name=name)}]


def _messages_cases() -> list[tuple]:
    return [("keyboard", load_template("natural")), ("long hair", load_template("pedestrian")),
            ("runway", load_template("remote_sensing"))]


def _cosine_solution(features: np.ndarray) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return unit @ unit.T


def _feature_cases() -> list[tuple]:
    rng = np.random.default_rng(2)
    return [(rng.normal(size=(5, 8)),), (rng.normal(size=(3, 16)) + 2.0,)]


EXERCISES: dict[str, Exercise] = {
    "02.messages": Exercise(
        "in_context_messages(name, template): the chat prompt P_j for a label (eq. 4, Fig. 3), a list of "
        "{'role', 'content'} dicts",
        build_messages, _messages_solution, _messages_cases,
        "system turn: domain_description, a space, instruction; then for every example a user turn (query with "
        "the example's name) and an assistant turn (its answer); last, the query with this label's name"),
    "02.cosine": Exercise(
        "cosine(features): the [C, C] matrix of cosine similarities between the rows of a [C, d] array",
        cosine_similarity_matrix, _cosine_solution, _feature_cases,
        "normalise every row to unit length first; the diagonal must be 1"),
}
