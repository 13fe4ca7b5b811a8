"""`rlhf demo --preset fast` end to end: the table's structure, SFT beating base, determinism."""

import json

import pytest

from rlhf.cli import main
from rlhf.toyworld import FAMILIES

STAGE_KEYS = {
    "name",
    "gold_reward",
    "gold_win_rate_vs_sft",
    "family_accuracy",
    "mean_length",
    "kl_to_sft",
}


def _numbers(results: dict) -> dict:
    """Everything in results.json but the timings."""
    return {k: v for k, v in results.items() if k != "seconds"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, transformers_warnings):
    root = tmp_path_factory.mktemp("demo")
    with transformers_warnings() as messages:
        assert main(["demo", "--preset", "fast", "--output-dir", str(root / "a")]) == 0
    (root / "transformers-warnings.json").write_text(json.dumps(messages))
    return root


def test_every_stage_passes_the_attention_mask(demo_run):
    """No forward of any stage (sampling, reward scoring, RL, best-of-n, evaluation) reads a padded
    batch without its mask: transformers would warn "We strongly recommend passing in an attention_mask"."""
    messages = json.loads((demo_run / "transformers-warnings.json").read_text())
    assert not [m for m in messages if "attention_mask" in m], messages


def test_fast_demo_writes_the_results_table(demo_run):
    results = json.loads((demo_run / "a" / "results.json").read_text())
    names = [s["name"] for s in results["stages"]]
    assert names == [
        "base", "sft", "ppo", "ppo-ptx", "dpo", "rs-sft", "ppo (biased raters)",
        "ppo (gold reward)", "dpo (gold labels)", "best-of-4", "best-of-4 (gold)",
    ]  # fmt: skip
    for stage in results["stages"]:
        assert STAGE_KEYS <= set(stage)
        assert set(FAMILIES) <= set(stage["family_accuracy"])
        assert all(0.0 <= v <= 1.0 for v in stage["family_accuracy"].values())
    assert 0.0 <= results["reward_model"]["heldout_accuracy_vs_gold"] <= 1.0
    assert {"sft", "reward model", "evaluation", "total"} <= set(results["seconds"])
    table = (demo_run / "a" / "results.md").read_text()
    assert "| base" in table and "| sft" in table and "win vs SFT" in table
    parts = (
        "sft/final",
        "reward/final",
        "ppo/final",
        "ppo-ptx/final",
        "dpo/final",
        "rs-sft/final",
        "best-of-n/best.jsonl",
    )
    for part in (*parts, "reward-biased/final", "ppo-biased/final", "data/rankings-biased.jsonl"):
        assert (demo_run / "a" / part).exists(), part
    # the RL stage logs the gold reward of its samples next to the proxy, for reward-hacking plots
    lines = [json.loads(line) for line in (demo_run / "a" / "ppo" / "metrics.jsonl").read_text().splitlines()]
    ppo_metrics = [m for m in lines if "score_raw" in m]
    assert len(ppo_metrics) == 20 and all("gold" in m for m in ppo_metrics)
    # and the table condenses both RL runs into proxy-vs-gold windows
    curves = results["proxy_vs_gold"]
    assert list(curves) == ["ppo", "ppo (biased raters)"]
    assert [w["steps"] for w in curves["ppo"]] == ["1-3", "4-7", "8-10", "11-13", "14-17", "18-20"]
    assert "Proxy vs gold during RL" in table and "| ppo (biased raters) | 18-20" in table


def test_web_text_nll_measures_forgetting(demo_run):
    """Every trained model's NLL on held-out web text; the RL runs log it at their first and last
    step, and those are the SFT row's and their own row's figures."""
    results = json.loads((demo_run / "a" / "results.json").read_text())
    stages = {s["name"]: s for s in results["stages"]}
    assert results["web_text"]["documents"] == 50
    for name, stage in stages.items():
        assert ("web_nll" in stage) != name.startswith("best-of"), name  # best-of-n changes no weights
    assert stages["base"]["web_nll"] < stages["sft"]["web_nll"]  # fine-tuning forgets some web text
    assert stages["ppo-ptx"]["web_nll"] < stages["ppo"]["web_nll"]  # PPO-ptx holds it down
    for run, row in (("ppo", "ppo"), ("ppo-ptx", "ppo-ptx"), ("ppo-biased", "ppo (biased raters)")):
        lines = [json.loads(x) for x in (demo_run / "a" / run / "metrics.jsonl").read_text().splitlines()]
        evals = {m["step"]: m["eval_nll"] for m in lines if "eval_nll" in m}
        assert sorted(evals) == [0, 20], run
        assert evals[0] == pytest.approx(stages["sft"]["web_nll"], abs=1e-4)
        assert evals[20] == pytest.approx(stages[row]["web_nll"], abs=1e-4)
    assert "web NLL" in (demo_run / "a" / "results.md").read_text()


def test_heldout_web_text_is_not_in_the_pretraining_corpus():
    from rlhf.demo.stages import heldout_web_text
    from rlhf.toyworld import World, build_corpus

    world = World.build(0, n_sft=200, n_rating=160, n_rl=100, n_eval=60)
    corpus = build_corpus(world)
    web = heldout_web_text(world, corpus, 0, 50)
    assert len(web) == len(set(web)) == 50
    assert not set(web) & set(corpus)


def test_gold_picked_best_of_n_is_the_ceiling_of_the_reward_models_pick(demo_run):
    stages = {s["name"]: s for s in json.loads((demo_run / "a" / "results.json").read_text())["stages"]}
    rm_pick, gold_pick = stages["best-of-4"], stages["best-of-4 (gold)"]
    # the same samples, picked by the gold score itself: never worse, prompt by prompt
    assert gold_pick["gold_reward"] >= rm_pick["gold_reward"]
    assert gold_pick["gold_win_rate_vs_sft"] >= rm_pick["gold_win_rate_vs_sft"]
    assert gold_pick["kl_to_sft"] == rm_pick["kl_to_sft"]
    # the best-of-k curve of the same samples ends at these two rows and starts at a random sample
    results = json.loads((demo_run / "a" / "results.json").read_text())
    curve = results["best_of_n_curve"]
    assert [c["n"] for c in curve] == [1, 2, 4]
    last = curve[-1]
    assert last["kl"] == pytest.approx(rm_pick["kl_to_sft"])
    assert last["gold"] == pytest.approx(rm_pick["gold_reward"], abs=1e-9)
    assert last["win_vs_sft"] == pytest.approx(rm_pick["gold_win_rate_vs_sft"], abs=1e-9)
    assert last["gold_pick_win_vs_sft"] == pytest.approx(gold_pick["gold_win_rate_vs_sft"], abs=1e-9)
    assert curve[0]["win_vs_sft"] == pytest.approx(curve[0]["gold_pick_win_vs_sft"])  # one sample: no choice
    assert all(
        a["gold_pick_win_vs_sft"] <= b["gold_pick_win_vs_sft"] + 1e-12 for a, b in zip(curve, curve[1:])
    )
    assert "Best-of-n over n" in (demo_run / "a" / "results.md").read_text()


def test_sft_beats_base_on_gold(demo_run):
    base, sft = json.loads((demo_run / "a" / "results.json").read_text())["stages"][:2]
    assert sft["gold_reward"] > base["gold_reward"] + 0.3
    assert base["gold_win_rate_vs_sft"] < 0.3
    assert sft["gold_win_rate_vs_sft"] == 0.5  # against itself every prompt is a tie
    assert sft["gold_wins_ties_losses"] == [0, 60, 0] and sft["gold_win_interval"] == [0.5, 0.5]
    wins, ties, losses = base["gold_wins_ties_losses"]
    assert wins + ties + losses == 60 and base["gold_win_rate_vs_sft"] == (wins + ties / 2) / 60


def test_two_runs_give_the_same_numbers(demo_run, monkeypatch):
    # a fresh cache, so the base model is pretrained again from scratch
    monkeypatch.setenv("RLHF_CACHE", str(demo_run / "cache-b"))
    assert main(["demo", "--preset", "fast", "--output-dir", str(demo_run / "b")]) == 0
    a = json.loads((demo_run / "a" / "results.json").read_text())
    b = json.loads((demo_run / "b" / "results.json").read_text())
    assert _numbers(a) == _numbers(b)


def test_gold_rows_learn_from_gold_itself(demo_run):
    """ "ppo (gold reward)" is rewarded by the gold scorer (its reward is the gold of its own
    samples at every step); "dpo (gold labels)" trains on the raters' candidates ranked by gold."""
    from rlhf.toyworld import World, gold_score

    root = demo_run / "a"
    steps = [
        m
        for m in map(json.loads, (root / "ppo-gold" / "metrics.jsonl").read_text().splitlines())
        if "score_raw" in m
    ]
    assert len(steps) == 20
    assert all(m["score_raw"] == pytest.approx(m["gold"], abs=1e-5) for m in steps)
    raters = [json.loads(line) for line in (root / "data" / "candidates.jsonl").read_text().splitlines()]
    gold = [json.loads(line) for line in (root / "data" / "rankings-gold.jsonl").read_text().splitlines()]
    assert [g["responses"] for g in gold] == [c["responses"] for c in raters]
    world = World.build(0, **json.loads((root / "results.json").read_text())["config"]["world"])
    tasks = {t.prompt: t for t in world.tasks("rating")}
    for rec in gold:
        scores = [gold_score(tasks[rec["prompt"]], r) for r in rec["responses"]]
        for i in range(len(scores)):
            for j in range(len(scores)):  # rank 1 is best; equal gold, equal rank
                assert (scores[i] > scores[j]) == (rec["ranks"][i] < rec["ranks"][j])
    assert (root / "dpo-gold" / "final").exists()


def test_report_html_holds_the_fits_and_figures(demo_run):
    """report.html beside results.md: the table, Gao fits with their coefficients and peaks, one
    figure per RL run, best-of-n, reward-model accuracy per family, forgetting, win rates; all inline."""
    page = (demo_run / "a" / "report.html").read_text()
    results = json.loads((demo_run / "a" / "results.json").read_text())
    assert page.count("<img ") == page.count('src="data:image/png;base64,') >= 8
    # every RL run's proxy and gold against KL
    for run in ("ppo", "ppo-ptx", "ppo-biased", "ppo-gold"):
        assert f"{run}: every RL step" in page, run
    assert '<img alt="Reward hacking: the proxy' in page  # the fair and the biased run side by side
    assert "Over-optimisation fits (Gao et al. 2022)" in page and "d (alpha - beta log d)" in page
    assert "<td>best-of-n</td>" in page  # the best-of-n form, fitted to n = 1, 2, 4
    assert "<th>win vs SFT</th>" in page  # the results table, as HTML
    assert "http://" not in page and "https://" not in page and "<script" not in page
    by_family = results["reward_model"]["heldout_accuracy_by_family"]
    assert by_family and all(0.0 <= v <= 1.0 for v in by_family.values())
    assert all(row["gold_pick_gold"] >= row["gold"] - 1e-12 for row in results["best_of_n_curve"])


@pytest.mark.browser
def test_report_html_shows_every_figure_in_chromium(demo_run, chromium, tmp_path):
    report = demo_run / "a" / "report.html"
    errors, requests = [], []
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images)"
            ".map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)  # kept as the test's artifact
    finally:
        page.close()
    assert len(images) >= 8
    assert all(done and natural > 0 and shown > 0 for done, natural, shown in images), images
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # no server, no network
    assert (tmp_path / "report.png").stat().st_size > 10_000
