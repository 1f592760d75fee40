"""The ML service goes away mid-run and comes back.

The live pipeline (``EmbeddedRunner`` with ``ml_multifactor`` deciding on every bar) asks a real ML
service running in a separate process (``python -m alphaloop.services.ml``) through the client chain
built from settings (failover -> default, circuit breaker, cache). Mid-run the service is killed with
SIGKILL: decisions go on, answered by the default predictor and recorded with inference path
``default``. It is restarted on the same ports: once it is serving and the breaker lets a trial
through, decisions are back on the ONNX path. Phases switch on conditions (counts of decisions, the
service's health, the breaker's state), never on sleeps.
"""

from __future__ import annotations

from ml_helpers import MODEL, ServiceProcess, goog, register_model, settings_for, wait_for

from alphaloop.execution import BrokerConfig
from alphaloop.live import EmbeddedRunner
from alphaloop.services.ml.client import MLGrpcClient
from alphaloop.services.ml.wiring import build_remote_predictor
from alphaloop.strategy.builtin import MlMultiFactor
from alphaloop.strategy.services import Services

PER_PHASE = 15  # decisions with the model answering before the kill, and after it before the restart


def test_ml_service_outage_falls_back_to_default_and_recovers(tmp_path):
    register_model(tmp_path)
    service = ServiceProcess(tmp_path, model=MODEL).start()
    probe = MLGrpcClient(f"127.0.0.1:{service.grpc_port}", timeout_s=1.0, retries=0)
    try:
        service.wait_serving(probe)
        settings = settings_for(tmp_path, ONNX_RUNNER_URL=f"grpc://127.0.0.1:{service.grpc_port}")
        predictor = build_remote_predictor(settings, model=MODEL, timeout_s=0.5, retries=1, failure_threshold=2,
                                           reset_timeout_s=0.3)
        chain = predictor.predictor
        [runner] = chain.runners
        phases = {"up": [], "down": [], "back": []}
        state = {"phase": "up"}

        def on_decision(decision):
            phase = state["phase"]
            ml = next(f for f in decision.factors if f.name == "ml")
            if ml.missing and ml.reason == "warm-up":  # no complete feature row yet: the model is not asked
                return
            phases[phase].append(decision)
            if phase == "up" and len(phases["up"]) >= PER_PHASE:
                service.kill()
                state["phase"] = "down"
            elif phase == "down" and len(phases["down"]) >= PER_PHASE:
                service.start()
                service.wait_serving(probe)
                assert runner.client.wait_ready(10.0), "the client's channel did not reconnect"
                wait_for(lambda: runner.breaker.state != "open", timeout=10, what="the breaker to half-open")
                state["phase"] = "back"

        services = Services(predictor=predictor, timeout_s=5.0, concurrent=True)
        runner_ = EmbeddedRunner(MlMultiFactor(on_bars=True), goog().iloc[:260], BrokerConfig(initial_cash=100_000.0),
                                 services=services, on_decision=on_decision)
        summary = runner_.run()
        services.close()
        assert service.stop() == 0  # SIGTERM: a clean shutdown
    finally:
        probe.close()
        service.stop()

    up, down, back = phases["up"], phases["down"], phases["back"]
    paths = {k: [d.inference_path for d in v] for k, v in phases.items()}
    assert summary.errors == {}, (summary.last_error, service.logs()[-3000:])
    assert None not in paths["up"] + paths["down"] + paths["back"], (paths, chain.stats(), service.logs()[-3000:])
    assert len(up) == PER_PHASE and len(down) == PER_PHASE and len(back) >= 50, (len(up), len(down), len(back))
    assert {d.inference_path for d in up} == {"onnx_cpu"}, (paths, chain.stats())
    # the service is gone: every decision still made, the ML factor present but neutral, path default
    assert {d.inference_path for d in down} == {"default"}, (paths, chain.stats())
    for d in down:
        ml = next(f for f in d.factors if f.name == "ml")
        assert not ml.missing and ml.value == 0.0 and ml.detail["confidence"] == 0.0
    # back: the first decision after the breaker half-opened is the successful trial, and the rest follow
    assert {d.inference_path for d in back} == {"onnx_cpu"}, (paths, chain.stats(), service.logs()[-3000:])
    assert summary.inference_paths == {"onnx_cpu": len(up) + len(back), "default": len(down)}
    stats = chain.stats()
    assert stats["answered"] == {"onnx": len(up) + len(back), "default": len(down)}
    assert stats["breakers"][0]["opened"] >= 1 and stats["breakers"][0]["state"] == "closed"
