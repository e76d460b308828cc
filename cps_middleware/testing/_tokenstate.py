"""Reader/writer of ``card.state``, the state file of a CPS test card.

The CPS test-token PKCS#11 module (``cps_middleware/_cpstoken.so``, sources in
``native/cpstoken``) serves one slot per card directory found under
``$CPS_TEST_CARDS_DIR``::

    $CPS_TEST_CARDS_DIR/<card-id>/
        softhsm2.conf     SoftHSM config, directories.tokendir = <card dir>/tokens
        tokens/           the SoftHSM token (one initialised token)
        card.state        this file; the card exists once it exists

``card.state`` is ``key=value`` text, one per line (``#`` comments allowed,
unknown keys kept). Every process that loads the module reads it, and the
module itself rewrites the PIN/PUK counters in it, so the file is only ever
changed *in place* (same inode) while holding ``flock(LOCK_EX)`` on it, and
read under ``flock(LOCK_SH)``. :func:`create` is the only writer that makes a
new file (atomically, by rename, before any reader can know the card).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

from cps_middleware.cards import profiles as _profiles

__all__ = [
    "CARDS_DIR_ENV",
    "CPS3_MECHANISMS",
    "CPS4_MECHANISMS",
    "STATE_FILE",
    "TokenSettings",
    "TokenState",
    "block_pin",
    "create",
    "exists",
    "insert",
    "read",
    "remove",
    "reset_counters",
    "update",
]

#: The one environment variable the module reads: the directory holding the cards.
CARDS_DIR_ENV: Final = "CPS_TEST_CARDS_DIR"
#: Name of the state file inside a card directory.
STATE_FILE: Final = "card.state"

#: Mechanisms of a CPS3 (IAS-ECC): no PSS, so no TLS 1.3 client authentication.
CPS3_MECHANISMS: Final = _profiles.CPS3.test_token_mechanisms
#: Mechanisms of a CPS4 (ChipDoc): the CPS3 ones plus RSA-PSS.
CPS4_MECHANISMS: Final = _profiles.CPS4.test_token_mechanisms

_MODELS: Final = {g: p.model for g, p in _profiles.PROFILES.items()}
_MECH_RE: Final = re.compile(r"CKM_[A-Z0-9_]+|0[xX][0-9a-fA-F]+")
_HEADER: Final = (
    "# CPS test card state (cps_middleware.testing._tokenstate); change in place under flock\n"
)


@dataclass(frozen=True)
class TokenSettings:
    """How a CPS test card behaves: what :func:`create` needs.

    ``mechanisms`` empty means "every SoftHSM mechanism"; otherwise only those
    (``CKM_*`` names or ``0x`` hex values) are listed and usable for
    sign/verify/encrypt/decrypt/digest/wrap/unwrap/derive (key generation stays
    open so that fixtures can make keys through the module). ``pad_pin`` is
    what the simulated PIN pad "types" when ``pin_pad`` is set and the
    application logs in with no PIN. ``softhsm_module`` overrides the SoftHSM
    library path (default: the usual Debian/Fedora paths). ``reader``, when set, is
    the slot description (a PC/SC reader name, at most 64 bytes): a test card
    "in" that reader, so that discovery shows it and the PC/SC card there as one
    card; empty: ``CPS test reader <card-id>``.
    """

    label: str
    serial: str
    generation: str = "CPS3"
    manufacturer: str = "ANS"
    model: str = ""
    latency_ms: int = 0
    mechanisms: tuple[str, ...] = ()
    pin_tries_max: int = 3
    puk_tries_max: int = 10
    pin_pad: bool = False
    pad_pin: str = field(default="", repr=False)
    #: with ``pin_pad``: the module logs in through the pad when a session opens
    #: (for applications that never send ``C_Login(NULL)``, e.g. Chromium).
    pad_auto_login: bool = False
    softhsm_module: str = ""
    reader: str = ""

    def __post_init__(self) -> None:
        # Derived defaults (the C side applies the same ones to a hand-written file).
        if not self.model:
            object.__setattr__(self, "model", _MODELS.get(self.generation, "IAS ECC"))
        object.__setattr__(self, "mechanisms", tuple(self.mechanisms))
        self._validate()

    def _validate(self) -> None:
        limits = (
            ("label", 32), ("manufacturer", 32), ("model", 16), ("serial", 16), ("reader", 64)
        )  # fmt: skip
        for name, limit in limits:
            value = getattr(self, name)
            if len(value.encode()) > limit or "\n" in value:
                raise ValueError(f"{name} must be one line of at most {limit} bytes")
        if not 1 <= self.pin_tries_max <= 15 or not 1 <= self.puk_tries_max <= 15:
            raise ValueError("tries_max must be between 1 and 15")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        for mech in self.mechanisms:
            if not _MECH_RE.fullmatch(mech):
                raise ValueError(f"mechanism {mech!r}: a CKM_ name or a 0x hex value")
        if "\n" in self.pad_pin or "\n" in self.softhsm_module:
            raise ValueError("pad_pin and softhsm_module must be one line")

    @classmethod
    def for_generation(
        cls,
        generation: str,
        label: str,
        serial: str,
        *,
        restrict_mechanisms: bool = True,
        **kw: Any,
    ) -> Self:
        """A card like a real CPS3 or CPS4: manufacturer "ANS", model and mechanisms."""
        if generation not in _MODELS:
            raise ValueError(f"generation must be one of {sorted(_MODELS)}")
        if restrict_mechanisms:
            kw.setdefault(
                "mechanisms", CPS3_MECHANISMS if generation == "CPS3" else CPS4_MECHANISMS
            )
        return cls(label=label, serial=serial, generation=generation, **kw)


@dataclass(frozen=True)
class TokenState(TokenSettings):
    """Settings plus the live state of the card (the whole content of ``card.state``).

    ``insertions`` counts re-insertions: sessions opened before a removal stay
    invalid after it. A ``*_tries_left`` of -1 means "the maximum".
    """

    present: bool = True
    insertions: int = 0
    pin_tries_left: int = -1
    puk_tries_left: int = -1
    extra: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pin_tries_left < 0:
            object.__setattr__(self, "pin_tries_left", self.pin_tries_max)
        if self.puk_tries_left < 0:
            object.__setattr__(self, "puk_tries_left", self.puk_tries_max)
        super().__post_init__()
        if not 0 <= self.pin_tries_left <= self.pin_tries_max:
            raise ValueError("pin_tries_left must be between 0 and pin_tries_max")
        if not 0 <= self.puk_tries_left <= self.puk_tries_max:
            raise ValueError("puk_tries_left must be between 0 and puk_tries_max")
        if self.insertions < 0:
            raise ValueError("insertions must not be negative")

    @property
    def pin_locked(self) -> bool:
        return self.pin_tries_left == 0

    @property
    def puk_locked(self) -> bool:
        return self.puk_tries_left == 0


_INT_FIELDS: Final = (
    "insertions",
    "pin_tries_max",
    "pin_tries_left",
    "puk_tries_max",
    "puk_tries_left",
    "latency_ms",
)
_BOOL_FIELDS: Final = ("present", "pin_pad", "pad_auto_login")
_STR_FIELDS: Final = (
    "label",
    "serial",
    "generation",
    "manufacturer",
    "model",
    "pad_pin",
    "softhsm_module",
    "reader",
)
_KNOWN: Final = frozenset((*_INT_FIELDS, *_BOOL_FIELDS, *_STR_FIELDS, "mechanisms"))


def _serialise(state: TokenState) -> bytes:
    lines = [_HEADER]
    for f in dataclasses.fields(state):
        if f.name == "extra":
            continue
        value = getattr(state, f.name)
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        lines.append(f"{f.name}={text}\n")
    lines.extend(f"{k}={v}\n" for k, v in state.extra)
    return "".join(lines).encode()


def _parse(text: str, card_dir: Path) -> TokenState:
    values: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip("\r")
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key in _KNOWN:
            values[key] = value
        else:
            extra.append((key, value))
    kw: dict[str, Any] = {"extra": tuple(extra)}
    for key in _INT_FIELDS:
        if values.get(key, "").strip():
            kw[key] = int(values[key])
    for key in _BOOL_FIELDS:
        if values.get(key, "").strip():
            kw[key] = values[key].strip() not in ("0", "false", "no")
    for key in _STR_FIELDS:
        if key in values:
            kw[key] = values[key]
    kw["mechanisms"] = tuple(
        m.strip() for m in values.get("mechanisms", "").split(",") if m.strip()
    )
    kw.setdefault("label", card_dir.name[:32])
    kw.setdefault("serial", card_dir.name[:16])
    return TokenState(**kw)


def _state_path(card_dir: str | os.PathLike[str]) -> Path:
    return Path(card_dir) / STATE_FILE


def exists(card_dir: str | os.PathLike[str]) -> bool:
    """Whether the card exists (its state file does)."""
    return _state_path(card_dir).is_file()


def create(card_dir: str | os.PathLike[str], settings: TokenSettings) -> TokenState:
    """Write the state file of a new card; the card appears to the module from now on.

    *settings* may be a full :class:`TokenState` (counters, presence ...).
    Raises ``FileExistsError`` if the card already has a state (use :func:`update`).
    """
    if isinstance(settings, TokenState):
        state = settings
    else:
        state = TokenState(
            **{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
        )
    path = _state_path(card_dir)
    if path.exists():
        raise FileExistsError(f"{path} exists; use update()")
    fd, tmp = tempfile.mkstemp(prefix=".card.state.", dir=path.parent)
    try:
        os.write(fd, _serialise(state))
        os.fsync(fd)
    finally:
        os.close(fd)
    # link() fails if another creator won the race; rename() would silently replace.
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return state


def read(card_dir: str | os.PathLike[str]) -> TokenState:
    """The current state (read under a shared lock)."""
    path = _state_path(card_dir)
    with open(path, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        try:
            data = f.read()
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return _parse(data.decode(), Path(card_dir))


@contextmanager
def _locked(card_dir: str | os.PathLike[str]) -> Iterator[int]:
    fd = os.open(_state_path(card_dir), os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # also releases the lock


def _read_fd(fd: int) -> str:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode()


def update(card_dir: str | os.PathLike[str], **changes: Any) -> TokenState:
    """Change fields of the state under ``flock(LOCK_EX)``; returns the new state.

    Setting ``present=True`` on a removed card counts a re-insertion
    (``insertions`` + 1). Lowering a ``*_tries_max`` clamps its ``*_tries_left``.
    """
    unknown = set(changes) - _KNOWN
    if unknown:
        raise TypeError(f"unknown state fields: {sorted(unknown)}")
    return _modify(card_dir, lambda old: changes)


def _modify(
    card_dir: str | os.PathLike[str], changes_for: Callable[[TokenState], dict[str, Any]]
) -> TokenState:
    with _locked(card_dir) as fd:
        old = _parse(_read_fd(fd), Path(card_dir))
        changes = dict(changes_for(old))
        if changes.get("present") and not old.present and "insertions" not in changes:
            changes["insertions"] = old.insertions + 1
        for kind in ("pin", "puk"):
            top = changes.get(f"{kind}_tries_max", getattr(old, f"{kind}_tries_max"))
            if f"{kind}_tries_left" not in changes:
                changes[f"{kind}_tries_left"] = min(getattr(old, f"{kind}_tries_left"), top)
        new = dataclasses.replace(old, **changes)
        data = _serialise(new)
        # In place (same inode: processes keep it open), truncate then one write.
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    return new


def remove(card_dir: str | os.PathLike[str]) -> TokenState:
    """Pull the card out of its reader: no token in the slot, open sessions die."""
    return update(card_dir, present=False)


def insert(card_dir: str | os.PathLike[str]) -> TokenState:
    """Put the card back (a new insertion: sessions from before stay invalid)."""
    return update(card_dir, present=True)


def reset_counters(card_dir: str | os.PathLike[str]) -> TokenState:
    """PIN and PUK try counters back to their maximum."""
    return _modify(
        card_dir,
        lambda old: {"pin_tries_left": old.pin_tries_max, "puk_tries_left": old.puk_tries_max},
    )


def block_pin(card_dir: str | os.PathLike[str]) -> TokenState:
    """Block the holder PIN as three wrong entries would."""
    return update(card_dir, pin_tries_left=0)
