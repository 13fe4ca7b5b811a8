"""A constitution: written principles that AI feedback follows (Bai et al. 2022, "Constitutional
AI: Harmlessness from AI Feedback").

Each principle has a **critique request** and a **revision request** (the supervised stage,
SL-CAI: the model critiques its own response against a principle, then rewrites it; sec. 3.1), and
a **comparison** question (the RL stage, RL-CAI: an AI judge asked which of two responses better
follows a principle drawn for that comparison; sec. 4.1). Few-shot examples show the model what
a critique and a revision look like (sec. 3.1 uses a handful).

File format (YAML)::

    name: my-constitution
    principles:
      - name: harm
        critique: Point out anything harmful in the assistant's last response.
        revision: Rewrite the response to remove anything harmful.
        comparison: Which response is less harmful?      # optional
    examples:                                              # optional
      - principle: harm                                    # optional: else the round's principle
        prompt: ...
        response: ...
        critique: ...
        revision: ...

``default`` names the built-in file, ``constitutions/default.yaml``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlhf.config import ConfigError

DEFAULT = Path(__file__).parent / "constitutions" / "default.yaml"
PRINCIPLE_KEYS = ("name", "critique", "revision", "comparison")
EXAMPLE_KEYS = ("principle", "prompt", "response", "critique", "revision")


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str
    """critique request: what to look for in the response"""
    revision: str
    """revision request: how to rewrite it"""
    comparison: str
    """the question an AI judge answers for a pair of responses (RL-CAI)"""


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str
    critique: str
    revision: str
    principle: str | None = None


@dataclass(frozen=True)
class Constitution:
    name: str
    principles: tuple[Principle, ...]
    examples: tuple[Example, ...] = ()

    def sample(self, rng: random.Random) -> Principle:
        """A principle drawn uniformly (CAI samples one per revision round and per comparison)."""
        return rng.choice(self.principles)

    def get(self, name: str) -> Principle:
        return next(p for p in self.principles if p.name == name)

    def criteria(self) -> list[tuple[str, str]]:
        """(name, comparison question) of every principle, for ``judge.labels.comparisons``."""
        return [(p.name, p.comparison) for p in self.principles]


def _text(raw: dict, key: str, where: str, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}: '{key}' must be a non-empty string" + ("" if key in raw else " (missing)")
        )
    return " ".join(value.split()) if key != "prompt" else value.strip()


def _check_keys(raw: object, allowed: tuple[str, ...], where: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: expected a mapping with keys {', '.join(allowed)}, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; expected {', '.join(allowed)}"
        )
    return raw


def load_constitution(path: str | Path) -> Constitution:
    """Read and check a constitution file; ConfigError names the file and the bad principle."""
    path = DEFAULT if str(path) == "default" else Path(path)
    if not path.is_file():
        raise ConfigError(f"constitution file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"constitution file {path} is not valid YAML: {err}") from None
    raw = _check_keys(raw, ("name", "principles", "examples"), f"constitution {path}")
    items = raw.get("principles")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"constitution {path}: 'principles' must be a non-empty list")
    principles: list[Principle] = []
    for i, item in enumerate(items):
        label = item.get("name") if isinstance(item, dict) else None
        where = f"constitution {path}: principles[{i}]" + (f" ({label!r})" if isinstance(label, str) else "")
        item = _check_keys(item, PRINCIPLE_KEYS, where)
        name = _text(item, "name", where)
        if any(p.name == name for p in principles):
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        critique, revision = _text(item, "critique", where), _text(item, "revision", where)
        comparison = _text(item, "comparison", where, required=False)
        # without a question of its own, the judge is asked about the revision request's goal
        comparison = comparison or f"Which response better meets this request: {revision}"
        principles.append(Principle(name, critique, revision, comparison))
    examples: list[Example] = []
    raw_examples = raw.get("examples") or []
    if not isinstance(raw_examples, list):
        raise ConfigError(f"constitution {path}: 'examples' must be a list")
    names = {p.name for p in principles}
    for i, item in enumerate(raw_examples):
        where = f"constitution {path}: examples[{i}]"
        item = _check_keys(item, EXAMPLE_KEYS, where)
        principle = _text(item, "principle", where, required=False)
        if principle is not None and principle not in names:
            raise ConfigError(f"{where}: principle {principle!r} is not one of {', '.join(sorted(names))}")
        examples.append(
            Example(
                *(_text(item, k, where) for k in ("prompt", "response", "critique", "revision")), principle
            )
        )
    name = raw.get("name", path.stem)
    return Constitution(str(name), tuple(principles), tuple(examples))
