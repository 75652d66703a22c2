"""The two translation directions, named once.

A CycleGAN run learns both: A→B applies the generator the weights call `G_AB` (the paper's G),
B→A applies `G_BA` (the paper's F). A pix2pix run, and a one-direction model, learns A→B only.
`Direction` is a string as well as an enum member, so `Direction.A_TO_B == "AtoB"`, it is a key
of dicts keyed by the plain string, and JSON files, flags and metric names ("kid_AtoB") keep the
spelling they have always had.
"""
from __future__ import annotations

from enum import Enum

from cyclegan.errors import ConfigError


class Direction(str, Enum):
    A_TO_B = "AtoB"
    B_TO_A = "BtoA"

    # A member hashes, prints and formats as its value, so it is interchangeable with the string.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__

    @classmethod
    def parse(cls, value: str | Direction) -> Direction:
        """The direction a user or a file names ("AtoB"); ConfigError naming the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown direction {value!r}; choose {' or '.join(DIRECTIONS)}") from None

    @property
    def source(self) -> str:
        """The domain translated from: "A" for AtoB."""
        return self.value[0]

    @property
    def target(self) -> str:
        """The domain translated into: "B" for AtoB."""
        return self.value[-1]

    @property
    def generator(self) -> str:
        """The generator applying this direction, as the weights name it ("G_AB")."""
        return f"G_{self.source}{self.target}"

    @property
    def discriminator(self) -> str:
        """The discriminator judging this direction's output: D_B judges A→B (it tells real B
        images from translated ones)."""
        return f"D_{self.target}"

    @property
    def label(self) -> str:
        """For people: "A to B"."""
        return f"{self.source} to {self.target}"

    @property
    def reverse(self) -> Direction:
        return Direction.B_TO_A if self is Direction.A_TO_B else Direction.A_TO_B


# The plain strings, for argparse choices and config validation.
DIRECTIONS: tuple[str, ...] = tuple(direction.value for direction in Direction)
