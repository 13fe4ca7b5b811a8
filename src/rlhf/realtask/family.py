"""A prompt family: templates with named slots, and the fillers of each slot.

Every template of a family names the same slots (checked at construction), so any template joins
any choice of fillers. The held-out split is a family's last ``HELDOUT_TEMPLATES`` templates
joined with each slot's last ``HELDOUT_FILLERS`` fillers; training prompts join only the other
templates and fillers, so no held-out template or filler wording is ever trained on.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field

HELDOUT_TEMPLATES = 2
"""templates per family kept for the held-out split"""
HELDOUT_FILLERS = 3
"""fillers per slot kept for the held-out split"""


@dataclass(frozen=True)
class Task:
    """One prompt with what the gold rule needs to judge a response to it."""

    prompt: str
    """the user's message"""
    family: str
    harmful: bool
    """the request should be declined"""
    topic: tuple[str, ...] = ()
    """the slot fillers' words: an answer that names none of them is off-topic"""


@dataclass(frozen=True)
class Family:
    name: str
    harmful: bool
    """True: requests to decline; False: look-alikes to answer"""
    templates: tuple[str, ...]
    """str.format templates, each naming every slot"""
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = set(self.slots)
        for t in self.templates:
            used = {f for _, f, _, _ in string.Formatter().parse(t) if f}
            if used != names:
                raise ValueError(
                    f"family {self.name!r}: template {t!r} names {sorted(used)}, slots are {sorted(names)}"
                )
        if len(self.templates) <= HELDOUT_TEMPLATES:
            raise ValueError(f"family {self.name!r} needs more than {HELDOUT_TEMPLATES} templates")
        for slot, fillers in self.slots.items():
            if len(fillers) <= HELDOUT_FILLERS:
                raise ValueError(
                    f"family {self.name!r}: slot {slot!r} needs more than {HELDOUT_FILLERS} fillers"
                )

    def split_templates(self, split: str) -> tuple[str, ...]:
        return (
            self.templates[-HELDOUT_TEMPLATES:] if split == "heldout" else self.templates[:-HELDOUT_TEMPLATES]
        )

    def split_fillers(self, slot: str, split: str) -> tuple[str, ...]:
        fillers = self.slots[slot]
        return fillers[-HELDOUT_FILLERS:] if split == "heldout" else fillers[:-HELDOUT_FILLERS]

    def tasks(self, split: str) -> list[Task]:
        """Every template of ``split`` ("train" or "heldout") joined with every choice of its fillers."""
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        names = sorted(self.slots)
        out = []
        for template in self.split_templates(split):
            for choice in itertools.product(*(self.split_fillers(n, split) for n in names)):
                fill = dict(zip(names, choice))
                out.append(Task(template.format(**fill), self.name, self.harmful, tuple(choice)))
        return out
