from __future__ import annotations

import subprocess
import sys

from mlnb import cli


def test_every_command_module_loads_and_builds_its_parser():
    import argparse
    import importlib

    for name, (module_name, _) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"mlnb {name}")
        module.configure_parser(parser)
        assert callable(module.run)


def test_data_error_is_one_clean_line(tmp_path):
    bad = tmp_path / "bad-idx.gz"
    bad.write_bytes(b"not gzip")
    args = ["prepare-mnist", "--train-images", str(bad), "--train-labels", str(bad),
            "--test-images", str(bad), "--test-labels", str(bad), "--out", str(tmp_path / "m.npz")]
    result = subprocess.run([sys.executable, "-m", "mlnb.cli", *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}: cannot read IDX file" in result.stderr
    assert not (tmp_path / "m.npz").exists()

