"""``python -m alphaloop.services.ml [--service ml|tensorrt] [--model NAME] [--http-port N] [--grpc-port N]``:
run the ML service (HTTP + gRPC) until SIGTERM/SIGINT. ``alphaloop serve ml`` does the same."""

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
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(args.service, settings.log_level)
        from alphaloop.services.ml.http import build_app

        app = build_app(settings, service=args.service, model=args.model, preload=args.preload,
                        grpc_port=args.grpc_port)
        port = service_info(args.service).http_port if args.http_port is None else args.http_port
        serve_app(app, settings.service_host, port, log_level=settings.log_level)
    except AlphaloopError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
