"""The voice library: `voices/NAME/` folders holding copies of a speaker's clips.

The clips on disk are the truth (users of ai-voice-cloning drop files into voice folders by hand,
and that works here too); `voice.json` keeps where each clip came from and voice settings.
The user's original files are only ever read. Adding is all-or-nothing: every clip is decoded and
checked before anything is copied, and the new folder appears in one rename. Nothing is deleted:
a replaced or removed voice moves to `<home>/trash/voices/NAME-<time>/NAME/`, where it can be moved
back by hand (its cache, which is recomputed anyway, is dropped). Changes to one voice (adding,
replacing, removing, its voice.json) take a lock of that voice's (`<home>/.cache/locks/voices/NAME.lock`),
so two processes adding clips at once both keep theirs.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import shutil
from shlex import quote
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from voxmith.audio import check_usable, load_audio, save_audio
from voxmith.audio.io import AUDIO_EXTENSIONS, Audio, extension_for
from voxmith.errors import AudioError, VoiceError
from voxmith.fsutil import atomic_write_json, exclusive_lock, fingerprint_files, read_json_object
from voxmith.progress import ProgressCallback, report
from voxmith.studio.conditioning import CACHE_FOLDER, ConditioningCache
from voxmith.paths import canonical_name, is_valid_name, named_folder, sanitize_filename, unusable_folder

VOICE_FILE = "voice.json"


def _voice_lock(voices_dir: Path, name: str):
    """The lock held while voice `name` changes (not re-entrant: take it once per change); kept
    out of voices/, where every folder is a voice and users drop files."""
    return exclusive_lock(voices_dir.parent / CACHE_FOLDER / "locks" / "voices" / f"{name}.lock")
TRASH_FOLDER = "trash"  # in the workspace home, beside voices/

# The longest file read as a voice clip. Conditioning uses at most 2 minutes of a voice, so a longer
# file is a recording to build a dataset from, not a clip; 30 minutes leaves room for a whole take
# while holding a clip to about 1 GB at the peak of decoding it (48 kHz), where the general bound of
# `load_audio` (hours, for dataset recordings) would let one upload take the web UI or the server down.
MAX_CLIP_SECONDS = 30 * 60.0
CLIP_TOO_LONG_ADVICE = ("That is a long recording, not a voice clip (a voice needs a few minutes of the speaker; "
                        "conditioning uses at most 2): cut a few minutes from it, or build a dataset from the "
                        "recording with `voxmith dataset prepare NAME --from FILE`.")


def load_clip(path: str | Path, **options) -> Audio:
    """`load_audio` for a voice clip (`voices add`, a voice's folder, `--ref`): at most `MAX_CLIP_SECONDS`."""
    return load_audio(path, max_seconds=MAX_CLIP_SECONDS, too_long_advice=CLIP_TOO_LONG_ADVICE, **options)


@dataclass(frozen=True)
class Voice:
    name: str
    path: Path

    @property
    def clip_paths(self) -> List[Path]:
        return sorted(p for p in self.path.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS)

    @property
    def hand_added_clips(self) -> List[Path]:
        """Clips in the folder that voxmith did not copy there (dropped in by hand)."""
        known = set((self.metadata.get("clips") or {}))
        return [p for p in self.clip_paths if p.name not in known]

    @property
    def missing_clips(self) -> List[str]:
        """Clips voxmith copied into the folder (listed in voice.json) that are no longer there."""
        return sorted(name for name in (self.metadata.get("clips") or {}) if not (self.path / name).exists())

    def fingerprint(self) -> str:
        """Changes whenever a clip is added, removed, renamed or edited."""
        return fingerprint_files(self.clip_paths)

    @property
    def cache(self) -> ConditioningCache:
        return ConditioningCache(self.path)

    @property
    def metadata(self) -> dict:
        """voice.json ({} when there is none). One damaged by hand is an error saying what to do, never
        read as empty: the next change would write over the settings it holds."""
        path = self.path / VOICE_FILE
        try:
            return read_json_object(path, default={})
        except ValueError as problem:
            raise VoiceError(f"Voice '{self.name}': '{path}' is damaged ({problem}). Fix it by hand, or move it "
                             "away to start it afresh (the clips are the voice; voice.json keeps where they came "
                             "from, the voice's engine settings and its fine-tune choice).") from None

    def listed_metadata(self) -> dict:
        """`metadata` for listings of every voice: {} for a damaged voice.json (one voice's file must
        not hide the others; using the voice says what is wrong)."""
        try:
            return self.metadata
        except VoiceError:
            return {}

    def update_metadata(self, **changes) -> None:
        with _voice_lock(self.path.parent, self.name):  # a concurrent `voices add --append` keeps these
            meta = self.metadata
            meta.update(changes)
            atomic_write_json(self.path / VOICE_FILE, meta)

    def load_clips(self, sample_rate_hz: Optional[int] = None) -> List[Audio]:
        """Decode every clip (mono), raising `VoiceError` if the voice has none or if any clip is
        unusable (clips dropped into the folder by hand were never checked)."""
        paths = self.clip_paths
        if not paths:
            missing = self.missing_clips
            if missing:
                raise VoiceError(f"Voice '{self.name}' has no audio clips left: {', '.join(missing)} are missing "
                                 f"from '{self.path}' (deleted or moved?). Put them back, or add clips with "
                                 f"`voxmith voices add {quote(self.name)} FILE... --append`.")
            raise VoiceError(f"Voice '{self.name}' has no audio clips in '{self.path}'. "
                             f"Add some with `voxmith voices add {quote(self.name)} FILE... --append`.")
        clips, problems = [], []
        for path in paths:
            try:
                audio = load_clip(path, sample_rate_hz=sample_rate_hz)
                check_usable(audio)
                clips.append(audio)
            except AudioError as err:
                problems.append(str(err))
        if problems:
            raise self.unusable(problems)
        return clips

    def unusable(self, problems: List[str]) -> VoiceError:
        """The error for clips of this voice that cannot be used (dropped into the folder by hand)."""
        return VoiceError(f"Voice '{self.name}' has clips that cannot be used; remove or replace them "
                          f"in '{self.path}':\n  - " + "\n  - ".join(problems))


def _unique_name(wanted: str, taken: set[str]) -> str:
    stem, dot, ext = wanted.rpartition(".")
    if not dot:
        stem, ext = wanted, ""
    candidate, n = wanted, 2
    while candidate.lower() in taken:
        candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
        n += 1
    taken.add(candidate.lower())
    return candidate


def _expand_folders(paths: Iterable[Path]) -> List[Path]:
    """A folder given among the clips stands for the audio files directly in it (by extension,
    sorted; not its subfolders), as `dataset prepare --from FOLDER` reads one."""
    files: List[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not found:
            raise VoiceError(f"Folder '{path}' has no audio files in it (looked for "
                             f"{', '.join(e.lstrip('.') for e in AUDIO_EXTENSIONS)}; subfolders are not searched).")
        files.extend(found)
    return files


def _store_clip(path: Path, source_info: dict, folder: Path, taken: set[str]) -> str:
    """Copy a checked clip into `folder` under a safe, unique name whose extension is the format it
    decoded as, so the folder scan finds it (WAV data sent as 'take.txt' or 'take' becomes
    'take.wav'). A format known only by its contents (an M4A named '.dat') is stored as a lossless
    decoded FLAC copy. Returns the stored name."""
    name = sanitize_filename(path.name)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    extension = extension_for(path, source_info)
    stored = _unique_name(stem + (extension or ".flac"), taken)
    if extension is None:
        audio = load_clip(path, mono=False)
        save_audio(folder / stored, audio.samples, audio.sample_rate_hz, subtype="PCM_24")
    else:
        shutil.copy2(path, folder / stored)
    return stored


class VoiceLibrary:
    def __init__(self, voices_dir: Path, trash_dir: Optional[Path] = None):
        self.root = voices_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.trash_dir = trash_dir or voices_dir.parent / TRASH_FOLDER / "voices"

    def _locate(self, name: str) -> tuple[str, Path]:
        """Voice `name` in its one spelling, and its folder (which may be spelt another way)."""
        path = named_folder(self.root, name, "voice")
        return canonical_name(name), path

    def names(self) -> List[str]:
        # a name spelt by two folders (NFC and NFD) is one name, listed once (and refused when used)
        return list(dict.fromkeys(voice.name for voice in self.list()))

    def list(self) -> List[Voice]:
        folders = (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return sorted((Voice(canonical_name(p.name), p) for p in folders), key=lambda v: v.name)

    def exists(self, name: str) -> bool:
        return self._locate(name)[1].is_dir()

    def get(self, name: str, *, to_create: bool = True) -> Voice:
        """Voice `name`; a missing one is an error naming the voices there are and the close ones
        (a typo), and, with `to_create`, how to make it (not for `remove`: it would only mislead)."""
        name, path = self._locate(name)
        if not path.is_dir():
            raise self._missing(name, to_create)
        return Voice(name, path)

    def close_names(self, name: str) -> List[str]:
        """Voices whose names are close to `name` (a typo, another case): for "did you mean"."""
        # a folder whose name validate_name refuses (a no-break space) is not offered: it looks like
        # the name typed, and would be refused in turn (`unusable_folder` says to rename it)
        names, name = [n for n in self.names() if is_valid_name(n, "voice")], canonical_name(name)
        close = [n for n in names if n.lower() == name.lower()] + difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        return list(dict.fromkeys(close))[:3]

    def _missing(self, name: str, to_create: bool) -> VoiceError:
        names = self.names()
        close = self.close_names(name)
        message = f"No voice named '{name}'."
        if close:
            message += " Did you mean " + " or ".join(f"'{n}'" for n in close) + "?"
        unusable = [n for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6) if not is_valid_name(n, "voice")]
        for voice in (v for v in self.list() if v.name in unusable):  # what to do with a look-alike folder
            message += " " + (unusable_folder(self.root, voice.path.name, "voice") or "")
        message += f" Voices: {', '.join(names)}." if names else " There are no voices yet."
        if to_create:
            message += f" Create it with `voxmith voices add {quote(name)} CLIP...`."
        return VoiceError(message)

    def add(self, name: str, files: Iterable[str | Path], *, force: bool = False, append: bool = False,
            progress: Optional[ProgressCallback] = None) -> Voice:
        """Create voice `name` from copies of `files` (or add them with `append`, or replace the
        voice with `force`). Nothing changes unless every file is a usable clip."""
        name, target = self._locate(name)
        files = _expand_folders(Path(f) for f in files)
        if not files:
            raise VoiceError("No clips given. Pass one or more audio files.")
        if force and append:
            raise VoiceError("Use either --force (replace the voice) or --append (add clips), not both.")
        self._refuse_existing(name, target, force or append)  # before decoding anything

        problems, formats = [], {}
        for i, path in enumerate(files):
            report(progress, "checking clips", i, len(files), path.name, unit="clip")
            try:
                audio = load_clip(path)
                check_usable(audio)
                formats[path] = audio.source_info
            except AudioError as err:
                problems.append(str(err))
        report(progress, "checking clips", len(files), len(files), unit="clip")
        if problems:
            raise VoiceError(f"Voice '{name}' was not changed because {len(problems)} of "
                             f"{len(files)} clip(s) cannot be used:\n  - " + "\n  - ".join(problems))

        with _voice_lock(self.root, name):  # another process may have made or changed it meanwhile
            self._refuse_existing(name, target, force or append)
            self._store(name, target, files, formats, append)
        return Voice(name, target)

    @staticmethod
    def _refuse_existing(name: str, target: Path, allowed: bool) -> None:
        if target.exists() and not allowed:
            count = len(Voice(name, target).clip_paths)
            raise VoiceError(f"Voice '{name}' already exists ({count} clips). Use --append to add "
                             "these clips to it, or --force to replace it.")

    def _store(self, name: str, target: Path, files: List[Path], formats: dict, append: bool) -> None:
        """Copy the checked clips in (under the voice's lock): into the voice, or as a new folder
        that appears in one rename (the one it replaces moving to the trash)."""
        appending = append and target.exists()
        replacing = target.exists() and not appending
        existing = Voice(name, target)
        taken = {p.name.lower() for p in existing.clip_paths} if appending else set()
        meta = existing.metadata if appending else {"name": name, "created": _now(), "clips": {}}
        self._clear_abandoned_staging(name)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=self.root))
        backup_slot = self._reserve_backup(name) if replacing else None
        try:
            for path in files:
                stored = _store_clip(path, formats[path], staging, taken)
                meta.setdefault("clips", {})[stored] = {"original": str(path.resolve()), "added": _now()}
            meta["updated"] = _now()
            if appending:
                for staged in staging.iterdir():
                    staged.replace(target / staged.name)
                atomic_write_json(target / VOICE_FILE, meta)
            else:
                if backup_slot is not None:  # where the old voice went: said by the CLI and the web UI
                    meta["replaced"] = {"backup": str(backup_slot / target.name), "at": _now()}
                atomic_write_json(staging / VOICE_FILE, meta)
                if backup_slot is not None:
                    self._move_to_backup(target, backup_slot)
                staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if backup_slot is not None:
                with contextlib.suppress(OSError):
                    backup_slot.rmdir()  # only if it stayed empty (a failure before the swap)

    def _clear_abandoned_staging(self, name: str) -> None:
        """Remove staging folders of voice `name` that a killed `voices add` left (under the voice's
        lock, so none is in use): they hold copies of clips whose originals are where they were."""
        pattern = re.compile(rf"\.staging-{re.escape(name)}-[a-z0-9_]{{8}}")  # tempfile.mkdtemp's suffix
        for folder in self.root.iterdir():
            if pattern.fullmatch(folder.name) and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)

    def _reserve_backup(self, name: str) -> Path:
        """A new, empty folder in the trash for voice `name` (`NAME-<time>`, made unique)."""
        self.trash_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        for n in range(1, 1000):
            slot = self.trash_dir / (stem if n == 1 else f"{stem}-{n}")
            try:
                slot.mkdir()  # exclusive: two processes never share a slot
                return slot
            except FileExistsError:
                continue
        raise VoiceError(f"Too many backups of voice '{name}' in '{self.trash_dir}'; empty it.")

    @staticmethod
    def _move_to_backup(folder: Path, slot: Path) -> Path:
        """Move a voice folder into its reserved trash slot; returns the backup's path."""
        backup = slot / folder.name
        shutil.move(str(folder), str(backup))  # a rename, unless the trash is on another disk
        shutil.rmtree(backup / CACHE_FOLDER, ignore_errors=True)  # derived data, recomputed on use
        return backup

    def remove(self, name: str) -> Path:
        """Move voice `name` to the workspace's trash; returns where it is now."""
        name = self._locate(name)[0]
        with _voice_lock(self.root, name):
            voice = self.get(name, to_create=False)
            slot = self._reserve_backup(name)
            try:
                return self._move_to_backup(voice.path, slot)
            except BaseException:
                with contextlib.suppress(OSError):
                    slot.rmdir()
                raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
