"""piper-vc: Piper's stock joe voice, converted to an enrolled speaker with the WORLD vocoder."""

from voxmith.engines.piper_vc.engine import PiperVCEngine, PiperVCSettings

__all__ = ["PiperVCEngine", "PiperVCSettings"]
