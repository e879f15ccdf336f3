"""The training engine: schedule, learning-rate groups, EMA, clipping, evaluation, feature cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from sspa_core import features as features_module
from sspa_core.backbone import load_backbone
from sspa_core.baselines import build_model
from sspa_core.config import DEFAULTS, merge
from sspa_core.engine import Trainer, gather_scores, load_trained_model, trainable_state
from sspa_core.features import batch_loader, cached_features, dense_features
from sspa_core.model import SSPAConfig, build_loss
from sspa_core.training import ema_decay

LABELS = ["cat", "dog", "car", "person", "bus"]
IMAGE_SIZE = 64  # 4×4 patches of the tiny ViT


class FixedImages(Dataset):
    """Random images without augmentation, with a multi-hot target per image."""

    label_names = LABELS
    masks = None

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
        self.targets = (torch.rand(n, len(LABELS), generator=g) < 0.4).float().numpy()
        self.targets[0] = 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "target": torch.from_numpy(self.targets[i]),
                "mask": torch.ones(len(LABELS)), "index": i}


def config(**train) -> dict:
    base = {"epochs": 2, "batch_size": 4, "lr": 1e-2, "encoder_lr": 1e-4, "ema": False,
            "eval_batch_size": 8, "progress": False, "warmup_epochs": 0.5}
    return merge(DEFAULTS, {"train": {**base, **train}, "model": {"sspa": {"kap_source": "template", "n_ctx": 4}}})


def make_trainer(weights, tmp_path, name: str = "sspa", freeze: bool = True, **train) -> Trainer:
    backbone = load_backbone("sspa-tiny-vit", pretrained=str(weights), image_size=IMAGE_SIZE)
    if freeze:
        backbone.freeze_image()
    sspa_config = SSPAConfig(kap_source="template", n_ctx=4)
    torch.manual_seed(0)
    model = build_model(name, backbone, LABELS, config=sspa_config)
    return Trainer(model, build_loss(sspa_config), LABELS, name, config(**train), tmp_path, torch.device("cpu"))


def test_dense_features_in_memory_equal_the_backbone_on_each_image(tiny_weights):
    backbone = load_backbone("sspa-tiny-vit", pretrained=str(tiny_weights), image_size=IMAGE_SIZE)
    data = FixedImages(7, seed=3)
    x0, X, targets = dense_features(backbone, data, n=5, batch_size=2)
    with torch.no_grad():
        ref_x0, ref_X = backbone.encode_image_dense(data.images[:5])
    assert torch.allclose(x0, ref_x0, atol=1e-5) and torch.allclose(X, ref_X, atol=1e-5)
    assert torch.equal(targets, torch.from_numpy(data.targets[:5]))
    with pytest.raises(ValueError, match="empty"):
        dense_features(backbone, data, n=0)


def test_cached_feature_training_matches_end_to_end_training(tiny_weights, tmp_path):
    train_set, eval_set = FixedImages(8, seed=0), FixedImages(6, seed=1)
    end_to_end = make_trainer(tiny_weights, tmp_path / "images")
    initial = {k: v.clone() for k, v in end_to_end.model.state_dict().items()}
    end_to_end.fit(train_set, eval_set)

    cached = make_trainer(tiny_weights, tmp_path / "features")
    backbone = cached.model.backbone
    cache = dict(backbone=backbone, backbone_name="sspa-tiny-vit", cache_dir=tmp_path / "cache", dtype="float32")
    train_features = cached_features(**cache, dataset=train_set, dataset_id="fixed-0", split="train")
    eval_features = cached_features(**cache, dataset=eval_set, dataset_id="fixed-1", split="val")
    x0, patches = backbone.encode_image_dense(train_set.images[:3])
    torch.testing.assert_close(torch.from_numpy(np.array(train_features.X[:3])), patches)
    torch.testing.assert_close(torch.from_numpy(np.array(train_features.x0[:3])), x0)
    cached.fit(train_features, eval_features)

    for a, b in zip(end_to_end.history, cached.history):
        assert a["mAP"] == pytest.approx(b["mAP"], abs=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    for (name, a), b in zip(end_to_end.model.state_dict().items(), cached.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(initial["global_prompts.ctx"], end_to_end.model.state_dict()["global_prompts.ctx"])


def test_feature_cache_is_computed_once_and_keyed_by_its_inputs(tiny_weights, tmp_path, monkeypatch):
    backbone = load_backbone("sspa-tiny-vit", pretrained=str(tiny_weights), image_size=IMAGE_SIZE)
    kwargs = dict(backbone=backbone, backbone_name="sspa-tiny-vit", cache_dir=tmp_path, dataset_id="fixed")
    first = cached_features(dataset=FixedImages(6, seed=0), split="train", **kwargs)
    assert first.X.shape == (6, 16, 128) and first.X.dtype == np.float16
    assert first[2]["X"].dtype == torch.float32 and first.label_names == LABELS

    def no_recompute(*args, **kw):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(features_module, "extract_features", no_recompute)
    again = cached_features(dataset=FixedImages(6, seed=0), split="train", **kwargs)
    assert again.folder == first.folder
    with pytest.raises(AssertionError, match="recomputed"):  # another split is another entry
        cached_features(dataset=FixedImages(6, seed=0), split="val", **kwargs)
    with torch.no_grad():  # other encoder weights are another entry too
        next(backbone.clip.visual.parameters()).add_(1.0)
    with pytest.raises(AssertionError, match="recomputed"):
        cached_features(dataset=FixedImages(6, seed=0), split="train", **kwargs)


def test_cached_features_are_read_a_batch_at_a_time_with_the_items_values(tiny_weights, tmp_path):
    backbone = load_backbone("sspa-tiny-vit", pretrained=str(tiny_weights), image_size=IMAGE_SIZE)
    cache = cached_features(backbone, FixedImages(7, seed=1), backbone_name="sspa-tiny-vit",
                            dataset_id="fixed", split="train", cache_dir=tmp_path)
    order = [5, 0, 3, 6, 1, 2, 4]
    batches = list(batch_loader(cache, 3, order))
    assert [len(b["index"]) for b in batches] == [3, 3, 1]
    for key in ("x0", "X", "target", "mask"):
        stacked = torch.cat([b[key] for b in batches])
        assert torch.equal(stacked, torch.stack([torch.as_tensor(cache[i][key]) for i in order])), key
    assert torch.cat([b["index"] for b in batches]).tolist() == order
    images = list(batch_loader(FixedImages(7, seed=1), 3, order))  # other datasets: item by item
    assert torch.equal(images[0]["image"], FixedImages(7, seed=1).images[order[:3]])


def test_warmup_then_cosine_schedule_and_two_learning_rates(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, freeze=False, epochs=3, warmup_epochs=1.0)
    groups = trainer.optimizer.param_groups
    assert [(g["name"], g["decay"]) for g in groups] == [
        ("head", True), ("head", False), ("image_encoder", True), ("image_encoder", False)]
    encoder_params = {id(p) for p in trainer.model.backbone.clip.visual.parameters()}
    assert {id(p) for g in groups[2:] for p in g["params"]} == encoder_params
    steps_per_epoch = 3  # 12 images, batch 4
    trainer.build_scheduler(steps_per_epoch)
    lrs = []
    for _ in range(9):
        lrs.append([g["lr"] for g in trainer.optimizer.param_groups])
        trainer.optimizer.step()
        trainer.scheduler.step()
    warmup, total = 3, 9
    for step, (head, _, encoder, _) in enumerate(lrs):
        if step < warmup:
            factor = 0.01 + (1 - 0.01) * step / warmup
        else:
            factor = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert head == pytest.approx(1e-2 * factor, rel=1e-6)
        assert encoder == pytest.approx(1e-4 * factor, rel=1e-6)


def test_ema_is_the_exponential_average_of_the_weights(tiny_weights, tmp_path):
    decay = 0.8
    trainer = make_trainer(tiny_weights, tmp_path, ema=True, ema_decay=decay, ema_warmup=False)
    trainer.build_scheduler(steps_per_epoch=3)
    param = trainer.model.global_prompts.ctx
    name = [n for n, p in trainer.model.named_parameters() if p is param][0]
    expected = None
    loader = torch.utils.data.DataLoader(FixedImages(12, seed=0), batch_size=4)
    for batch in loader:
        trainer.train_step(batch)
        current = param.detach().clone()
        expected = current if expected is None else decay * expected + (1 - decay) * current
    torch.testing.assert_close(dict(trainer.ema.module.named_parameters())[name], expected)
    assert not torch.equal(expected, param)


def test_ema_decay_warms_up_to_the_configured_decay():
    assert [ema_decay(0.9997, n) for n in (0, 1, 10, 90)] == pytest.approx([0.1, 2 / 11, 0.55, 0.91])
    assert ema_decay(0.9997, 10**6) == 0.9997 and ema_decay(0.9997, 5, warmup=False) == 0.9997
    assert ema_decay(0.5, 20) == 0.5  # never above the configured decay


def test_ema_with_warmup_follows_the_warmed_up_decay(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, ema=True, ema_decay=0.9997)
    trainer.build_scheduler(steps_per_epoch=3)
    param = trainer.model.global_prompts.ctx
    name = [n for n, p in trainer.model.named_parameters() if p is param][0]
    expected = None
    for n, batch in enumerate(torch.utils.data.DataLoader(FixedImages(12, seed=0), batch_size=4)):
        trainer.train_step(batch)
        current = param.detach().clone()
        d = ema_decay(0.9997, n)  # n earlier updates; the first one copies the weights
        expected = current if expected is None else d * expected + (1 - d) * current
    torch.testing.assert_close(dict(trainer.ema.module.named_parameters())[name], expected)
    assert int(trainer.ema.n_averaged) == 3 and int(trainer.state_dict()["ema"]["n_averaged"]) == 3


@pytest.mark.parametrize("choice", ["best", "ema", "raw"])
def test_each_evaluation_scores_raw_and_ema_weights_and_records_the_choice(tiny_weights, tmp_path, choice):
    trainer = make_trainer(tiny_weights, tmp_path, ema=True, epochs=1, eval_weights=choice)
    history = trainer.fit(FixedImages(8, seed=0), FixedImages(8, seed=1))
    row = history[-1]
    raw, ema = trainer.evaluate(FixedImages(8, seed=1), "raw"), trainer.evaluate(FixedImages(8, seed=1), "ema")
    expected = {"best": "ema" if ema["mAP"] >= raw["mAP"] else "raw", "ema": "ema", "raw": "raw"}[choice]
    assert row["weights"] == trainer.weights == expected
    assert row["mAP"] == {"ema": ema, "raw": raw}[expected]["mAP"]
    if choice == "best":
        assert (row["mAP_raw"], row["mAP_ema"]) == (raw["mAP"], ema["mAP"])
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert best["weights"] == best["best"]["weights"] == expected
    overrides = [f"model.pretrained={tiny_weights}", f"dataset.image_size={IMAGE_SIZE}",
                 "train.freeze_image_encoder=true"]
    for weights in (None, "ema", "raw"):  # None: the recorded choice
        model, _, _ = load_trained_model(tmp_path / "checkpoints" / "best.pt", weights=weights, overrides=overrides)
        chosen = trainer.ema.module if (weights or expected) == "ema" else trainer.model
        for key, value in trainable_state(chosen).items():
            torch.testing.assert_close(model.state_dict()[key], value)
    with pytest.raises(ValueError, match="unknown weights 'averaged'"):
        load_trained_model(tmp_path / "checkpoints" / "best.pt", weights="averaged", overrides=overrides)


def test_loading_ema_weights_of_a_run_without_them_is_an_error(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, ema=False, epochs=1)
    trainer.fit(FixedImages(8, seed=0), FixedImages(8, seed=1))
    overrides = [f"model.pretrained={tiny_weights}", f"dataset.image_size={IMAGE_SIZE}",
                 "train.freeze_image_encoder=true"]
    with pytest.raises(ValueError, match="holds no EMA weights"):
        load_trained_model(tmp_path / "checkpoints" / "last.pt", weights="ema", overrides=overrides)
    model, _, _ = load_trained_model(tmp_path / "checkpoints" / "last.pt", weights="raw", overrides=overrides)
    for key, value in trainable_state(trainer.model).items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_no_weight_decay_on_scales_offsets_norms_and_prompt_contexts(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, freeze=False, weight_decay=0.05)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    no_decay = {names[id(p)] for g in trainer.optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    decay = {names[id(p)] for g in trainer.optimizer.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    norms = {f"{m}.{n}" for m, module in trainer.model.named_modules() if isinstance(module, torch.nn.LayerNorm)
             for n, _ in module.named_parameters()}
    head_no_decay = {n for n in no_decay if not n.startswith("backbone.")}
    assert head_no_decay == {"global_prompts.ctx", "cap.ctx", "aggregator.log_tau"} | {
        n for n in names.values() if not n.startswith("backbone.") and (n.endswith(".bias") or n in norms)}
    assert {"backbone.clip.visual.class_embedding", "backbone.clip.visual.conv1.weight"} & no_decay == {
        "backbone.clip.visual.class_embedding"}
    assert all(trainer.model.get_parameter(n).ndim >= 2 for n in decay)
    assert "qsm.layers.0.weight_r" in decay and not decay & no_decay
    assert len(decay | no_decay) == len(trainer.trainable)


def test_clip_ft_trains_the_text_encoder_at_the_encoder_learning_rate(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, name="clip_ft", freeze=False)
    text = {id(p) for p in trainer.model.backbone.text_parameters()}
    groups = [g for g in trainer.optimizer.param_groups if g["name"] == "text_encoder"]
    assert {id(p) for g in groups for p in g["params"]} == text and all(g["lr"] == 1e-4 for g in groups)
    before = trainer.model.backbone.clip.token_embedding.weight.detach().clone()
    trainer.build_scheduler(steps_per_epoch=1)
    trainer.train_step(next(iter(torch.utils.data.DataLoader(FixedImages(4, seed=0), batch_size=4))))
    assert not torch.equal(before, trainer.model.backbone.clip.token_embedding.weight)


def test_gradients_are_clipped(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, grad_clip=1e-3)
    trainer.build_scheduler(steps_per_epoch=1)
    trainer.train_step(next(iter(torch.utils.data.DataLoader(FixedImages(4, seed=0), batch_size=4))))
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.trainable if p.grad is not None]))
    assert norm <= 1e-3 * (1 + 1e-5)


def test_model_without_trainable_parameters_is_evaluated_once(tiny_weights, tmp_path):
    trainer = make_trainer(tiny_weights, tmp_path, name="zeroshot")
    history = trainer.fit(FixedImages(8, seed=0), FixedImages(8, seed=1))
    assert trainer.optimizer is None and len(history) == 1 and history[0]["epoch"] == 0
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


def test_gathered_scores_follow_dataset_order_and_match_the_metrics_module(tiny_weights, tmp_path):
    from sspa_core.metrics import mean_average_precision

    trainer = make_trainer(tiny_weights, tmp_path)
    dataset = FixedImages(10, seed=3)
    scores, targets, masks = gather_scores(trainer.model, dataset, batch_size=4)
    with torch.no_grad():
        direct = trainer.model.eval()(dataset.images)["score"]
    torch.testing.assert_close(torch.from_numpy(scores), direct, rtol=1e-5, atol=1e-6)
    assert np.array_equal(targets, dataset.targets) and masks.shape == targets.shape
    assert trainer.evaluate(dataset)["mAP"] == pytest.approx(mean_average_precision(scores, targets))
