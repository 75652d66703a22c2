"""The two translation directions: their domains, networks, labels and spellings."""
import json

import pytest

from cyclegan.directions import DIRECTIONS, Direction
from cyclegan.errors import ConfigError


def test_each_direction_names_its_domains_networks_and_label():
    assert [(d.source, d.target, d.generator, d.discriminator, d.label) for d in Direction] == [
        ("A", "B", "G_AB", "D_B", "A to B"),
        ("B", "A", "G_BA", "D_A", "B to A")]
    assert Direction.A_TO_B.reverse is Direction.B_TO_A and Direction.B_TO_A.reverse is Direction.A_TO_B


def test_a_direction_reads_and_writes_as_its_plain_spelling():
    assert DIRECTIONS == ("AtoB", "BtoA")
    assert Direction.parse("BtoA") is Direction.B_TO_A and Direction.parse(Direction.A_TO_B) is Direction.A_TO_B
    assert f"kid_{Direction.A_TO_B}_std" == "kid_AtoB_std" and str(Direction.B_TO_A) == "BtoA"
    assert {"AtoB": 1}[Direction.A_TO_B] == 1 and Direction.B_TO_A in {"BtoA": 2}
    assert json.dumps({Direction.A_TO_B: Direction.B_TO_A}) == '{"AtoB": "BtoA"}'


def test_an_unknown_direction_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown direction 'AtoC'; choose AtoB or BtoA"):
        Direction.parse("AtoC")
