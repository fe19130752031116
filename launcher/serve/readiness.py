"""Is vLLM ready? Health, the served model and its context, and a real 1-token completion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from launcher.http import request


@dataclass(frozen=True)
class Readiness:
    ready: bool
    stage: str  # "starting", "health", "models", "completion", "ready", "engine dead"
    detail: str = ""
    served_max_model_len: int | None = None


def model_entry(models: Any, served_name: str) -> dict | None:
    if not isinstance(models, dict):
        return None
    return next((m for m in models.get("data", []) if isinstance(m, dict) and m.get("id") == served_name), None)


def check(base: str, served_name: str, max_model_len: int, api_key: str | None) -> Readiness:
    """Ready means: /health 200, /v1/models lists the model with the planned max_model_len, and a 1-token completion works."""
    health = request(base, "/health", timeout=1.0)
    if health.status is None:
        return Readiness(False, "starting", health.error)
    if health.status == 503:
        return Readiness(False, "engine dead", "/health answered 503")
    if health.status != 200:
        return Readiness(False, "health", f"/health answered {health.status}")
    models = request(base, "/v1/models", api_key=api_key)
    if models.status == 401:
        return Readiness(False, "models", "/v1/models answered 401: the API key does not match the server's")
    entry = model_entry(models.body, served_name)
    if entry is None:
        ids = [m.get("id") for m in (models.body or {}).get("data", [])] if isinstance(models.body, dict) else []
        return Readiness(False, "models", f"/v1/models does not list {served_name!r} (it lists {ids})")
    served = entry.get("max_model_len")
    if served != max_model_len:
        return Readiness(False, "models", f"the server's max_model_len is {served}, not the planned {max_model_len}", served)
    probe = request(
        base, "/v1/completions", api_key=api_key, payload={"model": served_name, "prompt": "Hello", "max_tokens": 1}, timeout=30.0
    )
    if probe.status != 200:
        return Readiness(False, "completion", f"a 1-token completion answered {probe.status}: {probe.body or probe.error}", served)
    return Readiness(True, "ready", "", served)
