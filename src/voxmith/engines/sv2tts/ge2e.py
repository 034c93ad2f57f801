"""The GE2E loss the speaker encoder is trained with (official `SpeakerEncoder.similarity_matrix` and
`loss`, after Wan et al. 2018, section 2.1): for a batch of speakers x utterances embeddings, each
utterance is compared (cosine) with every speaker's centroid, its own speaker's centroid computed
without it; the similarities are scaled by the model's learnt `similarity_weight` and shifted by
`similarity_bias`, and the loss is the cross-entropy of picking the right speaker.

The official code fills the matrix speaker by speaker; this computes it in one pass. The equal error
rate the official training logs beside the loss (a diagnostic, not differentiated) is
`equal_error_rate`, computed from the same matrix as officially.
"""

from __future__ import annotations

import numpy as np
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
    return loss_of_similarity(similarity_matrix(embeds, weight, bias))


def loss_of_similarity(similarity: torch.Tensor) -> torch.Tensor:
    """The GE2E loss of a (speakers, utterances, speakers) similarity matrix."""
    speakers, utterances = similarity.shape[:2]
    target = torch.arange(speakers, device=similarity.device).repeat_interleave(utterances)
    return F.cross_entropy(similarity.reshape(speakers * utterances, speakers), target)


def equal_error_rate(similarity: torch.Tensor) -> float:
    """The equal error rate of telling each utterance's speaker from the others by its scaled
    similarities (official: the ROC of all (utterance, speaker) scores, and the false-positive rate
    where it equals the miss rate on the linearly interpolated curve)."""
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve  # scikit-learn comes with librosa; loaded only for training

    speakers, utterances = similarity.shape[:2]
    labels = np.repeat(np.eye(speakers, dtype=np.int64), utterances, axis=0)  # one-hot rows, speaker-major
    scores = similarity.detach().float().cpu().numpy().reshape(speakers * utterances, speakers)
    fpr, tpr, _ = roc_curve(labels.flatten(), scores.flatten())
    return float(brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0))
