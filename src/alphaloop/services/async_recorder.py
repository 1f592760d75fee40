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
import os
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


class ProcessRecorder:
    """:class:`AsyncRecorder`'s contract, with the writes done by a child process of their own.

    The database writes (SQLAlchemy, per row a transaction) are as much Python as the strategy
    engine's own work; in a thread they hold the engine's GIL for that long. A child process writes
    them on a core of its own. Calls are queued (pickled) in order and written in that order by
    one writer; reads go straight to ``repo`` here. The child exits when this process is gone
    (a SIGKILLed service leaves no writer behind; recovery by replay writes what was lost)."""

    def __init__(self, repo: Any, database_url: str, service: str, maxsize: int = 100_000):
        self.recorder, self.service, self.database_url, self.maxsize = repo, service, database_url, maxsize
        self._sent = self._done = self.errors = 0
        self.last_error: str | None = None
        self._closed = True
        self._start()

    def _start(self) -> None:
        """A writer process (again, after :meth:`close`: a service's app may be started again)."""
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork of a process with threads (uvicorn, the worker)
        self._queue = ctx.Queue(self.maxsize)
        self._results = ctx.Queue()  # (writes done, errors, last error) from the child
        self._sent = self._done = 0
        self._errors_before = self.errors  # the new child counts its errors from 0
        self._process = ctx.Process(target=_write_in_child, args=(self.database_url, self._queue, self._results,
                                                                    os.getpid()),
                                    name=f"{self.service}-recorder", daemon=True)
        self._process.start()
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        if name not in _WRITES:  # reads go straight to the repository
            return getattr(self.recorder, name)

        def enqueue(*args: Any, **kwargs: Any) -> None:
            if self._closed or not self._process.is_alive():  # (a writer that died: writes from here on
                self._start()  # go to a new one; the caller's recovery replays what was lost)
            self._queue.put((name, args, kwargs))  # blocks only when the database is far behind
            self._sent += 1
            if self._sent % 1000 == 0:  # take in the child's reports now and then, not only when asked
                self._collect()
        return enqueue

    def _collect(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        try:
            while True:
                done, errors, last = self._results.get(timeout=timeout) if timeout else self._results.get_nowait()
                timeout = None
                errors += self._errors_before
                if errors > self.errors:
                    metrics.ERRORS.labels(self.service, "recorder_error").inc(errors - self.errors)
                    self.errors, self.last_error = errors, last
                self._done = done
        except queue.Empty:
            return

    def flush(self) -> None:
        """Wait until every queued write is done."""
        self._collect()
        while self._done < self._sent:
            if not self._process.is_alive():
                raise RuntimeError(f"the {self.service} recorder process exited "
                                   f"(code {self._process.exitcode}) with {self._sent - self._done} writes queued")
            self._collect(timeout=0.5)

    @property
    def backlog(self) -> int:
        self._collect()
        return self._sent - self._done

    def close(self) -> None:
        if self._closed:  # (a service's shutdown may close it twice)
            return
        self._queue.put(None)
        self._process.join(30)
        self._collect()
        self._closed = True
        self._queue.close()
        self._results.close()


def _write_in_child(database_url: str, calls: Any, results: Any, parent: int) -> None:
    """The recorder process: the calls, in order, until told to stop or the parent is gone."""
    from alphaloop.store import LiveRepository, Store

    repo = LiveRepository(Store(database_url, migrate=False))
    done = errors = reported = 0
    last: str | None = None
    while True:
        try:
            item = calls.get(timeout=0.5)
        except queue.Empty:
            if os.getppid() != parent:
                return
            if reported < done:
                results.put((done, errors, last))
                reported = done
            continue
        if item is None:
            results.put((done, errors, last))
            return
        name, args, kwargs = item
        try:
            getattr(repo, name)(*args, **kwargs)
        except Exception as e:  # storage trouble must never stop trading
            errors += 1
            last = f"{name} failed: {type(e).__name__}: {e}"
            log.warning("recorder.%s", last)
        done += 1
        if done % 1000 == 0 and os.getppid() != parent:
            return
        if done - reported >= 100 or calls.empty():  # (a report per write when keeping up)
            results.put((done, errors, last))
            reported = done
