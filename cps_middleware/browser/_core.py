"""setup / status / remove of the CPS middleware in the browsers' NSS databases."""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import importlib.resources
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cps_middleware._files import write_atomically
from cps_middleware.browser._nss import LoadedModule, NssDb, Registration, SlotToken
from cps_middleware.browser._targets import DbUser, Target, find_targets, users
from cps_middleware.errors import (
    BrowserRunning,
    BrowserSetupError,
    CpsError,
    ModuleLoadError,
    NssToolsMissing,
)
from cps_middleware.messages import text

__all__ = [
    "MANIFEST",
    "MODULE_NAME",
    "ModuleChoice",
    "ModuleStatus",
    "Outcome",
    "TargetResult",
    "TargetStatus",
    "find_module",
    "igc_sante_certificates",
    "remove",
    "remove_target",
    "setup",
    "setup_target",
    "status",
    "target_status",
]

#: The name the module gets in the browsers' security devices list.
MODULE_NAME = "CPS (cps-middleware)"
#: What setup did in a database, so that remove undoes exactly that.
MANIFEST = "cps-middleware-browser.json"
_MANIFEST_VERSION = 1
# Libraries that read CPS cards: two of them in one browser is the classic conflict.
_CPS_MIDDLEWARES = ("libcps3_pkcs11", "cps3_pkcs11", "opensc-pkcs11", "onepin-opensc-pkcs11")


# -- the module to register -------------------------------------------------------------


@dataclass(frozen=True)
class ModuleChoice:
    """The PKCS#11 module to register and where it came from (``explicit``, ``env``, ``ans``,
    ``opensc``), with the candidates that were rejected and why."""

    path: str
    source: str
    rejected: tuple[tuple[str, str], ...] = ()


def find_module(explicit: str | os.PathLike[str] | None = None) -> ModuleChoice:
    """The module to register: ``explicit``, else ``CPS_PKCS11_MODULE``, else the ANS
    Cryptolib CPS, else OpenSC (the discovery of `cps_middleware.pkcs11`).

    Raises `ModuleLoadError` listing every path tried when none can be loaded.
    """
    from cps_middleware.pkcs11 import candidate_paths, diagnose

    rejected: list[tuple[str, str]] = []
    for cand in candidate_paths(explicit):
        why = diagnose(cand.path)
        if why is None:
            return ModuleChoice(os.path.abspath(cand.path), cand.source, tuple(rejected))
        rejected.append((cand.path, why))
    raise ModuleLoadError("no PKCS#11 module to register with the browsers", attempts=rejected)


# -- the IGC-Santé CA certificates ----------------------------------------------------------


def igc_sante_certificates() -> list[tuple[str, bytes]]:
    """(nickname, DER) of the IGC-Santé CA certificates shipped with the package."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    out: list[tuple[str, bytes]] = []
    data = importlib.resources.files("cps_middleware.validation") / "data"
    for entry in sorted(data.iterdir(), key=lambda e: e.name):
        if not entry.name.lower().endswith((".cer", ".crt", ".der")):
            continue
        raw = entry.read_bytes()
        cert = (
            x509.load_pem_x509_certificate(raw)
            if raw.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(raw)
        )
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        nick = str(cns[0].value) if cns else entry.name.rsplit(".", 1)[0]
        from cryptography.hazmat.primitives.serialization import Encoding

        out.append((f"{nick} (IGC-Santé)", cert.public_bytes(Encoding.DER)))
    return out


# -- results ---------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    """What setup or remove did to one browser database."""
    DONE = "done"
    UNCHANGED = "unchanged"
    REFUSED_RUNNING = "refused_running"
    FAILED = "failed"


@dataclass(frozen=True)
class TargetResult:
    """What setup or remove did to one database. ``reason`` is a ``browser.*`` message code."""

    target: Target
    outcome: Outcome
    reason: str
    module: str | None = None
    module_added: bool = False
    module_removed: bool = False
    certificates_added: tuple[str, ...] = ()
    certificates_removed: tuple[str, ...] = ()
    running: tuple[DbUser, ...] = ()
    error: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)

    def message(self, lang: str | None = None) -> str:
        """The outcome as a sentence (French by default)."""
        return text(self.reason, lang, **self._values())

    def _values(self) -> dict[str, str]:
        return {
            "browser": self.target.browser.value,
            "profile": self.target.name,
            "directory": str(self.target.directory),
            "module": self.module or "",
            "added": str(len(self.certificates_added)),
            "removed": str(len(self.certificates_removed)),
            "pids": ", ".join(str(u.pid) for u in self.running) or "?",
            "error": self.error or "",
            **self.values,
        }

    def to_dict(self, lang: str | None = None) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "outcome": self.outcome.value,
            "reason": self.reason,
            "message": self.message(lang),
            "module": self.module,
            "module_added": self.module_added,
            "module_removed": self.module_removed,
            "certificates_added": list(self.certificates_added),
            "certificates_removed": list(self.certificates_removed),
            "running": [{"pid": u.pid, "command": u.command} for u in self.running],
            "error": self.error,
        }


@dataclass(frozen=True)
class ModuleStatus:
    """A module registered in a database: ``ours`` when setup registered it;
    ``loaded`` None when it was not tried (the browser is running)."""

    name: str
    library: str
    builtin: bool
    ours: bool
    loaded: bool | None
    tokens: tuple[SlotToken, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "library": self.library,
            "builtin": self.builtin,
            "ours": self.ours,
            "loaded": self.loaded,
            "tokens": [
                {"slot": t.slot, "token": t.token, "serial": t.serial,
                 "manufacturer": t.manufacturer}
                for t in self.tokens if t.token
            ],
        }  # fmt: skip


@dataclass(frozen=True)
class TargetStatus:
    """One browser database: what is registered there, whether it loads, what setup did."""

    target: Target
    exists: bool
    running: tuple[DbUser, ...]
    modules: tuple[ModuleStatus, ...]
    certificates: tuple[str, ...]
    certificates_expected: int
    managed: bool

    @property
    def card_modules(self) -> tuple[ModuleStatus, ...]:
        """The registered modules that are not NSS's own (card middlewares)."""
        return tuple(m for m in self.modules if not m.builtin)

    @property
    def registered(self) -> bool:
        return bool(self.card_modules)

    @property
    def module_loads(self) -> bool | None:
        mods = self.card_modules
        if not mods or any(m.loaded is None for m in mods):
            return None
        return all(m.loaded for m in mods)

    def conflicts(self) -> list[tuple[str, tuple[str, ...]]]:
        """Cards (token serial) seen through more than one registered middleware; with no
        card inserted, ``("*", names)`` when two CPS middlewares (ANS, OpenSC) are registered."""
        seen: dict[str, list[str]] = {}
        for m in self.card_modules:
            for t in m.tokens:
                if not (t.token and t.serial):
                    continue
                # The same card may show a shorter serial through another middleware
                # (the ANS module: the first 8 of EF.SN.ICC's 10 digits, OpenSC: all 10).
                key = next((k for k in seen if _same_serial(k, t.serial)), t.serial)
                names = seen.pop(key, [])
                seen[max(key, t.serial, key=len)] = [*names, m.name]
        found = [(s, tuple(names)) for s, names in seen.items() if len(set(names)) > 1]
        if not found:
            cps = [m.name for m in self.card_modules
                   if os.path.basename(m.library).startswith(_CPS_MIDDLEWARES)]  # fmt: skip
            if len(cps) > 1:
                found.append(("*", tuple(cps)))
        return found

    def summary(self, lang: str | None = None) -> str:
        """One line for a person: what is registered here and whether it loads."""
        t = self.target
        if not self.exists:
            return text("browser.status_no_db", lang, browser=t.browser.value, profile=t.name,
                        directory=str(t.directory))  # fmt: skip
        if not self.registered:
            return text("browser.status_not_registered", lang, browser=t.browser.value,
                        profile=t.name, directory=str(t.directory))  # fmt: skip
        names = ", ".join(f"{m.name} ({m.library})" for m in self.card_modules)
        code = {True: "browser.status_loads", False: "browser.status_not_loading",
                None: "browser.status_not_checked"}[self.module_loads]  # fmt: skip
        return text(code, lang, browser=t.browser.value, profile=t.name, modules=names,
                    certs=str(len(self.certificates)),
                    expected=str(self.certificates_expected))  # fmt: skip

    def to_dict(self, lang: str | None = None) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "exists": self.exists,
            "running": [{"pid": u.pid, "command": u.command} for u in self.running],
            "registered": self.registered,
            "module_loads": self.module_loads,
            "modules": [m.to_dict() for m in self.modules],
            "certificates": list(self.certificates),
            "certificates_expected": self.certificates_expected,
            "managed": self.managed,
            "conflicts": [{"serial": s, "modules": list(n)} for s, n in self.conflicts()],
            "summary": self.summary(lang),
        }


def _same_serial(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    short, long_ = sorted((a, b), key=len)
    return a == b or (len(short) >= 8 and long_.startswith(short))


# -- manifest ----------------------------------------------------------------------------------


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(directory: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(dict(data), indent=1, ensure_ascii=False)
    write_atomically(directory / MANIFEST, text.encode("utf-8"), mode=0o644)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _refuse_if_running(target: Target) -> None:
    running = users(target)
    if running:
        pids = ", ".join(f"{u.command} {u.pid}" for u in running)
        raise BrowserRunning(
            f"{target.browser.value} is running on {target.directory} ({pids})",
            module=str(target.directory),
        )


# -- setup -------------------------------------------------------------------------------------


def setup_target(
    target: Target,
    module: str,
    *,
    certificates: bool = True,
    env: Mapping[str, str] | None = None,
) -> TargetResult:
    """Register ``module`` (and the IGC-Santé CAs) in one database; idempotent.

    Raises `BrowserRunning` when the browser has the database open, `NssToolsMissing`
    without the NSS tools, `BrowserSetupError` when a tool fails.
    """
    _refuse_if_running(target)
    with _writing_in(target):
        return _setup_target(target, module, certificates=certificates, env=env)


@contextlib.contextmanager
def _writing_in(target: Target) -> Iterator[None]:
    """An OSError while writing in the target's folder becomes a BrowserSetupError."""
    try:
        yield
    except OSError as exc:
        raise BrowserSetupError(
            f"cannot write in {target.directory}: {exc.strerror or exc}",
            module=str(target.directory),
        ) from exc


def _setup_target(
    target: Target, module: str, *, certificates: bool, env: Mapping[str, str] | None
) -> TargetResult:
    db = NssDb(target.directory, env)
    manifest = _read_manifest(target.directory)
    if not db.exists:
        db.create()
        manifest.setdefault("created_db", True)
    module_added = False
    regs = db.registrations()
    ours_by_path = [r for r in regs if r.library and _same_file(r.library, module)]
    if not ours_by_path:
        clash = [r for r in regs if r.name == MODULE_NAME]
        if clash:  # our name with another library: a former setup with another module
            db.delete_module(MODULE_NAME)
        db.add_module(MODULE_NAME, module)
        module_added = True
        manifest["module"] = {"name": MODULE_NAME, "library": module}
    added: list[str] = []
    if certificates:
        added = _import_cas(db)
        if added:
            manifest["certificates"] = sorted({*manifest.get("certificates", []), *added})
    done = module_added or bool(added)
    if done:
        manifest["version"] = _MANIFEST_VERSION
        manifest["updated"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        _write_manifest(target.directory, manifest)
    already = ours_by_path[0].name if ours_by_path else MODULE_NAME
    return TargetResult(
        target,
        Outcome.DONE if done else Outcome.UNCHANGED,
        "browser.setup_done" if done else "browser.setup_unchanged",
        module=module,
        module_added=module_added,
        certificates_added=tuple(added),
        values={"name": already},
    )


def _import_cas(db: NssDb) -> list[str]:
    import tempfile

    present = db.nicknames()
    added: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cps-browser-") as tmp:
        for nick, der in igc_sante_certificates():
            if nick in present:
                continue
            path = Path(tmp) / "ca.der"
            path.write_bytes(der)
            # No trust flags: the CAs only help the browser build the client chain,
            # they are not made trust anchors for web sites.
            db.add_certificate(nick, path, ",,")
            added.append(nick)
    if added:
        # A CA already present under another nickname keeps it: only the
        # nicknames that now exist were added by us.
        now = db.nicknames()
        added = [n for n in added if n in now]
    return added


def _each(
    targets: Sequence[Target], action: Any
) -> list[TargetResult]:
    results: list[TargetResult] = []
    for target in targets:
        try:
            results.append(action(target))
        except BrowserRunning:
            results.append(TargetResult(target, Outcome.REFUSED_RUNNING, "browser.running",
                                        running=tuple(users(target))))  # fmt: skip
        except NssToolsMissing:
            raise
        except CpsError as exc:
            results.append(TargetResult(target, Outcome.FAILED, "browser.failed", error=str(exc)))
    return results


def setup(
    module: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    chromium: bool = True,
    firefox: bool = True,
    profiles: Sequence[str | os.PathLike[str]] = (),
    certificates: bool = True,
    env: Mapping[str, str] | None = None,
) -> list[TargetResult]:
    """Register the CPS module with Chromium and every Firefox profile (or ``profiles``).

    One result per database; a browser that is running keeps its database
    untouched (``Outcome.REFUSED_RUNNING``). Raises `ModuleLoadError` when no
    module can be found, `NssToolsMissing` without the NSS tools.
    """
    choice = find_module(module)
    targets = find_targets(home, chromium=chromium, firefox=firefox, profiles=profiles)
    return _each(targets, lambda t: setup_target(t, choice.path, certificates=certificates,
                                                 env=env))  # fmt: skip


# -- remove ------------------------------------------------------------------------------------


def remove_target(target: Target, *, env: Mapping[str, str] | None = None) -> TargetResult:
    """Undo what setup recorded in this database (nothing else). Raises `BrowserRunning`."""
    manifest = _read_manifest(target.directory)
    if not manifest:
        return TargetResult(target, Outcome.UNCHANGED, "browser.remove_nothing")
    _refuse_if_running(target)
    with _writing_in(target):
        return _remove_target(target, manifest, env)


def _remove_target(
    target: Target, manifest: Mapping[str, Any], env: Mapping[str, str] | None
) -> TargetResult:
    db = NssDb(target.directory, env)
    removed_module = False
    mod = manifest.get("module")
    if isinstance(mod, dict) and db.exists:
        name, library = str(mod.get("name", "")), str(mod.get("library", ""))
        if any(r.name == name and _same_file(r.library, library) for r in db.registrations()):
            db.delete_module(name)
            removed_module = True
    removed: list[str] = []
    if db.exists:
        present = db.nicknames()
        for nick in manifest.get("certificates", []):
            if nick in present:
                db.delete_certificate(str(nick))
                removed.append(str(nick))
    (target.directory / MANIFEST).unlink(missing_ok=True)
    return TargetResult(
        target, Outcome.DONE, "browser.remove_done",
        module=str(mod.get("library")) if isinstance(mod, dict) else None,
        module_removed=removed_module, certificates_removed=tuple(removed),
    )  # fmt: skip


def remove(
    *,
    home: str | os.PathLike[str] | None = None,
    chromium: bool = True,
    firefox: bool = True,
    profiles: Sequence[str | os.PathLike[str]] = (),
    env: Mapping[str, str] | None = None,
) -> list[TargetResult]:
    """Undo setup in every database it touched (per-database results, as `setup`)."""
    targets = find_targets(home, chromium=chromium, firefox=firefox, profiles=profiles)
    return _each(targets, lambda t: remove_target(t, env=env))


# -- status ------------------------------------------------------------------------------------


def target_status(
    target: Target, *, env: Mapping[str, str] | None = None, load: bool = True
) -> TargetStatus:
    """What one database holds. With ``load`` (and the browser not running) every
    registered module is loaded through ``modutil -list`` to tell whether it loads
    and which cards it sees."""
    db = NssDb(target.directory, env)
    running = tuple(users(target))
    expected = len(igc_sante_certificates())
    manifest = _read_manifest(target.directory)
    if not db.exists:
        return TargetStatus(target, False, running, (), (), expected, bool(manifest))
    ours_lib = str((manifest.get("module") or {}).get("library", ""))
    regs = db.registrations()
    loaded: dict[str, LoadedModule] = {}
    if load and not running:
        try:
            loaded = {m.name: m for m in db.loaded_modules()}
        except BrowserSetupError:
            loaded = {}
    modules = tuple(_module_status(r, loaded, ours_lib, load and not running) for r in regs)
    try:
        nicks = db.nicknames()
    except BrowserSetupError:
        nicks = set()
    certs = tuple(sorted(n for n, _ in igc_sante_certificates() if n in nicks))
    return TargetStatus(target, True, running, modules, certs, expected, bool(manifest))


def _module_status(
    reg: Registration, loaded: Mapping[str, LoadedModule], ours_lib: str, tried: bool
) -> ModuleStatus:
    lm = loaded.get(reg.name)
    return ModuleStatus(
        name=reg.name,
        library=reg.library,
        builtin=reg.builtin,
        ours=bool(ours_lib) and _same_file(reg.library, ours_lib),
        loaded=(lm.loaded if lm else False) if tried else None,
        tokens=tuple(t for t in lm.slots if t.token) if lm else (),
    )


def status(
    *,
    home: str | os.PathLike[str] | None = None,
    chromium: bool = True,
    firefox: bool = True,
    profiles: Sequence[str | os.PathLike[str]] = (),
    env: Mapping[str, str] | None = None,
    load: bool = True,
) -> list[TargetStatus]:
    """One `TargetStatus` per browser database (Chromium's, each Firefox profile)."""
    targets = find_targets(home, chromium=chromium, firefox=firefox, profiles=profiles)
    return [target_status(t, env=env, load=load) for t in targets]
