"""One reading of typed numbers for the whole site; ambiguous input is refused, never guessed."""
from __future__ import annotations

import pytest

from app import numbers
from app.numbers import NumberFormatError, parse_number


@pytest.fixture()
def comma_site():
    numbers.configure(",")
    yield
    numbers.configure(".")


@pytest.mark.parametrize("text, value", [
    ("37", 37.0), ("37.5", 37.5), ("-180", -180.0), ("+4.5", 4.5), (".5", 0.5), ("0.500", 0.5),
    ("1.2e10", 1.2e10), ("1.2E10", 1.2e10), ("1.2x10^10", 1.2e10), ("1.2 x 10^10", 1.2e10), ("1.2X10^9", 1.2e9),
    ("1.2×10^9", 1.2e9), ("1.2*10^-3", 1.2e-3), ("1,500,000", 1.5e6), ("1,234.5", 1234.5),
    ("1,200,000,000", 1.2e9), (" 2.0 ", 2.0),
])
def test_a_point_site_reads_decimals_with_a_point_and_full_thousands_groups(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text, words", [
    ("1,500", "could be read as 1.500 or 1500"),  # a thousand and a half, or one and a half?
    ("37,5", "writes decimals with '.'"),
    ("1,5x10^9", "writes decimals with '.'"),  # once read as 1.5 x 10^10: ten times too many cells
    ("1,50,000", "without separators"),
    ("1.2.3", "is not a number"),
    ("12a", "is not a number"),
    ("", "Enter a number"),
    ("1e999", "not a finite number"),
    ("1x10^9999999", "not a finite number"),
])
def test_ambiguous_or_malformed_numbers_are_refused_with_how_to_write_them(text, words):
    with pytest.raises(NumberFormatError, match=words.replace(".", r"\.").replace("(", r"\(")):
        parse_number(text)


def test_json_numbers_pass_through_but_booleans_and_nan_do_not():
    assert parse_number(5) == 5.0 and parse_number(2.5) == 2.5
    for value in (True, float("nan"), float("inf")):
        with pytest.raises(NumberFormatError):
            parse_number(value)


def test_a_comma_site_reads_the_mirror_image(comma_site):
    assert parse_number("37,5") == 37.5
    assert parse_number("1,2x10^9") == pytest.approx(1.2e9)
    assert parse_number("1.500.000") == 1.5e6
    assert parse_number("1.234,5") == 1234.5
    assert numbers.example() == "37,5"
    with pytest.raises(NumberFormatError, match="could be read as 1,500 or 1500"):
        parse_number("1.500")
    with pytest.raises(NumberFormatError, match="writes decimals with ','"):
        parse_number("37.5")


def test_only_a_point_or_a_comma_can_be_the_decimal_separator():
    with pytest.raises(ValueError):
        numbers.configure(";")
    assert numbers.decimal_separator() == "."
