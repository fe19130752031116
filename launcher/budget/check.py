"""Does a request of this shape fit a running vLLM server, and what will that server do if it does not?"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.errors import UserError
from launcher.http import Response, request
from launcher.sizing.versions import rules_for


@dataclass(frozen=True)
class ServerFacts:
    url: str
    model: str
    max_model_len: int
    version: str | None


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "fits", "clamped", "rejected"
    detail: str
    room: int  # tokens left after prompt + max_tokens (negative when over)
    expected_status: int
    expected_completion_tokens: int | None


def read_server(url: str, model: str | None, api_key: str | None) -> ServerFacts:
    models = request(url, "/v1/models", api_key=api_key, timeout=10)
    if models.status is None:
        raise UserError(f"cannot reach {url}: {models.error}", "nothing answered", "check the URL and that the server is up")
    if models.status == 401:
        raise UserError(
            f"{url} answered 401 Unauthorized",
            "the server was started with an API key and this one is missing or wrong",
            "export the key and name its variable with --api-key-env (default VLLM_API_KEY)",
        )
    data = models.body.get("data") if isinstance(models.body, dict) else None
    if models.status != 200 or not isinstance(data, list) or not data:
        raise UserError(
            f"{url} does not look like a vLLM server (GET /v1/models answered {models.status})",
            "vLLM lists its models with their max_model_len there",
            "check the URL (no /v1 suffix needed)",
        )
    entry = next((d for d in data if d.get("id") == model), None) if model else data[0]
    if entry is None:
        raise UserError(f"{url} does not serve {model!r}", f"it serves {[d.get('id') for d in data]}", "pass --model with one of those")
    if not isinstance(entry.get("max_model_len"), int):
        raise UserError(
            f"{url}'s /v1/models has no max_model_len for {entry.get('id')!r}",
            "vLLM reports it; this server may not be vLLM (or the entry is a LoRA adapter)",
            "check the URL and --model",
        )
    version = request(url, "/version", timeout=5)
    v = version.body.get("version") if version.status == 200 and isinstance(version.body, dict) else None
    return ServerFacts(url, entry["id"], entry["max_model_len"], v)


def judge(facts: ServerFacts, prompt_tokens: int, max_tokens: int) -> Verdict:
    L, P, M = facts.max_model_len, prompt_tokens, max_tokens
    room = L - P - M
    clamps = facts.version is not None and rules_for(facts.version).clamps_max_tokens
    if M > L:
        return Verdict(
            "rejected",
            f"max_tokens {M} > max_model_len {L}: HTTP 400 (max_tokens ... cannot be greater than max_model_len)",
            room,
            400,
            None,
        )
    if P > L:
        return Verdict("rejected", f"the prompt ({P}) alone exceeds max_model_len {L}: HTTP 400", room, 400, None)
    if P == L:
        return Verdict("rejected", f"the prompt fills max_model_len {L} exactly: HTTP 400 (max_tokens must be at least 1)", room, 400, None)
    if room >= 0:
        return Verdict("fits", f"prompt {P} + max_tokens {M} = {P + M} <= max_model_len {L} ({room} tokens to spare)", room, 200, M)
    if clamps:
        return Verdict(
            "clamped",
            f"prompt {P} + max_tokens {M} = {P + M} > {L}: vLLM {facts.version} accepts it but silently cuts "
            f"max_tokens to {L - P}; the completion ends early with finish_reason 'length'",
            room,
            200,
            L - P,
        )
    return Verdict(
        "rejected",
        f"prompt {P} + max_tokens {M} = {P + M} > {L}: vLLM {facts.version or '(unknown version)'} rejects it with HTTP 400",
        room,
        400,
        None,
    )


@dataclass(frozen=True)
class ProbeResult:
    status: int | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str  # the server's error message, as it sent it
    error_kind: str = ""  # that message's kind in vLLM's message catalog ("" when none or unknown)
    explanation: str = ""  # what it means, with the numbers (`vllm-launch explain` on the same text)


def error_message(body: object, fallback: str) -> str:
    """The message of an error body in any shape vLLM has used: {"error": {"message": ...}} (0.5+), {"message": ...}
    with "object": "error" (older OpenAI server), {"detail": ...} (FastAPI), or a bare string."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        for key in ("message", "detail"):
            if body.get(key):
                return body[key] if isinstance(body[key], str) else str(body[key])
        return ""
    if isinstance(body, str) and body.strip():
        return body.strip()
    return fallback


def probe(facts: ServerFacts, prompt_tokens: int, max_tokens: int, api_key: str | None) -> ProbeResult:
    """Send one real request of exactly this shape: a prompt of `prompt_tokens` token ids taken from /tokenize, asking
    for `max_tokens` with ignore_eos, so it generates up to max_tokens tokens (it costs that much GPU time)."""
    tok = request(facts.url, "/tokenize", api_key=api_key, payload={"model": facts.model, "prompt": "hello"})
    if tok.status != 200 or not isinstance(tok.body, dict) or not tok.body.get("tokens"):
        raise UserError(
            f"POST /tokenize failed ({tok.status}): {tok.body or tok.error}", "the probe builds its prompt from it", "run without --probe"
        )
    token = tok.body["tokens"][-1]
    reply: Response = request(
        facts.url,
        "/v1/completions",
        api_key=api_key,
        timeout=600,
        payload={"model": facts.model, "prompt": [token] * prompt_tokens, "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0},
    )
    body = reply.body if isinstance(reply.body, dict) else {}
    usage = body.get("usage") or {}
    choice = (body.get("choices") or [{}])[0]
    error = error_message(reply.body, str(reply.error or "")) if reply.status != 200 else ""
    kind = meaning = ""
    if error:
        from launcher.budget.explain import explain  # the catalog is loaded only when there is an error to decode

        e = explain(error, max_tokens=max_tokens, max_model_len=facts.max_model_len, prompt_tokens=prompt_tokens)
        if e.recognised:
            kind, meaning = e.kind, " ".join([e.what, *(e.fixes[:1])])
    return ProbeResult(
        reply.status, choice.get("finish_reason"), usage.get("prompt_tokens"), usage.get("completion_tokens"), error, kind, meaning
    )
