"""The import contract: the embeddable runtime imports nothing from the trainer, the CLI, torch, typer or rich.

    python scripts/check_imports.py      # exit 1 and one line per offending import

Static (every ``import`` statement in ``runtime/``, lazy ones inside functions
included), so a dependency that only some code path pulls in is caught too;
tests/runtime/test_imports.py checks the same at run time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "runtime": ("mirtag.trainer", "mirtag.cli", "torch", "typer", "rich", "librosa", "tensorflow"),
}
"""Folder -> module prefixes it must not import."""


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file (relative imports resolved against its package)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = ["mirtag", *rel.parts[:-1]]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
    return out


def violations() -> list[str]:
    found = []
    for folder, banned in FORBIDDEN.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module in imported_modules(path):
                if any(module == b or module.startswith(b + ".") for b in banned):
                    found.append(f"{path.relative_to(ROOT)}:{line}: imports {module} ({folder}/ must not)")
    return found


def main() -> int:
    found = violations()
    for v in found:
        print(v)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
