"""The TorToiSe fine-tuning task: the autoregressive model trained on a dataset's lines.

What DLAS / ai-voice-cloning train, on voxmith's training loop: the whole UnifiedVoice (or LoRA
adapters on its GPT blocks, see `lora.py`) with the official objective -- text and mel cross-entropy
(`UnifiedVoice.training_losses`) -- the conditioning latent being the mean of the conditioning
encoder over two crops of other lines (`training_data.py`). The task declares the two losses
(`LOSSES`: "text" and "mel", ai-voice-cloning's default weights 0.01 and 1), which the loop weights
by the run's config.

`TortoiseFinetuneModel` is what the loop trains and checkpoints: `model(batch)` returns
{"text": loss, "mel": loss}. Its state dict is the AR's under `ar.` -- every tensor for a full
fine-tune, only the adapters for LoRA (a few MB instead of 1.7 GB per checkpoint). The engine's
`TortoiseEngine.load_finetune` reads that state back.

The diffusion decoder, vocoder and rankers are not trained (nor are they by ai-voice-cloning).
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from voxmith.engines.base import FinetuneSpec, LoraSpec
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.training.losses import LossTerm

from .autoregressive import UnifiedVoice
from .dvae import DiscreteVAE
from .lora import LORA_KEY, adapter_state, add_lora, merge_lora
from .training_data import (CodeCache, TortoiseBatch, check_enough, epoch_batches, prepare_lines,
                            validation_batches)

# The text loss weight inside `validation_loss` (ai-voice-cloning's default text_lr_weight): the
# validation number is mel CE + 0.01 x text CE, whatever the run's weights.
VALIDATION_TEXT_WEIGHT = 0.01
# ai-voice-cloning's default weights: English needs little of the text loss; other languages, whose
# spelling the stock model never learnt to read, train it with weight 1.
LOSSES = (
    LossTerm("text", 0.01, "text-prediction cross-entropy (use 1 for languages other than English)"),
    LossTerm("mel", 1.0, "speech-code (mel) prediction cross-entropy"),
)
STATE_PREFIX = "ar."


class TortoiseFinetuneModel(nn.Module):
    """The AR model as the loop sees it: `forward(batch)` -> {"text": CE, "mel": CE}."""

    def __init__(self, ar: UnifiedVoice, lora: Optional[LoraSpec] = None):
        super().__init__()
        self.ar = ar
        self.lora = lora
        if lora is not None:
            add_lora(ar, lora)
            # Checkpoints keep only the adapters; loading them must not ask for the frozen weights.
            self.register_state_dict_post_hook(_drop_frozen_keys)
            self.register_load_state_dict_post_hook(_allow_missing_frozen_keys)
        else:
            for param in ar.parameters():
                param.requires_grad_(True)

    def forward(self, batch: TortoiseBatch) -> dict[str, torch.Tensor]:
        batch = batch.to(self.ar.mel_head.weight.device)
        cond = self.ar.get_conditioning(batch.cond_mels)
        loss_text, loss_mel, _ = self.ar.training_losses(cond, batch.text, batch.text_lengths, batch.codes,
                                                         batch.wav_lengths)
        return {"text": loss_text, "mel": loss_mel}


def _drop_frozen_keys(module: nn.Module, state: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state if k.startswith(prefix) and LORA_KEY not in k]:
        del state[key]


def _allow_missing_frozen_keys(module: nn.Module, incompatible) -> None:
    frozen = [k for k in incompatible.missing_keys if LORA_KEY not in k]
    for key in frozen:
        incompatible.missing_keys.remove(key)


class TortoiseTrainingTask:
    """A `voxmith.training.TrainingTask` for TorToiSe's autoregressive model."""

    losses = LOSSES

    def __init__(self, ar: UnifiedVoice, spec: FinetuneSpec, *, dvae: Callable[[], DiscreteVAE], dvae_id: str,
                 encode_text: Callable[[str], List[int]], cache_key: str,
                 progress: Optional[ProgressCallback] = None):
        """`ar`: a private copy of the model to train (on the training device). `dvae()` gives the
        DVAE, built or loaded only if some clip's codes are not cached under
        `spec.cache_dir / <cache_key>-<dvae_id>` yet."""
        self.spec = spec
        cache = CodeCache(spec.cache_dir / f"{cache_key}-dvae-{dvae_id}")
        self.train_lines, self.skipped = prepare_lines(spec.train, encode_text=encode_text, dvae=dvae, cache=cache,
                                                       what="training", progress=progress)
        check_enough(self.train_lines, self.skipped, spec.batch_size)
        self.validation_lines, skipped = prepare_lines(spec.validation, encode_text=encode_text, dvae=dvae,
                                                       cache=cache, what="validation", progress=progress)
        self.skipped += skipped
        report(progress, "tortoise: building the model", 0, 1, detail="LoRA" if spec.lora else "full fine-tune")
        self.model = TortoiseFinetuneModel(ar, spec.lora)
        if ar.mel_head.weight.device.type == "cuda":
            ar.gpt.checkpointing = True  # trade compute for memory, as DLAS does
        report(progress, "tortoise: building the model", 1, 1)

    def batches(self, epoch: int) -> Sequence[TortoiseBatch]:
        return epoch_batches(self.train_lines, self.spec.batch_size, self.spec.seed, epoch)

    def validation_loss(self) -> float:
        """Mean over the validation lines of mel CE + 0.01 x text CE (the training lines when the
        dataset has no validation lines). Called by the loop in eval mode without gradients."""
        lines = self.validation_lines or self.train_lines
        total, rows = 0.0, 0
        for batch in validation_batches(lines, self.spec.batch_size, self.spec.seed):
            losses = self.model(batch)
            total += float((losses["mel"] + VALIDATION_TEXT_WEIGHT * losses["text"]).detach()) * len(batch)
            rows += len(batch)
        return total / rows


def apply_finetune_state(ar: UnifiedVoice, state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> bool:
    """Put a `TortoiseFinetuneModel` state into a plain (stock-weight) AR used for synthesis: the
    full weights, or LoRA adapters merged in with the run's `config["lora"]["alpha"]`. Returns
    whether the conditioning encoder changed (cached voice latents are then stale)."""
    if not isinstance(state, Mapping) or not any(k.startswith(STATE_PREFIX) for k in state):
        raise VoxmithError("The fine-tuned weights are not a TorToiSe checkpoint (no 'ar.' entries); "
                           "were they trained for another engine?")
    inner = {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    adapters = adapter_state(inner)
    if adapters:
        lora = dict(config.get("lora") or {})
        if "alpha" not in lora:
            raise VoxmithError("The fine-tuned weights are LoRA adapters but the run's config has no lora.alpha.")
        merge_lora(ar, adapters, float(lora["alpha"]))
        return False
    try:
        ar.load_state_dict(inner, strict=True)
    except RuntimeError as err:
        lines = str(err).splitlines()
        raise VoxmithError("The fine-tuned weights do not fit this TorToiSe model "
                           f"({' '.join(lines[1:3])[:300]}).") from None
    return True


__all__ = ["TortoiseFinetuneModel", "TortoiseTrainingTask", "apply_finetune_state", "VALIDATION_TEXT_WEIGHT"]
