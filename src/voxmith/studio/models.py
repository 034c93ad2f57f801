"""The engines' model files: what each needs, where it is on this machine, and fetching what is missing.

Each engine declares its files (`Engine.model_files`) and how to download them; this module asks
every installed engine through the registry, so the shells (`voxmith models`, the web UI's
Settings tab) list and download models without knowing any engine's files or folders.

Not here: the downloading itself (`voxmith.download`, called by the engines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from voxmith.engines import ModelFile, available_engines, engine_class
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback


@dataclass(frozen=True)
class EngineModels:
    """One engine's model files on this machine, or why the engine cannot say (not installed)."""

    engine: str
    source: str  # where its downloadable files come from, in words
    files: Tuple[ModelFile, ...] = ()
    error: str = ""  # the engine cannot be loaded (a missing dependency)

    @property
    def missing_required(self) -> List[ModelFile]:
        return [f for f in self.files if f.required and f.path is None]

    @property
    def downloadable(self) -> bool:
        return any(f.downloadable for f in self.files)


@dataclass(frozen=True)
class DownloadPlan:
    """What `download_models` will fetch for one engine, and where it goes."""

    engine: str
    present: Tuple[ModelFile, ...]
    missing: Tuple[ModelFile, ...]
    target: Path

    @property
    def approx_bytes(self) -> int:
        return sum(f.approx_bytes for f in self.missing)


def engine_models(engine: str, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> EngineModels:
    """`engine`'s files and where each is; an engine that cannot be loaded reports why instead."""
    try:
        cls = engine_class(engine)
    except VoxmithError as err:
        return EngineModels(engine, "", error=str(err))
    return EngineModels(engine, cls.models_source, tuple(cls.model_files(workspace_models, _path(models_dir))))


def all_models(workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> List[EngineModels]:
    """Every installed engine's files (engines without files of their own are left out)."""
    found = [engine_models(name, workspace_models, models_dir) for name in available_engines()]
    return [m for m in found if m.files or m.error]


def plan_download(engine: str, workspace_models: Optional[Path], models_dir: Optional[Path] = None,
                  only: Sequence[str] = (), everything: bool = False, version: Optional[str] = None) -> DownloadPlan:
    """The files to fetch for `engine`: `only` these names, or those model `version` needs, or the
    required ones (`everything`: the optional ones too), leaving out those already present
    somewhere the engine looks."""
    if sum(map(bool, (only, everything, version))) > 1:
        raise VoxmithError("Ask for some files by name, a model version or all files, only one of them.")
    models = engine_models(engine, workspace_models, models_dir)
    if models.error:
        raise VoxmithError(models.error)
    if version:
        cls = engine_class(engine)
        if version not in cls.model_versions:
            choices = f"choose {', '.join(cls.model_versions)}" if cls.model_versions else "it has one set of files"
            raise VoxmithError(f"The {engine} engine has no model version '{version}': {choices}.")
        only = cls.model_version_files(version)
    if not models.downloadable:
        where = f": its files come from {models.source}" if models.source else ""
        raise VoxmithError(f"The {engine} engine has nothing to download{where}.")
    by_name = {f.name: f for f in models.files if f.downloadable}
    unknown = [name for name in only if name not in by_name]
    if unknown:
        raise VoxmithError(f"Unknown {engine} file(s) {', '.join(unknown)}; choose from {', '.join(by_name)}.")
    if only:
        wanted = [by_name[name] for name in dict.fromkeys(only)]  # keep order, drop repeats
    else:
        wanted = [f for f in by_name.values() if f.required or everything]
    cls = engine_class(engine)
    return DownloadPlan(engine, tuple(f for f in wanted if f.path is not None),
                        tuple(f for f in wanted if f.path is None),
                        cls.model_download_dir(workspace_models, _path(models_dir)))


def download(plan: DownloadPlan, workspace_models: Optional[Path], models_dir: Optional[Path] = None,
             progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
    """Fetch `plan`'s missing files (resuming partial ones); returns name -> path."""
    if not plan.missing:
        return {}
    return engine_class(plan.engine).download_models([f.name for f in plan.missing], workspace_models,
                                                     _path(models_dir), progress=progress)


def _path(folder: Union[str, Path, None]) -> Optional[Path]:
    return Path(folder).expanduser() if folder else None


__all__ = ["DownloadPlan", "EngineModels", "all_models", "download", "engine_models", "plan_download"]
