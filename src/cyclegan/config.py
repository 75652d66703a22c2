"""Every option of the project, in one place.

The dataclasses below are the single source of truth: the command-line flags, JSON config files
and the config saved in every checkpoint are all derived from them. Defaults reproduce the paper
(Zhu et al. 2017, section 4 and appendix 7) without any flag.

A field's metadata carries its help text and, where the reference implementation has a flag of
its own, that flag's spelling (``--netG``, ``--lambda-A``) so its users feel at home.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegan.directions import DIRECTIONS, Direction  # DIRECTIONS: also re-exported, the choices of --direction
from cyclegan.errors import ConfigError


# Every choice an option offers, named once; the networks, losses, transforms, schedules and every
# command's flags take their choices from here.
MODELS = ("cyclegan", "pix2pix", "cut", "fastcut")
# The models that learn one direction (--direction) with one generator and no cycle.
ONE_DIRECTION_MODELS = ("cut", "fastcut")
GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
DISCRIMINATORS = ("basic", "n_layers", "pixel")
NORMS = ("instance", "batch", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
PADDING_TYPES = ("reflect", "replicate", "zero")
UPSAMPLINGS = ("transposed", "resize_conv", "antialias")
# The augmentations a --diff-augment policy names, comma-separated (cyclegan.augment).
DIFF_AUGMENTATIONS = ("color", "translation", "cutout")
GAN_MODES = ("lsgan", "vanilla", "wgangp", "hinge")
CYCLES = ("both", "forward", "backward", "none")
LR_POLICIES = ("linear", "step", "cosine", "plateau")
# The factor of the step and plateau policies when --lr-gamma is not given: the reference code's
# (its StepLR and ReduceLROnPlateau), so that a run asking for its policy gets its schedule.
LR_GAMMA_DEFAULTS = {"step": 0.1, "plateau": 0.2}
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "onnxruntime")
# The validation scores a run can pick its best checkpoint by, per model (all lower-is-better): a
# sum over the model's directions ("kid") or one direction's ("kid_AtoB"). pix2pix has AtoB only, and
# the L1 distance to the paired target instead of the cycle error.
MODEL_SCORES = {"cyclegan": ("kid", "fid", "cycle", "kid_AtoB", "kid_BtoA", "fid_AtoB", "fid_BtoA", "cycle_AtoB",
                             "cycle_BtoA"),
                "pix2pix": ("kid", "fid", "l1", "kid_AtoB", "fid_AtoB", "l1_AtoB")}
# CUT and FastCUT are scored in their one --direction (kid_AtoB, or kid_BtoA with --direction BtoA).
MODEL_SCORES.update(dict.fromkeys(ONE_DIRECTION_MODELS, ("kid", "fid", "kid_AtoB", "kid_BtoA", "fid_AtoB", "fid_BtoA")))
SCORES = tuple(dict.fromkeys(MODEL_SCORES["cyclegan"] + MODEL_SCORES["pix2pix"]))
# Which checkpoint of a run a command uses: the newest, or the one with the best validation score.
PICKS = ("latest", "best")
# Where a run's scalars, validation scores, warnings and gallery images go besides log.jsonl
# (cyclegan.training.trackers); "none" for nowhere else.
TRACKERS = ("tensorboard", "wandb", "mlflow")
# The most channels a domain's images may have: multispectral bands (RGB + NIR and more).
MAX_CHANNELS = 16


# Each model's own defaults for the options whose paper value differs between CycleGAN (Zhu et al.
# 2017), pix2pix (Isola et al. 2017) and CUT / FastCUT (Park et al. 2020, whose networks are
# anti-aliased and xavier-initialised). Those fields default to None, "the model's default", which
# the config resolves itself, so the command line, a --config file and Python give the same run.
_CUT_NETWORKS = {"net_g": "resnet_9blocks", "norm": "instance", "antialias": True, "upsample": "antialias",
                 "init_type": "xavier", "use_dropout": False}
_CYCLEGAN_NETWORKS = {"antialias": False, "upsample": "transposed", "init_type": "normal", "use_dropout": False}
MODEL_DEFAULTS = {
    "cyclegan": {"model": {"net_g": "resnet_9blocks", "norm": "instance", **_CYCLEGAN_NETWORKS},
                 "loss": {"gan_mode": "lsgan", "pool_size": 50, "lambda_identity": 0.5},
                 "optim": {"epochs": 100, "epochs_decay": 100}},
    "pix2pix": {"model": {**_CYCLEGAN_NETWORKS, "net_g": "unet_256", "norm": "batch", "use_dropout": True},
                "loss": {"gan_mode": "vanilla", "pool_size": 0, "lambda_identity": 0.0},
                "optim": {"epochs": 100, "epochs_decay": 100}},
    "cut": {"model": _CUT_NETWORKS,
            "loss": {"gan_mode": "lsgan", "pool_size": 0, "lambda_identity": 0.0, "lambda_nce": 1.0, "nce_idt": True,
                     "flip_equivariance": False},
            "optim": {"epochs": 200, "epochs_decay": 200}},
    "fastcut": {"model": _CUT_NETWORKS,
                "loss": {"gan_mode": "lsgan", "pool_size": 0, "lambda_identity": 0.0, "lambda_nce": 10.0,
                         "nce_idt": False, "flip_equivariance": True},
                "optim": {"epochs": 150, "epochs_decay": 50}},
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """The augmentations that a --diff-augment policy ("color,translation,cutout"; "" for none)
    names, in order. Raises ConfigError for a name that is not one of DIFF_AUGMENTATIONS."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in DIFF_AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown augmentation(s) in --diff-augment {policy!r}: {', '.join(unknown)}; "
                          f"use a comma-separated list of {', '.join(DIFF_AUGMENTATIONS)}")
    return names


def parse_trackers(log_to: str | None) -> tuple[str, ...] | None:
    """The trackers that a --log-to value ("wandb,mlflow"; "none" for none) names, in order; None when
    it is not given (the default applies). Raises ConfigError for a name that is not one of TRACKERS."""
    if log_to is None:
        return None
    names = tuple(dict.fromkeys(name.strip() for name in log_to.split(",") if name.strip()))
    if names in ((), ("none",)):
        return ()
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ConfigError(f"unknown tracker(s) in --log-to {log_to!r}: {', '.join(unknown)}; "
                          f"use a comma-separated list of {', '.join(TRACKERS)}, or none")
    return names


def parse_nce_layers(text: str) -> tuple[int, ...]:
    """The layer indices that --nce-layers "0,4,8,12,16" names. Raises ConfigError for anything
    that is not a comma-separated list of non-negative integers."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ConfigError(f"--nce-layers {text!r} is not a comma-separated list of layer indices; "
                          "give e.g. 0,4,8,12,16")
    return tuple(int(part) for part in parts)


def model_directions(model: "ModelConfig") -> tuple[Direction, ...]:
    """The directions a model of this config learns: both for CycleGAN, A to B for pix2pix, the
    --direction of CUT and FastCUT."""
    if model.model in ONE_DIRECTION_MODELS:
        return (Direction.parse(model.direction),)
    return (Direction.A_TO_B,) if model.model == "pix2pix" else tuple(Direction)


def option(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None,
           negative_flag: str | None = None, aliases: tuple[str, ...] = (), metavar: str | None = None,
           parse: Any = None, shown_default: str | None = None, group: str | None = None) -> Any:
    """A dataclass field that knows how it appears on the command line (`cyclegan.cli.options`
    makes the flags): `aliases` are further spellings of the flag, `parse` turns the typed text
    into the value (default: the field's type), `shown_default` is how the help shows the default
    (default: the value itself; "" shows none; a field defaulting to None says in its help what
    None means), and
    `group` names the help section the flag is listed in."""
    metadata = {"help": help, "flag": flag, "choices": choices, "negative_flag": negative_flag, "aliases": aliases,
                "metavar": metavar, "parse": parse, "shown_default": shown_default, "group": group}
    return field(default=default, metadata=metadata)


def flag_of(option_field: dataclasses.Field) -> str:
    """The command-line flag of an `option` field: its own spelling, else "--" + the name with dashes."""
    return option_field.metadata.get("flag") or "--" + option_field.name.replace("_", "-")


def negative_flag_of(option_field: dataclasses.Field) -> str:
    """The flag that turns a boolean `option` field off: its own spelling, else "--no-" + the name."""
    return option_field.metadata.get("negative_flag") or "--no-" + option_field.name.replace("_", "-")


def model_default_text(section: str, name: str) -> str | None:
    """How the help shows a default that depends on --model ("resnet_9blocks; pix2pix: unet_256")."""
    values = {model: defaults.get(section, {}).get(name) for model, defaults in MODEL_DEFAULTS.items()}
    first = next((model for model, value in values.items() if value is not None), None)
    if first is None:
        return None
    others = [f"{model}: {value}" for model, value in values.items()
              if model != first and value is not None and value != values[first]]
    shown = values[first] if first == "cyclegan" else f"{first}: {values[first]}"
    return "; ".join([str(shown), *others])


def _resolve_model_defaults(section_name: str, section, model: str) -> None:
    """Fill the fields left at None ("the model's default") with `model`'s value."""
    if model not in MODEL_DEFAULTS:
        raise ConfigError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    for name, value in MODEL_DEFAULTS[model].get(section_name, {}).items():
        if getattr(section, name) is None:
            setattr(section, name, value)


@dataclass
class ModelConfig:
    """Architecture: everything needed to rebuild the networks from saved weights."""

    model: str = option("cyclegan", "cyclegan (unpaired), pix2pix (paired data: the upper bound in the paper's tables), "
                        "or cut / fastcut (unpaired, one direction: one generator trained with PatchNCE instead of "
                        "a second generator and the cycle loss; Park et al. 2020). pix2pix, cut and fastcut change "
                        "the defaults of the options that show a per-model default to their paper's unless they "
                        "are given.",
                        choices=MODELS)
    direction: str = option("AtoB", "cut and fastcut: the direction the one generator learns (BtoA: from domain B "
                            "to domain A). CycleGAN learns both; for pix2pix swap the domains instead.",
                            choices=DIRECTIONS)
    net_g: str | None = option(None, "Generator architecture (ResNet-9 at 256 px, ResNet-6 at 128 px in the paper).",
                        flag="--netG", choices=GENERATORS)
    net_d: str = option("basic", "Discriminator: basic = 70x70 PatchGAN, n_layers = PatchGAN with --n-layers-D, pixel = 1x1.",
                        flag="--netD", choices=DISCRIMINATORS)
    n_layers_d: int = option(3, "Number of strided layers of the PatchGAN when --netD n_layers.", flag="--n-layers-D")
    ngf: int = option(64, "Filters in the generator's first and last convolution.")
    ndf: int = option(64, "Filters in the discriminator's first convolution.")
    norm: str | None = option(None, "Normalisation layer.", choices=NORMS)
    init_type: str | None = option(None, "Weight initialisation.", choices=INIT_TYPES)
    init_gain: float = option(0.02, "Scale (std or gain) of the weight initialisation.")
    use_dropout: bool | None = option(None, "Dropout (0.5) in the generator while training: in the U-Net's innermost "
                                      "decoder levels (three in unet_256), as the pix2pix paper's, or in every ResNet block. The "
                                      "paper's CycleGAN uses none. Translation runs without it.",
                                      flag="--dropout", negative_flag="--no-dropout")
    padding_type: str = option("reflect", "Padding in the ResNet generator.", choices=PADDING_TYPES)
    upsample: str | None = option(None, "Up-sampling in the ResNet generator: transposed (stride-2 transposed "
                           "convolution, the paper's), resize_conv (nearest-neighbour 2x, then a 3x3 convolution, "
                           "against checkerboard artifacts; Odena et al. 2016) or antialias (CUT's: zeros between the "
                           "pixels and a [1,3,3,1] blur, i.e. bilinear 2x, then a 3x3 convolution; Park et al. 2020).",
                           choices=UPSAMPLINGS)
    antialias: bool | None = option(None, "Anti-aliased down-sampling as in CUT (Zhang 2019): each stride-2 convolution of "
                             "the ResNet generator and the PatchGAN becomes a stride-1 one followed by a [1,2,1] blur "
                             "pool. CUT's networks are --antialias --upsample antialias.",
                             flag="--antialias", negative_flag="--no-antialias")
    spectral_norm: bool = option(False, "Spectral normalisation of every discriminator convolution (Miyato et al. "
                                 "2018). The discriminators then have no norm layers (--norm applies to the "
                                 "generators only): a data-dependent norm would undo the Lipschitz bound that "
                                 "spectral norm gives, and SN-GAN uses none; their convolutions get biases instead.",
                                 flag="--spectral-norm", negative_flag="--no-spectral-norm")
    nce_layers: str | None = option(None, "cut / fastcut: the layers of the ResNet generator's encoder that PatchNCE "
                                    "reads, as indices into its layer list, e.g. 0,4,8,12,16 (default: the paper's: "
                                    "the input, both down-samplings, the first and the middle residual block; those "
                                    "are 0,4,8,12,16 of the anti-aliased generator).")
    input_nc: int = option(3, f"Channels of domain A images (1 = grayscale, 3 = RGB; up to {MAX_CHANNELS} from "
                           "multi-page TIFF or .npy H x W x C).")
    output_nc: int = option(3, f"Channels of domain B images (1 = grayscale, 3 = RGB; up to {MAX_CHANNELS}).")
    # The windows travel with the weights: translation maps its inputs as training did, and back.
    window_a: str | None = option(None, "Intensity window of domain A: LOW,HIGH in the files' own units (CT: "
                                  "--window-a -1000,2000 Hounsfield units) maps [LOW, HIGH] onto the networks' "
                                  "[-1, 1], clipped; percentile:P,Q (MR: percentile:0.5,99.5) takes them from each "
                                  "file (a volume, or a 2-D image; add :image for each slice). Default: 8-bit images "
                                  "as always, 16-bit integers their full range; float images need one. Applies to "
                                  "16-bit, float, multi-channel and volume files; 8-bit images keep 0..255.")
    window_b: str | None = option(None, "Intensity window of domain B (see --window-a).")
    slice_axis: int | None = option(None, "Volumes (NIfTI, DICOM series) are cut into 2-D slices along this voxel "
                                    "axis, 0, 1 or 2 (default: each volume's acquisition axis, axial for most).")

    def __post_init__(self) -> None:
        _resolve_model_defaults("model", self, self.model)


@dataclass
class LossConfig:
    """The objective (paper section 3): adversarial + cycle + identity terms."""

    gan_mode: str | None = option(None, "Adversarial loss: lsgan (least squares, the paper's), vanilla (log-likelihood), "
                           "wgangp (Wasserstein with gradient penalty) or hinge.",
                           choices=GAN_MODES)
    lambda_a: float = option(10.0, "Weight of the A -> B -> A cycle loss.", flag="--lambda-A")
    lambda_b: float = option(10.0, "Weight of the B -> A -> B cycle loss.", flag="--lambda-B")
    lambda_identity: float | None = option(None, "Identity loss weight, as a fraction of the cycle weight (0 disables).")
    cycle: str = option("both", "Which cycle losses to use (for ablations): both, forward (A -> B -> A only), "
                        "backward (B -> A -> B only) or none.", choices=CYCLES)
    gan: bool = option(True, "Use the adversarial losses (--no-gan trains with the cycle loss alone, for ablations).",
                       flag="--gan", negative_flag="--no-gan")
    lambda_l1: float = option(100.0, "pix2pix only: weight of the L1 distance to the paired target.", flag="--lambda-L1")
    gp_weight: float = option(10.0, "Gradient-penalty weight for --gan-mode wgangp.")
    d_ratio: float = option(2.0, "The discriminator loss is divided by this to slow D down (2 = the reference's 0.5 factor).")
    d_steps: int = option(1, "Discriminator updates per generator update (the generator steps every d_steps iterations).")
    pool_size: int | None = option(None, "Size of the history of generated images shown to the discriminators (0 disables).")
    # CUT and FastCUT (Park et al. 2020): PatchNCE between the generator's input and output.
    lambda_gan: float = option(1.0, "cut / fastcut: weight of the adversarial term.", flag="--lambda-GAN")
    lambda_nce: float | None = option(None, "cut / fastcut: weight of the PatchNCE term.", flag="--lambda-NCE")
    nce_idt: bool | None = option(None, "cut / fastcut: also PatchNCE between images of the target domain and their "
                                  "translation (CUT's identity term; the two terms are then averaged).",
                                  flag="--nce-idt", negative_flag="--no-nce-idt")
    num_patches: int = option(256, "cut / fastcut: locations per layer and image that PatchNCE compares.")
    nce_temperature: float = option(0.07, "cut / fastcut: temperature of PatchNCE's softmax.", flag="--nce-T")
    flip_equivariance: bool | None = option(None, "cut / fastcut: mirror the generator's input at random and its "
                                            "features back for PatchNCE (FastCUT's augmentation).",
                                            flag="--flip-equivariance", negative_flag="--no-flip-equivariance")
    diff_augment: str = option("", "Differentiable augmentation (DiffAugment, Zhao et al. 2020) of every image the "
                               "discriminators see, real and generated alike: a comma-separated policy of color "
                               "(brightness, saturation, contrast), translation (up to 1/8 of the side, zero filled) "
                               "and cutout (a square of half the side), e.g. color,translation,cutout. Empty: off.")


@dataclass
class OptimConfig:
    """Adam and the learning-rate schedule (paper: 2e-4, beta1 0.5, 100 + 100 epochs)."""

    lr: float = option(2e-4, "Initial learning rate of the generators (and of D unless --lr-D is given).")
    lr_d: float | None = option(None, "Initial learning rate of the discriminators (default: --lr).", flag="--lr-D")
    beta1: float = option(0.5, "Adam beta1.")
    beta2: float = option(0.999, "Adam beta2.")
    epochs: int | None = option(None, "Epochs at the initial learning rate.")
    epochs_decay: int | None = option(None, "Epochs over which the learning rate then decays (linear policy: to zero).")
    lr_policy: str = option("linear", "Learning-rate schedule.", choices=LR_POLICIES)
    lr_decay_epochs: int = option(50, "For --lr-policy step: multiply the lr by --lr-gamma every this many epochs.")
    lr_gamma: float | None = option(None, "Factor of the step and plateau policies (default: 0.1 for step, 0.2 for "
                                          "plateau, as in the reference code).")


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared (paper: 286 -> random crop 256, flip)."""

    data: str | None = option(None, "Dataset folder with trainA/ and trainB/ (and optionally testA/ testB/).")
    domain_a: str | None = option(None, "Folder of domain A training images (instead of --data).")
    domain_b: str | None = option(None, "Folder of domain B training images (instead of --data).")
    batch_size: int = option(1, "Images per domain per iteration (the paper uses 1).")
    load_size: int = option(286, "Images are scaled to this size before cropping.")
    crop_size: int = option(256, "Then randomly cropped to this size.")
    preprocess: str = option("resize_and_crop", "Preprocessing of training images.",
                             choices=PREPROCESS_MODES)
    flip: bool = option(True, "Random horizontal flips.", flag="--flip", negative_flag="--no-flip")
    serial_batches: bool = option(False, "Pair A and B images by index instead of drawing B at random.")
    num_workers: int = option(2, "Data-loading worker processes (0 loads in the training process).")
    min_foreground: float = option(0.0, "Volumes: skip slices whose fraction of voxels above the window's low end "
                                   "is at most this (0: skip only empty slices).")
    volume_cache_mb: int = option(1024, "Volumes: MiB of decoded volumes each data-loading worker keeps per domain, "
                                  "so that an epoch decodes each volume file about once rather than once per slice "
                                  "(the most recent volume is always kept; 0 keeps only it).")


@dataclass
class RunConfig:
    """Bookkeeping of one training run: where it writes, how often, on what device."""

    name: str = option("experiment", "Run name: everything is written to <runs-dir>/<name>/.")
    runs_dir: str = option("runs", "Folder holding all runs.")
    seed: int = option(0, "Random seed; on CPU the same seed repeats a run exactly.")
    device: str = option("auto", "Device: auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.")
    precision: str = option("auto", "Arithmetic: auto (the fastest of the candidates this device can run, timed "
                            "on this run's model, size and batch before training and cached for the next run; "
                            "docs/PERFORMANCE.md), fp32, tf32 (CUDA), bf16 (autocast) or fp16 (autocast with loss "
                            "scaling, CUDA). The choice is printed at start and saved in config.json.",
                            choices=PRECISIONS)
    channels_last: bool | None = option(None, "Keep activations in channels-last memory layout (often faster with "
                                        "bf16). Default: chosen by --precision auto's timing, else off.",
                                        flag="--channels-last", negative_flag="--no-channels-last")
    compile: bool = option(False, "Compile the networks with torch.compile (slow first iterations, faster after).",
                           flag="--compile", negative_flag="--no-compile")
    cuda_graphs: bool = option(False, "On a CUDA GPU, capture the whole training iteration (all four networks' passes, "
                               "the losses, the image history, both Adam updates) in one CUDA graph after three "
                               "ordinary iterations, and replay it: at batch 1 the GPU otherwise waits for the host "
                               "to launch each kernel. CycleGAN and pix2pix; not with fp16, --d-steps, --compile or "
                               "torchrun. Off by default until measured (docs/PERFORMANCE.md); no effect elsewhere.",
                               flag="--cuda-graphs", negative_flag="--no-cuda-graphs")
    batch_generator_calls: bool = option(True, "Run the generator calls that are independent per image as one batch "
                                         "(same result with instance norm; never done with batch norm).",
                                         flag="--batch-generator-calls", negative_flag="--no-batch-generator-calls")
    nnpack: bool | None = option(None, "On the CPU, run the generator's stride-1 3x3 and 7x7 convolutions through "
                                 "NNPACK (Winograd / FFT; float32, contiguous layout, feature maps of 32x32 or more); "
                                 "the same convolutions up to float rounding. Default: chosen by --precision auto's "
                                 "timing, else off.",
                                 flag="--nnpack", negative_flag="--no-nnpack")
    max_iters: int | None = option(None, "Stop after this many iterations in total (checkpoint saved as at an epoch end).")
    max_minutes: float | None = option(None, "Stop after this many minutes of training (checkpoint saved as at an "
                                       "epoch end); for time-budgeted experiments.")
    save_every: int = option(0, "Also write a checkpoint every N iterations (0: only at epoch ends and at the end).")
    keep_last: int = option(3, "Keep only the newest K checkpoints (0 keeps all).")
    log_every: int = option(10, "Write averaged losses to log.jsonl every N iterations.")
    gallery_every: int = option(1, "Write the HTML gallery of translations every N epochs.")
    gallery_size: int = option(4, "Images per direction in the gallery.")
    tensorboard: bool = option(True, "Also log to TensorBoard when the tensorboard package is installed.",
                               flag="--tensorboard", negative_flag="--no-tensorboard")
    log_to: str | None = option(None, "Trackers that also get the run's scalars, validation scores, warnings and "
                                "gallery images: a comma-separated list of tensorboard, wandb and mlflow, or none "
                                "(default: tensorboard when the package is installed and --tensorboard is on). W&B "
                                "reads WANDB_MODE, WANDB_DIR and its login; MLflow reads MLFLOW_TRACKING_URI.")
    tracker_project: str = option("cyclegan", "The W&B project and the MLflow experiment the run is logged to.")
    init_from: str | None = option(None, "Start the generators (and the discriminators, where it has them) from this "
                                   "model: a zoo name, a run folder, a .safetensors or reference .pth file, or "
                                   "hf://owner/name. Optimisers and schedule start new; unlike --resume, this is a "
                                   "new run.")
    progress: bool = option(True, "Show a progress bar.", flag="--progress", negative_flag="--no-progress")
    skip_nonfinite: bool = option(False, "On a NaN/inf loss skip that update and count it, instead of stopping the run.")


@dataclass
class ValidationConfig:
    """Quality tracked while training: scores on validation images, the best checkpoint, warnings."""

    eval_every: int | None = option(None, "Score the generators on the validation images every N iterations "
                                    "(default: at each epoch end; 0: never). Validation images are valA/ and valB/ "
                                    "(pix2pix: val/ or paired valA/ valB/), else those --val-fraction holds out; "
                                    "never the test folders.")
    eval_images: int = option(50, "Validation images translated per direction at each evaluation (the first, "
                              "evenly spread over the sorted files when there are more).")
    val_fraction: float = option(0.0, "Hold out this fraction of the training images (chosen by --seed, never "
                                 "trained on) as validation images, for datasets without valA/ and valB/.")
    select_by: str = option("kid", "The validation score that picks the best checkpoint (lower is better): kid or "
                            "fid (summed over both directions), cycle, l1 (pix2pix: to the paired target), or one "
                            "direction's, e.g. kid_AtoB.", choices=SCORES)


SECTIONS = {"model": ModelConfig, "loss": LossConfig, "optim": OptimConfig, "data": DataConfig, "run": RunConfig,
            "validation": ValidationConfig}

# Fields that may change when a run is resumed; any other difference would make the resumed run a
# different experiment than the one whose state it inherits.
RESUMABLE_FIELDS = {
    ("run", "max_iters"), ("run", "save_every"), ("run", "keep_last"), ("run", "log_every"),
    ("run", "gallery_every"), ("run", "gallery_size"), ("run", "tensorboard"), ("run", "progress"),
    ("run", "log_to"), ("run", "tracker_project"),
    ("run", "skip_nonfinite"), ("run", "compile"), ("run", "cuda_graphs"), ("run", "nnpack"), ("run", "max_minutes"),
    ("run", "device"), ("run", "runs_dir"), ("data", "num_workers"), ("data", "volume_cache_mb"), ("data", "data"),
    ("data", "domain_a"), ("data", "domain_b"), ("validation", "eval_every"),
}


@dataclass
class TrainConfig:
    """The full configuration of a training run, saved as config.json in the run folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        _resolve_model_defaults("model", self.model, self.model.model)
        _resolve_model_defaults("loss", self.loss, self.model.model)
        _resolve_model_defaults("optim", self.optim, self.model.model)
        if self.optim.lr_gamma is None:  # recorded in config.json as used, like the model's defaults
            self.optim.lr_gamma = LR_GAMMA_DEFAULTS.get(self.optim.lr_policy)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        sections = {}
        for section_name, section_cls in SECTIONS.items():
            given = dict(values.get(section_name, {}))
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = sorted(set(given) - known)
            if unknown:
                raise ConfigError(f"unknown option(s) in section '{section_name}': {', '.join(unknown)}")
            sections[section_name] = section_cls(**given)
        unknown_sections = sorted(set(values) - set(SECTIONS))
        if unknown_sections:
            raise ConfigError(f"unknown config section(s): {', '.join(unknown_sections)}; "
                              f"valid sections are {', '.join(SECTIONS)}")
        return cls(**sections)

    def save(self, path: Path) -> None:
        from cyclegan.fileio import write_text_atomic

        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:  # an image or archive given by mistake
            raise ConfigError(f"cannot read config {path}: it is not a UTF-8 text file ({error.reason} at byte "
                              f"{error.start}); give a JSON config such as a run's config.json") from error
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"cannot read config {path}: {error}") from error
        _check_value_types(values, path)
        return cls.from_dict(values)

    def validate(self) -> None:
        """Reject combinations that cannot work, before any model is built."""
        if self.data.crop_size > self.data.load_size and self.data.preprocess in ("resize_and_crop", "scale_width_and_crop"):
            raise ConfigError(f"--crop-size {self.data.crop_size} is larger than --load-size {self.data.load_size}; "
                              "the crop must fit inside the resized image")
        if self.data.preprocess != "none" and self.data.crop_size < 24:
            raise ConfigError(f"--crop-size {self.data.crop_size} is too small: the 70x70 PatchGAN needs at least 24 px")
        for name, value in (("--batch-size", self.data.batch_size), ("--d-steps", self.loss.d_steps),
                            ("--ngf", self.model.ngf), ("--ndf", self.model.ndf)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.loss.num_patches < 1:
            raise ConfigError(f"--num-patches must be at least 1, got {self.loss.num_patches}")
        if not self.loss.nce_temperature > 0:
            raise ConfigError(f"--nce-T must be positive, got {self.loss.nce_temperature}")
        if self.model.nce_layers is not None:
            parse_nce_layers(self.model.nce_layers)
        if not self.loss.d_ratio > 0:
            raise ConfigError(f"--d-ratio must be positive, got {self.loss.d_ratio}")
        self._validate_numbers()
        if self.optim.lr_gamma is not None and not self.optim.lr_gamma > 0:
            raise ConfigError(f"--lr-gamma must be positive, got {self.optim.lr_gamma}")
        for name, channels in (("--input-nc", self.model.input_nc), ("--output-nc", self.model.output_nc)):
            if not 1 <= channels <= MAX_CHANNELS:
                raise ConfigError(f"{name} must be 1 (grayscale), 3 (RGB) or up to {MAX_CHANNELS} channels, "
                                  f"got {channels}")
        if self.model.model == "pix2pix" and {self.model.input_nc, self.model.output_nc} - {1, 3}:
            raise ConfigError("pix2pix pairs 8-bit images: --input-nc and --output-nc must be 1 or 3")
        if self.model.model == "pix2pix" and (self.model.window_a or self.model.window_b):
            raise ConfigError("pix2pix pairs 8-bit images, which take no intensity window; leave out "
                              "--window-a/--window-b (windows apply to --model cyclegan)")
        if self.model.slice_axis is not None and self.model.slice_axis not in (0, 1, 2):
            raise ConfigError(f"--slice-axis must be 0, 1 or 2 (a voxel axis), got {self.model.slice_axis}")
        if not 0.0 <= self.data.min_foreground < 1.0:
            raise ConfigError(f"--min-foreground is a fraction in [0, 1), got {self.data.min_foreground}")
        if self.data.volume_cache_mb < 0:
            raise ConfigError(f"--volume-cache-mb must be 0 or more, got {self.data.volume_cache_mb}")
        if self.loss.lambda_identity > 0 and self.model.input_nc != self.model.output_nc:
            raise ConfigError(f"the identity loss feeds B images to the A -> B generator, which needs "
                              f"--input-nc == --output-nc (got {self.model.input_nc} and {self.model.output_nc}); "
                              "pass --lambda-identity 0")
        if self.model.model == "cyclegan" and not self.loss.gan and self.loss.cycle == "none":
            raise ConfigError("--no-gan with --cycle none leaves no loss to train with")
        parse_policy(self.loss.diff_augment)
        parse_trackers(self.run.log_to)
        if self.model.model not in ONE_DIRECTION_MODELS and self.model.direction != Direction.A_TO_B:
            raise ConfigError(f"--direction {self.model.direction} applies to --model cut and fastcut, which learn one "
                              f"direction; for --model {self.model.model} swap the domains instead: "
                              "--domain-a DATA/trainB --domain-b DATA/trainA")
        if self.validation.eval_every is not None and self.validation.eval_every < 0:
            raise ConfigError(f"--eval-every must be 0 (off) or more, got {self.validation.eval_every}")
        if self.validation.eval_images < 2:
            raise ConfigError(f"--eval-images must be at least 2 (KID and FID compare sets of images), "
                              f"got {self.validation.eval_images}")
        if not 0.0 <= self.validation.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be at least 0 and below 1, got {self.validation.val_fraction}")
        scores = [score for score in MODEL_SCORES[self.model.model]
                  if "_" not in score or score.split("_")[1] in model_directions(self.model)]
        if self.validation.select_by not in scores:
            raise ConfigError(f"--select-by {self.validation.select_by} is not a score of --model {self.model.model}; "
                              f"choose one of {', '.join(scores)}")
        if Path(self.run.name) == Path("."):  # the run's files would be mixed into --runs-dir among the other runs
            raise ConfigError(f"--name {self.run.name!r} names no run folder; give the run a name, e.g. --name "
                              "horse2zebra")
        if self.data.data is None and (self.data.domain_a is None or self.data.domain_b is None):
            raise ConfigError("no training data: give --data DIR (with trainA/ and trainB/) "
                              "or both --domain-a DIR and --domain-b DIR")

    def _validate_numbers(self) -> None:
        """Ranges of the plain numeric options, checked here because a value out of range otherwise
        fails deep inside Adam, the image pool or the schedule, or trains nothing and exits 0."""
        optim, loss, run = self.optim, self.loss, self.run
        # A rate of 0 freezes that network (tests and ablations do it); a negative or NaN one is nonsense.
        for name, value in (("--lr", optim.lr), ("--lr-D", optim.lr_d)):
            if value is not None and not 0 <= value < math.inf:  # `not` so that NaN is refused too
                raise ConfigError(f"{name} is a learning rate: a finite number, 0 or more, got {value}")
        if run.max_minutes is not None and not 0 < run.max_minutes < math.inf:
            raise ConfigError(f"--max-minutes must be a positive number, got {run.max_minutes}")
        for name, value in (("--beta1", optim.beta1), ("--beta2", optim.beta2)):
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must be at least 0 and below 1 (Adam's decay rate), got {value}")
        weights = [("--lambda-A", loss.lambda_a), ("--lambda-B", loss.lambda_b),
                   ("--lambda-identity", loss.lambda_identity), ("--lambda-L1", loss.lambda_l1),
                   ("--gp-weight", loss.gp_weight), ("--lambda-GAN", loss.lambda_gan), ("--lambda-NCE", loss.lambda_nce)]
        for name, value in weights:
            if value is not None and not 0 <= value < math.inf:
                raise ConfigError(f"{name} is a loss weight: a finite number, 0 or more, got {value}")
        counts = [("--pool-size", loss.pool_size, 0), ("--num-workers", self.data.num_workers, 0),
                  ("--epochs", optim.epochs, 0), ("--epochs-decay", optim.epochs_decay, 0),
                  ("--lr-decay-epochs", optim.lr_decay_epochs, 1), ("--max-iters", run.max_iters, 1),
                  ("--save-every", run.save_every, 0), ("--keep-last", run.keep_last, 0),
                  ("--gallery-size", run.gallery_size, 0), ("--n-layers-D", self.model.n_layers_d, 1),
                  # 0 used to act as 1 without a word.
                  ("--log-every", run.log_every, 1), ("--gallery-every", run.gallery_every, 1)]
        for name, value, least in counts:
            if value is not None and value < least:
                raise ConfigError(f"{name} must be {least} or more, got {value}")
        if optim.epochs is not None and optim.epochs_decay is not None and optim.epochs + optim.epochs_decay == 0:
            raise ConfigError("--epochs 0 with --epochs-decay 0 leaves no epoch to train; give either a positive count")

    @property
    def total_epochs(self) -> int:
        return self.optim.epochs + self.optim.epochs_decay


# What a JSON value of each field type must be; an int is a fine float, but a bool is no number.
_JSON_TYPES = {int: ("an integer", (int,)), float: ("a number", (int, float)), bool: ("true or false", (bool,)),
               str: ("a string", (str,))}


def _check_value_types(values: Any, path: Path) -> None:
    """Raise ConfigError naming the file, the key, the type it must have and the value found, for
    the first value of a config file that does not fit its field (unknown keys are from_dict's)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must be a JSON object of sections ({', '.join(SECTIONS)}), got {json.dumps(values)}")
    for section_name, section_cls in SECTIONS.items():
        given = values.get(section_name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{path}: {section_name} must be a JSON object of options, got {json.dumps(given)}")
        hints = typing.get_type_hints(section_cls)
        for key, value in given.items():
            if key not in hints:
                continue
            members = typing.get_args(hints[key]) or (hints[key],)  # X | None: (X, NoneType)
            optional, kind = type(None) in members, members[0]
            description, json_types = _JSON_TYPES[kind]
            fits = isinstance(value, json_types) and (kind is bool or not isinstance(value, bool))
            if not (fits or (optional and value is None)):
                expected = f"{description} or null" if optional else description
                raise ConfigError(f"{path}: {section_name}.{key} must be {expected}, got {json.dumps(value)}")


def config_differences(saved: TrainConfig, requested: TrainConfig, ignore=RESUMABLE_FIELDS) -> list[str]:
    """Human-readable list of fields that differ between two configs, skipping the ignorable ones."""
    differences = []
    saved_dict, requested_dict = saved.to_dict(), requested.to_dict()
    for section, fields in saved_dict.items():
        for name, old in fields.items():
            new = requested_dict[section][name]
            if old != new and (section, name) not in ignore:
                differences.append(f"{section}.{name}: checkpoint has {old!r}, requested {new!r}")
    return differences


def mebibytes(text: str) -> int:
    """Bytes from a size typed in MiB ("20", "0.5"): an argparse type."""
    try:
        size = float(text)
    except ValueError:
        size = math.nan
    if not math.isfinite(size):  # int(inf * 2**20) raised OverflowError
        raise ValueError(f"not a size in MiB: {text!r} (e.g. 20 or 0.5)")
    return int(size * 2**20)


@dataclass(frozen=True)
class ServeLimits:
    """What one `cyclegan serve` server accepts, and how much work it takes on at once (the flags of
    `cyclegan serve`; `cyclegan.serving.Limits`)."""

    max_upload_bytes: int = option(20 * 2**20, "Largest accepted upload in MiB", flag="--max-upload-mb",
                                   parse=mebibytes, shown_default="20", metavar="MAX_UPLOAD_MB")
    max_pixels: int = option(40_000_000, "Largest accepted image in pixels, read from the header before decoding")
    workers: int = option(2, "Translations running at the same time")
    # Admitted translations waiting for a worker; beyond that: 503.
    queue: int = option(16, "Requests allowed to wait for a worker; more are answered 503")
    # Per request, from admission to the finished PNG (waiting included).
    timeout_s: float = option(60.0, "Seconds a request may take, waiting included, before it is answered 504",
                              flag="--timeout", shown_default="60", metavar="TIMEOUT")

    def __post_init__(self):
        # Named by field and flag: `Limits(timeout_s=0)` in code, `--timeout 0` on the command line.
        names = {limit.name: f"{limit.name} ({flag_of(limit)})" for limit in dataclasses.fields(self)}
        for name in ("max_upload_bytes", "max_pixels", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serving limit {names[name]} must be at least 1, got {getattr(self, name)}")
        if self.queue < 0:
            raise ConfigError(f"serving limit {names['queue']} must be 0 or more, got {self.queue}")
        if not self.timeout_s > 0:
            raise ConfigError(f"serving limit {names['timeout_s']} must be positive, got {self.timeout_s}")


def config_to_argv(config: TrainConfig, base: TrainConfig | None = None) -> list[str]:
    """The flags that turn `base` (default: all defaults) into `config`: the exact command line
    that reproduces a run, for experiment tables and notes."""
    base = base or TrainConfig()
    argv: list[str] = []
    values, base_values = config.to_dict(), base.to_dict()
    for section_name, section_cls in SECTIONS.items():
        for option_field in dataclasses.fields(section_cls):
            value, default = values[section_name][option_field.name], base_values[section_name][option_field.name]
            if value == default:
                continue
            if isinstance(value, bool):
                negative = negative_flag_of(option_field)
                argv.append(flag_of(option_field) if value else negative)
            elif value is not None and str(value).startswith("-"):
                argv.append(f"{flag_of(option_field)}={value}")  # argparse reads "-1000,2000" alone as a flag
            elif value is not None:
                argv.extend([flag_of(option_field), str(value)])
    return argv
