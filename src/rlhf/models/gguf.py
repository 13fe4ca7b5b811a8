"""GGUF files (llama.cpp's format) as ordinary Hugging Face checkpoints, converted once and cached.

transformers reads a GGUF file (with the ``gguf`` package) by dequantising every tensor to float,
which takes about a minute for a 135M model on two CPU cores, and the model it returns is flagged
as quantised: it refuses ``save_pretrained``, and training code would have to know it came from a
GGUF file. So a GGUF file is converted once: its state dict goes into a plain model built from the
same config (no quantisation flag; tied embeddings stay tied), saved as safetensors with the
tokenizer (chat template included), in a cache directory keyed by the file. Every later load is an
ordinary ``from_pretrained`` of that directory.

The cache lives in ``$RLHF_GGUF_CACHE`` (default ``~/.cache/rlhf/gguf``), one directory per file
named after it and the SHA-256 of its content: a changed file is converted again, and the same file
reinstalled (a new modification time) or found at another path is not. The hash is taken once per
process and file (0.1 s for 100 MB). A conversion is written to a temporary directory and renamed
into place, under a file lock, so a crash leaves no half checkpoint and concurrent runs convert once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from rlhf.models.errors import ModelError

CACHE_ENV = "RLHF_GGUF_CACHE"
GGUF_MAGIC = b"GGUF"
# bump when what a conversion writes changes, so that caches written before are not reused
CONVERSION_VERSION = 1
INSTALL_HINT = "pip install 'rlhf[real]' (or: pip install gguf)"


def is_gguf(path: str | Path) -> bool:
    """Whether ``path`` names a GGUF file: by its suffix, or by the magic bytes of an existing file."""
    p = Path(path).expanduser()
    if p.suffix.lower() == ".gguf":
        return True
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def cache_root() -> Path:
    """Where converted checkpoints live: ``$RLHF_GGUF_CACHE``, else ``~/.cache/rlhf/gguf``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "rlhf" / "gguf"


def check_gguf(path: str | Path, what: str = "model.path") -> Path:
    """The GGUF file at ``path``, checked: it exists, is readable, is GGUF, and ``gguf`` is installed."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"{what}: GGUF file {path} does not exist")
    if not p.is_file():
        raise ModelError(f"{what}: {path} is not a file; give the path of a .gguf file")
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise ModelError(f"{what}: cannot read GGUF file {path} ({err.strerror})") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{what}: {path} is not a GGUF file (it does not start with the bytes 'GGUF')")
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            f"{what}: {path} is a GGUF file; reading it needs the `gguf` package: {INSTALL_HINT}"
        )
    return p.resolve()


# (absolute path, size, mtime) -> content digest: hashed once per process and file
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of the file's content (remembered while its path, size and mtime stay the same)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def cache_dir_for(path: str | Path) -> Path:
    """The cache directory that holds (or will hold) the conversion of GGUF file ``path``."""
    p = Path(path).expanduser().resolve()
    key = hashlib.sha256(f"{file_digest(p)}\0{CONVERSION_VERSION}".encode()).hexdigest()[:16]
    return cache_root() / f"{p.stem}-{key}"


def gguf_checkpoint(path: str | Path, what: str = "model.path") -> Path:
    """A Hugging Face checkpoint directory equal to GGUF file ``path``: converted on first use, cached.

    Raises ModelError naming ``what`` for a missing or unreadable file, a missing ``gguf`` package,
    or a file transformers cannot read (an architecture it does not support).
    """
    src = check_gguf(path, what)
    dest = cache_dir_for(src)
    if (dest / "config.json").is_file():
        return dest
    root = dest.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelError(f"cannot create the GGUF cache {root} ({err.strerror}); set {CACHE_ENV}") from None
    with open(root / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process converting the same file: wait for it
        if (dest / "config.json").is_file():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=root))
        try:
            convert(src, tmp, what)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def convert(src: Path, out: Path, what: str = "model.path") -> None:
    """Write GGUF file ``src`` into directory ``out`` as a float32 safetensors checkpoint + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        quantised = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        raise ModelError(
            f"{what}: transformers cannot read GGUF file {src} ({str(err).splitlines()[0]})"
        ) from None
    config = quantised.config
    config.quantization_config = None
    delattr(config, "quantization_config")
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict(), strict=True)
    model.tie_weights()
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    st = src.stat()
    source = {
        "gguf_file": str(src),
        "size": st.st_size,
        "sha256": file_digest(src),
        "version": CONVERSION_VERSION,
    }
    (out / "gguf_source.json").write_text(json.dumps(source, indent=2) + "\n")
