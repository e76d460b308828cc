"""The layering of CONTRIBUTING.md: a module never imports a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

import cps_middleware

PACKAGE = Path(cps_middleware.__file__).parent

LAYERS = {
    "_files": 0,
    "errors": 0,
    "messages": 0,
    "cards": 1,
    "pcsc": 2,
    "pkcs11": 2,
    "validation": 2,
    "selection": 3,
    "card": 3,
    "discovery": 3,
    "tls": 4,
    "psc": 4,
    "diagnostics": 5,
    "browser": 5,
    "testing": 6,
    "cli": 6,
}
# Same-layer siblings that must stay independent of each other.
FORBIDDEN_PAIRS = {("pcsc", "pkcs11"), ("pkcs11", "pcsc"), ("tls", "psc")}


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "cps_middleware" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        room = rel.parts[0].removesuffix(".py")
        if room not in LAYERS:
            continue
        for name in _imports(path):
            other = _room(name)
            if other is None or other not in LAYERS or other == room:
                continue
            if LAYERS[other] > LAYERS[room] or (room, other) in FORBIDDEN_PAIRS:
                violations.append(f"{rel} imports {name}")
    assert violations == []


def test_every_room_is_known() -> None:
    rooms = {
        p.name.removesuffix(".py")
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or p.is_dir()) and not p.name.startswith("_")
        and p.name != "__pycache__"
    }
    assert rooms <= set(LAYERS), rooms - set(LAYERS)
