"""Run the real ``alphaloop`` program in a subprocess with an isolated home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "market"


def alphaloop(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHALOOP_")}
    full_env.update({"ALPHALOOP_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "alphaloop", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)
