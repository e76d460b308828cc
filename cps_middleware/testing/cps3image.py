"""A CPS3 card image for the IAS-ECC engine, built from test credentials.

:func:`build_cps3` lays out what a CPS3 presents on its contact interface
(VIRTUAL_CPS3.md): EF.ATR, EF.SN.ICC, EF.DIR, EF_ACTUA, the IAS application
DF with the real AID, its PKCS#15 structure (ODF, TokenInfo with
``supportedAlgorithms``, AODF, PrKDF, CDF), the authentication key ``0x82``
and the signature key ``0x81`` with their certificates, labels as the
middleware shows them, the holder PIN (3 tries) and the PUK (8 digits, 10
tries, 100 uses). It returns an :class:`~cps_middleware.testing.iasecc.IasEccCard`.

Middlewares cache a card's contents by serial number and EF_ACTUA dates: the
default serial is derived from the content (certificates, labels), so a card
with other contents gets another serial.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cps_middleware.errors import TestCardError
from cps_middleware.testing.iasecc import (
    CardPin,
    CardRsaKey,
    DedicatedFile,
    ElementaryFile,
    IasEccCard,
    SecurityEnvironment,
    _tlv,
)
from cps_middleware.testing.pki import CardCredentials
from cps_middleware.testing.vpcd import CPS3_AID, CPS3_ATR, Keypad, VirtualCard

__all__ = [
    "CPS3_AID",
    "CPS3_ATR",
    "Cps3Layout",
    "Cps3Objects",
    "VirtualCps3",
    "build_cps3",
    "build_cps3_from_credentials",
    "rsa_key_pairs",
]

ANS_ISSUER_ID = bytes.fromhex("8025000001")

AUTH_CERT_LABEL = "Certificat d'Authentification CPS"
SIGN_CERT_LABEL = "Certificat de Signature CPS"
AUTH_KEY_LABEL = "CPS_PRIV_AUT"
SIGN_KEY_LABEL = "CPS_PRIV_SIG"

# PKCS#11 mechanisms, IAS-ECC algorithm references and PKCS#15 operations for
# TokenInfo.supportedAlgorithms (OpenSC's CPx profile reads the references there).
_CKM_RSA_PKCS, _CKM_SHA1_RSA_PKCS, _CKM_SHA256_RSA_PKCS = 0x01, 0x06, 0x40
_CKM_SHA_1, _CKM_SHA256 = 0x220, 0x250
_OP_SIGN, _OP_DECIPHER, _OP_HASH = 1, 5, 6  # bit numbers of supportedOperations
_ALGORITHMS = (
    (1, _CKM_RSA_PKCS, _OP_SIGN, 0x02),
    (2, _CKM_SHA1_RSA_PKCS, _OP_SIGN, 0x12),
    (3, _CKM_SHA256_RSA_PKCS, _OP_SIGN, 0x42),
    (4, _CKM_SHA_1, _OP_HASH, 0x10),
    (5, _CKM_SHA256, _OP_HASH, 0x40),
    (6, _CKM_RSA_PKCS, _OP_DECIPHER, 0x1A),
)


@dataclass(frozen=True)
class Cps3Layout:
    """Free choices of the image (the real card's values are not public)."""

    app_fid: int = 0x0001
    odf_fid: int = 0x5031
    tokeninfo_fid: int = 0x5032
    aodf_fid: int = 0x7001
    prkdf_fid: int = 0x7002
    cdf_fid: int = 0x7004
    dodf_fid: int = 0x7005
    data_first_fid: int = 0xD101  # data objects' files: D101, D102 ...
    auth_cert_fid: int = 0xC001
    sign_cert_fid: int = 0xC002
    auth_key_ref: int = 0x82
    sign_key_ref: int = 0x81
    pin_ref: int = 0x01
    puk_ref: int = 0x02
    token_label: str = "CPS"
    manufacturer: str = "ANS"
    app_label: str = "CPS3 IAS"
    puk_in_aodf: bool = True  # the PUK's AODF entry (the ANS module needs it to unblock)


@dataclass(frozen=True)
class Cps3Objects:
    """What the image exposes, for tests to compare with what middleware shows."""

    serial: str  # 10 digits, BCD in EF.SN.ICC
    token_label: str
    auth_id: bytes  # CKA_ID of the authentication key and certificate
    sign_id: bytes
    auth_certificate: x509.Certificate
    sign_certificate: x509.Certificate


# --- DER --------------------------------------------------------------------------------


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def _bits(*bits: int) -> bytes:
    """BIT STRING with the named bits set (bit 0 = most significant), DER-minimal."""
    n = max(bits) + 1
    value = bytearray((n + 7) // 8)
    for b in bits:
        value[b // 8] |= 0x80 >> (b % 8)
    return _tlv(0x03, bytes([len(value) * 8 - n]) + bytes(value))


def _utf8(s: str) -> bytes:
    return _tlv(0x0C, s.encode())


def _octets(b: bytes) -> bytes:
    return _tlv(0x04, b)


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _path(*fids: int) -> bytes:
    return _seq(_octets(b"".join(f.to_bytes(2, "big") for f in fids)))


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


# --- the image ------------------------------------------------------------------------


def _key_id(key: rsa.RSAPublicKey) -> bytes:
    n = key.public_numbers().n
    return hashlib.sha1(n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()


def _check_pair(name: str, cert: x509.Certificate, key: object) -> rsa.RSAPrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TestCardError(f"the {name} key must be RSA (a CPS3 holds RSA-2048 keys)")
    pub = cert.public_key()
    if not isinstance(pub, rsa.RSAPublicKey) or pub.public_numbers() != (
        key.public_key().public_numbers()
    ):
        raise TestCardError(f"the {name} certificate does not match its private key")
    return key


def _default_serial(auth: bytes, sign: bytes, layout: Cps3Layout) -> str:
    h = hashlib.sha256(auth + sign + repr(layout).encode()).digest()
    return "28" + f"{int.from_bytes(h[:8], 'big') % 10**8:08d}"


def build_cps3(
    *,
    authentication: tuple[x509.Certificate, rsa.RSAPrivateKey],
    signature: tuple[x509.Certificate, rsa.RSAPrivateKey],
    pin: str = "1234",
    puk: str = "12345678",
    pin_tries: int = 3,
    pin_tries_left: int | None = None,
    puk_tries: int = 10,
    puk_uses: int = 100,
    serial: str | None = None,
    updated: _dt.datetime | None = None,
    layout: Cps3Layout | None = None,
    data_objects: Sequence[tuple[str, bytes, bool]] | None = None,
    log: bool = False,
) -> tuple[IasEccCard, Cps3Objects]:
    """A CPS3 (contact interface) holding two (certificate, private key) pairs.

    *serial*: 10 digits (default: derived from the contents, so that another
    content gets another serial); *updated*: EF_ACTUA's date (default: now).
    *data_objects*: ``(label, value, private)`` for the PKCS#15 data objects;
    by default the CPS labels of DOMAIN.md with placeholder values taken from
    the certificate (the real CPS2ter data formats are not public), the
    ``ACTIVITY`` and ``SIT_FACT`` ones readable only after the PIN.
    Raises :class:`~cps_middleware.errors.TestCardError` on bad arguments.
    """
    lay = layout or Cps3Layout()
    auth_key = _check_pair("authentication", *authentication)
    sign_key = _check_pair("signature", *signature)
    if not (pin.isdigit() and 4 <= len(pin) <= 8):
        raise TestCardError("the holder PIN must be 4 to 8 digits")
    if not (puk.isdigit() and len(puk) == 8):
        raise TestCardError("the unblocking code (PUK) must be 8 digits")
    if not 1 <= pin_tries <= 15 or not 1 <= puk_tries <= 15:
        raise TestCardError("try counters must be between 1 and 15")
    auth_der = authentication[0].public_bytes(serialization.Encoding.DER)
    sign_der = signature[0].public_bytes(serialization.Encoding.DER)
    serial = serial or _default_serial(auth_der, sign_der, lay)
    if not (serial.isdigit() and len(serial) == 10):
        raise TestCardError("the card serial must be 10 digits")
    when = (updated or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%d%H%M%S")
    auth_id = _key_id(auth_key.public_key())
    sign_id = _key_id(sign_key.public_key())
    app_path = (0x3F00, lay.app_fid)

    # PKCS#15 -------------------------------------------------------------------------
    odf = (
        _tlv(0xA8, _path(*app_path, lay.aodf_fid))
        + _tlv(0xA0, _path(*app_path, lay.prkdf_fid))
        + _tlv(0xA4, _path(*app_path, lay.cdf_fid))
        + _tlv(0xA7, _path(*app_path, lay.dodf_fid))
    )
    algorithms = b"".join(
        _seq(_int(ref), _int(mech), b"\x05\x00", _bits(op), _int(alg_ref))
        for ref, mech, op, alg_ref in _ALGORITHMS
    )
    tokeninfo = _seq(
        _int(0),
        _octets(_bcd(serial)),
        _utf8(lay.manufacturer),
        _tlv(0x80, lay.token_label.encode()),
        _bits(0, 1),  # readOnly, loginRequired
        _tlv(0xA2, algorithms),
    )
    aodf = _seq(
        _seq(_utf8("PIN"), _bits(0)),  # label, flags: private
        _seq(_octets(b"\x01")),  # authId
        _tlv(
            0xA1,
            _seq(
                _bits(4),  # initialized
                b"\x0a\x01\x01",  # ascii-numeric
                _int(4),
                _int(8),  # storedLength
                _int(8),  # maxLength
                _tlv(0x80, bytes([lay.pin_ref])),
                _octets(b"\xff"),
                _path(0x3F00),
            ),
        ),
    )
    if lay.puk_in_aodf:
        # The unblocking code: without it the ANS module answers C_Login(CKU_SO)
        # with CKR_GENERAL_ERROR ("Requested object not found") and sends no VERIFY.
        aodf += _seq(
            _seq(_utf8("PUK"), _bits(0)),
            _seq(_octets(b"\x02")),
            _tlv(
                0xA1,
                _seq(
                    _bits(4, 6, 7),  # initialized, unblockingPin, soPin
                    b"\x0a\x01\x01",  # ascii-numeric
                    _int(8),
                    _int(8),
                    _int(8),
                    _tlv(0x80, bytes([lay.puk_ref])),
                    _octets(b"\xff"),
                    _path(0x3F00),
                ),
            ),
        )

    def prkey(label: str, key_id: bytes, usage: bytes, ref: int, size: int) -> bytes:
        return _seq(
            _seq(_utf8(label), _bits(0), _octets(b"\x01")),  # private, authId 01
            _seq(_octets(key_id), usage, _bits(0, 2, 3, 4), _int(ref)),
            _tlv(0xA1, _seq(_path(*app_path), _int(size))),
        )

    prkdf = prkey(
        AUTH_KEY_LABEL, auth_id, _bits(1, 2), lay.auth_key_ref, auth_key.key_size
    ) + prkey(SIGN_KEY_LABEL, sign_id, _bits(9), lay.sign_key_ref, sign_key.key_size)

    def cert_obj(label: str, key_id: bytes, fid: int) -> bytes:
        return _seq(
            _seq(_utf8(label)),
            _seq(_octets(key_id)),
            _tlv(0xA1, _seq(_path(*app_path, fid))),
        )

    cdf = cert_obj(AUTH_CERT_LABEL, auth_id, lay.auth_cert_fid) + cert_obj(
        SIGN_CERT_LABEL, sign_id, lay.sign_cert_fid
    )

    if data_objects is None:
        data_objects = _default_data_objects(authentication[0], serial)
    dodf = b""
    data_files: list[ElementaryFile] = []
    for i, (label, value, private) in enumerate(data_objects):
        fid = lay.data_first_fid + i
        common = _seq(_utf8(label), _bits(0), _octets(b"\x01")) if private else _seq(_utf8(label))
        dodf += _seq(common, _seq(_utf8("CPS")), _tlv(0xA1, _path(*app_path, fid)))
        data_files.append(ElementaryFile(fid, value, read_scb=0x11 if private else 0x00))

    # files ---------------------------------------------------------------------------
    ef_atr = (
        b"\x80"
        + _tlv(0x43, b"\xb8")
        + _tlv(0x46, bytes.fromhex("00000010"))  # IC manufacturer/type, OS, IAS-ECC version
        + _tlv(0x47, bytes.fromhex("940180"))
        + _tlv(0xE0, bytes.fromhex("020200FF020200FF020200E7020200E7"))  # I/O buffer sizes
        + _tlv(0x82, b"\x90\x00")
    )
    ef_sn = _tlv(0x5A, ANS_ISSUER_ID + _bcd(serial))
    ef_dir = _tlv(
        0x61,
        _tlv(0x4F, CPS3_AID)
        + _tlv(0x50, lay.app_label.encode())
        + _tlv(0x51, bytes.fromhex("3F00") + lay.app_fid.to_bytes(2, "big")),
    )
    ef_actua = _tlv(0xEC, _tlv(0x81, _bcd(when)) + _tlv(0x82, _bcd(when)))
    app = DedicatedFile(
        lay.app_fid,
        [
            ElementaryFile(lay.odf_fid, odf),
            ElementaryFile(lay.tokeninfo_fid, tokeninfo),
            ElementaryFile(lay.aodf_fid, aodf),
            ElementaryFile(lay.prkdf_fid, prkdf),
            ElementaryFile(lay.cdf_fid, cdf),
            ElementaryFile(lay.auth_cert_fid, auth_der),
            ElementaryFile(lay.sign_cert_fid, sign_der),
            ElementaryFile(lay.dodf_fid, dodf),
            *data_files,
        ],
        aid=CPS3_AID,
    )
    mf = DedicatedFile(
        0x3F00,
        [
            ElementaryFile(0x2F01, ef_atr),
            ElementaryFile(0xD003, ef_sn, sfi=0x1C),
            ElementaryFile(0x2F00, ef_dir, sfi=0x1E),
            ElementaryFile(0xD010, ef_actua),
            app,
        ],
    )
    pins = [
        CardPin(
            lay.pin_ref,
            pin.encode(),
            max_tries=pin_tries,
            tries_left=pin_tries if pin_tries_left is None else pin_tries_left,
        ),
        CardPin(
            lay.puk_ref,
            puk.encode(),
            max_tries=puk_tries,
            tries_left=puk_tries,
            min_length=8,
            max_length=8,
            acl=bytes.fromhex("23 00 FF 00"),  # verify always, put never, get always
            uses_left=puk_uses,
        ),
    ]
    user_auth = bytes.fromhex("950108")  # usage qualifier: user password
    ses = [
        SecurityEnvironment(1, [_tlv(0xA4, _tlv(0x83, bytes([lay.pin_ref])) + user_auth)]),
        SecurityEnvironment(2, [_tlv(0xA4, _tlv(0x83, bytes([lay.puk_ref])) + user_auth)]),
    ]
    keys = [
        # CDS never, INT-AUTH and DECIPHER after the PIN (SE 1), get data always
        CardRsaKey(lay.auth_key_ref, auth_key, acl=bytes.fromhex("7B FF 11 11 FF FF 00")),
        # CDS after the PIN, no INT-AUTH nor DECIPHER: a non-repudiation key
        CardRsaKey(lay.sign_key_ref, sign_key, acl=bytes.fromhex("7B 11 FF FF FF FF 00")),
    ]
    card = IasEccCard(atr=CPS3_ATR, mf=mf, pins=pins, keys=keys, security_environments=ses, log=log)
    objects = Cps3Objects(
        serial=serial,
        token_label=lay.token_label,
        auth_id=auth_id,
        sign_id=sign_id,
        auth_certificate=authentication[0],
        sign_certificate=signature[0],
    )
    return card, objects


def _default_data_objects(cert: x509.Certificate, serial: str) -> list[tuple[str, bytes, bool]]:
    def attr(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    name = f"{attr(x509.NameOID.GIVEN_NAME)} {attr(x509.NameOID.SURNAME)}".strip()
    title = attr(x509.NameOID.TITLE)
    public = [
        ("CPS_ID_CARD", f"{ANS_ISSUER_ID.hex()}/{serial}".encode()),
        ("CPS_NAME_PS", name.encode()),
        ("CPS_LANG_PS", b"fr"),
        ("CPS_INFO_PS", f"{attr(x509.NameOID.COMMON_NAME)} {title}".encode()),
        ("CPS_DATA", b""),
    ]
    return [(label, value, False) for label, value in public] + [
        ("CPS_ACTIVITY_01_PS", f"{title}".encode(), True),
        ("CPS_SIT_FACT", b"", True),
    ]


def build_cps3_from_credentials(
    credentials: CardCredentials, **kwargs: Any
) -> tuple[IasEccCard, Cps3Objects]:
    """:func:`build_cps3` from the test PKI's :class:`CardCredentials`."""
    auth, sign = rsa_key_pairs(credentials, "CPS3")
    return build_cps3(authentication=auth, signature=sign, **kwargs)


def rsa_key_pairs(
    credentials: CardCredentials, generation: str
) -> tuple[tuple[x509.Certificate, rsa.RSAPrivateKey], tuple[x509.Certificate, rsa.RSAPrivateKey]]:
    """The authentication and signature (certificate, key) pairs of a card image;
    TestCardError unless both keys are RSA (CPS3 and CPS4 hold RSA keys)."""
    auth, sign = credentials.authentication, credentials.signature
    if not isinstance(auth.private_key, rsa.RSAPrivateKey) or not isinstance(
        sign.private_key, rsa.RSAPrivateKey
    ):
        raise TestCardError(
            f"a {generation} holds RSA keys: issue the card with key_type='rsa2048'"
        )
    return (auth.certificate, auth.private_key), (sign.certificate, sign.private_key)


class VirtualCps3:
    """A virtual CPS3 in a vpcd reader: the IAS-ECC image plus its PC/SC plumbing.

    ``card`` is the :class:`IasEccCard` (PIN counters, APDU count), ``objects``
    what middleware should show, ``reader`` the PC/SC reader name. The card is
    built once; :meth:`insert` / :meth:`remove` move it in and out of the
    reader and keep its state (a pulled card keeps its counters), :meth:`reset`
    gives back full counters and the issued PIN.

    A subclass for another generation sets ``generation``, ``layout_class`` and
    :meth:`_build` (see :class:`~cps_middleware.testing.cps4image.VirtualCps4`).
    """

    generation = "CPS3"
    layout_class: type[Any] = Cps3Layout

    @staticmethod
    def _build(credentials: CardCredentials, **image: Any) -> tuple[IasEccCard, Any]:
        return build_cps3_from_credentials(credentials, **image)

    def __init__(
        self,
        credentials: CardCredentials,
        *,
        port: int = 35965,
        reader: str | None = None,
        **image: Any,
    ) -> None:
        self.credentials = credentials
        self._image = dict(image)
        self.card, self.objects = self._build(credentials, **image)
        self.layout = image.get("layout") or self.layout_class()
        self.pin = str(image.get("pin", "1234"))
        self.puk = str(image.get("puk", "12345678"))
        self.vpcd = VirtualCard(self.card, port=port, reader=reader)

    @property
    def reader(self) -> str:
        return self.vpcd.reader

    @property
    def inserted(self) -> bool:
        return self.vpcd.inserted

    @property
    def keypad(self) -> Keypad:
        """The keys typed when the card is in a PIN-pad reader (port 35969)."""
        return self.vpcd.keypad

    def insert(self, *, timeout: float = 10.0) -> None:
        """Put the card in the reader; returns once pcscd shows it."""
        self.vpcd.insert(timeout=timeout)

    def remove(self, *, timeout: float = 10.0) -> None:
        """Pull the card; returns once pcscd shows the reader empty."""
        self.vpcd.remove(timeout=timeout)

    def block_pin(self) -> None:
        """Block the holder PIN, as three wrong entries would."""
        self.card.block_pin(self.layout.pin_ref)

    def set_pin_tries(self, tries_left: int) -> None:
        """Put the holder PIN's counter at *tries_left* (1 = final try, 0 = blocked)."""
        self.card.set_tries(tries_left, self.layout.pin_ref)

    def block_puk(self) -> None:
        """Block the unblocking code too: the card can no longer be unblocked."""
        self.card.block_pin(self.layout.puk_ref)

    @property
    def pin_tries_left(self) -> int:
        return self.card.pin(self.layout.pin_ref).tries_left

    @property
    def puk_tries_left(self) -> int:
        return self.card.pin(self.layout.puk_ref).tries_left

    def _pin_state(self) -> list[tuple[int, bytes, int, int | None]]:
        return [(p.reference, p.value, p.tries_left, p.uses_left)
                for p in sorted(self.card.pins.values(), key=lambda p: p.reference)]  # fmt: skip

    def reset(self) -> bool:
        """Back to the issued state: issued PIN and PUK, full counters, nothing verified.

        Returns whether a PIN or counter had changed: middleware keeps what it
        read of the PIN state until the card is reinserted (see :meth:`reinsert`).
        """
        before = self._pin_state()
        fresh, _ = self._build(self.credentials, **self._image)
        self.card.replace_pins(fresh.pins.values())
        return self._pin_state() != before

    def reinsert(self, *, timeout: float = 10.0) -> None:
        """Pull the card and put it back (middleware forgets its sessions and state)."""
        if self.inserted:
            self.remove(timeout=timeout)
        self.insert(timeout=timeout)

    def __enter__(self) -> Self:
        self.insert()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def serve(card_class: type[VirtualCps3], argv: list[str] | None, description: str) -> int:
    """Put a card of ``card_class`` issued by the test PKI in a vpcd reader until Ctrl-C."""
    import argparse
    import signal
    import threading

    from cps_middleware.testing.pki import TestHolder, TestPki

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=35965)
    ap.add_argument("--reader", default=None, help="reader name, for another vpcd layout")
    ap.add_argument("--pin", default="1234")
    ap.add_argument("--puk", default="12345678")
    ap.add_argument("--seed", default="cps-middleware", help="test PKI seed")
    ap.add_argument("--given-name", default="JEAN")
    ap.add_argument("--surname", default="MEDECIN-TEST")
    args = ap.parse_args(argv)
    holder = TestHolder(given_name=args.given_name, surname=args.surname)
    card = card_class(
        TestPki(seed=args.seed).issue_card(holder),
        port=args.port,
        reader=args.reader,
        pin=args.pin,
        puk=args.puk,
    )
    card.insert()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"virtual {card.generation} in {card.reader!r}: serial {card.objects.serial}, "
          f"PIN {card.pin}, PUK {card.puk} (Ctrl-C to remove it)", flush=True)  # fmt: skip
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        card.remove()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cps_middleware.testing.cps3image``: a virtual CPS3 until Ctrl-C.

    Puts a CPS3 issued by the test PKI in a vpcd reader and serves it, so that
    any PC/SC program (``pkcs11-tool --module opensc-pkcs11.so``, a browser, the
    ANS middleware) can use it; prints the reader, serial, PIN and PUK.
    """
    return serve(VirtualCps3, argv, "a virtual CPS3 until Ctrl-C")


if __name__ == "__main__":
    raise SystemExit(main())
