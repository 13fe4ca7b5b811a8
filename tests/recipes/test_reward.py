"""End-to-end reward modelling: a nano GPT-2 learns to prefer the short correct answer, from
rankings, from pairs, and from HH-style pairs without a prompt."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from rlhf.config import load_config
from rlhf.recipes import reward

from .helpers import pairs, read_metrics, reward_overrides, write_jsonl


def run_reward(nano_model, train, out, *extra):
    cfg = load_config(reward.Config, None, reward_overrides(nano_model, train, out, *extra))
    return cfg, reward.train(cfg)


def score(model, tok, text: str) -> float:
    ids = tok(text + tok.eos_token, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return float(model(input_ids=ids).logits[0, 0])


def preferred_and_others(record: dict) -> tuple[str, list[str]]:
    """(preferred text, the other texts), each a whole prompt + response."""
    if "ranks" in record:
        best = record["ranks"].index(1)
        texts = [record["prompt"] + r for r in record["responses"]]
        return texts[best], texts[:best] + texts[best + 1 :]
    prompt = record.get("prompt", "")
    return prompt + record["chosen"], [prompt + record["rejected"]]


@pytest.mark.parametrize("kind", ["rankings", "pairs", "hh"])
def test_reward_model_learns_preferences(nano_model, data_dir, tmp_path, kind):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "run"
    eval_file = data_dir / f"{kind}_eval.jsonl"
    cfg, final = run_reward(nano_model, data_dir / f"{kind}.jsonl", out, f"data.eval={eval_file}")

    # training and the final evaluation are logged; a learnable signal is learned
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, cfg.train.max_steps + 1))
    assert all(math.isfinite(m["loss"]) for m in metrics if "loss" in m)
    # an untrained scalar head can rank these by chance (length alone tells them apart), but its
    # margins are ~0.1 and its loss ~log 2: learning shows in the loss and the margin
    train_loss = [m["loss"] for m in metrics if "loss" in m]
    assert train_loss[-1] < 0.5 * train_loss[0], train_loss
    assert metrics[-1]["eval_accuracy"] > 0.8, metrics[-1]
    assert metrics[-1]["eval_margin"] > 1.0, metrics[-1]

    counts = json.loads((out / "data.json").read_text())["train"]
    comparisons_per_record = 3 if kind == "rankings" else 1
    assert counts["records"] == 48 and counts["comparisons"] == 48 * comparisons_per_record

    # final/ is a plain one-label sequence classifier carrying the reward statistics
    assert (final / "model.safetensors").is_file()
    config = json.loads((final / "config.json").read_text())
    assert math.isfinite(config["reward_mean"]) and config["reward_std"] > 0
    model = AutoModelForSequenceClassification.from_pretrained(final, num_labels=1).eval()
    tok = AutoTokenizer.from_pretrained(final)
    assert model.config.num_labels == 1
    assert model.config.pad_token_id == tok.pad_token_id

    # ... and, reloaded, it scores the preferred response above the others for most records
    records = [json.loads(line) for line in eval_file.read_text().splitlines()]
    wins, gaps = 0, []
    for rec in records:
        best, others = preferred_and_others(rec)
        r_best, r_others = score(model, tok, best), [score(model, tok, o) for o in others]
        wins += all(r_best > r for r in r_others)
        gaps += [r_best - r for r in r_others]
    assert wins / len(records) > 0.8
    assert sum(gaps) / len(gaps) > 1.0


def test_reward_weights_are_used(nano_model, data_dir, tmp_path):
    # every other record is reversed (the bad answer "chosen") but has weight 0: if weights are
    # honoured the model sees only the consistent half and still learns
    recs = pairs(64, seed=3)
    for rec in recs[::2]:
        rec["chosen"], rec["rejected"], rec["weight"] = rec["rejected"], rec["chosen"], 0.0
    for rec in recs[1::2]:
        rec["weight"] = 2.0
    train = write_jsonl(tmp_path / "weighted.jsonl", recs)
    out = tmp_path / "run"
    run_reward(nano_model, train, out, f"data.eval={data_dir / 'pairs_eval.jsonl'}")
    # with the reversed half counted the signal cancels out: accuracy 0.5, margin ~0
    assert read_metrics(out)[-1]["eval_accuracy"] > 0.8
    assert read_metrics(out)[-1]["eval_margin"] > 1.0


def test_reward_margins_are_used(nano_model, tmp_path):
    # Llama 2 margin loss: -log sigmoid(r_w - r_l - m); with untrained rewards r_w - r_l ~ 0, so
    # the first loss is ~ m + log 1p(e^-m) ~ 5 with m = 5, and ~ log 2 when margins are ignored
    recs = [{**rec, "margin": 5.0} for rec in pairs(16, seed=4)]
    train = write_jsonl(tmp_path / "margins.jsonl", recs)
    run_reward(nano_model, train, tmp_path / "with", "train.max_steps=1")
    run_reward(nano_model, train, tmp_path / "without", "train.max_steps=1", "reward.use_margin=false")
    with_margin = read_metrics(tmp_path / "with")[0]["loss"]
    without = read_metrics(tmp_path / "without")[0]["loss"]
    assert with_margin == pytest.approx(5.0, abs=0.5)
    assert without == pytest.approx(math.log(2), abs=0.3)


def test_tokenizer_without_pad_token_gets_its_own(nano_model, data_dir, tmp_path):
    """Like GPT-2's: pad == EOS would make the classifier read the first EOS and a masked loss
    unable to tell padding from the end of an answer, so a distinct pad token is added."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tmp_path / "no-pad"
    shutil.copytree(nano_model, model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.pad_token = tok.eos_token
    tok.save_pretrained(model_dir)
    assert AutoTokenizer.from_pretrained(model_dir).pad_token_id == tok.eos_token_id

    _, final = run_reward(model_dir, data_dir / "pairs.jsonl", tmp_path / "run", "train.max_steps=3")
    tok = AutoTokenizer.from_pretrained(final)
    model = AutoModelForSequenceClassification.from_pretrained(final, num_labels=1)
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)


def ranking_groups(tok, k_per_group: list[int], seed: int) -> list[dict]:
    """Tokenized rankings (as reward.load_groups gives them) of K responses each, prompts of
    different lengths, responses of different lengths, one ending in the padding token."""
    import random

    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "seven"]
    out = []
    for g, k in enumerate(k_per_group):
        prompt = tok(" ".join(rng.choice(words) for _ in range(4 + 3 * g)), add_special_tokens=False)
        texts = [" " + " ".join(rng.choice(words) for _ in range(1 + (i * 3 + g) % 6)) for i in range(k)]
        responses = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
        responses[-1] = responses[-1] + [tok.pad_token_id]  # the head must skip it, packed or not
        better = [i for i in range(k) for _ in range(i + 1, k)]
        worse = [j for i in range(k) for j in range(i + 1, k)]
        out.append(
            {
                "prompt_ids": prompt["input_ids"],
                "response_ids": responses,
                "better": better,
                "worse": worse,
                "margins": [0.0] * len(better),
                "weight": 1.0,
            }
        )
    return out


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_a_shared_prompt_row_gives_each_response_its_own_rows_score_and_gradient(arch, attn):
    """reward.share_prompt: each ranking's prompt read once, its K responses packed behind it,
    gives every response the score (and the loss its gradient) that its own row gives."""
    from transformers import AutoModelForSequenceClassification

    from rlhf.data.collators import collate_groups
    from rlhf.losses.bradley_terry import group_losses
    from rlhf.models.tiny import tiny_config, train_tokenizer
    from rlhf.rollout.groups import pack_prompts

    tok = train_tokenizer([f"alpha beta gamma delta river stone cloud seven {i}" for i in range(50)], 200)
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    cfg = tiny_config(arch, "nano", vocab_size=len(tok), num_labels=1, **ids)
    model = AutoModelForSequenceClassification.from_config(cfg, attn_implementation=attn).eval()
    items = ranking_groups(tok, [2, 4, 3], seed=0)
    rows = collate_groups(items, tok.pad_token_id)
    packed = dict(rows)
    prompts, responses = [g["prompt_ids"] for g in items], [g["response_ids"] for g in items]
    packed["groups"] = pack_prompts(prompts, responses, tok.pad_token_id, tok.pad_token_id)
    assert packed["groups"].input_ids.shape[0] == 3  # one row a ranking, not 9

    def loss_and_grads(batch):
        model.zero_grad()
        r = reward.score(model, batch).float()
        loss = group_losses(r, batch["better"], batch["worse"], batch["pair_group"], 3, batch["margin"]).sum()
        loss.backward()
        return r.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    r_rows, g_rows = loss_and_grads(rows)
    r_packed, g_packed = loss_and_grads(packed)
    torch.testing.assert_close(r_packed, r_rows, atol=1e-5, rtol=1e-5)
    assert len(g_packed) == len(g_rows)
    for a, b in zip(g_packed, g_rows):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_reward_run_packs_its_rankings_and_learns_what_rows_learn(nano_model, tmp_path, monkeypatch):
    """With long prompts and 4 responses a ranking packing pays: the run reads each prompt once,
    and logs the losses of the same run on one row a response (reward.share_prompt=false)."""
    import random

    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "home", "to", "sleep"]
    records = []
    for _ in range(24):
        prompt = " ".join(rng.choice(words) for _ in range(30))
        answers = [" ".join(rng.choice(words) for _ in range(2 + 2 * i)) for i in range(4)]
        records.append({"prompt": prompt, "responses": answers, "ranks": [1, 2, 3, 4]})  # shortest best
    write_jsonl(tmp_path / "rankings.jsonl", records)
    packed_batches = []
    original = reward.score

    def spy(model, batch):
        packed_batches.append("groups" in batch)
        return original(model, batch)

    monkeypatch.setattr(reward, "score", spy)
    steps = ["train.max_steps=6", "data.max_length=128"]
    run_reward(nano_model, tmp_path / "rankings.jsonl", tmp_path / "packed", *steps)
    assert packed_batches and all(packed_batches)
    packed_batches.clear()
    rows_only = "reward.share_prompt=false"
    run_reward(nano_model, tmp_path / "rankings.jsonl", tmp_path / "rows", *steps, rows_only)
    assert packed_batches and not any(packed_batches)
    losses = {
        name: [m["loss"] for m in read_metrics(tmp_path / name) if "loss" in m] for name in ("packed", "rows")
    }
    assert len(losses["packed"]) == 6
    assert losses["packed"] == pytest.approx(losses["rows"], rel=1e-3)


def test_a_ranking_longer_than_the_sliding_window_is_named_before_the_run_starts(data_dir, tmp_path):
    """reward.share_prompt packs a ranking into one row: a model whose sliding attention window is
    shorter than that row fails with the key to change, before a run directory is made."""
    import json as json_

    from rlhf.config import ConfigError
    from rlhf.models.tiny import make_tiny_checkpoint

    from .conftest import corpus

    qwen = make_tiny_checkpoint(tmp_path / "qwen", corpus(), arch="qwen2", vocab_size=300)
    config = json_.loads((qwen / "config.json").read_text())
    config.update(use_sliding_window=True, sliding_window=8, max_window_layers=0)
    (qwen / "config.json").write_text(json_.dumps(config))
    out = tmp_path / "run"
    with pytest.raises(
        ConfigError, match=r"reward.share_prompt: .* sliding window of 8; set reward.share_prompt=false"
    ):
        run_reward(qwen, data_dir / "rankings.jsonl", out)
    assert not out.exists()
    run_reward(qwen, data_dir / "rankings.jsonl", out, "reward.share_prompt=false", "train.max_steps=1")
    assert (out / "final" / "config.json").is_file()
