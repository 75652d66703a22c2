"""One training process per run: the run lock (runs/<name>/.lock)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.cli import main
from cyclegan.training.run_lock import RunLockedError, run_lock

from conftest import tiny_train_argv

SOURCES = str(Path(__file__).resolve().parents[1] / "src")

# Holds the lock of the run folder given as argument until its standard input closes.
HOLDER = """
import sys
from cyclegan.training.run_lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def start_holder(run_dir):
    environment = {**os.environ, "PYTHONPATH": SOURCES + os.pathsep + os.environ.get("PYTHONPATH", "")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=environment)
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_a_second_process_training_the_same_run_is_refused_naming_the_first(tiny_dataset, tmp_path, capsys):
    runs = tmp_path / "runs"
    holder = start_holder(runs / "tiny")
    try:
        assert main(tiny_train_argv(tiny_dataset, runs, "tiny", "--max-iters", "1")) == 2
        assert capsys.readouterr().err.strip() == (
            f"cyclegan train: error: run tiny is already being trained by process {holder.pid}; wait for it to finish or stop it, "
            f"then resume with: cyclegan train --resume {runs / 'tiny'}")
        assert not (runs / "tiny" / "checkpoints").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_the_lock_is_free_again_once_its_process_ends_even_when_killed(tmp_path):
    holder = start_holder(tmp_path / "run")
    with pytest.raises(RunLockedError, match=f"process {holder.pid};"):
        with run_lock(tmp_path / "run"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / "run" / ".lock").exists()  # the stale file is left behind, and does not block
    with run_lock(tmp_path / "run"):
        assert (tmp_path / "run" / ".lock").read_text() == f"{os.getpid()}\n"
    holder.stdin.close()


def test_a_finished_run_can_be_resumed_by_another_process(tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    assert main(tiny_train_argv(tiny_dataset, runs, "tiny", "--max-iters", "1")) == 0
    assert main(["train", "--resume", str(runs / "tiny"), "--max-iters", "2"]) == 0
