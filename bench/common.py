"""Shared pieces of the benchmarks: machine info, the matmul ceiling, tiny checkpoints, output.

The ceiling is the machine's measured dense matmul rate (FLOP/s); a training step does about
6 x parameters x tokens FLOPs (2 forward, 4 backward), so 6 N D / time over that rate is the
share of peak the recipe reaches (DESIGN.md, "Guidance: performance").

Checkpoints are built here, nothing is downloaded: a BPE tokenizer (vocab 2048) is trained on
generated pseudo-words, and a random GPT-2 of size "1m" or "10m" comes from rlhf.models.tiny.
The data uses only words that are one token each, so every sequence has an exact token count
(prompt 32 + response 31 + EOS) and no batch carries padding.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CACHE = BENCH / ".cache"
VOCAB = 2048
PROMPT_TOKENS = 32
RESPONSE_TOKENS = 32  # including the EOS the tokenizer appends
BUSY = 0.2
"""cores used by other processes above which a measurement is flagged (and retried)"""
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


# ---------------------------------------------------------------- machine


def cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(n: int | None = None) -> int:
    """Pin torch's intra-op threads to ``n`` (default: the core count); returns what was set."""
    n = n or cores()
    torch.set_num_threads(n)
    return torch.get_num_threads()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The ISA extensions that decide matmul speed (AVX-512, bf16, AMX)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx512f", "avx512_bf16", "amx", "avx2")))
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    import transformers

    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- matmul ceiling


def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, repeats: int = 5) -> float:
    """Best-of-``repeats`` FLOP/s of ``(m, k) @ (k, n)`` in ``dtype``."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    inner = max(1, int(2e9 // (2 * m * k * n)))  # about 2 GFLOP per timing, so small shapes time well
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b)
        best = min(best, (time.perf_counter() - t) / inner)
    return 2 * m * k * n / best


def matmul_rates(quick: bool = False, wait_s: float = 0) -> dict[str, float]:
    """Square matmuls (the ceiling) and one model-shaped one: 1024 tokens x d=256 -> 4d (MLP up).

    With ``wait_s`` > 0, each is measured when the machine is idle and again if a neighbour
    took a core meanwhile (a busy machine halves a 2-thread matmul)."""
    shapes = {"1024^3": (1024, 1024, 1024), "2048^3": (2048, 2048, 2048), "1024x256x1024": (1024, 256, 1024)}
    out = {}
    for name, (m, k, n) in shapes.items():
        for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            for _ in range(3):
                wait_for_quiet(wait_s)
                busy0, own0, t0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
                out[f"{tag} {name}"] = matmul_rate(m, k, n, dtype, repeats=2 if quick else 5)
                wall = time.perf_counter() - t0
                other = max(0.0, busy_cpu_seconds() - busy0 - (time.process_time() - own0)) / wall
                if wait_s <= 0 or other <= BUSY:
                    break
    return out


def peak(rates: dict[str, float], tag: str) -> float:
    """The best square-matmul rate of ``tag`` (fp32 | bf16): the ceiling a step is compared with."""
    return max(v for k, v in rates.items() if k.startswith(tag) and "^3" in k)


# ---------------------------------------------------------------- checkpoints and data


def words(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct pseudo-words of 1-3 syllables."""
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(out)


def corpus(lexicon: list[str], n_lines: int, rng: random.Random) -> list[str]:
    """Lines of Zipf-distributed words: frequent words become single BPE tokens."""
    weights = [1 / (i + 1) for i in range(len(lexicon))]
    return [" ".join(rng.choices(lexicon, weights, k=24)) for _ in range(n_lines)]


def checkpoint(size: str) -> tuple[Path, list[str]]:
    """A tiny GPT-2 of ``size`` with a 2048-token BPE tokenizer, cached under bench/.cache (keyed
    by the source of rlhf.models.tiny, so a change there builds a fresh one).

    Returns the checkpoint directory and the words that are exactly one token after a space.
    """
    import hashlib
    import inspect

    from transformers import AutoTokenizer

    from rlhf.models import tiny

    version = hashlib.sha256(inspect.getsource(tiny).encode()).hexdigest()[:8]
    directory = CACHE / f"gpt2-{size}-v{VOCAB}-{version}"
    rng = random.Random(0)
    lexicon = words(4000, rng)
    if not (directory / "config.json").is_file():
        tiny.make_tiny_checkpoint(directory, corpus(lexicon, 20000, rng), "gpt2", size, vocab_size=VOCAB)
    tok = AutoTokenizer.from_pretrained(str(directory))
    single = [w for w in lexicon if len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1]
    if len(single) < 100:
        raise RuntimeError(f"only {len(single)} single-token words in the {size} tokenizer")
    return directory, single


def reward_checkpoint(size: str) -> Path:
    """``checkpoint(size)`` as a reward model: the same transformer with a seeded one-output score
    head, saved as AutoModelForSequenceClassification (what `rlhf reward` writes), cached beside it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base, _ = checkpoint(size)
    directory = base.with_name(base.name + "-reward")
    if not (directory / "config.json").is_file():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
        model.save_pretrained(str(directory))
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(directory))
    return directory


def sentence(vocab: list[str], n_tokens: int, rng: random.Random) -> str:
    return "".join(" " + rng.choice(vocab) for _ in range(n_tokens))


def demonstrations(vocab: list[str], n: int, seed: int = 0) -> list[dict[str, str]]:
    """Prompt of PROMPT_TOKENS tokens, completion of RESPONSE_TOKENS tokens with its EOS."""
    rng = random.Random(seed)
    return [
        {
            "prompt": sentence(vocab, PROMPT_TOKENS, rng),
            "completion": sentence(vocab, RESPONSE_TOKENS - 1, rng),
        }
        for _ in range(n)
    ]


def rankings(vocab: list[str], n: int, k: int, seed: int = 0) -> list[dict[str, Any]]:
    """Pairs (k=2: chosen/rejected) or rankings of ``k`` distinct ranks, sequences as above."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = sentence(vocab, PROMPT_TOKENS, rng)
        responses = [sentence(vocab, RESPONSE_TOKENS - 1, rng) for _ in range(k)]
        if k == 2:
            out.append({"prompt": prompt, "chosen": responses[0], "rejected": responses[1]})
        else:
            ranks = list(range(1, k + 1))
            rng.shuffle(ranks)
            out.append({"prompt": prompt, "responses": responses, "ranks": ranks})
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def n_params(directory: Path) -> int:
    """Parameters of the checkpoint in ``directory`` (tied weights counted once)."""
    from safetensors import safe_open

    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def flop_params(directory: Path, lm_head: bool) -> int:
    """Parameters that do matmul work per token, for FLOPs = 6 x this x tokens.

    Position embeddings are a lookup, never a matmul. The token embedding is a lookup too; with
    tied weights it is also the LM head (a V x d matmul), so it counts for a causal LM
    (``lm_head``) and not for a reward model, whose head is a d -> 1 score. Attention's own
    T x T products (about 2% here at T = 64) are left out, as in the usual 6ND estimate.
    """
    cfg = json.loads((directory / "config.json").read_text())
    d, vocab, positions = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    n = n_params(directory) - positions * d
    return n if lm_head else n - vocab * d + d


# ---------------------------------------------------------------- timing


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (every process, every core)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def other_load_now(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes over the next ``seconds`` (this one sleeps)."""
    busy0 = busy_cpu_seconds()
    time.sleep(seconds)
    return max(0.0, busy_cpu_seconds() - busy0) / seconds


def wait_for_quiet(max_wait_s: float, threshold: float = BUSY) -> float:
    """Wait up to ``max_wait_s`` for other processes to use under ``threshold`` cores; return
    the last load seen. A benchmark on a shared machine otherwise measures its neighbours."""
    deadline = time.monotonic() + max_wait_s
    load = other_load_now()
    while load > threshold and time.monotonic() < deadline:
        load = other_load_now(2.0)
    return load


def measure_quietly(wait_s: float, measure: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``measure(*args)`` (a row with ``other_load``) when the machine is idle; if other
    processes still used over BUSY cores during it, wait and measure again, at most twice more.
    With ``wait_s`` 0 it measures once, whatever the load."""
    retries = 2
    for attempt in range(retries + 1):
        wait_for_quiet(wait_s)
        row = measure(*args)
        row["attempts"] = attempt + 1
        if wait_s <= 0 or row["other_load"] <= BUSY:
            break
    return row


class StepTimer:
    """A ``train(cfg, callbacks=[...])`` callback: the time of each step after ``warmup`` steps.

    It also measures how many cores other processes kept busy meanwhile (``other_load``): on a
    shared machine, a row measured while something else ran is slower than the code is.
    """

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.stamps: list[float] = []
        self.cpu: list[tuple[float, float]] = []  # (machine busy, this process) CPU seconds

    def __call__(self, step: int) -> None:
        if step >= self.warmup:
            self.stamps.append(time.perf_counter())
            self.cpu.append((busy_cpu_seconds(), time.process_time()))

    @property
    def steps(self) -> int:
        return len(self.stamps) - 1

    @property
    def seconds(self) -> float:
        if self.steps < 1:
            raise RuntimeError("too few steps were timed; raise max_steps above warmup + 1")
        return self.stamps[-1] - self.stamps[0]

    @property
    def other_load(self) -> float:
        """Mean number of cores other processes used during the timed steps."""
        (busy0, own0), (busy1, own1) = self.cpu[0], self.cpu[-1]
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / self.seconds

    def step_times(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]

    def cpu_step_times(self) -> list[float]:
        """CPU seconds this process spent on each step (all its threads). With one torch thread
        on a machine whose cores other processes keep busy, this is the step's cost: its wall
        time mostly measures how long it waited for a core."""
        own = [c for _, c in self.cpu]
        return [b - a for a, b in zip(own, own[1:])]


def run_timed(train: Callable[..., Any], cfg: Any, warmup: int, verbose: bool = False) -> StepTimer:
    """Run a recipe's ``train(cfg, callbacks=[timer])``; its prints and progress bar are kept
    quiet unless ``verbose`` (and shown if it fails)."""
    timer = StepTimer(warmup)
    if verbose:
        train(cfg, callbacks=[timer])
        return timer
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            train(cfg, callbacks=[timer])
    except BaseException:
        sys.stderr.write(buf.getvalue())
        raise
    return timer


def configure(cfg: Any, model: Path, data: Path, out: Path, steps: int, batch: int, **train: Any) -> Any:
    """Fill the model/data/train sections every benchmark row shares."""
    cfg.model.path = str(model)
    cfg.data.train = str(data)
    cfg.train.output_dir = str(out)
    cfg.train.max_steps = steps
    cfg.train.batch_size = batch
    cfg.train.save_every = 0
    cfg.train.resume = False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


# ---------------------------------------------------------------- output


def last_metric(run_dir: Path, key: str) -> float | None:
    """``key`` of the last metrics.jsonl line of a run directory that has it."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    values = [rec[key] for rec in map(json.loads, lines) if key in rec]
    return values[-1] if values else None


def si(x: float, unit: str = "") -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.1f} {prefix}{unit}"
    return f"{x:.1f} {unit}".rstrip()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of ``columns`` of ``rows`` (floats with 3 significant figures)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else si(v)
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, Any], update: list[str] | None = None) -> Path:
    """Write ``payload`` to bench/results/<name>.json.

    With ``update`` (the row fields that name a row, e.g. ["size", "precision"]), only this
    run's rows replace those of the file (others are kept): to re-measure a row that a busy
    machine spoilt without re-running the rest.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    if update and path.is_file():
        old = json.loads(path.read_text())
        new_rows = {tuple(r.get(k) for k in update): r for r in payload["rows"]}
        keys = [list(k) for k in new_rows]
        rows = [new_rows.pop(tuple(r.get(k) for k in update), r) for r in old["rows"]]
        old["rows"] = rows + list(new_rows.values())
        old.setdefault("updates", []).append({"date": payload["machine"]["date"], "rows": keys})
        payload = old
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def bench_parser(doc: str, quick_help: str = "a few steps per row (smoke test)", recipe: bool = True):
    """The options every benchmark takes: --quick, --threads, --wait-quiet, and for benchmarks
    that run a recipe and save rows, --verbose and --update."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the core count)")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="wait up to this many s for an idle machine before each row, and redo rows run on a busy one",
    )
    if recipe:
        ap.add_argument("--verbose", action="store_true", help="show the recipe's output")
        ap.add_argument(
            "--update", action="store_true", help="replace only the rows measured now in the results file"
        )
    return ap


def start(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float]]:
    """Set the thread count, print the machine and its measured matmul rates; returns both."""
    threads = set_threads(args.threads)
    info = machine_info()
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, {threads} threads")
    rates = matmul_rates(args.quick, args.wait_quiet)
    print("matmul rate: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in rates.items()))
    return info, rates
