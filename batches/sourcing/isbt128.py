"""ISBT 128 identifiers of a cord blood unit: the Donation Identification Number (DIN) and product code.

A DIN is 13 characters: facility code (a letter A-N or P-Z, or a digit 1-9, then 4 digits), 2-digit year
and 6-digit sequence. A scanned barcode carries a leading ``=`` data identifier and 2 flag characters; an
eye-readable label adds a boxed check character (ISO 7064 Mod 37-2), which a keyed DIN must include so
that a typing error is caught.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CHECK_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
# [0-9], never \d: \d also matches the digits of other scripts (an Arabic-Indic three, say)
DIN_PATTERN = re.compile(r"[A-NP-Z1-9][0-9]{4}[0-9]{2}[0-9]{6}")
SCANNED_PATTERN = re.compile(r"=(\S{13})([0-9]{2})")
PRODUCT_CODE_PATTERN = re.compile(r"[A-Z][0-9]{4}(?:[0-9A-Z]{3})?")
# Flag values 60-96 (type 3) carry the DIN's Mod 37-2 check character as 60 + its value
CHECK_FLAGS = range(60, 97)
DIN_EXAMPLE = "=G12349865432100 (scanned) or G123498654321H (keyed with the check character)"


class DinError(ValueError):
    """A DIN that cannot be accepted; the message is meant for the operator."""


@dataclass(frozen=True)
class ParsedDin:
    """A validated DIN and how it was entered."""

    din: str
    flags: str | None
    entry: str  # "scanned" or "keyed"

    @property
    def check_character(self) -> str:
        return check_character(self.din)


def _value(char: str) -> int:
    return CHECK_ALPHABET.index(char)


def check_character(din: str) -> str:
    """The ISO 7064 Mod 37-2 check character over the 13 DIN characters."""
    remainder = 0
    for char in din.upper():
        if char not in CHECK_ALPHABET[:36]:
            raise DinError(f"'{char}' cannot appear in a DIN.")
        remainder = (2 * remainder + _value(char)) % 37
    return CHECK_ALPHABET[(1 - 2 * remainder) % 37]


def format_eye_readable(din: str) -> str:
    """The DIN as printed under the barcode: 'G1234 98 654321 H'."""
    return f"{din[:5]} {din[5:7]} {din[7:]} {check_character(din)}"


def _check_structure(din: str) -> None:
    if DIN_PATTERN.fullmatch(din):
        return
    first = din[:1]
    if not re.fullmatch(r"[A-NP-Z1-9]", first) or not re.fullmatch(r"[0-9]{4}", din[1:5]):
        raise DinError(f"'{din[:5]}' is not a valid facility code: it must be a letter (A-N or P-Z, not O) "
                       "or a digit 1-9, followed by 4 digits.")
    raise DinError(f"'{din}' is not a valid DIN: after the 5-character facility code come a 2-digit year "
                   "and a 6-digit sequence number.")


def parse_din(text: str) -> ParsedDin:
    """Validate a DIN as scanned (``=`` + 13 characters + 2 flags) or keyed with its check character."""
    raw = (text or "").strip().upper()
    if not raw:
        raise DinError("Scan the DIN barcode or type the DIN with its check character.")
    if not raw.isascii():
        raise DinError("A DIN holds only the letters A-Z and the digits 0-9; this one holds other characters "
                       "(a digit of another script or a look-alike letter). Scan it again or type it.")
    if raw.startswith("="):
        match = SCANNED_PATTERN.fullmatch(raw)
        if not match:
            raise DinError("The scanned DIN is not complete: a DIN barcode holds '=', 13 characters and "
                           "2 flag digits. Scan it again.")
        din, flags = match.group(1), match.group(2)
        _check_structure(din)
        if int(flags) in CHECK_FLAGS and CHECK_ALPHABET[int(flags) - 60] != check_character(din):
            raise DinError(f"The scanned DIN {din} does not match the check character in its flags ({flags}): "
                           "the barcode was misread or is damaged. Scan it again or type the DIN with its "
                           "boxed check character.")
        return ParsedDin(din, flags, "scanned")
    keyed = re.sub(r"[\s-]", "", raw)
    if len(keyed) == 13:
        _check_structure(keyed)
        raise DinError("Type the boxed check character after the 13 DIN characters, so that a typing "
                       "error can be caught.")
    if len(keyed) != 14:
        raise DinError(f"A DIN has 13 characters plus the boxed check character; '{keyed}' has "
                       f"{len(keyed)}.")
    din, given = keyed[:13], keyed[13]
    _check_structure(din)
    if given not in CHECK_ALPHABET:
        raise DinError(f"'{given}' cannot be a check character (0-9, A-Z or *).")
    if check_character(din) != given:
        raise DinError(f"The check character '{given}' does not match DIN {din}: one of the characters was "
                       "mistyped. Compare each character with the label, or scan the barcode.")
    return ParsedDin(din, None, "keyed")


def parse_product_code(text: str) -> str:
    """An ISBT 128 product code, scanned (``=<`` prefix) or keyed: 5 characters, or 8 with donation type
    and division."""
    raw = re.sub(r"\s", "", (text or "").upper())
    if not raw.isascii():
        raise DinError("A product code holds only the letters A-Z and the digits 0-9.")
    if raw.startswith("=<"):
        raw = raw[2:]
    if not PRODUCT_CODE_PATTERN.fullmatch(raw):
        raise DinError("A product code is a letter and 4 digits (e.g. S1362), optionally followed by the "
                       "donation type and division (e.g. S1362V00).")
    return raw
