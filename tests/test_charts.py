"""The server-side SVG charts: well-formed XML, one shape per value, labels, accessibility, no-data pictures."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from coldrelay.web.charts import (
    FILL,
    ChartError,
    Series,
    Slice,
    count_ticks,
    donut,
    horizontal_bars,
    nice_ceiling,
    percent_text,
    stacked_bars,
)

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def texts(root: ET.Element, css: str) -> list[str]:
    return [element.text or "" for element in root.iterfind(".//svg:text", NS) if css in (element.get("class") or "").split()]


def by_class(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [element for element in root.iterfind(f".//svg:{tag}", NS) if css in (element.get("class") or "").split()]


def assert_accessible(root: ET.Element, chart_id: str, title: str) -> None:
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == f"{chart_id}-title {chart_id}-desc"
    title_element = root.find("svg:title", NS)
    assert title_element is not None and title_element.get("id") == f"{chart_id}-title" and title_element.text == title
    desc = root.find("svg:desc", NS)
    assert desc is not None and desc.get("id") == f"{chart_id}-desc" and desc.text


def test_stacked_bars_draw_one_segment_per_nonzero_value() -> None:
    labels = ["10:00", "11:00", "12:00", "13:00"]
    svg = stacked_bars(
        "over-time",
        "Per hour",
        "Delivered, deferred and bounced per hour.",
        labels,
        [
            Series("delivered", [5, 0, 2, 0], "delivered"),
            Series("deferred", [1, 0, 0, 0], "deferred"),
            Series("bounced", [2, 0, 1, 3], "bounced"),
        ],
    )
    root = parse(svg)
    assert_accessible(root, "over-time", "Per hour")
    segments = by_class(root, "rect", "bar")
    assert len(segments) == 6  # the zeros draw nothing
    assert len(by_class(root, "rect", "bar-bounced")) == 3
    assert texts(root, "x-label") == labels
    assert texts(root, "legend") == ["delivered", "deferred", "bounced"]
    # Every segment carries its own label and all three values, for the mouse and for screen readers.
    first_title = segments[0].find("svg:title", NS)
    assert first_title is not None and first_title.text == "10:00: delivered 5, deferred 1, bounced 2"
    # The tallest bar (8) reaches the axis maximum of 10; the y axis is labelled with counts.
    assert texts(root, "tick") == ["0", "2", "4", "6", "8", "10"]
    # Failures are hatched patterns, not only a colour.
    patterns = {pattern.get("id") for pattern in root.iterfind(".//svg:pattern", NS)}
    assert patterns == {"over-time-deferred", "over-time-bounced"}
    assert all(rect.get("fill") == "url(#over-time-bounced)" for rect in by_class(root, "rect", "bar-bounced"))


def test_stacked_bars_thin_out_labels_but_not_bars() -> None:
    labels = [f"{day:02d} Mar" for day in range(1, 31)]
    root = parse(stacked_bars("month", "Per day", "d", labels, [Series("delivered", [1.0] * 30, "delivered")], max_labels=10))
    assert len(by_class(root, "rect", "bar")) == 30
    assert texts(root, "x-label") == labels[::3]


def test_empty_data_is_a_clear_picture_not_an_error() -> None:
    for svg in (
        stacked_bars("a", "T", "D", ["10:00", "11:00"], [Series("delivered", [0, 0])], empty="No delivery attempts"),
        stacked_bars("b", "T", "D", [], []),
        horizontal_bars("c", "T", "D", [], empty="No failures"),
        donut("d", "T", "D", [Slice("delivered", 0)]),
    ):
        root = parse(svg)
        assert by_class(root, "rect", "bar") == [] and by_class(root, "circle", "slice") == []
        [group] = by_class(root, "g", "no-data")
        message = group.find("svg:text", NS)
        assert message is not None and message.text in {"No delivery attempts", "No failures", "No data in this window"}
        assert root.find("svg:title", NS) is not None  # still titled for screen readers


def test_horizontal_bars_label_values_and_mark_the_threshold() -> None:
    long_name = "a-very-long-mailbox-name-that-goes-on@example.com"
    items = [("anna@hosted.test", 0.12), ("bob@hosted.test", 0.05), (long_name, 0.0)]
    root = parse(
        horizontal_bars(
            "rates",
            "Rates",
            "Hard-bounce rates.",
            items,
            value_text=percent_text,
            threshold=0.05,
            threshold_label="pause threshold",
        )
    )
    assert_accessible(root, "rates", "Rates")
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 3
    # Only the bar strictly over the threshold is an alert; "over" is said in words too.
    assert [bar.get("class") for bar in bars] == ["bar bar-alert", "bar bar-neutral", "bar bar-neutral"]
    alert_title = bars[0].find("svg:title", NS)
    assert alert_title is not None and alert_title.text == "anna@hosted.test: 12.0% (over the pause threshold)"
    assert texts(root, "value") == ["12.0%", "5.0%", "0.0%"]
    labels = texts(root, "y-label")
    assert labels[:2] == ["anna@hosted.test", "bob@hosted.test"]
    assert labels[2].endswith("…") and len(labels[2]) == 30
    shortened = [e for e in root.iterfind(".//svg:text", NS) if e.get("class") == "y-label"][2].find("svg:title", NS)
    assert shortened is not None and shortened.text == long_name
    assert len(by_class(root, "line", "threshold")) == 1
    assert texts(root, "threshold-label") == ["pause threshold 5.0%"]


def test_donut_has_a_slice_and_a_legend_line_per_part() -> None:
    root = parse(
        donut(
            "share",
            "Outcomes",
            "Shares.",
            [Slice("delivered", 6, "delivered"), Slice("deferred", 0, "deferred"), Slice("bounced", 2, "bounced")],
        )
    )
    assert_accessible(root, "share", "Outcomes")
    assert len(by_class(root, "circle", "slice")) == 2
    assert texts(root, "legend") == ["delivered: 6 (75.0%)", "deferred: 0 (0.0%)", "bounced: 2 (25.0%)"]
    assert texts(root, "donut-total") == ["8"]


def test_text_is_escaped_and_stays_well_formed() -> None:
    hostile = '<script>alert(1)</script> & "quotes"'
    markup = horizontal_bars("esc", hostile, hostile, [(hostile, 3)])
    assert "<script>" not in markup
    root = parse(markup)
    title = root.find("svg:title", NS)
    assert title is not None and title.text == hostile


def test_bad_input_is_refused() -> None:
    with pytest.raises(ChartError, match="2 values for 3 labels"):
        stacked_bars("x", "T", "D", ["a", "b", "c"], [Series("s", [1, 2])])
    with pytest.raises(ChartError, match="negative"):
        stacked_bars("x", "T", "D", ["a"], [Series("s", [-1])])
    with pytest.raises(ChartError, match="chart id"):
        donut("Bad Id", "T", "D", [Slice("a", 1)])


def _luminance(colour: str) -> float:
    """WCAG relative luminance of #rrggbb."""

    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def test_series_colours_differ_in_lightness() -> None:
    """Printed in greyscale, delivered, deferred and bounced must still be three different greys."""
    for first, second in itertools.combinations(("delivered", "deferred", "bounced"), 2):
        light, dark = sorted((_luminance(FILL[first]), _luminance(FILL[second])), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 1.5, (first, second)


@pytest.mark.parametrize(
    ("axis_max", "ticks"),
    [(1, [0, 1]), (2, [0, 1, 2]), (5, [0, 1, 2, 3, 4, 5]), (10, [0, 2, 4, 6, 8, 10]), (200, [0, 50, 100, 150, 200])],
)
def test_count_ticks_are_whole_numbers(axis_max: float, ticks: list[float]) -> None:
    assert count_ticks(axis_max) == ticks


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (0.03, 0.05), (1, 1), (7, 10), (8, 10), (11, 20), (250, 500), (1001, 2000)]
)
def test_nice_ceiling(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)
