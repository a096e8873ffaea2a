"""One image and its segmentation augmented into copies on disk, with their MLflow run (``mlnb augment``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2

from mlnb import tracking
from mlnb.augment.io import read_pair
from mlnb.augment.memory import check_fits
from mlnb.augment.record import PhaseTimes, augment_copies, remove_stale_copies
from mlnb.augment.settings import AugmentSettings

log = logging.getLogger(__name__)


def augment_image(image: Path, seg: Path | None, out: Path, settings: AugmentSettings, seed: int = 0,
                  item: str | None = None,
                  tracking_options: tracking.TrackingOptions = tracking.TrackingOptions(),
                  params: Mapping[str, Any] | None = None) -> list[dict]:
    """Write ``settings.copies`` augmented copies of ``image`` (and ``seg``) into ``out``, removing the copies
    that an earlier run made beyond them; return their records.

    Copy k draws from (``seed``, ``item``, k); ``item`` defaults to the image's name; OpenCV works with
    ``settings.threads`` threads, and with two or more each copy is written while the next is computed. The
    MLflow run "augment" (as ``tracking_options`` says) logs ``params`` (``mlnb augment``'s: its flags as
    given), the inputs' md5, the number of copies and their previews.
    Where the time went (read, engine, write, preview, record, per copy; written behind, the phases overlap)
    is logged at INFO, the seconds of each phase in the log record's ``phase_seconds``.
    """
    cv2.setNumThreads(settings.threads)
    policy, engine = settings.policy(), settings.engine()
    times = PhaseTimes()
    with times.phase("read"):
        check_fits(image, seg, settings.dims, settings.mode)
        loaded = read_pair(image, seg)
    inputs = {"image": image, **({"seg": seg} if seg else {})}
    with tracking.tracked_run(tracking_options, "augment", params=params or {}, inputs=inputs) as tracker:
        records = augment_copies(loaded, policy, seed, settings.copies, out, engine, item,
                                 previews=settings.previews, times=times, write_behind=settings.threads > 1)
        for path in remove_stale_copies(loaded, out, records):
            log.info("removed %s: made by an earlier run, not by these settings", path)
        for record in records:
            if record["outputs"]["preview"]:
                tracker.log_artifact(out / record["outputs"]["preview"], "previews")
        tracker.log_metrics({"copies": len(records)})
    log.info("%s: %d copies (%s%s), per copy: %s", image, len(records), settings.mode,
             ", written behind" if settings.threads > 1 else "", times.per_copy(len(records)),
             extra={"phase_seconds": dict(times.seconds)})
    return records
