"""Which engines exist and how to build one.

Built-in engines are listed by import path and imported only when asked for, so a missing
optional dependency of one engine never breaks the others. Third-party packages add engines
through the `voxmith.engines` entry-point group (name = "module:Class").
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Dict, List, Type

from voxmith.engines.base import Engine
from voxmith.errors import EngineError

DEFAULT_ENGINE = "piper-vc"

# name -> "module:Class". Engines of later milestones add themselves here.
_BUILTIN: Dict[str, str] = {
    "piper-vc": "voxmith.engines.piper_vc.engine:PiperVCEngine",
    "piper-vc-natural": "voxmith.engines.piper_vc.engine:PiperVCNaturalEngine",
    "tortoise": "voxmith.engines.tortoise.engine:TortoiseEngine",
    "gpt-sovits": "voxmith.engines.gpt_sovits.engine:GptSovitsEngine",
    "sv2tts": "voxmith.engines.sv2tts.engine:SV2TTSEngine",
}
_registered: Dict[str, str | Type[Engine]] = {}


def register_engine(name: str, target: "str | Type[Engine]") -> None:
    """Make an engine available under `name` (an import path 'module:Class' or the class)."""
    _registered[name] = target


def unregister_engine(name: str) -> None:
    """Forget an engine added with `register_engine` (built-in and entry-point engines stay)."""
    _registered.pop(name, None)


def _all_targets() -> Dict[str, "str | Type[Engine]"]:
    targets: Dict[str, str | Type[Engine]] = dict(_BUILTIN)
    try:
        for entry in metadata.entry_points(group="voxmith.engines"):
            targets.setdefault(entry.name, entry.value)
    except Exception:  # a broken third-party package must not break voxmith
        pass
    targets.update(_registered)
    return targets


def available_engines() -> List[str]:
    return sorted(_all_targets())


def engine_class(name: str) -> Type[Engine]:
    targets = _all_targets()
    if name not in targets:
        known = ", ".join(sorted(targets)) or "none installed"
        raise EngineError(f"Unknown engine '{name}'. Available engines: {known}.")
    target = targets[name]
    if not isinstance(target, str):
        return target
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise EngineError(f"Engine '{name}' cannot be loaded: {err}. "
                          "Reinstall voxmith with its dependencies ('make demo' does it).") from err
    return getattr(module, class_name)


def create_engine(name: str, device: str = "cpu", models_dir=None) -> Engine:
    """Instantiate engine `name` on an already resolved device string."""
    cls = engine_class(name)
    if device == "cpu" and not cls.device_needs.runs_on_cpu:
        raise EngineError(f"Engine '{name}' needs a GPU and cannot run on the CPU.")
    return cls(device=device, models_dir=models_dir)
