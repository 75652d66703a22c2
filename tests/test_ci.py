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


# A test module that needs a module no machine has, or a shared data set no machine has.
MISSING_PARTS = '''
from conftest import require_module, shared_dataset

def test_needs_a_missing_extra():
    require_module("no_such_module_for_cyclegan_ci", "video")

def test_needs_missing_shared_data():
    shared_dataset("no_such_shared_dataset_for_cyclegan_ci")
'''


def run_missing_parts(tmp_path, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_missing_parts.py").write_text(MISSING_PARTS)
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    environment = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "test_missing_parts.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=environment)


def test_under_ci_a_missing_extra_or_missing_shared_data_fails_the_run_saying_why(tmp_path):
    result = run_missing_parts(tmp_path, "true")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("2 failed")
    assert ("CI=true needs this test, but no_such_module_for_cyclegan_ci is not installed (No module named "
            "'no_such_module_for_cyclegan_ci'): pip install -e '.[video]'") in result.stdout
    assert ("CI=true needs this test, but the shared test data at "
            f"{tmp_path.parents[1] / 'shared' / 'data' / 'no_such_shared_dataset_for_cyclegan_ci'} is missing") in result.stdout


def test_outside_ci_the_same_tests_are_skipped_saying_why(tmp_path):
    result = run_missing_parts(tmp_path, "")
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1].startswith("2 skipped")
    assert "no_such_module_for_cyclegan_ci is not installed" in result.stdout
