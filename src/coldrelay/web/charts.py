"""Charts drawn on the server as SVG: stacked bars over time, horizontal bars by category, a donut.

No JavaScript and no charting library: the dashboard must work in any browser, in a terminal
browser's text mode and in a screen reader, and the figures come from a few aggregate queries
that already give the numbers. So each chart is a small SVG built with ElementTree (which does
all escaping) and returned as ``Markup`` for a template, with:

- ``<title>`` and ``<desc>`` referenced by ``aria-labelledby``, and a ``<title>`` on every bar
  (a tooltip for the mouse, a label for assistive technology);
- text labels on the axes, the legend and next to horizontal bars, so no value needs a colour
  to be read (the pages also print each chart's numbers in a table beside it);
- series colours of clearly different lightness, and the failure series hatched, so a
  greyscale print or a colour-blind reader still tells them apart;
- an explicit "no data" picture for an empty window, never an error or an empty box.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup

Style = Literal["delivered", "deferred", "bounced", "neutral", "alert"]

# Lightness differs between the series (relative luminance about 0.08, 0.19, 0.48; see the tests),
# and the failure series carry hatching on top of the colour.
FILL: dict[str, str] = {
    "delivered": "#1b5e20",
    "deferred": "#f9a825",
    "bounced": "#d84315",
    "neutral": "#37474f",
    "alert": "#d84315",
}
HATCHED = frozenset({"deferred", "bounced", "alert"})
TEXT = "#1f2328"
GRID = "#d0d7de"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"

_CHART_ID = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_SVG_NS = "http://www.w3.org/2000/svg"


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked layer: a name for the legend, one value per bar, and how it is painted."""

    name: str
    values: Sequence[float]
    style: Style = "neutral"


@dataclass(frozen=True, slots=True)
class Slice:
    """One part of a donut."""

    name: str
    value: float
    style: Style = "neutral"


class ChartError(ValueError):
    """Data that cannot be drawn as asked (a programming error in the caller, not a user's)."""


# --- shared parts -------------------------------------------------------------------------------


def _n(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing '.0'."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _paint(chart_id: str, style: str) -> str:
    return f"url(#{chart_id}-{style})" if style in HATCHED else FILL[style]


def _svg(chart_id: str, width: int, height: int, title: str, description: str, styles: Sequence[str]) -> ET.Element:
    if not _CHART_ID.fullmatch(chart_id):
        raise ChartError(f"chart id {chart_id!r}: use lower-case letters, digits and hyphens")
    svg = ET.Element(
        "svg",
        {
            "xmlns": _SVG_NS,
            "viewBox": f"0 0 {width} {height}",
            "class": "chart",
            "role": "img",
            "aria-labelledby": f"{chart_id}-title {chart_id}-desc",
            "font-family": FONT,
            "font-size": "12",
        },
    )
    ET.SubElement(svg, "title", {"id": f"{chart_id}-title"}).text = title
    ET.SubElement(svg, "desc", {"id": f"{chart_id}-desc"}).text = description
    hatched = [style for style in dict.fromkeys(styles) if style in HATCHED]
    if hatched:
        defs = ET.SubElement(svg, "defs")
        for style in hatched:
            # The series colour with thin white diagonals: a texture that survives greyscale.
            pattern = ET.SubElement(
                defs,
                "pattern",
                {
                    "id": f"{chart_id}-{style}",
                    "width": "6",
                    "height": "6",
                    "patternUnits": "userSpaceOnUse",
                    "patternTransform": "rotate(45)",
                },
            )
            ET.SubElement(pattern, "rect", {"width": "6", "height": "6", "fill": FILL[style]})
            ET.SubElement(pattern, "line", {"x1": "0", "y1": "0", "x2": "0", "y2": "6", "stroke": "#ffffff", "stroke-width": "2"})
    return svg


def _text(parent: ET.Element, x: float, y: float, content: str, anchor: str = "start", css: str = "", **extra: str) -> ET.Element:
    attributes = {"x": _n(x), "y": _n(y), "text-anchor": anchor, "fill": TEXT, **extra}
    if css:
        attributes["class"] = css
    element = ET.SubElement(parent, "text", attributes)
    element.text = content
    return element


def _rect(parent: ET.Element, x: float, y: float, width: float, height: float, fill: str, css: str, tip: str) -> None:
    rect = ET.SubElement(
        parent, "rect", {"class": css, "x": _n(x), "y": _n(y), "width": _n(width), "height": _n(height), "fill": fill}
    )
    ET.SubElement(rect, "title").text = tip


def _legend(parent: ET.Element, chart_id: str, entries: Sequence[tuple[str, str]], x: float, y: float) -> None:
    for name, style in entries:
        swatch = ET.SubElement(
            parent,
            "rect",
            {"class": "swatch", "x": _n(x), "y": _n(y - 10), "width": "12", "height": "12", "fill": _paint(chart_id, style)},
        )
        swatch.set("stroke", TEXT)
        swatch.set("stroke-width", "0.5")
        _text(parent, x + 16, y, name, css="legend")
        x += 16 + 7.5 * len(name) + 18


def _no_data(svg: ET.Element, width: int, height: int, message: str) -> Markup:
    group = ET.SubElement(svg, "g", {"class": "no-data"})
    ET.SubElement(
        group,
        "rect",
        {
            "x": "1",
            "y": "1",
            "width": str(width - 2),
            "height": str(height - 2),
            "fill": "#f6f8fa",
            "stroke": GRID,
            "stroke-dasharray": "4 4",
        },
    )
    _text(group, width / 2, height / 2 + 5, message, anchor="middle", **{"font-size": "15"})
    return _markup(svg)


def _markup(svg: ET.Element) -> Markup:
    # ElementTree escapes every text and attribute; the result is safe to put into the page as is.
    return Markup(ET.tostring(svg, encoding="unicode"))


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``: a readable axis maximum."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power  # not reached: value <= 10 * power by the choice of power


def count_ticks(axis_max: float) -> list[float]:
    """Gridline values from 0 to ``axis_max`` (a ``nice_ceiling``) that are whole counts: 0, 2, 4 ... 10."""
    if axis_max <= 5 and float(axis_max).is_integer():
        return [float(tick) for tick in range(int(axis_max) + 1)]
    leading = round(axis_max / 10.0 ** math.floor(math.log10(axis_max)))
    steps = 4 if leading == 2 else 5
    return [axis_max * tick / steps for tick in range(steps + 1)]


def count_text(value: float) -> str:
    """How a count is written on a chart: an integer with thousands separators."""
    return f"{round(value):,}"


def percent_text(value: float) -> str:
    """How a rate is written on a chart: a percentage with one decimal."""
    return f"{value * 100:.1f}%"


# --- stacked bars over time ---------------------------------------------------------------------


def stacked_bars(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    empty: str = "No data in this window",
    max_labels: int = 12,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """Vertical bars, one per label, each split into the series stacked bottom-up.

    Only every n-th label is written when there are more than ``max_labels`` (a month of daily
    labels would overlap); each bar's ``<title>`` still names its own label and values.
    """
    for layer in series:
        if len(layer.values) != len(labels):
            raise ChartError(f"series {layer.name!r} has {len(layer.values)} values for {len(labels)} labels")
        if any(value < 0 for value in layer.values):
            raise ChartError(f"series {layer.name!r} has a negative value")
    svg = _svg(chart_id, width, height, title, description, [layer.style for layer in series])
    totals = [sum(layer.values[i] for layer in series) for i in range(len(labels))]
    if not labels or not any(totals):
        return _no_data(svg, width, height, empty)

    left, right, top, bottom = 52.0, 12.0, 30.0, 36.0
    plot_w, plot_h = width - left - right, height - top - bottom
    axis_max = nice_ceiling(max(totals))
    _legend(svg, chart_id, [(layer.name, layer.style) for layer in series], left, 16)

    grid = ET.SubElement(svg, "g", {"class": "grid"})
    for value in count_ticks(axis_max):
        y = top + plot_h - plot_h * value / axis_max
        ET.SubElement(grid, "line", {"x1": _n(left), "x2": _n(width - right), "y1": _n(y), "y2": _n(y), "stroke": GRID})
        _text(grid, left - 6, y + 4, count_text(value), anchor="end", css="tick")

    slot = plot_w / len(labels)
    bar_w = max(1.0, slot * 0.72)
    step = max(1, math.ceil(len(labels) / max_labels))
    bars = ET.SubElement(svg, "g", {"class": "bars"})
    for index, label in enumerate(labels):
        x = left + index * slot + (slot - bar_w) / 2
        y = top + plot_h
        details = ", ".join(f"{layer.name} {count_text(layer.values[index])}" for layer in series)
        for layer in series:
            value = layer.values[index]
            if value <= 0:
                continue
            bar_h = plot_h * value / axis_max
            y -= bar_h
            _rect(bars, x, y, bar_w, bar_h, _paint(chart_id, layer.style), f"bar bar-{layer.style}", f"{label}: {details}")
        if index % step == 0:
            _text(svg, x + bar_w / 2, height - bottom + 16, label, anchor="middle", css="x-label")
    return _markup(svg)


# --- horizontal bars by category ----------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def horizontal_bars(
    chart_id: str,
    title: str,
    description: str,
    items: Sequence[tuple[str, float]],
    *,
    value_text: Callable[[float], str] = count_text,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    axis_max: float | None = None,
    empty: str = "No data in this window",
    width: int = 720,
) -> Markup:
    """One labelled bar per item, its value written after it; an optional dashed threshold line.

    With a threshold, bars above it are painted (and hatched) as alerts, and the line carries its
    own label, so "over the limit" is readable without colour.
    """
    if any(value < 0 for _, value in items):
        raise ChartError("horizontal bars need values of zero or more")
    row_h, top, bottom = 24.0, 8.0, 26.0 if threshold is not None else 8.0
    height = round(top + bottom + row_h * max(len(items), 3))
    svg = _svg(chart_id, width, height, title, description, ["neutral", "alert"] if threshold is not None else ["neutral"])
    if not items or (not any(value for _, value in items) and threshold is None):
        return _no_data(svg, width, height, empty)

    label_w, value_w = 190.0, 70.0
    plot_x, plot_w = label_w + 8, width - label_w - 8 - value_w
    biggest = max([value for _, value in items] + [threshold or 0.0])
    scale_max = axis_max if axis_max is not None else nice_ceiling(biggest)
    bars = ET.SubElement(svg, "g", {"class": "bars"})
    for index, (label, value) in enumerate(items):
        y = top + index * row_h
        text = _text(svg, label_w, y + row_h / 2 + 4, _shorten(label, 30), anchor="end", css="y-label")
        if len(label) > 30:
            ET.SubElement(text, "title").text = label
        over = threshold is not None and value > threshold
        bar_w = plot_w * min(value, scale_max) / scale_max
        style = "alert" if over else "neutral"
        tip = f"{label}: {value_text(value)}" + (f" (over the {threshold_label})" if over else "")
        _rect(bars, plot_x, y + 4, max(bar_w, 1.0 if value else 0.0), row_h - 8, _paint(chart_id, style), f"bar bar-{style}", tip)
        _text(svg, plot_x + bar_w + 6, y + row_h / 2 + 4, value_text(value), css="value")
    if threshold is not None:
        x = plot_x + plot_w * min(threshold, scale_max) / scale_max
        end = top + row_h * max(len(items), 3)
        ET.SubElement(
            svg,
            "line",
            {
                "class": "threshold",
                "x1": _n(x),
                "x2": _n(x),
                "y1": _n(top),
                "y2": _n(end + 4),
                "stroke": TEXT,
                "stroke-width": "1.5",
                "stroke-dasharray": "5 3",
            },
        )
        _text(svg, x, end + 18, f"{threshold_label} {value_text(threshold)}", anchor="middle", css="threshold-label")
    return _markup(svg)


# --- donut --------------------------------------------------------------------------------------


def donut(
    chart_id: str,
    title: str,
    description: str,
    slices: Sequence[Slice],
    *,
    center_label: str = "total",
    empty: str = "No data in this window",
    width: int = 360,
    height: int = 180,
) -> Markup:
    """Shares of a whole as a ring, with the total in the middle and a legend giving each count and share."""
    if any(part.value < 0 for part in slices):
        raise ChartError("donut slices need values of zero or more")
    svg = _svg(chart_id, width, height, title, description, [part.style for part in slices])
    total = sum(part.value for part in slices)
    if total <= 0:
        return _no_data(svg, width, height, empty)

    cx, cy, radius, ring = 85.0, height / 2, 60.0, 26.0
    circumference = 2 * math.pi * radius
    ET.SubElement(
        svg, "circle", {"cx": _n(cx), "cy": _n(cy), "r": _n(radius), "fill": "none", "stroke": GRID, "stroke-width": _n(ring)}
    )
    offset = 0.0
    for part in slices:
        if part.value <= 0:
            continue
        length = circumference * part.value / total
        arc = ET.SubElement(
            svg,
            "circle",
            {
                "class": f"slice slice-{part.style}",
                "cx": _n(cx),
                "cy": _n(cy),
                "r": _n(radius),
                "fill": "none",
                "stroke": _paint(chart_id, part.style),
                "stroke-width": _n(ring),
                # Dash = this slice, gap = the rest; the offset starts it where the previous one ended, at 12 o'clock.
                "stroke-dasharray": f"{length:.2f} {circumference - length:.2f}",
                "stroke-dashoffset": f"{circumference / 4 - offset:.2f}",
            },
        )
        ET.SubElement(arc, "title").text = f"{part.name}: {count_text(part.value)} ({percent_text(part.value / total)})"
        offset += length
    _text(svg, cx, cy + 2, count_text(total), anchor="middle", css="donut-total", **{"font-size": "18", "font-weight": "600"})
    _text(svg, cx, cy + 18, center_label, anchor="middle", css="donut-caption")
    y = cy - 10 * len(slices) + 10
    for part in slices:
        swatch = ET.SubElement(
            svg,
            "rect",
            {"class": "swatch", "x": "170", "y": _n(y - 10), "width": "12", "height": "12", "fill": _paint(chart_id, part.style)},
        )
        swatch.set("stroke", TEXT)
        swatch.set("stroke-width", "0.5")
        share = percent_text(part.value / total)
        _text(svg, 188, y, f"{part.name}: {count_text(part.value)} ({share})", css="legend")
        y += 20
    return _markup(svg)
