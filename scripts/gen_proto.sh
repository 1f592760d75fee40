#!/usr/bin/env bash
# Generate the ML service's Python gRPC code from proto/alphaloop/ml/v1/ml_service.proto into
# src/alphaloop/services/ml/v1/ (or into the folder given as $1, which the currency test uses).
# protoc writes `from alphaloop.ml.v1 import ml_service_pb2`, a package that does not exist (the
# code lives under alphaloop.services.ml.v1); it is rewritten to a relative import.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/src/alphaloop/services/ml/v1}"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I "$root/proto" --python_out="$tmp" --grpc_python_out="$tmp" --pyi_out="$tmp" \
    "$root/proto/alphaloop/ml/v1/ml_service.proto"
mkdir -p "$out"
for f in ml_service_pb2.py ml_service_pb2.pyi ml_service_pb2_grpc.py; do
    sed -e 's/^from alphaloop\.ml\.v1 import ml_service_pb2 as/from . import ml_service_pb2 as/' \
        "$tmp/alphaloop/ml/v1/$f" > "$out/$f"
done
