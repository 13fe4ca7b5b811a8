"""The wiring of `rlhf demo --preset smollm`, with a tiny Llama as the base model and tiny step
counts: every stage writes an ordinary run directory with a Hugging Face model, and results.json
lists every row with its model directory and figures. (The real preset runs on SmolLM2-135M;
docs/demo-smollm.md has its measured figures.)"""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rlhf.demo.smollm import heldout_tasks, run_smollm_demo
from rlhf.demo.smollm_preset import SMOL_PRESETS, SmolPreset
from rlhf.models.tiny import make_tiny_checkpoint
from rlhf.realtask.demonstrations import REFUSAL
from rlhf.realtask.general import HELDOUT_TEXT
from rlhf.realtask.prompts import chat, family_sample, tasks


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smollm-demo")
    texts = [t.prompt for t in tasks("train")] + [REFUSAL, *HELDOUT_TEXT]
    base = make_tiny_checkpoint(root / "tiny", texts, arch="llama", size="nano", vocab_size=400)
    preset = replace(
        SMOL_PRESETS["smollm"],
        base=str(base),
        n_sft=16,
        n_rating=8,
        n_rl=8,
        heldout_per_family=1,
        n_replay=4,
        demo_tokens=8,
        demo_words=8,
        lora_r=4,
        max_length=64,
        batch_size=4,
        sft_steps=2,
        k=2,
        raters_per_prompt=1,
        max_new_tokens=6,
        ppo_steps=1,
        ppo_batch=4,
        dpo_steps=2,
        best_of=2,
        general_tokens=4,
    )
    return root / "out", run_smollm_demo(str(root / "out"), preset)


def test_every_stage_is_a_run_directory_with_a_hugging_face_model(smoke):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    out, _ = smoke
    for stage in ("sft", "ppo", "dpo"):
        assert (out / stage / "config.yaml").is_file() and (out / stage / "metrics.jsonl").is_file()
        AutoModelForCausalLM.from_pretrained(out / stage / "final")
    AutoModelForSequenceClassification.from_pretrained(out / "reward" / "final")
    dpo_steps = [json.loads(x)["step"] for x in (out / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert max(dpo_steps) == 2  # dpo_steps, however many pairs the rankings give
    candidates = [json.loads(x) for x in (out / "data" / "candidates.jsonl").read_text().splitlines()]
    assert len(candidates) == 8 + 8  # rate_rl_prompts: the rating and the RL prompts are sampled
    # k from SFT, base_samples from base, the refusal (refusal_candidate)
    assert {len(c["responses"]) for c in candidates} == {2 + 1 + 1}
    rankings = [json.loads(x) for x in (out / "data" / "rankings.jsonl").read_text().splitlines()]
    # one rater each, of every prompt with two distinct samples; the raters see each text once
    assert len(rankings) == sum(len(set(c["responses"])) >= 2 for c in candidates) > 0
    assert all(len(r["responses"]) == len(set(r["responses"])) == len(r["ranks"]) for r in rankings)
    ppo_line = json.loads((out / "ppo" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "gold" in ppo_line and "kl" in ppo_line  # the gold rule logged beside the proxy


def test_the_base_models_samples_are_ranked_beside_sfts(smoke):
    from rlhf.demo.smollm_stages import generate
    from rlhf.rollout.generate import SamplingParams

    out, results = smoke
    p = SmolPreset(**{k: v for k, v in results["config"].items() if k not in ("preset", "seed")})
    candidates = [json.loads(x) for x in (out / "data" / "candidates.jsonl").read_text().splitlines()]
    params = SamplingParams(p.max_new_tokens, n=1, seed=results["config"]["seed"] + 1)
    base = generate(Path(p.base), [c["prompt"] for c in candidates], params, p)
    assert [c["responses"][p.k] for c in candidates] == [g[0].text for g in base]


def test_every_ranking_compares_declining_with_answering(smoke):
    from rlhf.realtask.prompts import user_message

    out, _ = smoke
    candidates = [json.loads(x) for x in (out / "data" / "candidates.jsonl").read_text().splitlines()]
    assert all(c["responses"][-1] == REFUSAL for c in candidates)
    harmful = {t.prompt: t.harmful for t in tasks("train")}
    rankings = [json.loads(x) for x in (out / "data" / "rankings.jsonl").read_text().splitlines()]
    assert all(REFUSAL in r["responses"] for r in rankings)
    # on harmful requests and on look-alikes alike
    assert {harmful[user_message(r["prompt"])] for r in rankings} == {True, False}


def test_results_list_every_row_with_its_model_and_figures(smoke):
    out, results = smoke
    saved = json.loads((out / "results.json").read_text())
    assert saved["stages"] == results["stages"]
    assert [r["name"] for r in saved["stages"]] == ["base", "sft", "ppo", "dpo", "best-of-2"]
    for row in saved["stages"]:
        assert Path(row["model_dir"]).is_dir()
        assert 0 <= row["harmful_declined"] <= 1 and 0 <= row["benign_answered"] <= 1
        assert -2 <= row["gold_reward"] <= 1 and len(row["examples"]) == 4
    trained = saved["stages"][:4]
    assert all(r["web_nll"] > 0 and "kl_to_base" in r and "general_right" in r for r in trained)
    assert trained[1]["kl_to_sft"] == 0.0 and trained[0]["kl_to_base"] == 0.0
    h = saved["heldout"]
    rows = (out / "data" / "heldout_prompts.jsonl").read_text().splitlines()
    assert h["prompts"] == h["harmful"] + h["benign"] == len(rows)
    assert "declines harmful" in (out / "results.md").read_text()


def test_the_rows_are_judged_on_one_heldout_draw_whatever_the_seed(smoke):
    out, results = smoke
    p = SmolPreset(**{k: v for k, v in results["config"].items() if k not in ("preset", "seed")})
    written = [json.loads(line)["prompt"] for line in (out / "data" / "heldout_prompts.jsonl").open()]
    want = [chat(t) for t in heldout_tasks(p)]
    assert written == want
    # the draw is the seed-0 one, so a run of another seed is judged on these same prompts
    assert want == [chat(t) for t in family_sample(p.heldout_per_family, seed=0)]
    assert want != [chat(t) for t in family_sample(p.heldout_per_family, seed=1)]


def test_a_rerun_on_the_same_directory_reuses_every_stage_and_row(smoke):
    out, results = smoke
    fields = {k: v for k, v in results["config"].items() if k not in ("preset", "seed")}
    again = run_smollm_demo(str(out), SmolPreset(**fields))
    reused = {
        k: v
        for k, v in again["seconds"].items()
        if k not in ("total", "evaluation") and not k.startswith("base")
    }
    assert reused and set(reused.values()) == {0.0}, reused
    assert again["stages"] == results["stages"]


@pytest.mark.parametrize(
    ("rate_sft", "rate_rl"), [(False, True), (True, True), (True, False), (False, False)]
)
def test_the_raters_rank_the_rating_set_and_the_sets_the_preset_adds(rate_sft, rate_rl, tmp_path):
    from rlhf.demo.smollm_stages import SmolRun, rated_tasks
    from rlhf.realtask.prompts import stage_sets

    p = replace(SMOL_PRESETS["smollm"], rate_sft_prompts=rate_sft, rate_rl_prompts=rate_rl)
    sets = stage_sets(p.stage_sizes, 0)
    rated = rated_tasks(SmolRun(tmp_path, p, 0, sets))
    want = sets["rating"] + (sets["sft"] if rate_sft else []) + (sets["rl"] if rate_rl else [])
    assert [t.prompt for t in rated] == [t.prompt for t in want]
    assert len({t.prompt for t in rated}) == len(rated)  # the sets are disjoint: no prompt ranked twice


@pytest.mark.parametrize("on_rating", [False, True])
def test_the_rl_stage_trains_on_the_rl_set_and_with_the_flag_the_rating_set(on_rating, tmp_path):
    from rlhf.demo.smollm_stages import SmolRun, trained_rl_tasks
    from rlhf.realtask.prompts import stage_sets

    p = replace(SMOL_PRESETS["smollm"], rl_on_rating_prompts=on_rating)
    sets = stage_sets(p.stage_sizes, 0)
    got = [t.prompt for t in trained_rl_tasks(SmolRun(tmp_path, p, 0, sets))]
    assert got == [t.prompt for t in sets["rl"] + (sets["rating"] if on_rating else [])]
    assert not set(got) & {t.prompt for t in sets["sft"]}  # never the SFT prompts
