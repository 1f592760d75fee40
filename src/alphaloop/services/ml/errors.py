"""Errors of the ML service and its clients, each with the gRPC code and HTTP status it travels as.

Server side: :class:`BadRequest` (the caller sent something unusable; names the field) and
:class:`NotReady` (a part the call needs is missing: no discovery loop attached, no model loaded).
Client side: a remote failure is re-raised as the class of its kind, so a caller can tell "the
service is down" (fail over) from "my input is wrong" (failing over would not help).
"""

from __future__ import annotations

from alphaloop.ml.errors import InferenceTimeoutError, MLError, ServiceUnavailableError


class BadRequest(MLError):
    """Input the service cannot use; ``field`` names the part of the request at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"field '{field}': {message}")


class NotReady(MLError):
    """The service cannot answer this call yet (message starts with "not ready: ")."""

    def __init__(self, message: str):
        super().__init__(message if message.startswith("not ready") else f"not ready: {message}")


class JobNotFound(MLError):
    """No training job has that id (jobs live in the service's memory: a restart forgets them)."""


# ---------------------------------------------------------------------- client side


class RemoteError(MLError):
    """The remote service answered with an error. ``code`` is the gRPC status name (or the HTTP
    status mapped onto one), ``service`` the runner asked."""

    def __init__(self, message: str, *, code: str, service: str):
        self.code, self.service = code, service
        super().__init__(f"{service}: {code}: {message}")


class RemoteInvalidArgument(RemoteError):
    """The request was refused as malformed: retrying or asking another runner will not help."""


class RemoteNotFound(RemoteError):
    """The model (or job) named is not known to that service."""


class RemoteNotReady(RemoteError):
    """FAILED_PRECONDITION: the service is up but cannot answer this yet."""


class RemoteUnavailable(ServiceUnavailableError):
    """Nothing answered (connection refused, reset, overloaded) after the retries."""

    def __init__(self, message: str, *, code: str, service: str):
        self.code, self.service = code, service
        super().__init__(f"{service}: {code}: {message}")


class RemoteTimeout(InferenceTimeoutError):
    """Every attempt ran past its deadline."""

    def __init__(self, message: str, *, service: str):
        self.code, self.service = "DEADLINE_EXCEEDED", service
        super().__init__(f"{service}: DEADLINE_EXCEEDED: {message}")


class CircuitOpenError(ServiceUnavailableError):
    """The circuit breaker of that service is open: the call was not attempted."""


__all__ = ["BadRequest", "CircuitOpenError", "JobNotFound", "NotReady", "RemoteError", "RemoteInvalidArgument",
           "RemoteNotFound", "RemoteNotReady", "RemoteTimeout", "RemoteUnavailable"]
