"""The share of images in which dlib's HOG detector finds a face: a plain check of generated faces.

Aligned 64 px crops are cut tight around the face, too small and too close to the
border for the detector's 80 px window, so each image gets a replicated 16 px
border (1/4 of the side) and is upscaled 3x first. Measured on the demo's 102
aligned faces: 92 % found this way (55 % with a 2x upscale alone), none in 50
uniform-noise images; about 21 ms per 64 px image. Always read the generated
rate beside the same measure on as many training images.
"""

from __future__ import annotations

import cv2
import numpy as np

BORDER_FRACTION = 0.25
UPSCALE = 3


def face_detection_rate(images: np.ndarray) -> float:
    """Fraction of the N x H x W x C uint8 images (C = 1 or 3) with at least one detected face."""
    import dlib

    if len(images) == 0:
        raise ValueError("face detection rate of no images")
    detector = dlib.get_frontal_face_detector()
    found = 0
    for image in images:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.shape[-1] == 3 else np.ascontiguousarray(image[..., 0])
        border = round(BORDER_FRACTION * gray.shape[0])
        framed = cv2.copyMakeBorder(gray, border, border, border, border, cv2.BORDER_REPLICATE)
        large = cv2.resize(framed, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
        found += len(detector(large, 0)) > 0
    return found / len(images)
