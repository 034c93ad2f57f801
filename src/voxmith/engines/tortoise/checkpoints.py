"""The official TorToiSe checkpoint files: which exist, where they are, and how to fetch them.

The files come from the Hugging Face repository `Manmay/tortoise-tts`, as TorToiSe 3.0.0 fetches
them. Users often have them already, so before downloading anything we look in, in order:

1. an explicit folder (`--models-dir`),
2. $VOXMITH_TORTOISE_MODELS, then $TORTOISE_MODELS_DIR (the official variable),
3. the workspace's `models/tortoise/`,
4. `~/.cache/tortoise/models` (the official default),
5. the Hugging Face hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).

Each folder may hold the files flat (`<dir>/autoregressive.pth`) or in the Hugging Face cache
layout (`<dir>/models--Manmay--tortoise-tts/snapshots/<rev>/autoregressive.pth`), which is what
the official code writes. New downloads go, flat, to the first of 1-3 that applies.
The download source is `$VOXMITH_TORTOISE_BASE_URL/<name>` when set (a mirror, or a test server).

`dvae.pth` (only for fine-tuning) is not in that repository: as DLAS / ai-voice-cloning do, it comes from
`jbetker/tortoise-tts-v2` at a pinned revision, file `.models/dvae.pth`, and is checked against its
known sha256. It is found flat in the same folders, or in that repository's Hugging Face cache layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from voxmith.download import download_file, free_bytes, hf_hub_cache, search_folders, size_text
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback

REPO_ID = "Manmay/tortoise-tts"
DEFAULT_REVISION = "main"
DEFAULT_ENDPOINT = "https://huggingface.co"
HF_CACHE_FOLDER = "models--" + REPO_ID.replace("/", "--")


@dataclass(frozen=True)
class Checkpoint:
    name: str
    approx_bytes: int  # for the up-front estimate only; the server's size is what gets checked
    required: bool  # needed for every synthesis, vs only for some options
    purpose: str
    # A file from another Hugging Face repository: (repo id, pinned revision, path in the repo).
    # None: `REPO_ID` at `revision()`, path = name.
    source: Optional[Tuple[str, str, str]] = None
    sha256: Optional[str] = None  # known content hash, checked after download when given

    @property
    def repo_id(self) -> str:
        return self.source[0] if self.source else REPO_ID


CHECKPOINTS: Tuple[Checkpoint, ...] = (
    Checkpoint("autoregressive.pth", 1_720_000_000, True, "autoregressive model (speech codes)"),
    Checkpoint("diffusion_decoder.pth", 1_170_000_000, True, "diffusion decoder (codes to mel)"),
    Checkpoint("clvp2.pth", 980_000_000, True, "CLVP (ranks candidate takes against the text)"),
    Checkpoint("vocoder.pth", 390_000_000, True, "UnivNet vocoder (mel to audio)"),
    Checkpoint("cvvp.pth", 150_000_000, False, "CVVP (ranks takes by voice; only when cvvp_amount > 0)"),
    Checkpoint("rlg_auto.pth", 25_000_000, False, "random-voice latents for the autoregressive model"),
    Checkpoint("rlg_diffuser.pth", 101_000_000, False, "random-voice latents for the diffusion model"),
    Checkpoint("dvae.pth", 243_000_000, False, "discrete VAE (speech to codes; only for fine-tuning)",
               source=("jbetker/tortoise-tts-v2", "3704aea61678e7e468a06d8eea121dba368a798e", ".models/dvae.pth"),
               sha256="a990825371506c16bcf0e8167bf24ccf82f65bb6a1dbcbfcf058d76f9b197e35"),
)
BY_NAME: Dict[str, Checkpoint] = {c.name: c for c in CHECKPOINTS}
REQUIRED_NAMES: Tuple[str, ...] = tuple(c.name for c in CHECKPOINTS if c.required)
ALL_NAMES: Tuple[str, ...] = tuple(c.name for c in CHECKPOINTS)


@dataclass(frozen=True)
class Location:
    """Where a checkpoint was found and which search rule found it."""

    path: Path
    source: str  # e.g. "--models-dir", "VOXMITH_TORTOISE_MODELS", "workspace", "Hugging Face cache"


# -- where to look ----------------------------------------------------------------------------


def search_dirs(models_dir: Optional[os.PathLike] = None,
                workspace_models: Optional[os.PathLike] = None) -> List[Tuple[Path, str]]:
    """The folders searched for checkpoints, most specific first, as (folder, label).

    `workspace_models` is the workspace's `models/` folder; TorToiSe uses its `tortoise/`.
    """
    candidates: List[Tuple[Optional[str | os.PathLike], str]] = [
        (models_dir, "--models-dir"),
        (os.environ.get("VOXMITH_TORTOISE_MODELS"), "VOXMITH_TORTOISE_MODELS"),
        (os.environ.get("TORTOISE_MODELS_DIR"), "TORTOISE_MODELS_DIR"),
        (Path(workspace_models) / "tortoise" if workspace_models else None, "workspace"),
        (Path.home() / ".cache" / "tortoise" / "models", "TorToiSe cache"),
        (hf_hub_cache(), "Hugging Face cache"),
    ]
    return search_folders(candidates)




def download_dir(models_dir: Optional[os.PathLike] = None,
                 workspace_models: Optional[os.PathLike] = None) -> Path:
    """Where new downloads go: the explicit folder, the env variables, the workspace, or the
    official default cache folder (in that order)."""
    for folder in (models_dir, os.environ.get("VOXMITH_TORTOISE_MODELS"),
                   os.environ.get("TORTOISE_MODELS_DIR")):
        if folder:
            return Path(folder).expanduser()
    if workspace_models:
        return Path(workspace_models) / "tortoise"
    return Path.home() / ".cache" / "tortoise" / "models"


# -- finding files ------------------------------------------------------------------------------


def find_checkpoint(name: str, models_dir: Optional[os.PathLike] = None,
                    workspace_models: Optional[os.PathLike] = None) -> Optional[Location]:
    """The first copy of `name` in the search folders, or None."""
    _check_names([name])
    for folder, label in search_dirs(models_dir, workspace_models):
        path = _find_in(folder, name)
        if path is not None:
            return Location(path, label)
    return None


def _find_in(folder: Path, name: str) -> Optional[Path]:
    flat = folder / name
    if flat.is_file():
        return flat
    entry = BY_NAME[name]
    if entry.source is None:
        return _find_in_hf_layout(folder / HF_CACHE_FOLDER, name, _ref_commit(folder / HF_CACHE_FOLDER, revision()))
    repo, pinned, path = entry.source
    return _find_in_hf_layout(folder / ("models--" + repo.replace("/", "--")), path, pinned)


def _find_in_hf_layout(repo_cache: Path, path: str, preferred: Optional[str]) -> Optional[Path]:
    """`<repo_cache>/snapshots/<rev>/<path>`: the snapshot named `preferred` first, then the
    newest. Snapshot entries are symlinks into blobs/; a dangling one (a half-finished download)
    does not count."""
    snapshots = repo_cache / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()),
                        key=lambda p: (p.name != preferred, -_mtime(p)))
    for snapshot in candidates:
        if (snapshot / path).is_file():
            return snapshot / path
    return None


def _ref_commit(repo_cache: Path, ref: str) -> Optional[str]:
    try:
        return (repo_cache / "refs" / ref).read_text().strip()
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def find_checkpoints(names: Iterable[str] = ALL_NAMES, models_dir: Optional[os.PathLike] = None,
                     workspace_models: Optional[os.PathLike] = None) -> Dict[str, Optional[Location]]:
    return {name: find_checkpoint(name, models_dir, workspace_models) for name in names}


def missing_checkpoints(names: Iterable[str] = REQUIRED_NAMES, models_dir: Optional[os.PathLike] = None,
                        workspace_models: Optional[os.PathLike] = None) -> List[str]:
    """The names (in order) that are in none of the search folders."""
    return [name for name, where in find_checkpoints(names, models_dir, workspace_models).items()
            if where is None]


# -- downloading --------------------------------------------------------------------------------


def revision() -> str:
    return os.environ.get("VOXMITH_TORTOISE_REVISION") or DEFAULT_REVISION


def default_base_url(rev: Optional[str] = None) -> str:
    """The URL of the folder holding the files: $VOXMITH_TORTOISE_BASE_URL, else the Hugging Face
    resolve URL of `Manmay/tortoise-tts` at `rev` ($HF_ENDPOINT is honoured for hub mirrors)."""
    override = os.environ.get("VOXMITH_TORTOISE_BASE_URL")
    if override:
        return override.rstrip("/")
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return f"{endpoint}/{REPO_ID}/resolve/{rev or revision()}"


def checkpoint_url(name: str, base: Optional[str] = None) -> str:
    """`<base>/<name>` for an explicit base or $VOXMITH_TORTOISE_BASE_URL (mirrors hold every file
    flat); otherwise the file's own repository URL."""
    _check_names([name])
    base = base or os.environ.get("VOXMITH_TORTOISE_BASE_URL")
    entry = BY_NAME[name]
    if base is None and entry.source is not None:
        repo, pinned, path = entry.source
        endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        return f"{endpoint}/{repo}/resolve/{pinned}/{path}"
    return f"{(base or default_base_url()).rstrip('/')}/{name}"


def estimated_bytes(names: Iterable[str]) -> int:
    return sum(BY_NAME[name].approx_bytes for name in names)


def download_checkpoints(names: Sequence[str], models_dir: os.PathLike, base_url: Optional[str] = None,
                         progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
    """Download `names` into `models_dir` (flat), resuming partial files; return name -> path.

    Checks up front that the disk can hold the estimated total, then fetches one file at a time;
    each is verified (size, and sha256 when the server declares it) before it appears.
    """
    _check_names(names)
    folder = Path(models_dir).expanduser()
    _make_folder(folder)
    _check_room_for(names, folder)
    paths = {}
    for name in names:
        url = checkpoint_url(name, base_url)
        paths[name] = download_file(url, folder / name, expected_sha256=BY_NAME[name].sha256, progress=progress,
                                    stage=f"downloading {name}", headers=_auth_headers(url),
                                    offline_hint=offline_hint(folder, BY_NAME[name].repo_id))
    return paths


def ensure_checkpoints(names: Sequence[str] = REQUIRED_NAMES, models_dir: Optional[os.PathLike] = None,
                       workspace_models: Optional[os.PathLike] = None, download: bool = True,
                       progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
    """name -> path for every name, downloading the missing ones (or, with download=False,
    raising an error that says how to get them)."""
    found = find_checkpoints(names, models_dir, workspace_models)
    missing = [name for name, where in found.items() if where is None]
    paths = {name: where.path for name, where in found.items() if where is not None}
    if missing and not download:
        raise VoxmithError(f"TorToiSe checkpoint(s) missing: {', '.join(missing)} "
                           f"(~{size_text(estimated_bytes(missing))}). Run `voxmith models download "
                           f"tortoise`, or put the files in "
                           f"{download_dir(models_dir, workspace_models)}.")
    if missing:
        paths.update(download_checkpoints(missing, download_dir(models_dir, workspace_models),
                                          progress=progress))
    return {name: paths[name] for name in names}


def offline_hint(folder: Path, repo_id: str = REPO_ID) -> str:
    return (f"download the files elsewhere (from https://huggingface.co/{repo_id}) and put them in "
            f"{folder}, or set VOXMITH_TORTOISE_MODELS to the folder that holds them")


def _auth_headers(base: str) -> Dict[str, str]:
    """A Hugging Face token, if the user has one, for the hub only (requests drops it on the
    redirect to the CDN host)."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    if token and base.startswith(endpoint + "/"):
        return {"Authorization": f"Bearer {token}"}
    return {}


def _check_names(names: Iterable[str]) -> None:
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise VoxmithError(f"Unknown TorToiSe checkpoint(s): {', '.join(unknown)}. Known files: "
                           f"{', '.join(ALL_NAMES)}.")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VoxmithError(f"Cannot create the models folder {folder}: {err.strerror or err}. "
                           "Choose another with --models-dir or VOXMITH_TORTOISE_MODELS.") from None


def _check_room_for(names: Sequence[str], folder: Path) -> None:
    """Refuse early when the estimate clearly does not fit (partial .part files count as done)."""
    needed = sum(max(0, BY_NAME[n].approx_bytes - _size_or_zero(folder / (n + ".part"))) for n in names)
    free = free_bytes(folder)
    if free is not None and needed > free:
        raise VoxmithError(f"Not enough disk space in {folder}: the TorToiSe files need about "
                           f"{size_text(needed)} but only {size_text(free)} is free. Free some "
                           "space or choose another folder with --models-dir.")


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
