"""Writing results: standard output, or a file written atomically (temporary file + rename, never half written)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from launcher.errors import UserError


def emit(text: str, path: Path | None, force: bool, mode: int = 0o644) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    if path.exists() and not force:
        raise UserError(f"{path} already exists", "vllm-launch does not overwrite files unasked", "pass --force to replace it")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent} is not a directory", "", "create it first")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
