"""The `rlhf` command: verbs -> recipes.

Every training verb takes ``--config FILE.yaml`` and any number of ``section.key=value``
overrides; ``rlhf <verb> --help`` lists every key with its type, default and doc.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rlhf.config import ConfigError, help_text, load_config
from rlhf.data.readers import DataError
from rlhf.models.loading import ModelError
from rlhf.recipes.loop import TrainingError

# verb -> (module with `Config` and `train`, one-line description)
TRAINING_VERBS = {
    "sft": ("rlhf.recipes.sft", "supervised fine-tuning on demonstrations"),
    "reward": ("rlhf.recipes.reward", "train a reward model from rankings or pairs (Bradley-Terry)"),
}
USER_ERRORS = (ConfigError, DataError, ModelError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf", description="Reinforcement learning from human feedback.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, (module, desc) in TRAINING_VERBS.items():
        config_cls = importlib.import_module(module).Config
        p = sub.add_parser(
            verb,
            help=desc,
            description=desc,
            epilog=help_text(config_cls),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--config", help="YAML file of config sections")
        p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override one config key")
    demo = sub.add_parser("demo", help="the whole pipeline on the built-in toy task")
    demo.add_argument("--output-dir", default="runs/demo", help="run directory of the demo")
    demo.add_argument("--preset", default="default", choices=["default", "fast"], help="size of the demo")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb in TRAINING_VERBS:
            recipe = importlib.import_module(TRAINING_VERBS[args.verb][0])
            cfg = load_config(recipe.Config, args.config, args.overrides)
            recipe.train(cfg)
        elif args.verb == "demo":
            from rlhf.demo import run_demo

            run_demo(args.output_dir, args.preset, args.seed)
    except USER_ERRORS as err:
        print(f"rlhf {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"rlhf {args.verb}: training stopped: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
