"""`Studio`: the library's front door. The CLI, web UI and HTTP API are thin shells over it.

    from voxmith import Studio
    studio = Studio()                      # workspace from $VOXMITH_HOME or the default
    studio.voices.add("alice", ["a.wav", "b.mp3"])
    report = studio.analyse_voice("alice")
"""

from __future__ import annotations

import dataclasses
import functools
import os
import secrets
import threading
import time
from shlex import quote
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from voxmith.audio.io import WRITABLE_EXTENSIONS
from voxmith.datasets import DatasetLibrary, PrepareSettings, prepare_dataset
from voxmith.engines import (FINETUNE_REFUSED, Conditioning, Engine, Finetune, available_engines, create_engine,
                             engine_class, resolve_device)
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.errors import AudioError, VoxmithError
from voxmith.fsutil import fingerprint_files, reserve_file
from voxmith.paths import canonical_name, named_folder
from voxmith.progress import ProgressCallback, report
from voxmith.studio.conditioning import CacheKey, ConditioningCache
from voxmith.studio.conditioning_clips import clip_durations, select_clips, selection_tag
from voxmith.studio.conversion import ConvertRequest, ConvertResult, convert_recording, request_from_record
from voxmith.studio import models
from voxmith.studio.language_check import check_text_language, installed_engine_languages
from voxmith.studio.ranking import RankingSettings
from voxmith.studio.record import (ConversionRecord, FinetuneChoice, FinetuneUsed, ResultRecord, read_record,
                                   text_of_result, voice_of_result)
from voxmith.studio.book import BookMaker, BookRequest, BookResult, read_chapters
from voxmith.studio.unfinished import SentenceStore, folder_lock, request_key
from voxmith.studio.speech import (SpeakRequest, SpeakResult, SpeechStream, slugify, load_reference_clips,
                                   reference_embedding, speak_sentences)
from voxmith.text import split_paragraphs
from voxmith.studio.voice_report import VoiceReport, analyse_voice, voice_embeddings
from voxmith.studio.voices import Voice, VoiceLibrary
from voxmith.studio.workspace import Workspace

if TYPE_CHECKING:
    from voxmith.studio.training_runs import TrainingRuns

DEMO_VOICE_NAME = "demo"
# Fine-tune checks kept per voice and engine (the newest and those used last): a voice keeps the
# outcome for the weights it uses and a few tried beside them, not one per checkpoint ever tried.
FINETUNE_CHECKS_KEPT = 3
# `eval` warns about a file with less speech than this (WebRTC's VAD): its scores mean little.
MIN_SPEECH_TO_SCORE_S = 0.3


def demo_voice_files() -> List[Path]:
    """The clips of the demo voice shipped in the package (two LJ Speech clips, public domain)."""
    folder = resources.files("voxmith") / "data" / "demo_voice"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".flac"))


class Studio:
    def __init__(self, home: Optional[str | os.PathLike] = None, device: str = "auto"):
        self.workspace = Workspace.open(home)
        self.voices = VoiceLibrary(self.workspace.voices_dir)
        self.datasets = DatasetLibrary(self.workspace.datasets_dir)
        self.device_request = device
        self._device: Optional[str] = None
        self._engines: Dict[str, Engine] = {}
        self._engines_lock = threading.Lock()  # one engine per name, whichever thread asks first

    @property
    def device(self) -> str:
        """The resolved compute device (resolved on first use; errors if unavailable)."""
        if self._device is None:
            self._device = resolve_device(self.device_request)
        return self._device

    @functools.cached_property
    def training(self) -> "TrainingRuns":
        """The workspace's training runs (create, train, describe, use)."""
        from voxmith.studio.training_runs import TrainingRuns  # torch loads only when training is used

        return TrainingRuns(self.workspace.training_dir, self.datasets, self.voices,
                            device_request=self.device_request, models_dir=self.workspace.models_dir,
                            check_finetune=self.check_finetune)

    def engine(self, name: str = DEFAULT_ENGINE) -> Engine:
        with self._engines_lock:
            if name not in self._engines:
                self._engines[name] = create_engine(name, self.device, self.workspace.models_dir)
            return self._engines[name]

    # --- model files ----------------------------------------------------------------------------

    def model_files(self, engine: Optional[str] = None, models_dir: Optional[str | os.PathLike] = None
                    ) -> List[models.EngineModels]:
        """Each installed engine's model files (or just `engine`'s) and where they are on this machine;
        `models_dir` is searched first."""
        if engine is not None:
            return [models.engine_models(engine, self.workspace.models_dir, models_dir)]
        return models.all_models(self.workspace.models_dir, models_dir)

    def plan_model_download(self, engine: str, only=(), everything: bool = False,
                            models_dir: Optional[str | os.PathLike] = None,
                            version: Optional[str] = None) -> models.DownloadPlan:
        """What `download_models` would fetch for `engine` (see `models.plan_download`)."""
        return models.plan_download(engine, self.workspace.models_dir, models_dir, tuple(only), everything,
                                    version)

    def download_models(self, plan: models.DownloadPlan, models_dir: Optional[str | os.PathLike] = None,
                        progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
        return models.download(plan, self.workspace.models_dir, models_dir, progress)

    def conditioning(self, voice: Voice | str, engine: Engine,
                     progress: Optional[ProgressCallback] = None) -> tuple[Conditioning, bool]:
        """The engine's conditioning for `voice`, from the cache when the clips are unchanged.
        Returns (conditioning, was_cached)."""
        voice = self.voices.get(voice) if isinstance(voice, str) else voice
        # Once per voice, even for requests arriving together (server threads, other processes).
        return voice.cache.get_or_compute_once(
            self._conditioning_key(voice, engine),
            lambda: engine.prepare_conditioning(select_clips(voice.load_clips(), f"voice '{voice.name}'").clips,
                                                progress),
            {"clips": [p.name for p in voice.clip_paths]}, progress,
        )

    @staticmethod
    def _conditioning_key(voice: Voice, engine: Engine) -> CacheKey:
        # Long voices are conditioned on a selection of their audio (conditioning_clips): its
        # rules are part of the key for them.
        try:
            durations = clip_durations(voice.clip_paths)
        except AudioError:  # a clip dropped into the folder by hand that no decoder reads
            voice.load_clips()  # names every unusable clip and says what to do
            raise
        tag = selection_tag(durations)
        return CacheKey(engine.name, engine.cache_key() + tag, voice.fingerprint())

    def enrollment_notes(self, voice: Voice | str, engine_name: str = DEFAULT_ENGINE) -> Optional[dict]:
        """The engine's notes on the voice's cached conditioning (Engine.conditioning_notes), or
        None when the voice is not enrolled for the current clips yet; never enrolls it."""
        voice = self.voices.get(voice) if isinstance(voice, str) else voice
        engine = self.engine(engine_name)
        cached = voice.cache.load(self._conditioning_key(voice, engine))
        return None if cached is None else engine.conditioning_notes(cached)

    def analyse_voice(self, name: str, progress: Optional[ProgressCallback] = None) -> VoiceReport:
        # The speaker encoder is small; the CPU keeps results identical across machines.
        return analyse_voice(self.voices.get(name), "cpu", progress)

    def import_demo_voice(self, name: str = DEMO_VOICE_NAME,
                          progress: Optional[ProgressCallback] = None) -> Voice:
        """Create the demo voice if it is missing (an existing voice of that name is kept)."""
        if self.voices.exists(name):
            return self.voices.get(name)
        return self.voices.add(name, demo_voice_files(), progress=progress)

    # --- speaking -------------------------------------------------------------------------------

    @staticmethod
    def _explicit_output(request: SpeakRequest | ConvertRequest) -> Path:
        """`request`'s -o path, checked (extension, folder, nothing of the user's replaced without
        --force); checked again before any work starts, so that a refusal costs no enrollment."""
        output = Path(request.output).expanduser()
        if output.suffix.lower() not in WRITABLE_EXTENSIONS:
            raise VoxmithError(f"Output '{output}' needs one of the extensions {', '.join(WRITABLE_EXTENSIONS)}.")
        # Missing folders are made; one that is a file would fail only after the work is done.
        above = next(p for p in output.parents if p.exists())
        if not above.is_dir():
            raise VoxmithError(f"Cannot write '{output}': '{above}' is a file, not a folder. Choose another -o.")
        # Not reserved with a placeholder: a killed run would leave an empty file at the user's
        # own path that the next run refuses to replace.
        if output.exists() and not request.overwrite:
            raise VoxmithError(f"'{output}' already exists. Choose another -o, or pass --force to replace it.")
        # The sidecar and the takes folder are written beside it: a file of the user's there
        # (notes.json beside notes.wav) is not replaced without --force either.
        beside = [p for p in (output.with_suffix(".json"), output.with_name(output.stem + ".takes")) if p.exists()]
        if beside and not request.overwrite:
            raise VoxmithError(f"'{beside[0]}' already exists, and the result's "
                               f"{'sidecar' if beside[0].suffix == '.json' else 'other takes'} would be written "
                               "there. Choose another -o, or pass --force to replace it.")
        return output.resolve()

    def _output_path(self, request: SpeakRequest | ConvertRequest, folder_name: str,
                     slug_text: Optional[str] = None) -> tuple[Path, bool]:
        """Where the result goes, and whether the name was reserved here (an empty placeholder file
        created exclusively, so two requests made in the same second never pick the same name)."""
        if request.output is not None:
            return self._explicit_output(request), False
        # the voice's results folder under whichever spelling it was made (see paths.named_folder)
        folder = named_folder(self.workspace.results_dir, folder_name, "voice")
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{slugify(slug_text if slug_text is not None else request.text)}"
        n = 1
        while True:
            output = folder / (f"{stem}.wav" if n == 1 else f"{stem}-{n}.wav")
            n += 1
            if not output.with_suffix(".json").exists() and reserve_file(output):
                return output, True

    def speak(self, request: SpeakRequest, progress: Optional[ProgressCallback] = None) -> SpeakResult:
        """Speak `request.text` in a library voice or reference clips; see `voxmith.studio.speech`."""
        return self.speak_stream(request, progress).run()

    def speak_stream(self, request: SpeakRequest, progress: Optional[ProgressCallback] = None) -> SpeechStream:
        """Like `speak`, but yields each sentence's audio as soon as it is made (for streaming). The
        voice is prepared (enrolled if needed) and the request checked before this returns; the
        file and sidecar are written when the iteration ends, exactly as `speak` writes them."""
        request.validate()
        engine = self.engine(request.engine or DEFAULT_ENGINE)
        warnings = check_text_language(request.text, engine.name, engine.languages, installed_engine_languages)
        voice = self.voices.get(request.voice) if request.voice else None
        request = dataclasses.replace(request, settings=self.settings_with_voice_defaults(voice, engine.name,
                                                                                          request.settings))
        # Refused now, not after the minute a new voice's enrollment (or a fine-tune's check) takes.
        engine.settings_class.from_dict(request.settings)
        if request.output is not None:
            self._explicit_output(request)
        finetune, finetune_record = self._finetune_for(request.finetune, voice, engine)
        engine = engine.with_finetune(finetune)  # the weights are part of this request only
        # The speaker embedding only serves ranking: not computed for --no-rank.
        conditioning, embedding, source, folder = self._voice_or_refs(voice, request.refs, engine, progress,
                                                                      embed=request.rank)
        if finetune_record:
            source["finetune"] = finetune_record.to_json()
            report(progress, f"using fine-tuned weights: {finetune.description}", 0, None)
        count = sum(len(p) for p in split_paragraphs(request.text))
        store, kept_output = None, None
        if request.resumable:
            store, request, kept_output = self._unfinished(request, engine, source)
        try:
            output, reserved = kept_output or self._output_path(request, folder)
            if store is not None:
                store.begin(request.seed, output, count)
        except BaseException:
            if store is not None:
                store.release()
            raise
        sentences = speak_sentences(engine, conditioning, embedding, request, output, source, self.device, progress,
                                    warnings, store)

        def release() -> None:  # stopped early: give the reserved name back (and the kept sentences' lock)
            if reserved and output.exists() and output.stat().st_size == 0:
                output.unlink(missing_ok=True)
            if store is not None:
                store.release()
        return SpeechStream(sentences, engine.sample_rate_hz, count, output, on_close=release)

    def _unfinished(self, request: SpeakRequest, engine: Engine, source: dict):
        """For a resumable request: its locked `SentenceStore`, the request with the seed of its
        first run (or a new one) and, when it resumes, the output name that run reserved."""
        asked_seed = request.seed if request.seed is not None and request.seed >= 0 else None
        key = request_key({
            "text": request.text, "source": source, "engine": [engine.name, engine.version],
            "settings": engine.settings_class.from_dict(request.settings).to_dict(), "seed": asked_seed,
            "candidates": request.candidates, "ranking": dataclasses.asdict(request.ranking), "rank": request.rank,
            "output": str(Path(request.output).expanduser().resolve()) if request.output is not None else None,
        })
        store = SentenceStore(self.workspace.home / ".cache", key)
        state = store.open()
        seed = state.get("seed")
        if not isinstance(seed, int):
            seed = asked_seed if asked_seed is not None else secrets.randbelow(2 ** 31)
        kept_output = None
        previous = state.get("output")
        if previous and request.output is None:
            path = Path(previous)
            try:  # the name the first run reserved, unless someone else has since used it
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                kept_output = (path, True)
            except FileExistsError:
                if path.stat().st_size == 0:  # its own placeholder, left by a killed run
                    kept_output = (path, True)
            except OSError:  # its folder is gone: a new name
                pass
        return store, dataclasses.replace(request, seed=seed), kept_output

    def _voice_or_refs(self, voice: Optional[Voice], refs, engine: Engine, progress: Optional[ProgressCallback],
                       embed: bool = True):
        """(conditioning, speaker embedding or None, sidecar record, results folder) for a library voice
        or, without one, reference clips."""
        embedding = None
        if voice is not None:
            report(progress, f"preparing voice '{voice.name}' for {engine.name}", 0, None,
                   "first use: enrolling" if not self._is_prepared(voice, engine) else "cached")
            conditioning, _ = self.conditioning(voice, engine, progress)
            conditioning = self._finetune_checked(voice.cache, self._conditioning_key(voice, engine), engine,
                                                  conditioning, f"Voice '{voice.name}'", progress,
                                                  lambda: self._own_check_key(voice, engine))
            if embed:
                _, embedding, _ = voice_embeddings(voice, "cpu", progress)
            source = {"voice": {"name": voice.name, "fingerprint": voice.fingerprint(),
                                "clips": [p.name for p in voice.clip_paths]}}
            return conditioning, embedding, source, voice.name
        clips = load_reference_clips(refs)
        paths = [Path(r).resolve() for r in refs]
        fingerprint = fingerprint_files(paths)
        # Reference clips are not a library voice, but re-enrolling them on every run would be
        # slow: their conditioning is cached in the workspace by content fingerprint.
        cache = ConditioningCache(self.workspace.home / ".cache" / "refs" / fingerprint[:24])
        tag = selection_tag([c.duration_s for c in clips])  # long clips: a bounded selection of them
        key = CacheKey(engine.name, engine.cache_key() + tag, fingerprint)
        # As for a voice: say that the first use of these clips enrolls them (minutes on a CPU).
        report(progress, f"preparing the reference clips for {engine.name}", 0, None,
               "cached" if cache.load(key) is not None else "first use: enrolling")
        conditioning, _ = cache.get_or_compute_once(
            key, lambda: engine.prepare_conditioning(select_clips(clips, "the reference clips").clips, progress),
            progress=progress)
        conditioning = self._finetune_checked(cache, key, engine, conditioning, "The reference clips' voice", progress)
        if embed:
            embedding = reference_embedding(clips)
        source = {"refs": {"files": [str(p) for p in paths], "fingerprint": fingerprint}}
        return conditioning, embedding, source, "_refs"

    # --- checking fine-tuned weights on a voice ---------------------------------------------------

    def check_finetune(self, voice: Voice | str, finetune: Finetune, engine_name: str,
                       progress: Optional[ProgressCallback] = None) -> Optional[dict]:
        """Check `finetune` (weights for `engine_name`) on `voice` as speaking with them would
        (enrolling the voice first if needed; see `_finetune_checked`): the engine's notes on the
        outcome, None for engines that check nothing. Raises VoxmithError when they are refused.
        `TrainingRuns.use` calls it before a voice is set to use a run."""
        voice = self.voices.get(voice) if isinstance(voice, str) else voice
        if not engine_class(engine_name).checks_finetunes:  # not even loaded: `use` stays instant
            return None
        engine = self.engine(engine_name).with_finetune(finetune)
        if engine.finetune_check_key() is None:
            return None
        conditioning, _ = self.conditioning(voice, engine, progress)
        checked = self._finetune_checked(voice.cache, self._conditioning_key(voice, engine), engine, conditioning,
                                         f"Voice '{voice.name}'", progress, lambda: self._own_check_key(voice, engine))
        return engine.conditioning_notes(checked)

    def _own_check_key(self, voice: Voice, engine: Engine) -> Optional[str]:
        """The check key of the weights `voices use` set `voice` to speak with on `engine` (None: the
        stock weights, or weights that cannot be loaded now)."""
        try:
            finetune, _ = self._finetune_for(FinetuneChoice.voice_setting(), voice, engine)
            return engine.with_finetune(finetune).finetune_check_key() if finetune is not None else None
        except VoxmithError:
            return None

    @staticmethod
    def _finetune_checked(cache: ConditioningCache, key: CacheKey, engine: Engine, conditioning: Conditioning,
                          owner: str, progress: Optional[ProgressCallback],
                          own_check: Callable[[], Optional[str]] = lambda: None) -> Conditioning:
        """`conditioning` (cached under `key` in `cache`) with what the check of `engine`'s fine-tuned
        weights on that voice found (Engine.check_finetune). It runs once per voice and weights: the
        outcome, a refusal included, is cached beside the conditioning, keyed by the weights' digest.
        Raises VoxmithError, naming `owner` (the voice), when the weights are refused. `own_check`:
        the check key of the weights the voice is set to use, whose check pruning keeps."""
        check = engine.finetune_check_key() if engine.finetune is not None else None
        if check is None:
            return conditioning
        prefix = f"{key.namespace}.finetune-"
        check_key = CacheKey(prefix + check, key.producer_version, key.fingerprint)
        # Once, even when several requests (server threads, other processes) put the same weights to
        # use at the same moment: the others wait for the first's outcome.
        checked, cached = cache.get_or_compute_once(check_key, lambda: engine.check_finetune(conditioning, progress),
                                                    {"finetune": engine.finetune.description}, progress)
        if cached:
            cache.touch(check_key)
        else:  # checks of weights not used lately (older checkpoints) go; this one, the voice's own (trying
            # other runs must not make it check again what it speaks with) and the latest others stay
            keep = {check_key.namespace, *([prefix + own] if (own := own_check()) else [])}
            cache.prune(prefix, keep=sorted(keep), keep_recent=FINETUNE_CHECKS_KEPT - len(keep))
        if FINETUNE_REFUSED in checked:
            raise VoxmithError(f"{owner} cannot speak with the fine-tuned weights of {engine.finetune.description}: "
                               f"{checked[FINETUNE_REFUSED]}. Choose another checkpoint or run, or the stock "
                               "weights (--stock).")
        return {**conditioning, **checked}

    # --- converting recordings ------------------------------------------------------------------

    def convert(self, request: ConvertRequest, progress: Optional[ProgressCallback] = None) -> ConvertResult:
        """Convert a recording of anyone into a library voice (or reference clips): the same words,
        timing and intonation, in that voice; see `voxmith.studio.conversion`."""
        request.validate()
        engine = self.engine(request.engine or DEFAULT_ENGINE)
        if not engine.supports_convert:
            able = [name for name in available_engines() if _can_convert(name)]
            raise VoxmithError(f"The {engine.name} engine cannot convert recordings; engines that can: "
                               f"{', '.join(able) or 'none installed'}.")
        engine.checked_convert_settings(request.settings)  # bad settings are refused before enrolling
        if request.output is not None:  # and so is an -o that would be refused
            self._explicit_output(request)
        voice = self.voices.get(request.voice) if request.voice else None
        conditioning, _, voice_record, folder = self._voice_or_refs(voice, request.refs, engine, progress,
                                                                    embed=False)
        output, reserved = self._output_path(request, folder, f"{Path(request.source).stem} converted")
        try:
            return convert_recording(engine, conditioning, request, output, voice_record, self.device, progress)
        except BaseException:
            if reserved and output.exists() and output.stat().st_size == 0:
                output.unlink(missing_ok=True)
            raise

    # --- audiobooks --------------------------------------------------------------------------------

    def book(self, request: BookRequest, redo: Optional[str] = None,
             progress: Optional[ProgressCallback] = None) -> BookResult:
        """Read a book (text, Markdown, EPUB) in a voice into chapter files, a joined book with chapter
        markers and a manifest; resumes an interrupted run; `redo` makes one sentence again (see
        `voxmith.studio.book`)."""
        request.validate()
        engine = self.engine(request.engine or DEFAULT_ENGINE)
        voice = self.voices.get(request.voice) if request.voice else None
        # A book that cannot be read (not text, no words, a zip bomb) is refused now, not after the
        # minutes a new voice's enrollment or a fine-tune's check take.
        chapters = read_chapters(Path(request.source), request.pauses)
        request = dataclasses.replace(request, settings=self.settings_with_voice_defaults(voice, engine.name,
                                                                                          request.settings))
        engine.settings_class.from_dict(request.settings)  # bad settings: refused before enrolling too
        folder = self.book_folder(request)
        # -o into a folder of the user's would write book.m4b, manifest.json... over files of theirs
        # of those names; a book's own folder (its book.json, written first) resumes instead.
        if request.output_dir and folder.is_dir() and not (folder / "book.json").exists() \
                and any(not p.name.startswith(".") for p in folder.iterdir()):
            raise VoxmithError(f"'{folder}' already holds files and is not the folder of a book; choose a new or "
                               "empty folder with -o (a book's own folder is resumed).")
        # The same weights `speak` would use for this voice (its `voices use` setting, checked on it).
        finetune, finetune_record = self._finetune_for(request.finetune, voice, engine)
        engine = engine.with_finetune(finetune)
        conditioning, embedding, voice_record, _ = self._voice_or_refs(voice, request.refs, engine, progress)
        if finetune_record:
            voice_record["finetune"] = finetune_record.to_json()
            report(progress, f"using fine-tuned weights: {finetune.description}", 0, None)
        source = Path(request.source).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        with folder_lock(folder, "This book is being made by another voxmith process right now; wait for it "
                                 "(or stop it) and run the command again."):
            maker = BookMaker(engine, conditioning, embedding, request, folder, voice_record,
                              fingerprint_files([source]), progress, chapters)
            return maker.redo(redo) if redo else maker.make()

    # --- a voice's own engine settings ----------------------------------------------------------

    def voice_engine_settings(self, voice: Voice | str, engine_name: str) -> dict:
        """The settings `voice` keeps for `engine_name` (voice.json), applied under every request's."""
        voice = self.voices.get(voice) if isinstance(voice, str) else voice
        return dict(((voice.metadata.get("engine_settings") or {}).get(engine_name)) or {})

    def set_voice_engine_settings(self, voice: Voice | str, engine_name: str, values: dict,
                                  unset: tuple = ()) -> dict:
        """Add `values` to (and drop the `unset` names from) `voice`'s settings for `engine_name`, after
        checking them with the engine's settings class; returns the voice's settings now."""
        voice = self.voices.get(voice) if isinstance(voice, str) else voice
        settings_class = engine_class(engine_name).settings_class
        known = {f.name for f in dataclasses.fields(settings_class)}
        unknown, both = sorted(set(unset) - known), sorted(set(unset) & set(values))
        if unknown:  # a typo in --unset would leave the setting kept, saying it was done
            raise VoxmithError(f"{', '.join(unknown)}: not a setting of {engine_name} (its settings: "
                               f"{', '.join(sorted(known)) or 'none'}).")
        if both:
            raise VoxmithError(f"{', '.join(both)}: set and unset at once; pick one.")
        current = {k: v for k, v in {**self.voice_engine_settings(voice, engine_name), **values}.items()
                   if k not in unset}
        settings_class.from_dict(current)  # refuses unknown names and bad values
        every = dict(voice.metadata.get("engine_settings") or {})
        every[engine_name] = current
        voice.update_metadata(engine_settings={k: v for k, v in every.items() if v})
        return current

    def settings_with_voice_defaults(self, voice: Optional[Voice], engine_name: str, settings: Optional[dict]) -> dict:
        """A request's settings over those its voice keeps for the engine (the request wins)."""
        kept = self.voice_engine_settings(voice, engine_name) if voice is not None else {}
        return {**kept, **dict(settings or {})}

    def book_folder(self, request: BookRequest) -> Path:
        """Where `request`'s book is made: its -o folder, or results/VOICE/<book>-book/."""
        if request.output_dir:
            return Path(request.output_dir).expanduser().resolve()
        # one folder whichever way the name is typed, and the one a book was started in before names
        # had one spelling (results/<e + U+0308>/) is found, not started again beside it
        folder = named_folder(self.workspace.results_dir, request.voice or "_refs", "voice")
        return folder / f"{slugify(Path(request.source).stem)}-book"

    def _finetune_for(self, choice: FinetuneChoice, voice: Optional[Voice], engine: Engine):
        """The fine-tuned weights a request's `choice` speaks with (None: stock) and what the record says
        of them."""
        from_voice = choice.kind == "voice"
        if from_voice:  # what the voice was set to use, if it was trained for this engine
            setting = (voice.metadata.get("finetune") if voice is not None else None) or {}
            if setting and setting.get("engine") != engine.name:
                return None, None
            choice = FinetuneChoice.coerce(setting)
        if choice.kind == "stock":
            return None, None
        # in its one spelling (a voice.json written before names had one may spell it otherwise), so a
        # book's settings and a resumable speech's key are the same whichever way it was recorded
        run, which = canonical_name(str(choice.run)), choice.checkpoint
        try:
            finetune, run_engine, checkpoint = self.training.finetune(run, which)
        except VoxmithError as err:
            owner = f"Voice '{voice.name}' is set to use training run '{run}', but: " if from_voice \
                else ""
            hint = (f"\nChoose another checkpoint with `voxmith voices use {quote(voice.name)} --run RUN`, or go "
                    f"back to the stock weights with `voxmith voices use {quote(voice.name)} --stock`.") if owner else ""
            raise VoxmithError(f"{owner}{err}{hint}") from None
        if run_engine != engine.name:
            raise VoxmithError(f"Training run '{run}' fine-tuned the {run_engine} engine, not {engine.name}; "
                               f"speak with --engine {run_engine}.")
        return finetune, FinetuneUsed(run, which, checkpoint.step)

    def _is_prepared(self, voice: Voice, engine: Engine) -> bool:
        return voice.cache.load(self._conditioning_key(voice, engine)) is not None

    def reproduce(self, sidecar_path: str | os.PathLike, output: Optional[Path] = None, overwrite: bool = False,
                  progress: Optional[ProgressCallback] = None) -> SpeakResult | ConvertResult:
        """Make a result again from its JSON sidecar: same text, voice, engine, settings and seed
        (for a conversion: the same recording, voice, engine and settings)."""
        record = read_record(sidecar_path)
        if isinstance(record, ConversionRecord):
            self._check_made_with_installed(record)
            return self.convert(request_from_record(record, output, overwrite), progress)
        return self.speak(self._request_of(record, output, overwrite), progress)

    def reproduction_request(self, sidecar_path: str | os.PathLike, output: Optional[Path] = None,
                             overwrite: bool = False) -> SpeakRequest:
        """The request that made a spoken result, read from its sidecar (checked: same voice clips,
        same engine version). `reproduce` speaks it; the web UI's history loads it into the form."""
        record = read_record(sidecar_path)
        if isinstance(record, ConversionRecord):
            raise VoxmithError(f"'{sidecar_path}' is a converted recording, not speech; reproduce it instead.")
        return self._request_of(record, output, overwrite)

    def _request_of(self, record: ResultRecord, output: Optional[Path], overwrite: bool) -> SpeakRequest:
        self._check_made_with_installed(record)
        known = {f.name for f in dataclasses.fields(RankingSettings)}
        ranking = {k: v for k, v in record.ranking.items() if k in known}
        return SpeakRequest(
            text=record.text, voice=record.voice.name if record.voice else None,
            refs=record.refs.files if record.refs else (), engine=record.engine_name,
            settings=self.engine(record.engine_name).settings_class.as_recorded(record.settings),
            seed=record.seed, candidates=record.candidates, ranking=RankingSettings(**ranking), rank=record.ranked,
            output=output, overwrite=overwrite,
            # the exact checkpoint step that made it (or stock weights), whatever the voice uses now
            finetune=FinetuneChoice.of_run(record.finetune.run, record.finetune.step) if record.finetune
            else FinetuneChoice.stock(),
        )

    def _check_made_with_installed(self, record: ResultRecord | ConversionRecord) -> None:
        """Refuse to reproduce a result whose voice's clips or engine version have changed since."""
        voice = record.voice
        if voice and self.voices.exists(voice.name) and self.voices.get(voice.name).fingerprint() != voice.fingerprint:
            raise VoxmithError(f"Voice '{voice.name}' has changed since this result was made "
                               "(its clips differ), so it cannot be reproduced exactly.")
        installed = self.engine(record.engine_name).version
        if record.engine_version != installed:
            raise VoxmithError(f"This result was made with {record.engine_name} version {record.engine_version}; "
                               f"version {installed} is installed.")

    def evaluate(self, files, voice: Optional[str] = None, references=(), text: Optional[str] = None,
                 progress: Optional[ProgressCallback] = None) -> List[dict]:
        """Speaker similarity (to a voice or reference clips), WER, naturalness (DistillMOS) and
        duration of any audio files. Without `text`, a file's own sidecar text is used when it has one.

        Every file is read once before the scoring models load, so a missing or unreadable file is
        refused at once rather than after a minute of loading Whisper and DistillMOS."""
        from voxmith.asr import get_transcriber
        from voxmith.audio import load_audio, to_mono
        from voxmith.audio.analysis import speech_seconds
        from voxmith.audio.checks import check_sample_rate
        from voxmith.quality import get_naturalness_model
        from voxmith.speaker import get_speaker_encoder
        from voxmith.studio.ranking import score_take

        files = list(files)
        if not voice and not references:
            # Results of this studio say their voice: `eval results/alice/x.wav` compares with alice.
            named = {voice_of_result(Path(f).with_suffix(".json")) for f in files}
            if len(named) == 1 and None not in named and self.voices.exists(next(iter(named))):
                voice = next(iter(named))
                report(progress, f"comparing with voice '{voice}' (the one the results were made in)", 0, None)
            elif len(named - {None}) > 1:
                raise VoxmithError(f"The results were made in different voices ({', '.join(sorted(named - {None}))}); "
                                   "say which to compare with: --voice NAME or --reference CLIP....")
        if bool(voice) == bool(references):
            raise VoxmithError("Compare with --voice NAME or --reference CLIP... (one of them).")
        for index, file in enumerate(files):
            report(progress, "reading files", index, len(files), Path(file).name, unit="file")
            # decoding is cheap next to scoring; audio is read again below. A 1 Hz header would be
            # resampled into gigabytes for the scoring models.
            check_sample_rate(load_audio(file).sample_rate_hz, str(file))
        report(progress, "reading files", len(files), len(files), unit="file")
        if voice:
            _, embedding, _ = voice_embeddings(self.voices.get(voice), "cpu", progress=progress)
        else:
            embedding = reference_embedding(load_reference_clips(references))
        report(progress, "loading the scoring models (speaker encoder, Whisper, DistillMOS)", 0)
        encoder, transcriber, naturalness = get_speaker_encoder("cpu"), get_transcriber(), get_naturalness_model()
        rows = []
        for index, file in enumerate(files):
            report(progress, "scoring", index, len(files), Path(file).name, unit="file")
            audio = load_audio(file)
            expected = text
            if expected is None:
                expected = text_of_result(Path(file).with_suffix(".json"))
            mono = to_mono(audio.samples)
            scores = score_take(mono, audio.sample_rate_hz, expected, embedding, encoder, transcriber,
                                naturalness_model=naturalness)
            transcript = scores.transcript or transcriber.transcribe(audio.samples, audio.sample_rate_hz).text
            row = {"file": str(file), "duration_s": round(audio.duration_s, 3),
                   "similarity": round(scores.similarity, 4),
                   "wer": None if scores.wer is None else round(scores.wer, 4),
                   "naturalness_mos": round(scores.naturalness, 3),
                   "expected_text": expected, "transcript": transcript}
            speech_s = speech_seconds(mono, audio.sample_rate_hz)
            if speech_s < MIN_SPEECH_TO_SCORE_S:  # the models still give numbers for silence or noise
                row["warning"] = (f"only {speech_s:.1f} s of speech found (silence or noise?): its scores say "
                                  "little about a voice")
            rows.append(row)
        report(progress, "scoring", len(files), len(files), unit="file")
        return rows

    # --- datasets -------------------------------------------------------------------------------

    def resolve_recordings(self, items) -> List[Path]:
        """`--from` items: library voices (their clips), audio files, or folders of audio files."""
        from voxmith.audio.io import AUDIO_EXTENSIONS

        paths: List[Path] = []
        for item in items:
            item_path = Path(item).expanduser()
            if item_path.is_file():
                paths.append(item_path)
            elif item_path.is_dir():
                found = sorted(p for p in item_path.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
                if not found:
                    raise VoxmithError(f"Folder '{item_path}' contains no audio files.")
                paths.extend(found)
            elif "/" not in str(item) and self.voices.exists(str(item)):
                paths.extend(self.voices.get(str(item)).clip_paths)
            else:
                raise VoxmithError(f"'{item}' is neither a voice in the library nor an existing file or folder.")
        return paths

    def prepare_dataset(self, name: str, sources, settings: Optional[PrepareSettings] = None,
                        redo: bool = False, progress: Optional[ProgressCallback] = None) -> dict:
        """Slice, transcribe and write dataset `name`; resumes an interrupted run. Returns its summary."""
        dataset = self.datasets.at(name)
        recordings = self.resolve_recordings(sources)
        # The space killed prepares left (of any dataset) is freed before this one takes more.
        self.datasets.clear_abandoned()
        # Two preparations of one dataset (two terminals, the web UI and the CLI), or an edit during
        # one, are refused (Dataset.changing).
        return prepare_dataset(dataset, recordings, settings or PrepareSettings(), redo=redo,
                               progress=progress)


def _can_convert(engine_name: str) -> bool:
    try:
        return engine_class(engine_name).supports_convert
    except VoxmithError:  # an engine whose dependencies are missing
        return False
