"""Check and decode one image file, turning every kind of bad input into a reason.

The header is read to learn the format, mode and size: a well-formed JPEG's frame
header directly (a sixth of PIL's cost on CelebA's small JPEGs), anything else with
PIL (lazily, without decoding). The pixels are decoded with OpenCV, about twice as
fast as PIL. OpenCV fills a truncated JPEG with grey instead of failing,
so truncation is checked from the file's markers first.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

#: modes without colour, and modes with colours that are not RGB
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SUBTRACTIVE_MODES = frozenset({"CMYK"})
#: larger images are refused before decoding (a decompression bomb must not stop a shard)
MAX_PIXELS = 50_000_000
#: JPEG's start-of-frame markers (0xC4, 0xC8 and 0xCC are other segments), and PIL's mode per colour component count
JPEG_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
#: markers without a length field, start of scan, stuffing and fill bytes: none of them belongs before a frame header
JPEG_STANDALONE_MARKERS = frozenset({0x00, 0x01, *range(0xD0, 0xDB), 0xFF})


class BadImage(Exception):
    """An input that cannot be aligned; ``code`` names the kind, ``detail`` explains."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def _is_truncated(data: bytes, image_format: str | None) -> bool:
    """True when the last image segment has no end marker after it.

    JPEG: entropy-coded data stuffs every 0xFF byte, so an end-of-image marker
    (FFD9) after the last start-of-scan (FFDA) means the scan data is complete.
    PNG: an IEND chunk must follow the last IDAT chunk.
    """
    if image_format == "JPEG":
        return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")
    if image_format == "PNG":
        return data.rfind(b"IEND") < data.rfind(b"IDAT")
    return False


def jpeg_frame(data: bytes) -> tuple[str, int, int] | None:
    """(mode, width, height) of a JPEG whose segments lead plainly to an 8-bit frame header, as PIL reads them.

    None for anything else (another format, a marker out of place, a short segment, other bit depths or
    component counts): :func:`check_header` then leaves the verdict to PIL.
    """
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker, length = data[position + 1], int.from_bytes(data[position + 2:position + 4], "big")
        if marker in JPEG_STANDALONE_MARKERS or length < 2:
            return None
        if marker in JPEG_FRAME_MARKERS:
            frame = data[position + 4:position + 2 + length]
            if len(frame) < 6 or frame[0] != 8 or frame[5] not in JPEG_MODES:
                return None
            return JPEG_MODES[frame[5]], int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
        position += 2 + length
    return None


def read_header(data: bytes) -> tuple[str | None, str, int, int]:
    """(format, mode, width, height) of non-empty image data, or :class:`BadImage` when it has no readable header."""
    frame = jpeg_frame(data)
    if frame is not None:
        return ("JPEG", *frame)
    try:
        with Image.open(io.BytesIO(data)) as header:
            return (header.format, header.mode, *header.size)
    except UnidentifiedImageError:
        raise BadImage("corrupt", "not a recognised image format") from None
    except Exception as error:  # PIL raises many types for damaged headers
        raise BadImage("corrupt", f"damaged image header ({type(error).__name__}: {error})") from None


def check_header(data: bytes, min_side: int) -> tuple[int, int]:
    """(width, height) of the image; refuse grayscale, CMYK, tiny, huge, truncated or unrecognised data."""
    if not data:
        raise BadImage("corrupt", "empty file")
    image_format, mode, width, height = read_header(data)
    if mode in GRAYSCALE_MODES:
        raise BadImage("grayscale", f"{image_format} in mode {mode}; faces are aligned from RGB images")
    if mode in SUBTRACTIVE_MODES:
        raise BadImage("cmyk", f"{image_format} in mode {mode}; faces are aligned from RGB images")
    if min(width, height) < min_side:
        raise BadImage("too-small", f"{width}x{height} px, the shorter side is under {min_side} px")
    if width * height > MAX_PIXELS:
        raise BadImage("too-large", f"{width}x{height} px is over {MAX_PIXELS:,} pixels")
    if _is_truncated(data, image_format):
        raise BadImage("truncated", f"{image_format} data ends before its end marker")
    return width, height


def decode_bgr(data: bytes, min_side: int) -> np.ndarray:
    """The image as HxWx3 uint8 BGR (OpenCV's order), or :class:`BadImage`."""
    check_header(data, min_side)
    return decode_pixels(data)


def decode_pixels(data: bytes) -> np.ndarray:
    """Decode data that :func:`check_header` accepted as HxWx3 uint8 BGR, or :class:`BadImage`."""
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as error:
        raise BadImage("corrupt", f"OpenCV cannot decode the image data ({error.err})") from None
    if image is None:
        raise BadImage("corrupt", "OpenCV cannot decode the image data")
    return image
