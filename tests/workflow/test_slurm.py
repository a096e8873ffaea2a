"""The demo DAG through a real single-node Slurm (Debian's slurmctld, slurmd, munge on 127.0.0.1),
submitted by ``snakemake --profile workflow/profiles/slurm`` and the executor plugin; and a training job
pre-empted through Slurm (``scancel --signal=USR1``, as the profile's ``--signal`` warning does) that the
retried job resumes: same MLflow run, every step logged once; in one process and in two (torchrun).

Installs what it needs (apt packages, the ``cluster`` extra) and skips only when it cannot: not root or
no apt-get. It writes /etc/slurm/slurm.conf (the plugin clears SLURM_* inside jobs, so the config must be
where Slurm looks by default) and puts back what was there; every daemon it starts is stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workflow.test_workflow import REPO, copy_workflow, free_port

pytestmark = pytest.mark.slow

SLURM_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MUNGE_SOCKET_DIR = Path("/run/munge")
# What Snakemake adds on the command line for a test cluster without accounting (slurmdbd):
# squeue answers the status queries (MinJobAge keeps finished jobs listed) and polling starts soon.
PLUGIN_ARGS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5")
CNN_RESULT = "results/train/cnn/fast/result.json"
CONFIG_TEMPLATE = """\
# Written by tests/workflow/test_slurm.py for a single-node test cluster on 127.0.0.1.
ClusterName=mlnbtest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def run(*command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


def install_requirements() -> None:
    """Debian's Slurm and munge (apt) and the executor plugin (the ``cluster`` extra), when missing."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("a test Slurm needs root and apt-get to install and start slurmctld/slurmd/munge "
                    f"(euid {os.geteuid()}, apt-get {'found' if shutil.which('apt-get') else 'missing'})")
    if not all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *SLURM_PACKAGES],
                       check=True, capture_output=True, env=env, timeout=900)
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-c", str(REPO / "envs/constraints.txt"),
                        "-e", f"{REPO}[cluster]"], check=True, timeout=600)


def node_hardware() -> tuple[int, int]:
    """The CPU count and memory (MB) slurmd detects on this machine."""
    found = dict(re.findall(r"(\w+)=(\S+)", run("slurmd", "-C").stdout))
    return int(found["CPUs"]), int(found["RealMemory"])


class LocalSlurm:
    """munged, slurmctld and slurmd in the foreground, each stopped by its PID."""

    def __init__(self, state: Path):
        self.state = state
        self.daemons: list[subprocess.Popen] = []
        self.previous_conf = SLURM_CONF.read_bytes() if SLURM_CONF.exists() else None
        self.made_conf_dir = not SLURM_CONF.parent.exists()

    def start(self) -> None:
        for folder in ("ctld", "spool"):
            (self.state / folder).mkdir(parents=True)
        cpus, memory_mb = node_hardware()
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(CONFIG_TEMPLATE.format(state=self.state, ctld_port=free_port(),
                                                     slurmd_port=free_port(), cpus=cpus, memory_mb=memory_mb))
        MUNGE_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
        shutil.chown(MUNGE_SOCKET_DIR, "munge", "munge")
        self._daemon("munged", "--foreground", "--force")
        self._wait_for(lambda: run("munge", "-n", check=False).returncode == 0, "munged")
        self._daemon("slurmctld", "-D", "-i")
        self._daemon("slurmd", "-D")
        self._wait_for(lambda: "idle" in run("sinfo", "-h", "-o", "%T", check=False).stdout, "an idle node")

    def _daemon(self, *command: str) -> None:
        log = (self.state / f"{command[0]}.out").open("w")
        self.daemons.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def _wait_for(self, ready, what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            exited = [daemon.args[0] for daemon in self.daemons if daemon.poll() is not None]
            if exited or time.monotonic() > deadline:
                logs = "".join(path.read_text()[-2000:] for path in sorted(self.state.glob("*.log")))
                raise RuntimeError(f"test Slurm: no {what} (exited: {exited}); logs:\n{logs}")
            time.sleep(0.5)

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            if daemon.poll() is None:
                os.kill(daemon.pid, signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(daemon.pid, signal.SIGKILL)
                    daemon.wait()
        if self.previous_conf is None:
            SLURM_CONF.unlink(missing_ok=True)
            if self.made_conf_dir:
                SLURM_CONF.parent.rmdir()
        else:
            SLURM_CONF.write_bytes(self.previous_conf)

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Every job the controller remembers: id -> (its comment, which the plugin sets to
        ``rule_<name>...``, and its state)."""
        listed = run("squeue", "-h", "-t", "all", "-o", "%i|%k|%T").stdout.split()
        return {job_id: (comment, state) for job_id, comment, state in (line.split("|") for line in listed)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    install_requirements()
    test_cluster = LocalSlurm(tmp_path_factory.mktemp("slurm-state"))
    try:
        test_cluster.start()
        yield test_cluster
    finally:
        test_cluster.stop()


def snakemake_command(*targets: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm",
            "--configfile", "workflow/config/demo.yaml", "override.yaml", *PLUGIN_ARGS, *targets]


def start_snakemake(folder: Path, *targets: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = (folder / "snakemake.out").open("w")
    return subprocess.Popen(snakemake_command(*targets), cwd=folder, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, folder: Path, timeout: float) -> str:
    """Wait for Snakemake; on a timeout stop it with SIGINT (SIGTERM leaves the jobs behind)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    output = (folder / "snakemake.out").read_text()
    assert process.returncode == 0, output[-6000:]
    return output


def submitted_jobs(output: str) -> dict[str, str]:
    """Slurm job id -> ``rule_<name>``, from the plugin's submission lines."""
    return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(\w+)/", output))


def cnn_runs(folder: Path) -> dict[str, str]:
    """The MLflow runs of the fast CNN: id -> status."""
    with sqlite3.connect(folder / "results/mlflow/mlflow.db") as db:
        return dict(db.execute("SELECT run_uuid, status FROM runs WHERE name = 'cnn-fast'").fetchall())


@pytest.fixture(scope="module")
def slurm_demo(cluster, tmp_path_factory) -> tuple[Path, str]:
    """The fast CNN and what it needs, through Slurm: its folder and Snakemake's output."""
    folder = copy_workflow(tmp_path_factory.mktemp("slurm-demo"))
    (folder / "override.yaml").write_text("cnn:\n  variants:\n    fast: {steps: 28, eval_every: 7}\n")
    return folder, finish(start_snakemake(folder, CNN_RESULT), folder, timeout=900)


def test_demo_training_runs_through_slurm(cluster, slurm_demo):
    """prepare_mnist and the training ran as Slurm jobs (demo data, fetch and init_tracking are local rules)."""
    folder, output = slurm_demo
    result = json.loads((folder / CNN_RESULT).read_text())
    assert result["settings"]["steps"] == 28 and 0.0 <= result["test_accuracy"] <= 1.0, result
    assert (folder / "results/train/cnn/fast/model.pt").stat().st_size > 0
    submitted, jobs = submitted_jobs(output), cluster.jobs()
    assert sorted(submitted.values()) == ["rule_prepare_mnist", "rule_train_cnn_fast"], output[-3000:]
    assert all(jobs[job_id] == (rule, "COMPLETED") for job_id, rule in submitted.items()), jobs
    assert list(cnn_runs(folder).values()) == ["FINISHED"]


def test_the_logger_plugin_records_the_slurm_jobs(slurm_demo):
    """Under the Slurm profile the MLflow logger (run by the submitting Snakemake) opens one invocation run
    with a child run per job, and the training stage on the node logs inside its job's run."""
    folder, _ = slurm_demo
    with sqlite3.connect(folder / "results/mlflow/mlflow.db") as db:
        def tagged(key: str, value: str) -> dict[str, tuple[str, str]]:
            return {run_id: (name, status) for run_id, name, status in db.execute(
                "SELECT runs.run_uuid, runs.name, runs.status FROM runs JOIN tags USING (run_uuid) "
                "WHERE tags.key = ? AND tags.value = ?", (key, value))}

        def parent(run_id: str) -> str:
            return db.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlflow.parentRunId'",
                              (run_id,)).fetchone()[0]

        invocations, jobs = tagged("mlnb.kind", "invocation"), tagged("mlnb.kind", "job")
        (stage_run,) = cnn_runs(folder)
    assert [status for _, status in invocations.values()] == ["FINISHED"], invocations
    assert {status for _, status in jobs.values()} == {"FINISHED"}, jobs
    assert all(parent(run_id) in invocations for run_id in jobs)
    assert jobs[parent(stage_run)][0] == "train_cnn_fast", jobs


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
def test_preempted_training_resumes_through_slurm(cluster, slurm_demo, tmp_path, processes):
    """SIGUSR1 through Slurm to the running training job's steps (what ``--signal=USR1@180`` does before
    the time limit): the job checkpoints and fails, the profile's retry resumes it in a new Slurm job.
    Starts from the demo folder above with more steps, so only the training reruns. With two processes
    (train.processes, CPU): the job runs torchrun, which forwards the signal; both processes stop after
    the same step and rank 0 alone writes the checkpoint and logs the one MLflow run."""
    folder = tmp_path / "demo"
    shutil.copytree(slurm_demo[0], folder, symlinks=True)
    earlier_runs = cnn_runs(folder)
    steps, log_every = 60, 10
    (folder / "override.yaml").write_text(f"train:\n  log_every: {log_every}\n  checkpoint_every: 1000\n"
                                          f"  processes: {processes}\n  threads: {2 // processes}\n"
                                          f"cnn:\n  variants:\n    fast: {{steps: {steps}, eval_every: 30}}\n")
    training_log = folder / "results/logs/train/cnn/fast.log"
    training_log.unlink()  # the demo's: wait for this run's steps
    snakemake = start_snakemake(folder, CNN_RESULT)
    deadline = time.monotonic() + 600
    while not (training_log.exists() and re.search(r"step [2-9]\d/", training_log.read_text())):
        assert snakemake.poll() is None and time.monotonic() < deadline, (folder / "snakemake.out").read_text()
        time.sleep(0.5)
    running = [job_id for job_id, (rule, state) in cluster.jobs().items()
               if rule == "rule_train_cnn_fast" and state == "RUNNING"]
    assert len(running) == 1, cluster.jobs()
    run("scancel", "--signal=USR1", running[0])
    output = finish(snakemake, folder, timeout=600)

    submitted, jobs = submitted_jobs(output), cluster.jobs()
    assert set(submitted.values()) == {"rule_train_cnn_fast"}, output[-3000:]
    assert [jobs[job_id][1] for job_id in submitted] == ["FAILED", "COMPLETED"], (jobs, output[-3000:])
    resumed = re.findall(r"resuming from \S+ at step (\d+)", training_log.read_text())
    assert len(resumed) == processes and len(set(resumed)) == 1, training_log.read_text()[-3000:]
    resumed_at = int(resumed[0])
    assert 20 <= resumed_at < steps  # not from the start, and no checkpoint but the stop's (every 1000)
    assert ("torchrun" in output) == (processes > 1)
    runs = {run_id: status for run_id, status in cnn_runs(folder).items() if run_id not in earlier_runs}
    assert list(runs.values()) == ["FINISHED"], runs  # one run, continued by the retry
    with sqlite3.connect(folder / "results/mlflow/mlflow.db") as db:
        run_id = next(iter(runs))
        stopped_by = db.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlnb.stopped'",
                                (run_id,)).fetchall()
        logged = [step for (step,) in db.execute("SELECT step FROM metrics WHERE run_uuid = ? AND key = "
                                                 "'train_loss' ORDER BY step", (run_id,))]
        tagged_processes = db.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlnb.processes'",
                                      (run_id,)).fetchall()
    assert stopped_by == [("SIGUSR1",)] and tagged_processes == [(str(processes),)]
    assert logged == list(range(log_every, steps + 1, log_every))  # none lost, none repeated
    assert json.loads((folder / CNN_RESULT).read_text())["settings"]["steps"] == steps
