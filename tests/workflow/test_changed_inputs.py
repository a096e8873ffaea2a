"""A changed input volume reruns exactly the jobs that used it (issue 7, item 1).

Tar members keep their recorded mtimes when extracted (the replica's are 0), so a
changed volume can look older than the outputs made from the old one: only the
checksums in the heart index tell the workflow which case changed.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.workflow.test_workflow import DEMO_CONFIG, RUN_ARGS, copy_workflow, planned_jobs, snakemake

HEART_REPLICA = Path("results/demo/heart/Task02_Heart.tar")
#: the jobs that read the heart volumes, and all they depend on (the training stages are left out: slow, unrelated)
TARGETS = ("results/reports/data/summary.json", "results/augmented/heart/manifest.csv")
#: targets sit between options that take one value (--configfile and --quiet take several)
DEMO_ARGS = (*RUN_ARGS, *TARGETS, "--configfile", DEMO_CONFIG)


def change_one_volume(archive: Path, member: str) -> None:
    """Rewrite ``archive`` with the voxels of ``member`` (a .nii.gz) shifted by one; other bytes unchanged."""
    with tarfile.open(archive) as tar:
        entries = [(info, tar.extractfile(info).read() if info.isfile() else None) for info in tar.getmembers()]
    rewritten = archive.with_name(archive.name + ".new")
    with tarfile.open(rewritten, "w") as tar:
        for info, data in entries:
            if info.name == member:
                image = nib.Nifti1Image.from_bytes(gzip.decompress(data))
                changed = nib.Nifti1Image(np.asarray(image.dataobj) + 1, image.affine, image.header)
                data = gzip.compress(changed.to_bytes(), mtime=0)
                info.size = len(data)  # info.mtime stays what it was, as in the report
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    rewritten.replace(archive)


def planned_cases(folder: Path) -> list[str]:
    """The cases of the augment_case jobs a dry run plans."""
    result = snakemake("-n", *DEMO_ARGS, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = re.findall(r"^rule augment_case:\n((?:    .*\n)+)", result.stdout, re.MULTILINE)
    return sorted(re.search(r"wildcards: case=(\S+)", job).group(1) for job in jobs)


@pytest.mark.slow
def test_one_changed_volume_reruns_exactly_its_jobs(tmp_path):
    folder = copy_workflow(tmp_path)
    first = snakemake(*DEMO_ARGS, cwd=folder, timeout=1500)
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-5000:]

    change_one_volume(folder / HEART_REPLICA, "Task02_Heart/imagesTr/la_002.nii.gz")
    # Before the archive is extracted again the case list is the old one: the archive's own jobs
    # and everything downstream of the index are planned.
    assert planned_jobs(folder, *DEMO_ARGS) == {"fetch": 1, "prepare_heart": 1, "log_data": 1,
                                                          "gather_augment": 1}
    prepared = snakemake("results/data/heart/index.csv", *RUN_ARGS, "--configfile", DEMO_CONFIG, cwd=folder)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    # Once it is, exactly the changed case is augmented again, and what gathers or logs it.
    assert planned_jobs(folder, *DEMO_ARGS) == {"augment_case": 1, "log_data": 1, "gather_augment": 1}
    assert planned_cases(folder) == ["la_002"]

    again = snakemake(*DEMO_ARGS, cwd=folder, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert planned_jobs(folder, *DEMO_ARGS) == {}


def test_a_configured_local_source_that_is_missing_stops_the_dag(tmp_path):
    """A local mirror that is missing used to pass the DAG (only the url was an input)."""
    folder = copy_workflow(tmp_path)
    source, mirror = folder / "local" / "Task02_Heart.tar", folder / "elsewhere" / "Task02_Heart.tar"
    source.parent.mkdir()
    source.write_bytes(b"an archive")
    (folder / "local.yaml").write_text("data:\n  heart:\n    files:\n"
                                       f"      archive: {{url: '{source}', mirrors: ['{mirror}'], md5: null}}\n")
    result = snakemake("-n", "results/data/heart/Task02_Heart.tar", "--configfile", "local.yaml", cwd=folder)
    assert result.returncode != 0
    assert re.search(rf"Missing input files for rule fetch:.*{re.escape(str(mirror))}", result.stdout + result.stderr,
                     re.DOTALL), result.stdout[-3000:] + result.stderr[-3000:]
