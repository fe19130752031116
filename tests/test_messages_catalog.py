"""The message catalog generated from vLLM's source: every release covered, every message recognised with every field,
however it is pasted, and every kind answered."""

import itertools
import json
import re

import pytest

from launcher import vllm_messages as msgs
from launcher.budget.explain import HANDLERS, explain

CATALOG = json.loads(msgs.CATALOG.read_text())
MESSAGES = CATALOG["messages"]

# Sample values by field: realistic enough for the explanation to give numbers, distinct so a swapped field shows.
SAMPLES = {
    "max_model_len": "8192",
    "prompt_tokens": "6000",
    "max_tokens": "3000",
    "total_tokens": "9000",
    "shown_limit": "5192",
    "max_input_tokens": "5192",
    "prompt_chars": "91234",
    "max_prompt_chars": "80123",
    "prompt_limit": "2560",
    "lookahead_slots": "3",
    "truncate_prompt_tokens": "9100",
    "operation": "embedding generation",
    "prompt_type": "decoder",
    "derived_max_model_len": "4096.0",
    "derived_key": "max_position_embeddings",
    "model_max_length": "None",
    "kv_cache_tokens": "3664",
    "needed_gib": "16.0",
    "available_gib": "10.52",
    "estimate": "5376",
    "free_gib": "30.12",
    "total_gib": "79.19",
    "gpu_memory_utilization": "0.92",
    "requested_gib": "72.85",
    "requested_total_gib": "73.5",
    "external_gib": "75.1",
    "min_utilization": "0.45",
    "device": "cuda:0",
    "numa_node": "0",
    "heads": "52",
    "tensor_parallel_size": "3",
    "world_size": "8",
    "gpus": "4",
    "max_num_batched_tokens": "2048",
    "max_num_seqs": "256",
    "num_requests": "512",
    "mamba_blocks": "100",
    "initial_memory": "70.5",
    "current_memory": "68.25",
    "port": "8001",
    "process": "psutil.Process(pid=4321, name='python3', status='sleeping')",
    "worker": "VllmWorker-0",
    "exit_code": "-9",
    "value_type": "int",
    "gpu_blocks": "229",
    "cpu_blocks": "512",
    "weights_gib": "14.99",
    "load_seconds": "12.5",
    "profile_seconds": "3.2",
    "non_torch_gib": "0.35",
    "activation_gib": "1.25",
    "cudagraph_gib": "0.5",
    "kv_fit_gib": "40.1",
    "kv_max_gib": "44.2",
    "kv_fit_bytes": "43056480256",
    "kv_max_bytes": "47458795520",
    "failed_procs": "{'EngineCore_DP0': 1}",
    "failed_frontend_procs": "{'ApiServer_0': 1}",
    "original_error": "CUDA out of memory. Tried to allocate 2.00 GiB",
    "task": "embed",
    "param": "max_tokens",
    "limit_param": "max_model_len",
}


def render(parts: list, values: dict) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif "f" in part:
            out.append(values[part["f"]])
        else:  # the option that shows the most fields (then the longest): every field gets checked
            option = max(part["c"], key=lambda o: (json.dumps(o).count('"f"'), len(render(o, values))))
            out.append(render(option, values))
    return "".join(out)


# Values the explanation needs to make sense of a kind (a "got 3000" for max_tokens must be at least 1 is not a real message).
KIND_SAMPLES = {"max_tokens_zero": {"max_tokens": "-186"}}


def named_choices(parts: list) -> dict[str, str]:
    """Choices between plain words that the pattern names (e.g. "at least "): the text the test renders for them."""
    out = {}
    for part in parts:
        if isinstance(part, dict) and "c" in part:
            if part.get("name"):
                out[part["name"]] = max(("".join(o) for o in part["c"]), key=len)
            for option in part["c"]:
                out.update(named_choices(option))
    return out


def sample(entry: dict) -> tuple[str, dict]:
    names = set(entry["fields"]) | set(re.findall(r'"f": "(\w+)"', json.dumps(entry["template"])))
    values = {name: SAMPLES[name] for name in names if name in SAMPLES}
    values.update({name: vocabulary[0] for name, vocabulary in entry.get("values", {}).items()})
    values.update(KIND_SAMPLES.get(entry["kind"], {}))
    text = render(entry["template"], values)
    values.update(named_choices(entry["template"]))
    return text, values


def pasted_ways(text: str) -> dict[str, str]:
    """The same message as users paste it."""
    wrapped = re.sub(r"(.{1,50})(\s|$)", lambda m: m.group(1) + "\n", text)
    spaces = itertools.cycle(["\r\n", "  ", " \n ", " "])
    return {
        "as printed": text,
        "line breaks, CRLF, double spaces": re.sub(r" ", lambda m: next(spaces), text),
        "JSON body, escaped twice": json.dumps({"log": json.dumps({"error": {"message": text, "code": 400}})}),
        "openai client repr": "openai.BadRequestError: Error code: 400 - " + repr({"object": "error", "message": text, "code": 400}),
        "ANSI and per-line log prefixes": "\n".join(
            f"\x1b[1;36m(APIServer pid=4242)\x1b[0;0m [rank1]: {line}" for line in wrapped.splitlines()
        ),
        "Ray worker prefix": "\n".join(f"(RayWorkerWrapper pid=77, ip=10.0.0.3) {line}" for line in wrapped.splitlines()),
        "inside a whole log": "INFO 05-01 10:00:00 [api_server.py:1] vLLM API server version 0.9.2\n"
        + text
        + "\nINFO 05-01 10:00:01 shutting down\n",
    }


def test_every_minor_release_from_0_2_to_0_33_is_covered():
    minors = {tuple(map(int, v.split(".")[:2])) for v in CATALOG["releases"]}
    assert minors == {(0, m) for m in range(2, 34)}
    seen = {v for e in MESSAGES for v in e["releases"]}
    assert seen == set(CATALOG["releases"]), "every release contributes messages"


def test_every_kind_has_an_explanation():
    kinds = {e["kind"] for e in MESSAGES} | {e["kind"] for e in CATALOG["external"]}
    assert kinds <= set(HANDLERS), kinds - set(HANDLERS)


@pytest.mark.parametrize("entry", MESSAGES, ids=[e["id"] for e in MESSAGES])
def test_every_catalogued_message_is_recognised_with_every_field(entry):
    text, values = sample(entry)
    for way, pasted in pasted_ways(text).items():
        assert any(m.kind == entry["kind"] for m in msgs.find_all(pasted)), f"{way}: not recognised: {pasted!r}"
        own = re.search(entry["pattern"], msgs.normalise(pasted))  # this phrasing's own pattern, whichever one find() prefers
        assert own, f"{way}: {entry['id']}'s pattern does not match {pasted!r}"
        for name in entry["fields"]:
            got, want = own.group(name), values[name].strip()
            assert got is not None, f"{way}: {name} not extracted from {pasted!r}"
            got = re.sub(r"\s+", " ", got).strip()
            if entry["fields"][name] == "text" and way != "as printed":  # free text may end at a line break or a quote
                assert got and want.startswith(got), f"{way}: {name} = {got!r}, expected {want!r}"
            else:
                assert got == want, f"{way}: {name} = {got!r}, expected {want!r}"


@pytest.mark.parametrize("entry", MESSAGES, ids=[e["id"] for e in MESSAGES])
def test_explain_answers_every_catalogued_message(entry):
    text, _ = sample(entry)
    e = explain(text)
    assert e.recognised and e.kind == entry["kind"] and e.what
    assert e.fixes or entry["phase"] == "fact"
    if entry["phase"] in ("request", "startup") and entry["fields"] and entry["kind"] not in ("engine_init_failed", "max_len_not_positive"):
        assert e.numbers, f"{entry['id']}: no number in the answer"


@pytest.mark.parametrize("entry", CATALOG["external"], ids=[e["id"] for e in CATALOG["external"]])
def test_external_messages_match_their_verbatim_samples(entry):
    e = explain(entry["sample"])
    assert e.recognised and e.kind == entry["kind"]


def test_a_truncated_message_still_gives_its_first_numbers():
    e = explain("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the mess")
    assert e.kind == "requested_total" and e.numbers["max_model_len"] == 4096


def test_every_entry_says_where_it_comes_from():
    for entry in MESSAGES:
        assert entry["first"] in CATALOG["releases"] and entry["last"] in CATALOG["releases"]
        assert re.fullmatch(r"vllm/[\w/]+\.py", entry["file"]) and entry["line"] > 0
        assert entry["sources"][entry["last"]] == f"{entry['file']}:{entry['line']}"
