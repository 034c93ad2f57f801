"""GPT-SoVITS fine-tuning, both official stages in one voxmith training run: SoVITS, then the GPT.

    task = GptSovitsTrainingTask(sovits_with_posterior, discriminator, t2s, lines, validation_lines,
                                 batch_size=8, seed=0, epochs=23)
    train_loop(task, run)

The run's epochs are split between the stages in the official proportion (8 SoVITS epochs then 15 GPT
epochs by default, `stage_epochs`): `batches(epoch)` gives SoVITS batches for the first epochs and GPT
batches after, both over the same lines in the same seeded order (the loop needs the same number of
batches per epoch), and the model's forward trains whichever stage a batch belongs to. The losses
are declared per stage ("sovits.*", see sovits_finetune.py; "gpt.ce"), so one run config weights
them all and metrics.csv logs each stage's own.

Stage 2, the GPT (official `s1_train.py` / `AR/models/t2s_lightning_module.py`): the cross-entropy of
`t2s_training_loss` (summed over the codes of the batch, as the official one) on each line's phones,
BERT features and semantic codes (training_data.py). As the official loader (`AR/data/dataset.py`
collate) batches them: phones padded with 0 on the right, BERT features in a zero (B, 1024,
longest phones) tensor with each Chinese line's (1024, phones) features at its start; a line without
features (not Chinese) stays all zeros. Deviation: the
official optimizer is ScaledAdam (peak lr 0.01, warm-up, decay); here it is AdamW (the run's
optimizer) at GPT_LR_SCALE x the run's learning rate with the run's schedule, because the loop has one
optimizer for the run. Stage 1's discriminator starts from the official pretrained one
(`s2D2333k.pth`) when it is found, else from random weights (the engine's `_training_discriminator`).

One optimizer holds both stages' parameters; a stage's batches give no gradient to the other's, and
AdamW skips parameters without a gradient, so each stage's optimizer state only starts with its own
first step. Not supported: torchrun (each pass leaves the other stage's parameters unused, which
DistributedDataParallel refuses).

Versions (official `webui.py`, `config.py`): v2 starts from the v2 GPT and `s2G2333k.pth`; v2Pro and
v2ProPlus from `s1v3.ckpt` and `v2Pro/s2Gv2Pro.pth` / `v2Pro/s2Gv2ProPlus.pth` (configs
`s2v2Pro.json`, `s2v2ProPlus.json`: the checkpoint's own config), their discriminators from
`v2Pro/s2Dv2Pro.pth` / `s2Dv2ProPlus.pth` (7 periods), and each line carries its speaker-verification
embedding (training_data.py). The GPT stage is the same for all three (`s1longer-v2.yaml`). v1, v3
and v4 (CFM decoder, LoRA recipe `s2_train_v3_lora.py`) are not trained here.

The checkpoint holds `sovits.generator.*` (the SoVITS with its posterior encoder),
`sovits.discriminator.*` and `gpt.*` (the GPT): `fine_tuned_models` makes the inference models of a
voice from it (the engine's `load_finetune`).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from voxmith.errors import VoxmithError
from voxmith.training.losses import LossTerm

from . import sovits_finetune
from .sovits_finetune import SoVITSTrainer, check_items_fit, epoch_batches, line_tensors
from .t2s_loss import t2s_training_loss

GPT_STAGE = "gpt"
SOVITS_EPOCHS = sovits_finetune.DEFAULT_EPOCHS  # official default 8
GPT_EPOCHS = 15  # official default
GPT_LR_SCALE = 1.0  # AdamW at the run's lr (1e-4 by default) instead of ScaledAdam at 0.01
BERT_DIM = 1024

GPT_LOSSES = (LossTerm("ce", 1.0, "cross-entropy of the next semantic code, summed over the batch's codes",
                       stage=GPT_STAGE),)
LOSSES = sovits_finetune.LOSSES + GPT_LOSSES


def stage_epochs(epochs: int) -> Tuple[int, int]:
    """(SoVITS epochs, GPT epochs) of a run of `epochs`, in the official 8:15 proportion, each >= 1."""
    if epochs < 2:
        raise VoxmithError(f"A gpt-sovits run trains two stages, so it needs at least 2 epochs, not {epochs}.")
    first = min(epochs - 1, max(1, round(epochs * SOVITS_EPOCHS / (SOVITS_EPOCHS + GPT_EPOCHS))))
    return first, epochs - first


class GptTrainer(nn.Module):
    """The GPT; forward(batch) -> {"gpt.ce": summed cross-entropy}."""

    def __init__(self, t2s: nn.Module):
        super().__init__()
        self.model = t2s

    def forward(self, batch: dict) -> Dict[str, torch.Tensor]:
        device = self.model.bert_proj.weight.device
        phones = batch["phones"].to(device)
        out = t2s_training_loss(self.model, phones, batch["phone_lengths"].to(device), batch["codes"].to(device),
                                batch["code_lengths"].to(device), batch["bert"].to(device))
        return {f"{GPT_STAGE}.ce": out.loss}


def gpt_collate(lines: Sequence) -> dict:
    """Phones, codes and BERT features padded on the right, as the official loader pads them (codes
    with 0 instead of its 1024: the loss never reads a padded code)."""
    def pad(arrays) -> torch.Tensor:
        length = max(a.shape[0] for a in arrays)
        out = torch.zeros(len(arrays), length, dtype=torch.long)
        for i, a in enumerate(arrays):
            out[i, :a.shape[0]] = torch.from_numpy(a)
        return out

    phones = pad([l.phone_ids for l in lines])
    bert = torch.zeros(len(lines), BERT_DIM, phones.shape[1])
    for i, line in enumerate(lines):
        features = getattr(line, "bert", None)
        if features is not None:
            if features.shape != (BERT_DIM, line.phone_ids.shape[0]):
                raise VoxmithError(f"A line's BERT features are {tuple(features.shape)}, not ({BERT_DIM}, "
                                   f"{line.phone_ids.shape[0]}) for its phones: delete the dataset's feature cache.")
            bert[i, :, :features.shape[1]] = torch.from_numpy(features)
    return {"stage": GPT_STAGE, "phones": phones, "phone_lengths": torch.tensor([l.phone_ids.shape[0] for l in lines]),
            "bert": bert, "codes": pad([l.codes for l in lines]),
            "code_lengths": torch.tensor([l.codes.shape[0] for l in lines])}


class StagedModel(nn.Module):
    def __init__(self, sovits: SoVITSTrainer, gpt: GptTrainer):
        super().__init__()
        self.sovits, self.gpt = sovits, gpt

    def forward(self, batch: dict) -> Dict[str, torch.Tensor]:
        return self.gpt(batch) if batch.get("stage") == GPT_STAGE else self.sovits(batch)


class GptSovitsTrainingTask:
    """`voxmith.training.TrainingTask` of both stages (see the module docstring)."""

    losses = LOSSES
    optimizer_options = {"betas": sovits_finetune.BETAS, "eps": sovits_finetune.EPS}

    def __init__(self, sovits: nn.Module, discriminator: nn.Module, t2s: nn.Module, train_lines: Sequence,
                 validation_lines: Sequence, batch_size: int, seed: int, epochs: int):
        if not train_lines:
            raise VoxmithError("The dataset has no training lines.")
        self.model = StagedModel(SoVITSTrainer(sovits, discriminator), GptTrainer(t2s))
        self.lines, self.validation = list(train_lines), list(validation_lines)
        self.sovits_items = [line_tensors(line) for line in self.lines]
        check_items_fit(sovits, self.sovits_items)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.sovits_epochs, self.gpt_epochs = stage_epochs(int(epochs))

    def batches(self, epoch: int) -> List[dict]:
        order = epoch_batches(len(self.lines), self.batch_size, self.seed, epoch)
        if epoch >= self.sovits_epochs:
            return [gpt_collate([self.lines[i] for i in index]) for index in order]
        return [{**sovits_finetune.collate([self.sovits_items[i] for i in index], self.seed * 1000 + epoch * 100 + n),
                 "stage": sovits_finetune.STAGE} for n, index in enumerate(order)]

    def parameter_groups(self, model: nn.Module, learning_rate: float) -> List[dict]:
        groups = sovits_finetune.parameter_groups(self.model.sovits, learning_rate)
        gpt = [p for p in self.model.gpt.parameters() if p.requires_grad]
        return groups + [{"params": gpt, "lr": learning_rate * GPT_LR_SCALE}]

    @torch.no_grad()
    def validation_loss(self) -> float:
        """The GPT's cross-entropy per code on the validation lines (the training lines when there
        are none): what decides how well the fine-tuned voice reads new text."""
        lines = self.validation or self.lines
        total = sum(float(self.model.gpt(gpt_collate([line]))[f"{GPT_STAGE}.ce"]) for line in lines)
        return total / max(1, sum(int(line.codes.shape[0]) + 1 for line in lines))


def fine_tuned_models(state: Dict[str, torch.Tensor], sovits: nn.Module, t2s: nn.Module) -> None:
    """Load a run's checkpoint state into inference models (a SoVITS without posterior encoder and
    a GPT of the same sizes), in place; VoxmithError when the state does not fit them."""
    parts = {"sovits.generator.": {}, "gpt.model.": {}}
    for key, value in state.items():
        for prefix, bucket in parts.items():
            if key.startswith(prefix):
                bucket[key[len(prefix):]] = value
    if not parts["gpt.model."] or not parts["sovits.generator."]:
        raise VoxmithError("These fine-tuned weights hold no GPT-SoVITS models (sovits.generator.*, gpt.model.*).")
    generator = {k: v for k, v in parts["sovits.generator."].items()
                 if hasattr(sovits, "enc_q") or not k.startswith("enc_q.")}
    try:
        sovits.load_state_dict(generator, strict=True)
        t2s.load_state_dict(parts["gpt.model."], strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise VoxmithError(f"The fine-tuned weights do not fit this GPT-SoVITS model ({first}).") from None


__all__ = ["GPT_LOSSES", "LOSSES", "GptSovitsTrainingTask", "GptTrainer", "fine_tuned_models", "gpt_collate",
           "stage_epochs"]
