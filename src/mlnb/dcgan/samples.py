"""What the DCGAN shows: uint8 images from the generator, 8x8 grids (PNG), the GIF, the Turing-test page."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mlnb.io import atomic_path
from mlnb.preview import image_grid


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output N x C x H x W in [-1, 1] -> uint8 N x H x W x C, quantised as saved images are."""
    pixels = ((images.detach().float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def sample_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """N x H x W x C uint8 images tiled (grey images as H x W) into one grid image."""
    return image_grid(images[..., 0] if images.shape[-1] == 1 else images, columns=columns)


def save_png(image: np.ndarray, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def load_png(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def save_gif(frames: Sequence[np.ndarray], path: str | Path, frame_ms: int = 250) -> None:
    """An animated GIF of the grids, looping, the last frame held for a second."""
    if not frames:
        raise ValueError("an animated GIF needs at least one frame")
    pictures = [Image.fromarray(frame) for frame in frames]
    durations = [frame_ms] * (len(pictures) - 1) + [1000]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=durations, loop=0)


def turing_page(real: np.ndarray, generated: np.ndarray, rng: np.random.Generator, title: str, scale: int = 2) -> str:
    """A self-contained HTML page: real and generated images shuffled; clicking one reveals which it is."""
    faces = [(image, "real") for image in real] + [(image, "generated") for image in generated]
    order = rng.permutation(len(faces))
    cells = []
    for number, index in enumerate(order):
        image, truth = faces[index]
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        source = base64.b64encode(png_bytes(pixels)).decode()
        side = image.shape[1] * scale
        cells.append(f'<figure onclick="reveal(this)" data-truth="{truth}"><img alt="face {number + 1}" '
                     f'width="{side}" height="{side}" src="data:image/png;base64,{source}">'
                     f'<figcaption>?</figcaption></figure>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
figure {{ display: inline-block; margin: 4px; cursor: pointer; text-align: center; }}
img {{ image-rendering: pixelated; }}
figure.real figcaption {{ color: #070; }} figure.generated figcaption {{ color: #a00; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(real)} real and {len(generated)} generated images, shuffled. Decide for each whether it is real,
then click it to reveal the truth. If you are right no more than half the time, the generator passes
this simple Turing test.</p>
<div>{"".join(cells)}</div>
<p><button onclick="document.querySelectorAll('figure').forEach(reveal)">reveal all</button></p>
<script>
function reveal(figure) {{
  figure.classList.add(figure.dataset.truth);
  figure.querySelector("figcaption").textContent = figure.dataset.truth;
}}
</script>
</body></html>
"""


def save_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
