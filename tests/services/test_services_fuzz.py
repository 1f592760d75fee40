"""Fuzz every HTTP service from its own OpenAPI schema (schemathesis): whatever a client sends that
the schema allows, and much that it does not, the answer is never a 5xx.

To fuzz another service, add one line to ``APPS``: a name and a function building its app from
settings (the pipeline services get a run over a bundled sample file). Bounded (``MAX_EXAMPLES``
per operation) and derandomized, so a failure reproduces.
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from alphaloop.core.config import load_settings

MAX_EXAMPLES = 30
TOKEN = "fuzz-token"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "alphaloop" / "data" / "samples"
RUN_ID = f"fuzz-{uuid.uuid4().hex[:10]}"  # its own streams, deleted when the session ends


def _delete_streams() -> None:
    import redis

    from alphaloop.services.pipeline_protocol import BUS_PREFIX

    try:
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5)
        keys = list(r.scan_iter(match=f"{BUS_PREFIX}:{RUN_ID}:*"))
        if keys:
            r.delete(*keys)
        r.close()
    except redis.RedisError:
        pass


atexit.register(_delete_streams)


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except that readiness may answer 503: its documented "not ready",
    which it is here (under ASGI the lifespan does not run, so the workers are not started)."""
    if response.status_code == 503 and case.operation.path.startswith(("/health", "/v2/health")):
        return None
    return not_a_server_error(ctx, response, case)


def _run() -> Any:
    from alphaloop.services.pipeline_protocol import RunOptions

    return RunOptions(run_id=RUN_ID, data=(str(SAMPLES / "SYNTH_A.csv"),))


def _pipeline(module: str) -> Callable[[Any], Any]:
    def build(settings: Any) -> Any:
        return importlib.import_module(f"alphaloop.services.{module}").build_app(settings, options=_run())
    return build


def _sentiment(settings: Any) -> Any:
    from alphaloop.services.sentiment import build_app

    return build_app(settings, news=None)


def _ml(settings: Any) -> Any:
    from alphaloop.services.ml.http import build_app

    return build_app(settings, grpc_port=0)  # the gRPC worker is not started: no lifespan under ASGI fuzzing


APPS: dict[str, Callable[[Any], Any]] = {
    "sentiment": _sentiment,
    "market-data": _pipeline("market_data"),
    "patterns": _pipeline("patterns"),
    "execution": _pipeline("execution"),
    "strategy": _pipeline("strategy"),
    "ml": _ml,
}


# Schemas load at collection (schemathesis' lazy `from_fixture` does not run under pytest 9), each app
# with a home of its own that is removed when the session ends.
_HOME = Path(tempfile.mkdtemp(prefix="alphaloop-fuzz-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)


def _fuzz(name: str, factory: Callable[[Any], Any]) -> Callable[..., None]:
    settings_ = load_settings(env={"ALPHALOOP_HOME": str(_HOME / name), "ALPHALOOP_SERVICE_TOKEN": TOKEN})
    schema = schemathesis.openapi.from_asgi("/openapi.json", factory(settings_))

    @schema.parametrize()
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def test(case: Any) -> None:
        # With the token, state-changing endpoints are fuzzed past the auth check into their handlers.
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[no_server_error])

    return test


for _name, _factory in APPS.items():
    globals()[f"test_no_server_errors_{_name.replace('-', '_')}"] = _fuzz(_name, _factory)
