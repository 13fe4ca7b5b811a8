"""`rlhf serve` when clients leave mid-answer: the model is freed at once, so every later
request is answered (a stream dropped by the `openai` client, and many raw clients that hang up
at random points while others keep asking)."""

from __future__ import annotations

import random
import threading
import time

import httpx
import openai

from .conftest import API_KEY

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


def test_a_stream_closed_after_one_chunk_does_not_block_later_requests(server):
    with openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=20) as client:
        for _ in range(3):
            stream = client.chat.completions.create(
                model="rigged", messages=PROMPT, max_tokens=200, temperature=1.0, stream=True
            )
            for _chunk in stream:
                break
            stream.close()
        r = client.chat.completions.create(model="rigged", messages=PROMPT, max_tokens=4, temperature=0)
        assert r.choices[0].finish_reason == "length"
        stream = client.chat.completions.create(
            model="rigged", messages=PROMPT, max_tokens=4, temperature=0, stream=True
        )
        assert [c.choices[0].finish_reason for c in stream if c.choices][-1] == "length"


def test_clients_leaving_at_random_points_while_others_ask_all_get_answers(server):
    """Leavers hang up mid-stream (after 0 to 5 events), or time out of a plain request; askers
    keep asking meanwhile. Every asker's request and a final one are answered."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = server.url + "/chat/completions"
    long = {"model": "rigged", "messages": PROMPT, "max_tokens": 200, "temperature": 1.0}
    short = {"model": "rigged", "messages": PROMPT, "max_tokens": 3, "temperature": 0}
    failures: list[str] = []

    def leaver(seed: int) -> None:
        rng = random.Random(seed)
        try:
            if rng.random() < 0.7:
                with httpx.stream(
                    "POST", url, json={**long, "stream": True}, headers=headers, timeout=30
                ) as r:
                    for i, _line in enumerate(r.iter_lines()):
                        if i >= rng.randrange(6):
                            break
            else:
                httpx.post(url, json=long, headers=headers, timeout=rng.uniform(0.05, 0.3))
        except httpx.TimeoutException:
            pass

    def asker() -> None:
        for _ in range(3):
            try:
                r = httpx.post(url, json=short, headers=headers, timeout=30)
                if r.status_code != 200 or r.json()["choices"][0]["finish_reason"] != "length":
                    failures.append(r.text)
            except httpx.HTTPError as err:
                failures.append(repr(err))

    threads = [threading.Thread(target=leaver, args=(s,)) for s in range(12)]
    threads += [threading.Thread(target=asker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads) and not failures, failures
    r = httpx.post(url, json=short, headers=headers, timeout=20)
    assert r.status_code == 200, r.text


def test_a_cancelled_generation_frees_the_model_within_a_step(rigged_dir):
    """In process: a generation stopped after its first step, or while it waits for the lock,
    leaves the model's lock free without being read to the end."""
    import asyncio

    from rlhf.serve.model import GenRequest, load_chat_model
    from rlhf.serve.worker import Generation

    model = load_chat_model(str(rigged_dir), device="cpu")
    req = GenRequest(model.encode(PROMPT), max_tokens=200)

    def paced(req, stop):  # a slower client's pace: 200 steps take over 2 s
        for deltas in model.stream(req, stop):
            yield deltas
            time.sleep(0.01)

    async def scenario() -> None:
        first = Generation(paced, req)
        steps = first.deltas()
        await steps.__anext__()  # the first generation holds the lock
        waiting = Generation(paced, req)
        waiter = waiting.deltas()
        pending = asyncio.ensure_future(waiter.__anext__())
        await asyncio.sleep(0.2)
        assert not pending.done()  # still waiting for the lock
        waiting.cancel()
        first.cancel()  # neither is read further nor closed
        await asyncio.to_thread(first.done.wait, 10)
        await asyncio.to_thread(waiting.done.wait, 10)
        assert first.done.is_set() and waiting.done.is_set()
        assert model.lock.acquire(timeout=1)
        model.lock.release()
        pending.cancel()

    asyncio.run(scenario())


class EndlessModel:
    """A stand-in ChatModel whose reply never ends on its own: one "a" every 5 ms."""

    name, context = "endless", 10**9

    def __init__(self):
        self.closed = threading.Event()

    def encode(self, messages):
        return [1, 2, 3]

    def stream(self, req, stop):
        from rlhf.serve.model import Delta

        try:
            while not stop.is_set():
                time.sleep(0.005)
                yield [Delta(0, "a", [])]
        finally:
            self.closed.set()


def test_the_app_stops_generating_when_the_client_hangs_up(tmp_path):
    """In process, through the ASGI interface: a client that disconnects 0.3 s into a plain or a
    streamed request ends its generation, though the reply would otherwise run for hours."""
    import asyncio
    import json

    from rlhf.serve.app import create_app

    async def hang_up_during(stream: bool) -> EndlessModel:
        model = EndlessModel()
        app = create_app(model)
        body = json.dumps(
            {"model": "endless", "messages": PROMPT, "max_tokens": 10**8, "stream": stream}
        ).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        gone_at = time.monotonic() + 0.3

        async def receive():
            if pending:
                return pending.pop()
            while time.monotonic() < gone_at:
                await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}

        async def send(message):
            pass

        await asyncio.wait_for(app(scope, receive, send), 20)
        return model

    for stream in (False, True):
        model = asyncio.run(hang_up_during(stream))
        assert model.closed.wait(10), f"stream={stream}: the generation went on after the client left"
