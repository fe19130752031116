"""What vLLM's log says while it starts: the phase, the logged KV capacity, and any known failure."""

from __future__ import annotations

import threading
from collections import deque

from launcher import vllm_messages as msgs


class LogWatch:
    """Fed one line at a time from the reader thread; read from the supervisor thread."""

    def __init__(self, tail: int = 60) -> None:
        self._lock = threading.Lock()
        self.phase = "launching"
        self._step = -1
        self.kv_cache_tokens: int | None = None
        self.max_concurrency: float | None = None
        self.lines: deque[str] = deque(maxlen=tail)
        self._text: deque[str] = deque(maxlen=4000)
        self.engine_dead = False

    def feed(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            self._text.append(line)
            step = msgs.phase_of(line)
            if step is not None and step > self._step:  # phases only move forward
                self._step, self.phase = step, msgs.PHASES[step][0]
            size = msgs.KV_SIZE.search(line)
            if size:
                self.kv_cache_tokens = int(size[1].replace(",", ""))
            conc = msgs.CONCURRENCY.search(line)
            if conc:
                self.max_concurrency = float(conc[2])
            if "EngineDeadError" in line or "engine core exited unexpectedly" in line:
                self.engine_dead = True

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._text)

    def tail(self, n: int = 25) -> list[str]:
        with self._lock:
            return list(self.lines)[-n:]
