"""What every training stage writes the same way: result JSON, weights, checkpoint fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.errors import DataError
from mlnb.io import atomic_path
from mlnb.settings import schema_problem

if TYPE_CHECKING:
    import torch


def write_json(path: str | os.PathLike, data: Mapping[str, Any], sort_keys: bool = True) -> None:
    """``data`` as indented JSON, written atomically (the same bytes for the same data); keys sorted, or in
    ``data``'s order with ``sort_keys=False`` (the from-scratch stage's results have always been written so)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def save_state_dict(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """The module's weights on the CPU, atomically; load them with ``torch.load(..., weights_only=True)``."""
    import torch  # here, so that the stages that write no weights (the logic gates) start without it

    # saved through a handle: torch.save names the archive after a path (here a random temporary one)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
        torch.save({key: value.cpu() for key, value in module.state_dict().items()}, handle)


def fingerprint(**shape: Any) -> str:
    """A checkpoint's fingerprint: the hash of everything that shapes the run (the settings' defining keys,
    seed, device, number formats, input checksums). A checkpoint with another fingerprint is not resumed."""
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def read_checked_json(path: str | os.PathLike, schema: Mapping[str, Any], what: str) -> Any:
    """A JSON file another command wrote (``what``: "train-cnn result"), checked against ``schema``: a file that
    cannot be read, is not JSON, lacks a required key or has a value of the wrong type is one DataError naming it."""
    try:
        value = json.loads(Path(path).read_text())
    except OSError as error:
        raise DataError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: the {what} is not JSON ({error})") from None
    missing = sorted(set(schema.get("required", ())) - set(value if isinstance(value, dict) else ()))
    if missing:
        raise DataError(f"{path}: not a {what} (missing {', '.join(missing)})")
    problem = schema_problem(schema, value)
    if problem:
        raise DataError(f"{path}: not a {what} ({problem})")
    return value
