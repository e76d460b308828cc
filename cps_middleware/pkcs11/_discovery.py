"""Where the PKCS#11 module is: an explicit path, ``CPS_PKCS11_MODULE``, the ANS
Cryptolib CPS paths of this OS, then OpenSC's module.

Each candidate is checked before it is loaded so that a failure says why:
missing, wrong architecture (read from the ELF header), a missing dependency
(the loader's message), or not a PKCS#11 module (no ``C_GetFunctionList``).
The known paths are data; correct them here when a distribution moves a file.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
import sysconfig
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["ENV_VAR", "Candidate", "candidate_paths", "diagnose"]

ENV_VAR: Final = "CPS_PKCS11_MODULE"

# Cryptolib CPS (ANS), per sys.platform prefix (DOMAIN.md "The PKCS#11 middleware").
ANS_PATHS: Final[Mapping[str, Sequence[str]]] = {
    "linux": (
        "/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so",
        "/usr/lib64/libcps3_pkcs11_lux.so",
        "/usr/lib/libcps3_pkcs11_lux.so",
        "/usr/local/galss/libcps3_pkcs11_lux.so",
    ),
    "win32": (
        r"C:\Windows\System32\cps3_pkcs11_w64.dll"
        if struct.calcsize("P") == 8
        else r"C:\Windows\SysWOW64\cps3_pkcs11_w32.dll",
        r"C:\Windows\System32\cps3_pkcs11_w32.dll",
    ),
    "darwin": ("/usr/local/lib/libcps3_pkcs11_osx.dylib",),
}

# OpenSC reads CPS3 cards (not CPS4); "{multiarch}" is Debian's triplet.
OPENSC_PATHS: Final[Mapping[str, Sequence[str]]] = {
    "linux": (
        "/usr/lib/{multiarch}/opensc-pkcs11.so",
        "/usr/lib/{multiarch}/pkcs11/opensc-pkcs11.so",
        "/usr/lib64/opensc-pkcs11.so",
        "/usr/lib64/pkcs11/opensc-pkcs11.so",
        "/usr/lib/opensc-pkcs11.so",
        "/usr/lib/pkcs11/opensc-pkcs11.so",
        "/usr/local/lib/opensc-pkcs11.so",
    ),
    "win32": (
        r"C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll",
        r"C:\Windows\System32\opensc-pkcs11.dll",
    ),
    "darwin": (
        "/Library/OpenSC/lib/opensc-pkcs11.so",
        "/opt/homebrew/lib/opensc-pkcs11.so",
        "/usr/local/lib/opensc-pkcs11.so",
    ),
}

# ELF e_machine values of the architectures Python runs on.
_ELF_MACHINES: Final[Mapping[int, str]] = {
    3: "x86 (32-bit)",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC 64",
    22: "s390x",
    40: "ARM (32-bit)",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}
_MACHINE_OF_PLATFORM: Final[Mapping[str, int]] = {
    "x86_64": 62, "amd64": 62, "i386": 3, "i486": 3, "i586": 3, "i686": 3,
    "aarch64": 183, "arm64": 183, "armv7l": 40, "armv6l": 40, "ppc64le": 21,
    "ppc64": 21, "s390x": 22, "riscv64": 243, "loongarch64": 258, "mips": 8,
}  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A module path to try and where it came from (``explicit``, ``env``, ``ans``, ``opensc``)."""

    path: str
    source: str


def _platform_key() -> str:
    for key in ("linux", "win32", "darwin"):
        if sys.platform.startswith(key):
            return key
    return sys.platform


def _multiarch() -> str:
    value = sysconfig.get_config_var("MULTIARCH")
    if isinstance(value, str) and value:
        return value
    machine = platform.machine()
    return {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(
        machine, f"{machine}-linux-gnu"
    )


def candidate_paths(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Candidate]:
    """The ordered candidates. An explicit path, else ``CPS_PKCS11_MODULE``, is the only one
    tried when given: a module the caller named is never silently replaced by another."""
    if explicit is not None:
        return [Candidate(os.fspath(explicit), "explicit")]
    env = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if env:
        return [Candidate(env, "env")]
    key = _platform_key()
    out = [Candidate(p, "ans") for p in ANS_PATHS.get(key, ())]
    out += [
        Candidate(p.format(multiarch=_multiarch()), "opensc") for p in OPENSC_PATHS.get(key, ())
    ]
    seen: set[str] = set()
    unique = []
    for c in out:
        if c.path not in seen:
            seen.add(c.path)
            unique.append(c)
    return unique


def _elf_problem(path: str) -> str | None:
    """Why an ELF file cannot be loaded by this Python (class or machine), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None  # not ELF (Mach-O, PE, a linker script): let the loader judge
    bits = {1: 32, 2: 64}.get(head[4])
    endian = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", head[18:20])
    want_bits = struct.calcsize("P") * 8
    want_machine = _MACHINE_OF_PLATFORM.get(platform.machine().lower())
    if want_machine == 62 and want_bits == 32:
        want_machine = 3
    name = _ELF_MACHINES.get(machine, f"machine {machine}")
    here = f"{_ELF_MACHINES.get(want_machine or -1, platform.machine())} {want_bits}-bit"
    if bits is not None and bits != want_bits:
        return f"wrong architecture: {bits}-bit {name} module, this Python is {here}"
    if want_machine is not None and machine != want_machine:
        return f"wrong architecture: {name} module, this Python is {here}"
    return None


def diagnose(path: str) -> str | None:
    """Why ``path`` cannot be a loadable PKCS#11 module, or None when it looks fine.

    Loads the file with the system loader (which the PKCS#11 wrapper does next
    anyway) to report a missing dependency with the loader's own message.
    """
    if not os.path.exists(path):
        return "missing" if not os.path.islink(path) else "missing (dangling symlink)"
    if os.path.isdir(path):
        return "is a directory"
    problem = _elf_problem(path)
    if problem:
        return problem
    try:
        dll = ctypes.CDLL(path)
    except OSError as exc:
        msg = str(exc)
        # The file itself exists (checked above), so "cannot open" names a dependency.
        if "cannot open shared object file" in msg or "Library not loaded" in msg:
            return f"missing dependency: {msg}"
        return f"cannot be loaded: {msg}"
    try:
        dll.C_GetFunctionList  # noqa: B018 — the lookup is the check
    except AttributeError:
        return "not a PKCS#11 module: no C_GetFunctionList"
    return None


def iter_tried(candidates: Sequence[Candidate]) -> Iterator[tuple[Candidate, str | None]]:
    """Each candidate with the reason it cannot be used (None when it looks loadable)."""
    for c in candidates:
        yield c, diagnose(c.path)
