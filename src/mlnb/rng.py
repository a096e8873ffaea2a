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
    if isinstance(key, numbers.Integral) and not isinstance(key, bool) and key >= 0:
        return operator.index(key)  # numpy integers too, whatever their repr
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def seed_sequence(seed: int, *keys: object) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key_to_int(k) for k in keys))


def generator(seed: int, *keys: object) -> np.random.Generator:
    """A PCG64 generator for (seed, *keys), e.g. ``generator(cfg_seed, "augment", "la_003", 2)``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, *keys)))


def torch_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for ``torch.Generator().manual_seed`` derived the same way."""
    return int(seed_sequence(seed, *keys).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
