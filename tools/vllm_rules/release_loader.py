"""Load one vLLM release's pure-Python sizing modules from its extracted source, without installing it.

Runs inside an interpreter that has torch (the vLLM CPU venv); never imports an installed vllm. Every `vllm.*`
module is served from the release's source tree (`/work/vllm-src/vllm-X/vllm`), except:
  - modules listed in STUBBED: replaced by a stub, because they pull in the model zoo, CUDA, transformers or
    the request/scheduler machinery, none of which the KV-cache arithmetic uses;
  - modules whose real import fails in this interpreter: stubbed too, and reported.
A stub hands out placeholder classes usable as type annotations and base classes; calling one raises, so an
accidental runtime use shows up as an error, never as a silently wrong number. `vllm.logger` is replaced by a
logger that records every message (that is how the release's own KV-size report line is read back).
The loader reports exactly what it stubbed (`Loader.report()`), and golden.py stores that next to the answers.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import types
from pathlib import Path

# Never sizing-relevant: model code, devices, requests, multimodal, metrics, the config package (a plain
# namespace stands in for VllmConfig).
STUBBED = (
    "vllm.config",
    "vllm.platforms",
    "vllm.distributed",
    "vllm.model_executor",
    "vllm.attention",
    "vllm.multimodal",
    "vllm.v1.request",
    "vllm.v1.metrics",
    "vllm.v1.attention",
    "vllm.transformers_utils",
    "vllm.sampling_params",
    "vllm.inputs",
    "vllm.lora",
    "vllm.compilation",
    "vllm.v1.worker",
    "vllm.v1.utils",
    "vllm.forward_context",
    "vllm.sequence",
)
# Packages whose __init__ is NOT executed (it would import half of vLLM); their submodules load from source.
BARE_PACKAGES = ("vllm", "vllm.v1", "vllm.v1.core", "vllm.utils", "vllm.worker", "vllm.executor")


class StubUsed(RuntimeError):
    pass


class _StubMeta(type):
    def __call__(cls, *args, **kwargs):
        raise StubUsed(f"stub {cls.__module__}.{cls.__name__} was called")

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(f"{cls.__name__}.{name}", cls.__module__)

    def __getitem__(cls, item):
        return cls

    def __or__(cls, other):
        return cls

    def __ror__(cls, other):
        return cls


def _stub_class(name: str, module: str) -> type:
    return _StubMeta(name, (), {"__module__": module})


class StubModule(types.ModuleType):
    def __init__(self, name: str, loader: Loader):
        super().__init__(name)
        self.__path__: list[str] = []
        self._loader = loader

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        self._loader.stub_attrs.setdefault(self.__name__, set()).add(attr)
        value = _stub_class(attr, self.__name__)
        setattr(self, attr, value)
        return value


class CaptureLogger:
    """Stands in for vLLM's logger: keeps the formatted text of every message."""

    def __init__(self, sink: list[str]):
        self.sink = sink

    def _log(self, msg, *args, **kwargs):
        self.sink.append(str(msg) % args if args else str(msg))

    info = warning = debug = error = info_once = warning_once = debug_once = _log

    def isEnabledFor(self, level) -> bool:
        return True


class FakeCudaPlatform:
    """`current_platform` as CUDA, for the few module-level and sizing calls that ask; anything else raises."""

    device_type = "cuda"
    device_name = "cuda"

    def is_cuda(self) -> bool:
        return True

    def is_cuda_alike(self) -> bool:
        return True

    def is_rocm(self) -> bool:
        return False

    def is_cpu(self) -> bool:
        return False

    def is_pin_memory_available(self) -> bool:
        return False

    def register_custom_kv_cache_specs(self, vllm_config) -> None:
        """A no-op on CUDA (0.32.0 vllm/platforms/interface.py:1128, not overridden in cuda.py)."""

    def get_kv_cache_config_builder_cls(self, vllm_config) -> str:
        """CUDA keeps the default builder (0.33.0 vllm/platforms/interface.py:1474, not overridden in cuda.py)."""
        return "vllm.v1.core.kv_cache_planning.DefaultKVCacheConfigBuilder"

    def __getattr__(self, name):
        raise StubUsed(f"current_platform.{name} is not modelled by the loader")


class Loader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, src: Path, extra_stubs: tuple[str, ...] = ()):
        self.root = src / "vllm"
        self.stubbed = STUBBED + extra_stubs
        self.stub_attrs: dict[str, set[str]] = {}
        self.failed: dict[str, str] = {}
        self.loaded: list[str] = []
        self.messages: list[str] = []
        for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, self)

    # -- finder
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "vllm" and not fullname.startswith("vllm."):
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=self._is_package(fullname))

    def _file(self, fullname: str) -> Path | None:
        rel = fullname.split(".")[1:]
        base = self.root.joinpath(*rel)
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        return None

    def _is_package(self, fullname: str) -> bool:
        rel = fullname.split(".")[1:]
        return self.root.joinpath(*rel).is_dir()

    # -- loader
    def create_module(self, spec):
        name = spec.name
        if name == "vllm.logger":
            module = types.ModuleType(name)
            module.init_logger = lambda _name: CaptureLogger(self.messages)
            module.logger = CaptureLogger(self.messages)
            module.enable_trace_function_call = lambda *args, **kwargs: None  # imported by old vllm/utils.py
            return module
        if name == "vllm.config":  # VllmConfig only annotates; the spec registry (0.26+) asks for the current one
            module = StubModule(name, self)
            module.get_current_vllm_config_or_none = lambda: None
            module.get_current_vllm_config = lambda: None
            return module
        if name == "vllm.platforms":
            module = StubModule(name, self)
            module.current_platform = FakeCudaPlatform()
            return module
        if any(name == s or name.startswith(s + ".") for s in self.stubbed):
            return StubModule(name, self)
        return None  # default module creation

    def exec_module(self, module):
        name = module.__name__
        if isinstance(module, StubModule) or name == "vllm.logger":
            return
        if name in BARE_PACKAGES and name != "vllm.utils" or (name == "vllm.utils" and self._is_package(name)):
            module.__path__ = [str(self.root.joinpath(*name.split(".")[1:]))]
            if name == "vllm.utils":
                self._exec_package_init_or_stub(module)
            return
        path = self._file(name)
        if path is None:
            raise ImportError(f"{name} is not in this release")
        if self._is_package(name):
            module.__path__ = [str(path.parent)]
        module.__file__ = str(path)
        try:
            exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
        except StubUsed:
            raise
        except Exception as exc:  # the release's module needs something this interpreter lacks: stub it
            self.failed[name] = f"{type(exc).__name__}: {exc}"[:300]
            stub = StubModule(name, self)
            sys.modules[name] = stub
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:
                setattr(sys.modules[parent], child, stub)
            return
        self.loaded.append(name)

    def _exec_package_init_or_stub(self, module) -> None:
        # vllm/utils/__init__.py (0.10+) is a grab-bag; old releases keep cdiv/get_dtype_size there.
        init = self.root / "utils" / "__init__.py"
        try:
            exec(compile(init.read_text(), str(init), "exec"), module.__dict__)
            self.loaded.append(module.__name__)
        except Exception as exc:
            self.failed[module.__name__] = f"{type(exc).__name__}: {exc}"[:300]

    def report(self) -> dict:
        return {
            "stubbed_by_design": sorted({n for n in sys.modules if isinstance(sys.modules[n], StubModule) and n not in self.failed}),
            "stubbed_after_import_error": dict(sorted(self.failed.items())),
            "stub_attributes_touched": {k: sorted(v) for k, v in sorted(self.stub_attrs.items())},
            "logger": "vllm.logger replaced by a capturing logger",
            "real_modules": sorted(self.loaded),
        }


def load(src: Path, *modules: str) -> tuple[Loader, list[types.ModuleType]]:
    loader = Loader(src)
    out = []
    for name in modules:
        out.append(importlib.import_module(name))
    return loader, out
