"""Under CI=true (.ci/run) the browser tests cannot be skipped: a machine without Chromium fails `make
test` saying why, where elsewhere the browser tests are skipped with a message."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_make_test_with_ci_true():
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == "CI=true make test"


@pytest.fixture
def no_chromium_path(tmp_path) -> str:
    """A PATH with make and id but no chromium, where apt-get and sudo fail as on a machine without
    a usable package source."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for tool in ("make", "id"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    for tool in ("apt-get", "sudo"):
        (tmp_path / tool).write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
        (tmp_path / tool).chmod(0o755)
    return str(tmp_path)


@pytest.mark.parametrize("ci, status, message", [
    ("true", 2, "error: CI=true needs chromium for the browser tests"),
    ("", 0, "warning: could not install chromium (apt-get install -y chromium); the browser tests will be skipped"),
])
def test_make_chromium_fails_under_ci_when_chromium_cannot_be_installed(no_chromium_path, ci, status, message):
    result = subprocess.run(["make", "-s", "chromium"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": no_chromium_path, "CI": ci, "HOME": os.environ.get("HOME", "/tmp")})
    assert result.returncode == status
    assert message in result.stdout + result.stderr


def test_the_browser_tests_fail_under_ci_without_chromium_and_say_why(tmp_path):
    environment = {**os.environ, "CI": "true", "CYCLEGAN_TEST_CHROMIUM": str(tmp_path / "no-chromium"),
                   "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                             str(ROOT / "tests" / "test_serve_browser.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode != 0
    assert "skipped" not in result.stdout.splitlines()[-1]
    assert f"CI=true needs the browser tests, but Debian's chromium is not installed at {tmp_path / 'no-chromium'}" \
        in result.stdout
