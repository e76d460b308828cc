"""A virtual CPS4 (NXP chip, ChipDoc applet) that the ANS Cryptolib module drives.

The card side reuses the IAS-ECC engine (:mod:`cps_middleware.testing.iasecc`)
and the PKCS#15 content of the CPS3 image (:mod:`cps_middleware.testing.cps3image`);
:class:`ChipDocCard` adds what the ANS module's CPS4 driver (``card-cps4.c``,
``card-cps.c``, ``pkcs15-sec.c`` and ``cards.h`` of Cryptolib CPS 5.2, LGPL)
sends to a CPS4 and a CPS3 never gets. Those facts are data in
:data:`CPS4_PROFILE`:

* ATR compared byte for byte (``3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44``);
  every APDU on **logical channel 1** (CLA ``01``, ``11`` when chaining) after
  ``01 A4 04 04 08 80 25 00 00 01 FF 01 00`` (the ChipDoc applet, no MANAGE
  CHANNEL); fallback: IDS ``A0 00 00 01 51 00 00`` on channel 1, the CPS2ter
  applet ``80 25 00 00 01 FF 00 02`` on channel 0, ChipDoc again;
* ``SELECT 00 04 02 D0 03`` (EF.SN.ICC below the applet, 12 bytes, issuer id
  ``80 25 00 00 01``); paths of 4 bytes or more are cut to their last file id
  (``A4 09 04``), ``3F00`` alone is ``A4 00``; EF_ACTUA is not read for a CPS4;
* the PKCS#15 application ``E8 28 BD 08 0F 80 25 00 00 01 FF 00 10`` found in
  EF.DIR, as on a CPS3;
* authentication key reference ``0x20`` (hard-wired in the driver);
  decipher and PKCS#1 v1.5 authentication: ``MSE 41 B8 {83 01 20}`` then
  ``PSO DECIPHER 2A 80 86`` with command chaining and no padding-indicator byte:
  the card applies the raw RSA private operation (the host pads for a signature,
  strips the type-2 padding after a decipher);
* signatures computed by the card: ``MSE 81 B6 {91 02 <alg> <key ref | 80>}``
  then ``PSO CDS 2A 9E 9A`` with the hash; algorithm references ``0A``
  SHA-1 PKCS#1, ``28`` SHA-256 PKCS#1, ``15`` SHA-1 PSS, ``2C`` SHA-256 PSS
  (PSS: MGF1 with the same hash, salt as long as the hash);
* PIN status ``01 20 00 <ref>`` (no data: ``63 Cx`` / ``69 83``); unblock =
  VERIFY of the PUK, ``01 2C 03 <ref|80>`` (reset the counter), then
  ``01 24 01 <ref> Lc <new PIN>`` (CHANGE REFERENCE DATA with the new value only);
  a PIN change is VERIFY(old) then the same ``24 01``.

Free choices (the real card's values are not public) stay in
:class:`Cps4Layout`: file ids, the signature key reference, PIN references.

The ANS module caches a card's contents by serial number and, for a CPS4,
never checks EF_ACTUA: a virtual CPS4 with other contents needs another serial
(the default serial is derived from the contents).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cps_middleware.errors import TestCardError
from cps_middleware.testing.cps3image import (
    AUTH_CERT_LABEL,
    AUTH_KEY_LABEL,
    SIGN_CERT_LABEL,
    SIGN_KEY_LABEL,
    Cps3Layout,
    Cps3Objects,
    VirtualCps3,
    _bits,
    _int,
    _octets,
    _path,
    _seq,
    _utf8,
    build_cps3,
    rsa_key_pairs,
    serve,
)
from cps_middleware.testing.iasecc import (
    SW,
    CardRsaKey,
    DedicatedFile,
    ElementaryFile,
    IasEccCard,
    _CardError,
    _parse_tlvs,
    _pkcs1_sign,
    _rsa_raw_private,
    _tlv,
    digest_info,
)
from cps_middleware.testing.pki import CardCredentials
from cps_middleware.testing.vpcd import CPS4_AID_CHIPDOC, CPS4_AID_CPS2TER, CPS4_ATR

__all__ = [
    "AUTH_CERT_LABEL",
    "AUTH_KEY_LABEL",
    "CPS4_PROFILE",
    "SIGN_CERT_LABEL",
    "SIGN_KEY_LABEL",
    "ChipDocCard",
    "Cps4Layout",
    "Cps4Objects",
    "Cps4Profile",
    "VirtualCps4",
    "build_cps4",
    "build_cps4_from_credentials",
    "pss_encode",
]


@dataclass(frozen=True)
class Cps4Profile:
    """What the ANS CPS4 driver imposes on a card (read from its sources)."""

    atr: bytes = CPS4_ATR
    chipdoc_aid: bytes = CPS4_AID_CHIPDOC
    cps2ter_aid: bytes = CPS4_AID_CPS2TER
    ids_aid: bytes = bytes.fromhex("A0 00 00 01 51 00 00")
    pkcs15_aid: bytes = bytes.fromhex("E8 28 BD 08 0F 80 25 00 00 01 FF 00 10")
    channel: int = 1  #: the logical channel every APDU uses
    auth_key_ref: int = 0x20  #: CPS4_AUTH_PRIV_KEY_ID
    #: MSE SET DST (tag 91) algorithm references -> (hash, padding)
    signature_algorithms: dict[int, tuple[str, str]] = field(
        default_factory=lambda: {
            0x0A: ("sha1", "pkcs1"),
            0x28: ("sha256", "pkcs1"),
            0x15: ("sha1", "pss"),
            0x2C: ("sha256", "pss"),
        }
    )
    #: references the driver names but marks "not implemented" (the card refuses them)
    unimplemented_algorithms: tuple[int, ...] = (0x09, 0x1E, 0x27, 0x29, 0x2A, 0x2B, 0x2D, 0x2E)
    model: str = "ChipDoc"  #: what the module reports as the card model
    #: VERIFY without data when the PIN is verified already: the driver reads the
    #: counter only from ``63 Cx`` (``90 00`` leaves it at 0 and the module then
    #: flags the PIN LOCKED), so a ChipDoc must answer ``63 Cx`` (inferred)
    status_counter_when_verified: bool = True


CPS4_PROFILE = Cps4Profile()


@dataclass(frozen=True)
class Cps4Layout(Cps3Layout):
    """Free choices of the CPS4 image; the authentication key reference is imposed."""

    auth_key_ref: int = 0x20
    sign_key_ref: int = 0x21
    app_label: str = "CPS4 IAS"
    cps2ter_fid: int = 0x0002  #: DF of the (empty) CPS2ter applet


@dataclass(frozen=True)
class Cps4Objects(Cps3Objects):
    """What the CPS4 image exposes, for tests to compare with what middleware shows."""

    generation: str = "CPS4"


# --- PSS -------------------------------------------------------------------------------


def _mgf1(seed: bytes, length: int, algorithm: str) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.new(algorithm, seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def pss_encode(m_hash: bytes, em_bits: int, algorithm: str, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 9.1.1) of a message hash, MGF1 with the same hash."""
    h_len = len(m_hash)
    em_len = (em_bits + 7) // 8
    if em_len < h_len + len(salt) + 2:
        raise ValueError("modulus too short for this PSS encoding")
    h = hashlib.new(algorithm, b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - len(salt) - h_len - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1(h, len(db), algorithm), strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked) + h + b"\xbc"


# --- the card --------------------------------------------------------------------------


class ChipDocCard(IasEccCard):
    """The IAS-ECC engine plus the CPS4 forms of :data:`CPS4_PROFILE`.

    Logical channels 0-3 each keep their own current DF/EF (opened on first
    use, as the ANS module uses channel 1 without MANAGE CHANNEL); PIN
    verification and the prepared security environment are card-wide.
    """

    def __init__(self, *, profile: Cps4Profile = CPS4_PROFILE, **kwargs: Any) -> None:
        self.profile = profile
        super().__init__(**kwargs)

    def _clear(self) -> None:
        with self._lock:
            super()._clear()
            self._channels: dict[int, tuple[DedicatedFile, ElementaryFile | None]] = {}
            self._may_set_new: set[int] = set()  # PINs unblocked, waiting for a new value

    def _process(self, apdu: bytes) -> tuple[bytes, int]:
        if len(apdu) < 4 or apdu[0] == 0xFF or apdu[0] & 0x80:
            return super()._process(apdu)
        channel = apdu[0] & 0x03
        df, ef = self._channels.get(channel, (self.mf, None))
        self.current_df, self.current_ef = df, ef
        try:
            return super()._process(bytes([apdu[0] & ~0x03 & 0xFF]) + apdu[1:])
        finally:
            self._channels[channel] = (self.current_df, self.current_ef)

    def _select(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        out, sw = super()._select(p1, p2, data, le)
        if out[:1] == b"\x62" and (p2 & 0x0C) == 0x00:
            # P2 = 00 asks for the FCI: the module's ISO code wants the 6F template
            out = b"\x6f" + out[1:]
        return out, sw

    # -- PINs: CHANGE REFERENCE DATA with the new value only (P1 = 01) ----------------------

    def _change_reference_data(
        self, p1: int, p2: int, data: bytes, le: int | None
    ) -> tuple[bytes, int]:
        if p1 != 0x01:
            return super()._change_reference_data(p1, p2, data, le)
        pin = self._pin_for(p2)
        if not data:
            raise _CardError(SW.WRONG_LENGTH)
        if pin.blocked:
            raise _CardError(SW.AUTH_METHOD_BLOCKED)
        if pin.reference not in self.verified and pin.reference not in self._may_set_new:
            raise _CardError(SW.SECURITY_STATUS)
        pin.value = self._valid_new(pin, data)
        self._may_set_new.discard(pin.reference)
        return b"", SW.OK

    def _reset_retry_counter(
        self, p1: int, p2: int, data: bytes, le: int | None
    ) -> tuple[bytes, int]:
        out = super()._reset_retry_counter(p1, p2, data, le)
        if p1 in (0x01, 0x03):  # counter reset only: the new value comes with 24 01
            self._may_set_new.add(self._pin_for(p2).reference)
        return out

    def _verify(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        if data:
            self._may_set_new.clear()
        elif p1 == 0x00 and self.profile.status_counter_when_verified:
            pin = self._pin_for(p2)
            if not pin.blocked:
                return b"", 0x63C0 | min(pin.tries_left, 15)
        return super()._verify(p1, p2, data, le)

    # -- MSE: SET DST with the CPS4 tag 91 {alg, key ref} ----------------------------------

    def _mse(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        tlvs = list(_parse_tlvs(data)) if data else []
        if p2 != 0xB6 or not any(t == 0x91 for t, _ in tlvs):
            return super()._mse(p1, p2, data, le)
        if p1 not in (0x41, 0x81) or len(tlvs) != 1 or len(tlvs[0][1]) != 2:
            raise _CardError(SW.WRONG_DATA)
        alg, key_ref = tlvs[0][1]
        if alg not in self.profile.signature_algorithms:
            raise _CardError(SW.WRONG_DATA)
        if (key_ref & 0x7F) not in self.keys:
            raise _CardError(SW.DATA_NOT_FOUND)
        self._env[0xB6] = (key_ref, alg)
        return b"", SW.OK

    # -- PSO: CDS over a host hash (PKCS#1 v1.5 or PSS), raw DECIPHER -------------------

    def _pso(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        op = (p1 << 8) | p2
        env = self._env.get(0xB6)
        if op == 0x9E9A and env is not None and env[1] in self.profile.signature_algorithms:
            return self._pso_cds_cps4(data)
        if op == 0x8086 and self._raw_decipher(data):
            key, _ = self._key_for(0xB8, 2)
            return _rsa_raw_private(key.private_key, self._cryptogram(key, data)), SW.OK
        return super()._pso(p1, p2, data, le)

    @staticmethod
    def _modulus_bytes(key: CardRsaKey) -> int:
        return (key.private_key.key_size + 7) // 8

    def _raw_decipher(self, data: bytes) -> bool:
        env = self._env.get(0xB8)
        if env is None or env[0] is None or (env[0] & 0x7F) not in self.keys:
            return False
        return len(data) == self._modulus_bytes(self.keys[env[0] & 0x7F])

    def _cryptogram(self, key: CardRsaKey, data: bytes) -> bytes:
        if len(data) != self._modulus_bytes(key):
            raise _CardError(SW.WRONG_LENGTH)
        return data

    def _pso_cds_cps4(self, data: bytes) -> tuple[bytes, int]:
        key, alg = self._key_for(0xB6, 0)
        assert alg is not None
        algorithm, scheme = self.profile.signature_algorithms[alg]
        size = hashlib.new(algorithm).digest_size
        if len(data) != size:
            raise _CardError(SW.WRONG_LENGTH)
        if scheme == "pkcs1":
            return _pkcs1_sign(key.private_key, digest_info(algorithm, data)), SW.OK
        em = pss_encode(data, key.private_key.key_size - 1, algorithm, os.urandom(size))
        em = em.rjust(self._modulus_bytes(key), b"\x00")
        return _rsa_raw_private(key.private_key, em), SW.OK


# --- the image -------------------------------------------------------------------------


def _aodf(lay: Cps4Layout) -> bytes:
    """The holder PIN and the PUK (the module's SO PIN: what C_Login(CKU_SO) verifies)."""

    def auth_object(label: str, auth_id: int, flags: bytes, ref: int, min_len: int) -> bytes:
        return _seq(
            _seq(_utf8(label), _bits(0)),  # label, flags: private
            _seq(_octets(bytes([auth_id]))),
            _tlv(0xA1, _seq(
                flags,
                b"\x0a\x01\x01",  # ascii-numeric
                _int(min_len), _int(8), _int(8),  # min, stored, max length
                _tlv(0x80, bytes([ref])),
                _octets(b"\xff"),
                _path(0x3F00),
            )),
        )  # fmt: skip

    return auth_object("PIN", 0x01, _bits(4), lay.pin_ref, 4) + auth_object(
        "PUK", 0x02, _bits(4, 6, 7), lay.puk_ref, 8  # initialized, unblockingPin, soPin
    )



def _default_serial(auth: bytes, sign: bytes, layout: Cps4Layout) -> str:
    h = hashlib.sha256(b"CPS4" + auth + sign + repr(layout).encode()).digest()
    return "29" + f"{int.from_bytes(h[:8], 'big') % 10**8:08d}"


def build_cps4(
    *,
    authentication: tuple[x509.Certificate, rsa.RSAPrivateKey],
    signature: tuple[x509.Certificate, rsa.RSAPrivateKey],
    serial: str | None = None,
    layout: Cps4Layout | None = None,
    profile: Cps4Profile = CPS4_PROFILE,
    updated: _dt.datetime | None = None,
    log: bool = False,
    **kwargs: Any,
) -> tuple[ChipDocCard, Cps4Objects]:
    """A CPS4 (contact) holding two (certificate, private key) pairs.

    Same arguments as :func:`~cps_middleware.testing.cps3image.build_cps3`
    (PIN, PUK, counters, data objects ...). *serial*: 10 digits, by default
    derived from the contents (starting ``29``). The ChipDoc applet is the
    card's root DF (selecting its AID selects ``3F00``), the PKCS#15
    application and the CPS2ter applet are DFs below it.
    """
    lay = layout or Cps4Layout()
    if lay.auth_key_ref != profile.auth_key_ref:
        raise TestCardError(
            f"the ANS CPS4 driver uses key {profile.auth_key_ref:#04x} for authentication"
        )
    if (lay.sign_key_ref & 0x7F) == (lay.auth_key_ref & 0x7F):
        raise TestCardError("the two keys need different references")
    for name, (cert, _key) in (("authentication", authentication), ("signature", signature)):
        if not isinstance(cert, x509.Certificate):
            raise TestCardError(f"the {name} certificate is not an X.509 certificate")
    if serial is None:
        serial = _default_serial(
            authentication[0].public_bytes(serialization.Encoding.DER),
            signature[0].public_bytes(serialization.Encoding.DER),
            lay,
        )
    base, objects = build_cps3(
        authentication=authentication,
        signature=signature,
        serial=serial,
        layout=lay,
        updated=updated,
        **kwargs,
    )
    mf = base.mf
    mf.aid = profile.chipdoc_aid
    app = mf.child(lay.app_fid)
    assert isinstance(app, DedicatedFile)
    aodf = app.child(lay.aodf_fid)
    assert isinstance(aodf, ElementaryFile)
    aodf.data = _aodf(lay)
    mf.children.append(DedicatedFile(lay.cps2ter_fid, [], aid=profile.cps2ter_aid))
    keys = [
        # CDS (PSS authentication), INT-AUTH and DECIPHER (raw RSA) after the PIN
        CardRsaKey(lay.auth_key_ref, base.keys[lay.auth_key_ref & 0x7F].private_key,
                   acl=bytes.fromhex("7B 11 11 11 FF FF 00")),
        # CDS after the PIN only: the non-repudiation key
        CardRsaKey(lay.sign_key_ref, base.keys[lay.sign_key_ref & 0x7F].private_key,
                   acl=bytes.fromhex("7B 11 FF FF FF FF 00")),
    ]  # fmt: skip
    card = ChipDocCard(
        profile=profile,
        atr=profile.atr,
        mf=mf,
        pins=base.pins.values(),
        keys=keys,
        security_environments=base.security_environments.values(),
        log=log,
    )
    fields = {f: getattr(objects, f) for f in Cps3Objects.__dataclass_fields__}
    return card, Cps4Objects(**fields)


def build_cps4_from_credentials(
    credentials: CardCredentials, **kwargs: Any
) -> tuple[ChipDocCard, Cps4Objects]:
    """:func:`build_cps4` from the test PKI's :class:`CardCredentials`."""
    auth, sign = rsa_key_pairs(credentials, "CPS4")
    return build_cps4(authentication=auth, signature=sign, **kwargs)


class VirtualCps4(VirtualCps3):
    """A virtual CPS4 in a vpcd reader: the ChipDoc image plus its PC/SC plumbing.

    Same surface as :class:`~cps_middleware.testing.cps3image.VirtualCps3`:
    ``card`` (counters, APDU count), ``objects``, ``reader``, :meth:`insert`,
    :meth:`remove`, :meth:`reset`, :meth:`reinsert`, PIN controls.
    """

    generation = "CPS4"
    layout_class = Cps4Layout

    @staticmethod
    def _build(credentials: CardCredentials, **image: Any) -> tuple[ChipDocCard, Cps4Objects]:
        return build_cps4_from_credentials(credentials, **image)


def main(argv: list[str] | None = None) -> int:
    """``python -m cps_middleware.testing.cps4image``: a virtual CPS4 until Ctrl-C."""
    return serve(VirtualCps4, argv, "a virtual CPS4 until Ctrl-C")


if __name__ == "__main__":
    raise SystemExit(main())
