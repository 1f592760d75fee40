"""Opening a store: settings, unreachable databases, bad URLs, closed stores."""

from __future__ import annotations

import time

import pytest

from alphaloop.core.config import load_settings
from alphaloop.core.errors import StoreError
from alphaloop.store import Store


def test_unreachable_postgres_fails_fast_with_one_line() -> None:
    t0 = time.monotonic()
    with pytest.raises(StoreError) as err:
        Store("postgresql://127.0.0.1:1/x")
    assert time.monotonic() - t0 < 10  # connect_timeout bounds it; refused is immediate
    msg = str(err.value)
    assert msg.startswith("cannot open database postgresql://127.0.0.1:1/x:")
    assert "Connection refused" in msg or "connection" in msg.lower()
    assert "\n" not in msg and "Traceback" not in msg and "sqlalche.me" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert err.value.exit_code == 7


def test_password_is_not_shown() -> None:
    with pytest.raises(StoreError) as err:
        Store("postgresql://alice:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


def test_unopenable_sqlite_path(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open database"):
        Store(f"sqlite:///{blocker / 'alphaloop.db'}")


@pytest.mark.parametrize("url", ["nonsense", "nosuchdialect://x/y"])
def test_invalid_url(url: str) -> None:
    with pytest.raises(StoreError, match="database"):
        Store(url)


def test_from_settings_uses_the_home_sqlite_file(tmp_path) -> None:
    home = tmp_path / "home"
    settings = load_settings(env={"ALPHALOOP_HOME": str(home)})
    with Store.from_settings(settings) as store:
        assert store.list_runs() == []
    assert (home / "alphaloop.db").is_file()


def test_in_memory_sqlite_keeps_one_database(make_result) -> None:
    with Store("sqlite://") as store:
        run_id = store.save_backtest(make_result())
        assert store.get_run(run_id).run_id == run_id


def test_closed_store_refuses_work(store_url: str) -> None:
    store = Store(store_url)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()
