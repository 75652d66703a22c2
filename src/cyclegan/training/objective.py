"""The objectives of the paper, as objects the training loop drives.

`CycleGANObjective` is CycleGAN's full objective (Zhu et al. 2017, eq. 1-3, plus the identity
term of section 5.2); `Pix2PixObjective` is pix2pix's conditional GAN + L1 (Isola et al. 2017,
eq. 4), the paper's upper bound; `CUTObjective` is CUT's and FastCUT's adversarial term + PatchNCE
(Park et al. 2020, eq. 5), one direction without a cycle. Each owns its loss terms and their weights, checks its own
options (those that do not apply to it; `TrainConfig.validate` checks the combinations that cannot
work for any model), and returns named loss terms for the generator update and for the discriminator update.
The trainer does the rest: precision, frozen discriminators, the image history, backward passes,
non-finite checks and optimizer steps.

Both speak in domains and typed values: `GeneratorOutputs.fakes` maps a domain ("A", "B") to the
images the generators made for it this iteration, which the trainer passes through that domain's
image history before the discriminator update; `LossTerms` carries an update's terms under the
names log.jsonl and TensorBoard show, so the trainer sums, reads and logs them without knowing
which model made them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cyclegan import losses
from cyclegan.augment import augment_for_discriminator, diff_augment
from cyclegan.config import ONE_DIRECTION_MODELS, LossConfig, ModelConfig, TrainConfig, flag_of
from cyclegan.directions import Direction
from cyclegan.errors import ConfigError
from cyclegan.training.patchnce import draw_flip

# CUT's options (LossConfig, and ModelConfig.nce_layers), which no other objective uses.
CUT_OPTIONS = ("lambda_gan", "lambda_nce", "nce_idt", "num_patches", "nce_temperature", "flip_equivariance")


@dataclass(frozen=True)
class GeneratorOutputs:
    """The images the generators made in one update, each under the domain it belongs to:
    `fakes["B"]` is a translation into B (G_AB(a)). A one-generator model fills `fakes` only."""

    fakes: dict[str, torch.Tensor]
    # Back in the domain it came from: reconstructed["A"] is G_BA(G_AB(a)).
    reconstructed: dict[str, torch.Tensor] = field(default_factory=dict)
    # A domain's image through the generator into that domain: identity["A"] is G_BA(a).
    identity: dict[str, torch.Tensor] = field(default_factory=dict)


def stacked(values) -> torch.Tensor:
    """Loss values (0-d tensors) as one float32 vector on their device, so that one copy reads them all."""
    return torch.stack([value.detach().float().reshape(()) for value in values])


@dataclass(frozen=True)
class LossTerms:
    """One update's loss terms, each under the name log.jsonl and TensorBoard give it, and the
    values reported beside them without being optimised (a discriminator's accuracy)."""

    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    reported: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        """The update's loss: the sum of its terms."""
        return sum(self.terms.values())

    def to_record(self) -> dict[str, torch.Tensor]:
        """Terms, then reported values, by their log names."""
        return {**self.terms, **self.reported}

    def items(self):
        return self.to_record().items()


class CycleGANObjective:
    """Adversarial terms for G_AB and G_BA, the cycle terms (weights lambda_A, lambda_B) and the
    identity terms (lambda_identity times the cycle weight of the same domain).

    `generators` is the module whose forward runs all generator calls of one update (see
    `training.model.CycleGenerators`), `discriminators` the one that judges both domains;
    `judges` are the discriminators by domain, used as fixed critics in the generator update.
    """

    def __init__(self, loss: LossConfig, model: ModelConfig, generators: nn.Module, discriminators: nn.Module,
                 judges: dict[str, nn.Module]):
        self.check_options(loss, model)
        self.generators, self.discriminators, self.judges = generators, discriminators, judges
        self.gan_mode = loss.gan_mode
        self.adversarial = loss.gan
        self.cycle_weights = {domain: weight for domain, weight, used in (
            ("A", loss.lambda_a, loss.cycle in ("both", "forward")),
            ("B", loss.lambda_b, loss.cycle in ("both", "backward"))) if used}
        # The identity weight is a fraction of the cycle weight of the same domain (the reference's
        # definition, which the paper's section 5.2 uses for painting <-> photo).
        self.identity_weights = ({"A": loss.lambda_a * loss.lambda_identity, "B": loss.lambda_b * loss.lambda_identity}
                                 if loss.lambda_identity > 0 else {})
        self.gp_weight = loss.gp_weight
        self.d_ratio = loss.d_ratio
        # DiffAugment: the discriminators see every image, real or generated, through the same
        # random augmentations, in their own update and as critics of the generators.
        self.augmentation = loss.diff_augment

    @staticmethod
    def check_options(loss: LossConfig, model: ModelConfig) -> None:
        if model.model != "cyclegan":
            raise ConfigError(f"CycleGANObjective trains --model cyclegan, not {model.model}")
        unused = _changed(loss, ("lambda_l1",))
        if unused:
            raise ConfigError(f"{', '.join(unused)} only applies to --model pix2pix; leave it out")
        _refuse_cut_options(loss, model)

    @property
    def trains_discriminators(self) -> bool:
        """False for the cycle-only ablation (--no-gan), which has no discriminator to train."""
        return self.adversarial

    # No state of its own beyond the networks' (the trainer saves whatever an objective returns).
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def generator_terms(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[LossTerms, GeneratorOutputs]:
        """The generator update's loss terms, and the generated images."""
        outputs = _cycle_outputs(self.generators(real_a, real_b, identity=bool(self.identity_weights)))
        terms: dict[str, torch.Tensor] = {}
        if self.adversarial:
            for direction in Direction:  # each generator judged by the discriminator of its target domain
                seen = diff_augment(outputs.fakes[direction.target], self.augmentation)
                terms["loss_" + direction.generator] = losses.generator_adversarial_loss(
                    self.gan_mode, self.judges[direction.target](seen))
        originals = {"A": real_a, "B": real_b}
        for domain, weight in self.cycle_weights.items():
            terms[f"loss_cycle_{domain}"] = losses.cycle_loss(outputs.reconstructed[domain], originals[domain]) * weight
        for domain, weight in self.identity_weights.items():
            terms[f"loss_idt_{domain}"] = losses.identity_loss(outputs.identity[domain], originals[domain]) * weight
        return LossTerms(terms), outputs

    def translate(self, real_a: torch.Tensor, real_b: torch.Tensor) -> GeneratorOutputs:
        """The generated images, for an iteration without a generator update (--d-steps)."""
        generators = _unwrapped(self.generators)
        return GeneratorOutputs(fakes={"A": generators.G_BA(real_b), "B": generators.G_AB(real_a)})

    def discriminator_terms(self, real_a: torch.Tensor, real_b: torch.Tensor,
                            fakes: dict[str, torch.Tensor]) -> LossTerms:
        """Each discriminator's loss (divided by d_ratio), reporting its accuracy, from the real
        images and the generated ones (by domain) the trainer took from the image history."""
        seen = {domain: augment_for_discriminator(real, fakes[domain], self.augmentation)
                for domain, real in (("A", real_a), ("B", real_b))}
        predictions = self.discriminators(*seen["A"], *seen["B"])
        terms, accuracies = {}, {}
        for domain in ("A", "B"):
            pred_real, pred_fake = predictions[domain]
            loss = losses.discriminator_adversarial_loss(self.gan_mode, pred_real, pred_fake)
            if self.gan_mode == "wgangp":
                loss = loss + self.gp_weight * losses.gradient_penalty(self.judges[domain], *seen[domain])
            terms[f"loss_D_{domain}"] = loss / self.d_ratio
            accuracies[f"acc_D_{domain}"] = losses.discriminator_accuracy(self.gan_mode, pred_real, pred_fake)
        return LossTerms(terms, accuracies)


class Pix2PixObjective:
    """pix2pix: a conditional GAN (D sees the input beside the output) + lambda_L1 * ||G(a) - b||_1.

    Refuses the options of CycleGAN's objective, which pix2pix has no use for, rather than
    ignoring them.
    """

    # CycleGAN options with no meaning here; each must keep its default. The pool and the
    # identity weight default to 0 for pix2pix (config.MODEL_DEFAULTS).
    NOT_APPLICABLE = {"gan": "--no-gan", "d_steps": "--d-steps", "pool_size": "--pool-size", "cycle": "--cycle",
                      "lambda_identity": "--lambda-identity", "lambda_a": "--lambda-A", "lambda_b": "--lambda-B",
                      # Its discriminator sees input and output stacked: augmenting that pair
                      # consistently is not what DiffAugment defines.
                      "diff_augment": "--diff-augment"}

    def __init__(self, loss: LossConfig, model: ModelConfig, generators: nn.Module, discriminators: nn.Module,
                 judges: dict[str, nn.Module]):
        self.check_options(loss, model)
        self.generators, self.discriminators = generators, discriminators
        self.judge = judges["B"]
        self.gan_mode = loss.gan_mode
        self.l1_weight = loss.lambda_l1
        self.gp_weight = loss.gp_weight
        self.d_ratio = loss.d_ratio

    @classmethod
    def check_options(cls, loss: LossConfig, model: ModelConfig) -> None:
        if model.model != "pix2pix":
            raise ConfigError(f"Pix2PixObjective trains --model pix2pix, not {model.model}")
        defaults = TrainConfig(model=ModelConfig(model="pix2pix")).loss
        unused = [flag for name, flag in cls.NOT_APPLICABLE.items() if getattr(loss, name) != getattr(defaults, name)]
        if unused:
            raise ConfigError(f"{', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to --model "
                              "pix2pix; leave them out")
        _refuse_cut_options(loss, model)

    trains_discriminators = True

    # No state of its own beyond the networks' (the trainer saves whatever an objective returns).
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def generator_terms(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[LossTerms, GeneratorOutputs]:
        fake_b = self.generators(real_a)
        terms = {"loss_G_GAN": losses.generator_adversarial_loss(self.gan_mode, self.judge(torch.cat([real_a, fake_b], 1))),
                 "loss_G_L1": F.l1_loss(fake_b.float(), real_b.float()) * self.l1_weight}
        return LossTerms(terms), GeneratorOutputs(fakes={"B": fake_b})

    def translate(self, real_a: torch.Tensor, real_b: torch.Tensor) -> GeneratorOutputs:
        return GeneratorOutputs(fakes={"B": _unwrapped(self.generators)(real_a)})

    def discriminator_terms(self, real_a: torch.Tensor, real_b: torch.Tensor,
                            fakes: dict[str, torch.Tensor]) -> LossTerms:
        fake_b = fakes["B"]
        pred_real, pred_fake = self.discriminators(real_a, real_b, fake_b)
        loss = losses.discriminator_adversarial_loss(self.gan_mode, pred_real, pred_fake)
        if self.gan_mode == "wgangp":
            loss = loss + self.gp_weight * losses.gradient_penalty(
                self.judge, torch.cat([real_a, real_b], 1), torch.cat([real_a, fake_b], 1))
        return LossTerms({"loss_D": loss / self.d_ratio},
                         {"acc_D": losses.discriminator_accuracy(self.gan_mode, pred_real, pred_fake)})


class CUTObjective:
    """CUT and FastCUT (Park et al. 2020): lambda_GAN * the adversarial term of G(x), plus
    lambda_NCE * PatchNCE(x, G(x)); with `nce_idt` (CUT) also PatchNCE(y, G(y)) for images y of
    the target domain, the two PatchNCE terms then averaged, as CUT's loss_NCE_both. FastCUT:
    no identity term, lambda_NCE 10, and flip-equivariance.

    One direction (`ModelConfig.direction`): source and target are A and B, or B and A. The
    random numbers PatchNCE and the flips use come from the objective's own `torch.Generator`,
    seeded by the run's seed; `state_dict` carries its state into the checkpoint, so a resumed
    run draws what an uninterrupted one would have drawn.

    The trainer updates the generator against the discriminator as it was before this
    iteration's discriminator step (CUT updates D first); the two orders see the same images.
    """

    # Options of other objectives, which must keep their defaults here.
    NOT_APPLICABLE = {"gan": "--no-gan", "cycle": "--cycle", "lambda_identity": "--lambda-identity",
                      "lambda_a": "--lambda-A", "lambda_b": "--lambda-B", "lambda_l1": "--lambda-L1"}

    def __init__(self, loss: LossConfig, model: ModelConfig, generators: nn.Module, discriminators: nn.Module,
                 judges: dict[str, nn.Module], seed: int = 0):
        self.check_options(loss, model)
        self.generators, self.discriminators = generators, discriminators
        self.direction = Direction.parse(model.direction)
        self.judge = judges[self.direction.target]
        self.gan_mode = loss.gan_mode
        self.gan_weight, self.nce_weight = loss.lambda_gan, loss.lambda_nce
        self.nce_identity = loss.nce_idt
        self.flip_equivariance = loss.flip_equivariance
        self.num_patches, self.temperature = loss.num_patches, loss.nce_temperature
        self.gp_weight = loss.gp_weight
        self.d_ratio = loss.d_ratio
        self.augmentation = loss.diff_augment
        # Its own stream, apart from the global one that initialises the networks.
        self.rng = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0xC07]).generate_state(1)[0]))

    @classmethod
    def check_options(cls, loss: LossConfig, model: ModelConfig) -> None:
        if model.model not in ONE_DIRECTION_MODELS:
            raise ConfigError(f"CUTObjective trains --model cut or fastcut, not {model.model}")
        defaults = TrainConfig(model=ModelConfig(model=model.model)).loss
        unused = [flag for name, flag in cls.NOT_APPLICABLE.items() if getattr(loss, name) != getattr(defaults, name)]
        if unused:
            one = len(unused) == 1
            raise ConfigError(f"{', '.join(unused)} {'does' if one else 'do'} not apply to --model {model.model}, "
                              f"which has one generator and no cycle; leave {'it' if one else 'them'} out")
        if not model.net_g.startswith("resnet"):
            raise ConfigError(f"--model {model.model} reads the encoder of a ResNet generator, not --netG {model.net_g}; "
                              "use --netG resnet_9blocks or resnet_6blocks")
        if loss.nce_idt and model.input_nc != model.output_nc:
            raise ConfigError(f"--nce-idt feeds target-domain images to the generator, which needs --input-nc == "
                              f"--output-nc (got {model.input_nc} and {model.output_nc}); pass --no-nce-idt")

    trains_discriminators = True

    def state_dict(self) -> dict:
        return {"rng": self.rng.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.set_state(state["rng"])

    def _source_target(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (real_a, real_b) if self.direction is Direction.A_TO_B else (real_b, real_a)

    def generator_terms(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[LossTerms, GeneratorOutputs]:
        source, target = self._source_target(real_a, real_b)
        flipped = draw_flip(self.rng).flipped if self.flip_equivariance else False
        out = self.generators(source, target, identity=self.nce_identity, flipped=flipped, rng=self.rng,
                              num_patches=self.num_patches, temperature=self.temperature)
        seen = diff_augment(out["fake"], self.augmentation)
        terms = {"loss_G_GAN": losses.generator_adversarial_loss(self.gan_mode, self.judge(seen)) * self.gan_weight}
        nce_weight = self.nce_weight * (0.5 if self.nce_identity else 1.0)
        terms["loss_NCE"] = out["nce"] * nce_weight
        identity = {}
        if self.nce_identity:
            terms["loss_NCE_idt"] = out["nce_identity"] * nce_weight
            identity = {self.direction.target: out["identity"]}
        return LossTerms(terms), GeneratorOutputs(fakes={self.direction.target: out["fake"]}, identity=identity)

    def translate(self, real_a: torch.Tensor, real_b: torch.Tensor) -> GeneratorOutputs:
        source, _target = self._source_target(real_a, real_b)
        return GeneratorOutputs(fakes={self.direction.target: _unwrapped(self.generators).G(source)})

    def discriminator_terms(self, real_a: torch.Tensor, real_b: torch.Tensor,
                            fakes: dict[str, torch.Tensor]) -> LossTerms:
        domain = self.direction.target
        _source, real = self._source_target(real_a, real_b)
        seen = augment_for_discriminator(real, fakes[domain], self.augmentation)
        pred_real, pred_fake = self.discriminators(*seen)
        loss = losses.discriminator_adversarial_loss(self.gan_mode, pred_real, pred_fake)
        if self.gan_mode == "wgangp":
            loss = loss + self.gp_weight * losses.gradient_penalty(self.judge, *seen)
        return LossTerms({f"loss_D_{domain}": loss / self.d_ratio},
                         {f"acc_D_{domain}": losses.discriminator_accuracy(self.gan_mode, pred_real, pred_fake)})


OBJECTIVES = {"cyclegan": CycleGANObjective, "pix2pix": Pix2PixObjective, "cut": CUTObjective,
              "fastcut": CUTObjective}


def check_objective_options(config: TrainConfig) -> None:
    """Raise ConfigError if the loss options do not fit the model's objective."""
    OBJECTIVES[config.model.model].check_options(config.loss, config.model)


def build_objective(config: TrainConfig, generators: nn.Module, discriminators: nn.Module,
                    judges: dict[str, nn.Module]):
    objective_class = OBJECTIVES[config.model.model]
    if objective_class is CUTObjective:
        return CUTObjective(config.loss, config.model, generators, discriminators, judges, seed=config.run.seed)
    return objective_class(config.loss, config.model, generators, discriminators, judges)


def _refuse_cut_options(loss: LossConfig, model: ModelConfig) -> None:
    given = _changed(loss, CUT_OPTIONS) + (["--nce-layers"] if model.nce_layers is not None else [])
    if given:
        raise ConfigError(f"{', '.join(given)} only {'applies' if len(given) == 1 else 'apply'} to --model cut and "
                          f"fastcut; leave {'it' if len(given) == 1 else 'them'} out")


def _changed(loss: LossConfig, names: tuple[str, ...]) -> list[str]:
    defaults = {f.name: f.default for f in fields(LossConfig)}
    flags = {f.name: flag_of(f) for f in fields(LossConfig)}
    return [flags[name] for name in names if getattr(loss, name) != defaults[name]]


def _cycle_outputs(images: dict[str, torch.Tensor]) -> GeneratorOutputs:
    """`training.model.CycleGenerators`' images (a plain dict, as DDP and torch.compile pass a
    module's output best), by domain."""
    identity = {"A": images["identity_a"], "B": images["identity_b"]} if "identity_a" in images else {}
    return GeneratorOutputs(fakes={"A": images["fake_a"], "B": images["fake_b"]},
                            reconstructed={"A": images["reconstructed_a"], "B": images["reconstructed_b"]},
                            identity=identity)


def _unwrapped(module: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel or torch.compile's wrapper."""
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module)
