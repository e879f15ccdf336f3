"""Rebuild the sprite atlas of the synthetic scenes from the Noto Color Emoji font.

    apt-get install -y fonts-noto-color-emoji      # Debian; the font is SIL OFL 1.1
    python data/sprites/build_atlas.py [--font PATH] [--size 96]

Writes ``atlas.png`` (RGBA sprite sheet, one cell per sprite) and ``atlas.json`` (for each
sprite name: its emoji code points, or ``"procedural"``, and its box in the sheet) beside
this script. Noto Color Emoji is a bitmap font: Pillow renders it only at size 109 with
``embedded_color=True``; every glyph is cropped to its alpha box and downscaled so that its
longer side is ``--size`` pixels. The few labels that have no emoji (a dining table, a bench)
are drawn here with simple shapes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FONT_SIZE = 109  # the only size at which Pillow renders this bitmap font

# sprite name -> emoji code points (hex, space separated). Names equal to a COCO-80 label
# are that label's sprite; the others serve the pedestrian and aerial domains and clutter.
EMOJI: dict[str, str] = {
    # COCO-80 labels, in COCO order
    "person": "1F9CD",
    "bicycle": "1F6B2",
    "car": "1F697",
    "motorcycle": "1F3CD FE0F",
    "airplane": "2708 FE0F",
    "bus": "1F68C",
    "train": "1F686",
    "truck": "1F69A",
    "boat": "26F5",
    "traffic light": "1F6A6",
    "stop sign": "1F6D1",
    "bird": "1F426",
    "cat": "1F408",
    "dog": "1F415",
    "horse": "1F40E",
    "sheep": "1F411",
    "cow": "1F404",
    "elephant": "1F418",
    "bear": "1F43B",
    "zebra": "1F993",
    "giraffe": "1F992",
    "backpack": "1F392",
    "umbrella": "2602 FE0F",
    "handbag": "1F45C",
    "tie": "1F454",
    "suitcase": "1F9F3",
    "frisbee": "1F94F",
    "skis": "1F3BF",
    "sports ball": "26BD",
    "kite": "1FA81",
    "skateboard": "1F6F9",
    "bottle": "1F37E",
    "wine glass": "1F377",
    "cup": "2615",
    "fork": "1F374",
    "knife": "1F52A",
    "spoon": "1F944",
    "bowl": "1F963",
    "banana": "1F34C",
    "apple": "1F34E",
    "sandwich": "1F96A",
    "orange": "1F34A",
    "broccoli": "1F966",
    "carrot": "1F955",
    "hot dog": "1F32D",
    "pizza": "1F355",
    "donut": "1F369",
    "cake": "1F370",
    "chair": "1FA91",
    "couch": "1F6CB FE0F",
    "potted plant": "1FAB4",
    "bed": "1F6CF FE0F",
    "toilet": "1F6BD",
    "tv": "1F4FA",
    "laptop": "1F4BB",
    "mouse": "1F5B1 FE0F",
    "keyboard": "2328 FE0F",
    "cell phone": "1F4F1",
    "book": "1F4D6",
    "clock": "1F570 FE0F",
    "vase": "1F3FA",
    "scissors": "2702 FE0F",
    "teddy bear": "1F9F8",
    "toothbrush": "1FAA5",
    # pedestrian figures: worn and carried items
    "billed cap": "1F9E2",
    "top hat": "1F3A9",
    "sun hat": "1F452",
    "eyeglasses": "1F453",
    "sunglasses": "1F576 FE0F",
    "scarf": "1F9E3",
    "womans boot": "1F462",
    "hiking boot": "1F97E",
    "sneaker": "1F45F",
    "flat shoe": "1F97F",
    "pouch": "1F45D",
    "purse": "1F45B",
    "briefcase": "1F4BC",
    "closed umbrella": "1F302",
    "shopping bags": "1F6CD FE0F",
    "takeout cup": "1F964",
    # aerial views
    "small airplane": "1F6E9 FE0F",
    "deciduous tree": "1F333",
    "evergreen tree": "1F332",
    "palm tree": "1F334",
    # clutter: objects that are never labels
    "balloon": "1F388",
    "blossom": "1F33C",
    "sunflower": "1F33B",
    "gift": "1F381",
    "light bulb": "1F4A1",
    "rock": "1FAA8",
    "mushroom": "1F344",
    "cactus": "1F335",
    "package": "1F4E6",
    "framed picture": "1F5BC FE0F",
    "candle": "1F56F FE0F",
    "bathtub": "1F6C1",
    "fallen leaf": "1F342",
    "star": "2B50",
    "cloud": "2601 FE0F",
    "sun": "2600 FE0F",
    "construction barrier": "1F6A7",
    "hut": "1F6D6",
    "house": "1F3E0",
    "office building": "1F3E2",
    "tent": "26FA",
    "mountain": "26F0 FE0F",
}

PROCEDURAL = ("dining table", "bench")


def render_emoji(font: ImageFont.FreeTypeFont, codepoints: str) -> Image.Image:
    """Render one emoji sequence and crop it to its alpha box."""
    text = "".join(chr(int(cp, 16)) for cp in codepoints.split())
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((4, 4), text, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        raise ValueError(f"the font has no glyph for {codepoints}")
    return canvas.crop(box)


def draw_dining_table(scale: int = 4) -> Image.Image:
    """A wooden dining table with a white cloth, seen slightly from above."""
    w, h = 120 * scale, 80 * scale
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    s = scale
    for x in (12, 100):  # legs
        d.rectangle([x * s, 30 * s, (x + 8) * s, 79 * s], fill=(120, 72, 36, 255))
    d.polygon([(18 * s, 8 * s), (102 * s, 8 * s), (119 * s, 34 * s), (1 * s, 34 * s)],
              fill=(150, 92, 48, 255))
    d.polygon([(24 * s, 10 * s), (96 * s, 10 * s), (108 * s, 30 * s), (12 * s, 30 * s)],
              fill=(245, 245, 240, 255))
    d.rectangle([1 * s, 34 * s, 119 * s, 42 * s], fill=(110, 66, 32, 255))
    d.rectangle([12 * s, 30 * s, 108 * s, 46 * s], fill=(240, 240, 235, 255))
    for x in range(14, 108, 12):  # cloth folds
        d.line([x * s, 31 * s, x * s, 46 * s], fill=(215, 215, 210, 255), width=s)
    return im.resize((w // scale, h // scale), Image.Resampling.LANCZOS)


def draw_bench(scale: int = 4) -> Image.Image:
    """A green park bench with wooden slats and iron legs."""
    w, h = 120 * scale, 70 * scale
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    s = scale
    iron = (45, 50, 48, 255)
    for x in (14, 98):
        d.rectangle([x * s, 4 * s, (x + 6) * s, 69 * s], fill=iron)
        d.line([x * s, 44 * s, (x - 8) * s, 69 * s], fill=iron, width=4 * s)
    for y in (4, 14, 24):  # back rest
        d.rounded_rectangle([2 * s, y * s, 118 * s, (y + 7) * s], radius=2 * s,
                            fill=(46, 125, 70, 255))
    for y in (38, 46):  # seat
        d.rounded_rectangle([0, y * s, 120 * s - 1, (y + 6) * s], radius=2 * s,
                            fill=(56, 140, 80, 255))
    return im.resize((w // scale, h // scale), Image.Resampling.LANCZOS)


def fit(im: Image.Image, size: int) -> Image.Image:
    """Downscale so that the longer side is ``size`` (Pillow resamples RGBA premultiplied)."""
    ratio = size / max(im.size)
    new = (max(1, round(im.width * ratio)), max(1, round(im.height * ratio)))
    return im.resize(new, Image.Resampling.LANCZOS)


def build(font_path: Path, size: int, out_dir: Path) -> dict:
    if not font_path.is_file():
        raise FileNotFoundError(
            f"{font_path} not found: install the Debian package fonts-noto-color-emoji "
            "or pass --font")
    font = ImageFont.truetype(str(font_path), FONT_SIZE)
    sprites: dict[str, tuple[str, Image.Image]] = {}
    for name, codepoints in EMOJI.items():
        sprites[name] = (codepoints, fit(render_emoji(font, codepoints), size))
    sprites["dining table"] = ("procedural", fit(draw_dining_table(), size))
    sprites["bench"] = ("procedural", fit(draw_bench(), size))
    columns = 12
    rows = -(-len(sprites) // columns)
    sheet = Image.new("RGBA", (columns * size, rows * size), (0, 0, 0, 0))
    index = {}
    for k, (name, (source, im)) in enumerate(sorted(sprites.items())):
        x, y = (k % columns) * size, (k // columns) * size
        sheet.paste(im, (x, y))
        index[name] = {"source": source, "box": [x, y, im.width, im.height]}
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet.save(out_dir / "atlas.png", optimize=True)
    meta = {"font": "Noto Color Emoji (SIL OFL 1.1)", "sprite_size": size, "sprites": index}
    (out_dir / "atlas.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", type=Path, default=DEFAULT_FONT)
    parser.add_argument("--size", type=int, default=96, help="longer side of a sprite (px)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    meta = build(args.font, args.size, args.out)
    print(f"{len(meta['sprites'])} sprites -> {args.out / 'atlas.png'}")


if __name__ == "__main__":
    main()
