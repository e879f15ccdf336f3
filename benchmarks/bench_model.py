"""Cost of the SSPA head against its CLIP backbone, a table like the paper's Table XII, and the
inference overhead of SSPA over the bare image encoder with the text features cached.

Parameters and FLOPs (``torch.utils.flop_counter.FlopCounterMode``, one image, multiply-add
= 2 FLOPs) for the tiny models and, with random weights (no download), ViT-B/16 and RN101 at 448.
The text encoder is not counted in the FLOPs: its features (KAP, the CAP and global prompts)
do not depend on the image and are computed once at deployment. Run:

    python benchmarks/bench_model.py                  # full table + ViT-B/16 448 throughput
    python benchmarks/bench_model.py --quick          # tiny models only
    python benchmarks/bench_model.py --throughput-only --repeats 5
"""

from __future__ import annotations

import statistics
import tempfile
import time

import open_clip
import torch
from _common import benchmark_parser, set_threads
from torch.utils.flop_counter import FlopCounterMode

from sspa_core import paths
from sspa_core.backbone import CLIPBackbone, set_image_size
from sspa_core.model import SSPA, SSPAConfig

MODELS = (("sspa-tiny-vit", 224), ("sspa-tiny-rn", 224), ("ViT-B-16", 448), ("RN101", 448))
HEAD_PARTS = {"DSF": "DynamicSemanticFilter", "QSM": "QuaternionSemanticModeling",
              "GDMA": "GatedDualModalAlignment", "text encoder": "PromptTextEncoder"}


def coco_labels() -> list[str]:
    lines = (paths.DATA_DIR / "labels" / "coco.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip()]


def build(name: str, image_size: int, labels: list[str]) -> SSPA:
    """SSPA (default switches, template KAP) on a randomly initialised open_clip model: costs do
    not depend on the weights, and nothing is downloaded."""
    backbone = CLIPBackbone(open_clip.create_model(name).eval(), open_clip.get_tokenizer(name))
    if backbone.image_size != image_size:
        set_image_size(backbone.clip, image_size)
    return SSPA(backbone, labels, SSPAConfig(kap_source="template")).eval()


def count_flops(fn, *args) -> tuple[int, dict[str, int]]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


def cost_row(name: str, image_size: int, labels: list[str]) -> dict[str, float]:
    model = build(name, image_size, labels)
    backbone = model.backbone
    images = torch.randn(1, 3, image_size, image_size)
    with torch.no_grad():
        x0, patches = backbone.encode_image_dense(images)
        model.forward_features(x0, patches)  # fills the prompt caches: text features offline
    encoder_flops, _ = count_flops(backbone.encode_image_dense, images)
    head_flops, per_module = count_flops(model.forward_features, x0, patches)
    image_params = sum(p.numel() for p in backbone.clip.visual.parameters())
    text_params = sum(p.numel() for p in backbone.text_parameters())
    head_params = sum(p.numel() for p in model.param_groups()["head"])
    part_flops = {part: per_module.get(module, 0) for part, module in HEAD_PARTS.items()}
    part_flops["similarities"] = head_flops - sum(part_flops.values())
    return {
        "model": f"{name}@{image_size}", "patches": patches.shape[1], "image_params": image_params,
        "text_params": text_params, "head_params": head_params, "encoder_gflops": encoder_flops / 1e9,
        "head_gflops": head_flops / 1e9, **{f"{k}_gflops": v / 1e9 for k, v in part_flops.items()},
    }


def print_cost_table(rows: list[dict[str, float]], num_labels: int) -> None:
    print(f"\nParameters and FLOPs per image (C = {num_labels} labels; text features cached)")
    header = (f"{'model':<20}{'M':>6}{'image enc. params':>19}{'text enc. params':>18}{'SSPA head params':>18}"
              f"{'head/enc':>10}{'enc. GFLOPs':>13}{'head GFLOPs':>13}{'head/enc':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<20}{r['patches']:>6}{r['image_params'] / 1e6:>18.2f}M{r['text_params'] / 1e6:>17.2f}M"
              f"{r['head_params'] / 1e6:>17.2f}M{r['head_params'] / r['image_params']:>10.1%}"
              f"{r['encoder_gflops']:>13.3f}{r['head_gflops']:>13.3f}{r['head_gflops'] / r['encoder_gflops']:>10.1%}")
    parts = [*HEAD_PARTS, "similarities"]
    print("\nSSPA head GFLOPs by part (text encoder: 0 when the prompt features are cached)")
    print(f"{'model':<20}" + "".join(f"{p:>14}" for p in parts))
    for r in rows:
        print(f"{r['model']:<20}" + "".join(f"{r[f'{p}_gflops']:>14.4f}" for p in parts))


def throughput(name: str, image_size: int, labels: list[str], batch: int, repeats: int) -> None:
    model = build(name, image_size, labels)
    backbone = model.backbone
    images = torch.randn(batch, 3, image_size, image_size)
    runs = {"image encoder (x0)": lambda: backbone.encode_image(images),
            "image encoder (x0, X)": lambda: backbone.encode_image_dense(images),
            "SSPA": lambda: model(images)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.no_grad():
        for fn in runs.values():  # warm-up (also fills SSPA's prompt caches)
            fn()
        for _ in range(repeats):  # interleaved, so load from other processes hits all alike
            for key, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
    print(f"\nInference throughput, {name} at {image_size}, batch {batch}, {repeats} timed repeats after "
          f"warm-up, {torch.get_num_threads()} threads, C = {len(labels)}, text features cached")
    for key, values in times.items():
        med = statistics.median(values)
        print(f"  {key:<24} {med / batch * 1e3:9.1f} ms/image  {batch / med:7.2f} img/s  "
              f"(min {min(values) / batch * 1e3:.1f} ms/image)")
    for stat, pick in (("medians", statistics.median), ("minima", min)):
        ratio = pick(times["SSPA"]) / pick(times["image encoder (x0)"])
        dense = pick(times["SSPA"]) / pick(times["image encoder (x0, X)"])
        print(f"  {stat}: SSPA / bare image encoder = {ratio:.3f} (overhead {ratio - 1:+.1%}; goal <= +10%); "
              f"SSPA / dense encoder = {dense:.3f} (head alone {dense - 1:+.1%})")


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny models only, no throughput")
    parser.add_argument("--throughput-only", action="store_true", help="skip the parameter/FLOP table")
    parser.add_argument("--batch", type=int, default=2, help="images per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats")
    args = parser.parse_args()
    set_threads(args)
    torch.manual_seed(0)
    labels = coco_labels()
    models = MODELS[:2] if args.quick else MODELS
    with tempfile.TemporaryDirectory(prefix="sspa-bench-") as cache:
        paths.CACHE_DIR = cache  # random weights: their text features are not worth keeping
        if not args.throughput_only:
            print_cost_table([cost_row(name, size, labels) for name, size in models], len(labels))
        if not args.quick:
            throughput("ViT-B-16", 448, labels, args.batch, args.repeats)


if __name__ == "__main__":
    main()
