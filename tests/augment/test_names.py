"""File types by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlnb.augment.names import split_name
from mlnb.errors import DataError


def test_split_name():
    assert split_name("dir/la_003.nii.gz") == ("la_003", ".nii.gz")
    assert split_name("x.NII") == ("x", ".NII")
    assert split_name("photo.jpeg") == ("photo", ".jpeg")
    with pytest.raises(DataError, match=r"scan\.mgz: unsupported file type"):
        split_name("scan.mgz")


def test_the_planners_memory_estimate_loads_no_engine():
    """Snakemake imports mlnb.augment.memory for every augment job's memory request: OpenCV and SciPy
    (the engines' imports) would add their start-up to every dry run."""
    code = ("import sys, mlnb.augment.memory; "
            "print(' '.join(name for name in ('cv2', 'scipy', 'torch') if name in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""
