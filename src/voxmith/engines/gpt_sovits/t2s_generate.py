"""Generation of semantic codes with the GPT-SoVITS GPT: the official decoding loop, kv-cached.

API (what the engine calls):

    codes = generate_semantic(model, phone_ids, bert_features, prompt_codes, settings, generator,
                              early_stop_num=DEFAULT_EARLY_STOP)

* model: a `Text2SemanticModel` in eval mode (t2s.py; `load_t2s_checkpoint` in t2s_checkpoint.py);
* phone_ids: (T,) long, the phone ids of the reference transcript followed by those of the text to say;
* bert_features: (1024, T) float, one BERT feature per phone (zeros except for Chinese);
* prompt_codes: (P,) long semantic codes of the reference audio (the quantised HuBERT features), or
  None / empty for the official "reference-free" mode;
* settings: `SamplingSettings` (sampling.py); generator: a seeded `torch.Generator` (CPU is fine for
  any device; the same seed gives the same codes; no global RNG is touched);
* early_stop_num: stop after this many new codes (official: 50 * max_sec of the checkpoint's config,
  2700 for the pretrained models); None for no limit other than `MAX_STEPS`.
* returns: (N,) long, the new codes only (no prompt, no EOS), all < 1024.

The loop is the official `infer_panel_naive` (what its TTS uses for each sentence) with what its
callers keep (`pred_semantic[:, -idx:]`):
* EOS cannot be chosen during the first `MIN_STEPS_BEFORE_EOS` steps (the EOS logit is removed);
* the loop stops when the sampled code is EOS or when the arg-max of the repetition-penalised logits
  is EOS (then the sampled code is dropped), after `MAX_STEPS` steps, or once more than
  `early_stop_num` codes were made;
* with a prompt, the returned codes are the last `step` codes, which on a stop without EOS leaves
  out the first generated code (the official slicing; kept so results match the official code);
  without a prompt all generated codes are returned.
"""

from __future__ import annotations

from typing import Optional

import torch

from voxmith.engines.gpt_sovits.sampling import SamplingSettings, sample_next
from voxmith.engines.gpt_sovits.t2s import Text2SemanticModel
from voxmith.errors import VoxmithError

MAX_STEPS = 1500  # the official loop's hard limit (60 s of codes at 25 Hz)
MIN_STEPS_BEFORE_EOS = 11  # official: "at least 10 codes (0.4 s) before stopping"
HZ_FOR_EARLY_STOP = 50  # official: early_stop_num = hz * max_sec with hz = 50 (the codes are 25 Hz)
DEFAULT_MAX_SEC = 54  # data.max_sec of the official s1 configs
DEFAULT_EARLY_STOP = HZ_FOR_EARLY_STOP * DEFAULT_MAX_SEC


def _check_inputs(model: Text2SemanticModel, phone_ids: torch.Tensor, bert_features: torch.Tensor,
                  prompt_codes: Optional[torch.Tensor], early_stop_num: Optional[int]) -> None:
    config = model.config
    if phone_ids.dim() != 1 or phone_ids.numel() == 0:
        raise VoxmithError(f"phone_ids must be a non-empty 1-D tensor, got shape {tuple(phone_ids.shape)}.")
    if bert_features.shape != (model.bert_proj.in_features, phone_ids.numel()):
        raise VoxmithError(f"bert_features must be ({model.bert_proj.in_features}, {phone_ids.numel()}) for "
                           f"{phone_ids.numel()} phones, got {tuple(bert_features.shape)}.")
    if int(phone_ids.min()) < 0 or int(phone_ids.max()) >= config.phoneme_vocab_size:
        raise VoxmithError(f"phone ids must lie in [0, {config.phoneme_vocab_size}) for this GPT checkpoint; "
                           "the text front end's symbol set does not match the model's version.")
    if prompt_codes is not None and prompt_codes.numel():
        if prompt_codes.dim() != 1:
            raise VoxmithError(f"prompt_codes must be 1-D, got shape {tuple(prompt_codes.shape)}.")
        if int(prompt_codes.min()) < 0 or int(prompt_codes.max()) >= config.eos:
            raise VoxmithError(f"prompt codes must lie in [0, {config.eos}).")
    if early_stop_num is not None and early_stop_num < 1:
        raise VoxmithError(f"early_stop_num must be at least 1 (or None for no limit), got {early_stop_num}.")


@torch.no_grad()
def generate_semantic(model: Text2SemanticModel, phone_ids: torch.Tensor, bert_features: torch.Tensor,
                      prompt_codes: Optional[torch.Tensor], settings: SamplingSettings,
                      generator: Optional[torch.Generator],
                      early_stop_num: Optional[int] = DEFAULT_EARLY_STOP) -> torch.Tensor:
    """Semantic codes for one sentence; see the module docstring for arguments and stopping rules."""
    _check_inputs(model, phone_ids, bert_features, prompt_codes, early_stop_num)
    device = model.bert_proj.weight.device
    dtype = model.bert_proj.weight.dtype
    eos = model.config.eos
    phones = phone_ids.to(device).view(1, -1)
    bert = bert_features.to(device=device, dtype=dtype).unsqueeze(0)
    has_prompt = prompt_codes is not None and prompt_codes.numel() > 0
    prompt = prompt_codes.to(device).long().view(1, -1) if has_prompt else None
    prompt_length = prompt.shape[1] if has_prompt else 0
    limit = MAX_STEPS if early_stop_num is None else min(MAX_STEPS, early_stop_num + 1)

    text = model.embed_text(phones, bert)
    cache = model.new_cache(1, text.shape[1] + prompt_length + min(limit, 256), text)
    logits = model.prefill(text, prompt, cache)
    # Every code so far, prompt first: the repetition penalty looks at all of them.
    sequence = torch.empty(1, prompt_length + MAX_STEPS, dtype=torch.long, device=device)
    if has_prompt:
        sequence[:, :prompt_length] = prompt
    length = prompt_length
    step = 0
    ended_by_eos = False
    while True:
        if step < MIN_STEPS_BEFORE_EOS:
            logits = logits[:, :eos]
        code, penalised = sample_next(logits.float(), sequence[:, :length], settings, generator)
        sequence[:, length] = code[:, 0]
        length += 1
        if int(code[0, 0]) == eos or int(penalised.argmax(dim=-1)[0]) == eos:
            ended_by_eos = True
            length -= 1  # the sampled code (EOS, or whatever was drawn beside an EOS arg-max) is dropped
        made = length - prompt_length
        if ended_by_eos or step == MAX_STEPS - 1 or (early_stop_num is not None and made > early_stop_num):
            break
        logits = model.decode_step(sequence[:, length - 1], prompt_length + step, cache)
        step += 1
    new_codes = sequence[0, prompt_length:length] if not has_prompt else sequence[0, length - step:length]
    return new_codes.clone()
