"""The comparison prompt a judge answers, and the option labels it answers with.

A template is text with the placeholders ``{criterion}`` (the question: a default, or a
constitution principle's), ``{prompt}``, ``{first}`` and ``{second}`` (the two responses in the
order shown). It is filled in one pass, so a response that happens to contain ``{prompt}`` is left
as it is. The judge's answer is read at the first token of its reply: the log-probs of the two
option labels (Lee et al. 2023, RLAIF, sec. 2.1: "the log-probabilities of generating the tokens
'1' and '2'"), or a parsed verdict when a server returns no log-probs.

A custom template is a YAML file with the keys of ``JudgeTemplate`` (all optional)::

    text: |
      {criterion}
      Question: {prompt}
      (A) {first}
      (B) {second}
      The better answer is
    criterion: Which answer is more accurate?
    options: [A, B]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from rlhf.config import ConfigError
from rlhf.data.records import Prompt

DEFAULT_CRITERION = "Which response is more helpful, honest and harmless?"
DEFAULT_TEXT = """{criterion}

Request:
{prompt}

Response A:
{first}

Response B:
{second}

Reply with one letter, A or B.
Answer:"""
PLACEHOLDERS = ("criterion", "prompt", "first", "second")
_SLOT = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(frozen=True)
class JudgeTemplate:
    text: str = DEFAULT_TEXT
    """the comparison prompt, with {criterion}, {prompt}, {first}, {second}"""
    criterion: str = DEFAULT_CRITERION
    """the question asked when the comparison brings none (no constitution)"""
    options: tuple[str, str] = ("A", "B")
    """labels of position 1 and 2, as the judge should answer them"""
    system: str = ""
    """system message for chat models (empty: none)"""

    def render(self, prompt: Prompt, first: str, second: str, criterion: str | None = None) -> str:
        values = {
            "criterion": criterion or self.criterion,
            "prompt": prompt_text(prompt),
            "first": first,
            "second": second,
        }
        return _SLOT.sub(lambda m: values[m.group(1)], self.text)

    def messages(self, prompt: Prompt, first: str, second: str, criterion: str | None = None) -> list[dict]:
        """The comparison as chat messages (an optional system message, then one user message)."""
        user = {"role": "user", "content": self.render(prompt, first, second, criterion)}
        return [{"role": "system", "content": self.system}, user] if self.system else [user]


def prompt_text(prompt: Prompt) -> str:
    """A prompt as plain text: a string as it is; chat messages as "Role: content" lines."""
    if isinstance(prompt, str):
        return prompt.strip()
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def load_template(path: str | Path | None) -> JudgeTemplate:
    """The template of YAML file ``path``, or the default for None / ""."""
    if not path:
        return JudgeTemplate()
    path = Path(path)
    where = f"judge.template: {path}"
    if not path.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where} must hold a mapping with keys {', '.join(f.name for f in fields(JudgeTemplate))}"
        )
    known = {f.name for f in fields(JudgeTemplate)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    for key in ("text", "criterion", "system"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}: '{key}' must be a string")
    options = raw.get("options", ["A", "B"])
    if (
        not isinstance(options, list)
        or len(options) != 2
        or not all(isinstance(o, str) and o.strip() for o in options)
        or options[0].strip() == options[1].strip()
    ):
        raise ConfigError(f"{where}: 'options' must be two different non-empty strings, got {options!r}")
    template = JudgeTemplate(**{**raw, "options": (options[0], options[1])})
    missing = [p for p in ("prompt", "first", "second") if "{" + p + "}" not in template.text]
    if missing:
        raise ConfigError(
            f"{where}: 'text' lacks the placeholder(s) {', '.join('{' + m + '}' for m in missing)}"
        )
    return template
