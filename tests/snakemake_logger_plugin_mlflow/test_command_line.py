"""The invocation's targets, executor, cores and profiles, parsed as Snakemake parses them from the command line
it reports (the workflow-started record's ``cmd``)."""

from __future__ import annotations

import pytest

from snakemake_logger_plugin_mlflow.command_line import command_line_facts


def test_facts_come_from_the_command_line_and_the_profiles_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = tmp_path / "profiles" / "site"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text("cores: 3\nexecutor: local\n")
    facts = command_line_facts(f"/usr/bin/snakemake --workflow-profile {profile} results/a.txt results/b.txt")
    assert facts == {"targets": "results/a.txt results/b.txt", "executor": "local", "cores": "3",
                     "profile": str(profile)}
    assert command_line_facts(f"snakemake --workflow-profile {profile} --cores 5")["cores"] == "5"
    assert command_line_facts("snakemake -c 2")["targets"] == "(default target)"


@pytest.mark.parametrize("command", [None, "", "pytest -x tests --no-such-option", "snakemake 'unclosed"])
def test_no_command_line_or_one_that_is_not_snakemakes_gives_no_facts(command):
    assert command_line_facts(command) == {}


@pytest.mark.parametrize("command", ["pytest --version", "pytest -h", "pytest --no-such-option"])
def test_parsing_prints_nothing_whatever_the_command_line_asks(command, capsys):
    command_line_facts(command)
    assert capsys.readouterr() == ("", "")
