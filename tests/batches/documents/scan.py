"""Read printed barcodes back: render a PDF page to an image and decode it as a scanner would."""
from __future__ import annotations

import pypdfium2
import zxingcpp


def scan_page(pdf: bytes, page: int = 0, scale: float = 4) -> dict[str, str]:
    """{barcode format: decoded text} of every barcode found on the page."""
    image = pypdfium2.PdfDocument(pdf)[page].render(scale=scale).to_pil()
    return {str(found.format): found.text for found in zxingcpp.read_barcodes(image)}
