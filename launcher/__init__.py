"""vllm-launch: size, start and prove ready vLLM servers.

Importing this package stays light: no torch, vllm or transformers (a test checks it).
`from launcher import plan` is the Python API (launcher.api), loaded on first use.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "plan":
        from launcher.api import plan

        return plan
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")
