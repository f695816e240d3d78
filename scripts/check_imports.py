"""Check that deepwell's imports follow its layering (docs/architecture.md, "Import rules").

Usage: ``python scripts/check_imports.py [PACKAGE_DIR]`` (default: ``src/deepwell``).

Every import in every module counts: at the top, inside functions, and under
``if TYPE_CHECKING:``. Relative imports are resolved against the importing module.
Prints one line per violation (file, line, imported module, the rule broken) and exits 1
if there is any; standard library only.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOWER = (
    "chat/",
    "engine/",
    "accounts/",
    "cache/",
    "billing/",
    "limits/",
    "models/",
    "metrics/",
    "store/",
    "vocabulary.py",
    "errors.py",
    "settings.py",
    "files.py",
    "logs.py",
)
UPPER = ("deepwell.core", "deepwell.dialects", "deepwell.http", "deepwell.app", "deepwell.cli")


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules under ``forbidden`` may not be imported by files under ``scope`` (paths in
    the package, a trailing ``/`` naming a folder; empty: every file), except by files
    under ``allowed``."""

    text: str
    forbidden: tuple[str, ...]
    scope: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    def broken_by(self, path: str, module: str) -> bool:
        return (
            any(module == name or module.startswith(name + ".") for name in self.forbidden)
            and (not self.scope or _under(path, self.scope))
            and not _under(path, self.allowed)
        )


RULES = (
    Rule(
        "fastapi and starlette only in http/ and app.py",
        forbidden=("fastapi", "starlette"),
        allowed=("http/", "app.py"),
    ),
    Rule(
        "llama_cpp only in engine/llamacpp/",
        forbidden=("llama_cpp",),
        allowed=("engine/llamacpp/",),
    ),
    Rule(
        "httpx only in engine/remote/ and http/ (models/ fetches through huggingface_hub)",
        forbidden=("httpx",),
        allowed=("engine/remote/", "http/"),
    ),
    Rule(
        "llguidance only in engine/constraints.py and engine/llamacpp/",
        forbidden=("llguidance",),
        allowed=("engine/constraints.py", "engine/llamacpp/"),
    ),
    Rule(
        "the lower layers (chat, engine, accounts, cache, billing, models, metrics, store, "
        "vocabulary, errors, settings, files, logs) import nothing from core, dialects, http, "
        "app or cli",
        forbidden=UPPER,
        scope=LOWER,
    ),
    Rule(
        "dialects/ imports no engine type (the vocabulary has them)",
        forbidden=("deepwell.engine",),
        scope=("dialects/",),
    ),
    Rule(
        "vocabulary.py imports nothing from deepwell",
        forbidden=("deepwell",),
        scope=("vocabulary.py",),
    ),
)


@dataclass(frozen=True, slots=True)
class Violation:
    file: Path
    line: int
    module: str
    rule: Rule

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.module}: {self.rule.text}"


def _under(path: str, places: tuple[str, ...]) -> bool:
    return any(
        path == place or (place.endswith("/") and path.startswith(place)) for place in places
    )


def module_name(package: Path, file: Path) -> str:
    """The dotted name of ``file`` in ``package``: ``deepwell/chat/__init__.py`` is
    ``deepwell.chat``."""
    parts = [package.name, *file.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Every import in ``tree``: its line and the modules it may name, relative imports
    resolved from ``module``. ``from m import n`` may name ``m`` or, if ``n`` is a
    module, ``m.n``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, (alias.name,)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                yield node.lineno, (base, f"{base}.{alias.name}")


def check(package: Path) -> list[Violation]:
    """The violations of ``RULES`` in the package at ``package`` (a folder named deepwell)."""
    found: set[Violation] = set()
    for file in sorted(package.rglob("*.py")):
        path = file.relative_to(package).as_posix()
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        name = module_name(package, file)
        for line, modules in imported(tree, name, file.name == "__init__.py"):
            for rule in RULES:
                broken = next((m for m in modules if rule.broken_by(path, m)), None)
                if broken is not None:
                    found.add(Violation(file, line, broken, rule))
    return sorted(found, key=lambda v: (str(v.file), v.line, v.module, v.rule.text))


def main(argv: list[str]) -> int:
    package = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent.parent / "src" / "deepwell"
    violations = check(package)
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} import(s) break deepwell's layering (docs/architecture.md)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
