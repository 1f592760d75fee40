"""The ML service: gRPC (``MLService`` + the standard health service) and HTTP in one process, and
the clients the strategy engine uses to reach it (gRPC or HTTP, retries, circuit breakers, failover
TensorRT runner -> ONNX runner -> default, a prediction cache in front).

* :mod:`.http` - ``build_app(settings, **options)``: the FastAPI app with the gRPC server as a worker;
* :mod:`.server` - the gRPC servicer, health board and server worker;
* :mod:`.service` - what both transports call (:class:`~.service.MLCore`);
* :mod:`.models` - loading and serving registered models; :mod:`.jobs` - training jobs;
* :mod:`.client` - gRPC/HTTP clients, ``CircuitBreaker``, ``RemotePredictor``, ``FailoverPredictor``,
  ``CachedPredictor``; :mod:`.wiring` - the predictor chain from settings;
* ``python -m alphaloop.services.ml`` - run it.
"""
