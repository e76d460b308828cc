"""System-wide registration through p11-kit: ``<root>/etc/pkcs11/modules/<name>.module``.

Only on request (it needs root and changes every p11-kit consumer of the
machine: GnuTLS programs, p11-kit-proxy users). ``root`` lets tests and
image builders write into a throw-away tree instead of the machine's ``/etc``.
`remove` deletes the file only when it is still the one we wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

from cps_middleware._files import write_atomically

__all__ = ["MODULE_FILE", "module_file", "p11kit_remove", "p11kit_setup", "p11kit_status"]

MODULE_FILE = "cps-middleware.module"
_HEADER = (
    "# Written by cps-middleware (cps browser setup --system); "
    "`cps browser remove --system` removes it.\n"
)


def module_file(root: str | os.PathLike[str] = "/") -> Path:
    """The p11-kit module file this package writes under ``root``."""
    return Path(root) / "etc" / "pkcs11" / "modules" / MODULE_FILE


def _content(module: str) -> str:
    # critical: no -- a card middleware that fails to load must not break other consumers.
    return f"{_HEADER}module: {module}\ncritical: no\n"


def p11kit_status(root: str | os.PathLike[str] = "/") -> str | None:
    """The module our file registers, or None when there is no file of ours."""
    path = module_file(root)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    if not text.startswith(_HEADER):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "module":
            return value.strip()
    return None


def p11kit_setup(module: str, root: str | os.PathLike[str] = "/") -> bool:
    """Write the file; False when it already registers ``module`` (nothing done)."""
    if p11kit_status(root) == module:
        return False
    path = module_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, _content(module).encode("utf-8"), mode=0o644)
    return True


def p11kit_remove(root: str | os.PathLike[str] = "/") -> bool:
    """Delete our file; False when there was none (a file someone else wrote stays)."""
    if p11kit_status(root) is None:
        return False
    module_file(root).unlink()
    return True
