"""Services: each engine as its own process (HTTP with FastAPI, gRPC for the ML service), joined by
Redis Streams, each with health, Prometheus metrics and structured logs; and the clients that reach them.

Shared parts: :mod:`.topology` (names and default ports), :mod:`.http_app` (the app every HTTP
service starts from: health, metrics, bearer token, body limit), :mod:`.metrics` (the metric
families), :mod:`.serving` (running an app with background workers and a clean shutdown),
:mod:`.logs` (JSON log lines with the message id).
"""
