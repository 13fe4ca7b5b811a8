"""A LoRA run writes its PEFT adapter to <output_dir>/adapter/ beside the merged final/, loadable
by peft on the base; every verb (and `rlhf serve`) starts from an adapter directory."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rlhf import cli

from .helpers import reward_overrides, sft_overrides

LORA = ["model.lora_r=4", "model.lora_alpha=8", "train.max_steps=6", "train.lr=1e-2"]


@pytest.fixture(scope="module")
def sft_lora(nano_model, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "sft"
    assert cli.main(["sft", *sft_overrides(nano_model, data_dir / "demos.jsonl", out, *LORA)]) == 0
    return out


def ids(tok):
    return torch.tensor([tok("What is 2 + 3?")["input_ids"]])


@torch.no_grad()
def test_the_adapter_loads_with_peft_on_the_base_and_equals_the_merged_model(sft_lora, nano_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = sft_lora / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    assert not (sft_lora / "final" / "adapter_config.json").exists()  # final/ is a plain merged model
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        nano_model.resolve()
    )
    tok = AutoTokenizer.from_pretrained(sft_lora / "final")
    merged = AutoModelForCausalLM.from_pretrained(sft_lora / "final")
    x = ids(tok)
    plain = AutoModelForCausalLM.from_pretrained(nano_model)
    assert not torch.allclose(plain(x).logits, merged(x).logits, atol=1e-3)  # the adapter learned something
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(nano_model), str(adapter))
    torch.testing.assert_close(peft(x).logits, merged(x).logits, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_every_loader_and_serve_start_from_the_adapter_dir(sft_lora):
    from transformers import AutoModelForCausalLM

    from rlhf.models.loading import load_policy, load_tokenizer
    from rlhf.sections import ModelConfig
    from rlhf.serve.model import GenRequest, load_chat_model

    adapter = str(sft_lora / "adapter")
    tok = load_tokenizer(adapter)
    model = load_policy(ModelConfig(path=adapter), tok)
    merged = AutoModelForCausalLM.from_pretrained(sft_lora / "final")
    torch.testing.assert_close(model(ids(tok)).logits, merged(ids(tok)).logits, atol=1e-5, rtol=1e-4)
    replies = []
    for path in (adapter, str(sft_lora / "final")):
        chat = load_chat_model(path, device="cpu", prompt_format="raw")
        req = GenRequest(chat.encode([{"role": "user", "content": "What is 2 + 3?"}]), 6, temperature=0.0)
        replies.append(chat.complete(req)[0].text)
        assert chat.name == "sft"  # a run's adapter/ and final/ are served under the run's name
    assert replies[0] == replies[1]


def test_dpo_and_a_lora_reward_model_from_adapters(sft_lora, data_dir, tmp_path, capsys):
    from rlhf.models.loading import load_scalar_model, load_tokenizer
    from rlhf.sections import ModelConfig

    adapter = sft_lora / "adapter"
    out = tmp_path / "dpo"
    args = sft_overrides(adapter, data_dir / "pairs.jsonl", out, "train.max_steps=1")
    assert cli.main(["dpo", *args]) == 0, capsys.readouterr().err
    assert not (out / "adapter").exists()  # a full fine-tune writes no adapter
    rm = tmp_path / "rm"
    args = reward_overrides(adapter, data_dir / "rankings.jsonl", rm, *LORA, "train.max_steps=2")
    assert cli.main(["reward", *args]) == 0, capsys.readouterr().err
    tok = load_tokenizer(str(rm / "final"))
    batch = tok(["What is 2 + 3? 5."], return_tensors="pt")
    scores = []
    for path in (rm / "adapter", rm / "final"):
        model = load_scalar_model(ModelConfig(path=str(path)), tok, trained=True).eval()
        with torch.no_grad():
            scores.append(model(**batch).logits)
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=1e-4)


def test_an_adapter_whose_base_is_gone_is_a_clear_error(sft_lora, data_dir, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    shutil.copytree(sft_lora / "adapter", adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    assert cli.main(["sft", *sft_overrides(adapter, data_dir / "demos.jsonl", tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"is a LoRA adapter whose base model {tmp_path / 'gone'} does not exist" in err, err
