"""`alphaloop run` with the ML runner and the sentiment engine as real remote services.

The same live run is made twice: in-process (model loaded from the registry, news read from the
CSV) and with ``ONNX_RUNNER_URL`` / ``SENTIMENT_ENGINE_URL`` pointing at a real ML service process
(gRPC) and a real sentiment engine process (HTTP) holding the same model and news. The remote
answers are the same numbers, so every decision and the final equity must be identical, and the
decisions must say the ONNX path answered (not the default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ml_helpers import MODEL, ServiceProcess, register_model
from service_test_helpers import NEWS_CSV, ProcessServer

from alphaloop.data import sample_paths
from alphaloop.services.ml.client import MLGrpcClient

BARS = "260"


def _run(home, *extra: str, env: dict[str, str] | None = None) -> dict:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHALOOP_", "ONNX_", "SENTIMENT_"))}
    full_env.update({"ALPHALOOP_HOME": str(home), **(env or {})})
    data = next(p for p in sample_paths() if p.name.startswith("SYNTH_A"))
    out = subprocess.run([sys.executable, "-m", "alphaloop", "run", "--data", str(data), "--bars", BARS,
                          "--strategy", "ml_multifactor", "--param", "on_bars=true", "--model", MODEL, "--json",
                          *extra], capture_output=True, text=True, env=full_env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_live_run_with_remote_ml_and_sentiment_equals_the_in_process_run(tmp_path):
    register_model(tmp_path)
    local = _run(tmp_path, "--news", str(NEWS_CSV))

    ml = ServiceProcess(tmp_path, model=MODEL).start()
    probe = MLGrpcClient(f"127.0.0.1:{ml.grpc_port}", timeout_s=1.0, retries=0)
    sentiment = ProcessServer("alphaloop.services.sentiment", "--news", str(NEWS_CSV))
    try:
        ml.wait_serving(probe)
        with sentiment:
            remote = _run(tmp_path, env={"ONNX_RUNNER_URL": f"grpc://127.0.0.1:{ml.grpc_port}",
                                         "SENTIMENT_ENGINE_URL": sentiment.url})
    finally:
        probe.close()
        ml.stop()

    assert local["decisions"] > 100 and local["orders"] > 0
    for key in ("decisions", "orders", "fills", "final_equity", "cash", "positions", "realized_pnl", "signals"):
        assert remote[key] == local[key], key
    # the remote runner answered every prediction on ONNX Runtime; none fell back to the default
    assert set(remote["inference_paths"]) == set(local["inference_paths"]) == {"onnx_cpu"}
    assert sum(remote["inference_paths"].values()) == sum(local["inference_paths"].values()) > 100
    assert remote["errors"] == local["errors"] == {}
