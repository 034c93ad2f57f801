"""Speaking: text in, a ranked, reproducible WAV with a JSON sidecar out.

Long text is split into sentences; each sentence gets `candidates` takes from the engine, scored
for speaker similarity and intelligibility; a best take that misses words is re-generated (up to a
limit); the chosen takes are joined with natural pauses. The sidecar records everything needed to
make the same file again: text, voice fingerprint, engine and version, settings, seed, scores.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Generator, Iterator, List, Optional, Sequence

import numpy as np

from voxmith.version import __version__
from voxmith.audio import check_usable, save_audio
from voxmith.audio.dsp import trim_silence
from voxmith.engines import Candidate, Engine
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_json
from voxmith.progress import ProgressCallback, report
from voxmith.speaker import get_speaker_encoder, mean_embedding
from voxmith.studio.ranking import RankingSettings, TakeScores, choose_take, needs_regeneration, score_take
from voxmith.studio.record import SCHEMA_VERSION, FinetuneChoice, ResultRecord
from voxmith.studio.unfinished import SentenceStore
from voxmith.studio.voices import load_clip
from voxmith.text import normalize_text, split_paragraphs

SENTENCE_PAUSE_MS = 350
PARAGRAPH_PAUSE_MS = 700
SEED_STRIDE = 1000  # sentence i uses seeds seed + i * SEED_STRIDE + take
MAX_SEED = 2 ** 32  # seeds must fit the random generators of numpy and torch (plus the strides)
# The longest text one speak request of the web UI (Generate) or the HTTP API (/voxmith/speak) takes,
# in characters: about two hours of speech, made in one go, not resumable, with one progress bar while
# a page or a connection waits. Longer text is a book (studio/book.py): read chapter by chapter, and
# resumable. The CLI's `speak --text-file` is not held to it: it resumes sentence by sentence
# (`SpeakRequest.resumable`) and nothing waits on it.
MAX_SPEAK_TEXT_CHARS = 100_000


@dataclass
class SpeakRequest:
    text: str
    voice: Optional[str] = None  # a voice in the library...
    refs: Sequence[str | Path] = ()  # ...or reference clips used directly
    engine: Optional[str] = None
    settings: Dict[str, object] = field(default_factory=dict)
    seed: Optional[int] = None  # None or negative (the web UI's -1): a random seed, recorded in the sidecar
    candidates: int = 1
    ranking: RankingSettings = field(default_factory=RankingSettings)
    rank: bool = True  # score takes with the speaker encoder and Whisper
    output: Optional[Path] = None
    overwrite: bool = False
    # Which weights: what the voice is set to use (`voices use`), the stock weights, or a training
    # run's checkpoint. The old forms (None, {} and {"run": RUN, "checkpoint": ...}) are accepted.
    finetune: FinetuneChoice = field(default_factory=FinetuneChoice.voice_setting)
    # Where the request came from, recorded in the sidecar as is (e.g. the HTTP API's model and
    # response format); it does not change the audio, so `reproduce` leaves it out.
    origin: Dict[str, object] = field(default_factory=dict)
    # Keep each finished sentence on disk until the result is written, so the same request made
    # again after an interruption resumes where it stopped (studio/unfinished.py; long texts).
    resumable: bool = False

    def __post_init__(self) -> None:
        self.finetune = FinetuneChoice.coerce(self.finetune)

    def validate(self) -> None:
        if not self.text or not any(c.isalnum() for c in self.text):
            raise VoxmithError("There is no text to speak: the text has no words in it.")
        if bool(self.voice) == bool(self.refs):
            raise VoxmithError("Say whose voice to use: --voice NAME or --ref CLIP... (one of them).")
        if not 1 <= self.candidates <= 16:
            raise VoxmithError("The number of candidates (--candidates) must be between 1 and 16.")
        self.ranking.validate()
        if self.seed is not None and self.seed >= MAX_SEED:
            raise VoxmithError(f"The seed (--seed) must be below {MAX_SEED} (or -1 for a random seed).")


@dataclass
class SentenceResult:
    text: str
    normalized: str
    takes: List[dict]
    chosen: int


@dataclass
class SpeakResult:
    path: Path
    sidecar_path: Path
    samples: np.ndarray
    sample_rate_hz: int
    record: ResultRecord  # what the sidecar says, typed

    @property
    def sidecar(self) -> dict:
        """The sidecar's JSON, as written."""
        return self.record.to_json()

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz

    @property
    def warnings(self) -> List[str]:
        """What the user should know about this result (e.g. words the engine could not say)."""
        return list(self.record.warnings)


_UNDECOMPOSED_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe",
                                       "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th"})


def slugify(text: str, words: int = 6) -> str:
    # Accents are folded first ("bóok" -> "book"), else the accented letter split the word ("b-ok").
    # Letters that do not decompose are spelled out.
    folded = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED_LETTERS))
    folded = folded.encode("ascii", "ignore").decode("ascii")
    return "-".join(re.findall(r"[a-z0-9]+", folded.lower())[:words])[:48] or "speech"


def sentence_piece(take: np.ndarray, sample_rate_hz: int, pause_ms: int) -> np.ndarray:
    """One sentence's share of the result: the take with its edge silence trimmed, then the pause."""
    trimmed = trim_silence(take, sample_rate_hz, pad_ms=60) if take.size else take
    pause = np.zeros(int(sample_rate_hz * pause_ms / 1000), np.float32)
    return np.concatenate([trimmed, pause]).astype(np.float32)


def pause_after_ms(index: int, paragraph_ends: List[bool]) -> int:
    if index == len(paragraph_ends) - 1:
        return 0
    return PARAGRAPH_PAUSE_MS if paragraph_ends[index] else SENTENCE_PAUSE_MS


def join_takes(takes: List[np.ndarray], sample_rate_hz: int, paragraph_ends: List[bool]) -> np.ndarray:
    """Trim each take's edge silence and join them with sentence or paragraph pauses."""
    return np.concatenate([sentence_piece(take, sample_rate_hz, pause_after_ms(i, paragraph_ends))
                           for i, take in enumerate(takes)]).astype(np.float32)


@dataclass
class SentenceAudio:
    """One finished sentence of a speech being made: its chosen take, edge silence trimmed, followed
    by the pause before the next sentence. In order, the pieces add up to the result's samples."""

    index: int
    count: int
    text: str
    samples: np.ndarray
    sample_rate_hz: int


class Speaker:
    """Runs one `SpeakRequest` against an engine with a voice's conditioning."""

    def __init__(self, engine: Engine, conditioning, speaker_embedding: np.ndarray, request: SpeakRequest,
                 progress: Optional[ProgressCallback] = None):
        self.engine, self.conditioning, self.embedding = engine, conditioning, speaker_embedding
        self.request, self.progress = request, progress
        # resolved (e.g. an auto precision made concrete): the sidecar records what really ran
        self.settings = engine.resolved_settings(engine.settings_class.from_dict(request.settings))
        self.encoder = get_speaker_encoder("cpu") if request.rank else None
        self.transcriber = None
        if request.rank:
            from voxmith.asr import get_transcriber

            self.transcriber = get_transcriber()
        self.naturalness = None
        if request.rank and request.ranking.min_naturalness > 0:
            from voxmith.quality import NaturalnessUnavailable, get_naturalness_model

            try:
                self.naturalness = get_naturalness_model()
            except NaturalnessUnavailable:  # ranked without it, as before DistillMOS existed
                self.naturalness = None

    def _score(self, take: Candidate, text: str) -> TakeScores:
        return score_take(take.samples, take.sample_rate_hz, text, self.embedding, self.encoder,
                          self.transcriber, self.request.ranking.intelligibility_weight, self.naturalness)

    def speak_sentence(self, text: str, seed: int, accept: Optional[Callable[[Candidate, TakeScores], bool]] = None
                       ) -> tuple[List[Candidate], List[Optional[TakeScores]], int]:
        """All takes of one sentence, their scores, and the index of the chosen one. `accept`: a
        second opinion on a chosen take that fails ranking (a book's short sentence heard with its
        neighbour, studio/fragments.py); a take it accepts is not re-generated."""
        normalized = normalize_text(text)
        takes = self.engine.synthesize(normalized, self.conditioning, self.settings, seed=seed,
                                       candidates=self.request.candidates)
        if not self.request.rank:
            return takes, [None] * len(takes), 0
        scores = [self._score(t, text) for t in takes]
        ranking = self.request.ranking
        best, _ = choose_take(scores, ranking)
        extra = 0
        refused = set()  # takes `accept` already refused: a retry that does not win leaves the same best
        while needs_regeneration(scores[best], ranking) and extra < ranking.regenerate_limit:
            if accept is not None and best not in refused:
                if accept(takes[best], scores[best]):
                    break
                refused.add(best)
            retry_seed = seed + len(takes)
            take = self.engine.synthesize(normalized, self.conditioning, self.settings, seed=retry_seed, candidates=1)[0]
            takes.append(take)
            scores.append(self._score(take, text))
            extra += 1
            best, _ = choose_take(scores, ranking)
        return takes, scores, best


def speak_sentences(engine: Engine, conditioning, speaker_embedding: np.ndarray, request: SpeakRequest,
                    output: Path, source: dict, device: str,
                    progress: Optional[ProgressCallback] = None,
                    warnings: Sequence[str] = (),
                    store: Optional[SentenceStore] = None) -> Generator[SentenceAudio, None, SpeakResult]:
    """Synthesise `request.text` sentence by sentence, yielding each finished sentence; then write
    `output` (+ sidecar and the other takes beside it) and return the result. Closing the generator
    early stops after the current sentence and removes the take files it wrote, except those of
    sentences kept in `store` (a resumable request: sentences found there are not made again)."""
    started = time.perf_counter()
    seed = request.seed if request.seed is not None and request.seed >= 0 else secrets.randbelow(2 ** 31)
    paragraphs = split_paragraphs(request.text)
    sentences = [s for paragraph in paragraphs for s in paragraph]
    paragraph_ends = [k == len(p) - 1 for p in paragraphs for k in range(len(p))]
    speaker = Speaker(engine, conditioning, speaker_embedding, request, progress)
    takes_dir = output.with_name(output.stem + ".takes")
    pieces, sentence_records, take_files = [], [], []
    interrupted = None
    resumed = store.done(len(sentences)) if store is not None else 0
    if resumed:
        report(progress, f"resuming: {resumed} of {len(sentences)} sentences already done", 0, None)
    try:
        for i, sentence in enumerate(sentences):
            report(progress, "speaking sentences", i, len(sentences), sentence[:40], unit="sentence")
            kept = store.load(i) if store is not None else None
            if kept is not None:
                pieces.append(kept[0])
                sentence_records.append(kept[1])
                yield SentenceAudio(i, len(sentences), sentence, pieces[-1], engine.sample_rate_hz)
                continue
            sentence_started = time.perf_counter()
            takes, scores, best = speaker.speak_sentence(sentence, seed + i * SEED_STRIDE)
            refused = (choose_take(scores, request.ranking)[1] if scores and scores[0] is not None
                       else [None] * len(takes))
            records = []
            for k, (take, score) in enumerate(zip(takes, scores)):
                record = {"seed": take.seed, "duration_s": round(take.duration_s, 3), "details": take.details,
                          "scores": score.to_dict() if score else None}
                if take.scores:  # the engine's own (tortoise: CLVP, CVVP), next to the studio's ranking
                    record["engine_scores"] = dict(take.scores)
                if refused[k]:
                    record["refused"] = refused[k]
                if len(takes) > 1:
                    take_path = takes_dir / f"s{i + 1:03d}-take{k + 1}.wav"
                    take_files.append(save_audio(take_path, take.samples, take.sample_rate_hz))
                    record["file"] = str(take_path.relative_to(output.parent))
                records.append(record)
            sentence_records.append({"text": sentence, "normalized": normalize_text(sentence), "chosen_take": best,
                                     "seconds": round(time.perf_counter() - sentence_started, 3), "takes": records})
            pieces.append(sentence_piece(takes[best].samples, engine.sample_rate_hz, pause_after_ms(i, paragraph_ends)))
            if store is not None:
                store.save(i, pieces[-1], sentence_records[-1])
                take_files = []  # kept with the sentence: a resumed run refers to them
            yield SentenceAudio(i, len(sentences), sentence, pieces[-1], engine.sample_rate_hz)
    except BaseException as stop:
        done = min(len(sentence_records), len(pieces))
        if not (isinstance(stop, KeyboardInterrupt) and store is None and done):
            # The caller stopped listening, synthesis failed, or a resumable request was stopped
            # (its store keeps the finished sentences for the next run): no half-made result.
            for path in take_files:
                path.unlink(missing_ok=True)
            if takes_dir.is_dir() and not any(takes_dir.iterdir()):
                takes_dir.rmdir()
            if store is not None:
                store.release()
            raise
        # Ctrl-C on a request that cannot be resumed: the finished sentences become a (shorter)
        # result marked "interrupted"; the takes of the sentence being spoken are dropped.
        del sentence_records[done:], pieces[done:]
        _drop_unlisted_takes(takes_dir, take_files, sentence_records, output.parent)
        interrupted = {"sentences_done": done, "sentences_total": len(sentences)}
    report(progress, "speaking sentences", len(sentence_records), len(sentences), unit="sentence")

    samples = np.concatenate(pieces).astype(np.float32)
    save_audio(output, samples, engine.sample_rate_hz)
    elapsed = time.perf_counter() - started
    sidecar = {
        "voxmith_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "text": request.text,
        **source,
        "engine": {"name": engine.name, "version": engine.version},
        "settings": speaker.settings.to_dict(),
        "seed": seed,
        "candidates": request.candidates,
        "ranking": {**asdict(request.ranking), "enabled": request.rank},
        "device": device,
        "output": {"file": output.name, "duration_s": round(samples.shape[0] / engine.sample_rate_hz, 3),
                   "sample_rate_hz": engine.sample_rate_hz},
        "timing": {"total_s": round(elapsed, 3),
                   "real_time_factor": round(elapsed / max(samples.shape[0] / engine.sample_rate_hz, 1e-6), 3)},
        "sentences": sentence_records,
    }
    if request.origin:
        sidecar["origin"] = request.origin
    if warnings:
        sidecar["warnings"] = list(warnings)
    if resumed:
        sidecar["resumed"] = {"sentences_done_before": resumed, "sentences_total": len(sentences)}
    if interrupted:
        sidecar["interrupted"] = interrupted
    record = ResultRecord.from_json({"schema": SCHEMA_VERSION, **sidecar})  # written through the record: its checks
    sidecar_path = output.with_suffix(".json")
    atomic_write_json(sidecar_path, record.to_json())
    if store is not None:
        store.remove()
    result = SpeakResult(output, sidecar_path, samples, engine.sample_rate_hz, record)
    if interrupted:
        raise SpeakInterrupted(result)
    return result


class SpeakInterrupted(KeyboardInterrupt):
    """Ctrl-C during a `speak` that cannot be resumed, after some sentences were finished: `result`
    holds them (its sidecar says "interrupted", with how many of the sentences are in it)."""

    def __init__(self, result: SpeakResult):
        super().__init__("interrupted")
        self.result = result


def _drop_unlisted_takes(takes_dir: Path, written: List[Path], sentence_records: List[dict], base: Path) -> None:
    """Delete the take files this run `written` that no finished sentence refers to (and the folder
    if it is left empty). Only those: anything else in the folder is not this run's to delete."""
    kept = {base / take["file"] for record in sentence_records for take in record["takes"] if take.get("file")}
    for path in written:
        if path not in kept:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        takes_dir.rmdir()  # only when empty


class SpeechStream:
    """A speech being made: iterate to get each `SentenceAudio` as soon as it is ready; when the
    iteration ends the file and sidecar are written and `result` is set. `close()` (e.g. when a
    listener goes away) stops after the current sentence and writes nothing.

    `sample_rate_hz` and `sentence_count` are known before the first sentence is synthesised."""

    def __init__(self, sentences: Generator[SentenceAudio, None, SpeakResult], sample_rate_hz: int,
                 sentence_count: int, output: Path, on_close: Optional[Callable[[], None]] = None):
        self._sentences, self._on_close = sentences, on_close
        self.sample_rate_hz, self.sentence_count, self.output = sample_rate_hz, sentence_count, output
        self.result: Optional[SpeakResult] = None

    def __iter__(self) -> Iterator[SentenceAudio]:
        return self

    def __next__(self) -> SentenceAudio:
        try:
            return next(self._sentences)
        except StopIteration as done:
            self.result = done.value
            raise StopIteration from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop early (a no-op once finished). The result's file is not written."""
        self._sentences.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def run(self) -> SpeakResult:
        """Make the whole speech and return the result."""
        for _ in self:
            pass
        self.close()
        return self.result


def load_reference_clips(paths: Sequence[str | Path]):
    """Decode and check `--ref` clips; all problems are reported together."""
    clips, problems = [], []
    for path in paths:
        try:
            audio = load_clip(path)
            check_usable(audio)
            clips.append(audio)
        except VoxmithError as err:
            problems.append(str(err))
    if problems:
        raise VoxmithError("Reference clip(s) cannot be used:\n  - " + "\n  - ".join(problems))
    return clips


def reference_embedding(clips) -> np.ndarray:
    encoder = get_speaker_encoder("cpu")
    return mean_embedding([encoder.embed(c.samples, c.sample_rate_hz) for c in clips])
