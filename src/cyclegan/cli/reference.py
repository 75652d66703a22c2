"""The reference code's option spellings (junyanz/pytorch-CycleGAN-and-pix2pix), so its users feel at home.

`cyclegan train` answers to every reference training option: each hyphenated option also in
snake_case (`--lambda_A`, `--gan_mode`, `--no_flip`), the options the reference names differently
as aliases of ours (`TRAIN_ALIASES`), `--model cycle_gan` and `--lr_policy lambda` as their values
here (`VALUE_ALIASES`), and `--gpu_ids` as `--device`. `cyclegan translate` does the same for the
reference's test script (`--results_dir` is `--out`).

A reference option with no counterpart here gets a one-line note saying what to use instead
(`TRAIN_NOTES`, `TRANSLATE_NOTES`). Options that only steer the reference's display, logging or
checkpoint frequency change no result: they are ignored, with the note. The others stop the
command with the note, because ignoring them would change the experiment; where a value asks for
what this project does anyway (`--epoch_count 1`, `--phase train`) it is accepted silently.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from cyclegan.errors import ConfigError

# Our config field (section, name) -> the reference's other names for it. Snake_case spellings of
# our own flags are added for every field and are not listed here.
TRAIN_ALIASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("data", "data"): ("--dataroot",),
    ("data", "num_workers"): ("--num_threads",),
    ("optim", "epochs"): ("--n_epochs", "--niter"),  # --niter, --niter_decay: before 2020
    ("optim", "epochs_decay"): ("--n_epochs_decay", "--niter_decay"),
    # The reference steps this schedule once per epoch despite the name.
    ("optim", "lr_decay_epochs"): ("--lr_decay_iters",),
    ("run", "runs_dir"): ("--checkpoints_dir",),
    ("run", "tracker_project"): ("--wandb_project_name",),
}

# The reference's names of values: (section, field) -> {its value: ours}.
VALUE_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("model", "model"): {"cycle_gan": "cyclegan"},
    ("optim", "lr_policy"): {"lambda": "linear"},
}

TRANSLATE_ALIASES = {"out": ("--results_dir",)}

# The key under which notes for ignored options collect in the parsed arguments.
NOTES = "reference_notes"


def snake_case(flag: str) -> str | None:
    """`--lambda-A` -> `--lambda_A`; None for a flag without a hyphen inside."""
    spelled = "--" + flag[2:].replace("-", "_")
    return spelled if spelled != flag else None


def value_type(section: str, name: str, base: type):
    """`base`, converting the reference's names of values to ours first."""
    aliases = VALUE_ALIASES.get((section, name))
    if not aliases:
        return base

    def convert(text: str):
        return base(aliases.get(text, text))

    convert.__name__ = base.__name__  # argparse names the type in its "invalid value" errors
    return convert


@dataclass(frozen=True)
class Note:
    """What a reference option that this command does not have gets."""

    flags: tuple[str, ...]
    advice: str  # what to do instead, or why nothing needs doing
    refuse: bool = False  # stop, because ignoring it would change the experiment
    takes_value: bool = True
    same_as_ours: tuple[str, ...] = ()  # values asking for what this command does anyway
    keep_as: str | None = None  # where an accepted value is kept for a check after parsing

    def message(self, flag: str) -> str:
        return f"{flag} is {'not supported' if self.refuse else 'ignored'}: {self.advice}"


RESUME = "continue a run with --resume runs/NAME, which restores its epoch, optimisers and image pools"
DISPLAY = "it only steers the reference's display; the run folder has losses.png, accuracy.png and gallery/"

TRAIN_NOTES = [
    Note(("--display_freq", "--display_ncols", "--display_id", "--display_server", "--display_env",
          "--display_port", "--display_winsize", "--update_html_freq"), DISPLAY),
    Note(("--no_html",), DISPLAY, takes_value=False),
    Note(("--print_freq",), "it only sets how often the reference prints losses; --log-every sets how "
         "often they go to log.jsonl"),
    Note(("--verbose",), "it only prints more", takes_value=False),
    Note(("--save_latest_freq", "--save_epoch_freq"), "checkpoints are written at every epoch end, and every "
         "N iterations with --save-every N"),
    Note(("--save_by_iter",), "checkpoints are named by iteration anyway", takes_value=False),
    Note(("--epoch", "--load_iter"), "it is only read with --continue_train; " + RESUME),
    Note(("--continue_train",), RESUME, refuse=True, takes_value=False),
    Note(("--epoch_count",), RESUME, refuse=True, same_as_ours=("1",)),
    Note(("--phase",), "training reads DATA/trainA and DATA/trainB; for other folders give --domain-a and "
         "--domain-b", refuse=True, same_as_ours=("train",)),
    # Which of the two values fits depends on --model, possibly from --config: check_dataset_mode.
    Note(("--dataset_mode",), "the layout follows --model: cyclegan reads unpaired trainA/ and trainB/ (the "
         "reference's unaligned), pix2pix aligned A|B pairs (aligned)", refuse=True,
         same_as_ours=("unaligned", "aligned"), keep_as="reference_dataset_mode"),
    Note(("--max_dataset_size",), "train on a folder holding only the images to use (cyclegan data prepare "
         "unpaired makes one)", refuse=True, same_as_ours=("inf",)),
    Note(("--suffix",), "write the whole run name in --name", refuse=True, same_as_ours=("",)),
]

MODEL_FILE = ("give the model as the first argument: a run folder (runs/NAME), a checkpoint .safetensors or "
              "the reference's *_net_G.pth")
ARCHITECTURE = "the architecture is read from the model file"
OWN_SIZE = "translate keeps each image's own size (--preprocess none); resize the images first for another size"
INPUTS = "translate reads the files and folders given as arguments"

TRANSLATE_NOTES = [
    Note(("--dataroot",), "give the images or folders to translate as arguments: cyclegan translate MODEL "
         "FOLDER --out DIR", refuse=True),
    Note(("--name", "--checkpoints_dir", "--model_suffix"), MODEL_FILE, refuse=True),
    Note(("--epoch",), MODEL_FILE, refuse=True, same_as_ours=("latest",)),
    Note(("--load_iter",), MODEL_FILE, refuse=True, same_as_ours=("0",)),
    Note(("--suffix",), MODEL_FILE, refuse=True, same_as_ours=("",)),
    Note(("--use_wandb",), "it only turns on the reference's Weights & Biases logging", takes_value=False),
    Note(("--wandb_project_name",), "it only names the reference's Weights & Biases project"),
    Note(("--display_winsize",), "it only sizes the reference's HTML page"),
    Note(("--verbose",), "it only prints more", takes_value=False),
    Note(("--model", "--input_nc", "--output_nc", "--ngf", "--ndf", "--netG", "--netD", "--n_layers_D", "--norm",
          "--init_type", "--init_gain"), ARCHITECTURE),
    Note(("--no_dropout",), ARCHITECTURE + ", and dropout is off when translating", takes_value=False),
    Note(("--dataset_mode", "--phase"), INPUTS),
    Note(("--max_dataset_size", "--num_test"), INPUTS + ", every one of them; pass only those to translate"),
    Note(("--num_threads",), "translate decodes and encodes in threads of its own; the results are the same"),
    Note(("--serial_batches",), "translate visits the files in order", takes_value=False),
    Note(("--no_flip",), "translate never flips images", takes_value=False),
    Note(("--eval",), "translate keeps dropout off, as --eval does, and normalises batch-norm layers by each "
                      "image's own statistics, as the reference does without --eval", takes_value=False),
    Note(("--load_size", "--crop_size"), OWN_SIZE, refuse=True),
    Note(("--preprocess",), OWN_SIZE, refuse=True, same_as_ours=("none",)),
    Note(("--aspect_ratio",), OWN_SIZE, refuse=True, same_as_ours=("1", "1.0")),
]


def _same_value(value: str, accepted: tuple[str, ...]) -> bool:
    if value in accepted:
        return True
    try:
        return any(float(value) == float(candidate) for candidate in accepted)
    except ValueError:
        return False


class NoteAction(argparse.Action):
    """Handles one reference option from a Note: a note to print, or a refusal."""

    def __init__(self, option_strings, dest, note: Note, **kwargs):
        super().__init__(option_strings, dest, nargs=None if note.takes_value else 0, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS, **kwargs)
        self.note = note

    def __call__(self, parser, namespace, values, option_string=None):
        if self.note.takes_value and _same_value(values, self.note.same_as_ours):
            if self.note.keep_as:
                setattr(namespace, self.note.keep_as, values)
            return
        if self.note.refuse:
            raise argparse.ArgumentError(None, self.note.message(option_string))
        setattr(namespace, NOTES, [*getattr(namespace, NOTES, []), self.note.message(option_string)])


class GpuIdsAction(argparse.Action):
    """--gpu_ids as the reference reads it: -1 (any negative id) is the CPU, N is cuda:N. Several
    ids, the reference's DataParallel, are one process per GPU here: `several` says how."""

    def __init__(self, option_strings, dest, several: str, **kwargs):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
        self.several = several

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            ids = [int(text) for text in values.split(",") if text.strip()]
        except ValueError:
            raise argparse.ArgumentError(self, f"expected comma-separated GPU numbers or -1, got {values!r}")
        ids = [number for number in ids if number >= 0]
        if len(ids) > 1:
            raise argparse.ArgumentError(self, self.several.format(count=len(ids), ids=",".join(map(str, ids))))
        setattr(namespace, self.dest, f"cuda:{ids[0]}" if ids else "cpu")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """The reference's training options that are not spellings of ours (see the module docstring)."""
    parser.add_argument("--gpu_ids", dest="run.device", action=GpuIdsAction,
                        several="several GPUs train with one process each here: CUDA_VISIBLE_DEVICES={ids} "
                                "torchrun --nproc-per-node {count} -m cyclegan train ...")
    parser.add_argument("--use_wandb", dest="run.log_to", action="store_const", const="wandb",
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the reference's --log-to wandb
    _add_notes(parser, TRAIN_NOTES)


def add_translate_options(parser: argparse.ArgumentParser) -> None:
    """The reference test script's options that translate does not have (see the module docstring)."""
    parser.add_argument("--gpu_ids", dest="device", action=GpuIdsAction,
                        several="translate runs on one device: give one GPU number, or --device cuda:N")
    _add_notes(parser, TRANSLATE_NOTES)


def _add_notes(parser: argparse.ArgumentParser, notes: list[Note]) -> None:
    for note in notes:
        for flag in note.flags:
            parser.add_argument(flag, dest=f"reference {flag}", action=NoteAction, note=note)


def check_dataset_mode(args: argparse.Namespace, model: str) -> None:
    """--dataset_mode unaligned asks for an unpaired model (cyclegan, cut, fastcut), aligned for a
    pix2pix (any other value was refused while parsing)."""
    mode = getattr(args, "reference_dataset_mode", None)
    if mode is not None and mode != ("aligned" if model == "pix2pix" else "unaligned"):
        note = next(note for note in TRAIN_NOTES if note.flags == ("--dataset_mode",))
        raise ConfigError(f"--dataset_mode {mode} does not fit --model {model}: {note.advice}")
