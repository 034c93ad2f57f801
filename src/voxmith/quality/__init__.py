"""Speech naturalness: DistillMOS, a predicted mean opinion score (1 = bad, 5 = excellent)."""

from voxmith.quality.naturalness import (MOS_MODEL_ID, NaturalnessModel, NaturalnessUnavailable, get_naturalness_model,
                                         naturalness_installed)

__all__ = ["MOS_MODEL_ID", "NaturalnessModel", "NaturalnessUnavailable", "get_naturalness_model", "naturalness_installed"]
