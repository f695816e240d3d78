"""scripts/check_imports.py: the real tree keeps the import rules; a broken one is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_imports.py"

# A fake package: each file's source, and the imports of it that break a rule.
FAKE = {
    "__init__.py": "",
    "vocabulary.py": "from deepwell.errors import InvalidRequest\n",
    "errors.py": "class InvalidRequest(Exception): ...\n",
    "chat/__init__.py": "",
    "chat/grammar.py": "import json\n\nfrom ..core import types\nfrom . import markers\n",
    "chat/markers.py": "",
    "engine/__init__.py": "",
    "engine/loader.py": (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import llama_cpp\n"
    ),
    "engine/constraints.py": "import llguidance\n",
    "engine/llamacpp/__init__.py": "",
    "engine/llamacpp/model.py": "import llama_cpp\nimport llguidance\n",
    "dialects/__init__.py": "from . import openai\n",
    "dialects/openai.py": "from deepwell.engine.base import TokenLogprob\n",
    "core/__init__.py": "",
    "core/service.py": "def handler() -> None:\n    from fastapi import Request, Response\n",
    "core/constraints.py": "import llguidance.llamacpp\n",
    "accounts/__init__.py": "from deepwell import core\n",
    "http/__init__.py": "import fastapi, starlette\n",
    "app.py": "from fastapi import FastAPI\n",
}
BROKEN = {
    ("vocabulary.py", 1, "deepwell.errors", "vocabulary.py imports nothing from deepwell"),
    ("chat/grammar.py", 3, "deepwell.core", "import nothing from core"),
    ("engine/loader.py", 4, "llama_cpp", "llama_cpp only in engine/llamacpp/"),
    ("dialects/openai.py", 1, "deepwell.engine.base", "dialects/ imports no engine type"),
    ("core/service.py", 2, "fastapi", "fastapi and starlette only in http/ and app.py"),
    ("core/constraints.py", 1, "llguidance.llamacpp", "llguidance only in engine/"),
    ("accounts/__init__.py", 1, "deepwell.core", "import nothing from core"),
}


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_the_real_tree_keeps_the_rules() -> None:
    result = run_check()
    assert result.stdout == ""
    assert result.returncode == 0


def test_each_broken_import_is_named_with_its_file_line_module_and_rule(tmp_path: Path) -> None:
    package = tmp_path / "deepwell"
    for name, source in FAKE.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)

    result = run_check(str(package))

    *lines, summary = result.stdout.splitlines()
    assert result.returncode == 1
    assert summary.startswith(f"{len(BROKEN)} import(s) break")
    assert len(lines) == len(BROKEN)
    for file, line, module, rule in BROKEN:
        expected = f"{package / file}:{line}: imports {module}: "
        assert any(out.startswith(expected) and rule in out for out in lines), expected
