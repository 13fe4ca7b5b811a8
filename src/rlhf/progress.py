"""Progress output that reads well in a terminal and in a log file.

On a terminal: tqdm's bar. Written to a file or a pipe (CI, ``nohup``, a cluster's job log),
tqdm's carriage-return updates pile up into hundreds of kilobytes; there ``PlainProgress`` prints
one plain line every tenth of the run (and at most every ``every_s`` seconds otherwise), and
``quiet_third_party_bars`` keeps transformers', datasets' and the Hub's own bars out, and
``quiet_third_party_notices`` a notice no user of ours needs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, TextIO


class PlainProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` as plain lines, for output that is not a terminal."""

    def __init__(
        self, total: int, initial: int, desc: str, stream: TextIO | None = None, every_s: float = 60.0
    ) -> None:
        self.total, self.n, self.desc = total, initial, desc
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.postfix: dict[str, Any] = {}
        self.t0 = self.last_t = time.perf_counter()
        self.start = initial
        self.step = max(1, total // 10)
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if self.n % self.step == 0 or self.n == self.total or now - self.last_t >= self.every_s:
            self._line(now)

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = kw

    def _line(self, now: float) -> None:
        self.last_t = now
        done = self.n - self.start
        rate = f", {(now - self.t0) / done:.2f} s/step" if done else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"[{self.desc}] step {self.n}/{self.total}{rate}{extra}", file=self.stream, flush=True)

    def close(self) -> None:
        if not self.closed and self.n != self.total and self.n > self.start:
            self._line(time.perf_counter())
        self.closed = True


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(total: int, initial: int, disable: bool, desc: str):
    """A tqdm bar on a terminal, plain lines otherwise, nothing when ``disable`` (other processes)."""
    if not disable and not is_terminal():
        return PlainProgress(total, initial, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disable, desc=desc, dynamic_ncols=True)


def quiet_third_party_bars() -> None:
    """Turn off the progress bars of transformers ("Loading weights", "Writing model shards"),
    datasets (map, filter) and huggingface_hub: our own progress says enough."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def quiet_third_party_notices() -> None:
    """Drop DeepSpeed's "Setting accelerator to CPU" warning. Where DeepSpeed is installed,
    accelerate imports it whenever a model is unwrapped to be saved, and on a machine without a GPU
    DeepSpeed announces at import that it found none: noise in the log of a run the user chose to
    run on the CPU. DeepSpeed sets its logger's level when it creates it; a filter stays."""
    logging.getLogger("DeepSpeed").addFilter(lambda r: "Setting accelerator to CPU" not in r.getMessage())
