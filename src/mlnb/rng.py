"""Deterministic random generators: never the global RNG.

Every random draw in mlnb comes from ``generator(seed, *keys)``, where the keys
name what is being drawn for (stage, item id, copy index). The same seed and keys
always give the same stream, independent of job order or parallelism.
"""

from __future__ import annotations

import hashlib
import numbers
import operator

import numpy as np


def _key_to_int(key: object) -> int:
    """A spawn-key word from a key's type and value, never from how it is spelled.

    Numpy scalars count as the Python value they hold (``np.str_("a")`` is ``"a"``,
    ``np.int64(3)`` is ``3``): ids read through numpy or pandas keep their streams.
    A non-negative int is its own word; any other key is hashed from the ``repr``
    of its plain Python value, which names the type too, so ``True``, ``1``,
    ``1.0`` and ``"1"`` are four different keys. Other types are refused: the repr
    of an arbitrary object may hold a memory address.
    """
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, bool):
        value: object = bool(key)
    elif isinstance(key, numbers.Integral):
        value = operator.index(key)
        if value >= 0:
            return value
    elif isinstance(key, str):
        value = str(key)
    elif isinstance(key, float):
        value = float(key)
    elif isinstance(key, bytes):
        value = bytes(key)
    elif key is None:
        value = None
    else:
        raise TypeError(f"random stream key {key!r}: expected str, int, float, bool, bytes or None, "
                        f"not {type(key).__name__}")
    digest = hashlib.sha256(repr(value).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def seed_sequence(seed: int, *keys: object) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key_to_int(k) for k in keys))


def generator(seed: int, *keys: object) -> np.random.Generator:
    """A PCG64 generator for (seed, *keys), e.g. ``generator(cfg_seed, "augment", "la_003", 2)``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *keys)))


def torch_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for ``torch.Generator().manual_seed`` derived the same way."""
    return int(seed_sequence(seed, *keys).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, *keys: object, device: str = "cpu"):
    """A ``torch.Generator`` on ``device`` seeded from (seed, *keys); torch is imported only here."""
    import torch

    return torch.Generator(device=device).manual_seed(torch_seed(seed, *keys))
