from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from mlnb.stopping import SignalExit, Stopped, cooperative_stop, deferred_signals, exit_code, stops_outlive_finalizers

# A long job as a training command would be: steps inside a tracked run; each step
# sleeps, logs a metric and writes its number; with --cooperative, the loop checks
# for a stop after each step, writes a checkpoint, then raises Stopped.
LOOP_SCRIPT = """
import contextlib, sys, time
from pathlib import Path
from mlnb import cli, tracking
from mlnb.stopping import Stopped, cooperative_stop

def configure_parser(parser):
    tracking.add_tracking_arguments(parser)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--cooperative", action="store_true")

def run(args):
    with tracking.tracked_run(args, "loop") as tracker:
        (args.folder / "run_id").write_text(tracker.run_id)
        with cooperative_stop() if args.cooperative else contextlib.nullcontext() as stop:
            for step in range(100_000):
                time.sleep(0.02)  # the work of one step
                tracker.log_metrics({"step_done": step}, step=step)
                (args.folder / "steps").write_text(str(step + 1))
                if stop is not None and stop.requested:
                    (args.folder / "checkpoint").write_text(str(step + 1))
                    raise Stopped(stop.signal)
    return 0

cli.COMMANDS["loop"] = ("__main__", "a long test loop")
sys.exit(cli.main(["loop", *sys.argv[1:]]))
"""


def start_loop(folder: Path, uri: str, *flags: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", LOOP_SCRIPT, "--tracking-uri", uri, "--experiment", "tests",
                                "--folder", str(folder), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not (folder / "steps").exists():  # handlers are installed once a step is done
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the loop never started"
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_a_signal_stops_the_loop_after_its_step_with_a_checkpoint(tmp_path, mlflow_uri, signum):
    process = start_loop(tmp_path, mlflow_uri, "--cooperative")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(f"mlnb loop: stopped by {name}")
    steps = int((tmp_path / "steps").read_text())
    assert int((tmp_path / "checkpoint").read_text()) == steps  # the step finished, then the checkpoint
    run = mlflow.MlflowClient(mlflow_uri).get_run((tmp_path / "run_id").read_text())
    assert (run.info.status, run.data.tags["mlnb.stopped"]) == ("KILLED", name)
    history = mlflow.MlflowClient(mlflow_uri).get_metric_history(run.info.run_id, "step_done")
    assert [m.value for m in history] == list(range(steps))  # buffered metrics written before the end


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_outside_a_cooperative_block_a_signal_exits_at_once_and_the_run_ends_killed(tmp_path, mlflow_uri, signum):
    process = start_loop(tmp_path, mlflow_uri)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    assert "Traceback" not in stderr
    assert not (tmp_path / "checkpoint").exists()
    run = mlflow.MlflowClient(mlflow_uri).get_run((tmp_path / "run_id").read_text())
    assert (run.info.status, run.data.tags["mlnb.stopped"]) == ("KILLED", signal.Signals(signum).name)


def test_handlers_only_set_the_flag_and_are_restored():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    with cooperative_stop() as stop:
        assert not stop.requested and stop.signal is None
        signal.raise_signal(signal.SIGUSR1)
        signal.raise_signal(signal.SIGTERM)  # a second signal does not replace the first
        assert (stop.requested, stop.signal) == (True, "SIGUSR1")
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_handlers_are_restored_when_the_block_raises():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Stopped), cooperative_stop():
        raise Stopped("SIGINT")
    assert signal.getsignal(signal.SIGINT) is before


def test_deferred_signals_arrive_after_the_block():
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        with deferred_signals():
            signal.raise_signal(signal.SIGUSR1)
            assert received == []
        assert received == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_stopped_is_not_swallowed_by_except_exception():
    with pytest.raises(Stopped):
        try:
            raise Stopped("SIGTERM")
        except Exception:  # what a careless cleanup would write
            pytest.fail("Stopped was caught as an Exception")


def test_exit_codes_follow_the_shell_convention():
    assert (Stopped("SIGTERM").exit_code, exit_code("SIGINT"), exit_code("SIGUSR1")) == (143, 130, 138)
    assert SignalExit("SIGTERM").code == 143 and isinstance(SignalExit("SIGTERM"), SystemExit)


# A finalizer that receives Ctrl-C: Python prints "Exception ignored" and drops the KeyboardInterrupt.
SWALLOWED_SCRIPT = """
import contextlib, signal, sys, time
from mlnb.stopping import stops_outlive_finalizers

class Interrupted:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the handler raises here, inside the finalizer

def main():
    Interrupted()
    for _ in range(100):  # the main code, which Ctrl-C should stop
        time.sleep(0.01)
    print("ran to the end")

try:
    with stops_outlive_finalizers() if sys.argv[1] == "guarded" else contextlib.nullcontext():
        main()
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("mode, printed, ignored", [("guarded", "interrupted", False),
                                                     ("bare", "ran to the end", True)])
def test_a_ctrl_c_swallowed_by_a_finalizer_is_sent_again_within_the_block(mode, printed, ignored):
    result = subprocess.run([sys.executable, "-c", SWALLOWED_SCRIPT, mode], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == printed, result.stderr
    assert ("Exception ignored" in result.stderr) == ignored  # sent again, not printed as dropped


def test_the_block_restores_the_unraisable_hook_and_passes_other_errors_on(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with stops_outlive_finalizers():
        assert sys.unraisablehook is not seen.append

        class Broken:
            def __del__(self):
                raise ValueError("in a finalizer")

        Broken()
    assert sys.unraisablehook == seen.append
    assert [type(unraisable.exc_value) for unraisable in seen] == [ValueError]
