"""One request's generation on its own thread, stopped as soon as its client leaves.

The model decodes one request at a time (one KV cache, one lock). Each request decodes on a
worker thread that hands every step's deltas to the event loop through a queue. The request's
side owns a stop flag and sets it in a ``finally`` whenever it ends, for any reason: the answer
sent, the client gone, the task cancelled. The worker checks the flag while it waits for the lock
and after every decode step, so a client that leaves frees the model within one step, and one
that leaves while waiting never takes it. Nothing depends on a generator being closed or
garbage-collected, which is what a streaming response of a plain generator relied on: when the
client left, that generator stayed suspended inside the lock and every later request waited.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the app imports this module and must not import torch
    from rlhf.serve.model import Delta, GenRequest

_END = object()


class Generation:
    """Decode ``req`` with ``stream(req, stop)`` (a ``ChatModel.stream``) on a worker thread."""

    def __init__(
        self, stream: Callable[[GenRequest, threading.Event], Iterator[list[Delta]]], req: GenRequest
    ):
        self.stream, self.req = stream, req
        self.stop = threading.Event()
        self.done = threading.Event()
        """set when the worker has finished (the model's lock is free of this request)"""
        self._queue: asyncio.Queue[Any] | None = None

    def cancel(self) -> None:
        """Ask the worker to stop; safe from any thread, any number of times."""
        self.stop.set()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queue = queue

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                self.stop.set()

        def work() -> None:
            steps = self.stream(self.req, self.stop)
            try:
                for deltas in steps:
                    put(deltas)
                    if self.stop.is_set():
                        break
            except BaseException as err:  # handed to the request, which reports it
                put(err)
            finally:
                steps.close()  # leaves the model's lock
                self.done.set()
                put(_END)

        threading.Thread(target=work, name="rlhf-serve-generate", daemon=True).start()

    async def deltas(self) -> AsyncIterator[list[Delta]]:
        """Each decode step's deltas as they come. The worker starts on the first iteration, so a
        request dropped before its answer begins never takes the model."""
        try:
            if self._queue is None:
                self._start()
            assert self._queue is not None
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()


async def cancel_on_disconnect(is_disconnected: Callable[[], Any], generation: Generation) -> None:
    """Poll the client (``Request.is_disconnected``) until it leaves, then stop ``generation``;
    run as a task beside a non-streaming answer, cancelled when the answer is done."""
    while not generation.stop.is_set():
        if await is_disconnected():
            generation.cancel()
            return
        await asyncio.sleep(0.1)
