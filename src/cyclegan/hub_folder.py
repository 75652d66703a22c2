"""`cyclegan export RUN --hub-folder DIR` and `cyclegan push RUN REPO_ID`: a model as the Hub
shares models, a folder of

- `model.safetensors`: the generators (with `with_discriminators`, the discriminators too), with
  the model config in their metadata, so the folder loads like any of our checkpoints;
- `config.json`: that config and what the folder holds, for people and other tools;
- `README.md`: the model card, YAML front matter (library_name, license, tags, pipeline_tag) then
  the stored values each domain's files hold and how they map onto [-1, 1] (the intensity windows,
  else the training files' depth), the architecture, the options and command that trained it, its
  data, iterations, precision and scores;
- `example_input.png`, `example_output.png`: one image of the training data and its translation.

`cyclegan.hub` reads such a folder back from the Hub (`hf://owner/name`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from safetensors.torch import load_file, save_file

from cyclegan import checkpoint as ckpt
from cyclegan.config import TrainConfig
from cyclegan.errors import CheckpointError, ConfigError, CycleGANError
from cyclegan.fileio import write_atomic, write_text_atomic
from cyclegan.hub import DEFAULT_LICENSE, sha256_of

CONFIG_FILE, CARD_FILE = "config.json", "README.md"
EXAMPLE_INPUT, EXAMPLE_OUTPUT = "example_input.png", "example_output.png"
EXAMPLE_SIZE = 256  # the example pair's longer side at most, in pixels
LIBRARY_NAME = "cyclegan"


@dataclass
class HubFolder:
    folder: Path
    networks: list[str]
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def write_hub_folder(value: str | os.PathLike, out: str | os.PathLike, pick: str = "latest",
                     with_discriminators: bool = False, license: str = DEFAULT_LICENSE,
                     repo_id: str | None = None, scores: str | os.PathLike | None = None) -> HubFolder:
    """Write the Hub folder of the model `value` names (a run folder gives the fullest card) to
    `out`, which must be empty or absent. `scores` is a `cyclegan evaluate --out` JSON file for the
    card; `repo_id` ("owner/name") is used in the card's usage lines."""
    from cyclegan.inference.resolve import resolve

    resolved = resolve(value, pick)
    if resolved.is_onnx or resolved.is_reference:
        raise ConfigError(f"{resolved.weights} is not one of our checkpoints; a Hub folder is written from a run "
                          "folder or .safetensors file (convert a reference .pth with `cyclegan models convert`)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder; choose a new --hub-folder")
    tensors = load_file(str(resolved.weights))
    held = [name for name in (resolved.metadata.get("networks") or "").split(",") if name]
    networks = [name for name in held if name.startswith("G")]
    discriminators = [name for name in held if name.startswith("D")]
    notes = []
    if with_discriminators:
        if not discriminators:
            raise ConfigError(f"{resolved.weights} holds no discriminators; leave out --with-discriminators")
        networks += discriminators
    elif discriminators:
        notes.append(f"discriminators ({', '.join(discriminators)}) left out; --with-discriminators adds them")
    run_dir = _run_folder(Path(value), resolved.weights)
    train_config = _train_config(run_dir, resolved.weights)
    metadata = {key: resolved.metadata[key] for key in ("epoch", "iteration") if key in resolved.metadata}
    metadata.update(ckpt.format_metadata(resolved.config, networks))
    kept = {key: value for key, value in tensors.items() if key.split(".", 1)[0] in networks}

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / ckpt.HUB_WEIGHTS, lambda temporary: save_file(kept, str(temporary), metadata=metadata))
    config = {"library_name": LIBRARY_NAME, "format": ckpt.FORMAT, "model": dataclasses.asdict(resolved.config),
              "networks": networks, "directions": [str(d) for d in ckpt.held_directions(metadata)],
              "epoch": _int(metadata.get("epoch")), "iteration": _int(metadata.get("iteration")),
              "cyclegan_version": ckpt.package_version(),
              # checked after a download from the Hub (cyclegan.hub), which checks sizes only
              "weights_sha256": sha256_of(out / ckpt.HUB_WEIGHTS),
              "training": train_config.to_dict() if train_config is not None else None}
    write_text_atomic(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    files = [ckpt.HUB_WEIGHTS, CONFIG_FILE]
    missing = _write_example(out, train_config)
    example = missing is None
    if example:
        files += [EXAMPLE_INPUT, EXAMPLE_OUTPUT]
    else:
        notes.append(f"no example pair: {missing}")
    card = model_card(config, train_config, run_dir, license, repo_id or f"OWNER/{out.name}",
                      _read_json(Path(scores)) if scores else None, example)
    write_text_atomic(out / CARD_FILE, card)
    files.append(CARD_FILE)
    return HubFolder(out, networks, files, notes)


def read_card(text: str) -> tuple[dict, str]:
    """The YAML front matter of a model card and the text after it."""
    if not text.startswith("---\n"):
        raise ConfigError("the model card has no YAML front matter (it must start with a '---' line)")
    header, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(header), body


def model_card(config: dict, train: TrainConfig | None, run_dir: Path | None, license: str, repo_id: str,
               scores: dict | None, example: bool) -> str:
    """The README.md of a Hub folder: YAML front matter, then what the model is and how it was made."""
    model = config["model"]
    kind = "pix2pix" if model["model"] == "pix2pix" else "CycleGAN"
    front = {"library_name": LIBRARY_NAME, "license": license,
             "tags": list(dict.fromkeys([LIBRARY_NAME, model["model"], "image-to-image", "gan", "pytorch",
                                         "safetensors"])),
             "pipeline_tag": "image-to-image"}
    name = repo_id.split("/")[-1]
    directions = config["directions"] or ["AtoB"]
    lines = [f"# {name}", "",
             f"A {kind} ({'Isola et al. 2017' if kind == 'pix2pix' else 'Zhu et al. 2017'}) that translates "
             + " and ".join(d.replace("to", " → ") for d in directions) + ", trained with the `cyclegan` package.", "",
             "## Use", "", "```bash", "pip install 'cyclegan[hub]'",
             f"cyclegan translate hf://{repo_id} photos/ --out translated/", "```", "",
             "```python", "from cyclegan.inference import Translator", "",
             f"translate = Translator.from_checkpoint(\"hf://{repo_id}\", direction=\"{directions[0]}\")",
             "result = translate(image)  # a PIL image in, a PIL image of the same size out",
             *(["translate.translate_files([\"scans/\"], \"translated/\")  # 16-bit, float, multi-channel files, "
                "volumes: at their depth, through the values below"] if _reads_beyond_8_bit(model) else []),
             "```", "",
             f"Fine-tune it: `cyclegan train --data DATA --init-from hf://{repo_id}`.", "",
             *_value_lines(model, train),
             "## Architecture", "",
             f"- generator: `{model['net_g']}`, ngf {model['ngf']}, {model['norm']} norm, "
             f"{model['input_nc']} → {model['output_nc']} channels, dropout {'on' if model['use_dropout'] else 'off'}, "
             f"up-sampling `{model['upsample']}`",
             f"- discriminator: `{model['net_d']}`, ndf {model['ndf']} "
             + ("(included)" if any(n.startswith("D") for n in config["networks"]) else "(not included)"),
             f"- networks in `model.safetensors`: {', '.join(config['networks'])}", ""]
    lines += ["## Training", ""]
    if train is None:
        lines += ["The training run's config.json was not available, so the training details are unknown.", ""]
    else:
        from cyclegan.config import config_to_argv

        argv = config_to_argv(train)
        lines += [f"- data: {_data_description(train)}",
                  f"- iterations: {config['iteration']} (epochs completed: {config['epoch']})",
                  f"- precision: {train.run.precision}",
                  f"- losses: {train.loss.gan_mode} GAN, λ cycle {train.loss.lambda_a} / {train.loss.lambda_b}, "
                  f"λ identity {train.loss.lambda_identity}",
                  f"- optimiser: Adam, lr {train.optim.lr}, β {train.optim.beta1} / {train.optim.beta2}, "
                  f"{train.optim.epochs} + {train.optim.epochs_decay} epochs ({train.optim.lr_policy} decay)",
                  f"- batch size {train.data.batch_size}, crop {train.data.crop_size} px, "
                  f"preprocess {train.data.preprocess}",
                  "", "The command that trained it:", "", "```bash",
                  "cyclegan train " + " ".join(_shell_word(word) for word in argv), "```", ""]
    lines += _score_lines(run_dir, scores)
    lines += ["## Example", ""]
    lines += ([f"![input]({EXAMPLE_INPUT}) ![translated]({EXAMPLE_OUTPUT})", "",
               f"`{EXAMPLE_INPUT}` (from the training data) and its {directions[0]} translation.", ""]
              if example else ["No example pair was written.", ""])
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + "\n".join(lines)


def push_folder(value: str | os.PathLike, repo_id: str, pick: str = "latest", with_discriminators: bool = False,
                license: str = DEFAULT_LICENSE, private: bool = False, scores: str | os.PathLike | None = None,
                message: str | None = None) -> str:
    """Export the model `value` names as a Hub folder and upload it to `repo_id` (created if
    needed); returns the repository's URL. The login is huggingface_hub's (`hf auth login`, HF_TOKEN)."""
    try:
        from huggingface_hub import HfApi
    except ImportError as error:
        raise ConfigError("cyclegan push needs huggingface_hub: pip install 'cyclegan[hub]'") from error
    with tempfile.TemporaryDirectory(prefix="cyclegan-push-") as temporary:
        folder = write_hub_folder(value, Path(temporary) / repo_id.split("/")[-1], pick, with_discriminators,
                                  license, repo_id, scores)
        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=str(folder.folder),
                              commit_message=message or f"Upload {Path(value).name} with cyclegan push")
        except (OSError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"cannot upload to {repo_id}: {reason}; log in with `hf auth login` "
                                  "(or set HF_TOKEN) and check the repository name") from error
    return str(url)


# ------------------------------------------------------------------------------------- helpers
def _run_folder(value: Path, weights: Path) -> Path | None:
    """The run folder the weights belong to (it holds config.json), if any."""
    for candidate in (value, weights.parent.parent):
        if (candidate / CONFIG_FILE).is_file() and (candidate / "checkpoints").is_dir():
            return candidate
    return None


def _train_config(run_dir: Path | None, weights: Path) -> TrainConfig | None:
    """The training config of the run folder, else the one a Hub folder's config.json carries
    (so that a Hub folder exported again keeps its card's training details)."""
    try:
        if run_dir is not None:
            return TrainConfig.load(run_dir / CONFIG_FILE)
        described = _read_json(weights.parent / CONFIG_FILE)
        training = described.get("training") if isinstance(described, dict) else None
        return TrainConfig.from_dict(training) if isinstance(training, dict) else None
    except ConfigError:
        return None


def _training_folders(train: TrainConfig):
    from cyclegan.data.layout import layout_of

    try:
        return layout_of(train)
    except Exception:  # the data may have moved since: the card then says so
        return None


def _data_description(train: TrainConfig) -> str:
    from cyclegan.data.images import list_images

    layout = _training_folders(train)
    folders = [folder for folder in (layout.train_a, layout.train_b) if folder is not None] if layout else []
    if not folders or not all(folder.is_dir() for folder in folders):
        named = train.data.data or f"{train.data.domain_a}, {train.data.domain_b}"
        return f"`{named}` (no longer readable, so the image counts are unknown)"
    return ", ".join(f"`{folder.parent.name}/{folder.name}` ({len(list_images(folder))} images)" for folder in folders)


def _value_lines(model: dict, train: TrainConfig | None) -> list[str]:
    """The card's "Values" section: for each domain, one line on which stored values its files
    hold and how they map onto [-1, 1] (`data.intensity.describe_values`)."""
    from cyclegan.data.intensity import describe_values

    lines = ["## Values", "", "What the files of each domain hold, and how they map onto the networks' [-1, 1]. "
             "Translations into a domain with a fixed window come back through that window, into any other through "
             "the window of the input file (`cyclegan translate` does both).", ""]
    for domain, channels, window in (("A", model["input_nc"], model.get("window_a")),
                                     ("B", model["output_nc"], model.get("window_b"))):
        stored = None if window or train is None else _stored_type(train, domain)
        lines.append(f"- {domain}: {describe_values(channels, window, stored)}")
    if model.get("slice_axis") is not None:
        lines.append(f"- volumes (NIfTI, DICOM series): slices along voxel axis {model['slice_axis']}")
    return lines + [""]


def _reads_beyond_8_bit(model: dict) -> bool:
    return bool(model.get("window_a") or model.get("window_b")) or not {model["input_nc"], model["output_nc"]} <= {1, 3}


def _stored_type(train: TrainConfig, domain: str):
    """The type the training files of `domain` store (its first image file, else its first NIfTI
    volume), or None where they cannot be read any more (the card then says 8-bit)."""
    from cyclegan.data.highbit import header_dtype
    from cyclegan.data.sources import list_sources
    from cyclegan.data.volumes import nifti_dtype

    layout = _training_folders(train)
    folder = None if layout is None else layout.train_a if domain == "A" else layout.train_b
    if folder is None or layout.kind == "aligned" or not folder.is_dir():
        return None
    try:
        images, volumes = list_sources(folder)
        if images:
            return header_dtype(images[0])
        return nifti_dtype(volumes[0]) if volumes and volumes[0].is_file() else None
    except (CycleGANError, OSError):
        return None


def _write_example(out: Path, train: TrainConfig | None) -> str | None:
    """Translate the first training image of domain A, both shrunk to EXAMPLE_SIZE at most; or
    say why there is no example. Only 8-bit pictures make one: a PNG of another depth, or of a
    window's values, would show something else than the model was given."""
    from PIL import Image

    from cyclegan.data.highbit import header_dtype
    from cyclegan.data.images import list_images
    from cyclegan.inference import Translator

    missing = "the training images are not where config.json says"
    if train is None:
        return missing
    if train.model.window_a or train.model.input_nc not in (1, 3):
        return "domain A's files are read through an intensity window or have other than 1 or 3 channels"
    layout = _training_folders(train)
    images = list_images(layout.train_a) if layout is not None and layout.train_a.is_dir() else []
    if not images:
        return missing
    try:
        if header_dtype(images[0]) != np.uint8:
            return f"domain A's files are not 8-bit pictures ({images[0].name})"
    except CycleGANError as error:
        return str(error)
    image = Image.open(images[0])
    image.load()
    if layout.kind == "aligned":  # an A|B pair: its left half is the input
        image = image.crop((0, 0, image.width // 2, image.height))
    image.thumbnail((EXAMPLE_SIZE, EXAMPLE_SIZE))
    image = image.convert("RGB" if train.model.input_nc == 3 else "L")
    translated = Translator.from_checkpoint(out, device="cpu")(image)
    write_atomic(out / EXAMPLE_INPUT, lambda temporary: image.save(temporary, format="PNG"))
    write_atomic(out / EXAMPLE_OUTPUT, lambda temporary: translated.save(temporary, format="PNG"))
    return None


def _score_lines(run_dir: Path | None, scores: dict | None) -> list[str]:
    from cyclegan.training.logging import read_log

    lines = []
    evaluations = [r for r in read_log(run_dir / "metrics.jsonl") if "warning" not in r] if run_dir else []
    if evaluations:
        newest = evaluations[-1]
        best = next((r for r in reversed(evaluations) if r.get("best")), None)
        lines += ["## Validation scores", "", "Scored on held-out validation images while training (lower is better).",
                  "", "| checkpoint | iteration | " + " | ".join(_score_keys(newest)) + " |",
                  "|---|---|" + "---|" * len(_score_keys(newest))]
        for label, record in (("newest", newest), ("best", best)):
            if record is not None:
                lines.append(f"| {label} | {record['iteration']} | "
                             + " | ".join(_number(record.get(key)) for key in _score_keys(newest)) + " |")
        lines.append("")
    if scores:
        flat = _flatten(scores)
        lines += ["## Evaluation scores", "", "From `cyclegan evaluate` on the test images.", "",
                  "| score | value |", "|---|---|"]
        lines += [f"| {key} | {_number(value)} |" for key, value in flat.items()]
        lines.append("")
    if not lines:
        lines = ["## Scores", "", "The run was not scored (no validation images, no `cyclegan evaluate` file).", ""]
    return lines


def _score_keys(record: dict) -> list[str]:
    return [key for key in record if key.split("_")[0] in ("kid", "fid", "cycle", "l1") and not key.endswith("_std")]


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + key] = value
    return flat


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def _shell_word(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not even UTF-8 text
        raise ConfigError(f"cannot read the scores file {path}: {error}") from error


__all__ = ["HubFolder", "write_hub_folder", "push_folder", "model_card", "read_card"]
