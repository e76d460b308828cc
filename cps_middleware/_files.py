"""Writing a file so that a reader sees the old content or the new one, never a part.

Layer 0 (stdlib only): the CRL cache, the browser manifests, the p11-kit module
file and the test-key cache all write through :func:`write_atomically`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file of the same folder and a
    rename. ``mode``: the file's permissions (default: the temporary file's 0600).
    The temporary file never outlives a failure; concurrent writers do not clash."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
