"""Every command that applies a model finds it through `cyclegan.inference.resolve.resolve`, the
one place where what a user typed becomes a model, with the --pick asked."""
from __future__ import annotations

import pytest

from cyclegan.cli import main
from cyclegan.errors import CheckpointError
from cyclegan.inference import resolve as resolve_module

COMMANDS = {
    "translate": ["translate", "MODEL", "a.png", "--out", "OUT", "--pick", "best"],
    "serve": ["serve", "MODEL", "--pick", "best"],
    "evaluate": ["evaluate", "MODEL", "--data", "DATA", "--pick", "best"],
    "export": ["export", "MODEL", "--onnx", "OUT/model.onnx", "--pick", "best"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_command_resolves_its_model_once_with_the_pick_asked(command, tmp_path, monkeypatch, capsys):
    if command == "serve":
        pytest.importorskip("starlette")
        pytest.importorskip("uvicorn")
    calls = []

    def resolve(value, pick="latest", *rest, **options):
        calls.append((value, pick))
        raise CheckpointError(f"resolved {value} ({pick})")

    monkeypatch.setattr(resolve_module, "resolve", resolve)
    argv = [str(tmp_path / word) if word in ("MODEL", "DATA") else word.replace("OUT", str(tmp_path / "out"))
            for word in COMMANDS[command]]
    assert main(argv) == 2
    assert calls == [(str(tmp_path / "MODEL"), "best")]
    assert capsys.readouterr().err.endswith(f"error: resolved {tmp_path / 'MODEL'} (best)\n")
