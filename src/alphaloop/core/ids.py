"""Identifiers: sortable, unique, no coordination needed."""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """A time-ordered id such as ``run_01893f2a6c1b_9f3e2a1c``: milliseconds since epoch + 32 random bits."""
    return f"{prefix}_{int(time.time() * 1000):012x}_{os.urandom(4).hex()}"
