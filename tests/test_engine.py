"""The engine's shared pieces on CPU: the warm-up + cosine schedule, one optimisation step, mixed
precision (bfloat16 autocast, the float16 gradient scaler, the loss in float32) and the scaler
state in checkpoints."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from helpers import NoisyImages, PatchModel
from torch import nn
from torch.nn import functional as F

from sspa_core.config import DEFAULTS, merge
from sspa_core.engine import Precision, Trainer, load_checkpoint, optimisation_step, to_float, warmup_cosine
from sspa_core.losses import SSPALoss


def regression(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A two-layer network and a learnable multi-label target."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 16, generator=g)
    y = (x @ torch.randn(16, 4, generator=g) > 0).float()
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)), x, y


def bce(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(outputs, y)


@pytest.mark.parametrize("warmup", [0, 3, 50])
def test_warmup_cosine_schedule(warmup):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = warmup_cosine(optimizer, total_steps=10, warmup_steps=warmup)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    w = min(warmup, 9)  # at least one step of decay
    for step, lr in enumerate(lrs):
        factor = (0.01 + 0.99 * step / w if step < w
                  else 0.5 * (1 + math.cos(math.pi * (step - w) / (10 - w))))
        assert lr == pytest.approx(0.1 * factor, rel=1e-6), step
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_bfloat16_step_trains_with_the_forward_in_bfloat16_and_the_loss_in_float32():
    model, x, y = regression()
    precision = Precision("cpu", torch.bfloat16)
    assert not precision.scaler.is_enabled()  # bfloat16 needs no scaling
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    seen = {}

    def loss_fn(outputs):
        seen["loss_input"] = outputs.dtype
        return bce(outputs, y)

    def forward():
        out = model(x)
        seen["forward"] = out.dtype
        return out

    before = [p.detach().clone() for p in model.parameters()]
    losses = [optimisation_step(forward, loss_fn, optimizer, precision=precision) for _ in range(60)]
    assert seen == {"forward": torch.bfloat16, "loss_input": torch.float32}
    assert all(loss.dtype == torch.float32 for loss in losses)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    for p, p0 in zip(model.parameters(), before):
        assert torch.isfinite(p).all() and p.dtype == torch.float32 and not torch.equal(p, p0)


def test_float16_scaler_unscales_gradients_before_clipping_and_stepping():
    model, x, y = regression()
    precision = Precision("cpu", torch.float16)
    assert precision.scaler.is_enabled() and precision.scaler.get_scale() == 2.0**16
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(x)
    reference = torch.autograd.grad(bce(out.float(), y), list(model.parameters()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    optimisation_step(lambda: model(x), lambda out: bce(out, y), optimizer, precision=precision, grad_clip=1e9)
    for p, g in zip(model.parameters(), reference):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-6)  # not 2^16 times larger
    assert precision.scaler.get_scale() == 2.0**16  # finite gradients keep the scale


def test_float16_scaler_skips_a_step_whose_gradients_overflow():
    model, x, y = regression()
    precision = Precision("cpu", torch.float16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    handle = model[0].weight.register_hook(lambda grad: torch.full_like(grad, math.inf))
    optimisation_step(lambda: model(x), lambda out: bce(out, y), optimizer, precision=precision)
    handle.remove()
    assert all(torch.equal(p, p0) for p, p0 in zip(model.parameters(), before))
    assert precision.scaler.get_scale() == 2.0**15
    optimisation_step(lambda: model(x), lambda out: bce(out, y), optimizer, precision=precision)
    assert not torch.equal(model[0].weight, before[0])


def test_disabled_scaler_steps_like_plain_backward():
    model, x, y = regression()
    twin, _, _ = regression()
    optimizer, twin_optimizer = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for step in range(3):
        optimisation_step(lambda: model(x), lambda out: bce(out, y), optimizer, scheduler=scheduler)
        twin_optimizer.param_groups[0]["lr"] = 0.1 * 0.5**step
        twin_optimizer.zero_grad()
        bce(twin(x), y).backward()
        twin_optimizer.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_non_finite_loss_is_refused_and_names_the_step():
    model, x, y = regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="non-finite loss nan at step 7"):
        optimisation_step(lambda: model(x), lambda out: bce(out, y) * math.nan, optimizer, where="step 7")


def test_precision_from_config():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert Precision.from_config(cpu, True, "auto").dtype is None  # float32 on CPU unless asked
    assert Precision.from_config(cpu, True, "bfloat16").dtype == torch.bfloat16
    assert Precision.from_config(cpu, False, "bfloat16").dtype is None
    assert Precision.from_config(cpu, True, "float16").scaler.is_enabled()
    with warnings.catch_warnings():  # without CUDA the CUDA scaler disables itself, with a warning
        warnings.simplefilter("ignore", UserWarning)
        assert Precision.from_config(cuda, True, "auto").dtype == torch.float16
    with pytest.raises(ValueError, match="unknown train.amp_dtype 'half'"):
        Precision.from_config(cpu, True, "half")


def test_to_float_casts_nested_outputs():
    outputs = {"score": torch.ones(2, dtype=torch.bfloat16), "index": torch.arange(2),
               "gates": {"visual": torch.ones(1, dtype=torch.float16)}, "pair": (torch.ones(1, dtype=torch.half), None)}
    cast = to_float(outputs)
    assert cast["score"].dtype == cast["gates"]["visual"].dtype == cast["pair"][0].dtype == torch.float32
    assert cast["index"].dtype == torch.int64 and cast["pair"][1] is None


def make_trainer(output_dir, amp_dtype: str) -> Trainer:
    config = merge(DEFAULTS, {"train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 5, "progress": False,
                                        "amp_dtype": amp_dtype, "warmup_epochs": 0.0, "ema": False}})
    torch.manual_seed(0)
    return Trainer(PatchModel(), SSPALoss(), NoisyImages.label_names, "patch", config, output_dir, torch.device("cpu"))


def test_trainer_in_bfloat16_on_cpu_trains_and_evaluates(tmp_path):
    trainer = make_trainer(tmp_path, "bfloat16")
    assert trainer.precision.dtype == torch.bfloat16 and not trainer.precision.scaler.is_enabled()
    before = trainer.model.global_head.weight.detach().clone()
    history = trainer.fit(NoisyImages(16, seed=0), NoisyImages(10, seed=1))
    assert math.isfinite(history[0]["train_loss"]) and 0 < history[0]["mAP"] <= 1
    assert not torch.equal(before, trainer.model.global_head.weight)


def test_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path / "fp16", "float16")
    trainer.fit(NoisyImages(16, seed=0), NoisyImages(10, seed=1))
    trainer.precision.scaler.update(new_scale=1024.0)
    trainer.save("last.pt")
    ckpt = load_checkpoint(tmp_path / "fp16" / "checkpoints" / "last.pt")
    assert ckpt["scaler"]["scale"] == 1024.0
    resumed = make_trainer(tmp_path / "fp16", "float16")
    resumed.build_scheduler(2)
    resumed.load_state_dict(ckpt)
    assert resumed.precision.scaler.get_scale() == 1024.0
    # a float32 run's checkpoint (no scaler state) resumes with a fresh scaler
    fp32 = make_trainer(tmp_path / "fp32", "auto")
    fp32.save("last.pt")
    fresh = make_trainer(tmp_path / "fp32", "float16")
    fresh.load_state_dict(load_checkpoint(tmp_path / "fp32" / "checkpoints" / "last.pt"))
    assert fresh.precision.scaler.get_scale() == 2.0**16
