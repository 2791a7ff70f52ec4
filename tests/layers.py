"""The layers contract: every import of the project's own code points down, and no two apps
import each other, directly or around a circle.

    gpubroker  →  marketplace, health, broker  →  providers  →  resilience

Every import statement counts, at any depth (inside a function or an `if TYPE_CHECKING:`
too), because an import that only dodges a cycle is still the cycle. Migrations are left out:
they name other apps' migrations, not their code. Run `python tests/layers.py` (or
`make check-layers`); it prints each violation and exits 1, or prints a summary and exits 0.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Rank of each app: an app may import only apps of a higher number (or its own).
LAYERS = {
    "gpubroker": 0,
    "marketplace": 1,
    "health": 1,
    "broker": 1,
    "providers": 2,
    "resilience": 3,
}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the checked folder
    line: int
    source: str  # the importing app
    target: str  # the imported app

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def imports(root: Path = ROOT) -> Iterator[Import]:
    """Every import between two different apps of the project."""
    for app in LAYERS:
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" in path.relative_to(root).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                for target in _targets(node):
                    if target in LAYERS and target != app:
                        yield Import(str(path.relative_to(root)), node.lineno, app, target)


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split(".")[0]]
    return []


def upward(found: list[Import]) -> list[Import]:
    return [i for i in found if LAYERS[i.target] < LAYERS[i.source]]


def cycles(found: list[Import]) -> list[list[str]]:
    """Circles of apps (each a list of app names, first repeated last)."""
    edges: dict[str, set[str]] = {}
    for i in found:
        edges.setdefault(i.source, set()).add(i.target)
    circles, seen = [], set()
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            app, trail = stack.pop()
            for nxt in sorted(edges.get(app, ())):
                if nxt == start:
                    circle = [*trail, start]
                    if frozenset(circle) not in seen:
                        seen.add(frozenset(circle))
                        circles.append(circle)
                elif nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
    return circles


def check(root: Path = ROOT) -> list[str]:
    """The violations, in words; empty when the contract holds."""
    found = list(imports(root))
    problems = [
        f"{i}: up from layer {LAYERS[i.source]} to {LAYERS[i.target]}" for i in upward(found)
    ]
    problems += ["cycle between apps: " + " → ".join(circle) for circle in cycles(found)]
    return problems


def main() -> int:
    problems = check()
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"layers: {len(list(imports()))} imports between apps, all pointing down, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
