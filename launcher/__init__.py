"""vllm-launch: size, start and prove ready vLLM servers.

Importing this package stays light: no torch, vllm or transformers (a test checks it).
"""

__version__ = "0.1.0"
