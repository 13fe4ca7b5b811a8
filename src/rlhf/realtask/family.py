"""A prompt family: templates with named slots, and the fillers of each slot.

Every template of a family names the same slots (checked at construction), so any template joins
any choice of fillers. Three splits:

- held-out: a family's last ``HELDOUT_TEMPLATES`` templates joined with each slot's last
  ``HELDOUT_FILLERS`` fillers: the figures reported, on wording never trained on;
- dev: the ``DEV_TEMPLATES`` templates before those, joined with the training fillers: where the
  preset's settings are chosen (it tests the same thing, new templates, without touching the
  held-out prompts);
- train: the other templates joined with the other fillers.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field

HELDOUT_TEMPLATES = 2
"""templates per family kept for the held-out split"""
HELDOUT_FILLERS = 3
"""fillers per slot kept for the held-out split"""
DEV_TEMPLATES = 2
"""templates per family kept for the dev split (before the held-out ones)"""
SPLITS = ("train", "dev", "heldout")


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
        if len(self.templates) <= HELDOUT_TEMPLATES + DEV_TEMPLATES:
            raise ValueError(
                f"family {self.name!r} needs more than {HELDOUT_TEMPLATES + DEV_TEMPLATES} templates "
                f"({HELDOUT_TEMPLATES} held out, {DEV_TEMPLATES} dev)"
            )
        for slot, fillers in self.slots.items():
            if len(fillers) <= HELDOUT_FILLERS:
                raise ValueError(
                    f"family {self.name!r}: slot {slot!r} needs more than {HELDOUT_FILLERS} fillers"
                )

    def split_templates(self, split: str) -> tuple[str, ...]:
        held, dev = HELDOUT_TEMPLATES, HELDOUT_TEMPLATES + DEV_TEMPLATES
        if split == "heldout":
            return self.templates[-held:]
        return self.templates[-dev:-held] if split == "dev" else self.templates[:-dev]

    def split_fillers(self, slot: str, split: str) -> tuple[str, ...]:
        fillers = self.slots[slot]
        return fillers[-HELDOUT_FILLERS:] if split == "heldout" else fillers[:-HELDOUT_FILLERS]

    def tasks(self, split: str) -> list[Task]:
        """Every template of ``split`` ("train", "dev" or "heldout") joined with every choice of
        its fillers."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        names = sorted(self.slots)
        out = []
        for template in self.split_templates(split):
            for choice in itertools.product(*(self.split_fillers(n, split) for n in names)):
                fill = dict(zip(names, choice))
                out.append(Task(template.format(**fill), self.name, self.harmful, tuple(choice)))
        return out
