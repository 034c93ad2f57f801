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

`t2s_dpo_training_loss` is the official DPO variant (`forward` with `if_dpo`, an experimental option
off by default in the official recipe): the same cross-entropy plus a preference term against
"rejected" copies of the codes with a span repeated or cut out, drawn from the caller's generator.
Dropout follows the model's mode: call `model.train()` to train as the official code does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from voxmith.engines.gpt_sovits.t2s import Text2SemanticModel

ACCURACY_TOP_K = 3  # the official module's `top_k` for its logged accuracy
DPO_BETA = 0.2  # the official DPO temperature


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


def _check_padding(phone_ids, phone_lengths, codes, code_lengths) -> None:
    # The official masks are as wide as the longest row; wider padding would misalign them.
    if phone_ids.shape[1] != int(phone_lengths.max()) or codes.shape[1] != int(code_lengths.max()):
        raise ValueError(f"pad phones and codes to the longest row: got widths {phone_ids.shape[1]} / "
                         f"{codes.shape[1]} for longest rows {int(phone_lengths.max())} / {int(code_lengths.max())}")


def teacher_forced_logits(model: Text2SemanticModel, phone_ids: torch.Tensor, phone_lengths: torch.Tensor,
                          codes: torch.Tensor, code_lengths: torch.Tensor,
                          bert_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, S + 1, V), targets (B, S + 1)) of a padded batch, masked the official way."""
    _check_padding(phone_ids, phone_lengths, codes, code_lengths)
    text_length, code_length = phone_ids.shape[1], codes.shape[1]
    inputs, targets = inputs_and_targets(codes, code_lengths, model.config.eos)
    x = torch.cat([model.embed_text(phone_ids, bert_features), model.embed_codes(inputs)], dim=1)
    attend = training_attention(phone_lengths, code_lengths, text_length, code_length)
    return model.ar_predict_layer(model.run_layers(x, attend)[:, text_length - 1:]), targets


def t2s_training_loss(model: Text2SemanticModel, phone_ids: torch.Tensor, phone_lengths: torch.Tensor,
                      codes: torch.Tensor, code_lengths: torch.Tensor, bert_features: torch.Tensor) -> T2SLoss:
    """phone_ids (B, T) long, phone_lengths (B,), codes (B, S) long (padding any value),
    code_lengths (B,), bert_features (B, 1024, T) -> `T2SLoss` (see the module docstring)."""
    logits, targets = teacher_forced_logits(model, phone_ids, phone_lengths, codes, code_lengths, bert_features)
    loss = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="sum")
    with torch.no_grad():
        accuracy = top_k_accuracy(logits.float(), targets, model.config.eos)
    return T2SLoss(loss=loss, accuracy=accuracy, target_count=targets.numel())


def rejected_codes(codes: torch.Tensor, generator: Optional[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """The official DPO "rejected" rows: per row, a coin decides whether a random span [a, b) of the
    row is repeated (a stutter) or cut out (a skipped word). As officially, the span is drawn over the
    whole padded row, so padding inside it is kept as codes. Returns (codes (B, S'), lengths (B,)),
    rows padded with 0. Draw order (per row: the coin, then the two ends) is the official one, so a
    CPU generator seeded s gives what the official code gives after `torch.manual_seed(s)`."""
    rows = []
    for row in codes:
        repeat = int(torch.randint(0, 2, (1,), generator=generator)[0]) == 0
        start, end = torch.randint(0, row.numel(), (2,), generator=generator).sort().values.tolist()
        span = row[start:end]
        rows.append(torch.cat([row[:start], span, span, row[end:]] if repeat else [row[:start], row[end:]]))
    lengths = torch.tensor([r.numel() for r in rows], device=codes.device)
    out = codes.new_zeros((len(rows), int(lengths.max())))
    for i, r in enumerate(rows):
        out[i, :r.numel()] = r
    return out, lengths


def t2s_dpo_training_loss(model: Text2SemanticModel, phone_ids: torch.Tensor, phone_lengths: torch.Tensor,
                          codes: torch.Tensor, code_lengths: torch.Tensor, bert_features: torch.Tensor,
                          generator: Optional[torch.Generator], beta: float = DPO_BETA) -> T2SLoss:
    """The official DPO objective (`forward` with `if_dpo`): the cross-entropy of `t2s_training_loss`
    plus a reference-free DPO term, mean over rows of -log sigmoid(beta * (log p(codes) - log p(rejected))),
    log p summed over all target positions, the rejected rows made by `rejected_codes`."""
    reject, reject_lengths = rejected_codes(codes, generator)
    logits, targets = teacher_forced_logits(model, phone_ids, phone_lengths, codes, code_lengths, bert_features)
    reject_logits, reject_targets = teacher_forced_logits(model, phone_ids, phone_lengths, reject,
                                                          reject_lengths, bert_features)
    cross_entropy = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="sum")
    chosen = logits.float().log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2).sum(-1)
    rejected = reject_logits.float().log_softmax(-1).gather(2, reject_targets.unsqueeze(2)).squeeze(2).sum(-1)
    preference = -F.logsigmoid(beta * (chosen - rejected)).mean()
    with torch.no_grad():
        accuracy = top_k_accuracy(logits.float(), targets, model.config.eos)
    return T2SLoss(loss=cross_entropy + preference, accuracy=accuracy, target_count=targets.numel())
