"""Geometry of the inline SVG bar charts (the billing dashboard, the staff console). Pure: numbers in, boxes out.

The site's Content-Security-Policy allows no inline style and no script, so charts are drawn server-side as SVG
whose shapes carry only presentation attributes (x, y, width, height); colours come from the stylesheet."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """One bar's rectangle in SVG user units (y grows downwards)."""

    x: float
    y: float
    width: float
    height: float


def bar_boxes(
    values: Sequence[float], *, width: float, height: float, gap: float = 2, scale: float | None = None
) -> list[Box]:
    """One vertical bar per value, side by side across `width`, standing on the bottom edge: heights proportional
    to the values, the largest value (or `scale`, when larger) at the full `height`. All zeros draw flat bars
    (never a division by zero)."""
    if not values:
        return []
    top = max([*values, scale or 0, 1])
    slot = width / len(values)
    boxes = []
    for index, value in enumerate(values):
        bar_height = round(height * value / top, 2)
        boxes.append(
            Box(
                x=round(index * slot + gap / 2, 2),
                y=round(height - bar_height, 2),
                width=round(max(slot - gap, 1), 2),
                height=bar_height,
            )
        )
    return boxes
