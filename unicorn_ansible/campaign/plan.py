"""A campaign's combinations, their numbers and run names, and the order a sweep takes them in.

Combination ``i`` (from 1) is the i-th of the grid in its own order: repeats outermost (the
whole grid once, then again), then the parameters in their declared order, each one's values
in the order given. The numbers and so the run names (``NAME-0001``; a retry ``NAME-0001-2``)
follow from the spec alone: every sweep process of a campaign agrees on them. The order a
sweep runs them in is another matter: ``grid`` (by number) or ``random`` (shuffled by a seed,
the default: slow drift of the lab then does not line up with a parameter).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from .parameters import Value
from .records import CampaignSpec

ORDERS = ("grid", "random")


@dataclass(frozen=True)
class Combination:
    """One run's worth of a campaign: its number, its parameters' values, its repeat (from 1)."""

    index: int
    parameters: dict[str, Value]
    repeat: int

    def shown(self) -> str:
        values = " ".join(f"{name}={value}" for name, value in self.parameters.items())
        return f"{values} repeat {self.repeat}".strip()


def combinations(spec: CampaignSpec) -> list[Combination]:
    """Every combination of the campaign, by number."""
    return list(_enumerate(spec))


def _enumerate(spec: CampaignSpec) -> Iterator[Combination]:
    names = [name for name, _ in spec.parameters]
    index = 0
    for repeat in range(1, spec.repeat + 1):
        for values in itertools.product(*(values for _, values in spec.parameters)):
            index += 1
            yield Combination(index, dict(zip(names, values)), repeat)


def ordered(items: list[Combination], order: str, seed: int | None) -> list[Combination]:
    """``items`` in the order a sweep takes them: by number, or shuffled by ``seed``."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of {', '.join(ORDERS)}")
    chosen = sorted(items, key=lambda c: c.index)
    if order == "random":
        random.Random(seed).shuffle(chosen)
    return chosen


def number_width(count: int) -> int:
    """Digits of a run's number: four, more for a campaign of over 9,999 combinations."""
    return max(4, len(str(count)))


def run_name(spec: CampaignSpec, index: int, attempt: int) -> str:
    """The name of combination ``index``'s ``attempt``-th run (from 1)."""
    base = f"{spec.name}-{index:0{number_width(spec.count)}d}"
    return base if attempt <= 1 else f"{base}-{attempt}"
