"""One categorical palette for every figure with many classes (genres, languages, models).

Kenneth Kelly's 22 colours of maximum contrast without white and black (20), plus a teal and a
navy: 22 colours that stay apart on screen and in print, enough for MovieLens' 18 genres. A
category keeps its colour in every figure of a notebook because :func:`colour_map` orders the
categories before assigning colours.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PALETTE", "colour_map"]

PALETTE: tuple[str, ...] = (
    "#0067A5", "#F38400", "#008856", "#BE0032", "#875692", "#F3C300", "#A1CAF1", "#882D17",
    "#8DB600", "#E68FAC", "#848482", "#604E97", "#F99379", "#2B3D26", "#B3446C", "#C2B280",
    "#654522", "#DCD300", "#E25822", "#F6A600", "#009999", "#1C2F7A",
)


def colour_map(categories: Iterable) -> dict:
    """``{category: colour}`` over the distinct categories in sorted order (strings compared as
    text); more categories than colours cycle, so keep it for at most ``len(PALETTE)``."""
    ordered = sorted(set(categories), key=str)
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}
