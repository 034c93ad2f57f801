"""tortoise: voxmith's own implementation of the TorToiSe TTS 3.0.0 inference stack.

Kept light on purpose: `voxmith models list` imports `checkpoints` through this package, so nothing
here imports torch. The engine is `voxmith.engines.tortoise.engine:TortoiseEngine` (ENGINE_PATH);
`TortoiseEngine` and `TortoiseSettings` are also reachable from here, imported on first access.
"""

ENGINE_PATH = "voxmith.engines.tortoise.engine:TortoiseEngine"

__all__ = ["ENGINE_PATH", "TortoiseEngine", "TortoiseSettings"]


def __getattr__(name):
    if name in ("TortoiseEngine", "TortoiseSettings"):
        from voxmith.engines.tortoise import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
