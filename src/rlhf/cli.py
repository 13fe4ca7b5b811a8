"""The `rlhf` command: verbs -> recipes.

Every training verb takes ``--config FILE.yaml`` and any number of ``section.key=value``
overrides; ``rlhf <verb> --help`` lists every key with its type, default and doc.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rlhf.config import help_text, load_config

# verb -> (module with `Config`, its entry point taking the Config, one-line description; None:
# the module's SUMMARY)
CONFIG_VERBS = {
    "sft": ("rlhf.recipes.sft", "train", "supervised fine-tuning on demonstrations"),
    "reward": ("rlhf.recipes.reward", "train", "train a reward model from rankings or pairs (Bradley-Terry)"),
    "ppo": ("rlhf.recipes.ppo", "train", None),  # its SUMMARY lists the registered algorithms
    "dpo": ("rlhf.recipes.dpo", "train", None),  # its SUMMARY lists the registered losses
    "sample": (
        "rlhf.recipes.sample",
        "sample",
        "K responses per prompt, written as candidate sets for labeling",
    ),
    "best-of-n": (
        "rlhf.recipes.best_of_n",
        "best_of_n",
        "sample n, keep the reward model's best (rejection sampling)",
    ),
    "eval": (
        "rlhf.recipes.evaluate",
        "evaluate",
        "win rates (reward model, gold), KL, length, diversity and perplexity of a policy",
    ),
    "judge": (
        "rlhf.feedback.judge.run",
        "judge_labels",
        "label candidate sets or pairs with an AI judge (RLAIF, RL-CAI)",
    ),
}

# verb -> (description, {sub-verb -> (module with `Config`, entry point, description)})
CONFIG_SUBVERBS = {
    "constitution": (
        "Constitutional AI: responses revised against written principles",
        {
            "revise": (
                "rlhf.feedback.revise",
                "write_revisions",
                "response -> critique -> revision, N rounds (SL-CAI demonstrations)",
            )
        },
    ),
}


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a user can cause: a message, exit status 2, no traceback."""
    from rlhf.config import ConfigError
    from rlhf.data.readers import DataError
    from rlhf.eval.plot_runs import PlotError
    from rlhf.feedback.judge.base import JudgeError
    from rlhf.models.loading import ModelError

    return (ConfigError, DataError, ModelError, JudgeError, PlotError)


def _demo_presets() -> list[str]:
    """`rlhf demo --preset` choices: the toy demo's registered presets, then SmolLM2's."""
    from rlhf.demo.presets import PRESETS

    return [*PRESETS, "smollm"]


class _Version(argparse.Action):
    """`rlhf --version`: what this process runs, read only when asked."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import version

        import torch
        import transformers

        print(
            f"rlhf {version('rlhf')}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"python {sys.version.split()[0]}"
        )
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf", description="Reinforcement learning from human feedback.")
    parser.add_argument(
        "--version", action=_Version, help="print the versions of rlhf, torch, transformers and python"
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, (module, _, desc) in CONFIG_VERBS.items():
        _config_parser(sub, verb, module, desc)
    for verb, (desc, subverbs) in CONFIG_SUBVERBS.items():
        group = sub.add_parser(verb, help=desc, description=desc).add_subparsers(
            dest="subverb", metavar="SUBVERB"
        )
        group.required = True
        for name, (module, _, subdesc) in subverbs.items():
            _config_parser(group, name, module, subdesc)
    demo = sub.add_parser(
        "demo",
        help="the whole pipeline on the built-in toy task, or on SmolLM2-135M-Instruct (--preset smollm)",
    )
    demo.add_argument("--output-dir", default="runs/demo", help="run directory of the demo")
    demo.add_argument(
        "--preset",
        default="default",
        choices=[*_demo_presets()],
        help=(
            "size of the toy demo (default, fast), or smollm: harmless and still helpful on "
            "SmolLM2-135M-Instruct"
        ),
    )
    demo.add_argument("--seed", type=int, default=0)
    plot = sub.add_parser(
        "plot",
        help="draw runs' metrics.jsonl curves as PNG and SVG files, several runs overlaid",
        description=(
            "Draw every metric group (loss, accuracy, reward, KL, length, entropy, clipping, eval, ...) "
            "of each RUN_DIR's metrics.jsonl as <group>.png and <group>.svg, the runs overlaid."
        ),
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory with a metrics.jsonl")
    plot.add_argument("--x", default="step", choices=["step", "kl"], help="x axis: the step or the logged KL")
    plot.add_argument("--out", help="folder for the images (default: the first RUN_DIR's plots/)")
    convert = sub.add_parser(
        "convert",
        help="convert a GGUF file once into a cached Hugging Face checkpoint; print its directory",
        description="Convert a GGUF file (default: the packaged SmolLM2-135M-Instruct) once into a "
        "safetensors Hugging Face checkpoint in the GGUF cache ($RLHF_GGUF_CACHE, default "
        "~/.cache/rlhf/gguf) and print that directory. Training verbs convert on first use too.",
    )
    convert.add_argument("gguf", nargs="?", help="GGUF file (default: the packaged SmolLM2-135M-Instruct)")
    from rlhf.feedback.cli import add_parser as add_label_parser

    add_label_parser(sub)
    from rlhf.serve.cli import add_parser as add_serve_parser

    add_serve_parser(sub)
    return parser


def _config_parser(sub: argparse._SubParsersAction, verb: str, module: str, desc: str | None) -> None:
    """A verb run from a ``Config``: ``--config FILE.yaml`` plus ``section.key=value`` overrides."""
    recipe = importlib.import_module(module)
    config_cls, desc = recipe.Config, desc or recipe.SUMMARY
    p = sub.add_parser(
        verb,
        help=desc,
        description=desc,
        epilog=help_text(config_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="YAML file of config sections")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override one config key")


def _serve_main(argv: list[str]) -> int:
    """`rlhf serve` without importing the training configs (torch loads with the model)."""
    from rlhf.serve.cli import add_parser as add_serve_parser
    from rlhf.serve.cli import run as run_serve

    parser = argparse.ArgumentParser(prog="rlhf")
    add_serve_parser(parser.add_subparsers(dest="verb", metavar="VERB"))
    args = parser.parse_args(argv)  # outside the try: `except _user_errors()` would import torch for --help
    try:
        return run_serve(args)
    except _user_errors() as err:
        print(f"rlhf serve: error: {err}", file=sys.stderr)
        return 2


def _label_main(argv: list[str]) -> int:
    """`rlhf label ...` without importing torch or the training configs (it starts in a second)."""
    from rlhf.feedback.cli import add_parser as add_label_parser
    from rlhf.feedback.cli import run as run_label

    parser = argparse.ArgumentParser(prog="rlhf")
    add_label_parser(parser.add_subparsers(dest="verb", metavar="VERB"))
    return run_label(parser.parse_args(argv))


def _finish_processes() -> None:
    """Under `accelerate launch`: wait for every process, then close the process group. A process
    whose share of the work ended first (the others still writing files) would otherwise exit
    under gloo's live threads and abort."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["label"]:
        return _label_main(argv)
    if argv[:1] == ["serve"]:
        return _serve_main(argv)
    args = _parser().parse_args(argv)
    from rlhf.recipes.loop import TrainingError

    if args.verb in CONFIG_VERBS or args.verb in CONFIG_SUBVERBS or args.verb == "demo":
        from rlhf.progress import quiet_third_party_bars, quiet_third_party_notices

        quiet_third_party_bars()
        quiet_third_party_notices()
    try:
        if args.verb in CONFIG_VERBS or args.verb in CONFIG_SUBVERBS:
            module, entry, _ = (
                CONFIG_VERBS[args.verb]
                if args.verb in CONFIG_VERBS
                else CONFIG_SUBVERBS[args.verb][1][args.subverb]
            )
            recipe = importlib.import_module(module)
            cfg = load_config(recipe.Config, args.config, args.overrides)
            getattr(recipe, entry)(cfg)
            _finish_processes()
        elif args.verb == "demo" and args.preset == "smollm":
            from rlhf.demo.smollm import run_smollm_demo

            run_smollm_demo(args.output_dir, args.preset, args.seed)
        elif args.verb == "demo":
            from rlhf.demo import run_demo

            run_demo(args.output_dir, args.preset, args.seed)
        elif args.verb == "plot":
            from rlhf.eval.plot_runs import plot_runs

            written = plot_runs(args.run_dirs, args.x, args.out)
            print(
                f"[plot] wrote {len(written)} files to {written[0].parent}"
                if written
                else "[plot] nothing to draw"
            )
        elif args.verb == "convert":
            from rlhf.models import smollm
            from rlhf.models.gguf import gguf_checkpoint

            print(gguf_checkpoint(args.gguf, "argument GGUF") if args.gguf else smollm.checkpoint_dir())
        elif args.verb == "label":
            from rlhf.feedback.cli import run as run_label

            return run_label(args)
    except _user_errors() as err:
        print(f"rlhf {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"rlhf {args.verb}: training stopped: {err}", file=sys.stderr)
        return 1
    return 0


def exit_process(code: int) -> None:
    """End the process with ``code``. Under a launcher (WORLD_SIZE > 1), once the process group is
    closed: flush, then leave without running interpreter teardown, where a C++ thread object still
    held by the distributed libraries could be destroyed while joinable and abort a finished run
    ("terminate called without an active exception", exit code -6) after its files were written."""
    import os

    if os.environ.get("WORLD_SIZE", "1") != "1":
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
