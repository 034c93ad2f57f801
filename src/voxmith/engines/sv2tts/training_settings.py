"""SV2TTS training settings: which model a run trains (`stage`) and the official training hparams it
follows (Real-Time-Voice-Cloning's `synthesizer/hparams.py` and `vocoder/hparams.py`).

A user sets them as the official scripts' `--hparams "name=value,..."`, one per option:
`voxmith train init RUN --engine sv2tts --dataset DS --set stage=vocoder --set ground_truth=True`.
Values are read as Python literals, as the official `HParams.parse` reads them (`ast.literal_eval`);
a bare word stays text. Each is checked against `TrainingHparams`' fields, with a message naming
the known ones. The run's config keeps them as plain YAML values (`engine: settings:`).

Official settings that voxmith's run config already has are refused here with the place to set
them (`RUN_SETTINGS`): the vocoder's learning rate and batch size, the clipping norm, `save_every`
/ `backup_every` (the run's checkpoint settings), `run_id` (the run's name), `force_restart`.

Not here: what a stage trains (synthesizer_training.py, vocoder_training.py, encoder_training.py); the engine picks the
stage's task (`SV2TTSEngine.training_task`).
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from voxmith.errors import VoxmithError
from voxmith.training.config import typed_value

from .tacotron import MAX_R

# The models a run can train; one stage per run (a voice combines runs: see the engine's load_finetune).
STAGES = ("synthesizer", "vocoder", "encoder")

# The official tts_schedule: sessions of (r, learning rate, until this model step, batch size).
OFFICIAL_TTS_SCHEDULE = ((2, 1e-3, 20_000, 12), (2, 5e-4, 40_000, 12), (2, 2e-4, 80_000, 12),
                         (2, 1e-4, 160_000, 12), (2, 3e-5, 320_000, 12), (2, 1e-5, 640_000, 12))

# Official settings that are the run's own in voxmith, and where a user sets them instead.
RUN_SETTINGS = {
    "tts_clip_grad_norm": "the run's schedule: max_grad_norm in config.yaml (1.0 for the synthesizer, as officially)",
    "voc_lr": "--lr (the run's schedule: learning_rate; 1e-4 for the vocoder, as officially)",
    "voc_batch_size": "--batch-size (the run's schedule: batch_size; 100 or the dataset's lines for the vocoder)",
    "save_every": "the run's checkpoints: save_every_steps in config.yaml",
    "backup_every": "the run's checkpoints: keep_last in config.yaml (how many checkpoints are kept)",
    "run_id": "the run's name (voxmith train init NAME)",
    "force_restart": "voxmith train run NAME --force-restart",
}


@dataclass(frozen=True)
class TrainingHparams:
    stage: str = "synthesizer"  # synthesizer, vocoder or encoder: the model this run trains
    # --- synthesizer (official synthesizer/hparams.py) ---
    tts_schedule: Tuple[Tuple[int, float, int, int], ...] = OFFICIAL_TTS_SCHEDULE
    max_mel_frames: int = 900  # longer lines are left out (clip_mels_length), 11.25 s
    rescale: bool = True  # each clip's peak is scaled to rescaling_max before anything else
    rescaling_max: float = 0.9
    trim_silence: bool = True  # long pauses removed with the encoder's VAD
    utterance_min_duration: float = 1.6  # seconds of speech; shorter lines are left out
    # --- vocoder (official vocoder/hparams.py and the vocoder_train.py switch) ---
    ground_truth: bool = False  # train on the dataset's own mels instead of synthesizer-aligned (GTA) ones
    # A synthesizer run of the workspace whose latest checkpoint makes the GTA mels (and speaks with
    # this vocoder); empty: the pretrained synthesizer.
    synthesizer_run: str = ""
    voc_seq_len: int = 1000  # samples per training window (5 hops), a multiple of the hop
    synthesis_batch_size: int = 16  # lines per batch when the GTA mels are made
    # --- speaker encoder (official encoder/params_model.py and encoder_train.py) ---
    speakers_per_batch: int = 64  # GE2E batch: speakers (fewer when the workspace has fewer)
    utterances_per_speaker: int = 10  # ...times utterances of each (fewer when a speaker has fewer)
    umap_every: int = 100  # steps between UMAP projection plots (0: never)
    from_scratch: bool = False  # train the encoder from random weights instead of the pretrained encoder.pt

    def schedule_session(self, model_step: int) -> Tuple[int, float, int, int]:
        """The tts_schedule session in force at `model_step` (the model's own step count, which the
        official pretrained synthesizer carries on from): the first not yet finished, else the last."""
        for session in self.tts_schedule:
            if model_step < session[2]:
                return session
        return self.tts_schedule[-1]

    def to_settings(self) -> Dict[str, Any]:
        """Plain YAML values (lists for tuples), for the run's config."""
        values = dataclasses.asdict(self)
        values["tts_schedule"] = [list(session) for session in self.tts_schedule]
        return values

    @classmethod
    def from_settings(cls, values: Optional[Mapping[str, Any]]) -> "TrainingHparams":
        """Checked hparams from `--set` strings or config.yaml values; VoxmithError names the problem."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        parsed = {}
        for name, value in dict(values or {}).items():
            if name in RUN_SETTINGS:
                raise VoxmithError(f"sv2tts: '{name}' is a setting of the run in voxmith; use {RUN_SETTINGS[name]}.")
            if name not in known:
                raise VoxmithError(f"sv2tts has no training setting '{name}'. Known: {', '.join(known)}.")
            parsed[name] = _typed(name, _literal(value), getattr(cls, name))
        hparams = cls(**parsed)
        hparams.check()
        return hparams

    def check(self) -> None:
        if self.stage not in STAGES:
            raise VoxmithError(f"sv2tts: stage must be one of {', '.join(STAGES)}, not '{self.stage}'.")
        if not self.tts_schedule:
            raise VoxmithError("sv2tts: tts_schedule needs at least one session (r, lr, step, batch_size).")
        last_step = 0
        for session in self.tts_schedule:
            r, lr, step, batch = session
            if not 1 <= r <= MAX_R or not 0 < lr <= 1e-2 or step <= last_step or batch < 1:
                raise VoxmithError(f"sv2tts: tts_schedule session {tuple(session)} must be (r from 1 to {MAX_R}, "
                                   "a learning rate above 0 and at most 0.01, a step above the previous "
                                   "session's, a batch size of 1 or more).")
            last_step = step
        if len({s[3] for s in self.tts_schedule}) > 1:
            raise VoxmithError("sv2tts: the sessions of tts_schedule have different batch sizes; a voxmith run "
                               "trains with one (set it with --batch-size), so give every session the same.")
        if not 1 <= self.max_mel_frames <= 10_000:
            raise VoxmithError(f"sv2tts: max_mel_frames must be from 1 to 10000, not {self.max_mel_frames}.")
        if not 0 < self.rescaling_max <= 1:
            raise VoxmithError(f"sv2tts: rescaling_max must be above 0 and at most 1, not {self.rescaling_max}.")
        if not 0 <= self.utterance_min_duration < 60:
            raise VoxmithError("sv2tts: utterance_min_duration must be from 0 to 60 seconds.")
        if self.voc_seq_len < 1:  # a multiple of the vocoder's hop: checked with the model
            raise VoxmithError(f"sv2tts: voc_seq_len must be 1 or more (a multiple of the hop, 200 samples), "
                               f"not {self.voc_seq_len}.")
        if self.synthesizer_run and self.ground_truth:
            raise VoxmithError("sv2tts: synthesizer_run makes the synthesizer-aligned mels, which ground_truth=True "
                               "replaces by the dataset's own; set only one.")
        if self.synthesis_batch_size < 1:
            raise VoxmithError("sv2tts: synthesis_batch_size must be 1 or more.")
        if self.speakers_per_batch < 2 or self.utterances_per_speaker < 2:
            raise VoxmithError("sv2tts: speakers_per_batch and utterances_per_speaker must be 2 or more (GE2E "
                               "compares each utterance with its own speaker and the others).")
        if self.umap_every < 0:
            raise VoxmithError(f"sv2tts: umap_every must be 0 (never) or more, not {self.umap_every}.")


def _literal(value: Any) -> Any:
    """A shell string read as a Python literal (as the official --hparams), else left as text."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return value.strip()


def _typed(name: str, value: Any, default: Any) -> Any:
    """`value` as the type of the field's default (the run config's check, after the two things
    only these settings have: a switch given in words on the command line, and tts_schedule)."""
    if isinstance(default, bool) and isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on",
                                                                                 "off"):
        return value.lower() in ("true", "yes", "on")
    if isinstance(default, tuple):  # tts_schedule
        sessions = value if isinstance(value, (list, tuple)) else None
        if sessions and all(isinstance(s, (list, tuple)) and len(s) == 4 for s in sessions):
            try:
                return tuple((_whole(s[0]), float(s[1]), _whole(s[2]), _whole(s[3])) for s in sessions)
            except (TypeError, ValueError):
                pass
        raise VoxmithError(f"sv2tts: '{name}' should be a list of sessions (r, lr, step, batch_size), like "
                           f"[(2, 3e-5, 320000, 12)], not {value!r}.")
    return typed_value(value, default, f"sv2tts: '{name}'")


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(value)
    return int(value)


__all__ = ["OFFICIAL_TTS_SCHEDULE", "RUN_SETTINGS", "STAGES", "TrainingHparams"]
