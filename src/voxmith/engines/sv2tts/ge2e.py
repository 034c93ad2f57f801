"""The GE2E loss the speaker encoder is trained with (official `SpeakerEncoder.similarity_matrix` and
`loss`, after Wan et al. 2018, section 2.1): for a batch of speakers x utterances embeddings, each
utterance is compared (cosine) with every speaker's centroid, its own speaker's centroid computed
without it; the similarities are scaled by the model's learnt `similarity_weight` and shifted by
`similarity_bias`, and the loss is the cross-entropy of picking the right speaker.

The official code fills the matrix speaker by speaker; this computes it in one pass. Not here:
the equal error rate the official training logs (a diagnostic, not part of the loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5  # added to norms, as officially


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return x / (torch.norm(x, dim=-1, keepdim=True) + EPS)


def similarity_matrix(embeds: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(speakers, utterances, dim) -> (speakers, utterances, speakers) scaled cosine similarities."""
    speakers, utterances = embeds.shape[:2]
    inclusive = _normalized(embeds.mean(dim=1))  # (speakers, dim): one centroid per speaker
    exclusive = _normalized((embeds.sum(dim=1, keepdim=True) - embeds) / (utterances - 1))  # without the utterance
    to_all = torch.einsum("sud,kd->suk", embeds, inclusive)
    to_own = (embeds * exclusive).sum(dim=2)  # (speakers, utterances)
    own = torch.eye(speakers, dtype=torch.bool, device=embeds.device)[:, None, :]
    return torch.where(own, to_own[:, :, None], to_all) * weight + bias


def ge2e_loss(embeds: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each utterance's similarities against its speaker."""
    speakers, utterances = embeds.shape[:2]
    logits = similarity_matrix(embeds, weight, bias).reshape(speakers * utterances, speakers)
    target = torch.arange(speakers, device=embeds.device).repeat_interleave(utterances)
    return F.cross_entropy(logits, target)
