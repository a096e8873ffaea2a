from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from mlnb import cli


def command_options(name: str) -> list[str]:
    """The long options a sub-command's own parser declares."""
    module = importlib.import_module(cli.COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"mlnb {name}")
    module.configure_parser(parser)
    return [option for action in parser._actions for option in action.option_strings if option.startswith("--")]


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_helps_with_its_own_options(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: mlnb {name}")
    assert cli.COMMANDS[name][1].split(",")[0] in " ".join(text.split())  # its one-line description
    options = command_options(name)
    assert len(options) > 1  # --help and the command's own
    for option in options:
        assert option in text, option


def test_the_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in text


@pytest.mark.parametrize("argv", [["no-such-command"], [], ["init-tracking", "--no-such-option"]])
def test_an_unknown_or_missing_command_or_option_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage: mlnb" in capsys.readouterr().err


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

