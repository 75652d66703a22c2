"""`cyclegan data ...` run in-process through cyclegan.cli.main."""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

from PIL import Image

from cyclegan.cli import build_parser, main
from cyclegan.data.official import OFFICIAL_DATASETS
from http_server import serve_files


def png_bytes(size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_pngs(folder: Path, count: int, size=(8, 8)) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i}.png").write_bytes(png_bytes(size))
    return folder


def test_data_list_lists_every_name(capsys):
    assert main(["data", "list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("  ")}
    assert listed == set(OFFICIAL_DATASETS)


def test_download_of_an_unknown_name_exits_2_with_a_one_line_error(capsys):
    assert main(["data", "download", "nosuch"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cyclegan data: error: unknown dataset 'nosuch'. Known datasets: ")
    assert all(name in lines[0] for name in OFFICIAL_DATASETS)
    assert captured.out == ""


def test_download_uses_the_mirror_from_the_environment_and_prints_the_next_command(
        tmp_path, capsys, monkeypatch):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("trainA", "trainB"):
            zf.writestr(f"mini/{split}/0.png", png_bytes())
    with serve_files({"cyclegan/datasets/mini.zip": archive.getvalue()}) as server:
        monkeypatch.setenv("CYCLEGAN_DATASETS_URL", server.url)
        code = main(["data", "download", "mini", "--root", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"mini is ready in {tmp_path / 'mini'}" in out
    assert f"cyclegan train --data {tmp_path / 'mini'} --name mini" in out


def test_download_of_cityscapes_exits_2_with_the_preparation_steps(capsys, tmp_path):
    assert main(["data", "download", "cityscapes", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cyclegan data prepare cityscapes --gtfine" in err
    assert "https://www.cityscapes-dataset.com" in err


def test_prepare_unpaired_prints_counts_and_the_next_command(tmp_path, capsys):
    a = write_pngs(tmp_path / "a", 10)
    b = write_pngs(tmp_path / "b", 5)
    out = tmp_path / "mine"
    assert main(["data", "prepare", "unpaired", str(a), str(b), str(out),
                 "--test-fraction", "0.2"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: testA 2, trainA 8, testB 1, trainB 4" in printed
    assert f"cyclegan train --data {out} --name mine" in printed


def test_prepare_split_of_an_odd_width_exits_2_naming_the_file(tmp_path, capsys):
    folder = write_pngs(tmp_path / "pairs", 1, size=(9, 4))
    assert main(["data", "prepare", "split", str(folder), str(tmp_path / "out")]) == 2
    assert f"{folder / '0.png'}: width 9 is odd" in capsys.readouterr().err


def test_prepare_combine_then_split_through_the_cli(tmp_path, capsys):
    write_pngs(tmp_path / "A", 2)
    write_pngs(tmp_path / "B", 2)
    assert main(["data", "prepare", "combine", str(tmp_path / "A"), str(tmp_path / "B"),
                 str(tmp_path / "AB")]) == 0
    assert main(["data", "prepare", "split", str(tmp_path / "AB"), str(tmp_path / "halves")]) == 0
    assert sorted(p.name for p in (tmp_path / "halves" / "B").iterdir()) == ["0.png", "1.png"]


def test_synth_writes_a_dataset_and_prints_the_next_command(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", str(out), "--size", "32", "--train", "2", "--test", "1"]) == 0
    assert len(list((out / "trainA").iterdir())) == 2
    assert f"cyclegan train --data {out} --name synth" in capsys.readouterr().out


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _all_parsers(child)


def test_every_data_option_has_help_text():
    data = next(p for p in _all_parsers(build_parser()) if p.prog == "cyclegan data")
    for parser in _all_parsers(data):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{parser.prog} {action.dest} has no help text"
