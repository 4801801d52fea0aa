"""Charts drawn once, as reportlab Drawings: the same definition is shown inline on a page as SVG and
placed in a PDF as a flowable, so the screen and the archived record cannot disagree.

Generic pieces only (axes, ticks, lines, bands, shaded periods, limit lines, markers, a legend in
words); the domain packages decide what to draw. Every mark that carries meaning has a word next to it
or in the legend, never colour alone. Text is at least SCREEN_FONT_SIZE units high, and pages show a
drawing at its own size or larger, so chart text on a tablet is never under the 14 px floor."""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Sequence
from xml.dom import minidom

from markupsafe import Markup
from reportlab.graphics import renderPDF, renderSVG
from reportlab.graphics.shapes import Drawing, Group, Line, PolyLine, Polygon, Rect, String
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

from app.web import format_number

FONT = "Helvetica"
SCREEN_FONT_SIZE = 14  # the tablet text floor (tests/browser/audit.py), in drawing units
SVG_FONT_FAMILY = "Helvetica, Arial, 'Liberation Sans', sans-serif"  # metric-compatible with FONT

INK = colors.HexColor("#202124")
MUTED = colors.HexColor("#3c4043")
GRID = colors.HexColor("#e0e3e7")
FRAME = colors.HexColor("#9aa0a6")

# name: (fill, stroke, dash) of each kind of mark; legends and marks share them
STYLES: dict[str, tuple[str | None, str | None, tuple[float, ...] | None]] = {
    "band": ("#c6dafc", "#8ab4f8", None),
    "mean": (None, "#0b57d0", None),
    "actual": (None, "#0b57d0", None),
    "expected": (None, "#5f6368", (6, 4)),
    "limit": (None, "#b3261e", (6, 4)),
    "alarm": ("#fbe0de", "#b3261e", None),
    "gap": ("#f1f3f4", "#5f6368", (3, 3)),
    "green": ("#188038", "#0d652d", None),
    "amber": ("#e37400", "#8a4600", None),
    "red": ("#b3261e", "#601410", None),
}
MARKER_SHAPES = {"green": "circle", "amber": "triangle", "red": "square"}


def _colour(value: str | None) -> colors.Color | None:
    return colors.HexColor(value) if value else None


@dataclass
class LegendItem:
    """One entry of a chart's legend: a swatch drawn like the mark it explains, and its words."""

    style: str
    label: str
    swatch: str = "line"  # line, area, hatch, circle, triangle, square


@dataclass
class Tick:
    value: float
    label: str


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def value_ticks(low: float, high: float, count: int = 5) -> list[Tick]:
    """Ticks for a linear value axis, labelled by the one number formatter."""
    return [Tick(v, format_number(v)) for v in nice_ticks(low, high, count)]


def power_ticks(low_exp: int, high_exp: int) -> list[Tick]:
    """Ticks at each power of ten of a log axis, written as on every page ('10^9')."""
    return [Tick(10.0 ** e, f"10^{e}") for e in range(low_exp, high_exp + 1)]


@dataclass
class Chart:
    """A chart laid out on a Drawing: a plot area with ticks, captions and a legend, and methods that add
    marks in plot coordinates. Add shaded periods first, then bands, lines and markers on top."""

    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_ticks: Sequence[Tick]
    y_ticks: Sequence[Tick]
    x_caption: str
    y_caption: str
    legend: Sequence[LegendItem] = ()
    log_y: bool = False
    font_size: float = SCREEN_FONT_SIZE
    marks_lane: bool = False  # a row above the plot for the words naming shaded periods
    drawing: Drawing = field(init=False)

    def __post_init__(self) -> None:
        fs = self.font_size
        self.drawing = Drawing(self.width, self.height)
        self.drawing.add(Rect(0, 0, self.width, self.height, fillColor=colors.white, strokeColor=None))
        self._legend_rows = self._layout_legend()
        widest = max((stringWidth(t.label, FONT, fs) for t in self.y_ticks), default=fs * 2)
        self.left = widest + fs * 0.8
        self.right = self.width - fs * 0.6
        legend_h = len(self._legend_rows) * fs * 1.6
        self.bottom = legend_h + fs * 3.4  # tick labels and the x caption under the plot
        self.top = self.height - fs * 1.5 - (fs * 1.5 if self.marks_lane else 0)  # the y caption above
        if self.right - self.left < fs * 4 or self.top - self.bottom < fs * 3:
            raise ValueError("The chart is too small for its text.")
        self._lane: list[tuple[float, float]] = []
        self._draw_frame()
        self._draw_legend()

    # --- coordinates ---------------------------------------------------------------------------
    def x(self, value: float) -> float:
        lo, hi = self.x_range
        share = (min(max(value, lo), hi) - lo) / (hi - lo) if hi > lo else 0.0
        return self.left + share * (self.right - self.left)

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        if self.log_y:
            value, lo, hi = (math.log10(max(v, 1e-300)) for v in (value, lo, hi))
        share = (min(max(value, lo), hi) - lo) / (hi - lo) if hi > lo else 0.5
        return self.bottom + share * (self.top - self.bottom)

    # --- marks ---------------------------------------------------------------------------------
    def period(self, start: float, end: float, style: str, word: str) -> None:
        """A shaded period across the plot's height (an alarm, a gap), named by a word above the plot."""
        fill, stroke, dash = STYLES[style]
        x0, x1 = self.x(start), self.x(end)
        x1 = max(x1, x0 + 2)
        self.drawing.add(Rect(x0, self.bottom, x1 - x0, self.top - self.bottom, fillColor=_colour(fill),
                              strokeColor=_colour(stroke), strokeWidth=1, strokeDashArray=dash))
        if style == "gap":
            self._hatch(x0, x1, _colour(stroke))
        if self.marks_lane:
            width = stringWidth(word, FONT, self.font_size)
            at = max(min(x0, self.right - width), self.left)
            room = self.font_size * 0.4
            if all(at + width + room < a or at > b + room for a, b in self._lane):  # words never overlap
                self.drawing.add(String(at, self.top + self.font_size * 0.45, word, fontName=FONT,
                                        fontSize=self.font_size, fillColor=_colour(stroke)))
                self._lane.append((at, at + width))

    def _hatch(self, x0: float, x1: float, colour: colors.Color | None) -> None:
        """Diagonal lines inside [x0, x1] across the plot, so a gap differs from an alarm without colour."""
        y0, y1, step = self.bottom, self.top, 10.0
        h = y1 - y0
        c = x0 - h
        while c < x1:
            # the line from (c, y0) to (c + h, y1), cut to the period's edges
            a, b = max(c, x0), min(c + h, x1)
            if b > a:
                self.drawing.add(Line(a, y0 + (a - c), b, y0 + (b - c), strokeColor=colour, strokeWidth=0.8))
            c += step

    def limit(self, value: float, word: str) -> None:
        """A dashed horizontal limit line with its words at the right end."""
        _, stroke, dash = STYLES["limit"]
        y = self.y(value)
        self.drawing.add(Line(self.left, y, self.right, y, strokeColor=_colour(stroke), strokeWidth=1.5,
                              strokeDashArray=dash))
        above = y + self.font_size * 0.35 if y + self.font_size * 1.2 < self.top else y - self.font_size * 1.1
        self.drawing.add(String(self.right - 4, above, word, fontName=FONT, fontSize=self.font_size,
                                fillColor=_colour(stroke), textAnchor="end"))

    def band(self, upper: Sequence[tuple[float, float]], lower: Sequence[tuple[float, float]],
             style: str = "band") -> None:
        """A filled band between two runs of points (min to max)."""
        fill, stroke, _ = STYLES[style]
        points: list[float] = []
        for px, py in list(upper) + list(reversed(lower)):
            points += [self.x(px), self.y(py)]
        if len(points) >= 4:
            self.drawing.add(Polygon(points, fillColor=_colour(fill), strokeColor=_colour(stroke),
                                     strokeWidth=0.5))

    def line(self, points: Sequence[tuple[float, float]], style: str, width: float = 2.0) -> None:
        _, stroke, dash = STYLES[style]
        flat: list[float] = []
        for px, py in points:
            flat += [self.x(px), self.y(py)]
        if len(flat) >= 4:
            self.drawing.add(PolyLine(flat, strokeColor=_colour(stroke), strokeWidth=width, strokeDashArray=dash))
        elif len(flat) == 2:  # a single bucket: a short tick, so it is not lost
            self.drawing.add(Line(flat[0] - 2, flat[1], flat[0] + 2, flat[1], strokeColor=_colour(stroke),
                                  strokeWidth=width))

    def marker(self, px: float, py: float, style: str) -> None:
        """A point whose shape says its class (circle, triangle, square) as well as its colour."""
        self.drawing.add(_marker_shape(self.x(px), self.y(py), style, MARKER_SHAPES.get(style, "circle"),
                                       self.font_size * 0.43))

    def message(self, text: str) -> None:
        """Words across the middle of the plot (e.g. that there is no data)."""
        self.drawing.add(String((self.left + self.right) / 2, (self.bottom + self.top) / 2, text, fontName=FONT,
                                fontSize=self.font_size * 1.15, fillColor=MUTED, textAnchor="middle"))

    # --- frame and legend ----------------------------------------------------------------------
    def _draw_frame(self) -> None:
        fs, d = self.font_size, self.drawing
        d.add(Rect(self.left, self.bottom, self.right - self.left, self.top - self.bottom, fillColor=colors.white,
                   strokeColor=FRAME, strokeWidth=1))
        for tick in self.y_ticks:
            y = self.y(tick.value)
            d.add(Line(self.left, y, self.right, y, strokeColor=GRID, strokeWidth=1))
            d.add(String(self.left - fs * 0.4, y - fs * 0.35, tick.label, fontName=FONT, fontSize=fs,
                         fillColor=MUTED, textAnchor="end"))
        last = len(self.x_ticks) - 1
        for i, tick in enumerate(self.x_ticks):
            x = self.x(tick.value)
            d.add(Line(x, self.bottom, x, self.bottom - fs * 0.3, strokeColor=FRAME, strokeWidth=1))
            width = stringWidth(tick.label, FONT, fs)
            at = min(max(x - width / 2, 0.0), self.width - width)  # the end labels stay inside the drawing
            if i == last and last > 0:
                at = min(at, self.width - width)
            d.add(String(at, self.bottom - fs * 1.3, tick.label, fontName=FONT, fontSize=fs, fillColor=MUTED))
        d.add(String((self.left + self.right) / 2, self.bottom - fs * 2.75, self.x_caption, fontName=FONT,
                     fontSize=fs, fillColor=INK, textAnchor="middle"))
        d.add(String(self.left, self.height - fs * 1.15, self.y_caption, fontName=FONT, fontSize=fs, fillColor=INK))

    def _layout_legend(self) -> list[list[tuple[LegendItem, float]]]:
        fs = self.font_size
        rows: list[list[tuple[LegendItem, float]]] = [[]]
        used = 0.0
        for item in self.legend:
            width = fs * 2.4 + stringWidth(item.label, FONT, fs) + fs * 1.2
            if rows[-1] and used + width > self.width - fs:
                rows.append([])
                used = 0.0
            rows[-1].append((item, width))
            used += width
        return [r for r in rows if r]

    def _draw_legend(self) -> None:
        fs, d = self.font_size, self.drawing
        for row_no, row in enumerate(self._legend_rows):
            y = (len(self._legend_rows) - row_no - 1) * fs * 1.6 + fs * 0.5
            x = fs * 0.5
            for item, width in row:
                d.add(_swatch(item, x, y, fs))
                d.add(String(x + fs * 2.4, y, item.label, fontName=FONT, fontSize=fs, fillColor=INK))
                x += width


def _marker_shape(x: float, y: float, style: str, shape: str, size: float) -> Polygon | Rect:
    fill, stroke, _ = STYLES[style]
    kw = dict(fillColor=_colour(fill), strokeColor=_colour(stroke), strokeWidth=1)
    if shape == "square":
        return Rect(x - size * 0.85, y - size * 0.85, size * 1.7, size * 1.7, **kw)
    if shape == "triangle":
        return Polygon([x, y + size * 1.1, x - size, y - size * 0.7, x + size, y - size * 0.7], **kw)
    steps = 16
    return Polygon([v for i in range(steps) for v in (x + size * math.cos(2 * math.pi * i / steps),
                                                       y + size * math.sin(2 * math.pi * i / steps))], **kw)


def _swatch(item: LegendItem, x: float, y: float, fs: float) -> Group:
    fill, stroke, dash = STYLES[item.style]
    g = Group()
    mid = y + fs * 0.35
    if item.swatch == "line":
        g.add(Line(x, mid, x + fs * 1.9, mid, strokeColor=_colour(stroke), strokeWidth=2.5, strokeDashArray=dash))
    elif item.swatch in ("area", "hatch"):
        g.add(Rect(x, y - fs * 0.15, fs * 1.9, fs * 0.95, fillColor=_colour(fill), strokeColor=_colour(stroke),
                   strokeWidth=1, strokeDashArray=dash))
        if item.swatch == "hatch":
            for k in range(0, int(fs * 1.9), 6):
                g.add(Line(x + k, y - fs * 0.15, x + min(k + fs * 0.95, fs * 1.9), y - fs * 0.15 + min(fs * 0.95, fs * 1.9 - k),
                           strokeColor=_colour(stroke), strokeWidth=0.8))
    else:
        g.add(_marker_shape(x + fs * 0.95, mid, item.style, item.swatch, fs * 0.4))
    return g


# --- rendering -----------------------------------------------------------------------------------

def drawing_strings(drawing: Drawing) -> list[str]:
    """Every text of a drawing, in drawing order (what a reader of the SVG or the PDF sees)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, String):
            found.append(node.text)
        for child in getattr(node, "contents", []) or []:
            walk(child)

    walk(drawing)
    return found


_PRESENTATION = {"fill", "fill-rule", "fill-opacity", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin",
                 "stroke-dasharray", "stroke-opacity", "font-family", "font-size", "clip-path"}


def drawing_to_svg(drawing: Drawing, *, title: str, description: str = "", css_class: str = "chart") -> Markup:
    """The drawing as an inline SVG element for a page: labelled for assistive technology (role img, title,
    description), styles as presentation attributes (the pages' CSP allows no inline style), ids unique
    on the page, no XML prolog. Safe to insert unescaped: every text comes through the XML writer."""
    return Markup(_svg_element(drawing, title, description, css_class).toxml())


def drawing_to_svg_document(drawing: Drawing, *, title: str, description: str = "") -> str:
    """The drawing as a standalone SVG file (image/svg+xml)."""
    return '<?xml version="1.0" encoding="utf-8"?>\n' + _svg_element(drawing, title, description, "chart").toxml()


def drawing_to_pdf(drawing: Drawing) -> bytes:
    """A one-page PDF of exactly the drawing (for downloads and tests; records place the Drawing itself)."""
    return renderPDF.drawToString(drawing)


def _svg_element(drawing: Drawing, title: str, description: str, css_class: str) -> minidom.Element:
    raw = renderSVG.drawToString(drawing, useClip=True)
    doc = minidom.parseString(raw)
    svg = doc.documentElement
    prefix = "chart-" + uuid.uuid4().hex[:10]
    for node in svg.getElementsByTagName("*"):
        style = node.getAttribute("style")
        if style:
            node.removeAttribute("style")
            for declaration in style.split(";"):
                name, _, value = declaration.partition(":")
                name, value = name.strip(), value.strip()
                if name in _PRESENTATION and value:
                    if value == "None":
                        value = "none"
                    if name == "font-family":
                        value = SVG_FONT_FAMILY
                    node.setAttribute(name, value)
        if node.hasAttribute("id"):
            node.setAttribute("id", f"{prefix}-{node.getAttribute('id')}")
        if node.hasAttribute("clip"):
            node.removeAttribute("clip")
        if node.hasAttribute("transform") and node.getAttribute("transform") == "":
            node.removeAttribute("transform")
    for child in list(svg.childNodes):
        if child.nodeType == child.COMMENT_NODE or (child.nodeType == child.ELEMENT_NODE
                                                    and child.tagName in ("title", "desc")):
            svg.removeChild(child)
    for node in svg.getElementsByTagName("*"):
        for child in list(node.childNodes):
            if child.nodeType == child.COMMENT_NODE:
                node.removeChild(child)
    first = svg.firstChild
    title_el = doc.createElement("title")
    title_el.setAttribute("id", f"{prefix}-title")
    title_el.appendChild(doc.createTextNode(title))
    svg.insertBefore(title_el, first)
    labelled = f"{prefix}-title"
    if description:
        desc_el = doc.createElement("desc")
        desc_el.setAttribute("id", f"{prefix}-desc")
        desc_el.appendChild(doc.createTextNode(description))
        svg.insertBefore(desc_el, first)
        svg.setAttribute("aria-describedby", f"{prefix}-desc")
    for name in ("version", "xmlns:xlink", "preserveAspectRatio"):
        if svg.hasAttribute(name):
            svg.removeAttribute(name)
    svg.setAttribute("role", "img")
    svg.setAttribute("aria-labelledby", labelled)
    svg.setAttribute("class", css_class)
    svg.setAttribute("font-family", SVG_FONT_FAMILY)
    return svg


def fit_width(drawing: Drawing, width: float) -> Drawing:
    """The same drawing scaled to a width (e.g. a PDF frame), keeping its proportions."""
    factor = width / drawing.width
    scaled = Drawing(width, drawing.height * factor)
    group = Group(*drawing.contents)
    group.scale(factor, factor)
    scaled.add(group)
    return scaled
