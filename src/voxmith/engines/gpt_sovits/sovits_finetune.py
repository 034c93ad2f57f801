"""Stage 1 of GPT-SoVITS fine-tuning (SoVITS, official `s2_train.py`) as a voxmith training task.

    task = SoVITSStage(sovits, discriminator, lines, batch_size=4, seed=0)   # lines: training_data.LineFeatures
    train_loop(task, run)   # or as the first stage of `staged.GptSovitsTrainingTask`

`SoVITSTrainer` holds the generator (a `SoVITS` built with `with_posterior=True`) and the multi-period
discriminator; its forward runs one batch and returns the losses of both networks (stage "sovits"):
`sovits.mel` (L1 of log mels, weight C_MEL = 45), `sovits.kl` (1), `sovits.adversarial` and
`sovits.feature` (1 each: the generator's GAN and feature-matching losses) and `sovits.discriminator`
(1: the discriminator's least-squares loss on the detached generated segment).

How one optimizer trains both networks (the official code has two optimizers and two steps): the
generator's adversarial and feature-matching losses are computed with the discriminator's weights
detached (`torch.func.functional_call`), so they move only the generator, and the discriminator's
loss sees the generated audio detached, so it moves only the discriminator. The sum's gradient is then
exactly the two official gradients; the difference is that the official generator step judges with
the discriminator already updated by that batch, here with the discriminator from before it (both
networks step together).

Optimizer (official s2 config): AdamW betas (0.8, 0.99), eps 1e-9, the run's learning rate (default
1e-4) with the text embedding, text encoder and MRTE at 0.4x (`text_low_lr_rate`); the quantiser and
`ssl_proj` frozen (`freeze_quantizer`). Not reproduced: fp16 autocast, length-bucketed batches (here
shuffled lines, seeded per epoch), the 0.999875 per-epoch lr decay (0.1 % over 8 epochs).

Data per line, as the official loader builds it: the 32 kHz training audio, its linear spectrogram,
the HuBERT features (padded by one replicated frame when one frame shorter than the spectrogram),
the phone ids, and for v2Pro/v2ProPlus the line's speaker-verification embedding (official
`7-sv_cn/`; it enters the style as in inference, and the 7-period discriminator judges the audio:
`MultiPeriodDiscriminator(version)`). Random draws (posterior noise, segment starts) come from a generator seeded by the
epoch and batch, so a resumed run draws the same.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from voxmith.errors import VoxmithError
from voxmith.training.losses import LossTerm

from .sovits_losses import (C_KL, C_MEL, adversarial_generator_loss, discriminator_loss, feature_matching_loss,
                            kl_loss, mel_from_linear, mel_of_waveform, mel_l1)
from .sovits_training import slice_segments, train_forward
from .spectrogram import HOP_LENGTH, linear_spectrogram

STAGE = "sovits"
SEGMENT_FRAMES = 32  # official segment_size 20480 samples / hop 640
TEXT_LOW_LR_RATE = 0.4
BETAS = (0.8, 0.99)
EPS = 1e-9
DEFAULT_EPOCHS = 8

LOSSES = (
    LossTerm("mel", C_MEL, "L1 distance of the generated segment's log mel to the recording's", stage=STAGE),
    LossTerm("kl", C_KL, "KL divergence of the posterior (through the flow) from the text prior", stage=STAGE),
    LossTerm("adversarial", 1.0, "generator's least-squares GAN loss against the discriminators", stage=STAGE),
    LossTerm("feature", 1.0, "feature matching: discriminator activations of generated vs real audio", stage=STAGE),
    LossTerm("discriminator", 1.0, "the discriminators' least-squares loss (real toward 1, generated toward 0)",
             stage=STAGE),
)


class SoVITSTrainer(nn.Module):
    """Generator + discriminator; `forward(batch)` -> the stage's losses (see the module docstring)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, segment_frames: int = SEGMENT_FRAMES):
        super().__init__()
        if not hasattr(generator, "enc_q"):
            raise VoxmithError("SoVITS fine-tuning needs the generator's posterior encoder (enc_q): load the "
                               "pretrained SoVITS with with_posterior=True.")
        self.generator, self.discriminator = generator, discriminator
        self.segment_frames = segment_frames
        for module in (generator.ssl_proj, generator.quantizer):  # frozen, as the official freeze_quantizer
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.generator.quantizer.eval()  # official: the frozen quantiser stays in eval mode
        return self

    def forward(self, batch: dict) -> Dict[str, torch.Tensor]:
        device = next(self.generator.parameters()).device
        t = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        generator = torch.Generator(device=device).manual_seed(int(batch["seed"]))
        out = train_forward(self.generator, t["hubert"], t["spec"], t["spec_lengths"], t["phones"],
                            t["phone_lengths"], self.segment_frames, sv_embedding=t.get("sv"), generator=generator)
        hop = HOP_LENGTH
        real = slice_segments(t["wave"], out.slice_start * hop, self.segment_frames * hop)
        target_mel = slice_segments(mel_from_linear(t["spec"]), out.slice_start, self.segment_frames)
        fake_mel = mel_of_waveform(out.wave.squeeze(1))
        frames = min(target_mel.shape[-1], fake_mel.shape[-1])
        # The discriminators learn from the generated segment detached: no gradient into the generator.
        real_d, fake_d, _, _ = self.discriminator(real, out.wave.detach())
        loss_d, _, _ = discriminator_loss(real_d, fake_d)
        # The generator's GAN losses judged with the discriminators' weights detached: no gradient into them.
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        _, fake_g, real_maps, fake_maps = torch.func.functional_call(self.discriminator, frozen, (real, out.wave))
        loss_adv, _ = adversarial_generator_loss(fake_g)
        return {
            f"{STAGE}.mel": mel_l1(target_mel[..., :frames], fake_mel[..., :frames]),
            f"{STAGE}.kl": kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.spec_mask),
            f"{STAGE}.adversarial": loss_adv,
            f"{STAGE}.feature": feature_matching_loss(real_maps, fake_maps),
            f"{STAGE}.discriminator": loss_d,
        }


def parameter_groups(trainer: SoVITSTrainer, learning_rate: float) -> List[dict]:
    """The official three-speed split: text embedding, text encoder and MRTE at 0.4x the rest."""
    enc_p = trainer.generator.enc_p
    slow = {id(p) for m in (enc_p.text_embedding, enc_p.encoder_text, enc_p.mrte) for p in m.parameters()}
    trainable = [p for p in trainer.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if id(p) not in slow], "lr": learning_rate},
            {"params": [p for p in trainable if id(p) in slow], "lr": learning_rate * TEXT_LOW_LR_RATE}]


def line_tensors(line) -> dict:
    """One `training_data.LineFeatures` as the official loader's tensors (spectrogram computed here)."""
    wave = torch.from_numpy(line.wave_32k).float()
    spec = linear_spectrogram(wave.unsqueeze(0))[0]
    hubert = torch.from_numpy(line.hubert).float()
    if hubert.shape[-1] != spec.shape[-1]:  # official: one replicated frame when they differ
        hubert = F.pad(hubert.unsqueeze(0), (0, 1), mode="replicate")[0]
    frames = min(spec.shape[-1], hubert.shape[-1] // 2 * 2)
    if frames < SEGMENT_FRAMES:
        raise VoxmithError(f"A training clip lasts {wave.shape[0] / 32000:.2f} s; SoVITS fine-tuning needs at "
                           f"least {SEGMENT_FRAMES * HOP_LENGTH / 32000:.2f} s per clip.")
    item = {"wave": wave[: frames * HOP_LENGTH], "spec": spec[:, :frames], "hubert": hubert[:, :frames],
            "phones": torch.from_numpy(line.phone_ids).long()}
    if getattr(line, "sv", None) is not None:
        item["sv"] = torch.from_numpy(line.sv).float().reshape(-1)
    return item


def check_items_fit(generator: nn.Module, items: Sequence[dict]) -> None:
    """v2Pro/v2ProPlus train on each line's speaker embedding: refuse lines prepared without one."""
    if getattr(generator.config, "is_pro", False) and any("sv" not in item for item in items):
        raise VoxmithError(f"SoVITS {generator.config.version} fine-tuning needs each line's speaker-verification "
                           "embedding; prepare the lines with the speaker-verification model "
                           "(training_data.load_lines(..., verifier=...)).")


def collate(items: Sequence[dict], seed: int) -> dict:
    """Pad a list of `line_tensors` into one batch (zeros on the right, lengths kept)."""
    def pad(key: str, length: int) -> torch.Tensor:
        return torch.stack([F.pad(x[key], (0, length - x[key].shape[-1])) for x in items])

    spec_lengths = torch.tensor([x["spec"].shape[-1] for x in items])
    phone_lengths = torch.tensor([x["phones"].shape[-1] for x in items])
    frames = int(spec_lengths.max())
    batch = {"wave": pad("wave", frames * HOP_LENGTH).unsqueeze(1), "spec": pad("spec", frames),
             "hubert": pad("hubert", frames), "spec_lengths": spec_lengths,
             "phones": pad("phones", int(phone_lengths.max())), "phone_lengths": phone_lengths, "seed": int(seed)}
    if all("sv" in x for x in items):
        batch["sv"] = torch.stack([x["sv"] for x in items])
    return batch


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int) -> List[List[int]]:
    """Indices of `count` lines shuffled with a generator seeded by (seed, epoch), cut into batches."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
    return [order[i:i + batch_size] for i in range(0, count, max(1, batch_size))]


class SoVITSStage:
    """`voxmith.training.TrainingTask` of stage 1 alone (the staged task combines it with the GPT's)."""

    losses = LOSSES
    optimizer_options = {"betas": BETAS, "eps": EPS}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, train_lines: Sequence, batch_size: int,
                 seed: int, validation_lines: Sequence = ()):
        self.model = SoVITSTrainer(generator, discriminator)
        self.items = [line_tensors(line) for line in train_lines]
        self.validation = [line_tensors(line) for line in validation_lines]
        check_items_fit(generator, self.items + self.validation)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def batches(self, epoch: int) -> List[dict]:
        return [collate([self.items[i] for i in index], self.seed * 1000 + epoch * 100 + n)
                for n, index in enumerate(epoch_batches(len(self.items), self.batch_size, self.seed, epoch))]

    def parameter_groups(self, model: nn.Module, learning_rate: float) -> List[dict]:
        return parameter_groups(self.model, learning_rate)

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mel L1 (x C_MEL) of the validation lines (the training lines when there are none)."""
        items = self.validation or self.items
        total = 0.0
        for n, item in enumerate(items):
            total += float(self.model(collate([item], n))[f"{STAGE}.mel"]) * C_MEL
        return total / max(1, len(items))


__all__ = ["DEFAULT_EPOCHS", "LOSSES", "SoVITSStage", "SoVITSTrainer", "check_items_fit", "collate", "line_tensors",
           "parameter_groups"]
