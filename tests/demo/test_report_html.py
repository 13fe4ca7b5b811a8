"""report.html from synthetic results: figures inline, Gao fits printed with their peaks, the
examples escaped; a demo without best-of-n or a reward model (the SmolLM2 one) still gets one."""

import html
import json
import math
import re

import pytest

from rlhf.demo.html_report import markdown_to_html, write_html

pytest.importorskip("matplotlib")


def stage(name, nll, win):
    return {
        "name": name,
        "gold_reward": 0.1,
        "gold_win_rate_vs_sft": win,
        "gold_win_interval": [win - 0.1, win + 0.1],
        "web_nll": nll,
        "examples": [{"prompt": "What is 2 + 2?\n", "response": f"<b>{name}</b> 4", "gold": 1.0}],
    }


def rl_run(root, name, alpha, beta):
    """Steps whose gold follows Gao's RL form exactly (R0 = 0.2) and whose proxy keeps rising."""
    root.joinpath(name).mkdir(parents=True)
    lines = []
    for s in range(1, 41):
        kl = 0.05 * s * s / 4
        d = math.sqrt(kl)
        gold = 0.2 + alpha * d - beta * d * math.log(d)
        lines.append({"step": s, "kl": kl, "score": 0.3 * d, "gold": gold, "loss": 1.0})
    lines.append({"step": 40, "eval_nll": 3.0})  # an evaluation line: no KL, left out
    root.joinpath(name, "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_report_prints_the_fitted_coefficients_and_peaks(tmp_path):
    rl_run(tmp_path, "ppo-biased", 0.5, 0.4)
    curve = [
        {"n": n, "kl": math.log(n) - (n - 1) / n, "gold": 0.1 + 0.3 * math.sqrt(k) - 0.1 * k,
         "win_vs_sft": 0.5, "gold_pick_win_vs_sft": 0.6,
         "gold_pick_gold": 0.2 + 0.3 * math.sqrt(k) + 0.05 * k}
        for n in (1, 2, 4, 8, 16)
        for k in [math.log(n) - (n - 1) / n]
    ]  # fmt: skip
    results = {
        "stages": [stage("base", 2.0, 0.2), stage("sft", 2.2, 0.5), stage("ppo", 2.3, 0.6)],
        "reward_model": {
            "heldout_accuracy_vs_gold": 0.7,
            "heldout_accuracy_by_family": {"a": 0.6, "b": 0.8},
        },
        "best_of_n_curve": curve,
        "config": {"preset": "fast", "seed": 0},
    }
    page = write_html(results, tmp_path, "| model | x |\n|---|---|\n| sft | 1 |\n\nnote", "t").read_text()
    # reward hacking, the RL run, best-of-n, accuracy per family, forgetting, win rates
    assert page.count('<img alt="') == page.count('src="data:image/png;base64,') == 6
    assert '<img alt="Reward hacking: the proxy' in page
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>"
                      r"<td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", page)  # fmt: skip
    fits = {(html.unescape(r[0]), html.unescape(r[1])): r for r in rows if r[2].startswith("d (")}
    gold = fits[("ppo-biased", "gold")]
    assert (float(gold[3]), float(gold[4]), float(gold[5])) == pytest.approx((0.5, 0.4, 0.2), abs=1e-3)
    assert float(gold[6]) == pytest.approx(math.exp(2 * (0.5 / 0.4 - 1)), rel=1e-3)  # log d* = a/b - 1
    rm_pick = fits[("best-of-n", "reward model's pick")]
    assert (float(rm_pick[3]), float(rm_pick[4])) == pytest.approx((0.3, 0.1), abs=1e-6)
    assert float(rm_pick[6]) == pytest.approx((0.3 / 0.2) ** 2)  # d* = a / (2 b)
    assert fits[("best-of-n", "gold's own pick")][6] == "none (no maximum)"
    # the stop point: the fitted gold's best KL within the span each curve covers
    assert gold[7] == f"KL {math.exp(2 * (0.5 / 0.4 - 1)):.2f}: the fitted peak"  # reached by KL 20
    assert rm_pick[7] == f"KL {math.log(16) - 15 / 16:.2f}: still rising at the end"  # peak 2.25 > n=16's KL
    assert fits[("ppo-biased", "proxy")][7] == fits[("best-of-n", "gold's own pick")][7] == "-"
    assert "&lt;b&gt;ppo&lt;/b&gt; 4" in page and "<b>ppo</b>" not in page  # model output is text
    assert "<th>model</th><th>x</th>" in page


def test_a_demo_without_best_of_n_or_reward_model_gets_a_report(tmp_path):
    results = {
        "stages": [stage("sft", 2.2, 0.5), stage("dpo", 2.4, 0.55)],
        "config": {"preset": "smollm"},
    }
    page = write_html(results, tmp_path, "| model |\n|---|\n| sft |", "SmolLM2").read_text()
    assert page.count("<img ") == 2  # forgetting and win rates: the figures its results hold
    assert "Over-optimisation fits" not in page


def test_markdown_tables_become_html_tables():
    out = markdown_to_html("intro\n| a | b |\n|---|---|\n| 1 | <2> |\ntail")
    assert out.split("\n") == [
        '<p class="note">intro</p>',
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;2&gt;</td></tr></table>",
        '<p class="note">tail</p>',
    ]


def test_a_fitted_peak_beyond_the_data_leaves_the_axis_on_the_data():
    """Best-of-n's gold pick can fit a peak at KL 17 while n = 4 reaches KL 0.6: the stop line is
    drawn within the data and the axis stays on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlhf.demo.figures import _draw_fit
    from rlhf.eval.gao import fit_gao

    kl = [0.0, 0.19, 0.64]
    fit = fit_gao(kl, [0.0 + 0.2 * math.sqrt(k) - 0.02 * k for k in kl], "bon")
    assert fit.peak_kl == pytest.approx(25.0)
    fig, ax = plt.subplots()
    _draw_fit(ax, fit, max(kl), "C0", True)
    assert ax.get_xlim()[1] < 1.0
    assert [line.get_xdata()[0] for line in ax.lines[1:]] == [0.64]  # the stop line, at the run's end
    plt.close(fig)
