"""A recorder that writes from a thread of its own, so the strategy engine does not wait for the
database between steps.

Calls are queued and written in the order they were made (a fill never goes in before its order).
Nothing is lost by the queue that recovery does not bring back: a service that dies with writes
still queued replays its streams, and the repository's inserts are idempotent by id, so the missing
rows are written then and the others are not written twice. A failing write is logged and counted
(``errors``), never allowed to stop trading, as with any recorder.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from alphaloop.services import metrics

log = logging.getLogger(__name__)
_WRITES = frozenset({"record_decision", "record_order", "record_fill", "update_order", "start_run", "finish_run"})


class AsyncRecorder:
    def __init__(self, recorder: Any, service: str, maxsize: int = 100_000):
        self.recorder, self.service = recorder, service
        self._queue: queue.Queue[tuple[str, tuple, dict] | None] = queue.Queue(maxsize)
        self.errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"{service}-recorder", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        if name not in _WRITES:  # reads go straight to the repository
            return getattr(self.recorder, name)

        def enqueue(*args: Any, **kwargs: Any) -> None:
            self._queue.put((name, args, kwargs))  # blocks only when the database is far behind
        return enqueue

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                name, args, kwargs = item
                try:
                    getattr(self.recorder, name)(*args, **kwargs)
                except Exception as e:  # storage trouble must never stop trading
                    self.errors += 1
                    self.last_error = f"{name} failed: {type(e).__name__}: {e}"
                    metrics.ERRORS.labels(self.service, "recorder_error").inc()
                    log.warning("recorder.%s", self.last_error)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued write is done."""
        self._queue.join()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
