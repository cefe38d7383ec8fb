"""Small bar charts for the overview, laid out on the server as SVG.

``bars`` turns a series of counts into the geometry of an SVG bar chart (bar positions
and heights, axis labels, a title per bar); the template draws it. No chart library and
no script: the chart is part of the HTML, refreshed with it, and every value in it is a
number the dashboard computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

WIDTH = 480
HEIGHT = 120
#: Room under the bars for the hour labels, and left of them for the scale.
BOTTOM = 18
LEFT = 34
RIGHT = 16


@attrs.frozen(kw_only=True)
class Bar:
    """One bar: its box, its count and its tooltip."""

    x: float
    y: float
    width: float
    height: float
    count: int
    title: str


@attrs.frozen(kw_only=True)
class Chart:
    """An SVG bar chart's geometry.

    Attributes:
        title: what the chart counts.
        bars: one per bucket, left to right.
        peak: the scale's top value.
        labels: (x, text) under the bars.
        total: the sum of the counts.
    """

    title: str
    bars: Sequence[Bar]
    peak: int
    labels: Sequence[tuple[float, str]]
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM


def bars(title: str, counts: Sequence[int], *, past: bool) -> Chart:
    """A chart of ``counts`` per hour: the last hours (``past``, oldest first) or the
    next ones (soonest first)."""
    n = max(len(counts), 1)
    peak = max([*counts, 1])
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - BOTTOM - 4
    step = plot_width / n
    shown: list[Bar] = []
    for i, count in enumerate(counts):
        height = plot_height * count / peak
        hours_away = n - i if past else i
        span = f"{hours_away} h ago to {hours_away - 1} h ago" if past else f"in {i} to {i + 1} h"
        if past and hours_away == 1:
            span = "the last hour"
        shown.append(
            Bar(
                x=round(LEFT + i * step + 1, 1),
                y=round(4 + plot_height - height, 1),
                width=round(max(step - 2, 1), 1),
                height=round(height, 1),
                count=count,
                title=f"{count} ({span})",
            )
        )
    labels: list[tuple[float, str]] = []
    for i in range(0, n + 1, 6):
        text = ("now" if i == n else f"-{n - i}h") if past else ("now" if i == 0 else f"+{i}h")
        labels.append((round(LEFT + i * step, 1), text))
    return Chart(title=title, bars=shown, peak=peak, labels=labels, total=sum(counts))
