"""Architecture rules that import-linter (run by `make test`, see pyproject.toml) cannot state:
no module uses another module's private names, and engine packages import their own modules at the
top (lazy imports only at the registry boundary, the package `__init__`)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import voxmith

SOURCE = Path(voxmith.__file__).resolve().parent


def modules() -> Iterator[Tuple[str, Path, ast.Module]]:
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module name an ImportFrom refers to."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (SOURCE.parent / rel).with_suffix(".py").is_file() or (SOURCE.parent / rel / "__init__.py").is_file()


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(module: str, path: Path, tree: ast.Module) -> List[str]:
    found = []
    aliases = {}  # local name -> voxmith module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(module, node, path.name == "__init__.py")
            if not source.startswith("voxmith") or source == module:
                continue
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{path.name}:{node.lineno} imports {source}.{alias.name}")
                elif is_module(f"{source}.{alias.name}"):
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("voxmith") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and private(node.attr):
            target = aliases.get(node.value.id)
            if target is not None and target != module:
                found.append(f"{path.name}:{node.lineno} uses {target}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    problems = [p for name, path, tree in modules() for p in private_uses(name, path, tree)]
    assert not problems, "private names used across modules:\n" + "\n".join(problems)


def test_the_private_name_check_sees_both_forms(tmp_path):
    tree = ast.parse("from voxmith.engines.piper_vc import conversion\n"
                     "from voxmith.engines.piper_vc.conversion import _hidden\n"
                     "x = conversion._other(1)\n")
    found = private_uses("voxmith.engines.piper_vc.postnet", tmp_path / "postnet.py", tree)
    assert len(found) == 2 and "conversion._hidden" in found[0] and "conversion._other" in found[1]


def test_engine_packages_import_their_modules_at_the_top():
    """An engine's modules are imported when the registry loads the engine; imports inside
    functions would hide the engine's real dependencies (and its import cycles)."""
    lazy = []
    for name, path, tree in modules():
        if not name.startswith("voxmith.engines.") or path.name == "__init__.py":
            continue
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("voxmith")):
                        lazy.append(f"{name}:{node.lineno} from {'.' * node.level}{node.module or ''}")
    assert not lazy, "imports inside functions:\n" + "\n".join(lazy)
