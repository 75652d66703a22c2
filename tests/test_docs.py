"""The user documentation agrees with the code: every `cyclegan ...` command line the docs show names
real subcommands and flags that subcommand accepts, every other flag they mention exists somewhere
(a subcommand, a benchmark script, torchrun), USAGE.md's option tables name train's flags with the
code's defaults, every relative link leads to a file and heading that exist (GitHub's anchor
rules), and the lists of extras, experiment suites and benchmark scripts are complete."""
from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyclegan.cli import build_parser
from cyclegan.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/USAGE.md", "docs/DEVELOPMENT.md", "benchmarks/README.md",
        "docs/PERFORMANCE.md", "docs/RESULTS.md"]
# Flags the docs mention for other programs: torchrun's (docs/USAGE.md's multi-GPU lines).
OTHER_PROGRAMS_FLAGS = {"--nproc_per_node", "--nnodes", "--node_rank", "--rdzv-backend", "--rdzv-endpoint"}
# A preset RESULTS.md says was not added (issue #13), named as such.
NAMED_AS_ABSENT = {"--recipe"}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}
FLAG = re.compile(r"--(?:\[no-\])?[A-Za-z][\w-]*")


# ---- reading markdown ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Code:
    line: int       # 1-based line of the doc where the code starts
    text: str
    fenced: bool


def code_of(markdown: str) -> list[Code]:
    """Every fenced code line (continuation backslashes joined) and every inline code span (which
    may wrap over lines), in order."""
    found: list[Code] = []
    in_fence = False
    pending, pending_line = "", 0
    prose: list[tuple[int, str]] = []
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            if not pending:
                pending_line = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            found.append(Code(pending_line, pending + line, fenced=True))
            pending = ""
        else:
            prose.append((number, line))
    # Inline spans: a paragraph's lines joined, so that a span broken over two lines is whole.
    offsets, text = [], ""
    for number, line in prose:
        offsets.append((len(text), number))
        text += line + "\n"
    for match in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", text, flags=re.S):
        if "\n\n" in match.group(2):
            continue
        line = max(number for offset, number in offsets if offset <= match.start())
        found.append(Code(line, match.group(2).replace("\n", " ").strip(), fenced=False))
    return found


def words_of(code: str) -> list[str]:
    # A table cell escapes `|` as `\|`; shell comments end the command.
    code = code.replace("\\|", "|")
    try:
        return shlex.split(code, comments=True)
    except ValueError:  # an unbalanced quote in prose-like code
        return code.split("#", 1)[0].split()


# ---- the commands the docs show -------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    line: int
    path: tuple[str, ...]         # ("data", "prepare", "unpaired")
    flags: tuple[str, ...]
    passthrough: tuple[str, ...]  # the flags after a bare `--`: training's (experiment, study)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def flags_in(words: list[str]) -> tuple[str, ...]:
    return tuple(flag for word in words if word.startswith("--") and word != "--"
                 for flag in expanded(word.split("=", 1)[0]))


def commands_of(markdown: str, parser: argparse.ArgumentParser) -> list[Command]:
    """Every `cyclegan ...` (or `python -m cyclegan ...`, `torchrun ... -m cyclegan ...`) in the code
    of `markdown`, with the subcommand path it names; a word that names no subcommand where one is
    needed is kept in the path, for the test to refuse."""
    commands = []
    for code in code_of(markdown):
        words = words_of(code.text)
        for start, word in enumerate(words):
            if word != "cyclegan" or not (start == 0 or words[start - 1] == "-m"):
                continue
            rest = words[start + 1:]
            end = next((i for i, w in enumerate(rest) if w in SHELL_OPERATORS), len(rest))
            rest = rest[:end]
            path: list[str] = []
            current = parser
            while rest and subcommands(current) and not rest[0].startswith("-"):
                name = rest.pop(0)
                path.append(name)
                if name not in subcommands(current):
                    break
                current = subcommands(current)[name]
            if not path:
                continue  # the project's name, not a command
            split = rest.index("--") if "--" in rest else len(rest)
            commands.append(Command(code.line, tuple(path), flags_in(rest[:split]), flags_in(rest[split + 1:])))
    return commands


def parser_at(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser | None:
    for name in path:
        parser = subcommands(parser).get(name)
        if parser is None:
            return None
    return parser


def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for child in subcommands(parser).values():
        yield from all_parsers(child)


def problems_of_commands(doc: str, markdown: str, parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    train = parser_at(parser, ("train",))
    for command in commands_of(markdown, parser):
        where = f"{doc}:{command.line}: cyclegan {' '.join(command.path)}"
        target = parser_at(parser, command.path)
        if target is None:
            problems.append(f"{where}: no such command")
            continue
        if subcommands(target):
            problems.append(f"{where}: needs one of {', '.join(subcommands(target))}")
        problems += [f"{where}: no option {flag}" for flag in command.flags
                     if flag not in target._option_string_actions]
        problems += [f"{where} -- {flag}: training has no option {flag}" for flag in command.passthrough
                     if flag not in train._option_string_actions]
    return problems


# ---- flags mentioned outside a command -----------------------------------------------------------

def benchmark_flags() -> dict[str, set[str]]:
    """Each benchmark script's flags: the "--..." strings of its source and of the helpers in its
    folder it imports (speed/common.py)."""
    flags = {}
    for script in (ROOT / "benchmarks").rglob("*.py"):
        sources = [script.read_text()]
        common = script.parent / "common.py"
        if common.exists() and re.search(r"^\s*(from common |import common)", sources[0], re.M):
            sources.append(common.read_text())
        found = {"--help"}
        for text in sources:
            found.update(re.findall(r"""["'](--[\w-]+)""", text))
            found.update("--no-" + flag[2:] for flag in
                         re.findall(r"""add_argument\(\s*["'](--[\w-]+)["'][^)]*BooleanOptionalAction""", text))
        flags[script.relative_to(ROOT).as_posix()] = found
    return flags


def expanded(flag: str) -> list[str]:
    """`--[no-]compile` is `--compile` and `--no-compile`."""
    return [flag.replace("[no-]", ""), flag.replace("[no-]", "no-")] if "[no-]" in flag else [flag]


def problems_of_bare_flags(doc: str, markdown: str, parser: argparse.ArgumentParser) -> list[str]:
    """Flags named in inline code that is no `cyclegan` command: each must be some subcommand's, or,
    in a `python benchmarks/X.py ...` span, that script's, or anywhere else some benchmark script's
    or another program's the docs run."""
    cyclegan_flags = {flag for each in all_parsers(parser) for flag in each._option_string_actions}
    scripts = benchmark_flags()
    any_script = set().union(*scripts.values())
    problems = []
    for code in code_of(markdown):
        words = words_of(code.text)
        if "cyclegan" in words and commands_of(f"`{code.text}`", parser):
            continue
        script = next((w for w in words if w.startswith("benchmarks/") and w.endswith(".py")), None)
        if script is not None:
            # The stand-ins at benchmarks/*.py run the script of the same name in speed/ or studies/.
            known = scripts.get(script, set()) | next(
                (flags for path, flags in scripts.items() if script.count("/") == 1
                 and path.endswith("/" + script.split("/")[-1]) and path != script), set())
            split = words.index("--") if "--" in words else len(words)
            names = [f for w in words[:split] if w.startswith("--") for f in expanded(w.split("=", 1)[0])]
            problems += [f"{doc}:{code.line}: {script} has no option {flag}" for flag in names if flag not in known]
            problems += [f"{doc}:{code.line}: {script} -- {flag}: training has no option {flag}"
                         for flag in flags_in(words[split + 1:])
                         if flag not in parser_at(parser, ("train",))._option_string_actions]
            continue
        if not code.fenced:
            for match in FLAG.findall(code.text):
                for flag in expanded(match):
                    if flag not in cyclegan_flags | any_script | OTHER_PROGRAMS_FLAGS | NAMED_AS_ABSENT:
                        problems.append(f"{doc}:{code.line}: {flag} is no option of any command or script")
    return problems


# ---- links and anchors ---------------------------------------------------------------------------

def without_code(markdown: str) -> str:
    kept, in_fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            kept.append("")
            continue
        kept.append("" if in_fence else re.sub(r"`[^`\n]*`", "", line))
    return "\n".join(kept)


def anchor_of(heading: str) -> str:
    """GitHub's anchor for a heading: its text (markdown marks, links' targets left out), lowercase,
    every character but letters, digits, `_`, `-` and spaces dropped, spaces turned into `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return "".join("-" if char == " " else char for char in text if char.isalnum() or char in "_- ")


def anchors_of(markdown: str) -> set[str]:
    anchors, seen = set(), {}
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            anchor = anchor_of(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def problems_of_links(doc: str, markdown: str, root: Path = ROOT) -> list[str]:
    problems = []
    here = (root / doc).parent
    for number, line in enumerate(without_code(markdown).splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (here / path).resolve() if path else root / doc
            if not file.exists():
                problems.append(f"{doc}:{number}: link {target}: no file {path}")
            elif anchor and file.suffix == ".md" and anchor not in anchors_of(file.read_text()):
                problems.append(f"{doc}:{number}: link {target}: {file.relative_to(root)} has no heading #{anchor}")
    return problems


# ---- the option table's defaults -----------------------------------------------------------------

def option_table_defaults(markdown: str) -> list[tuple[int, str, str]]:
    """(line, flag, documented default) for the rows of USAGE.md's "Options that matter" table that
    give one default per flag."""
    rows = []
    in_table = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.startswith("| option | reference | default |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if not in_table or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        flags = re.findall(r"`(--[\w-]+)`", cells[0])
        defaults = [value.strip() for value in cells[2].split(",")]
        if len(flags) == len(defaults):
            # Defaults in words ("= lr", "each epoch end") are read by a person; literals here.
            rows += [(number, flag, default.strip("`")) for flag, default in zip(flags, defaults)
                     if re.fullmatch(r"`[^`]+`|-?[\d.]+(e-?\d+)?|off|on|none", default)]
    return rows


def code_default(flag: str, train: argparse.ArgumentParser):
    """What the run gets when `flag` is not given: the config's default after the model's own."""
    dest = train._option_string_actions[flag].dest
    if "." not in dest:
        return train._option_string_actions[flag].default
    section, name = dest.split(".", 1)
    return getattr(getattr(TrainConfig(), section), name)


def same_default(documented: str, actual) -> bool:
    words = {"off": False, "on": True, "none": None, "–": None}
    if documented in words:
        return actual in (words[documented], None, "") if documented != "on" else actual is True
    if isinstance(actual, bool):
        return False
    if isinstance(actual, (int, float)):
        try:
            return float(documented) == float(actual)
        except ValueError:
            return False
    return documented == str(actual)


# ---- the tests -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.mark.parametrize("doc", DOCS)
def test_every_cyclegan_command_in_the_docs_names_a_real_subcommand_and_its_real_flags(doc, parser):
    assert problems_of_commands(doc, (ROOT / doc).read_text(), parser) == []


@pytest.mark.parametrize("doc", DOCS)
def test_every_flag_the_docs_mention_outside_a_command_exists(doc, parser):
    assert problems_of_bare_flags(doc, (ROOT / doc).read_text(), parser) == []


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_of_the_docs_leads_to_a_file_and_heading_that_exist(doc):
    assert problems_of_links(doc, (ROOT / doc).read_text()) == []


def test_the_option_tables_defaults_are_the_codes(parser):
    train = parser_at(parser, ("train",))
    rows = option_table_defaults((ROOT / "docs/USAGE.md").read_text())
    assert len(rows) > 30  # the table was found and read
    wrong = [f"docs/USAGE.md:{line}: {flag} documented {documented!r}, code {code_default(flag, train)!r}"
             for line, flag, documented in rows
             if flag in train._option_string_actions  # an unknown one is the test above's to report
             and not same_default(documented, code_default(flag, train))]
    assert wrong == []


def test_every_flag_of_usages_option_tables_is_one_cyclegan_train_accepts(parser):
    """The tables headed `| option |` (the options that matter, CUT's) list training's options and
    the reference's spellings of them; checked against train itself, not any command's."""
    text = (ROOT / "docs/USAGE.md").read_text()
    table_flags, in_table = [], False  # (line, subcommand, flag)
    for number, line in enumerate(text.splitlines(), 1):
        in_table = line.startswith("| option |") or (in_table and line.startswith("|"))
        if not in_table:
            continue
        # "`cyclegan tune` (the model flags, `--size`, ...)": another command's flags, in parentheses.
        for command, inside in re.findall(r"`cyclegan (\w+)` \(([^)]*)\)", line):
            table_flags += [(number, command, flag) for flag in FLAG.findall(inside)]
        line = re.sub(r"`cyclegan (\w+)` \(([^)]*)\)|`cyclegan [^`]*`", "", line)
        table_flags += [(number, "train", flag) for flag in FLAG.findall(line)]
    assert len(table_flags) > 60  # both tables were found and read
    assert [f"docs/USAGE.md:{number}: {command} {flag}" for number, command, flag in table_flags
            if flag not in parser_at(parser, (command,))._option_string_actions] == []


def test_every_benchmark_script_has_a_row_in_the_benchmarks_table_and_every_row_a_script():
    text = (ROOT / "benchmarks/README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+\.(?:py|sh))` \|", text, flags=re.M))
    files = [path for path in (ROOT / "benchmarks").rglob("*") if path.suffix in (".py", ".sh")]
    # The stand-ins at benchmarks/*.py only run the moved script of the same name.
    scripts = {path.relative_to(ROOT / "benchmarks").as_posix() for path in files
               if "runpy.run_path" not in path.read_text()}
    assert len(rows) > 20  # the table was found and read
    assert sorted(scripts - rows) == []
    assert sorted(rows - scripts) == []


def test_the_extras_the_docs_list_are_the_packages_extras():
    # Read without tomllib, which Python 3.10 lacks.
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^(\w+) = \[", section, flags=re.M))
    assert len(extras) > 5
    readme_table = set(re.findall(r"^\| `(\w+)` \|", (ROOT / "README.md").read_text(), flags=re.M)) | {
        name for row in re.findall(r"^\| (`\w+`(?:, `\w+`)+) \|", (ROOT / "README.md").read_text(), flags=re.M)
        for name in re.findall(r"`(\w+)`", row)}
    makefile = set(re.search(r"^EXTRAS \?= (.*)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1).split(","))
    usage = set(re.search(r"installs every extra\s+\(`([\w,]+)`\)", (ROOT / "docs/USAGE.md").read_text())
                .group(1).split(","))
    assert readme_table & extras == extras
    assert makefile == extras
    assert usage == extras


def test_usage_names_every_experiment_suite():
    from cyclegan.studies.suites import SUITES

    listed = re.search(r"`cyclegan experiment SUITE` \(([^)]*)\)", (ROOT / "docs/USAGE.md").read_text()).group(1)
    assert sorted(name.strip() for name in listed.replace("\n", " ").split(",")) == sorted(SUITES)


# The checks above would pass on any text they failed to read; these show they read what they must.

def test_a_flag_no_subcommand_has_is_named_with_its_line(parser):
    text = "Intro.\n\n```bash\ncyclegan train --data d \\\n    --name x --no-such-flag 3   # comment --ignored\n```\n"
    assert problems_of_commands("X.md", text, parser) == ["X.md:4: cyclegan train: no option --no-such-flag"]


def test_a_flag_of_another_subcommand_is_refused_in_inline_code_that_wraps_a_line(parser):
    text = "Run `cyclegan translate run photos/\n--out o --max-iters 5` and `cyclegan data check d --crop-size 9`.\n"
    assert problems_of_commands("X.md", text, parser) == ["X.md:1: cyclegan translate: no option --max-iters"]


def test_a_subcommand_that_does_not_exist_or_is_incomplete_is_refused(parser):
    text = "`cyclegan trian --data d`, `cyclegan data prepare`, `cyclegan models lst`\n"
    assert problems_of_commands("X.md", text, parser) == [
        "X.md:1: cyclegan trian: no such command",
        "X.md:1: cyclegan data prepare: needs one of unpaired, split, combine, cityscapes",
        "X.md:1: cyclegan models lst: no such command"]


def test_flags_after_a_bare_double_dash_are_checked_as_trainings(parser):
    text = "```bash\ncyclegan experiment ablation --data d --out o -- --netG resnet_6blocks --lamda-A 3\n```\n"
    assert problems_of_commands("X.md", text, parser) == [
        "X.md:2: cyclegan experiment -- --lamda-A: training has no option --lamda-A"]


def test_the_real_usage_text_with_one_fake_flag_added_fails_on_that_flag_only(parser):
    text = (ROOT / "docs/USAGE.md").read_text()
    faked = text.replace("cyclegan serve runs/horse2zebra --host 0.0.0.0",
                         "cyclegan serve runs/horse2zebra --hots 0.0.0.0", 1)
    assert faked != text
    line = faked.splitlines().index(next(l for l in faked.splitlines() if "--hots" in l)) + 1
    assert problems_of_commands("docs/USAGE.md", faked, parser) == [
        f"docs/USAGE.md:{line}: cyclegan serve: no option --hots"]


def test_a_bare_flag_that_exists_nowhere_is_named(parser):
    text = "Use `--keep-last K` and `--[no-]compile`, not `--keep-lats`.\n"
    assert problems_of_bare_flags("X.md", text, parser) == ["X.md:1: --keep-lats is no option of any command or script"]


def test_a_benchmark_command_is_checked_against_that_scripts_flags(parser):
    text = "`python benchmarks/figures/make_grid.py --inputs D --out g.png --sizes 3`\n"
    assert problems_of_bare_flags("X.md", text, parser) == ["X.md:1: benchmarks/figures/make_grid.py has no option --sizes"]


@pytest.mark.parametrize("heading, anchor", [
    ("Several GPUs or machines (torchrun)", "several-gpus-or-machines-torchrun"),
    ("CUT and FastCUT (`--model cut|fastcut`)", "cut-and-fastcut---model-cutfastcut"),
    ("(f) CUT and FastCUT against CycleGAN (issue #23)", "f-cut-and-fastcut-against-cyclegan-issue-23"),
    ("Memory of one translation per pixel (`cyclegan.inference.memory`)",
     "memory-of-one-translation-per-pixel-cycleganinferencememory"),
])
def test_anchors_follow_githubs_rules(heading, anchor):
    assert anchor_of(heading) == anchor


def test_a_link_to_a_missing_file_or_heading_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "B.md").write_text("# Title\n\n## Translating videos\n\n```\n# not a heading\n```\n")
    text = ("See [a](docs/B.md#translating-videos), [b](docs/B.md#not-a-heading), [c](docs/C.md),\n"
            "[d](#here), [e](https://example.com/x#y) and `[f](docs/C.md)`.\n\n## Here\n")
    (tmp_path / "A.md").write_text(text)
    assert problems_of_links("A.md", text, root=tmp_path) == [
        "A.md:1: link docs/B.md#not-a-heading: docs/B.md has no heading #not-a-heading",
        "A.md:1: link docs/C.md: no file docs/C.md"]


def test_a_wrong_default_in_the_option_table_is_found(parser):
    train = parser_at(parser, ("train",))
    rows = option_table_defaults("| option | reference | default | meaning |\n|---|---|---|---|\n"
                                 "| `--ngf`, `--ndf` | | 64, 32 | widths |\n| `--lr`, `--lr-D` | | 2e-4, = lr | Adam |\n")
    assert rows == [(3, "--ngf", "64"), (3, "--ndf", "32"), (4, "--lr", "2e-4")]
    assert [flag for _, flag, documented in rows if not same_default(documented, code_default(flag, train))] == ["--ndf"]
