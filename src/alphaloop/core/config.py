"""Configuration: defaults < YAML file < environment, with the source of every value kept.

The file is ``--config PATH``, else ``$ALPHALOOP_CONFIG``, else ``$ALPHALOOP_HOME/config.yaml`` if it
exists. Each setting reads one environment variable: ``ALPHALOOP_<NAME>``, or the name operators of
this kind of system already use (``ONNX_RUNNER_URL``, ``MAX_POSITION_SIZE``, ...).
All state lives under ``home`` so runs can be isolated by pointing ``ALPHALOOP_HOME`` elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alphaloop.core.errors import ConfigError


def _path(v: Any) -> Path:
    return Path(os.path.expanduser(str(v)))


def _opt_str(v: Any) -> str | None:
    s = str(v).strip() if v is not None else ""
    return s or None


def _float(v: Any) -> float:
    return float(v)


def _pos_float(v: Any) -> float:
    f = float(v)
    if not f > 0:
        raise ValueError("must be > 0")
    return f


def _unit_float(v: Any) -> float:
    f = float(v)
    if not 0.0 <= f <= 1.0:
        raise ValueError("must be within [0, 1]")
    return f


def _body_limit(v: Any) -> int:
    n = int(v)
    if n < 1024:
        raise ValueError("must be at least 1024 bytes")
    return n


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        s = str(v).strip().lower()
        if s not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return s
    return parse


# name -> (environment variable, parser, default; a callable default is derived from home)
_SPEC: dict[str, tuple[str, Callable[[Any], Any], Any]] = {
    "home": ("ALPHALOOP_HOME", _path, "~/.alphaloop"),
    "database_url": ("ALPHALOOP_DATABASE_URL", str, lambda home: f"sqlite:///{home / 'alphaloop.db'}"),
    "models_dir": ("ALPHALOOP_MODELS_DIR", _path, lambda home: home / "models"),
    "cache_dir": ("ALPHALOOP_CACHE_DIR", _path, lambda home: home / "cache"),
    "logs_dir": ("ALPHALOOP_LOGS_DIR", _path, lambda home: home / "logs"),
    "log_level": ("ALPHALOOP_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info"),
    "bus": ("ALPHALOOP_BUS", _choice("memory", "redis"), "memory"),
    "redis_url": ("ALPHALOOP_REDIS_URL", str, "redis://127.0.0.1:6379/0"),
    "onnx_runner_url": ("ONNX_RUNNER_URL", _opt_str, None),
    "tensorrt_runner_url": ("TENSORRT_RUNNER_URL", _opt_str, None),
    "sentiment_engine_url": ("SENTIMENT_ENGINE_URL", _opt_str, None),
    # Services: the address they bind to (loopback unless told otherwise), the bearer token that
    # state-changing endpoints require when set, and the largest request body they accept.
    "service_host": ("ALPHALOOP_SERVICE_HOST", str, "127.0.0.1"),
    "service_token": ("ALPHALOOP_SERVICE_TOKEN", _opt_str, None),
    "max_body_bytes": ("ALPHALOOP_MAX_BODY_BYTES", _body_limit, 1_048_576),
    "min_signal_threshold": ("MIN_SIGNAL_THRESHOLD", _unit_float, 0.3),
    "max_position_size": ("MAX_POSITION_SIZE", _pos_float, 1000.0),
    "initial_cash": ("ALPHALOOP_INITIAL_CASH", _pos_float, 10_000.0),
    "commission": ("ALPHALOOP_COMMISSION", _float, 0.0),
}


_SECRETS = frozenset({"service_token"})


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    models_dir: Path
    cache_dir: Path
    logs_dir: Path
    log_level: str
    bus: str
    redis_url: str
    onnx_runner_url: str | None
    tensorrt_runner_url: str | None
    sentiment_engine_url: str | None
    service_host: str
    service_token: str | None
    max_body_bytes: int
    min_signal_threshold: float
    max_position_size: float
    initial_cash: float
    commission: float
    sources: Mapping[str, str]
    config_file: Path | None = None

    def as_rows(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) for every setting, in declaration order; secrets shown as ``***``."""
        return [(name, "***" if name in _SECRETS and getattr(self, name) else getattr(self, name), self.sources[name])
                for name in _SPEC]

    def ensure_dirs(self) -> None:
        for d in (self.home, self.models_dir, self.cache_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value at the top level")
    unknown = sorted(set(raw) - set(_SPEC))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_SPEC)}")
    return raw


def load_settings(config_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting and remember where it came from."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(name: str, raw: Any, source: str) -> None:
        try:
            values[name] = _SPEC[name][1](raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: setting '{name}' = {raw!r} is invalid: {e}") from e
        sources[name] = source

    # home decides where the default config file and the derived paths are, so resolve it first.
    file_path = Path(config_file) if config_file else (Path(env["ALPHALOOP_CONFIG"]) if env.get("ALPHALOOP_CONFIG") else None)
    file_values = _read_file(file_path) if file_path else {}
    order = list(_SPEC)
    for name in order:
        var, _, default = _SPEC[name]
        if var in env and env[var] != "":
            take(name, env[var], f"env {var}")
        elif name in file_values:
            take(name, file_values[name], f"file {file_path}")
        elif name == "home":
            take(name, default, "default")
            implicit = values["home"] / "config.yaml"
            if file_path is None and implicit.is_file():
                file_path, file_values = implicit, _read_file(implicit)
                if "home" in file_values:
                    raise ConfigError(f"{implicit}: 'home' cannot be set inside the home directory's own config")
        else:
            take(name, default(values["home"]) if callable(default) else default, "default")
    return Settings(**values, sources=sources, config_file=file_path)


def setting_names() -> list[str]:
    return list(_SPEC)


def setting_env_var(name: str) -> str:
    return _SPEC[name][0]


__all__ = ["Settings", "load_settings", "setting_env_var", "setting_names"]
