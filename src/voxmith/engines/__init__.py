"""Synthesis engines behind one small interface, plus device selection and the engine registry.

Each engine lives in its own subpackage (one file per model) and is imported only when used.
"""

from voxmith.engines.base import (Candidate, Conditioning, Converter, DeviceNeeds, Engine, EngineOption,
                                  EngineSettings, FINETUNE_REFUSED, Finetune, FinetuneSpec, LoraSpec, ModelFile,
                                  TrainingLine)
from voxmith.engines.device import resolve_device
from voxmith.engines.registry import available_engines, create_engine, engine_class, register_engine

__all__ = [
    "Candidate",
    "Conditioning",
    "Converter",
    "DeviceNeeds",
    "Engine",
    "EngineOption",
    "EngineSettings",
    "FINETUNE_REFUSED",
    "Finetune",
    "FinetuneSpec",
    "LoraSpec",
    "ModelFile",
    "TrainingLine",
    "resolve_device",
    "available_engines",
    "create_engine",
    "engine_class",
    "register_engine",
]
