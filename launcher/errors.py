"""The one error type the CLI turns into a clear message and exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: says what was wrong, why it matters, and what to do."""

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.fix = fix

    def __str__(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(f"why: {self.why}")
        if self.fix:
            parts.append(f"what to do: {self.fix}")
        return "\n  ".join(parts)
