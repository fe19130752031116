"""What vLLM's log says while it starts: the phase, the logged KV capacity, and any known failure."""

from __future__ import annotations

import re
import threading
from collections import deque

from launcher import vllm_messages as msgs

# vLLM's own records only, never a client's text inside one: a logged prompt (with --enable-log-requests) can say
# anything, but vLLM logs it with %r (0.32.0 vllm/entrypoints/serve/utils/request_logger.py log_inputs), so it can
# neither start a line nor make an INFO record an ERROR one. Record format: 0.32.0 vllm/logger.py _FORMAT
# "(APIServer pid=1) ERROR 01-02 03:04:05 [core.py:1512] message"; older releases have no process part and
# "file.py:12]" without the "[".
_PROCESS = r"(?:\((?:[\w.\-]+\s+)?pid=\d+(?:,\s*ip=[^)]*)?\)\s+)?"
_ERROR_RECORD = re.compile(r"^" + _PROCESS + r"ERROR\s+\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?\s+(?:\[[^\]]*\]|[\w.]+:\d+\])\s*(.*)")
# 0.32.0: vllm/v1/engine/core.py run_engine_core "EngineCore encountered a fatal error." (then it reports the engine dead),
# vllm/v1/engine/async_llm.py output_handler "AsyncLLM output_handler failed.", vllm/v1/executor/multiproc_executor.py
# "Worker proc %s died unexpectedly"; any ERROR record naming EngineDeadError.
_ENGINE_DEATH = re.compile(
    r"EngineCore encountered a fatal error|AsyncLLM output_handler failed|Worker proc \S+ died unexpectedly|EngineDeadError"
)
# The last line of a traceback through vLLM's API server (0.32.0 vllm/v1/engine/exceptions.py EngineDeadError).
_DEAD_TRACEBACK = re.compile(r"^" + _PROCESS + r"vllm\.v1\.engine\.exceptions\.EngineDeadError\b")


def says_engine_died(line: str) -> bool:
    """A line of vLLM's own that reports its engine dead (a hint: the supervisor confirms it with /health)."""
    record = _ERROR_RECORD.match(line)
    return bool(record and _ENGINE_DEATH.search(record[1])) or bool(_DEAD_TRACEBACK.match(line))


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
        self.engine_deaths = 0  # lines in which vLLM reported its engine dead (the supervisor confirms each with /health)

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
            if says_engine_died(line):
                self.engine_deaths += 1

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._text)

    def tail(self, n: int = 25) -> list[str]:
        with self._lock:
            return list(self.lines)[-n:]
