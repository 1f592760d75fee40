"""``python -m alphaloop.services.ml [--service ml|tensorrt] [--model NAME] [--http-port N] [--grpc-port N]
[--no-discovery] [--retrain-interval S]``: run the ML service (HTTP + gRPC) until SIGTERM/SIGINT, with
the discovery loop on the project database attached (feedback, evaluation model, retraining scheduler)
unless ``--no-discovery`` (``--service tensorrt`` never attaches one). ``alphaloop serve ml`` does the same."""

from __future__ import annotations

import argparse
import sys

from alphaloop.core.config import load_settings
from alphaloop.core.errors import AlphaloopError
from alphaloop.services.logs import configure_logging
from alphaloop.services.serving import serve_app
from alphaloop.services.topology import service as service_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alphaloop.services.ml", description=__doc__)
    parser.add_argument("--service", choices=("ml", "tensorrt"), default="ml",
                        help="ml: ONNX Runtime on CPU; tensorrt: the GPU provider chain (falls back to CPU).")
    parser.add_argument("--model", default=None, help="Default model: empty requests go to it; readiness waits for it.")
    parser.add_argument("--preload", action="append", default=[], help="Another model to load at start (repeatable).")
    parser.add_argument("--http-port", type=int, default=None)
    parser.add_argument("--grpc-port", type=int, default=None)
    parser.add_argument("--config", default=None, help="Configuration file (YAML).")
    parser.add_argument("--no-discovery", action="store_true",
                        help="Attach no discovery loop: the discovery RPCs answer FAILED_PRECONDITION (not ready). "
                             "The tensorrt service never attaches one.")
    parser.add_argument("--retrain-interval", type=float, default=None, metavar="SECONDS",
                        help="How often the retraining scheduler checks whether a retraining is due "
                             "(default 60; 0: no scheduler, retrain only when asked).")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(args.service, settings.log_level)
        from alphaloop.services.ml.http import build_app

        discovery = None
        # one discovery loop per deployment: the TensorRT runner is a second copy of the service on the
        # same database, and two schedulers would train the same feedback twice
        if args.service == "ml" and not args.no_discovery:
            from alphaloop.services.ml.discovery_backend import DEFAULT_RETRAIN_INTERVAL_S, build_discovery

            interval = DEFAULT_RETRAIN_INTERVAL_S if args.retrain_interval is None else args.retrain_interval
            if interval < 0:
                parser.error(f"--retrain-interval must be >= 0, got {interval}")
            discovery = build_discovery(settings, retrain_interval_s=interval or None)
        app = build_app(settings, service=args.service, model=args.model, preload=args.preload,
                        grpc_port=args.grpc_port, discovery=discovery)
        port = service_info(args.service).http_port if args.http_port is None else args.http_port
        serve_app(app, settings.service_host, port, log_level=settings.log_level)
    except AlphaloopError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
