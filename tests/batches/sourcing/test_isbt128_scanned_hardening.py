"""Scanned DINs: ASCII digits only, and type 3 flags (60-96) must carry the DIN's own check character."""
from __future__ import annotations

import pytest

from batches.sourcing.isbt128 import CHECK_ALPHABET, DinError, check_character, parse_din, parse_product_code
from tests.batches.sourcing.conftest import keyed, new_din, scanned


def check_flags(din: str) -> str:
    return f"{60 + CHECK_ALPHABET.index(check_character(din)):02d}"


def test_a_digit_of_another_script_is_refused_scanned_and_keyed():
    with pytest.raises(DinError, match="only the letters A-Z and the digits 0-9"):
        parse_din("=C342026\u06636203000")
    din = new_din()
    with pytest.raises(DinError):
        parse_din(scanned(din[:8] + "\u0663" + din[9:]))
    with pytest.raises(DinError):
        parse_din(keyed(din)[:-2] + "\u0663" + keyed(din)[-1])
    with pytest.raises(DinError):
        parse_din(scanned(din, flags="0\u0663"))
    with pytest.raises(DinError):
        parse_product_code("S136\u0662")


def test_type_3_flags_carry_the_check_character():
    for n in range(40):
        din = new_din()
        assert parse_din(scanned(din, check_flags(din))).din == din
        wrong = f"{60 + (CHECK_ALPHABET.index(check_character(din)) + 1 + n % 36) % 37:02d}"
        with pytest.raises(DinError, match="check character in its flags"):
            parse_din(scanned(din, wrong))


def test_flags_outside_type_3_carry_no_check_character():
    din = new_din()
    for flags in ("00", "01", "59", "97"):
        assert parse_din(scanned(din, flags)).flags == flags
