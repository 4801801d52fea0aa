"""ISBT 128 DIN: structure, ISO 7064 Mod 37-2 check character, scanned and keyed forms."""
from __future__ import annotations

import random

import pytest

from batches.sourcing.isbt128 import (
    CHECK_ALPHABET,
    DinError,
    check_character,
    format_eye_readable,
    parse_din,
    parse_product_code,
)

FACILITY_FIRST = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"


def reference_check_character(din: str) -> str:
    """Mod 37-2 written out independently, as in ISO 7064: the weighted sum of 2^(n-i) per position."""
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in din]
    weighted = sum(v * pow(2, len(values) - i, 37) for i, v in enumerate(values)) % 37
    return CHECK_ALPHABET[(38 - weighted) % 37]


def generated_dins(count: int = 500) -> list[str]:
    rng = random.Random(1271)
    return [rng.choice(FACILITY_FIRST) + f"{rng.randrange(10000):04d}{rng.randrange(100):02d}{rng.randrange(10**6):06d}"
            for _ in range(count)]


def test_worked_example_from_the_domain_reference():
    assert check_character("G123498654321") == "H"
    assert parse_din("G123498654321H").din == "G123498654321"
    assert format_eye_readable("G123498654321") == "G1234 98 654321 H"


@pytest.mark.parametrize("din", generated_dins())
def test_generated_dins_match_an_independent_computation_and_round_trip(din):
    check = check_character(din)
    assert check == reference_check_character(din)
    keyed = parse_din(din + check)
    assert (keyed.din, keyed.entry, keyed.flags) == (din, "keyed", None)
    scanned = parse_din(f"={din}07")
    assert (scanned.din, scanned.entry, scanned.flags) == (din, "scanned", "07")


@pytest.mark.parametrize("din", generated_dins(100))
def test_every_wrong_check_character_is_refused(din):
    right = check_character(din)
    for wrong in CHECK_ALPHABET.replace(right, ""):
        with pytest.raises(DinError, match="check character .* does not match"):
            parse_din(din + wrong)


def test_a_single_mistyped_character_is_caught():
    din = "G123498654321"
    typo = "G123489654321"  # two digits swapped
    with pytest.raises(DinError, match="mistyped"):
        parse_din(typo + check_character(din))


def test_keyed_forms_accept_lower_case_and_the_printed_spacing():
    assert parse_din(" g1234 98 654321 h ").din == "G123498654321"
    assert parse_din("G1234-98-654321-H").din == "G123498654321"


@pytest.mark.parametrize("text", ["O123498654321", "0123498654321", "GA23498654321", "*123498654321"])
def test_bad_facility_codes_are_refused(text):
    with pytest.raises(DinError, match="facility code"):
        parse_din(f"={text}00")


@pytest.mark.parametrize("text, message", [
    ("", "Scan the DIN"),
    ("G123498654321", "check character after"),
    ("G12349865432", "13 characters plus"),
    ("G12349865432HH1", "13 characters plus"),
    ("=G123498654321", "not complete"),
    ("=G1234986543210", "not complete"),
    ("=G123498654321AB", "not complete"),
    ("G1234986543A1H", "not a valid DIN"),
    ("G123498654321!", "cannot be a check character"),
])
def test_malformed_dins_are_refused_with_a_message(text, message):
    with pytest.raises(DinError, match=message):
        parse_din(text)


def test_product_codes_scanned_and_keyed():
    assert parse_product_code("=<S1362V00") == "S1362V00"
    assert parse_product_code("s1362") == "S1362"
    with pytest.raises(DinError, match="letter and 4 digits"):
        parse_product_code("1362")
