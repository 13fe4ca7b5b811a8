"""Fixtures of the AI-feedback tests: a nano checkpoint, a "rigged" one for the served judge,
and `rlhf serve` started on a free loopback port.

The rigged model is the nano GPT-2 with two edits: the final LayerNorm's bias gets a large first
coordinate, and the embeddings of the tokens "A" and "B" (tied to the output head) a matching one.
Every next-token distribution then has "A" and "B" as its two most likely tokens, their order
still depending on the input: a random model that nonetheless answers a judge prompt with a
verdict, so both the log-prob and the parsed-verdict paths can be tested against a real server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

API_KEY = "test-key-123"


def corpus() -> list[str]:
    texts = []
    for a in range(10):
        for b in range(10):
            texts += [f"What is {a} + {b}?", f" {a + b}.", f"The answer is {a + b}."]
    texts += ["Response A: Response B: Answer: Critique request: Revision request: Human: Assistant:"]
    return texts


@pytest.fixture(scope="session")
def nano_dir(tmp_path_factory) -> Path:
    from rlhf.models.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("nano"), corpus(), vocab_size=300)


@pytest.fixture(scope="session")
def rigged_dir(nano_dir, tmp_path_factory) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("rigged")
    shutil.copytree(nano_dir, out, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    a, b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
    with torch.no_grad():
        model.transformer.ln_f.bias[0] = 8.0
        model.transformer.wte.weight[a, 0] = 1.0
        model.transformer.wte.weight[b, 0] = 1.0
    model.save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rlhf serve` in a subprocess on loopback."""

    def __init__(self, model: Path, log: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [
            sys.executable,
            "-m",
            "rlhf.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *extra,
        ]
        self.log = log
        self.fh = log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT, env={**os.environ})

    def wait(self, timeout: float = 120.0) -> Server:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"rlhf serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url.removesuffix("/v1") + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rlhf serve did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.fh.close()


@pytest.fixture(scope="session")
def server(rigged_dir, tmp_path_factory):
    """`rlhf serve` of the rigged model, with an API key, shared by the serve and endpoint tests."""
    srv = Server(
        rigged_dir,
        tmp_path_factory.mktemp("serve") / "serve.log",
        "--served-model-name",
        "rigged",
        "--api-key",
        API_KEY,
    ).wait()
    yield srv
    srv.stop()
