"""Learning-rate schedules, as multiplicative factors of the initial rate per epoch.

The epoch index is 0-based: epoch e trains with lr = initial_lr * factor(e).
"""
from __future__ import annotations

import math

import torch

from cyclegan.config import LR_GAMMA_DEFAULTS, LR_POLICIES
from cyclegan.errors import ConfigError



def linear_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for `epochs` epochs, then linear decay to zero over `epochs_decay` epochs.

    factor(e) = 1 - max(0, e + 1 - epochs) / (epochs_decay + 1), the reference code's rule:
    with 100 + 100 epochs the last epoch (e = 199) trains at lr/101 and the rate after it is 0.
    """
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


def step_factor(epoch: int, step_epochs: int, gamma: float) -> float:
    """Multiply by `gamma` every `step_epochs` epochs."""
    return gamma ** (epoch // step_epochs)


def cosine_factor(epoch: int, total_epochs: int) -> float:
    """Half a cosine from 1 at epoch 0 to 0 at `total_epochs`."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, total_epochs) / total_epochs))


class LearningRateSchedule:
    """Sets the lr of an optimizer at the start of every epoch.

    linear/step/cosine are pure functions of the epoch; plateau keeps its own state (it multiplies
    the rate by `gamma` when the epoch's mean generator loss has not improved by 1% for 5
    epochs) and that state is saved with the checkpoint. `gamma` None is the policy's default.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, policy: str, initial_lr: float, epochs: int,
                 epochs_decay: int, step_epochs: int = 50, gamma: float | None = None):
        if policy not in LR_POLICIES:
            raise ConfigError(f"unknown --lr-policy '{policy}'; choose one of {', '.join(LR_POLICIES)}")
        if gamma is None:
            gamma = LR_GAMMA_DEFAULTS.get(policy, 1.0)
        self.optimizer = optimizer
        self.policy = policy
        self.initial_lr = initial_lr
        self.epochs, self.epochs_decay = epochs, epochs_decay
        self.step_epochs, self.gamma = step_epochs, gamma
        self.plateau = None
        if policy == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=gamma, threshold=0.01, patience=5)

    def factor(self, epoch: int) -> float:
        if self.policy == "linear":
            return linear_factor(epoch, self.epochs, self.epochs_decay)
        if self.policy == "step":
            return step_factor(epoch, self.step_epochs, self.gamma)
        if self.policy == "cosine":
            return cosine_factor(epoch, self.epochs + self.epochs_decay)
        raise AssertionError("plateau has no closed form")

    def start_epoch(self, epoch: int) -> None:
        if self.plateau is None:
            for group in self.optimizer.param_groups:
                lr = self.initial_lr * self.factor(epoch)
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr)  # in place: a captured training step reads this very tensor
                else:
                    group["lr"] = lr

    def end_epoch(self, mean_generator_loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(mean_generator_loss)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"plateau": self.plateau.state_dict() if self.plateau else {}}

    def load_state_dict(self, state: dict) -> None:
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
