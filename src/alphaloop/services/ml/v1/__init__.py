"""Code generated from ``proto/alphaloop/ml/v1/ml_service.proto`` by ``scripts/gen_proto.sh``; do not edit."""
