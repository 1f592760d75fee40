"""ProcessRecorder: the strategy engine's database writes done by a child process, in order, with
flush, error counting and a restart after close, against a real SQLite file database."""

from __future__ import annotations

from alphaloop.services.async_recorder import ProcessRecorder
from alphaloop.store import LiveRepository, Store


def test_writes_land_in_order_errors_are_counted_and_a_closed_recorder_starts_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'rec.db'}"
    repo = LiveRepository(Store(url))  # migrates; the child opens the same database
    rec = ProcessRecorder(repo, url, "test")
    try:
        # finish_run needs the run start_run wrote before it: written in the order they were made
        rec.start_run("r1", "replay", ["A"], {"name": "s"})
        rec.finish_run(run_id="r1", summary={"n": 1}, status="finished")
        rec.finish_run(run_id="no-such-run", summary=None, status="finished")  # refused by the database
        rec.flush()
        assert rec.backlog == 0
        run = rec.run("r1")  # reads go straight to the repository, in this process
        assert run["status"] == "finished" and run["summary"] == {"n": 1}
        assert rec.errors == 1 and "unknown live run id 'no-such-run'" in rec.last_error
        rec.close()
        rec.close()  # a service's shutdown may close it twice
        rec.start_run("r2", "synthetic", ["B"], {"name": "s"})  # after close: a new writer
        rec.flush()
        assert repo.run("r2")["status"] == "running" and rec.errors == 1
    finally:
        rec.close()
