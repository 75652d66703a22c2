"""Warnings when a run fails in one of the ways GAN training is known to fail, each with what to try.

`HealthMonitor` watches two streams: the log records (discriminator accuracies) and the
validation records (`training.validation`), and says when

- a discriminator wins: its accuracy, averaged over the last `D_WINDOW` log records, is above
  `D_ACCURACY`; its generator then gets almost no gradient to learn from;
- a generator collapses: its translations of different validation images are nearly the same
  image (their mean pairwise distance is below `COLLAPSE_SPREAD` times that of the inputs);
- a generator copies its input: mean |G(x) - x| stays below `COPY_CHANGE` at `COPY_EVALUATIONS`
  evaluations in a row;
- the validation KID (summed over the directions) rises at each of `KID_RISES` evaluations in a
  row, by more than its spread over KID subsets in all (the std of the sum).

Each warning fires once per stretch: when its condition becomes true, not again until it has been
false. The conditions depend only on the records, so a resumed run replays its records through
`observe_log` / `observe_scores` to know which stretches are under way and does not repeat them.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from cyclegan.directions import Direction

# Log records averaged per discriminator: 10 is long enough that a run of lucky batches is not a
# stretch (each record averages --log-every iterations, so 100 iterations at the default), short
# enough to say so while the run can still be changed.
D_WINDOW = 10
D_ACCURACY = 0.99
# Healthy translations keep much of the inputs' variety, and even an untrained generator's outputs
# differ from one another a good part as much as its inputs do; a twentieth is one image with
# small changes.
COLLAPSE_SPREAD = 0.05
# In [-1, 1] units, 1% of the value range: below what any translation changes on average.
COPY_CHANGE = 0.02
# Early in training the identity and cycle terms can make a generator a near copy for a while;
# only one that stays so is a failure.
COPY_EVALUATIONS = 2
# Three rises in a row: with fewer, the noise of a score on a few dozen images would warn often.
KID_RISES = 3

# What to try, in options the model accepts: each objective refuses the options of the others
# (pix2pix has no --diff-augment, CUT and FastCUT no cycle, identity weight or --no-gan).
_CUT_ADVICE = {
    "discriminator_wins": "Try a lower --lr-D, a larger --d-ratio, --diff-augment color,translation,cutout (small "
                          "datasets) or --spectral-norm",
    "collapse": "Try a lower --lr or --lr-D, or a larger --lambda-NCE (PatchNCE ties each output patch to its input)",
    "copy": "Try a lower --lambda-NCE, a larger --lambda-GAN, or a higher --lr-D"}
ADVICE = {
    "cyclegan": {
        "discriminator_wins": _CUT_ADVICE["discriminator_wins"],
        "collapse": "Try a lower --lr or --lr-D, a larger --pool-size or larger cycle weights (--lambda-A, --lambda-B)",
        "copy": "Try a lower --lambda-identity, the adversarial loss (no --no-gan), or a higher --lr-D"},
    "pix2pix": {
        "discriminator_wins": "Try a lower --lr-D, a larger --d-ratio or --spectral-norm",
        "collapse": "Try a lower --lr or --lr-D, or a larger --lambda-L1",
        "copy": "Try a higher --lr-D or a lower --lambda-L1"},
    "cut": _CUT_ADVICE,
    "fastcut": _CUT_ADVICE,
}


@dataclass(frozen=True)
class HealthWarning:
    kind: str  # "discriminator_wins", "collapse", "copy" or "kid_rising"
    subject: str  # the network ("D_A", "G_AB") or the score ("kid") it is about
    iteration: int
    epoch: int
    message: str  # what happened and what to try

    def record(self) -> dict:
        """The warning as a line of log.jsonl / metrics.jsonl."""
        return {"iteration": self.iteration, "epoch": self.epoch, "warning": self.kind, "subject": self.subject,
                "message": self.message}


class HealthMonitor:
    """Turns log and validation records into warnings (see the module's docstring)."""

    def __init__(self, model: str = "cyclegan"):
        self.advice = ADVICE[model]  # what each warning suggests trying, in this model's options
        self.accuracies: dict[str, deque[float]] = {}
        self.copies: dict[str, int] = {}  # evaluations in a row at which each direction's generator copied
        self.kid_history: list[float] = []  # the KID of each evaluation since it last fell
        self.active: set[tuple[str, str]] = set()

    def observe_log(self, record: dict) -> list[HealthWarning]:
        """The warnings a log.jsonl record starts (its acc_D* values)."""
        warnings = []
        for key, value in record.items():
            if not key.startswith("acc_D") or not isinstance(value, (int, float)):
                continue
            window = self.accuracies.setdefault(key, deque(maxlen=D_WINDOW))
            window.append(float(value))
            subject = key.removeprefix("acc_")
            winning = len(window) == D_WINDOW and sum(window) / D_WINDOW > D_ACCURACY
            if self._starts("discriminator_wins", subject, winning):
                warnings.append(HealthWarning(
                    "discriminator_wins", subject, record["iteration"], record["epoch"],
                    f"{subject} has told real from generated patches over {D_ACCURACY:.0%} of the time for the last "
                    f"{D_WINDOW} log records, so its generator learns little from it. {self.advice['discriminator_wins']}"))
        return warnings

    def observe_scores(self, record: dict) -> list[HealthWarning]:
        """The warnings a metrics.jsonl evaluation record starts."""
        iteration, epoch = record["iteration"], record["epoch"]
        warnings = []
        for direction in Direction:
            generator = direction.generator
            spread, change = record.get(f"spread_{direction}"), record.get(f"change_{direction}")
            if self._starts("collapse", generator, spread is not None and spread < COLLAPSE_SPREAD):
                warnings.append(HealthWarning(
                    "collapse", generator, iteration, epoch,
                    f"{generator} gives nearly the same image whatever its input (its translations of the validation "
                    f"images are {spread:.1%} as far apart as the images): mode collapse. {self.advice['collapse']}"))
            copying = change is not None and change < COPY_CHANGE
            self.copies[direction] = self.copies.get(direction, 0) + 1 if copying else 0
            if self._starts("copy", generator, self.copies[direction] >= COPY_EVALUATIONS):
                warnings.append(HealthWarning(
                    "copy", generator, iteration, epoch,
                    f"{generator} returns its input almost unchanged (mean |G(x) - x| = {change:.4f} at "
                    f"{COPY_EVALUATIONS} evaluations in a row): it does not translate. {self.advice['copy']}"))
        kid = record.get("kid")
        if kid is not None:
            if self.kid_history and kid <= self.kid_history[-1]:
                self.kid_history = []
            self.kid_history.append(kid)
            stds = [record.get(f"kid_{direction}_std") for direction in Direction]
            spread = math.sqrt(sum(std * std for std in stds if std is not None))
            before = self.kid_history[-KID_RISES - 1] if len(self.kid_history) > KID_RISES else None
            # Without a spread (every KID subset is the whole set, with 3 images or fewer) a rise
            # cannot be told from noise.
            if self._starts("kid_rising", "kid", before is not None and spread > 0 and kid - before > spread):
                warnings.append(HealthWarning(
                    "kid_rising", "kid", iteration, epoch,
                    f"the validation KID has risen at each of the last {KID_RISES} evaluations "
                    f"({before:.4f} -> {kid:.4f}): the translations are getting worse. The best checkpoint so far "
                    "stays available (--pick best); try a lower --lr, or stop the run"))
        return warnings

    def _starts(self, kind: str, subject: str, condition: bool) -> bool:
        """True when `condition` holds now and did not at the previous observation."""
        key = (kind, subject)
        if not condition:
            self.active.discard(key)
            return False
        if key in self.active:
            return False
        self.active.add(key)
        return True
