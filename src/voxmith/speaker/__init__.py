"""Speaker identity: GE2E embeddings (the SV2TTS speaker encoder shipped by resemblyzer)."""

from voxmith.speaker.encoder import (
    ENCODER_ID,
    SpeakerEncoder,
    cosine_similarity,
    get_speaker_encoder,
    mean_embedding,
)

__all__ = ["ENCODER_ID", "SpeakerEncoder", "cosine_similarity", "get_speaker_encoder", "mean_embedding"]
