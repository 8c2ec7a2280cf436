"""The model's work, with Pillow: load the input image, and make a visible, prompt-dependent
edit of it (crop to the aspect ratio, recolour, caption and a ring a variant)."""

from __future__ import annotations

import base64
import hashlib
import io
import random
from typing import Any

import httpx

from kontext_tools.emulator.validation import ASPECT_RATIOS

COLOURS = {
    "red": (220, 40, 40),
    "blue": (40, 90, 220),
    "green": (40, 170, 70),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "teal": (30, 160, 160),
    "gold": (212, 175, 55),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
}
MAX_SIDE = 1024
# What fal's maintainers report inline inputs failing above (encoded size).
MAX_INLINE_INPUT_BYTES = 10 * 1024 * 1024


def load_input(url: str) -> Any:
    """The input image (RGB) from a data: URI, or fetched over HTTP."""
    from PIL import Image  # noqa: PLC0415 - Pillow only where images are made

    if url.startswith("data:"):
        if len(url) > MAX_INLINE_INPUT_BYTES:
            raise ValueError(f"inline data: URI of {len(url)} bytes is too large")
        data = base64.b64decode(url.split(",", 1)[1])
    else:
        response = httpx.get(url, timeout=httpx.Timeout(10.0, connect=2.0))
        response.raise_for_status()
        data = response.content
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def edit(source: Any, body: dict[str, Any], seed: int) -> list[Any]:
    """A visible, prompt-dependent edit: crop to the aspect ratio, recolour, caption."""
    image = _cropped(source, ASPECT_RATIOS.get(str(body.get("aspect_ratio"))))
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    prompt = str(body.get("prompt", ""))
    image = _recoloured(image, prompt)
    count = int(body.get("num_images", 1) or 1)
    return [_variant(image, prompt, index, seed) for index in range(count)]


def encode(image: Any, output_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG" if output_format == "png" else "JPEG", quality=90)
    return buffer.getvalue()


def _cropped(image: Any, ratio: float | None) -> Any:
    if not ratio:
        return image
    width, height = image.size
    if width / height > ratio:
        new_width = int(height * ratio)
        return image.crop(((width - new_width) // 2, 0, (width + new_width) // 2, height))
    new_height = int(width / ratio)
    return image.crop((0, (height - new_height) // 2, width, (height + new_height) // 2))


def _recoloured(image: Any, prompt: str) -> Any:
    from PIL import Image, ImageOps  # noqa: PLC0415

    words = prompt.lower()
    if "grayscale" in words or "black and white" in words:
        return ImageOps.grayscale(image).convert("RGB")
    if "invert" in words:
        return ImageOps.invert(image)
    if "sepia" in words:
        return ImageOps.colorize(ImageOps.grayscale(image), (60, 40, 20), (240, 220, 180))
    colour = next((rgb for name, rgb in COLOURS.items() if name in words), None)
    if colour is None:
        digest = hashlib.sha256(prompt.encode()).digest()
        colour = (digest[0], digest[1], digest[2])
    return Image.blend(image, Image.new("RGB", image.size, colour), 0.35)


def _variant(image: Any, prompt: str, index: int, seed: int) -> Any:
    """Output `index`: a caption banner, and a ring placed by the seed."""
    from PIL import ImageDraw, ImageFont  # noqa: PLC0415

    variant = image.copy()
    draw = ImageDraw.Draw(variant)
    rng = random.Random(seed + index)  # noqa: S311 - variety, not security
    banner = max(14, variant.height // 12)
    draw.rectangle((0, variant.height - banner, variant.width, variant.height), fill=(0, 0, 0))
    draw.text(
        (6, variant.height - banner + 2),
        f"#{index + 1} {prompt[:80]}",
        fill=(255, 255, 255),
        font=ImageFont.load_default(),
    )
    radius = max(3, min(variant.size) // 10)
    x, y = rng.randrange(variant.width), rng.randrange(max(1, variant.height - banner))
    # A ring: the sample prompt asks for a donut, and a ring reads as one.
    draw.ellipse(
        (x - radius, y - radius, x + radius, y + radius),
        outline=(rng.randrange(256), rng.randrange(256), rng.randrange(256)),
        width=max(2, radius // 2),
    )
    return variant
