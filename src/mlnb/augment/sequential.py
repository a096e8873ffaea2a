"""The blog's way, kept as the reference: every transform resamples again with scipy.

Slow (each ``scipy.ndimage`` call prefilters and interpolates the whole array)
and blurrier with every step; used to check and benchmark the fused path.
"""

from __future__ import annotations

import numpy as np

from mlnb.augment.pair import Augmented, Pair, Trace


def apply_sequential(pair: Pair, transforms, order: int = 3) -> Augmented:
    trace = Trace(pair.source, pair.kind)
    labels = pair.label_codes()
    image = pair.image_planes()
    codes = None if labels is None else labels.codes
    for transform in transforms:
        image, codes = transform.reference(image, codes, order, trace)
    image = np.ascontiguousarray(image[:, :, 0] if pair.kind == "grey" else image, dtype=np.float32)
    seg = None if labels is None else labels.decode(codes, pair.kind)
    return trace.result(image, seg)
