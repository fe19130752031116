#!/usr/bin/env python3
"""A stand-in `vllm` executable for tests of rendered scripts and README examples: `vllm serve MODEL [flags]` serves
/health, /version, /v1/models (the model id and max_model_len from its flags) and a 1-token /v1/completions like vLLM
until SIGTERM; with VLLM_API_KEY set, /v1 answers 401 without `Authorization: Bearer KEY`, as vLLM does
(vllm/entrypoints/serve/middleware/authenticate.py, 0.32.0). With FAKE_VLLM_ARGV=FILE it only writes its argv to FILE
as JSON and exits, so tests can check exactly what a script passed. It does not model vLLM's limits: tests of those
run the real vLLM CPU build.

Behaviours the launcher must cope with, by environment variable:
- FAKE_VLLM_SLOW_COMPLETION=S: each completion first prints "fake vllm: completion received" and waits S seconds.
- FAKE_VLLM_IGNORE_SIGTERM=1: SIGTERM is ignored, as vLLM does while its engine starts.
- FAKE_VLLM_LOG_REQUESTS=1: each completion's prompt is logged as vLLM's request logger does, %r-quoted in an INFO record
  (0.32.0 vllm/entrypoints/serve/utils/request_logger.py log_inputs).
- FAKE_VLLM_DIE_ON=TEXT: a completion whose prompt is TEXT kills the "engine": vLLM's own error records are logged
  (0.32.0 vllm/v1/engine/core.py, async_llm.py output_handler) and /health answers 503 from then on, the API server
  still running, as vLLM with VLLM_KEEP_ALIVE_ON_ENGINE_DEATH does."""

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def flag(argv: list[str], name: str, default: str | None = None) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else default


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("FAKE_VLLM_ARGV"):
        with open(os.environ["FAKE_VLLM_ARGV"], "w") as f:
            json.dump(argv, f)
        return
    if argv[:1] == ["--version"]:
        print("0.32.0")
        return
    model = argv[1]
    served = flag(argv, "--served-model-name", model)
    length = int(flag(argv, "--max-model-len", "2048"))
    port = int(flag(argv, "--port", "8000"))
    # As vLLM answers (FastAPI's JSONResponse: UTF-8 unescaped, no spaces; vllm/entrypoints/openai/models/api_router.py).
    models = {"object": "list", "data": [{"id": served, "object": "model", "root": model, "max_model_len": length}]}
    body = json.dumps(models, ensure_ascii=False, separators=(",", ":"))

    key = os.environ.get("VLLM_API_KEY")
    slow = float(os.environ.get("FAKE_VLLM_SLOW_COMPLETION") or 0)
    log_requests = os.environ.get("FAKE_VLLM_LOG_REQUESTS") == "1"
    die_on = os.environ.get("FAKE_VLLM_DIE_ON")
    engine = {"dead": False}
    pid = os.getpid()

    class Handler(BaseHTTPRequestHandler):
        def refused(self) -> bool:
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if key and self.path.startswith("/v1") and (scheme.lower() != "bearer" or token != key):
                self._json({"error": "Unauthorized"}, 401)
                return True
            return False

        def do_GET(self) -> None:
            if self.refused():
                return
            if self.path == "/health":
                self.send_response(503 if engine["dead"] else 200)
                self.end_headers()
            elif self.path == "/v1/models":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())
            elif self.path == "/version":
                self._json({"version": "0.32.0"})
            else:
                self.send_response(404)
                self.end_headers()

        def do_POST(self) -> None:
            if self.refused():
                return
            if self.path != "/v1/completions":
                self.send_response(404)
                self.end_headers()
                return
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            prompt = request.get("prompt")
            if slow:
                print("fake vllm: completion received", flush=True)
                time.sleep(slow)
            stamp = time.strftime("%m-%d %H:%M:%S")
            if log_requests:
                print(f"(APIServer pid={pid}) INFO {stamp} [request_logger.py:55] Request cmpl-1 details: prompt: {prompt!r}", flush=True)
            if die_on is not None and prompt == die_on:
                engine["dead"] = True
                print(f"(EngineCore_DP0 pid={pid}) ERROR {stamp} [core.py:1512] EngineCore encountered a fatal error.", flush=True)
                print(f"(APIServer pid={pid}) ERROR {stamp} [async_llm.py:906] AsyncLLM output_handler failed.", flush=True)
                dead = "EngineCore encountered an issue. See stack trace (above) for the root cause."
                print(f"vllm.v1.engine.exceptions.EngineDeadError: {dead}", flush=True)
                self._json({"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError", "code": 500}}, 500)
                return
            answer = {
                "id": "cmpl-fake",
                "object": "text_completion",
                "model": served,
                "choices": [{"index": 0, "text": " Hi", "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            self._json(answer)

        def _json(self, data: dict, status: int = 200) -> None:
            raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    if os.environ.get("FAKE_VLLM_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    print(f"fake vllm serving {ascii(served)} (max_model_len {length}) on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
