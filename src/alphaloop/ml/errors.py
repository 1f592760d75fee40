"""The ML layer's errors: few, specific, and catchable by callers (all exit with code 8 on the CLI)."""

from __future__ import annotations

from alphaloop.core.errors import AlphaloopError


class MLError(AlphaloopError):
    exit_code = 8


class ModelNotFoundError(MLError):
    """No model, version or alias of that name is registered."""


class ModelLoadError(MLError):
    """The artefact is missing, corrupt, not ONNX, or its sha256 does not match the registry."""


class SchemaMismatchError(MLError):
    """The features offered do not match the schema the model was trained on."""


class InferenceError(MLError):
    """The runtime failed to produce a prediction (bad input, NaN features, provider failure)."""


class InferenceTimeoutError(InferenceError):
    """The prediction did not arrive within its deadline."""


class ServiceUnavailableError(MLError):
    """A remote ML or sentiment service cannot be reached."""


class TrainingError(MLError):
    """Training could not run: too little data for the horizon, NaN labels, export disagreement."""
