"""The Prometheus metric families every service shares (one process = one service, so the default
registry is that service's; the ``service`` label keeps them apart when tests run several in one)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram("alphaloop_http_request_seconds", "HTTP request latency.",
                            ("service", "method", "route", "status"), buckets=_LATENCY_BUCKETS)
GRPC_SECONDS = Histogram("alphaloop_grpc_request_seconds", "gRPC request latency.", ("service", "method", "code"),
                         buckets=_LATENCY_BUCKETS)
PREDICTION_SECONDS = Histogram("alphaloop_prediction_seconds", "Prediction latency by inference path.",
                               ("service", "path"), buckets=_LATENCY_BUCKETS)
ERRORS = Counter("alphaloop_errors_total", "Errors by type.", ("service", "type"))
CACHE = Counter("alphaloop_cache_requests_total", "Prediction cache lookups.", ("service", "result"))
MESSAGES = Counter("alphaloop_messages_total", "Pipeline messages handled (bars, signals, decisions, orders, fills).",
                   ("service", "kind"))
BUS_PENDING = Gauge("alphaloop_bus_pending", "Entries delivered to a consumer group and not acknowledged yet.",
                    ("service", "stream", "group"))
BUS_LAG = Gauge("alphaloop_bus_lag", "Entries in a stream not delivered to the consumer group yet.",
                ("service", "stream", "group"))
UP = Gauge("alphaloop_up", "1 while the service is ready.", ("service",))
