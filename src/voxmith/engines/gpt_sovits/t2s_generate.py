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

    takes = generate_semantic_candidates(model, phone_ids, bert_features, prompt_codes, settings,
                                         generators, early_stop_num=DEFAULT_EARLY_STOP)

makes one take per generator in one batch (take i equals `generate_semantic` with generators[i]):
the engine's candidates for ranking at about the cost of one take on a CPU.

The loop is the official `infer_panel_naive` (what its TTS uses for each sentence) with what its
callers keep (`pred_semantic[:, -idx:]`):
* EOS cannot be chosen during the first `MIN_STEPS_BEFORE_EOS` steps (the EOS logit is removed);
* the loop stops when the sampled code is EOS or when the arg-max of the repetition-penalised logits
  is EOS (then the sampled code is dropped), after `MAX_STEPS` steps, or once more than
  `early_stop_num` codes were made;
* with a prompt, the returned codes are the last `step` codes, which on a stop without EOS leaves
  out the first generated code (the official slicing; kept so results match the official code);
  without a prompt all generated codes are returned.
The official API server's default (`parallel_infer`, `infer_panel_batch_infer`) runs the same loop
for a batch of one sentence and differs only at a stop without EOS, where it drops the last code
instead of the first; with several sentences per batch it pads them on the left, which we do not do.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

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


def generate_semantic(model: Text2SemanticModel, phone_ids: torch.Tensor, bert_features: torch.Tensor,
                      prompt_codes: Optional[torch.Tensor], settings: SamplingSettings,
                      generator: Optional[torch.Generator],
                      early_stop_num: Optional[int] = DEFAULT_EARLY_STOP) -> torch.Tensor:
    """Semantic codes for one sentence; see the module docstring for arguments and stopping rules."""
    return generate_semantic_candidates(model, phone_ids, bert_features, prompt_codes, settings, [generator],
                                        early_stop_num)[0]


@torch.no_grad()
def generate_semantic_candidates(model: Text2SemanticModel, phone_ids: torch.Tensor, bert_features: torch.Tensor,
                                 prompt_codes: Optional[torch.Tensor], settings: SamplingSettings,
                                 generators: Sequence[Optional[torch.Generator]],
                                 early_stop_num: Optional[int] = DEFAULT_EARLY_STOP) -> List[torch.Tensor]:
    """Several takes of one sentence at once, one per generator: take i is what `generate_semantic`
    with generators[i] makes (same noise; the batched matrix products may round differently in the
    last bit, which can only matter at an exact tie). The prompt pass runs once for all takes; each
    step runs all unfinished takes as one batch, which on a CPU costs about as much as one take."""
    if not generators:
        raise VoxmithError("generate_semantic_candidates needs at least one generator (one per take).")
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
    takes = len(generators)

    text = model.embed_text(phones, bert)
    cache = model.new_cache(1, text.shape[1] + prompt_length + min(limit, 256), text)
    logits = model.prefill(text, prompt, cache).expand(takes, -1)
    if takes > 1:
        cache.select_rows(torch.zeros(takes, dtype=torch.long, device=device))
    # Every code so far per take, prompt first: the repetition penalty looks at all of them.
    sequence = torch.empty(takes, prompt_length + MAX_STEPS, dtype=torch.long, device=device)
    if has_prompt:
        sequence[:, :prompt_length] = prompt
    active = list(range(takes))  # take index of each batch row
    results: List[Optional[torch.Tensor]] = [None] * takes
    length = prompt_length
    step = 0
    while True:
        if step < MIN_STEPS_BEFORE_EOS:
            logits = logits[:, :eos]
        code, penalised = sample_next(logits.float(), sequence[:, :length], settings,
                                      [generators[i] for i in active])
        sequence[:, length] = code[:, 0]
        # Official stop test per take: EOS drawn, or EOS the arg-max of the penalised logits (the
        # drawn code is then dropped too).
        ended = ((code[:, 0] == eos) | (penalised.argmax(dim=-1) == eos)).tolist()
        made = length + 1 - prompt_length
        out_of_steps = step == MAX_STEPS - 1 or (early_stop_num is not None and made > early_stop_num)
        for row, take in enumerate(active):
            if ended[row] or out_of_steps:
                kept = length if ended[row] else length + 1
                # With a prompt the official callers keep the last `step` codes; without, all of them.
                first = kept - step if has_prompt else prompt_length
                results[take] = sequence[row, first:kept].clone()
        keep = [row for row in range(len(active)) if not (ended[row] or out_of_steps)]
        if not keep:
            break
        length += 1
        if len(keep) < len(active):
            index = torch.tensor(keep, dtype=torch.long, device=device)
            sequence = sequence.index_select(0, index)
            cache.select_rows(index)
            active = [active[row] for row in keep]
        logits = model.decode_step(sequence[:, length - 1], prompt_length + step, cache)
        step += 1
    return [r for r in results if r is not None]
