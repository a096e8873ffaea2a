"""Benchmarks reuse the augment tests' synthetic images (tests/augment/augment_helpers.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "augment"))
