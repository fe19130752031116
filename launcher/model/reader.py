"""Adapter: find a model's config and checkpoint size on disk, in the HF cache, on the Hub, or in the
offline catalog. Reads only small JSON files and safetensors headers, never weights."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from launcher.errors import UserError
from launcher.model.config import spec_from_config
from launcher.model.spec import ModelSpec

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "BOOL": 1,
    "F8_E8M0": 1,
    "F4": 0.5,
}
HUB_TIMEOUT_S = 5.0
HUB_CONNECT_TIMEOUT_S = 1.0  # a reachable Hub answers a TCP connect in well under this


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: {what} is not valid JSON ({exc})", "vLLM would fail to read it too", f"fix or re-download {path.name}"
        ) from exc
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", "", "check the path and its permissions") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: {what} is not a JSON object", "", f"fix or re-download {path.name}")
    return data


def safetensors_header_bytes(path: Path) -> int:
    """Size of the tensors in one .safetensors file, from its JSON header (the first bytes only)."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)


Weights = tuple[int, str]  # checkpoint bytes, how we know them


def index_weights(index: Path | None) -> Weights | None:
    """The checkpoint size a safetensors index states (`metadata.total_size`), when it states a positive one."""
    if index is None or not index.is_file():
        return None
    total = _read_json(index, "the safetensors index").get("metadata", {}).get("total_size")
    return (total, "safetensors index") if isinstance(total, int) and total > 0 else None


def catalog_weights(repo_id: str, catalog: dict[str, dict[str, Any]]) -> Weights | None:
    entry = catalog.get(repo_id)
    return (entry["weights_bytes"], "catalog: " + entry["weights_source"]) if entry else None


def local_weight_bytes(directory: Path) -> Weights | None:
    indexed = index_weights(directory / "model.safetensors.index.json")
    if indexed:
        return indexed
    files = sorted(directory.glob("*.safetensors"))
    if files:
        return sum(safetensors_header_bytes(f) for f in files), "safetensors headers"
    return None


CATALOG = Path(__file__).resolve().parent.parent / "data" / "catalog.json"  # package data (launcher.data)


def load_catalog() -> dict[str, dict[str, Any]]:
    return json.loads(CATALOG.read_text())


def _apply_overrides(config: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    if not overrides:
        return config
    merged = dict(config)
    target = merged
    if isinstance(merged.get("text_config"), dict):
        merged["text_config"] = target = dict(merged["text_config"])
    target.update(overrides)
    return merged


def _spec(config: dict[str, Any], name: str, weights: Weights | None, **facts: Any) -> ModelSpec:
    """spec_from_config (the size estimated without `weights`), with a config value of the wrong type or range reported
    as such instead of a traceback."""
    sized = {"weights_bytes": weights[0], "weights_source": weights[1]} if weights else {}
    try:
        return spec_from_config(config, name, **sized, **facts)
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
        raise UserError(
            f"{name}: config.json (with --hf-overrides, if given) has a value that cannot be read: {exc}",
            "vLLM would fail to load such a config too",
            "check the model's config.json and --hf-overrides",
        ) from exc


def read_local(path: Path, overrides: dict[str, Any] | None) -> ModelSpec:
    directory = path.parent if path.is_file() else path
    config_path = path if path.is_file() else path / "config.json"
    if not config_path.is_file():
        raise UserError(
            f"{directory}: no config.json",
            "vLLM needs the model's config.json to load it",
            "point --model at a Hugging Face model directory, its config.json, or a Hub repo id",
        )
    config = _apply_overrides(_read_json(config_path, "config.json"), overrides)
    gen_path = directory / "generation_config.json"
    generation = _read_json(gen_path, "generation_config.json") if gen_path.is_file() else None
    return _spec(
        config,
        str(path),
        local_weight_bytes(directory),
        generation_config=generation,
        facts_source=f"local files in {directory}",
    )


def read_catalog(repo_id: str, overrides: dict[str, Any] | None, reason: str) -> ModelSpec:
    catalog = load_catalog()
    entry = catalog[repo_id]
    return _spec(
        _apply_overrides(entry["config"], overrides),
        repo_id,
        catalog_weights(repo_id, catalog),
        facts_source=f"built-in catalog, used because {reason}; config from {entry['source']}",
    )


_HUB_REACHABLE: dict[str, bool] = {}  # endpoint -> answer, for the life of the process: an unreachable Hub is asked once


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """One TCP connect to the Hub, name lookup included, within `timeout`: huggingface_hub would otherwise retry for
    ~25 s on a machine without network (and a stuck DNS lookup ignores socket timeouts, hence the thread)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if endpoint not in _HUB_REACHABLE:
        url = urllib.parse.urlparse(endpoint)
        answer: list[bool] = []

        def connect() -> None:
            try:
                port = url.port or (443 if url.scheme == "https" else 80)
                with socket.create_connection((url.hostname or "huggingface.co", port), timeout):
                    answer.append(True)
            except (OSError, ValueError):
                answer.append(False)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(timeout)
        _HUB_REACHABLE[endpoint] = bool(answer and answer[0])
    return _HUB_REACHABLE[endpoint]


def cached_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """A file of a Hub repo in the local HF cache, without importing huggingface_hub (a third of a second): the cache
    layout huggingface_hub's `try_to_load_from_cache` reads (models--OWNER--NAME/refs/REV -> snapshots/COMMIT/FILE)."""
    from huggingface_hub import constants  # light: environment and paths only

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / (revision or "main")
    try:
        commit = ref.read_text().strip() if ref.is_file() else (revision or "main")
    except OSError:
        return None
    path = repo / "snapshots" / commit / filename
    return path if path.is_file() else None


def read_cached(repo_id: str, revision: str | None, overrides: dict[str, Any] | None, reason: str) -> ModelSpec:
    """Offline: the HF cache's copy of the model, else the built-in catalog, else an error that lists the catalog."""
    config_path = cached_file(repo_id, "config.json", revision)
    catalog = load_catalog()
    if config_path is None:
        if repo_id in catalog:
            return read_catalog(repo_id, overrides, f"{reason} and the HF cache has no copy")
        raise UserError(
            f"cannot read {repo_id}: {reason} and the model is not in the HF cache",
            "the sizing engine needs the model's config.json",
            "download it once (huggingface-cli download REPO config.json), pass --model a local directory, or use a model of "
            f"the built-in catalog: {', '.join(sorted(catalog))}",
        )
    gen_path = cached_file(repo_id, "generation_config.json", revision)
    weights = index_weights(cached_file(repo_id, "model.safetensors.index.json", revision))
    return _spec(
        _apply_overrides(_read_json(config_path, "config.json"), overrides),
        repo_id,
        weights or catalog_weights(repo_id, catalog),
        generation_config=_read_json(gen_path, "generation_config.json") if gen_path else None,
        facts_source=f"Hugging Face Hub {repo_id}" + (f"@{revision}" if revision else "") + " (HF cache)",
    )


def read_hub(repo_id: str, revision: str | None, overrides: dict[str, Any] | None) -> ModelSpec:
    """Config and size from the Hub (huggingface_hub's cache serves what it holds); the catalog when the Hub does not
    answer and the cache has no copy. Offline reading is `read_cached`."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(HUB_TIMEOUT_S)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(HUB_TIMEOUT_S)))
    from huggingface_hub import HfApi, hf_hub_download  # heavy: imported only for Hub models
    from huggingface_hub import errors as hf_errors

    catalog = load_catalog()

    def fetch(filename: str, required: bool = False) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision))
        except hf_errors.LocalEntryNotFoundError:
            if required:  # a subclass of EntryNotFoundError: "the Hub did not answer, not cached", not "no such file"
                raise
            return None
        except hf_errors.EntryNotFoundError:
            return None

    try:
        config_path = fetch("config.json", required=True)
    except hf_errors.GatedRepoError as exc:
        raise UserError(
            f"{repo_id} is a gated repository and the Hub refused access",
            "its files are readable only with an accepted licence and a token",
            "accept the licence on huggingface.co and set HF_TOKEN (never put the token in a flag)",
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise UserError(
            f"{repo_id}: no such model on the Hub (or it is private)",
            "vLLM would fail the same way after starting",
            "check the repo id; for a private repo set HF_TOKEN",
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise UserError(f"{repo_id}: revision {revision!r} not found", "", "check --revision") from exc
    except (hf_errors.LocalEntryNotFoundError, OSError) as exc:
        if repo_id in catalog:
            return read_catalog(repo_id, overrides, "the Hub did not answer and the HF cache has no copy")
        raise UserError(
            f"cannot read {repo_id}: the Hub is unreachable and the model is not in the HF cache",
            "the sizing engine needs the model's config.json",
            "download it once (huggingface-cli download REPO config.json), or pass --model a local directory",
        ) from exc
    if config_path is None:
        raise UserError(f"{repo_id} has no config.json", "vLLM needs it", "check that this is a Transformers model repo")
    config = _apply_overrides(_read_json(config_path, "config.json"), overrides)
    generation = None
    weights: Weights | None = None
    try:
        gen_path = fetch("generation_config.json")
        generation = _read_json(gen_path, "generation_config.json") if gen_path else None
        weights = index_weights(fetch("model.safetensors.index.json"))
        if weights is None:
            meta = HfApi().get_safetensors_metadata(repo_id, revision=revision)
            total = sum(int(count * SAFETENSORS_DTYPE_BYTES.get(dtype, 2)) for dtype, count in meta.parameter_count.items())
            weights = (total, "hub safetensors metadata") if total else None
    except (hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, OSError, ValueError):
        pass  # size falls back to the estimate below, labelled as such
    return _spec(
        config,
        repo_id,
        weights or catalog_weights(repo_id, catalog),
        generation_config=generation,
        facts_source=f"Hugging Face Hub {repo_id}" + (f"@{revision}" if revision else ""),
    )


def read_model(model: str, revision: str | None = None, hf_overrides: str | None = None) -> ModelSpec:
    """Resolve --model: a local directory, a path to config.json, or a Hub repo id."""
    overrides = None
    if hf_overrides:
        try:
            overrides = json.loads(hf_overrides)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"--hf-overrides is not valid JSON: {exc}",
                "vLLM parses it as JSON",
                "quote it, e.g. '{\"max_position_embeddings\": 65536}'",
            ) from exc
        if not isinstance(overrides, dict):
            raise UserError("--hf-overrides must be a JSON object", "", "e.g. '{\"max_position_embeddings\": 65536}'")
    path = Path(model).expanduser()
    if path.exists():
        return read_local(path, overrides)
    if model.startswith(("/", ".", "~")) or not REPO_ID.match(model):
        raise UserError(
            f"--model {model!r}: no such file or directory, and not a Hub repo id",
            "a model is a local directory, a path to its config.json, or 'owner/name' on the Hub",
            "check the path",
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return read_cached(model, revision, overrides, "HF_HUB_OFFLINE is set")
    if not hub_reachable():
        return read_cached(model, revision, overrides, "the Hub is out of reach (no network)")
    return read_hub(model, revision, overrides)
