"""The official GPT-SoVITS pretrained files: which a version needs, where they are, and fetching them.

The files are those of the Hugging Face repository `lj1995/GPT-SoVITS`, which the official code
keeps under `GPT_SoVITS/pretrained_models/` with the same relative paths
(`GPT_SoVITS/configs/tts_infer.yaml`, `config.py`):

| version | GPT (t2s) | SoVITS | also |
|---|---|---|---|
| v2 (default) | gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt | gsv-v2final-pretrained/s2G2333k.pth | |
| v2Pro | s1v3.ckpt | v2Pro/s2Gv2Pro.pth | sv/pretrained_eres2netv2w24s4ep4.ckpt |
| v2ProPlus | s1v3.ckpt | v2Pro/s2Gv2ProPlus.pth | sv/pretrained_eres2netv2w24s4ep4.ckpt |

and for every version `chinese-hubert-base/` (config.json + pytorch_model.bin). Chinese text needs
`chinese-roberta-wwm-ext-large/` (config.json, pytorch_model.bin, tokenizer.json: its BERT
features) and the G2PW model (polyphones; `G2PWModel.zip` from the Hugging Face repository
`XXXXRT/GPT-SoVITS-Pretrained`, which the official installer fetches, unpacked into `G2PWModel/`;
an existing install's `GPT_SoVITS/text/G2PWModel/` is found too); these are fetched by a plain
`models download gpt-sovits` when the Chinese front end is installed (`voxmith[zh]`), else only by
name or `--all`. Optional: NLTK's part-of-speech tagger for English
homographs (pos_tags.py), from NLTK's own data server, unpacked into `nltk_data/`.

Before downloading anything, these folders are searched, in order (each holds the files under
their repository paths, e.g. `<dir>/v2Pro/s2Gv2ProPlus.pth`):
1. an explicit folder (`--models-dir`; a GPT-SoVITS checkout's root works too),
2. $VOXMITH_GPT_SOVITS_MODELS,
3. the workspace's `models/gpt-sovits/`,
4. existing GPT-SoVITS installs: $GPT_SOVITS_HOME, ~/GPT-SoVITS* (their `GPT_SoVITS/pretrained_models/`),
5. the Hugging Face hub cache (`models--lj1995--GPT-SoVITS/snapshots/<rev>/`).
New downloads go to the first of 1-3 that applies. The source is `$VOXMITH_GPT_SOVITS_BASE_URL/<path>`
when set (a mirror, or a test server), else the hub (`$HF_ENDPOINT` honoured, `$HF_TOKEN` sent).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple
from urllib.parse import quote

from voxmith.download import DownloadError, download_file, free_bytes, hf_hub_cache, search_folders, size_text
from voxmith.engines.gpt_sovits.chinese import chinese_available
from voxmith.engines.gpt_sovits.pos_tags import find_tagger_folder
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback

REPO_ID = "lj1995/GPT-SoVITS"
DEFAULT_ENDPOINT = "https://huggingface.co"
HF_CACHE_FOLDER = "models--" + REPO_ID.replace("/", "--")
VERSIONS = ("v2", "v2Pro", "v2ProPlus")
DEFAULT_VERSION = "v2"
NLTK_TAGGER = "nltk_data/taggers/averaged_perceptron_tagger_eng.zip"
PRETRAINED_DISCRIMINATOR = "gsv-v2final-pretrained/s2D2333k.pth"
# The discriminator each version's SoVITS fine-tuning starts from (official webui: the s2G path with
# s2G -> s2D); the v2Pro ones judge 7 periods instead of 5.
PRETRAINED_DISCRIMINATORS = {"v2": PRETRAINED_DISCRIMINATOR, "v2Pro": "v2Pro/s2Dv2Pro.pth",
                             "v2ProPlus": "v2Pro/s2Dv2ProPlus.pth"}
NLTK_TAGGER_URL = ("https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/taggers/"
                   "averaged_perceptron_tagger_eng.zip")
ALL = frozenset(VERSIONS)
CHINESE_BERT = "chinese-roberta-wwm-ext-large"
G2PW_ZIP = "G2PWModel.zip"
G2PW_FOLDER = "G2PWModel"
G2PW_URL = "https://huggingface.co/XXXXRT/GPT-SoVITS-Pretrained/resolve/main/G2PWModel.zip"


@dataclass(frozen=True)
class WeightFile:
    path: str  # relative path in the repository and in every models folder
    approx_bytes: int  # for estimates only
    purpose: str
    versions: FrozenSet[str]  # the versions that need it
    url: Optional[str] = None  # None: the repository's file at `path`
    default: bool = False  # fetched by a plain `models download gpt-sovits` though no version needs it
    language: str = ""  # only text in this language needs it

    @property
    def required(self) -> bool:
        """Fetched by default: what the default version needs (the others' files come with
        --version), the tagger, without which homographs are read by a rule, and a language's
        files when that language's front end is installed."""
        return DEFAULT_VERSION in self.versions or self.default or (self.language == "zh" and chinese_available())


FILES: Tuple[WeightFile, ...] = (
    WeightFile("chinese-hubert-base/config.json", 2_000, "HuBERT configuration", ALL),
    WeightFile("chinese-hubert-base/pytorch_model.bin", 190_000_000, "HuBERT (reference audio to content features)", ALL),
    WeightFile("gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", 155_000_000,
               "v2 GPT (text to semantic codes)", frozenset({"v2"})),
    WeightFile("gsv-v2final-pretrained/s2G2333k.pth", 106_000_000, "v2 SoVITS decoder (codes to 32 kHz audio)",
               frozenset({"v2"})),
    WeightFile("s1v3.ckpt", 155_000_000, "v2Pro/v2ProPlus GPT (text to semantic codes)",
               frozenset({"v2Pro", "v2ProPlus"})),
    WeightFile("v2Pro/s2Gv2Pro.pth", 160_000_000, "v2Pro SoVITS decoder", frozenset({"v2Pro"})),
    WeightFile("v2Pro/s2Gv2ProPlus.pth", 200_000_000, "v2ProPlus SoVITS decoder", frozenset({"v2ProPlus"})),
    WeightFile("sv/pretrained_eres2netv2w24s4ep4.ckpt", 108_000_000, "speaker verification (v2Pro, v2ProPlus)",
               frozenset({"v2Pro", "v2ProPlus"})),
    # Fine-tuning only: the official recipe starts SoVITS' discriminator from it; used when present
    # (an existing GPT-SoVITS install has it), else the discriminator starts from random weights.
    WeightFile(PRETRAINED_DISCRIMINATOR, 94_000_000, "v2 SoVITS discriminator (fine-tuning starts from it when present)",
               frozenset()),
    WeightFile(f"{CHINESE_BERT}/config.json", 1_000, "Chinese RoBERTa configuration", frozenset(), language="zh"),
    WeightFile(f"{CHINESE_BERT}/tokenizer.json", 270_000, "Chinese RoBERTa tokenizer", frozenset(), language="zh"),
    WeightFile(f"{CHINESE_BERT}/pytorch_model.bin", 651_000_000,
               "chinese-roberta-wwm-ext-large (BERT features of Chinese text)", frozenset(), language="zh"),
    WeightFile(PRETRAINED_DISCRIMINATORS["v2Pro"], 127_000_000,
               "v2Pro SoVITS discriminator (fine-tuning starts from it when present)", frozenset()),
    WeightFile(PRETRAINED_DISCRIMINATORS["v2ProPlus"], 127_000_000,
               "v2ProPlus SoVITS discriminator (fine-tuning starts from it when present)", frozenset()),
    WeightFile(G2PW_ZIP, 590_000_000, "G2PW (Chinese polyphones from context; pypinyin's readings without it)",
               frozenset(), url=G2PW_URL, language="zh"),
    WeightFile(NLTK_TAGGER, 3_000_000, "NLTK part-of-speech tagger (English homographs; a rule without it)",
               frozenset(), url=NLTK_TAGGER_URL, default=True),
)
BY_PATH: Dict[str, WeightFile] = {f.path: f for f in FILES}
TAGGER_FOLDER = "nltk_data/taggers/averaged_perceptron_tagger_eng"
TAGGER_WEIGHTS = "averaged_perceptron_tagger_eng.weights.json"  # unpacked last: its presence means complete


def version_files(version: str) -> Tuple[str, ...]:
    """The files `version` needs to speak."""
    if version not in VERSIONS:
        raise VoxmithError(f"Unknown GPT-SoVITS version '{version}': choose {', '.join(VERSIONS)}.")
    return tuple(f.path for f in FILES if version in f.versions)


# -- where to look ----------------------------------------------------------------------------


def search_dirs(models_dir: Optional[os.PathLike] = None,
                workspace_models: Optional[os.PathLike] = None) -> List[Tuple[Path, str]]:
    """The folders searched, most specific first, as (folder, label)."""
    candidates: List[Tuple[Optional[os.PathLike | str], str]] = [(models_dir, "--models-dir")]
    if models_dir:
        candidates.append((_pretrained_of(Path(models_dir)), "--models-dir"))
    candidates += [
        (os.environ.get("VOXMITH_GPT_SOVITS_MODELS"), "VOXMITH_GPT_SOVITS_MODELS"),
        (Path(workspace_models) / "gpt-sovits" if workspace_models else None, "workspace"),
    ]
    candidates += [(folder, "GPT-SoVITS install") for folder in official_installs()]
    return search_folders(candidates)


def _pretrained_of(root: Path) -> Path:
    return root / "GPT_SoVITS" / "pretrained_models"


def official_installs() -> List[Path]:
    """`pretrained_models/` folders of GPT-SoVITS checkouts: $GPT_SOVITS_HOME, then ~/GPT-SoVITS*."""
    roots: List[Path] = []
    if os.environ.get("GPT_SOVITS_HOME"):
        roots.append(Path(os.environ["GPT_SOVITS_HOME"]).expanduser())
    try:
        roots += sorted(p for p in Path.home().glob("GPT-SoVITS*") if p.is_dir())
    except OSError:
        pass
    return [_pretrained_of(root) for root in roots if _pretrained_of(root).is_dir()]




def download_dir(models_dir: Optional[os.PathLike] = None, workspace_models: Optional[os.PathLike] = None) -> Path:
    for folder in (models_dir, os.environ.get("VOXMITH_GPT_SOVITS_MODELS")):
        if folder:
            return Path(folder).expanduser()
    if workspace_models:
        return Path(workspace_models) / "gpt-sovits"
    return Path.home() / ".cache" / "voxmith" / "gpt-sovits"


@dataclass(frozen=True)
class Location:
    path: Path  # the file (for the tagger: its unpacked folder)
    source: str


def find_file(path: str, models_dir=None, workspace_models=None) -> Optional[Location]:
    """The first copy of the repository file `path` in the search folders, or None."""
    _check_paths([path])
    if path == G2PW_ZIP:
        return _find_g2pw(models_dir, workspace_models)
    looking_for = TAGGER_FOLDER if path == NLTK_TAGGER else path
    for folder, label in search_dirs(models_dir, workspace_models):
        candidate = folder / looking_for
        if (candidate / TAGGER_WEIGHTS).is_file() if path == NLTK_TAGGER \
                else candidate.is_file():
            return Location(candidate, label)
    if path == NLTK_TAGGER:

        found = find_tagger_folder()
        return Location(found, "NLTK data") if found else None
    hit = _find_in_hf_cache(hf_hub_cache() / HF_CACHE_FOLDER, path)
    return Location(hit, "Hugging Face cache") if hit else None


def _find_g2pw(models_dir=None, workspace_models=None) -> Optional[Location]:
    """The unpacked G2PW folder: `G2PWModel/` in a models folder, or an install's `text/G2PWModel/`."""
    for folder, label in search_dirs(models_dir, workspace_models):
        for candidate in (folder / G2PW_FOLDER, folder.parent / "text" / G2PW_FOLDER):
            if (candidate / "g2pW.onnx").is_file():
                return Location(candidate, label)
    return None


def _find_in_hf_cache(repo_cache: Path, path: str) -> Optional[Path]:
    snapshots = repo_cache / "snapshots"
    if not snapshots.is_dir():
        return None
    preferred = _read_text(repo_cache / "refs" / "main")
    for snapshot in sorted((p for p in snapshots.iterdir() if p.is_dir()),
                           key=lambda p: (p.name != preferred, -_mtime(p))):
        if (snapshot / path).is_file():
            return snapshot / path
    return None


def find_files(paths: Sequence[str] = tuple(BY_PATH), models_dir=None, workspace_models=None
               ) -> Dict[str, Optional[Location]]:
    return {path: find_file(path, models_dir, workspace_models) for path in paths}


def tagger_dirs(models_dir=None, workspace_models=None) -> List[Path]:
    """nltk_data-style roots in voxmith's models folders (for pos_tags.load_tagger)."""
    return [folder / "nltk_data" for folder, _ in search_dirs(models_dir, workspace_models)]


def require_version(version: str, models_dir=None, workspace_models=None) -> Dict[str, Path]:
    """path -> file for everything `version` needs; a clear error naming the download command
    when something is missing (the engine never downloads on its own)."""
    found = find_files(version_files(version), models_dir, workspace_models)
    missing = [path for path, where in found.items() if where is None]
    if missing:
        size = size_text(sum(BY_PATH[p].approx_bytes for p in missing))
        option = "" if version == DEFAULT_VERSION else f" --version {version}"
        raise VoxmithError(
            f"The gpt-sovits engine needs the GPT-SoVITS {version} pretrained files, and "
            f"{len(missing)} are missing ({', '.join(missing)}; ~{size}). Run `voxmith models download "
            f"gpt-sovits{option}`, or put them (with their folders, as in the official "
            f"GPT_SoVITS/pretrained_models/) in {download_dir(models_dir, workspace_models)}.")
    return {path: where.path for path, where in found.items()}


def require_chinese(models_dir=None, workspace_models=None) -> Path:
    """The folder of chinese-roberta-wwm-ext-large (its three files together); a clear error naming
    the download command when a file is missing."""
    paths = [f.path for f in FILES if f.path.startswith(CHINESE_BERT + "/")]
    found = find_files(paths, models_dir, workspace_models)
    missing = [path for path, where in found.items() if where is None]
    if missing:
        size = size_text(sum(BY_PATH[p].approx_bytes for p in missing))
        only = " ".join(f"--only {p}" for p in missing)
        raise VoxmithError(f"Chinese text needs {CHINESE_BERT} for its BERT features, and {len(missing)} of its "
                           f"files are missing (~{size}). Run `voxmith models download gpt-sovits {only}`, or put "
                           f"them in {download_dir(models_dir, workspace_models) / CHINESE_BERT}.")
    folders = {where.path.parent for where in found.values()}
    if len(folders) > 1:
        raise VoxmithError(f"The files of {CHINESE_BERT} are in different folders ({', '.join(map(str, sorted(folders)))}); "
                           "move them into one, or run `voxmith models download gpt-sovits` again.")
    return folders.pop()


def check_any_version(models_dir=None, workspace_models=None) -> None:
    """Raise `require_version`'s error for the default version unless some version is complete
    (so a voice is not enrolled, which takes a Whisper pass, only to fail at synthesis)."""
    for version in (DEFAULT_VERSION, *[v for v in VERSIONS if v != DEFAULT_VERSION]):
        if all(find_files(version_files(version), models_dir, workspace_models).values()):
            return
    require_version(DEFAULT_VERSION, models_dir, workspace_models)


# -- downloading --------------------------------------------------------------------------------


def file_url(path: str) -> str:
    entry = BY_PATH[path]
    base = os.environ.get("VOXMITH_GPT_SOVITS_BASE_URL")
    if base:
        return f"{base.rstrip('/')}/{quote(path, safe='/=')}"
    if entry.url:
        return entry.url
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return f"{endpoint}/{REPO_ID}/resolve/main/{quote(path, safe='/=')}"


def download_files(paths: Sequence[str], folder: os.PathLike,
                   progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
    """Download `paths` into `folder` (keeping their sub-folders), resuming partial files."""
    _check_paths(paths)
    folder = Path(folder).expanduser()
    _check_room(paths, folder)
    result = {}
    for path in paths:
        url = file_url(path)
        target = download_file(url, folder / path, progress=progress, stage=f"downloading {Path(path).name}",
                               headers=_auth_headers(url), offline_hint=_offline_hint(folder))
        if path == NLTK_TAGGER:  # only the tagger's three JSON files
            target = _unpack(target, folder / TAGGER_FOLDER, "The NLTK tagger download", TAGGER_WEIGHTS,
                             lambda name: name.startswith("averaged_perceptron_tagger_eng.") and name.endswith(".json"))
        elif path == G2PW_ZIP:
            target = _unpack(target, folder / G2PW_FOLDER, "The G2PW download", "g2pW.onnx",
                             lambda name: not name.startswith("."))
        result[path] = target
    return result


def _unpack(archive: Path, target: Path, what: str, marker: str, keep: Callable[[str], bool]) -> Path:
    """Unpack the files of zip `archive` whose base names `keep` accepts (from any folder inside
    it) into `target`, then delete the archive. Streamed, each file written under a temporary name
    first and `marker` last: its presence is what the finders take for a complete folder, so an
    unpack cut short is found incomplete and done again."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = sorted(zipped.infolist(), key=lambda m: Path(m.filename).name == marker)
            for member in members:
                name = Path(member.filename).name
                if member.is_dir() or not name or not keep(name):
                    continue
                tmp = target / (name + ".tmp")
                with zipped.open(member) as source, open(tmp, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                os.replace(tmp, target / name)
    except zipfile.BadZipFile:
        archive.unlink(missing_ok=True)
        raise DownloadError(f"{what} {archive.name} is not a zip archive; it was deleted. Try again.") from None
    if not (target / marker).is_file():
        raise DownloadError(f"{archive.name} does not hold {marker}.")
    archive.unlink(missing_ok=True)
    return target


def find_g2pw(models_dir=None, workspace_models=None) -> Optional[Path]:
    found = _find_g2pw(models_dir, workspace_models)
    return found.path if found else None


def _offline_hint(folder: Path) -> str:
    return (f"download the files elsewhere (from https://huggingface.co/{REPO_ID}) and put them, with "
            f"their folders, in {folder}, or set VOXMITH_GPT_SOVITS_MODELS (or GPT_SOVITS_HOME, the "
            "root of a GPT-SoVITS install) to where they are")


def _auth_headers(url: str) -> Dict[str, str]:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return {"Authorization": f"Bearer {token}"} if token and url.startswith(endpoint + "/") else {}


def _check_paths(paths: Sequence[str]) -> None:
    unknown = [p for p in paths if p not in BY_PATH]
    if unknown:
        raise VoxmithError(f"Unknown GPT-SoVITS file(s): {', '.join(unknown)}. Known files: "
                           f"{', '.join(BY_PATH)}.")


def _check_room(paths: Sequence[str], folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VoxmithError(f"Cannot create the models folder {folder}: {err.strerror or err}. "
                           "Choose another with --models-dir or VOXMITH_GPT_SOVITS_MODELS.") from None
    needed = sum(max(0, BY_PATH[p].approx_bytes - _size(folder / (p + ".part"))) for p in paths)
    free = free_bytes(folder)
    if free is not None and needed > free:
        raise VoxmithError(f"Not enough disk space in {folder}: the GPT-SoVITS files need about "
                           f"{size_text(needed)} but only {size_text(free)} is free.")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None
