"""Barcodes on labels: Code 128 and ECC200 DataMatrix drawings from reportlab.graphics.barcode.

reportlab's ``ECC200DataMatrix`` encodes in C40 mode with two faults that make a scanner read something
other than what was printed: a final C40 triplet is filled with the value 0 (Shift 1), so an identifier
whose length leaves one value over is read back with a NUL appended ("G123498654321" scans as
"G123498654321\\x00"); and the characters ':' to '@' are given set-2 values 25 to 31 instead of 15 to 21,
so an identifier with '=' (the ISBT 128 data identifier) does not decode at all. ``DataMatrix`` below
encodes in ASCII mode instead (one codeword per character, two digits in one codeword), which is exact
for every 8-bit character and plenty for label identifiers, and pads per ISO/IEC 16022 (129, then the
253-state randomised pad).
"""
from __future__ import annotations

from reportlab.graphics.barcode.code128 import Code128
from reportlab.graphics.barcode.ecc200datamatrix import ECC200DataMatrix
from reportlab.pdfgen.canvas import Canvas


class DataMatrix(ECC200DataMatrix):
    """An ECC200 DataMatrix (44 x 44 modules, 144 data codewords) that scans back exactly its value."""

    def _encode_ascii(self, value: str) -> list[int]:
        codewords: list[int] = []
        i = 0
        while i < len(value):
            pair = value[i:i + 2]
            if len(pair) == 2 and pair.isdigit() and pair.isascii():
                codewords.append(130 + int(pair))
                i += 2
                continue
            o = ord(value[i])
            if o > 255:
                raise ValueError(f"{value[i]!r} cannot be encoded in a DataMatrix")
            codewords += [235, o - 127] if o > 127 else [o + 1]  # 235: upper shift to extended ASCII
            i += 1
        if len(codewords) > self.cw_data:
            raise ValueError("Too much data to fit into a data matrix of this size")
        if len(codewords) < self.cw_data:
            codewords.append(129)  # the first pad is plain
            while len(codewords) < self.cw_data:
                pseudo = ((149 * (len(codewords) + 1)) % 253) + 1
                pad = 129 + pseudo
                codewords.append(pad if pad <= 254 else pad - 254)
        return codewords

    def encode(self):  # noqa: ANN201 - reportlab's signature
        if hasattr(self, "encoded"):
            return self.encoded
        encoded = self._encode_ascii(self.validated)
        encoded += self._get_reed_solomon_code(encoded, self.cw_ecc)
        matrix = self._create_matrix(encoded)
        regions = self._create_data_regions(matrix)
        wrapped = self._wrap_data_regions_with_finders(regions)
        self.encoded = self._merge_data_regions(wrapped)
        self.encoded.reverse()  # PDF coordinates start at the bottom left
        return self.encoded


def draw_datamatrix(canvas: Canvas, value: str, x: float, y: float, size: float) -> None:
    """Draw a DataMatrix of ``value``, ``size`` points square, with its lower left corner at (x, y)."""
    code = DataMatrix(value=value, barWidth=size / 44)
    code.validate()
    code.encode()
    code.computeSize()
    code.x = code.y = 0  # reportlab's draw() offsets by these
    code.drawOn(canvas, x, y)


def code128(value: str, width: float, height: float) -> Code128:
    """A Code 128 barcode of ``value`` at most ``width`` points wide (quiet zones included)."""
    probe = Code128(value, barWidth=1.0, barHeight=height, humanReadable=False)
    bar_width = min(1.2, width / probe.width)
    return Code128(value, barWidth=bar_width, barHeight=height, humanReadable=False)
