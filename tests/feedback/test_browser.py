"""The rater page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
sign in by invite link, rank by dragging and by keyboard alone, submit, find it in the export; a
script payload in model output shows as text and never runs. Also takes the docs screenshot
(set RLHF_UPDATE_SCREENSHOTS=1 to write it to docs/img/rater-page.png)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from rlhf.feedback.auth import create_rater, set_admin_token
from rlhf.feedback.db import Database
from rlhf.feedback.io import import_records
from rlhf.feedback.loadtest import ServerProcess
from rlhf.feedback.members import add_members
from rlhf.feedback.projects import create_project

from .conftest import ADMIN_TOKEN, XSS_IMG, XSS_SCRIPT

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "rater-page.png"

pytestmark = pytest.mark.browser  # the `chromium` fixture skips when Chromium or playwright is missing

GUIDE = """# How to rank

1. Put the **most helpful, correct and harmless** response at the top.
2. Tie responses you cannot tell apart.
3. Flag anything harmful.
"""
DOC_TASK = {
    "id": "doc-1",
    "prompt": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How long should I boil an egg for a soft yolk?"},
    ],
    "responses": [
        "About 6 to 7 minutes in boiling water, then cool it in cold water for a minute.",
        "Eggs are a great source of protein! There are many ways to cook them.",
        "Boil it for 6-7 minutes. For a firmer white but runny yolk, try 7.",
        "20 minutes.",
    ],
}


MD_TASK = {
    "id": "md-1",
    "prompt": "Show me **Python** code.",
    "responses": [
        "Here:\n\n```python\nprint('hi')\n```\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        "[click me](javascript:window.__pwned=1) <b>not bold</b> and [docs](https://example.org)",
    ],
}
PAIR = ["Thank you, that helps a lot.", "Whatever."]
LONG = ["first", "second", "third"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served database with three projects and fresh raters."""
    d = tmp_path_factory.mktemp("browser")
    db = Database(str(d / "label.db"))
    set_admin_token(db, ADMIN_TOKEN)
    create_project(db, "demo", overlap=1, gold_fraction=0.0, guidelines=GUIDE)
    import_records(
        db,
        "demo",
        [
            (
                "t:1",
                {"id": "t1", "prompt": "Rank the NATO letters.", "responses": ["alpha", "bravo", "charlie"]},
            ),
            ("t:2", {"id": "t2", "prompt": "Rank the numbers.", "responses": ["one", "two", "three"]}),
        ],
    )
    create_project(db, "xss", overlap=1, gold_fraction=0.0, guidelines=f"Ignore this: {XSS_SCRIPT}")
    import_records(
        db,
        "xss",
        [
            (
                "t:1",
                {
                    "prompt": [{"role": "user", "content": f"Say {XSS_IMG}"}],
                    "responses": [XSS_SCRIPT, XSS_IMG, "plain"],
                },
            )
        ],
    )
    create_project(db, "docs", overlap=1, gold_fraction=0.0, guidelines=GUIDE)
    import_records(db, "docs", [("t:1", DOC_TASK)])
    create_project(db, "md", overlap=1, gold_fraction=0.0)
    import_records(db, "md", [("t:1", MD_TASK)])
    create_project(db, "pair", overlap=1, gold_fraction=0.0)
    import_records(db, "pair", [("t:1", {"id": "p1", "prompt": "Which is kinder?", "responses": PAIR})])
    create_project(db, "long", overlap=1, gold_fraction=0.0)
    long_responses = [
        f"{name} " + "\n".join(f"line {i} of a long answer" for i in range(30)) for name in LONG
    ]
    import_records(
        db, "long", [("t:1", {"id": "l1", "prompt": "Explain at length.", "responses": long_responses})]
    )
    members = {
        "ranker": "demo",
        "tester": "xss",
        "shooter": "docs",
        "mdr": "md",
        "pairr": "pair",
        "longr": "long",
    }
    tokens = {name: create_rater(db, name) for name in members}
    for name, project in members.items():
        add_members(db, project, [name])
    db.dispose()
    with ServerProcess(d / "label.db", ADMIN_TOKEN, d / "server.log") as server:
        yield server.url, tokens


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium


def _sign_in(browser, url: str, token: str, project: str):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(f"{url}/login#{token}")
    assert page.input_value("#token") == token  # the script moved the fragment into the form
    assert "#" not in page.url  # and out of the address bar
    page.click("#sign-in")
    page.wait_for_url(f"{url}/")
    page.click(f"form[action='/p/{project}/next'] button")
    page.wait_for_selector("#ranking .card")
    return page


def _order(page) -> list[str]:
    return page.locator("#ranking .card .text").all_inner_texts()


def _badges(page) -> list[str]:
    return page.locator("#ranking .card .rank").all_inner_texts()


def _drag(page, text: str, to_index: int) -> None:
    """Drag the card showing ``text`` by its header onto the upper part of the card at ``to_index``."""
    source = page.locator("#ranking .card", has_text=text).locator(".card-head .name").bounding_box()
    target = page.locator("#ranking .card").nth(to_index).bounding_box()
    page.mouse.move(source["x"] + 5, source["y"] + source["height"] / 2)
    page.mouse.down()
    page.mouse.move(target["x"] + 40, target["y"] + 6, steps=12)
    page.mouse.up()


def _export(url: str, project: str) -> list[dict]:
    r = httpx.get(
        f"{url}/api/admin/projects/{project}/export", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    return [json.loads(line) for line in r.text.splitlines()]


def test_rank_by_drag_and_by_keyboard_then_export(site, browser):
    url, tokens = site
    page = _sign_in(browser, url, tokens["ranker"], "demo")
    prompt = page.inner_text(".prompt")

    # the first task by dragging, into the reverse of the order the page shuffled it into
    first, second = ("Rank the NATO letters.", "Rank the numbers.")
    if second in prompt:
        first, second = second, first
    wanted = list(reversed(_order(page)))
    for i, text in enumerate(wanted):
        _drag(page, text, i)
    assert _order(page) == wanted and _badges(page) == ["1", "2", "3"]
    page.click("#submit")
    page.wait_for_selector(f".prompt:has-text('{second}')")

    # the second by keyboard alone: Tab to the list, move the best to place 1 with "1", tie the other two
    best = _order(page)[-1]
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('card')"):
            break
    for _ in range(3):
        if page.evaluate("document.activeElement.querySelector('.text').textContent") == best:
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("1")
    assert _order(page)[0] == best
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("t")  # third card ties with the second
    assert _badges(page) == ["1", "=2", "=2"]
    assert "tied with the response above" in page.inner_text("#status")
    page.keyboard.press("Alt+ArrowUp")  # moving a card leaves its tie
    assert _badges(page) == ["1", "2", "3"]
    page.keyboard.press("Alt+ArrowDown")
    page.keyboard.press("t")
    assert _badges(page) == ["1", "=2", "=2"]
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Nothing left for you in demo")
    page.close()

    by_prompt = {r["prompt"]: r for r in _export(url, "demo")}
    dragged, typed = by_prompt[first], by_prompt[second]
    assert dragged["ranks"] == [wanted.index(text) + 1 for text in dragged["responses"]]
    assert typed["ranks"] == [1 if text == best else 2 for text in typed["responses"]]  # the others tied
    assert {r["annotator"] for r in by_prompt.values()} == {"ranker"}


def test_script_payloads_in_model_output_are_text_and_never_run(site, browser):
    url, tokens = site
    page = _sign_in(browser, url, tokens["tester"], "xss")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.wait_for_timeout(300)  # time for an <img onerror> to have fired, had it been an element
    assert page.evaluate("typeof window.__pwned") == "undefined"
    texts = _order(page)
    assert sorted(texts) == sorted([XSS_SCRIPT, XSS_IMG, "plain"])  # shown literally, as text
    assert f"Say {XSS_IMG}" in page.inner_text(".prompt")
    assert page.evaluate("document.querySelectorAll('main img, main script').length") == 0
    page.goto(f"{url}/p/xss/guidelines")
    assert XSS_SCRIPT in page.inner_text(".guidelines")
    assert page.evaluate("typeof window.__pwned") == "undefined" and dialogs == []
    page.goto(f"{url}/p/xss")
    _drag(page, "plain", 0)
    page.locator("#ranking .card").nth(2).locator("button.tie").click()  # the two payloads tie
    page.click("#submit")
    page.wait_for_selector("text=Nothing left for you in xss")
    (row,) = _export(url, "xss")
    assert row["responses"] == [XSS_SCRIPT, XSS_IMG, "plain"] and row["ranks"] == [2, 2, 1]
    page.close()


def test_rater_page_screenshot(site, browser, tmp_path):
    url, tokens = site
    page = _sign_in(browser, url, tokens["shooter"], "docs")
    for i, text in enumerate([DOC_TASK["responses"][2], DOC_TASK["responses"][0]]):
        _drag(page, text, i)
    page.locator("#ranking .card", has_text=DOC_TASK["responses"][0]).locator("button.tie").click()
    page.locator("#ranking .card", has_text="20 minutes").locator("input[value='factual_error']").check()
    page.locator("#ranking .card", has_text="20 minutes").locator("select.score").select_option("2")
    page.mouse.move(0, 0)
    shot = tmp_path / "rater-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("RLHF_UPDATE_SCREENSHOTS"):
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG)
    page.close()


def test_responses_render_as_safe_markdown_with_a_raw_view(site, browser):
    url, tokens = site
    page = _sign_in(browser, url, tokens["mdr"], "md")
    code = page.locator("#ranking .card .md pre code.language-python")
    assert code.inner_text().strip() == "print('hi')"
    assert page.locator("#ranking .card .md ul li").all_inner_texts() == ["one", "two"]
    assert page.locator("#ranking .card .md table td").all_inner_texts() == ["1", "2"]
    assert page.locator(".prompt .md strong").inner_text() == "Python"
    links = page.locator("#ranking .card .md a")
    assert links.count() == 1 and links.get_attribute("href") == "https://example.org"
    assert links.get_attribute("target") == "_blank" and "noopener" in links.get_attribute("rel")
    other = page.locator("#ranking .card", has_text="click me").locator(".md").inner_text()
    assert "[click me](javascript:window.__pwned=1)" in other and "<b>not bold</b>" in other  # as text
    assert page.locator("#ranking .card .md b").count() == 0
    assert not page.locator("pre.raw").first.is_visible()
    page.click("#raw-toggle")  # the exact text, markdown and all
    raw = page.locator("#ranking .card", has_text="print").locator("pre.raw")
    assert raw.is_visible() and "```python" in raw.inner_text()
    assert not page.locator("#ranking .card .md").first.is_visible()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.close()


def test_two_responses_side_by_side(site, browser):
    url, tokens = site
    page = _sign_in(browser, url, tokens["pairr"], "pair")
    a = page.locator("#ranking .card[data-pos='0']")
    b = page.locator("#ranking .card[data-pos='1']")
    box_a, box_b = a.bounding_box(), b.bounding_box()
    assert box_a["y"] == box_b["y"] and box_a["x"] < box_b["x"]  # one row, A on the left
    page.click("#pair-choice button[data-choice='1']")  # B is better
    assert b.locator(".rank").inner_text() == "1" and a.locator(".rank").inner_text() == "2"
    assert a.bounding_box()["x"] == box_a["x"]  # A stays left
    assert page.get_attribute("#pair-choice button[data-choice='1']", "aria-pressed") == "true"
    page.click("#pair-choice button[data-choice='tie']")
    assert a.locator(".rank").inner_text() == "=1" and b.locator(".rank").inner_text() == "=1"
    page.keyboard.press("ArrowLeft")  # the keys follow the layout
    assert a.locator(".rank").inner_text() == "1" and b.locator(".rank").inner_text() == "2"
    page.keyboard.press("ArrowRight")
    b_text = b.locator(".md").inner_text()
    page.click("#side-toggle")  # stacked again: the better one on top
    assert page.locator("#ranking .card").first.locator(".md").inner_text() == b_text
    page.click("#submit")
    page.wait_for_selector("text=Nothing left for you in pair")
    # changed my mind: revise it (before any export) from "your answers"; the page starts from B first
    page.goto(f"{url}/p/pair/answers")
    page.click("#answers a:has-text('revise')")
    page.wait_for_selector("#task[data-mode='revise']")
    assert page.get_attribute("#pair-choice button[data-choice='1']", "aria-pressed") == "true"
    page.click("#side-toggle")  # side by side again
    page.keyboard.press("ArrowLeft")
    page.click("#submit")
    page.wait_for_url(f"{url}/p/pair/answers")
    (row,) = _export(url, "pair")
    assert row["ranks"] == [2 if text == b_text else 1 for text in row["responses"]]  # the revision
    page.goto(f"{url}/p/pair/answers")
    assert "final: it was exported" in page.inner_text("#answers")
    page.close()


def test_dragging_a_card_scrolls_the_page_near_the_edge(site, browser):
    url, tokens = site
    page = _sign_in(browser, url, tokens["longr"], "long")
    page.set_viewport_size({"width": 1000, "height": 600})
    last = page.locator("#ranking .card").nth(2)
    name = last.locator(".md").inner_text().split()[0]
    last.locator(".card-head").scroll_into_view_if_needed()
    start = page.evaluate("window.scrollY")
    assert start > 600  # three answers taller than the window
    head = last.locator(".card-head .name").bounding_box()
    page.mouse.move(head["x"] + 5, head["y"] + head["height"] / 2)
    page.mouse.down()
    page.mouse.move(head["x"] + 5, 8, steps=5)  # to the top edge of the window, and hold
    for _ in range(80):  # (wait_for_function would need eval, which the page's CSP forbids)
        if page.evaluate("window.scrollY") == 0:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.scrollY") == 0  # the page scrolled up under the held card
    page.mouse.move(head["x"] + 6, 9)
    page.mouse.up()
    assert page.locator("#ranking .card").first.locator(".md").inner_text().split()[0] == name
    assert page.locator("#ranking .card").first.locator(".rank").inner_text() == "1"
    page.close()
