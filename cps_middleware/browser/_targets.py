"""Where each browser keeps the NSS database it loads PKCS#11 modules from, and who uses it.

* Chromium (and Chrome) on Linux: one NSS "shared database" per user,
  ``~/.pki/nssdb`` (``sql:`` format), whatever the ``--user-data-dir``.
* Firefox: one NSS database per profile, in the profile directory; the
  profiles are listed in ``profiles.ini``, under ``~/.config/mozilla/firefox``
  since Firefox 147 (Debian's firefox-esr 153 too), ``~/.mozilla/firefox`` before.

A browser running on a database keeps it open and rewrites ``pkcs11.txt`` on
its own: such a database is never edited (`users` finds the processes that
hold it open, and Firefox's profile lock).
"""

from __future__ import annotations

import configparser
import enum
import errno
import fcntl
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Browser",
    "DbUser",
    "Target",
    "chromium_target",
    "find_targets",
    "firefox_profiles",
    "users",
]


class Browser(enum.StrEnum):
    """The browsers whose NSS databases this package manages."""
    CHROMIUM = "chromium"
    FIREFOX = "firefox"


@dataclass(frozen=True)
class Target:
    """One NSS database a browser reads: Chromium's shared one or a Firefox profile."""

    browser: Browser
    name: str
    directory: Path

    def to_dict(self) -> dict[str, str]:
        return {"browser": self.browser.value, "name": self.name, "directory": str(self.directory)}


@dataclass(frozen=True)
class DbUser:
    """A process that has the database (or the profile lock) open."""

    pid: int
    command: str


def _home(home: str | os.PathLike[str] | None) -> Path:
    return Path(home) if home is not None else Path.home()


def chromium_target(home: str | os.PathLike[str] | None = None) -> Target:
    """Chromium's shared NSS database of ``home`` (default: $HOME): ~/.pki/nssdb."""
    return Target(Browser.CHROMIUM, "nssdb", _home(home) / ".pki" / "nssdb")


def _firefox_bases(home: str | os.PathLike[str] | None) -> list[Path]:
    # Firefox 147+ keeps its profiles under the XDG config folder; older ones
    # (and profiles migrated from them) under ~/.mozilla.
    xdg = os.environ.get("XDG_CONFIG_HOME") if home is None else None
    config = Path(xdg) if xdg else _home(home) / ".config"
    return [config / "mozilla" / "firefox", _home(home) / ".mozilla" / "firefox"]


def firefox_profiles(home: str | os.PathLike[str] | None = None) -> list[Target]:
    """The profiles of every ``profiles.ini`` (``$XDG_CONFIG_HOME/mozilla/firefox``,
    ``~/.mozilla/firefox``; Firefox ESR shares them)."""
    out: list[Target] = []
    seen: set[Path] = set()
    for base in _firefox_bases(home):
        for target in _profiles_of(base):
            key = target.directory.resolve()
            if key not in seen:
                seen.add(key)
                out.append(target)
    return out


def _profiles_of(base: Path) -> list[Target]:
    ini = base / "profiles.ini"
    if not ini.is_file():
        return []
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return []
    out: list[Target] = []
    for section in parser.sections():
        if not section.startswith("Profile") or not parser.has_option(section, "Path"):
            continue
        raw = parser.get(section, "Path")
        relative = parser.get(section, "IsRelative", fallback="1").strip() == "1"
        path = base / raw if relative else Path(raw)
        name = parser.get(section, "Name", fallback=path.name)
        out.append(Target(Browser.FIREFOX, name, path))
    return out


def find_targets(
    home: str | os.PathLike[str] | None = None,
    *,
    chromium: bool = True,
    firefox: bool = True,
    profiles: Sequence[str | os.PathLike[str]] = (),
) -> list[Target]:
    """The databases to work on: Chromium's, every Firefox profile, and ``profiles`` given.

    A profile given explicitly is taken as a Firefox profile directory.
    """
    out: list[Target] = []
    if chromium:
        out.append(chromium_target(home))
    if profiles:
        out += [Target(Browser.FIREFOX, Path(p).name, Path(p)) for p in profiles]
    elif firefox:
        out += firefox_profiles(home)
    return out


# -- who uses a database ------------------------------------------------------------------

_DB_FILES = ("cert9.db", "key4.db")


def _pids() -> Iterable[int]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return (int(n) for n in names if n.isdigit())


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _holders(files: set[str]) -> list[DbUser]:
    found: list[DbUser] = []
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in files:
                found.append(DbUser(pid, _command(pid)))
                break
    return found


def _firefox_lock(profile: Path) -> DbUser | None:
    """Firefox's own profile lock: the ``lock`` symlink (``IP:+PID``) and ``.parentlock``."""
    link = profile / "lock"
    try:
        target = os.readlink(link)
    except OSError:
        target = ""
    pid_text = target.rpartition("+")[2]
    if pid_text.isdigit():
        pid = int(pid_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            return DbUser(pid, "firefox")
        else:
            return DbUser(pid, _command(pid))
    parent = profile / ".parentlock"
    if parent.exists():
        try:
            fd = os.open(parent, os.O_RDWR)
        except OSError:
            return None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return DbUser(0, "firefox")
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return None


_CHROMIUM_NAMES = frozenset({"chromium", "chrome", "chromium-browse", "google-chrome"})


def _chromium_processes(home: Path) -> list[DbUser]:
    """Chromium processes of that home: NSS is opened lazily (at the first TLS or
    certificate operation), so an open database file alone misses an idle browser."""
    found: list[DbUser] = []
    want = str(home.resolve())
    for pid in _pids():
        comm = _command(pid)
        if comm not in _CHROMIUM_NAMES:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        homes = [e[5:].decode(errors="replace") for e in environ if e.startswith(b"HOME=")]
        if homes and os.path.realpath(homes[0]) == want:
            found.append(DbUser(pid, comm))
    return found


def users(target: Target) -> list[DbUser]:
    """The processes that have the target's database open (a running browser)."""
    files = {str((target.directory / f).resolve()) for f in _DB_FILES}
    found = _holders(files)
    if target.browser is Browser.CHROMIUM and target.directory.name == "nssdb":
        known = {u.pid for u in found}
        found += [u for u in _chromium_processes(target.directory.parent.parent)
                  if u.pid not in known]  # fmt: skip
    if target.browser is Browser.FIREFOX:
        lock = _firefox_lock(target.directory)
        if lock is not None and all(u.pid != lock.pid for u in found):
            found.append(lock)
    return found
