"""The invocation's targets, executor, cores and profiles, parsed as Snakemake parses them."""

from __future__ import annotations

from snakemake_logger_plugin_mlflow.command_line import command_line_facts


def test_facts_come_from_the_command_line_and_the_profiles_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = tmp_path / "profiles" / "site"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text("cores: 3\nexecutor: local\n")
    facts = command_line_facts(["--workflow-profile", str(profile), "results/a.txt", "results/b.txt"])
    assert facts == {"targets": "results/a.txt results/b.txt", "executor": "local", "cores": "3",
                     "profile": str(profile)}
    assert command_line_facts(["--workflow-profile", str(profile), "--cores", "5"])["cores"] == "5"
    assert command_line_facts(["-c", "2"])["targets"] == "(default target)"


def test_a_command_line_that_is_not_snakemakes_gives_no_facts():
    assert command_line_facts(["-x", "tests", "--no-such-option"]) == {}
