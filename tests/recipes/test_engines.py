"""The engine settings, the process-count check and the whole-model check, without a launch."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from rlhf.config import ConfigError
from rlhf.recipes.engines import check_process_count, fill_deepspeed_config
from rlhf.recipes.saving import SaveError, check_whole, drop_tied_copies
from rlhf.sections import TrainConfig


def test_deepspeed_config_is_filled_from_train_settings():
    cfg = TrainConfig(batch_size=3, grad_accum=2, max_grad_norm=0.5, mixed_precision="bf16")
    ds = fill_deepspeed_config(
        {"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 3}}, cfg, num_processes=4
    )
    assert ds["train_micro_batch_size_per_gpu"] == 3
    assert ds["gradient_accumulation_steps"] == 2
    assert ds["train_batch_size"] == 3 * 2 * 4
    assert ds["gradient_clipping"] == 0.5
    assert ds["bf16"] == {"enabled": True}
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_a_deepspeed_config_that_disagrees_with_train_is_an_error():
    with pytest.raises(ConfigError, match=r"train_micro_batch_size_per_gpu=16.*train.batch_size gives 2"):
        fill_deepspeed_config({"train_micro_batch_size_per_gpu": 16}, TrainConfig(batch_size=2), 2)
    with pytest.raises(ConfigError, match="bf16.enabled=True.*mixed_precision=no"):
        fill_deepspeed_config({"bf16": {"enabled": True}}, TrainConfig(), 2)


def test_a_launch_with_fewer_processes_than_asked_is_an_error():
    # accelerate's simple launcher (no --multi_gpu on a CPU machine) started one process for N > 1
    with pytest.raises(ConfigError, match="started only this one"):
        check_process_count(
            1, {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
        )
    # torchrun started 2, but each process runs alone
    with pytest.raises(ConfigError, match="WORLD_SIZE=2"):
        check_process_count(1, {"WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    check_process_count(2, {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "ACCELERATE_USE_CPU": "1"})
    check_process_count(1, {"ACCELERATE_USE_CPU": "False"})  # accelerate launch of one process
    check_process_count(1, {})  # plain python


@pytest.fixture
def written(nano_model, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(nano_model)
    model.save_pretrained(tmp_path)
    return tmp_path, type(model)


def test_a_whole_model_passes_the_check(written):
    directory, cls = written
    check_whole(directory, cls)


@pytest.mark.parametrize("damage", ["empty", "shard", "missing"])
def test_a_partial_model_fails_the_check(written, damage):
    directory, cls = written
    path = directory / "model.safetensors"
    state = load_file(path)
    name = "transformer.h.1.mlp.c_fc.weight"
    if damage == "empty":  # what ZeRO-3's partitioned parameters hold outside a gather
        state[name] = torch.empty(0)
    elif damage == "shard":  # one FSDP2 process's rows
        state[name] = state[name][: state[name].shape[0] // 2].clone()
    else:
        del state[name]
    save_file(state, path)
    with pytest.raises(SaveError, match=rf"does not hold a whole model: .*{name.replace('.', '[.]')}"):
        check_whole(directory, cls)


def test_tied_copies_are_saved_once(written):
    directory, cls = written
    state = load_file(directory / "model.safetensors")
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()  # as a gather returns them
    config = cls.config_class.from_pretrained(directory)
    assert "lm_head.weight" not in drop_tied_copies(state, cls, config)


def test_whole_load_lifts_zero3_and_draws_from_the_seed(nano_model):
    """The critic's new head: built whole although a stage-3 DeepSpeed config is registered (as
    accelerate registers one under ZeRO-3), and the same tensor whatever the loads before it drew;
    the registration comes back afterwards."""
    from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled

    from rlhf.models.loading import load_scalar_model, load_tokenizer
    from rlhf.recipes.rl_sharding import whole_load
    from rlhf.sections import ModelConfig

    tokenizer = load_tokenizer(str(nano_model))
    heads = []
    # registers itself with transformers through a weak reference: kept alive until the end
    registered = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    try:
        for draws_before in (0, 7):
            torch.rand(draws_before)  # what a partitioned load of the policy would leave behind
            with whole_load(seed=3):
                assert not is_deepspeed_zero3_enabled()
                model = load_scalar_model(ModelConfig(path=str(nano_model)), tokenizer)
            assert is_deepspeed_zero3_enabled()
            assert not hasattr(model.score.weight, "ds_id")  # whole, not a ZeRO-3 partition
            heads.append(model.score.weight.detach().clone())
    finally:
        from transformers.integrations import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    del registered
    torch.testing.assert_close(heads[0], heads[1], rtol=0, atol=0)
