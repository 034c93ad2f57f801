"""The GPT-SoVITS GPT's training objective (the second fine-tuning stage), as a pure function.

`t2s_training_loss(model, phone_ids, phone_lengths, codes, code_lengths, bert_features)` computes
what the official `Text2SemanticDecoder.forward_old` computes for a padded batch (the forward its
Lightning module trains with unless DPO is switched on):

* inputs: the codes with their padding replaced by EOS; targets: the codes followed by EOS, padding
  EOS too. Logits are read from the last text position on, so the last phone predicts the first code
  and the last code predicts EOS;
* attention: text sees text, codes see all text and the codes up to themselves; padded keys are
  hidden. The text padding mask is the official *left*-padding mask (`make_pad_mask_left`): for a
  row shorter than the batch, the first `T - length` text positions are hidden. The official data
  loader pads phones on the right, so official training hides a short row's first phones and lets it
  see its trailing pad phones; feeding the same tensors here reproduces that exactly. A caller who
  wants the mask to match its padding pads phones (and BERT features) on the left;
* loss: cross-entropy summed (not averaged) over every target position of every row, padding
  positions (target EOS) included ("more codes, more gradient", as the official comment has it);
* accuracy: top-3 accuracy over the targets that are not EOS (torchmetrics `MulticlassAccuracy`,
  top_k=3, micro, ignore_index=EOS, as logged by the official module).

The DPO variant (`forward` with `if_dpo`, off by default in the official recipe) is not implemented.
Dropout follows the model's mode: call `model.train()` to train as the official code does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from voxmith.engines.gpt_sovits.t2s import Text2SemanticModel

ACCURACY_TOP_K = 3  # the official module's `top_k` for its logged accuracy


@dataclass(frozen=True)
class T2SLoss:
    loss: torch.Tensor  # scalar, summed cross-entropy (what is back-propagated)
    accuracy: torch.Tensor  # scalar, detached top-3 accuracy over non-EOS targets
    target_count: int  # number of target positions summed over (rows x (max codes + 1))


def training_attention(phone_lengths: torch.Tensor, code_lengths: torch.Tensor, text_length: int,
                       code_length: int) -> torch.Tensor:
    """(B, 1, L, L) bool, True = may attend: the prefix rule plus the official padding masks
    (text padding counted from the left, code padding from the right)."""
    device = phone_lengths.device
    total = text_length + code_length
    attend = torch.ones(total, total, dtype=torch.bool, device=device).tril_()
    attend[:text_length, :text_length] = True
    positions = torch.arange(text_length, device=device)
    text_pad = positions.unsqueeze(0) < (text_length - phone_lengths).unsqueeze(1)
    code_pad = torch.arange(code_length, device=device).unsqueeze(0) >= code_lengths.unsqueeze(1)
    key_pad = torch.cat([text_pad, code_pad], dim=1)
    return (attend.unsqueeze(0) & ~key_pad.unsqueeze(1)).unsqueeze(1)


def inputs_and_targets(codes: torch.Tensor, code_lengths: torch.Tensor, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """codes (B, S) -> inputs (B, S) with padding = EOS, targets (B, S + 1): codes, then EOS."""
    pad = torch.arange(codes.shape[1], device=codes.device).unsqueeze(0) >= code_lengths.unsqueeze(1)
    inputs = codes.long().masked_fill(pad, eos)
    targets = F.pad(inputs, (0, 1), value=eos)
    return inputs, targets


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, ignore: int, k: int = ACCURACY_TOP_K) -> torch.Tensor:
    """Share of targets (not equal to `ignore`) found among the k largest logits; 0 if there are none."""
    keep = targets != ignore
    hits = (logits.topk(min(k, logits.shape[-1]), dim=-1).indices == targets.unsqueeze(-1)).any(-1)
    count = keep.sum()
    if int(count) == 0:
        return torch.zeros((), device=logits.device)
    return (hits & keep).sum().float() / count.float()


def t2s_training_loss(model: Text2SemanticModel, phone_ids: torch.Tensor, phone_lengths: torch.Tensor,
                      codes: torch.Tensor, code_lengths: torch.Tensor, bert_features: torch.Tensor) -> T2SLoss:
    """phone_ids (B, T) long, phone_lengths (B,), codes (B, S) long (padding any value),
    code_lengths (B,), bert_features (B, 1024, T) -> `T2SLoss` (see the module docstring)."""
    eos = model.config.eos
    text_length, code_length = phone_ids.shape[1], codes.shape[1]
    inputs, targets = inputs_and_targets(codes, code_lengths, eos)
    x = torch.cat([model.embed_text(phone_ids, bert_features), model.embed_codes(inputs)], dim=1)
    attend = training_attention(phone_lengths, code_lengths, text_length, code_length)
    logits = model.ar_predict_layer(model.run_layers(x, attend)[:, text_length - 1:])
    loss = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="sum")
    with torch.no_grad():
        accuracy = top_k_accuracy(logits.float(), targets, eos)
    return T2SLoss(loss=loss, accuracy=accuracy, target_count=targets.numel())
