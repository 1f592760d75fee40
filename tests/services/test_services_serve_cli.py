"""`alphaloop serve` on the command line: usage and configuration errors get their exit codes and a
message naming the option; `serve all` stops the whole deployment with a non-zero exit when one of
its services dies on its own."""

from __future__ import annotations

import os
import re
import signal

import pytest
from pipeline_helpers import (
    ROOT,
    Proc,
    alphaloop,
    delete_streams,
    free_port_offset,
    listening,
    new_run_id,
    redis_up,
    run_args,
    service_env,
    wait_for,
)


@pytest.fixture
def env(tmp_path):
    return service_env(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_an_unknown_service_is_a_usage_error(env):
    r = alphaloop("serve", "nope", env=env)
    assert r.returncode == 2 and "nope" in r.stderr and "market-data" in r.stderr


@pytest.mark.parametrize(("args", "code", "named"), [
    (["serve", "strategy"], 3, "--data"),  # a pipeline service needs the run's market data
    (["serve", "execution", "--synthetic", "--data", "x.csv"], 3, "either --data or --synthetic"),
    (["serve", "patterns", "--synthetic", "--speed", "-1"], 3, "--speed"),
    (["serve", "strategy", "--synthetic", "--params", "[1, 2]"], 2, "--params"),
    (["serve", "strategy", "--synthetic", "--params", "{bad json"], 2, "--params"),
    (["serve", "all", "--synthetic", "--port", "9100"], 2, "--port-offset"),
    (["serve", "all", "--synthetic", "--skip", "bogus"], 2, "bogus"),
    (["serve", "market-data", "--synthetic", "--run-id", "has space"], 3, "run id"),
    (["serve", "execution", "--data", "no/such/file.csv"], 4, "no/such/file.csv"),
])
def test_bad_options_exit_with_their_code_and_name_the_option(env, args, code, named):
    r = alphaloop(*args, env=env)
    assert r.returncode == code, r.stderr
    assert named in r.stderr


def test_a_bad_strategy_parameter_fails_before_serving(env):
    r = alphaloop("serve", "strategy", "--synthetic", "--strategy", "sma_cross", "--params", '{"fast": 30, "slow": 5}',
                  env=env)
    assert r.returncode == 5 and "fast < slow" in r.stderr


@pytest.mark.skipif(not redis_up(), reason="no Redis server at 127.0.0.1:6379")
def test_serve_all_stops_everything_and_fails_when_a_service_dies(tmp_path, env):
    run_id = new_run_id("cli-die")
    sup = Proc(["serve", "all", "--skip", "ml", "--skip", "sentiment", "--port-offset", str(free_port_offset()),
                *run_args(run_id, speed=20)], env, tmp_path / "logs", "all")
    try:
        wait_for("serve all to be ready", lambda: "all services ready" in sup.out(), procs=(sup,))
        urls = listening(sup.out())
        assert list(urls) == ["execution", "strategy", "patterns", "market-data"]  # START_ORDER, downstream first
        pids = {name: int(p) for name, p in re.findall(r"^(\S+)\s+http://\S+\s+\(pid (\d+)\)", sup.out(), re.M)}
        os.kill(pids["execution"], signal.SIGKILL)
        code = sup.proc.wait(60)
        assert code == 1
        assert "service execution exited unexpectedly" in sup.out()
        for name, pid in pids.items():  # the others were stopped, not left behind
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            assert name
    finally:
        sup.stop(signal.SIGTERM)  # the supervisor stops its services (no-op when it has exited)
        delete_streams(run_id)


def test_docker_compose_describes_the_serve_all_topology_with_valid_commands():
    """docker-compose.yml cannot run here; it is kept honest by parsing each command with the real CLI."""
    import shlex

    import yaml

    from alphaloop.cli.serve_cmd import PIPELINE, serve
    from alphaloop.services.topology import SERVICES, START_ORDER

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"redis", "postgres"} <= set(compose)
    apps = {name: svc for name, svc in compose.items() if name not in ("redis", "postgres")}
    assert set(apps) == set(START_ORDER)
    runs = set()
    for name, svc in apps.items():
        argv = shlex.split(svc["command"]) if isinstance(svc["command"], str) else list(svc["command"])
        assert argv[:2] == ["serve", name]
        params = serve.make_context("serve", argv[1:]).params  # the real option parser
        assert params["port"] == SERVICES[name].http_port
        assert f"127.0.0.1:{params['port']}:{params['port']}" in svc["ports"]
        if name in PIPELINE:
            runs.add((params["run_id"], params["data"], params["strategy"], params["params"], params["speed"]))
    assert len(runs) == 1  # every pipeline service takes part in the same run
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["alphaloop"]' in dockerfile and "ALPHALOOP_SERVICE_HOST=0.0.0.0" in dockerfile
