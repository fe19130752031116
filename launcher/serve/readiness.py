"""Is vLLM ready? Health, the served model and its context, and a real 1-token completion."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from launcher.http import request

T = TypeVar("T")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    stage: str  # "starting", "health", "models", "auth", "completion", "ready", "engine dead"
    detail: str = ""
    served_max_model_len: int | None = None
    fatal: bool = False  # the server answers, and what it answers will not change by waiting: stop it


def model_entry(models: Any, served_name: str) -> dict | None:
    if not isinstance(models, dict):
        return None
    return next((m for m in models.get("data", []) if isinstance(m, dict) and m.get("id") == served_name), None)


def check(base: str, served_name: str, max_model_len: int, api_key: str | None, completion_timeout: float = 30.0) -> Readiness:
    """Ready means: /health 200, /v1/models lists the model with the planned max_model_len, and a 1-token completion works.
    A completion that does not answer within `completion_timeout` is "not yet": the first one can be slow (compilation,
    a busy engine), and the caller's deadline decides."""
    health = request(base, "/health", timeout=1.0)
    if health.status is None:
        return Readiness(False, "starting", health.error)
    if health.status == 503:
        return Readiness(False, "engine dead", "/health answered 503", fatal=True)
    if health.status != 200:
        return Readiness(False, "health", f"/health answered {health.status}")
    models = request(base, "/v1/models", api_key=api_key)
    if models.status in (401, 403):
        sent = "with the key given" if api_key else "without a key"
        return Readiness(False, "auth", f"/v1/models answered {models.status} {sent}: {models.body or models.error}", fatal=True)
    entry = model_entry(models.body, served_name)
    if entry is None:
        ids = [m.get("id") for m in (models.body or {}).get("data", [])] if isinstance(models.body, dict) else []
        return Readiness(False, "models", f"/v1/models does not list {served_name!r} (it lists {ids})")
    served = entry.get("max_model_len")
    if served != max_model_len:
        return Readiness(False, "models", f"the server's max_model_len is {served}, not the planned {max_model_len}", served, fatal=True)
    payload = {"model": served_name, "prompt": "Hello", "max_tokens": 1}
    probe = request(base, "/v1/completions", api_key=api_key, payload=payload, timeout=completion_timeout)
    if probe.status is None:
        return Readiness(False, "completion", f"a 1-token completion has not answered yet ({probe.error})", served)
    if probe.status != 200:
        detail = f"a 1-token completion answered {probe.status}: {probe.body or probe.error}"
        return Readiness(False, "completion", detail, served, fatal=True)
    return Readiness(True, "ready", "", served)


class Pending(Generic[T]):
    """A blocking call run in a daemon thread, so the supervisor keeps answering signals, its deadline and vLLM's exit
    while an HTTP probe waits (a daemon thread: a probe still waiting never holds up the launcher's exit)."""

    def __init__(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> None:
        self.result: T | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self.result = call(*args, **kwargs)
            finally:
                self._done.set()

        threading.Thread(target=run, daemon=True).start()

    def done(self) -> bool:
        return self._done.is_set()
