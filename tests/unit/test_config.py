"""rlhf.config: field docs, YAML + dotted overrides, and the errors a user can cause."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rlhf.config import (
    ConfigError,
    all_keys,
    describe,
    field_docs,
    help_text,
    load_config,
    parse_overrides,
    save_config,
)
from rlhf.recipes import reward, sft
from rlhf.sections import ModelConfig, TrainConfig


@dataclass
class Base:
    alpha: int = 1
    """first line
    continues here"""
    beta: str = "x"
    undocumented: float = 0.5


@dataclass
class Derived(Base):
    gamma: list[int] = field(default_factory=list)
    """added by the subclass"""


def write(tmp_path, text: str, name: str = "cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- field docs and help


def test_field_docs_come_from_the_string_under_each_field():
    docs = field_docs(TrainConfig)
    assert docs["lr"] == "peak learning rate (AdamW)"
    assert docs["seed"] == "seed for initialisation, data order and dropout"
    assert field_docs(ModelConfig)["lora_target_modules"] == (
        "module names LoRA adapts; 'all-linear' adapts every linear layer but the output head"
    )
    assert field_docs(reward.RewardSection)["use_margin"].startswith("subtract each pair's `margin`")


def test_field_docs_join_lines_skip_undocumented_and_inherit():
    docs = field_docs(Derived)
    assert docs == {"alpha": "first line continues here", "gamma": "added by the subclass"}


def test_every_section_field_is_documented():
    for cls in (sft.Config, reward.Config):
        for key, _tp, _default, doc in describe(cls):
            assert doc, f"{cls.__module__}: {key} has no docstring"


def test_help_text_lists_every_key_with_doc_and_default():
    text = help_text(sft.Config)
    lines = text.splitlines()
    keys = all_keys(sft.Config)
    assert "model.path" in keys and "sft.packing" in keys and "train.lr" in keys
    for key in keys:
        assert sum(line.startswith(f"  {key} = ") for line in lines) == 1, key
    assert "  train.lr = 0.0001   [float]" in lines
    assert "  model.dtype = 'float32'   ['float32' | 'bfloat16']" in lines
    assert "  train.adam_betas = [0.9, 0.95]   [list[float]]" in lines
    # the doc line follows its key line
    i = lines.index("  train.lr = 0.0001   [float]")
    assert lines[i + 1] == "      peak learning rate (AdamW)"
    i = lines.index("  sft.packing = False   [bool]")
    assert lines[i + 1].strip().startswith("concatenate whole examples")


def test_help_text_shows_the_verbs_own_section_defaults():
    lines = help_text(reward.Config).splitlines()
    assert "  train.lr = 5e-05   [float]" in lines
    assert "  train.output_dir = 'runs/reward'   [str]" in lines
    assert "  train.output_dir = 'runs/sft'   [str]" in help_text(sft.Config).splitlines()


# ---------------------------------------------------------------- precedence and coercion


def test_defaults_without_file_or_overrides():
    cfg = load_config(sft.Config)
    assert cfg == sft.Config()
    assert cfg.train.output_dir == "runs/sft"
    assert cfg.train.lr == 1e-4


def test_override_beats_file_beats_default(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: 4\n  lr: 2.0e-3\nmodel:\n  path: from/file\n")
    cfg = load_config(sft.Config, path, ["train.batch_size=16", "data.max_length=64"])
    assert cfg.train.batch_size == 16  # override beats file
    assert cfg.train.lr == 2e-3  # file beats default
    assert cfg.model.path == "from/file"
    assert cfg.data.max_length == 64  # override beats default
    assert cfg.train.seed == 0  # default
    assert cfg.train.output_dir == "runs/sft"


def test_yaml_exponent_without_dot_coerces_to_float(tmp_path):
    # YAML 1.1 reads `1e-4` as the string "1e-4"
    cfg = load_config(sft.Config, write(tmp_path, "train:\n  lr: 1e-4\n  max_grad_norm: 2\n"))
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1e-4
    assert isinstance(cfg.train.max_grad_norm, float) and cfg.train.max_grad_norm == 2.0
    cfg = load_config(sft.Config, None, ["train.lr=3e-5", "train.epochs=2"])
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 3e-5
    assert isinstance(cfg.train.epochs, float) and cfg.train.epochs == 2.0


def test_override_value_types():
    cfg = load_config(
        sft.Config,
        None,
        [
            "sft.packing=true",
            "train.adam_betas=0.8,0.99",
            "model.lora_target_modules=[q_proj,v_proj]",
            "model.path=123",
            "data.eval=",
        ],
    )
    assert cfg.sft.packing is True
    assert cfg.train.adam_betas == [0.8, 0.99]
    assert cfg.model.lora_target_modules == ["q_proj", "v_proj"]
    assert cfg.model.path == "123"
    assert cfg.data.eval == ""


def test_partial_sections_keep_the_verbs_own_defaults(tmp_path):
    cfg = load_config(reward.Config, None, ["train.max_steps=3"])
    assert cfg.train.max_steps == 3
    assert cfg.train.lr == 5e-5
    assert cfg.train.output_dir == "runs/reward"
    assert cfg.reward.use_margin is True
    cfg = load_config(
        reward.Config, write(tmp_path, "train:\n  max_steps: 7\nreward:\n  use_margin: false\n")
    )
    assert (cfg.train.max_steps, cfg.train.lr, cfg.train.output_dir) == (7, 5e-5, "runs/reward")
    assert cfg.reward.use_margin is False
    assert cfg.reward.stats_records == 2000


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(reward.Config, None, ["train.max_steps=3", "model.dtype=bfloat16", "train.lr=1e-3"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(reward.Config, tmp_path / "config.yaml") == cfg


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(reward.Config, write(tmp_path, "")) == reward.Config()


def test_parse_overrides():
    assert parse_overrides(["train.lr=1e-4", "model.path=a/b", "x.y=", "a.b=c=d"]) == [
        ("train.lr", "1e-4"),
        ("model.path", "a/b"),
        ("x.y", ""),
        ("a.b", "c=d"),
    ]


# ---------------------------------------------------------------- errors


def test_unknown_key_in_file_names_key_file_and_nearest(tmp_path):
    path = write(tmp_path, "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, path)
    msg = str(err.value)
    assert "'train.lrr'" in msg
    assert str(path) in msg
    assert "did you mean train.lr" in msg


def test_unknown_key_in_override_names_key_and_nearest():
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, None, ["train.lrr=0.1"])
    msg = str(err.value)
    assert "'train.lrr'" in msg
    assert "command-line override" in msg
    assert "did you mean train.lr" in msg


def test_unknown_section_in_file(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'optim'") as err:
        load_config(sft.Config, path)
    assert str(path) in str(err.value)


def test_file_errors_are_reported_even_when_an_override_sets_the_key(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: abc\n")
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, path, ["train.batch_size=4"])
    assert str(path) in str(err.value) and "train.batch_size" in str(err.value)


def test_wrong_type_is_named():
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, None, ["train.batch_size=abc"])
    msg = str(err.value)
    assert "train.batch_size" in msg and "expected int" in msg and "'abc'" in msg
    with pytest.raises(ConfigError, match="train.batch_size.*expected int"):
        load_config(sft.Config, None, ["train.batch_size=1.5"])
    with pytest.raises(ConfigError, match="train.batch_size.*expected int"):
        load_config(sft.Config, None, ["train.batch_size=true"])  # a bool is not an int
    with pytest.raises(ConfigError, match="sft.packing.*expected bool"):
        load_config(sft.Config, None, ["sft.packing=1"])
    with pytest.raises(ConfigError, match="train.lr.*expected float"):
        load_config(sft.Config, None, ["train.lr=fast"])


def test_wrong_type_in_file_names_the_file(tmp_path):
    path = write(tmp_path, "train:\n  batch_size: abc\n")
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, path)
    assert "train.batch_size" in str(err.value) and str(path) in str(err.value)


def test_literal_violation_is_named():
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, None, ["model.dtype=float16"])
    msg = str(err.value)
    assert "model.dtype" in msg and "'float16'" in msg and "'float32' | 'bfloat16'" in msg
    with pytest.raises(ConfigError, match="train.schedule"):
        load_config(reward.Config, None, ["train.schedule=step"])


def test_list_item_of_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"train.adam_betas\[1\]"):
        load_config(sft.Config, None, ["train.adam_betas=0.9,high"])


def test_section_given_as_a_scalar(tmp_path):
    path = write(tmp_path, "train: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, path)
    msg = str(err.value)
    assert "train: expected a section (mapping)" in msg and str(path) in msg and "5" in msg
    with pytest.raises(ConfigError, match="'train'"):
        load_config(sft.Config, None, ["train=5"])


def test_value_given_as_a_section(tmp_path):
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(sft.Config, write(tmp_path, "train:\n  lr:\n    peak: 1\n"))
    with pytest.raises(ConfigError, match="train.lr.peak"):
        load_config(sft.Config, None, ["train.lr.peak=1"])


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("3\n", "int")])
def test_non_mapping_yaml(tmp_path, text, kind):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(sft.Config, path)
    assert str(path) in str(err.value) and f"must hold a mapping of sections, got {kind}" in str(err.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = write(tmp_path, "train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(sft.Config, path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(sft.Config, tmp_path / "nope.yaml")


@pytest.mark.parametrize("item", ["train.lr", "=3", "lr 3"])
def test_malformed_override(item):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(sft.Config, None, [item])


def test_yaml_bare_no_is_read_as_the_string_choice(tmp_path):
    from rlhf.recipes import sft

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  mixed_precision: no\n")
    assert load_config(sft.Config, path).train.mixed_precision == "no"
    assert load_config(sft.Config, None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
