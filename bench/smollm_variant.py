"""The smollm demo's later stages on a variant of the preset, reusing an earlier run's stages: how
the preset's settings are tried before the dev split judges them (bench/smollm_dev.py).

    python bench/smollm_variant.py runs/smollm runs/v1 --from rank --set rate_sft_prompts=true
    python bench/smollm_variant.py runs/v1 runs/v2 --from ppo --set ppo_steps=24 ppo_lr=1e-4 \\
        --ppo critic.init=reward critic.lr=1e-4
    python bench/smollm_dev.py runs/v2 --rows ppo --reward

RUN's outputs of the stages before ``--from`` are linked into OUT (the demonstrations and SFT;
from ``reward`` on the rankings too; from ``ppo`` on the reward model too), then the stages from
``--from`` through PPO run (``--dpo``: DPO too) with the preset's fields set by ``--set
name=value`` and `rlhf ppo` config keys by ``--ppo section.key=value``. A field that a linked
stage was made with cannot be set (the variant would mix two settings), and the seed is RUN's (it
cuts the stage sets: the RL prompts must be the ones RUN's reward model was ranked on). There is no held-out
evaluation here: settings are chosen on the dev split, never on the held-out prompts. OUT gets
``variant.json``: the settings and each stage's seconds.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from rlhf.demo import smollm_stages as st
from rlhf.demo.smollm_preset import SMOL_PRESETS, SmolPreset
from rlhf.realtask.prompts import stage_sets

BUILT = {
    "rank": (["data/demonstrations.jsonl", "sft"],
             {"base", "n_sft", "n_replay", "replay_repeats", "demo_tokens", "demo_words", "demo_samples",
              "demo_temperature", "sft_steps", "sft_lr", "sft_schedule", "sft_warmup"}),
    "reward": (["data/candidates.jsonl", "data/rankings.jsonl"],
               {"n_rating", "k", "base_samples", "refusal_candidate", "raters_per_prompt",
                "rate_rl_prompts", "rate_sft_prompts", "max_new_tokens"}),
    "ppo": (["reward"], {"reward_epochs", "reward_lr", "reward_schedule", "reward_warmup"}),
}  # fmt: skip
"""for each stage ``--from`` can start at, in order: what the stage just before it wrote (the
demonstrations and SFT; the rankings; the reward model) and the preset fields that output depends on"""
STAGES = tuple(BUILT)


def before(start: str) -> list[str]:
    """The stages whose outputs a variant starting at ``start`` links from RUN (``start`` itself
    included: its key names what the stage before it wrote)."""
    return list(STAGES[: STAGES.index(start) + 1])


def linked(start: str) -> list[str]:
    """What OUT links from RUN when the variant starts at ``start``."""
    return [path for stage in before(start) for path in BUILT[stage][0]]


def frozen_fields(start: str) -> set[str]:
    """The preset fields a variant starting at ``start`` may not change."""
    return set().union(*(BUILT[stage][1] for stage in before(start)))


def made_with(run: Path) -> tuple[SmolPreset, int]:
    """The preset and seed RUN was made with: a variant's (variant.json), a demo's (results.json),
    or the smollm preset at seed 0. The seed cuts the stage sets, so a variant must reuse it."""
    for name, key in (("variant.json", "preset"), ("results.json", "config")):
        if (run / name).is_file():
            saved = json.loads((run / name).read_text())
            made = saved[key]
            preset = SmolPreset(**{f.name: made[f.name] for f in fields(SmolPreset) if f.name in made})
            return preset, saved.get("seed", made.get("seed", 0))
    return SMOL_PRESETS["smollm"], 0


def parse_sets(pairs: list[str], start: str) -> dict:
    """``name=value`` pairs -> preset fields of the right types; SystemExit naming a bad pair."""
    types = {f.name: type(getattr(SMOL_PRESETS["smollm"], f.name)) for f in fields(SmolPreset)}
    frozen = frozen_fields(start)
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in types:
            raise SystemExit(f"--set {pair!r}: expected name=value with a SmolPreset field name")
        if name in frozen:
            raise SystemExit(f"--set {name}: the stages linked from RUN (--from {start}) were made with it")
        if types[name] is bool:
            if value not in ("true", "false"):
                raise SystemExit(f"--set {pair!r}: a bool is true or false")
            out[name] = value == "true"
        else:
            try:
                out[name] = types[name](value)
            except ValueError:
                raise SystemExit(f"--set {pair!r}: not a {types[name].__name__}") from None
    return out


def parse_ppo(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--ppo {pair!r}: expected section.key=value (an `rlhf ppo` config key)")
        out[key] = value
    return out


def link(run: Path, out: Path, start: str) -> None:
    """Link RUN's outputs of the stages before ``start`` into OUT."""
    for rel in linked(start):
        src, dst = run / rel, out / rel
        if not src.exists():
            raise SystemExit(f"{src} is missing: --from {start} reuses it")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            if dst.resolve() != src.resolve():
                raise SystemExit(f"{dst} exists and is not {src}: use a new OUT")
            continue
        dst.symlink_to(src.resolve(), target_is_directory=src.is_dir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a `rlhf demo --preset smollm` output directory (or a variant's)")
    ap.add_argument("out", type=Path, help="the variant's output directory")
    ap.add_argument("--from", dest="start", choices=STAGES, required=True, help="the first stage run again")
    ap.add_argument("--set", nargs="*", default=[], metavar="name=value", help="SmolPreset fields")
    ap.add_argument(
        "--ppo", nargs="*", default=[], metavar="section.key=value", help="`rlhf ppo` config keys"
    )
    ap.add_argument("--dpo", action="store_true", help="run DPO on the variant's rankings too")
    args = ap.parse_args()
    made, seed = made_with(args.run)
    p = replace(made, **parse_sets(args.set, args.start))
    extra = parse_ppo(args.ppo)
    link(args.run, args.out, args.start)
    run = st.SmolRun(args.out, p, seed, stage_sets(p.stage_sizes, seed))
    sft = args.out / "sft" / "final"
    rankings = args.out / "data" / "rankings.jsonl"
    base = st.base_model(p)
    rankings = run.stage("sample and rank", lambda: st.sample_and_rank(run, sft, base), rankings)
    rm = run.stage("reward model", lambda: st.train_reward(run, sft, rankings), args.out / "reward" / "final")
    run.stage("ppo", lambda: st.train_ppo(run, sft, rm, extra), args.out / "ppo" / "final")
    if args.dpo:
        run.stage("dpo", lambda: st.train_dpo(run, sft, rankings), args.out / "dpo" / "final")
    summary = {"from": str(args.run), "start": args.start, "set": args.set, "ppo": extra,
               "preset": asdict(p), "seed": seed, "seconds": run.seconds}  # fmt: skip
    (args.out / "variant.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out / 'variant.json'}: {json.dumps(run.seconds)}")


if __name__ == "__main__":
    main()
