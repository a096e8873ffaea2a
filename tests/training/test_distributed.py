"""Data-parallel training (mlnb.training.distributed): the shard logic, the collectives in two real processes,
and `mlnb train-cnn` under torchrun with 2 CPU processes (gloo) against a single-process run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import mlflow
import pytest
import torch
import torch.multiprocessing

from mlnb.cnn.network import SeededDropout
from mlnb.errors import ConfigError
from mlnb.stopping import Stopped, StopRequest
from mlnb.training.checkpoint import Checkpointer, load_checkpoint
from mlnb.training.distributed import World, launched_world, process_group, rank_device
from mlnb.training.launch import torchrun_options
from mlnb.training.loop import Hook, TrainingLoop

# --- one process: the shard logic ---------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_the_shards_of_the_ranks_are_disjoint_and_make_up_the_global_batch_in_order(size):
    batch = torch.randperm(24, generator=torch.Generator().manual_seed(size))
    shards = [World(rank=rank, size=size).shard(batch) for rank in range(size)]
    assert {len(shard) for shard in shards} == {24 // size}
    assert torch.equal(torch.cat(shards), batch)  # the union, in order: the global batch
    assert len(set(torch.cat(shards).tolist())) == 24  # no index in two shards


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="10 does not split into 4"):
        World(rank=0, size=4).shard(torch.arange(10))
    with pytest.raises(ConfigError, match=r"cnn\.variants\.x\.batch_size: batch size 50 does not split into "
                                          r"the job's 4 data-parallel processes"):
        World(rank=1, size=4).check_divisible(50, "cnn.variants.x.batch_size")
    World(rank=1, size=4).check_divisible(64, "dcgan.batch_size")


def test_sharded_dropout_masks_are_slices_of_the_single_process_mask():
    x = torch.ones(6, 5)
    whole = SeededDropout(0.5, torch.Generator().manual_seed(3))(x)
    parts = [SeededDropout(0.5, torch.Generator().manual_seed(3), shard=(rank, 3))(x[:2]) for rank in range(3)]
    assert torch.equal(torch.cat(parts), whole)


def test_the_world_comes_from_torchruns_variables():
    assert launched_world({}) == World(rank=0, size=1, local_rank=0)
    assert launched_world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    with pytest.raises(ConfigError, match="RANK 4 / WORLD_SIZE 4"):
        launched_world({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="must be integers"):
        launched_world({"RANK": "x", "WORLD_SIZE": "2"})


def test_each_process_of_a_cuda_job_takes_the_gpu_of_its_local_rank():
    cpu = torch.device("cpu")
    assert rank_device(World(1, 2, 1), cpu) == cpu and rank_device(World(), torch.device("cuda:1")).index == 1
    with pytest.raises(ConfigError, match=r"train\.device: cuda:1 names one GPU; a data-parallel job"):
        rank_device(World(0, 2, 0), torch.device("cuda:1"))
    if torch.cuda.device_count() < 2:
        with pytest.raises(ConfigError, match="process 1 of 2 wants cuda:1, but only"):
            rank_device(World(1, 2, 1), torch.device("cuda"))
    else:
        assert rank_device(World(1, 2, 1), torch.device("cuda")) == torch.device("cuda", 1)


def test_one_process_has_no_process_group_and_its_collectives_change_nothing():
    world = World()
    with process_group(world, torch.device("cpu")) as joined:
        assert joined == world and not torch.distributed.is_initialized()
        values = {"loss": torch.tensor(2.5)}
        assert world.average(values, torch.device("cpu")) == values
        assert world.agreed_stop(None) is None and world.agreed_stop("SIGTERM") == "SIGTERM"
        world.barrier()
        model = torch.nn.Linear(2, 2)
        assert world.wrap(model, torch.device("cpu")) is model
        assert world.threads(3) == 3
    assert World(size=4).threads(3) == 1 and World(size=2).threads(8) == 4


# --- two processes (gloo): the collectives --------------------------------------------------------------------

def _collectives(rank: int, size: int, init_file: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    try:
        world = World(rank=rank, size=size)
        mean = world.average({"loss": torch.tensor(float(rank + 1)), "accuracy": torch.tensor(rank * 0.5)},
                             torch.device("cpu"))
        stop = world.agreed_stop("SIGUSR1" if rank == 1 else None)  # only rank 1 got the signal
        quiet = world.agreed_stop(None)
        results.put((rank, float(mean["loss"]), float(mean["accuracy"]), stop, quiet))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # two spawned processes
def test_two_processes_average_their_metrics_and_all_stop_when_one_got_a_signal(tmp_path):
    context = torch.multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    torch.multiprocessing.start_processes(_collectives, args=(2, str(tmp_path / "init"), results), nprocs=2,
                                          start_method="spawn")
    answers = sorted(results.get() for _ in range(2))
    assert answers == [(0, 1.5, 0.25, "SIGUSR1", None), (1, 1.5, 0.25, "SIGUSR1", None)]


class RecordingTracker:
    run_id = "run-under-test"

    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, dict(metrics)))

    def flush(self):
        pass


def _loop(rank: int, size: int, init_file: str, folder, results) -> None:
    """Ten steps of a loop whose metric is step + rank; rank 1 alone gets SIGUSR1 during step 5."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    try:
        stop, tracker, hooked = StopRequest(), RecordingTracker(), []

        def step_fn(step):
            if rank == 1 and step == 5:
                stop._handle(signal.SIGUSR1, None)
            return {"value": torch.tensor(float(step + rank))}

        checkpointer = Checkpointer(folder / f"rank{rank}", fingerprint="f", models={"model": torch.nn.Linear(1, 1)})
        loop = TrainingLoop(total_steps=10, images_per_step=2, log_every=2, checkpoint_every=3,
                            checkpointer=checkpointer, tracker=tracker, device=torch.device("cpu"), stop=stop,
                            hooks=(Hook(2, lambda step, loop: hooked.append(step)),), world=World(rank, size))
        try:
            loop.run(step_fn)
            stopped = None
        except Stopped as error:
            stopped = error.signal
        results.put((rank, stopped, tracker.logged, hooked, sorted(path.name for path in folder.glob(f"rank{rank}/*"))))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # two spawned processes
def test_in_two_processes_the_loop_logs_averages_once_and_all_stop_after_the_same_step(tmp_path):
    results = torch.multiprocessing.get_context("spawn").SimpleQueue()
    torch.multiprocessing.start_processes(_loop, args=(2, str(tmp_path / "init"), tmp_path, results), nprocs=2,
                                          start_method="spawn")
    (_, stopped0, logged0, hooked0, files0), (_, stopped1, logged1, hooked1, files1) = sorted(
        results.get() for _ in range(2))
    assert stopped0 == stopped1 == "SIGUSR1"  # rank 0 got no signal, yet stops after step 5 too
    assert logged0 == [(2, {"value": 2.0}), (4, {"value": 4.0})] and logged1 == []  # means of both ranks
    assert hooked0 == [2, 4] and hooked1 == []
    assert files0 == [".lock", "last.pt"] and files1 == []  # rank 0 alone writes checkpoints (and holds the lock)
    state = load_checkpoint(tmp_path / "rank0" / "last.pt")
    assert state["step"] == 5 and state["extra"]["loop"]["means"]["count"] == 1
    assert float(state["extra"]["loop"]["means"]["sums"]["value"]) == 5.5  # step 5 of both, averaged


# --- mlnb train-cnn under torchrun ----------------------------------------------------------------------------

VARIANT = ["--new-variant", "--batch-size", "10", "--optimizer", "adam", "--schedule", "one-cycle",
           "--dropout", "0.3", "--eval-every", "20", "--log-every", "10", "--checkpoint-every", "20"]


def cnn_command(tmp_path, data, name, uri, steps, processes=1, device="cpu", *extra):
    launch = [sys.executable, "-m", "torch.distributed.run", *torchrun_options(processes)] if processes > 1 \
        else [sys.executable]
    return [*launch, "-m", "mlnb.cli", "train-cnn", "--data", data, "--variant", "ddp", "--seed", "3",
            "--out", str(tmp_path / name), "--checkpoint-dir", str(tmp_path / "checkpoints" / name),
            "--device", device, "--threads", str(processes), "--tracking-uri", uri, "--experiment", "tests",
            "--steps", str(steps), *VARIANT, *extra]


def runs_of(uri):
    client = mlflow.MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("tests").experiment_id])


def metric_steps(client, run):
    """The training's metrics by step (system metrics are samples in time: their count follows the wall time)."""
    return {key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics
            if not key.startswith("system/")}


def weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)


def assert_close_weights(first, second, tolerance=1e-4):
    """The same training up to float rounding: the gradients are averaged over the shards."""
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=tolerance, atol=tolerance, msg=name)


@pytest.mark.slow  # training under torchrun
def test_two_processes_log_one_run_like_a_single_process_run_and_train_the_same_model(tmp_path, mnist_npz,
                                                                                        mlflow_uri):
    two = subprocess.run(cnn_command(tmp_path, mnist_npz, "two", mlflow_uri, 60, processes=2),
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    client, (run,) = runs_of(mlflow_uri)  # one MLflow run, from rank 0
    assert run.info.status == "FINISHED" and run.data.tags["mlnb.processes"] == "2"
    assert two.stdout.count("test accuracy") == 1  # rank 0 alone reports

    one = subprocess.run(cnn_command(tmp_path, mnist_npz, "one", mlflow_uri, 60), capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    client, runs = runs_of(mlflow_uri)
    (single,) = [r for r in runs if r.info.run_id != run.info.run_id]
    assert single.data.tags["mlnb.processes"] == "1"
    assert metric_steps(client, run) == metric_steps(client, single)  # the same metrics at the same steps
    assert metric_steps(client, run)["train_loss"] == [10, 20, 30, 40, 50, 60]
    assert run.data.params == single.data.params
    assert_close_weights(weights(tmp_path / "two"), weights(tmp_path / "one"))
    for key in ("train_loss", "train_accuracy", "test_loss"):
        assert run.data.metrics[key] == pytest.approx(single.data.metrics[key], rel=1e-3, abs=1e-4), key


@pytest.mark.slow  # three training runs, one or two of them in two processes: over a minute
@pytest.mark.parametrize(("stopped", "resumed", "stop"), [(2, 1, signal.SIGUSR1), (1, 2, signal.SIGTERM)],
                         ids=["two-then-one", "one-then-two"])
def test_a_run_stopped_mid_way_resumes_with_another_process_count_to_the_end(tmp_path, mnist_npz, mlflow_uri,
                                                                              stopped, resumed, stop):
    """SIGUSR1 to torchrun (as Slurm's --signal=USR1 warning; torchrun forwards it to both processes), or
    SIGTERM to one process; the checkpoint resumes in the other process count: the same MLflow run, every
    logged step once, the weights of an uninterrupted single-process run."""
    steps = 400
    launched = subprocess.Popen(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri, steps, processes=stopped),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = tmp_path / "checkpoints" / "run" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and launched.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first checkpoint (step 20) is written: the run is under way
    launched.send_signal(stop)
    output, _ = launched.communicate(timeout=180)
    assert launched.returncode == (128 + stop if stopped == 1 else 1), output[-3000:]  # torchrun: 1
    assert output.count(f"stopped by {stop.name} after step") == stopped, output[-3000:]  # all, the same step
    stopped_at = load_checkpoint(last)["step"]
    assert f"stopped by {stop.name} after step {stopped_at} (checkpoint written)" in output
    assert 20 <= stopped_at < steps
    client, (run,) = runs_of(mlflow_uri)
    assert run.info.status == "KILLED" and run.data.tags["mlnb.stopped"] == stop.name
    assert not (tmp_path / "run" / "result.json").exists()

    again = subprocess.run(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri, steps, processes=resumed),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count(f"resuming from {last} at step {stopped_at}") == resumed  # every process
    client, runs = runs_of(mlflow_uri)
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # the same run, continued
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["mlnb.processes"] == str(resumed)
    for key in ("train_loss", "learning_rate"):  # every logged step once: none repeated, none lost
        assert metric_steps(client, finished)[key] == list(range(10, steps + 1, 10)), key
    assert metric_steps(client, finished)["test_accuracy"] == list(range(20, steps + 1, 20))

    uninterrupted = subprocess.run(cnn_command(tmp_path, mnist_npz, "whole", mlflow_uri, steps),
                                   capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    # 400 Adam steps amplify the all-reduce's rounding on a few weights to ~1e-4 (measured: 1e-6 to 1.2e-4
    # over stops); the same dropout mask on both shards (a bug) moves the dense weights by 0.16 (measured)
    assert_close_weights(weights(tmp_path / "run"), weights(tmp_path / "whole"), tolerance=1e-3)


@pytest.mark.slow  # training under torchrun
@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (NCCL gives each process its own)")
def test_two_gpus_train_with_nccl_and_synchronised_batch_norm_like_one_gpu(tmp_path, mnist_npz, mlflow_uri):
    """NCCL, one GPU per process, batch norm over the global batch (SyncBatchNorm): the weights and the
    running statistics of one GPU, to TF32 rounding (fp32 here: bf16 off)."""
    exact = ("--batch-norm", "true", "--bf16", "false", "--channels-last", "false")
    for name, processes in (("two", 2), ("one", 1)):
        done = subprocess.run(cnn_command(tmp_path, mnist_npz, name, mlflow_uri, 60, processes, "cuda", *exact),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    client, runs = runs_of(mlflow_uri)
    two, one = sorted(runs, key=lambda run: run.data.tags["mlnb.processes"], reverse=True)
    assert two.data.tags["mlnb.processes"] == "2" and metric_steps(client, two) == metric_steps(client, one)
    assert_close_weights(weights(tmp_path / "two"), weights(tmp_path / "one"), tolerance=1e-2)
