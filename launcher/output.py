"""Writing results: standard output (also for `-o -`), or a file written atomically (temporary file + rename, so it is
never half written), with errors that say what to do instead of a traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from launcher.errors import UserError


def emit(text: str, path: Path | None, force: bool, mode: int = 0o644) -> None:
    if path is None or str(path) == "-":
        sys.stdout.write(text)
        return
    if path.is_dir():
        raise UserError(f"-o {path} is a directory", "the output is one file", f"name a file, e.g. -o {path / 'out'}")
    if path.exists() and not force:
        raise UserError(f"{path} already exists", "vllm-launch does not overwrite files unasked", "pass --force to replace it")
    if not path.parent.is_dir():
        raise UserError(f"{path.parent} is not a directory", "the output file's folder must exist", "create it first")
    import tempfile  # here: it imports random and hashlib, which plain output to the terminal does not need

    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise UserError(f"cannot write in {path.parent}: {exc.strerror}", "", "choose a folder you can write to") from exc
    try:
        with os.fdopen(fd, "w", errors="surrogateescape") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror}", "", "check the path and free space") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
