"""SoftHSM-backed CPS test cards.

A `CpsTestCard` is a SoftHSM token holding what a CPS card holds — the objects
and labels of the ANS middleware (``Certificat d'Authentification CPS`` +
``CPS_PRIV_AUT``, ``Certificat de Signature CPS`` + ``CPS_PRIV_SIG``, the CA
certificates, the ``CPS_*`` data objects) — served through the CPS test-token
PKCS#11 module (``cps_middleware/_cpstoken.so``), which adds what SoftHSM lacks
and a card has: a 3-try PIN counter that locks, a PUK counter, card removal,
per-operation latency and the mechanism set of a CPS3 or CPS4.

Cards live in a *cards directory* (``CPS_TEST_CARDS_DIR``), one sub-directory
per card; every process that loads the test-token module with the same
directory sees the same cards and the same PIN counters, like a card in a reader.
Any PKCS#11 consumer can use them: ``CPS_TEST_CARDS_DIR=DIR pkcs11-tool
--module MODULE -L`` with MODULE from `test_token_module` (or ``cps testcard list``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cps_middleware.errors import PinFormatError, TestCardError
from cps_middleware.testing import _tokenstate
from cps_middleware.testing._provision import softhsm_library
from cps_middleware.testing.pki import CardCredentials, CertifiedKey, TestHolder, TestPki

__all__ = [
    "CPS3_MECHANISMS",
    "CPS4_MECHANISMS",
    "LABEL_AUTH_CERT",
    "LABEL_AUTH_KEY",
    "LABEL_SIGN_CERT",
    "LABEL_SIGN_KEY",
    "CpsTestCard",
    "default_cards_dir",
    "list_cards",
    "test_token_module",
]

LABEL_AUTH_CERT = "Certificat d'Authentification CPS"
LABEL_SIGN_CERT = "Certificat de Signature CPS"
LABEL_AUTH_KEY = "CPS_PRIV_AUT"
LABEL_SIGN_KEY = "CPS_PRIV_SIG"

# Mechanisms as DOMAIN.md gives them (the card's own list, not SoftHSM's).
CPS3_MECHANISMS = ("CKM_RSA_PKCS", "CKM_RSA_X_509", "CKM_SHA1_RSA_PKCS", "CKM_SHA256_RSA_PKCS")
CPS4_MECHANISMS = (
    *CPS3_MECHANISMS,
    "CKM_RSA_PKCS_PSS",
    "CKM_SHA1_RSA_PKCS_PSS",
    "CKM_SHA256_RSA_PKCS_PSS",
)
_MODELS = {"CPS3": "IAS ECC", "CPS4": "ChipDoc"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def test_token_module() -> str:
    """Path of the CPS test-token PKCS#11 module shipped with the package."""
    path = Path(__file__).resolve().parent.parent / "_cpstoken.so"
    if not path.exists():
        raise TestCardError(
            "the CPS test-token module is not built",
            hint="reinstall cps-middleware with its native parts (pip install .)",
        )
    return str(path)


test_token_module.__test__ = False  # type: ignore[attr-defined]


def default_cards_dir() -> Path:
    """``CPS_TEST_CARDS_DIR``, else a per-user folder for the ``cps testcard`` command."""
    env = os.environ.get("CPS_TEST_CARDS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cps-middleware" / "testcards"


def _validate_secret(value: str, what: str, lengths: range) -> None:
    if not isinstance(value, str) or not value.isdigit() or len(value) not in lengths:
        raise PinFormatError(
            f"the {what} of a test card must be {lengths.start} to {lengths.stop - 1} digits",
        )


def _validate_reader(reader: str | None) -> None:
    if reader is None:
        return
    if (
        not isinstance(reader, str)
        or not reader.strip()
        or len(reader.encode()) > 64
        or any(ch in reader for ch in "\r\n\0")
    ):
        raise TestCardError(
            f"invalid reader name {reader!r}",
            hint="a PC/SC reader name: one line of 1 to 64 bytes (a PKCS#11 slot description)",
        )


@dataclass(frozen=True)
class _CardFiles:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def meta(self) -> Path:
        return self.root / "card.json"


class CpsTestCard:
    """A CPS test card in a cards directory; see the module docstring.

    ``CpsTestCard(...).create()`` (or ``with CpsTestCard(...) as card:``) makes
    it; `destroy` removes it. The holder PIN is ``1234`` and the unblocking code
    ``12345678`` unless given. ``generation`` ``"CPS3"`` restricts the
    mechanisms to PKCS#1 v1.5 (no PSS, as on a real CPS3); ``"CPS4"`` adds PSS.
    ``reader`` puts the card "in" that PC/SC reader (the token's slot description):
    with a virtual card inserted there, discovery shows one card, with the
    reader's ATR and this token; `set_reader` moves it.
    """

    __test__ = False

    def __init__(
        self,
        cards_dir: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        pki: TestPki | None = None,
        holder: TestHolder | None = None,
        credentials: CardCredentials | None = None,
        pin: str = "1234",
        puk: str = "12345678",
        generation: str = "CPS3",
        key_type: str = "rsa2048",
        latency_ms: int = 0,
        mechanisms: Sequence[str] | None = None,
        label: str | None = None,
        serial: str | None = None,
        reader: str | None = None,
    ) -> None:
        _validate_secret(pin, "PIN", range(4, 9))
        _validate_secret(puk, "unblocking code (PUK)", range(8, 9))
        if generation not in _MODELS:
            raise TestCardError(
                f"unknown card generation {generation!r}", hint="use 'CPS3' or 'CPS4'"
            )
        if key_type not in ("rsa2048", "rsa3072", "rsa4096", "p256", "p384"):
            raise TestCardError(f"unknown key type {key_type!r}", hint="use rsa2048, p256 or p384")
        if latency_ms < 0:
            raise TestCardError("latency_ms must be >= 0")
        if name is not None and not _NAME_RE.match(name):
            raise TestCardError(
                f"invalid card name {name!r}", hint="use letters, digits, '.', '_' or '-'"
            )
        _validate_reader(reader)
        self.reader = reader
        self.cards_dir = Path(cards_dir) if cards_dir is not None else default_cards_dir()
        self.pki = pki or TestPki()
        self.holder = credentials.holder if credentials else (holder or TestHolder())
        self._credentials = credentials
        self.pin = pin
        self.puk = puk
        self.generation = generation
        self.key_type = key_type
        self.latency_ms = latency_ms
        if mechanisms is None:
            mechanisms = (
                ()
                if key_type.startswith("p")
                else (CPS3_MECHANISMS if generation == "CPS3" else CPS4_MECHANISMS)
            )
        self.mechanisms = tuple(mechanisms)
        self.serial = serial or _serial_from(self.holder.card_number)
        self.name = name or f"card-{self.serial}"
        self.label = label or f"CPS {self.holder.given_name} {self.holder.surname}"[:32]
        self._files = _CardFiles(self.cards_dir / self.name)

    # -- life cycle -----------------------------------------------------------------

    @property
    def credentials(self) -> CardCredentials:
        if self._credentials is None:
            self._credentials = self.pki.issue_card(self.holder, key_type=self.key_type)
        return self._credentials

    @property
    def directory(self) -> Path:
        return self._files.root

    @property
    def exists(self) -> bool:
        return _tokenstate.exists(self._files.root)

    def create(self) -> CpsTestCard:
        """Make the card (SoftHSM token + state). Raises `TestCardError` if it exists."""
        if self._files.root.exists():
            raise TestCardError(
                f"a test card named {self.name!r} already exists in {self.cards_dir}",
                hint="delete it first (CpsTestCard.destroy or `cps testcard delete`)",
            )
        library = softhsm_library()
        if library is None:
            raise TestCardError(
                "SoftHSM is not installed",
                hint="apt-get install softhsm2 (or set CPS_SOFTHSM_MODULE)",
            )
        self._files.tokens.mkdir(parents=True)
        try:
            self._files.conf.write_text(
                f"directories.tokendir = {self._files.tokens.resolve()}\n"
                "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
            )
            self._run_provisioning(library)
            self._files.meta.write_text(json.dumps(self._meta(), indent=1))
            _tokenstate.create(self._files.root, self._settings())
        except BaseException:
            shutil.rmtree(self._files.root, ignore_errors=True)
            raise
        return self

    def destroy(self) -> None:
        """Remove the card and its token for good."""
        shutil.rmtree(self._files.root, ignore_errors=True)

    def __enter__(self) -> CpsTestCard:
        if not self.exists:
            self.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- what a consumer needs ----------------------------------------------------------

    @property
    def module_path(self) -> str:
        """The PKCS#11 module to load to see this card (the CPS test-token module)."""
        return test_token_module()

    @property
    def env(self) -> dict[str, str]:
        """Environment variables a process needs to see this card through the module."""
        return {"CPS_TEST_CARDS_DIR": str(self.cards_dir.resolve())}

    def activate(self) -> None:
        """Set `env` in this process (before the module is first loaded)."""
        os.environ.update(self.env)

    # -- card behaviour on demand -----------------------------------------------------

    def remove(self) -> None:
        """Pull the card out of its reader: the slot shows no token, open handles fail."""
        _tokenstate.update(self._files.root, present=False)

    def insert(self) -> None:
        """Put the card back (old session handles stay invalid, as on a real card)."""
        _tokenstate.update(self._files.root, present=True)

    def block_pin(self) -> None:
        """Block the holder PIN, as after three wrong entries."""
        _tokenstate.update(self._files.root, pin_tries_left=0)

    def reset_counters(self) -> None:
        """Restore full PIN and PUK try counters."""
        state = _tokenstate.read(self._files.root)
        _tokenstate.update(
            self._files.root,
            pin_tries_left=state.pin_tries_max,
            puk_tries_left=state.puk_tries_max,
        )

    def set_pin_pad(self, enabled: bool = True, *, auto_login: bool = False) -> None:
        """Put the card behind a (simulated) PIN-pad reader: the token reports a protected
        authentication path and ``C_Login`` with no PIN gets the holder PIN from the pad.
        ``auto_login``: the pad logs in as soon as an application opens a session, for
        applications that never send ``C_Login(NULL)`` themselves (Chromium)."""
        _tokenstate.update(
            self._files.root,
            pin_pad=enabled,
            pad_pin=self.pin if enabled else "",
            pad_auto_login=enabled and auto_login,
        )

    def set_latency(self, milliseconds: int) -> None:
        """Delay every PKCS#11 call on this card by ``latency_ms`` (a slow card)."""
        _tokenstate.update(self._files.root, latency_ms=milliseconds)

    def set_reader(self, reader: str | None) -> None:
        """Put the card "in" another PC/SC reader (None: its own test reader)."""
        _validate_reader(reader)
        _tokenstate.update(self._files.root, reader=reader or "")
        self.reader = reader

    def state(self) -> _tokenstate.TokenState:
        """The card's state (present, PIN and PUK counters, latency) as the module sees it."""
        return _tokenstate.read(self._files.root)

    # -- internals --------------------------------------------------------------------

    def _settings(self) -> _tokenstate.TokenSettings:
        return _tokenstate.TokenSettings(
            label=self.label,
            serial=self.serial,
            generation=self.generation,
            manufacturer="ANS",
            model=_MODELS[self.generation],
            latency_ms=self.latency_ms,
            mechanisms=self.mechanisms,
            reader=self.reader or "",
        )

    def _meta(self) -> dict[str, object]:
        h = self.holder
        return {
            "name": self.name,
            "label": self.label,
            "serial": self.serial,
            "generation": self.generation,
            "key_type": self.key_type,
            "reader": self.reader,
            "holder": {
                "given_name": h.given_name,
                "surname": h.surname,
                "ps_idnat": h.ps_idnat,
                "profession_code": h.profession_code,
                "card_number": h.card_number,
            },
        }

    def _run_provisioning(self, library: str) -> None:
        creds = self.credentials
        request = {
            "softhsm": library,
            "label": self.label,
            "pin": self.pin,
            "puk": self.puk,
            "certificates": [
                _cert_entry(creds.authentication.certificate, LABEL_AUTH_CERT, False),
                _cert_entry(creds.signature.certificate, LABEL_SIGN_CERT, False),
                *[_cert_entry(c, _common_name(c), True) for c in creds.chain],
            ],
            "keys": [
                _key_entry(creds.authentication, LABEL_AUTH_KEY, decrypt=True),
                _key_entry(creds.signature, LABEL_SIGN_KEY, decrypt=False),
            ],
            "data": [
                {"label": label, "value": _b64(value.encode()), "private": private}
                for label, value, private in self._data_objects()
            ],
        }
        env = {**os.environ, "SOFTHSM2_CONF": str(self._files.conf.resolve())}
        proc = subprocess.run(
            [sys.executable, "-m", "cps_middleware.testing._provision"],
            input=json.dumps(request),
            text=True,
            capture_output=True,
            env=env,
            timeout=120,
        )
        if proc.returncode != 0:
            raise TestCardError(
                f"could not write the test card's token: {proc.stderr.strip()[-500:]}",
                hint="check that softhsm2 is installed and the cards directory is writable",
            )

    def _data_objects(self) -> list[tuple[str, str, bool]]:
        # The real cards' data objects are binary structures whose format is not
        # public; test cards carry the same facts as readable text.
        h = self.holder
        return [
            (
                "CPS_ID_CARD",
                f"type={h.card_type};category={h.card_category};"
                f"number={h.card_number};generation={self.generation}",
                False,
            ),
            ("CPS_NAME_PS", f"{h.given_name} {h.surname}", False),
            ("CPS_LANG_PS", "fr", False),
            ("CPS_INFO_PS", f"idnat={h.ps_idnat};profession={h.profession_code}", False),
            ("CPS_DATA", "", False),
            ("CPS_ACTIVITY_01_PS", "activity=cabinet;mode=liberal", True),
            ("CPS_SIT_FACT", "", True),
        ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _common_name(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def _ski(public_key: object) -> str:
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest.hex()  # type: ignore[arg-type]


def _cert_entry(cert: x509.Certificate, label: str, authority: bool) -> dict[str, object]:
    return {
        "der": _b64(cert.public_bytes(serialization.Encoding.DER)),
        "label": label,
        "id": _ski(cert.public_key()),
        "authority": authority,
    }


def _key_entry(ck: CertifiedKey, label: str, *, decrypt: bool) -> dict[str, object]:
    key = ck.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        from pkcs11.util.ec import encode_named_curve_parameters

        params = encode_named_curve_parameters(_curve_oid(key.curve))
        public = {"params": params.hex(), "point": (bytes([0x04, len(point)]) + point).hex()}
        is_ec = True
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        nums = key.public_key().public_numbers()
        public = {"n": _int_bytes(nums.n).hex(), "e": _int_bytes(nums.e).hex()}
        is_ec = False
    return {
        "der": _b64(der),
        "label": label,
        "id": _ski(ck.certificate.public_key()),
        "ec": is_ec,
        "decrypt": decrypt,
        "public": public,
    }


def _curve_oid(curve: ec.EllipticCurve) -> str:
    return {
        "secp256r1": "1.2.840.10045.3.1.7",
        "secp384r1": "1.3.132.0.34",
        "secp521r1": "1.3.132.0.35",
    }[curve.name]


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _serial_from(card_number: str) -> str:
    digits = "".join(ch for ch in card_number.partition("/")[2] if ch.isdigit())
    return (digits or "0")[-16:].rjust(10, "0")


def list_cards(cards_dir: str | os.PathLike[str] | None = None) -> list[dict[str, object]]:
    """The test cards in *cards_dir* with their label, serial, holder and state."""
    root = Path(cards_dir) if cards_dir is not None else default_cards_dir()
    cards: list[dict[str, object]] = []
    if not root.is_dir():
        return cards
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        meta_path = sub / "card.json"
        if not meta_path.exists() or not _tokenstate.exists(sub):
            continue
        meta = json.loads(meta_path.read_text())
        state = _tokenstate.read(sub)
        meta["present"] = state.present
        meta["pin_tries_left"] = state.pin_tries_left
        meta["directory"] = str(sub)
        cards.append(meta)
    return cards


def temporary_cards_dir() -> Iterator[Path]:
    """A throw-away cards directory (a generator for fixtures)."""
    with tempfile.TemporaryDirectory(prefix="cps-testcards-") as tmp:
        yield Path(tmp)
