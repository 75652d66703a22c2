"""Training survives interruptions: signals, kill -9 at any moment, a full disk, an unwritable folder.

Real processes are used where the behaviour lives in the process: one `python -m cyclegan train`
for Ctrl-C, and children forked from a "zygote" (a Python process that imported torch and the
package once) for the rest, so that twenty kills cost seconds rather than twenty interpreter
starts. The children run the very same `cyclegan.cli.main` and die for real.
"""
from __future__ import annotations

import errno
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cyclegan import checkpoint as ckpt
from cyclegan.cli import main
from cyclegan.inference import Translator
from cyclegan.training import trainer as trainer_module

ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TINY = ["--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8", "--load-size", "36", "--crop-size", "32",
        "--num-workers", "0", "--no-progress", "--no-tensorboard", "--log-every", "1", "--gallery-size", "1"]


def train_args(data: Path, runs: Path, name: str, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--runs-dir", str(runs), "--name", name, *TINY, *extra]


def resume_args(run: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run), "--no-progress", *extra]


def latest_iteration(run: Path) -> int | None:
    if not (run / "checkpoints" / ckpt.LATEST).exists():
        return None
    return ckpt.load_training_state(ckpt.find_checkpoint(run).state)["iteration"]


def logged_iterations(run: Path) -> list[int]:
    from cyclegan.training.logging import read_log

    return [record["iteration"] for record in read_log(run / "log.jsonl")]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def assert_checkpoint_loads(run: Path) -> int:
    """The latest checkpoint translates and its training state reads; returns its iteration."""
    Translator.from_checkpoint(run, device="cpu")
    return ckpt.load_training_state(ckpt.find_checkpoint(run).state)["iteration"]


# ----------------------------------------------------------------------------- the zygote
ZYGOTE = r"""
import json, os, sys, traceback
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import torch._dynamo  # imported lazily by the first torch.optim.Adam: seconds
import cyclegan.cli, cyclegan.cli.train, cyclegan.training.trainer
print("ready", flush=True)
for line in sys.stdin:
    argv, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        code = 1
        try:
            code = cyclegan.cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Zygote:
    """Starts `cyclegan` commands as forked children of one warm interpreter."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=0, env=ENVIRONMENT)
        self.buffer = b""
        assert self.read_line(120) == "ready"

    def read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                return None
            chunk = os.read(self.process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("the zygote process exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def start(self, argv: list[str], log: Path) -> int:
        """Fork a child running `cyclegan argv` (output appended to `log`); returns its pid."""
        self.process.stdin.write((json.dumps([argv, str(log)]) + "\n").encode())
        return int(self.read_line(60))

    def wait(self, timeout: float) -> int | None:
        """The exit code of the running child (negative: killed by that signal), or None if it
        is still running after `timeout` seconds."""
        line = self.read_line(timeout)
        return None if line is None else int(line)

    def close(self) -> None:
        self.process.kill()  # no child is running between tests; an orderly exit takes seconds
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote():
    process = Zygote()
    yield process
    process.close()


# ----------------------------------------------------------------------------- signals
def signal_the_group_after_two_iterations(args: list[str], run: Path, signum: int,
                                          tmp_path: Path) -> tuple[int, str, str]:
    """`cyclegan train ARGS` in its own process group, sent `signum` to the whole group (its
    data-loading workers too) once two iterations of `run` are logged: its exit code, stdout, stderr."""
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "cyclegan", *args], stdout=stdout, stderr=stderr,
                                   env=ENVIRONMENT, start_new_session=True)
        try:
            wait_until(lambda: len(logged_iterations(run)) >= 2 or process.poll() is not None, 180,
                       "two logged iterations")
            os.killpg(process.pid, signum)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    return code, stdout_path.read_text(), stderr_path.read_text()


def test_ctrl_c_finishes_the_step_saves_names_the_resume_command_and_resume_continues(tiny_dataset, tmp_path, capsys):
    runs, run = tmp_path / "runs", tmp_path / "runs" / "interrupted"
    args = train_args(tiny_dataset, runs, "interrupted", "--epochs", "1000", "--num-workers", "1")
    # As Ctrl-C in a terminal: SIGINT to the whole process group, data-loading worker included.
    code, out, err = signal_the_group_after_two_iterations(args, run, signal.SIGINT, tmp_path)

    assert "Traceback" not in err, err
    assert code == 130, out + err
    assert "SIGINT received: finishing this step and saving a checkpoint" in out
    assert f"stopped by SIGINT; continue with: cyclegan train --resume {run}" in out
    stopped_at = assert_checkpoint_loads(run)
    assert stopped_at == logged_iterations(run)[-1]  # the step under way was finished and saved

    assert main(resume_args(run, "--max-iters", str(stopped_at + 2), "--num-workers", "0")) == 0
    assert f"resuming {run} at iteration {stopped_at}" in capsys.readouterr().out
    assert latest_iteration(run) == stopped_at + 2


def test_sigterm_stops_the_same_way_with_exit_code_143(tiny_dataset, tmp_path, zygote):
    runs, run, log = tmp_path / "runs", tmp_path / "runs" / "terminated", tmp_path / "log.txt"
    pid = zygote.start(train_args(tiny_dataset, runs, "terminated", "--epochs", "1000"), log)
    wait_until(lambda: len(logged_iterations(run)) >= 1, 120, "a logged iteration")
    os.kill(pid, signal.SIGTERM)

    assert zygote.wait(120) == 143, log.read_text()
    assert f"stopped by SIGTERM; continue with: cyclegan train --resume {run}" in log.read_text()
    assert assert_checkpoint_loads(run) == logged_iterations(run)[-1]


def test_sigterm_to_the_whole_process_group_stops_cleanly_with_a_loading_worker(tiny_dataset, tmp_path):
    # As `timeout`, Slurm's scancel or systemd stop it: SIGTERM to every process of the run,
    # data-loading workers included. A worker killed by it used to end the run in a traceback
    # from the loader's watchdog, inside the step, with nothing saved.
    runs, run = tmp_path / "runs", tmp_path / "runs" / "timed-out"
    args = train_args(tiny_dataset, runs, "timed-out", "--epochs", "1000", "--num-workers", "2")
    code, out, err = signal_the_group_after_two_iterations(args, run, signal.SIGTERM, tmp_path)
    assert "Traceback" not in out + err, out + err
    assert code == 143, out + err
    assert f"stopped by SIGTERM; continue with: cyclegan train --resume {run}" in out
    assert assert_checkpoint_loads(run) == logged_iterations(run)[-1]


def test_a_second_signal_exits_at_once_without_saving(tiny_dataset, tmp_path, zygote):
    runs, run, log = tmp_path / "runs", tmp_path / "runs" / "impatient", tmp_path / "log.txt"
    pid = zygote.start(train_args(tiny_dataset, runs, "impatient", "--epochs", "1000", "--save-every", "1"), log)
    wait_until(lambda: latest_iteration(run) is not None, 120, "a first checkpoint")
    # Two different signals, so that the kernel cannot merge them into one. Which one the process
    # handles first is not fixed: the kernel may hand each to a different thread (torch's, tqdm's),
    # so SIGTERM can be seen first. The first asks for a clean stop; the process dies of the second.
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)

    returncode = zygote.wait(60)
    output = log.read_text()
    received = [name for name in ("SIGINT", "SIGTERM") if f"{name} received" in output]
    assert len(received) == 1, output
    second = {"SIGINT": signal.SIGTERM, "SIGTERM": signal.SIGINT}[received[0]]
    assert returncode == -second, output
    assert "continue with" not in output and "Traceback" not in output
    assert_checkpoint_loads(run)


# ----------------------------------------------------------------------------- kill -9
def test_kill_9_at_random_moments_always_leaves_a_loadable_checkpoint_and_resume_works(
        tiny_dataset, tmp_path, zygote):
    runs, run, log = tmp_path / "runs", tmp_path / "runs" / "killed", tmp_path / "log.txt"
    fresh = train_args(tiny_dataset, runs, "killed", "--epochs", "1000", "--save-every", "1", "--keep-last", "2")
    resume = resume_args(run, "--save-every", "1")
    rng = random.Random(20240611)
    # The first run is killed only once it has saved, so that the test does not depend on how fast
    # a loaded machine reaches the first checkpoint; every later run is killed at a random moment.
    # The time it takes, on this machine now, from a start to the first checkpoint is the unit of
    # the kill moments and of the time allowed: on a slow machine the kills still land in start-up,
    # data, steps and writes alike, and on a fast one they do not all come after the first save.
    began = time.monotonic()
    pid = zygote.start(fresh, log)
    wait_until(lambda: latest_iteration(run) is not None, 120, "the first checkpoint")
    to_first_checkpoint = time.monotonic() - began
    os.kill(pid, signal.SIGKILL)
    assert zygote.wait(60) == -signal.SIGKILL, log.read_text()[-3000:]
    kills_wanted = 20
    checkpoints, kills = [assert_checkpoint_loads(run)], 1
    deadline = time.monotonic() + kills_wanted * 4 * to_first_checkpoint

    while kills < kills_wanted and time.monotonic() < deadline:
        pid = zygote.start(resume if latest_iteration(run) is not None else fresh, log)
        status = zygote.wait(rng.uniform(0.1, 2.0) * to_first_checkpoint)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            status = zygote.wait(60)
            kills += 1
        assert status == -signal.SIGKILL, log.read_text()[-3000:]
        if latest_iteration(run) is not None:
            checkpoints.append(assert_checkpoint_loads(run))

    assert kills >= 12, f"only {kills} kills in the time allowed ({to_first_checkpoint:.2f} s to a first checkpoint)"
    assert checkpoints == sorted(checkpoints) and checkpoints[-1] > 0, checkpoints
    leftovers = sorted(path.name for path in (run / "checkpoints").glob(".*.tmp"))
    pid = zygote.start(resume_args(run, "--max-iters", str(checkpoints[-1] + 2)), log)
    assert zygote.wait(180) == 0, log.read_text()[-3000:]
    assert assert_checkpoint_loads(run) == checkpoints[-1] + 2
    print(f"{kills} kills; checkpoint iterations after each: {checkpoints}; "
          f"temporary files left by killed writes: {leftovers}")


def test_temporary_files_of_a_killed_checkpoint_write_are_removed_by_the_next_save(tiny_dataset, tmp_path):
    # Needs checkpoint.save_checkpoint to remove stale ".*.tmp" files of its folder.
    runs, run = tmp_path / "runs", tmp_path / "runs" / "stale"
    assert main(train_args(tiny_dataset, runs, "stale", "--max-iters", "1")) == 0
    stale = run / "checkpoints" / ".iter_00000002.safetensors.x1y2z3.tmp"  # as fileio.atomic_path names them
    stale.write_bytes(b"half a checkpoint")

    assert main(resume_args(run, "--max-iters", "2")) == 0

    assert not stale.exists()


# ----------------------------------------------------------------------------- full disk, unwritable folder
@pytest.mark.parametrize("failing_write", ["weights", "training state"])
def test_a_full_disk_while_saving_stops_with_a_clear_error_and_keeps_the_previous_checkpoint(
        tiny_dataset, tmp_path, monkeypatch, capsys, failing_write):
    # Needs checkpoint.save_checkpoint to turn OSError into CheckpointError (see the report).
    runs, run = tmp_path / "runs", tmp_path / "runs" / "full"
    assert main(train_args(tiny_dataset, runs, "full", "--max-iters", "2")) == 0

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing_write == "weights":
        monkeypatch.setattr(ckpt, "save_file", no_space)
    else:
        monkeypatch.setattr(ckpt.torch, "save", no_space)
    capsys.readouterr()
    code = main(resume_args(run, "--max-iters", "4", "--save-every", "1"))
    monkeypatch.undo()

    error = capsys.readouterr().err
    assert code == 2
    assert "No space left on device" in error and str(run / "checkpoints") in error
    assert f"cyclegan train --resume {run}" in error
    assert ckpt.find_checkpoint(run).weights.name == "iter_00000002.safetensors"
    assert assert_checkpoint_loads(run) == 2
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert main(resume_args(run, "--max-iters", "3")) == 0


def test_a_run_folder_that_cannot_be_created_is_refused_before_any_model_is_built(
        tiny_dataset, tmp_path, monkeypatch, capsys):
    # Needs the trainer to check that the run folder is writable (see the report).
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the runs folder should go")
    monkeypatch.setattr(trainer_module, "build_model", lambda *args: pytest.fail("a model was built"))

    assert main(train_args(tiny_dataset, blocker / "runs", "nowhere", "--max-iters", "1")) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(blocker) in error


def test_a_read_only_runs_folder_is_refused_before_any_model_is_built(tiny_dataset, tmp_path, monkeypatch, capsys):
    # Needs the trainer to check that the run folder is writable (see the report).
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        if os.access(runs, os.W_OK):
            pytest.skip("permissions do not stop this user (root) from writing")
        monkeypatch.setattr(trainer_module, "build_model", lambda *args: pytest.fail("a model was built"))
        assert main(train_args(tiny_dataset, runs, "readonly", "--max-iters", "1")) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(runs) in error
    finally:
        runs.chmod(0o755)


def test_a_log_line_torn_inside_a_multi_byte_character_is_ignored_on_resume(tiny_dataset, tmp_path):
    # A crash mid-write can cut a UTF-8 character in two; reading the log then raised UnicodeDecodeError.
    run = tmp_path / "runs" / "torn"
    assert main(train_args(tiny_dataset, tmp_path / "runs", "torn", "--max-iters", "2", "--log-every", "1")) == 0
    with open(run / "log.jsonl", "ab") as log:
        log.write('{"iteration": 3, "warning": "caf'.encode() + "é".encode()[:1])
    assert main(resume_args(run, "--max-iters", "3")) == 0
    assert latest_iteration(run) == 3
