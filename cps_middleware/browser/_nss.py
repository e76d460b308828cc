"""The NSS tools (``modutil``, ``certutil``) on one NSS database, and what it holds.

Registrations are read from the database's ``pkcs11.txt`` (the file NSS itself
writes and reads at start-up: no module is loaded to read it); whether a module
loads and which cards it sees comes from ``modutil -list``, which loads every
registered module the way the browser does at start-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cps_middleware.errors import BrowserSetupError, NssToolsMissing

__all__ = [
    "LoadedModule",
    "NssDb",
    "Registration",
    "SlotToken",
]

_TIMEOUT = 60.0


@dataclass(frozen=True)
class Registration:
    """A module line of ``pkcs11.txt``: its name and library (``""`` for NSS's own)."""

    name: str
    library: str

    @property
    def builtin(self) -> bool:
        return not self.library or os.path.basename(self.library).startswith(
            ("libnssckbi", "libsoftokn3", "p11-kit-trust")
        )


@dataclass(frozen=True)
class SlotToken:
    """A slot of a loaded module and the token (card) in it, if any."""

    slot: str
    token: str | None
    serial: str | None
    manufacturer: str | None


@dataclass(frozen=True)
class LoadedModule:
    """A module as ``modutil -list`` shows it after loading it."""

    name: str
    library: str
    loaded: bool
    slots: tuple[SlotToken, ...] = field(default=())


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise NssToolsMissing(f"{name} is not installed", function=name)
    return path


class NssDb:
    """One NSS database directory in ``sql:`` format (``cert9.db``, ``key4.db``, ``pkcs11.txt``)."""

    def __init__(self, directory: str | os.PathLike[str], env: Mapping[str, str] | None = None):
        self.directory = Path(directory)
        self.env = dict(os.environ if env is None else env)

    @property
    def spec(self) -> str:
        return f"sql:{self.directory}"

    @property
    def exists(self) -> bool:
        return (self.directory / "cert9.db").exists() and (self.directory / "pkcs11.txt").exists()

    def _run(self, tool: str, args: Sequence[str], *, check: bool = True) -> str:
        cmd = [_tool(tool), *args]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=self.env, timeout=_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise BrowserSetupError(
                f"{tool} did not answer within {_TIMEOUT:.0f} s on {self.directory}",
                function=tool, hint="a PKCS#11 module registered there may hang: check it",
            ) from exc
        except OSError as exc:
            raise BrowserSetupError(f"{tool} could not run: {exc}", function=tool) from exc
        if check and proc.returncode != 0:
            lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            why = lines[-1] if lines else str(proc.returncode)
            raise BrowserSetupError(
                f"{tool} {args[0]} failed on {self.directory}: {why}",
                function=tool, code=proc.returncode,
            )  # fmt: skip
        return proc.stdout

    # -- database ---------------------------------------------------------------------

    def create(self) -> None:
        """An empty database with an empty password, as Firefox and Chromium make it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._run("certutil", ["-N", "-d", self.spec, "--empty-password"])

    # -- modules ----------------------------------------------------------------------

    def registrations(self) -> list[Registration]:
        """The PKCS#11 modules this database lists (read from its pkcs11.txt)."""
        path = self.directory / "pkcs11.txt"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        out: list[Registration] = []
        library: str | None = None
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if not sep:
                continue
            if key == "library":
                library = value.strip()
            elif key == "name" and library is not None:
                out.append(Registration(value.strip(), library))
                library = None
        return out

    def add_module(self, name: str, library: str) -> None:
        """Register a PKCS#11 module under ``name`` (modutil -add)."""
        self._run("modutil", ["-dbdir", self.spec, "-add", name, "-libfile", library, "-force"])

    def delete_module(self, name: str) -> None:
        """Unregister the module named ``name`` (modutil -delete)."""
        self._run("modutil", ["-dbdir", self.spec, "-delete", name, "-force"])

    def loaded_modules(self) -> list[LoadedModule]:
        """Every registered module, loaded the way the browser loads it."""
        return _parse_list(self._run("modutil", ["-dbdir", self.spec, "-list"]))

    # -- certificates -------------------------------------------------------------------

    def nicknames(self) -> set[str]:
        """The nicknames of the certificates in this database (certutil -L)."""
        out = self._run("certutil", ["-L", "-d", self.spec])
        names: set[str] = set()
        for line in out.splitlines()[4:]:
            m = re.match(r"^(.*\S)\s+\S*,\S*,\S*\s*$", line)
            if m:
                names.add(m.group(1).strip())
        return names

    def add_certificate(self, nickname: str, der_file: Path, trust: str = ",,") -> None:
        """Import a certificate with the given NSS trust flags (no trust by default)."""
        self._run("certutil", ["-A", "-d", self.spec, "-n", nickname, "-t", trust, "-i",
                               str(der_file)])  # fmt: skip

    def delete_certificate(self, nickname: str) -> None:
        """Delete the certificate named ``nickname`` (certutil -D)."""
        self._run("certutil", ["-D", "-d", self.spec, "-n", nickname])


def _uri_field(uri: str, key: str) -> str | None:
    for part in uri.removeprefix("pkcs11:").split(";"):
        k, _, v = part.partition("=")
        if k == key:
            return urllib.parse.unquote(v)
    return None


def _parse_list(text: str) -> list[LoadedModule]:
    modules: list[LoadedModule] = []
    cur: dict[str, object] | None = None
    slots: list[SlotToken] = []
    slot_name: str | None = None
    token: str | None = None

    def flush_slot() -> None:
        nonlocal slot_name, token
        if slot_name is not None:
            slots.append(SlotToken(slot_name, token, None, None))
        slot_name, token = None, None

    def flush_module() -> None:
        nonlocal cur, slots
        flush_slot()
        if cur is not None:
            modules.append(LoadedModule(
                str(cur["name"]), str(cur.get("library", "")), bool(cur.get("loaded")),
                tuple(slots),
            ))  # fmt: skip
        cur, slots = None, []

    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^(\d+)\. (.+)$", line)
        if m and raw.startswith("  ") and not raw.startswith("\t"):
            flush_module()
            cur = {"name": m.group(2)}
            continue
        if cur is None:
            continue
        key, _, value = line.partition(": ")
        if key == "library name":
            cur["library"] = value
        elif key == "status":
            cur["loaded"] = value == "loaded"
        elif key == "slot":
            flush_slot()
            slot_name = value
        elif key == "token":
            token = value or None
        elif key == "uri" and slot_name is not None and token is not None:
            slots.append(SlotToken(slot_name, token, _uri_field(value, "serial"),
                                   _uri_field(value, "manufacturer")))  # fmt: skip
            slot_name, token = None, None
    flush_module()
    return modules
