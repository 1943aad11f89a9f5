"""A bounded request queue served by worker threads, so inference never blocks the ROS
executor. Several workers keep several requests in flight, which engines that batch (vLLM,
TensorRT-LLM, an OpenAI-compatible server, the transformers micro-batcher) turn into one batch.
When the queue is full, ``submit`` says so at once and the caller answers "busy".
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class WorkQueue(Generic[T]):
    def __init__(
        self, handler: Callable[[T], None], maxsize: int, workers: int, name: str = "egm-worker"
    ) -> None:
        self._handler = handler
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.high_water = 0
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken by a worker)."""
        return self._queue.qsize()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def maxsize(self) -> int:
        """Items that may wait at once; more are refused by :meth:`submit`."""
        return self._queue.maxsize

    def resize(self, maxsize: int) -> None:
        """Let ``maxsize`` items wait from now on. Items already waiting beyond a smaller size
        stay queued (and are served); new ones are refused until the queue is below it."""
        with self._queue.mutex:  # queue.Queue reads maxsize under this lock
            self._queue.maxsize = maxsize
            self._queue.not_full.notify_all()

    def submit(self, item: T) -> bool:
        """Queue ``item``; False (at once) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        with self._lock:
            self.high_water = max(self.high_water, self._queue.qsize() + self._in_flight)
        return True

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            with self._lock:
                self._in_flight += 1
            try:
                self._handler(item)
            except Exception:  # noqa: BLE001 - a worker must survive any single request
                log.exception("request handler failed")
            finally:
                with self._lock:
                    self._in_flight -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the queued requests are served."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
