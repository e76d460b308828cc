"""Minimal DER walk over X.509 certificates and CRLs, for the batch validator.

Building ``cryptography``'s Python objects for every field of a certificate
costs tens of microseconds; the batch validator needs only a handful of facts
per holder certificate (issuer name bytes, validity window, serial, key usage,
a few extension values, the signed bytes and the signature). This module reads
exactly those, straight from the DER, and rejects what is not strict DER.

Everything here raises :class:`DerError` (with a reason a person can read) on
bad input and nothing else; callers turn it into a ``MALFORMED`` result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_public_key

__all__: list[str] = []  # private module

# Raw OID contents (the bytes after tag and length) of what we read.
OID_BASIC_CONSTRAINTS = bytes.fromhex("551d13")  # 2.5.29.19
OID_KEY_USAGE = bytes.fromhex("551d0f")  # 2.5.29.15
OID_EXT_KEY_USAGE = bytes.fromhex("551d25")  # 2.5.29.37
OID_CERT_POLICIES = bytes.fromhex("551d20")  # 2.5.29.32
OID_SKI = bytes.fromhex("551d0e")  # 2.5.29.14
OID_AKI = bytes.fromhex("551d23")  # 2.5.29.35
OID_SAN = bytes.fromhex("551d11")  # 2.5.29.17
OID_NAME_CONSTRAINTS = bytes.fromhex("551d1e")  # 2.5.29.30
OID_CRL_DP = bytes.fromhex("551d1f")  # 2.5.29.31
OID_CRL_REASON = bytes.fromhex("551d15")  # 2.5.29.21
OID_INVALIDITY_DATE = bytes.fromhex("551d18")  # 2.5.29.24
OID_ANY_POLICY = bytes.fromhex("551d2000")  # 2.5.29.32.0
OID_ANY_EKU = bytes.fromhex("551d2500")  # 2.5.29.37.0

# keyUsage bit numbers (RFC 5280 4.2.1.3); a parsed keyUsage is an int with
# bit n set for usage n, -1 when the extension is absent (= unrestricted).
KU_BITS = {
    "digital_signature": 0,
    "non_repudiation": 1,
    "content_commitment": 1,
    "key_encipherment": 2,
    "data_encipherment": 3,
    "key_agreement": 4,
    "key_cert_sign": 5,
    "crl_sign": 6,
    "encipher_only": 7,
    "decipher_only": 8,
}
KU_KEY_CERT_SIGN = 1 << 5
KU_CRL_SIGN = 1 << 6


class DerError(ValueError):
    """The bytes are not a DER certificate/CRL this module can read."""


def _tlv(b: bytes, i: int, end: int) -> tuple[int, int, int]:
    """Read one TLV header at ``i``: (tag, content start, content end)."""
    if i + 2 > end:
        raise DerError("truncated DER")
    tag = b[i]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used in certificates")
    n = b[i + 1]
    i += 2
    if n < 0x80:
        e = i + n
    elif n == 0x81:
        if i + 1 > end:
            raise DerError("truncated DER length")
        n = b[i]
        if n < 0x80:
            raise DerError("non-minimal DER length")
        i += 1
        e = i + n
    elif n == 0x82:
        if i + 2 > end:
            raise DerError("truncated DER length")
        n = (b[i] << 8) | b[i + 1]
        if n < 0x100:
            raise DerError("non-minimal DER length")
        i += 2
        e = i + n
    elif n == 0x83:
        if i + 3 > end:
            raise DerError("truncated DER length")
        n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2]
        if n < 0x10000:
            raise DerError("non-minimal DER length")
        i += 3
        e = i + n
    else:
        raise DerError("indefinite or oversized DER length")
    if e > end:
        raise DerError("DER length runs past its container")
    return tag, i, e


def integer(v: bytes, what: str = "INTEGER") -> int:
    """DER INTEGER contents → int; refuses empty and non-minimal encodings (X.690 8.3.2)."""
    if not v:
        raise DerError(f"empty {what}")
    if len(v) > 1 and ((v[0] == 0 and v[1] < 0x80) or (v[0] == 0xFF and v[1] >= 0x80)):
        raise DerError(f"non-minimal {what}")
    return int.from_bytes(v, "big", signed=True)


def _time(b: bytes, tag: int, s: int, e: int) -> bytes:
    """UTCTime / GeneralizedTime → 15 ASCII bytes ``YYYYMMDDHHMMSSZ``."""
    v = b[s:e]
    if tag == 0x17 and e - s == 13:
        if not (v[:12].isdigit() and v[12] == 0x5A):
            raise DerError("bad UTCTime")
        return (b"19" if v[0] >= 0x35 else b"20") + v
    if tag == 0x18 and e - s == 15:
        if not (v[:14].isdigit() and v[14] == 0x5A) or v[:4] == b"0000":
            raise DerError("bad GeneralizedTime")
        return v
    raise DerError("bad time encoding")


def times_to_epoch(stamps: list[bytes]) -> npt.NDArray[np.int64]:
    """Vectorised ``YYYYMMDDHHMMSSZ`` → seconds since 1970 (int64).

    Raises DerError naming the first impossible date (month 13, 31 February...).
    """
    if len(stamps) < 24:  # numpy's per-call cost exceeds the work for a few stamps
        return np.array([_epoch_one(x) for x in stamps], dtype=np.int64)
    a = np.frombuffer(b"".join(stamps), dtype=np.uint8).reshape(-1, 15).astype(np.int64) - 48
    y = a[:, 0] * 1000 + a[:, 1] * 100 + a[:, 2] * 10 + a[:, 3]
    mo = a[:, 4] * 10 + a[:, 5]
    d = a[:, 6] * 10 + a[:, 7]
    hh = a[:, 8] * 10 + a[:, 9]
    mi = a[:, 10] * 10 + a[:, 11]
    ss = a[:, 12] * 10 + a[:, 13]
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    mdays = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    ok = (y >= 1) & (mo >= 1) & (mo <= 12) & (hh < 24) & (mi < 60) & (ss < 60) & (d >= 1)
    mlen = mdays[np.clip(mo - 1, 0, 11)] + ((mo == 2) & leap)
    ok &= d <= mlen
    if not ok.all():
        bad = stamps[int(np.argmin(ok))]
        raise DerError(f"impossible date {bad.decode('ascii', 'replace')}")
    # days from civil (H. Hinnant), vectorised
    yy = y - (mo <= 2)
    era = yy // 400
    yoe = yy - era * 400
    mp = (mo + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    out: npt.NDArray[np.int64] = days * 86400 + hh * 3600 + mi * 60 + ss
    return out


_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _epoch_one(stamp: bytes) -> int:
    """One ``YYYYMMDDHHMMSSZ`` → epoch seconds, with the same checks as the vectorised path."""
    y, mo, d = int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8])
    hh, mi, ss = int(stamp[8:10]), int(stamp[10:12]), int(stamp[12:14])
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    if not stamp[:14].isdigit() or not (
        y >= 1
        and 1 <= mo <= 12
        and hh < 24
        and mi < 60
        and ss < 60
        and 1 <= d <= _MDAYS[mo - 1] + (mo == 2 and leap)
    ):
        raise DerError(f"impossible date {stamp.decode('ascii', 'replace')}")
    yy = y - (mo <= 2)
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * ((mo + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146097 + doe - 719468) * 86400 + hh * 3600 + mi * 60 + ss


def time_to_epoch(stamp: bytes) -> int:
    return _epoch_one(stamp)


def _oid_list(b: bytes, s: int, e: int) -> tuple[bytes, ...]:
    out = []
    while s < e:
        tag, cs, ce = _tlv(b, s, e)
        if tag != 0x06:
            raise DerError("expected an OID")
        out.append(b[cs:ce])
        s = ce
    return tuple(out)


def _policies(b: bytes, s: int, e: int) -> tuple[bytes, ...]:
    tag, s, e = _tlv(b, s, e)
    if tag != 0x30:
        raise DerError("bad certificatePolicies")
    out = []
    while s < e:
        tag, ps, pe = _tlv(b, s, e)
        if tag != 0x30:
            raise DerError("bad PolicyInformation")
        tag, os_, oe = _tlv(b, ps, pe)
        if tag != 0x06:
            raise DerError("bad policy OID")
        out.append(b[os_:oe])
        s = pe
    return tuple(out)


def _key_usage(b: bytes, s: int, e: int) -> int:
    tag, s, e = _tlv(b, s, e)
    if tag != 0x03 or e - s < 1 or e - s > 3 or b[s] > 7 or (e - s == 1 and b[s]):
        raise DerError("bad keyUsage")
    if e - s > 1 and b[e - 1] & ((1 << b[s]) - 1):
        raise DerError("bad keyUsage (non-zero padding bits)")
    bits = 0
    for k, byte in enumerate(b[s + 1 : e]):
        for j in range(8):
            if byte & (0x80 >> j):
                bits |= 1 << (k * 8 + j)
    return bits


def _basic_constraints(b: bytes, s: int, e: int) -> tuple[bool, int]:
    """→ (cA, pathLen or -1)."""
    tag, s, e = _tlv(b, s, e)
    if tag != 0x30:
        raise DerError("bad basicConstraints")
    ca = False
    plen = -1
    if s < e:
        tag, cs, ce = _tlv(b, s, e)
        if tag == 0x01:
            if ce - cs != 1 or b[cs] not in (0, 0xFF):
                raise DerError("bad BOOLEAN")
            ca = b[cs] == 0xFF
            s = ce
            if s < e:
                tag, cs, ce = _tlv(b, s, e)
        if s < e:
            if tag != 0x02 or ce - cs < 1 or ce - cs > 4 or b[cs] & 0x80:
                raise DerError("bad pathLenConstraint")
            plen = integer(b[cs:ce], "pathLenConstraint")
            s = ce
        if s != e:
            raise DerError("trailing data in basicConstraints")
    return ca, plen


def _aki(b: bytes, s: int, e: int) -> bytes | None:
    tag, s, e = _tlv(b, s, e)
    if tag != 0x30:
        raise DerError("bad authorityKeyIdentifier")
    if s < e:
        tag, cs, ce = _tlv(b, s, e)
        if tag == 0x80:
            return b[cs:ce]
    return None


def _octets(b: bytes, s: int, e: int) -> bytes:
    end = e
    tag, s, e = _tlv(b, s, e)
    if tag != 0x04 or e != end:
        raise DerError("bad OCTET STRING")
    return b[s:e]


# Index of the fields in the tuple parse_certificate returns.
(
    F_TBS,
    F_SIGALG,
    F_SIG,
    F_SERIAL,
    F_ISSUER,
    F_SUBJECT,
    F_NB,
    F_NA,
    F_SPKI,
    F_KU,
    F_CA,
    F_PATHLEN,
    F_EKU,
    F_POLICIES,
    F_AKI,
    F_SKI,
    F_CRITICAL,
    F_SAN,
    F_NC,
    F_CHECK,
    F_PRESENT,
    F_CRITMASK,
    F_CRLDP,
) = range(23)

# bits of F_PRESENT / F_CRITMASK: 1 << kind, for the extensions of _KINDS
X_KU, X_BC, X_AKI, X_SKI, X_POLICIES, X_EKU, X_SAN, X_NC, X_CRLDP = (1 << k for k in range(1, 10))

CertFacts = tuple[Any, ...]


def parse_certificate(der: bytes) -> CertFacts:
    """Read the facts the validator needs; raise DerError if not a DER certificate.

    Returns a tuple indexed by the ``F_*`` constants: tbs bytes, signature
    AlgorithmIdentifier (full DER), signature bytes, serial (INTEGER content),
    issuer and subject Name (full DER), notBefore / notAfter (15-byte stamps),
    SubjectPublicKeyInfo (full DER), keyUsage bits (-1 if absent), cA, pathLen
    (-1 if none), EKU OIDs (None if absent), policy OIDs (None if absent), AKI
    key id, SKI, the first unhandled critical extension OID (None if none),
    and the extnValue bytes of subjectAltName and nameConstraints (None if
    absent; read by :mod:`._names` only on name-constrained paths), and the
    extensions whose value ``cryptography`` parses (full TLVs, SKI and SAN
    excepted: :func:`check_certificate` reads those itself).

    A certificate larger than :data:`MAX_CERTIFICATE` bytes is refused before
    any per-byte work.
    """
    if len(der) > MAX_CERTIFICATE:
        raise DerError(f"larger than {MAX_CERTIFICATE // 1024} KiB")
    if _native_parse is not None:
        facts = _native_parse(der)
        if isinstance(facts, str):
            raise DerError(facts)
        return facts
    return parse_certificate_py(der)


def parse_certificate_py(der: bytes) -> CertFacts:
    """:func:`parse_certificate` in Python: the specification of the native walk.

    ``cps_middleware._verify.parse_certificate`` (native/verify/dercert.c) is a
    line-by-line port of this function; a property test requires both to give
    the same facts or the same reason on the same (mutated) bytes."""
    try:
        return _parse_certificate(der)
    except IndexError:
        raise DerError("truncated DER") from None


# Extension OID -> what parse_certificate does with it. These are the extensions
# the validator processes, so they may be critical; any other extension marked
# critical makes the certificate fail (RFC 5280 4.2). Name constraints are
# processed (._names); policy constraints / mappings and inhibitAnyPolicy are
# NOT: a CA marking them critical is refused rather than half-checked.
_KINDS = {
    OID_KEY_USAGE: 1,
    OID_BASIC_CONSTRAINTS: 2,
    OID_AKI: 3,
    OID_SKI: 4,
    OID_CERT_POLICIES: 5,
    OID_EXT_KEY_USAGE: 6,
    OID_SAN: 7,  # kept for name constraints; may be critical (empty subject)
    OID_NAME_CONSTRAINTS: 8,
    OID_CRL_DP: 9,  # read for CRL scope (partitioned CRLs)
}

# Largest certificate read (real ones are 1-3 KiB): refused before any per-byte work.
MAX_CERTIFICATE = 64 * 1024


def _parse_certificate(der: bytes) -> CertFacts:
    tlv = _tlv
    kinds = _KINDS
    end = len(der)
    if der[0] == 0x30 and der[1] == 0x82 and der[4] == 0x30 and der[5] == 0x82:
        # the usual shape: 30 82 LL LL 30 82 LL LL (certificate, tbsCertificate)
        e = 4 + ((der[2] << 8) | der[3])
        n = (der[6] << 8) | der[7]
        if e != end or n < 0x100:
            raise DerError("not a DER certificate (outer SEQUENCE)")
        s, ts, te = 4, 8, 8 + n
        if te > e:
            raise DerError("DER length runs past its container")
    else:
        tag, s, e = tlv(der, 0, end)
        if tag != 0x30 or e != end:
            raise DerError("not a DER certificate (outer SEQUENCE)")
        tag, ts, te = tlv(der, s, e)
        if tag != 0x30:
            raise DerError("bad tbsCertificate")
    tbs = der[s:te]
    n = der[te + 1]
    if der[te] != 0x30 or n >= 0x80:
        raise DerError("bad signatureAlgorithm")
    ae = te + 2 + n
    sigalg = der[te:ae]
    tag, ss, se = tlv(der, ae, e)
    if tag != 0x03 or se != e or ss >= se or der[ss] != 0:
        raise DerError("bad signatureValue")
    sig = der[ss + 1 : se]

    # tbsCertificate
    i = ts
    version = 0
    if der[i] == 0xA0:
        if der[i + 1 : i + 4] != b"\x03\x02\x01" or der[i + 4] not in (1, 2):
            raise DerError("bad version")
        version = der[i + 4]
        i += 5
    n = der[i + 1]
    if der[i] != 0x02 or n == 0 or n > 21:
        raise DerError("bad serialNumber")
    i += 2 + n
    serial = integer(der[i - n : i], "serialNumber")
    ce = i + len(sigalg)
    if der[i:ce] != sigalg:
        raise DerError("inner and outer signature algorithms differ")
    i = ce
    tag, cs, ce = tlv(der, i, te)
    if tag != 0x30:
        raise DerError("bad issuer")
    issuer = der[i:ce]
    i = ce
    # Validity: two 13-byte UTCTimes in a 30 1E is the usual case.
    if der[i : i + 4] == b"\x30\x1e\x17\x0d" and der[i + 17 : i + 19] == b"\x17\x0d":
        nb = der[i + 4 : i + 17]
        na = der[i + 19 : i + 32]
        if not (nb[:12].isdigit() and nb[12] == 0x5A and na[:12].isdigit() and na[12] == 0x5A):
            raise DerError("bad UTCTime")
        nb = (b"19" if nb[0] >= 0x35 else b"20") + nb
        na = (b"19" if na[0] >= 0x35 else b"20") + na
        i += 32
    else:
        tag, vs, ve = tlv(der, i, te)
        if tag != 0x30:
            raise DerError("bad validity")
        tag, cs, ce = tlv(der, vs, ve)
        nb = _time(der, tag, cs, ce)
        tag, cs, ce2 = tlv(der, ce, ve)
        na = _time(der, tag, cs, ce2)
        if ce2 != ve:
            raise DerError("bad validity")
        i = ve
    tag, cs, ce = tlv(der, i, te)
    if tag != 0x30:
        raise DerError("bad subject")
    subject = der[i:ce]
    i = ce
    tag, cs, ce = tlv(der, i, te)
    if tag != 0x30:
        raise DerError("bad subjectPublicKeyInfo")
    spki = der[i:ce]
    i = ce

    ku = -1
    ca = False
    plen = -1
    eku = None
    policies = None
    aki = None
    ski = None
    critical = None
    san = None
    nc = None
    check: list[bytes] = []
    crldp = None
    present = 0
    critmask = 0
    while i < te:
        tag, cs, ce = tlv(der, i, te)
        if tag in (0x81, 0x82):  # issuer/subject unique IDs
            i = ce
            continue
        if tag != 0xA3 or version != 2 or ce != te:
            raise DerError("bad extensions")
        tag, xs, xe = tlv(der, cs, ce)
        if tag != 0x30 or xe != ce or xs == xe:
            raise DerError("bad extensions")
        oids = []
        while xs < xe:
            # Extension ::= SEQUENCE { OID, critical BOOLEAN DEFAULT FALSE, OCTET STRING }
            if der[xs] != 0x30:
                raise DerError("bad extension")
            n = der[xs + 1]
            if n < 0x80:
                es = xs + 2
                ee = es + n
                if ee > xe:
                    raise DerError("extension runs past its container")
            else:
                tag, es, ee = tlv(der, xs, xe)
            n = der[es + 1]
            if der[es] != 0x06 or n >= 0x80:
                raise DerError("bad extension OID")
            oe = es + 2 + n
            oid = der[es + 2 : oe]
            oids.append(oid)
            crit = False
            if der[oe] == 0x01:
                if der[oe + 1 : oe + 3] != b"\x01\xff":  # DER: FALSE is omitted
                    raise DerError("bad critical flag")
                crit = True
                oe += 3
            # extnValue OCTET STRING: must fill the rest of the extension
            n = der[oe + 1]
            if n < 0x80:
                vs = oe + 2
            elif n == 0x81:
                vs = oe + 3
                n = der[oe + 2]
                if n < 0x80:
                    raise DerError("non-minimal DER length")
            elif n == 0x82:
                vs = oe + 4
                n = (der[oe + 2] << 8) | der[oe + 3]
                if n < 0x100:
                    raise DerError("non-minimal DER length")
            else:
                raise DerError("bad extension value")
            ve = vs + n
            if der[oe] != 0x04 or ve != ee:
                raise DerError("bad extension value")
            kind = kinds.get(oid, 0)
            present |= 1 << kind
            if crit:
                critmask |= 1 << kind
            if kind != 4 and kind != 7 and oid in _PARSED_BY_CRYPTOGRAPHY:
                check.append(der[xs:ee])
            if kind == 0:
                if crit and critical is None:
                    critical = oid
            elif kind == 1:
                ku = _key_usage(der, vs, ve)
            elif kind == 2:
                ca, plen = _basic_constraints(der, vs, ve)
            elif kind == 3:
                # AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier OPTIONAL, ... }
                if (
                    der[vs] == 0x30
                    and der[vs + 1] < 0x80
                    and der[vs + 1] == ve - vs - 2
                    and der[vs + 2] == 0x80
                ):
                    n = der[vs + 3]
                    if n >= 0x80 or vs + 4 + n > ve:
                        raise DerError("bad authorityKeyIdentifier")
                    aki = der[vs + 4 : vs + 4 + n]
                else:
                    aki = _aki(der, vs, ve)
            elif kind == 4:
                if der[vs] == 0x04 and der[vs + 1] < 0x80 and der[vs + 1] == ve - vs - 2:
                    ski = der[vs + 2 : ve]
                else:
                    ski = _octets(der, vs, ve)
            elif kind == 5:
                policies = _policies(der, vs, ve)
            elif kind == 6:
                tag, ls, le = tlv(der, vs, ve)
                if tag != 0x30:
                    raise DerError("bad extKeyUsage")
                eku = _oid_list(der, ls, le)
            elif kind == 7:
                san = der[vs:ve]
            elif kind == 8:
                nc = der[vs:ve]
            elif kind == 9:
                crldp = der[vs:ve]
            xs = ee
        if len(oids) != len(set(oids)):
            raise DerError("duplicate extension")
        i = ce
    return (
        tbs,
        sigalg,
        sig,
        serial,
        issuer,
        subject,
        nb,
        na,
        spki,
        ku,
        ca,
        plen,
        eku,
        policies,
        aki,
        ski,
        critical,
        san,
        nc,
        tuple(check),
        present,
        critmask,
        crldp,
    )


def oid_text(raw: bytes) -> str:
    """Dotted text of raw OID content bytes (for reasons shown to people)."""
    subids = []
    n = 0
    for byte in raw:
        n = (n << 7) | (byte & 0x7F)
        if not byte & 0x80:
            subids.append(n)
            n = 0
    if not subids:
        return "?"
    first = subids[0]
    top = min(first // 40, 2)  # the first sub-identifier holds two arcs (X.690 8.19.4)
    return ".".join(str(x) for x in [top, first - 40 * top, *subids[1:]])


def oid_raw(dotted: str) -> bytes:
    """Raw OID content bytes of a dotted OID."""
    nums = [int(x) for x in dotted.split(".")]
    if len(nums) < 2:
        raise ValueError(f"bad OID {dotted!r}")
    out = bytearray()
    for k, n in enumerate([40 * nums[0] + nums[1], *nums[2:]]):
        del k
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


# --- CRLs ---------------------------------------------------------------------

# An entry: serial (INTEGER content) -> (revocation stamp, reason code or -1,
# invalidity stamp or None). Reason codes are RFC 5280 CRLReason values.
CrlEntries = dict[int, tuple[bytes, int, bytes | None]]


def parse_crl_entries(der: bytes) -> tuple[CrlEntries, bytes | None]:
    """Walk a CRL's revokedCertificates → (entries, first unhandled critical entry ext OID).

    Structure and signature of the CRL itself are checked by the caller
    (with ``cryptography``); this only reads the list, fast.
    """
    end = len(der)
    tag, s, e = _tlv(der, 0, end)
    if tag != 0x30 or e != end:
        raise DerError("not a DER CRL")
    tag, ts, te = _tlv(der, s, e)
    if tag != 0x30:
        raise DerError("bad tbsCertList")
    i = ts
    tag, cs, ce = _tlv(der, i, te)
    if tag == 0x02:  # version
        i = ce
        tag, cs, ce = _tlv(der, i, te)
    i = ce  # signature AlgorithmIdentifier
    tag, cs, ce = _tlv(der, i, te)  # issuer
    i = ce
    tag, cs, ce = _tlv(der, i, te)  # thisUpdate
    i = ce
    entries: CrlEntries = {}
    bad_critical = None
    if i >= te:
        return entries, None
    tag, cs, ce = _tlv(der, i, te)
    if tag in (0x17, 0x18):  # nextUpdate
        i = ce
        if i >= te:
            return entries, None
        tag, cs, ce = _tlv(der, i, te)
    if tag != 0x30:  # [0] crlExtensions only: no entries
        return entries, None
    rs = cs
    while rs < ce:
        tag, es, ee = _tlv(der, rs, ce)
        if tag != 0x30:
            raise DerError("bad CRL entry")
        tag, ss, se = _tlv(der, es, ee)
        if tag != 0x02:
            raise DerError("bad CRL entry serial")
        serial = integer(der[ss:se], "CRL entry serial")
        tag, ds, de = _tlv(der, se, ee)
        stamp = _time(der, tag, ds, de)
        reason = -1
        invalidity = None
        if de < ee:
            tag, xs, xe = _tlv(der, de, ee)
            if tag != 0x30:
                raise DerError("bad CRL entry extensions")
            while xs < xe:
                tag, ys, ye = _tlv(der, xs, xe)
                tag, os_, oe = _tlv(der, ys, ye)
                oid = der[os_:oe]
                tag, vs, ve = _tlv(der, oe, ye)
                crit = False
                if tag == 0x01:
                    if ve - vs != 1 or der[vs] != 0xFF:  # DER: FALSE is omitted
                        raise DerError("bad critical flag in a CRL entry")
                    crit = True
                    tag, vs, ve = _tlv(der, ve, ye)
                if tag != 0x04 or ve != ye:
                    raise DerError("bad CRL entry extension")
                if oid == OID_CRL_REASON:
                    rt, rcs, rce = _tlv(der, vs, ve)
                    if rt != 0x0A or rce - rcs != 1:
                        raise DerError("bad CRL reason")
                    reason = der[rcs]
                elif oid == OID_INVALIDITY_DATE:
                    it, ics, ice = _tlv(der, vs, ve)
                    invalidity = _time(der, it, ics, ice)
                elif crit and bad_critical is None:
                    bad_critical = oid
                xs = ye
        if serial in entries:
            raise DerError("a serial number listed twice")
        entries[serial] = (stamp, reason, invalidity)
        rs = ee
    return entries, bad_critical


# --- what the walk does not read -------------------------------------------------

# Extensions whose value cryptography parses when its ``.extensions`` is read
# (cryptography.x509.oid.ExtensionOID): a certificate carrying one of them is
# accepted only if cryptography parses it (checked once per distinct value).
_PARSED_BY_CRYPTOGRAPHY = frozenset(
    oid_raw(x)
    for x in (
        "1.3.36.8.3.3",
        "1.3.6.1.4.1.11129.2.4.2",
        "1.3.6.1.4.1.11129.2.4.3",
        "1.3.6.1.4.1.11129.2.4.5",
        "1.3.6.1.4.1.311.21.7",
        "1.3.6.1.5.5.7.1.1",
        "1.3.6.1.5.5.7.1.11",
        "1.3.6.1.5.5.7.1.24",
        "1.3.6.1.5.5.7.48.1.5",
        "2.5.29.9",
        "2.5.29.14",
        "2.5.29.15",
        "2.5.29.16",
        "2.5.29.17",
        "2.5.29.18",
        "2.5.29.19",
        "2.5.29.20",
        "2.5.29.21",
        "2.5.29.23",
        "2.5.29.24",
        "2.5.29.27",
        "2.5.29.28",
        "2.5.29.29",
        "2.5.29.30",
        "2.5.29.31",
        "2.5.29.32",
        "2.5.29.33",
        "2.5.29.35",
        "2.5.29.36",
        "2.5.29.37",
        "2.5.29.46",
        "2.5.29.54",
    )
)

try:  # the native walk (native/verify/dercert.c), handed the tables above once
    from cps_middleware import _verify

    _verify.set_der_tables(_KINDS, _PARSED_BY_CRYPTOGRAPHY)
    _native_parse: Callable[[bytes], CertFacts | str] | None = _verify.parse_certificate
    _native_check_name: Callable[[bytes], str | None] | None = _verify.check_name
except ImportError:  # a source tree without its native part: the Python walk
    _native_parse = _native_check_name = None

_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)
MAX_NAME = 8 * 1024  # a Name longer than this is refused (real ones: < 500 bytes)


def check_oid(v: bytes) -> None:
    """OBJECT IDENTIFIER contents: non-empty, minimal base-128 sub-identifiers."""
    if not v or v[-1] & 0x80:
        raise DerError("bad OBJECT IDENTIFIER")
    prev = 0
    for byte in v:
        if byte == 0x80 and not prev & 0x80:
            raise DerError("non-minimal OBJECT IDENTIFIER")
        prev = byte


def _check_string(tag: int, v: bytes) -> None:
    try:
        if tag == 0x0C:
            v.decode("utf-8")
        elif tag == 0x13:
            if not _PRINTABLE.issuperset(v):
                raise DerError("bad PrintableString")
        elif tag in (0x16, 0x1A, 0x14, 0x12):  # IA5, Visible, Teletex, Numeric: ASCII
            v.decode("ascii")
            if tag == 0x12 and not v.replace(b" ", b"").isdigit() and v.strip(b" "):
                raise DerError("bad NumericString")
        elif tag == 0x1E:
            if len(v) % 2:
                raise DerError("bad BMPString")
            v.decode("utf-16-be")
        elif tag == 0x1C:
            if len(v) % 4:
                raise DerError("bad UniversalString")
            v.decode("utf-32-be")
        elif tag == 0x03:
            if not v or v[0]:
                raise DerError("bad BIT STRING in a name")
        else:
            raise DerError(f"an attribute value of tag {tag:#x} in a name")
    except UnicodeDecodeError:
        raise DerError(f"a string of tag {tag:#x} that does not decode in a name") from None


def check_name(name: bytes, good: dict[bytes, None] | None = None) -> None:
    """A Name (full TLV): RDNs of AttributeTypeAndValue, readable OIDs and strings.

    ``good`` remembers RDNs already found readable (holders share most of
    theirs); the native check (dercert.c) needs no such shortcut."""
    if len(name) > MAX_NAME:
        raise DerError(f"a name longer than {MAX_NAME} bytes")
    if _native_check_name is not None:
        why = _native_check_name(name)
        if why is not None:
            raise DerError(why)
        return
    check_name_py(name, good)


def check_name_py(name: bytes, good: dict[bytes, None] | None = None) -> None:
    """:func:`check_name` in Python: the specification of the native check."""
    tag, s, e = _tlv(name, 0, len(name))
    if tag != 0x30 or e != len(name):
        raise DerError("bad Name")
    while s < e:
        tag, rs, re_ = _tlv(name, s, e)
        if tag != 0x31 or rs == re_:
            raise DerError("bad RelativeDistinguishedName")
        rdn = name[s:re_]
        if good is not None and rdn in good:
            s = re_
            continue
        while rs < re_:
            tag, as_, ae = _tlv(name, rs, re_)
            if tag != 0x30:
                raise DerError("bad AttributeTypeAndValue")
            tag, os_, oe = _tlv(name, as_, ae)
            if tag != 0x06:
                raise DerError("bad attribute type")
            check_oid(name[os_:oe])
            tag, vs, ve = _tlv(name, oe, ae)
            if ve != ae:
                raise DerError("bad AttributeTypeAndValue")
            _check_string(tag, name[vs:ve])
            rs = ae
        if good is not None:
            good[rdn] = None
        s = re_


def _ascii(v: bytes, what: str) -> None:
    try:
        v.decode("ascii")
    except UnicodeDecodeError:
        raise DerError(f"{what} is not an IA5String") from None


def check_general_names(b: bytes, what: str) -> None:
    """A GeneralNames SEQUENCE (full TLV, e.g. a subjectAltName extnValue)."""
    tag, s, e = _tlv(b, 0, len(b))
    if tag != 0x30 or e != len(b) or s == e:
        raise DerError(f"bad {what}")
    while s < e:
        tag, cs, ce = _tlv(b, s, e)
        if tag == 0xA0:  # otherName: type-id OID, [0] EXPLICIT value
            t, os_, oe = _tlv(b, cs, ce)
            if t != 0x06:
                raise DerError(f"bad otherName in {what}")
            check_oid(b[os_:oe])
            t, _, ve = _tlv(b, oe, ce)
            if t != 0xA0 or ve != ce:
                raise DerError(f"bad otherName in {what}")
        elif tag in (0x81, 0x82, 0x86):
            _ascii(b[cs:ce], what)
        elif tag == 0xA4:
            t, _, ne = _tlv(b, cs, ce)
            if t != 0x30 or ne != ce:
                raise DerError(f"bad directoryName in {what}")
            check_name(b[cs:ce])
        elif tag == 0x87:
            if ce - cs not in (4, 16):
                raise DerError(f"an iPAddress of {ce - cs} bytes in {what}")
        elif tag == 0x88:
            check_oid(b[cs:ce])
        elif tag in (0xA3, 0xA5):  # cryptography cannot represent them: refused
            raise DerError(f"an x400Address or ediPartyName in {what}")
        else:
            raise DerError(f"bad GeneralName in {what}")
        s = ce


def check_certificate(der: bytes, f: CertFacts, good: dict[bytes, None]) -> None:
    """What the walk does not read, checked before a certificate can be VALID.

    ``cryptography`` must load it (structure, strict DER, version) and read
    its public key; subject and issuer strings must decode; subjectAltName
    and subjectKeyIdentifier are read here; every other extension that
    ``cryptography`` parses must parse there, checked once per distinct
    extension (``good`` remembers the ones that did; the caller bounds it).
    Raises DerError.
    """
    try:
        if f[F_SERIAL] > 0:
            cert = x509.load_der_x509_certificate(der)
        else:  # cryptography warns; the validator's serial_not_positive rule reports it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cert = x509.load_der_x509_certificate(der)
    except Exception as exc:  # ValueError, InvalidVersion ...
        _epoch_one(f[F_NB])  # an impossible date is the clearer reason
        _epoch_one(f[F_NA])
        raise DerError(f"not a certificate cryptography can read ({_short(exc)})") from None
    try:
        load_der_public_key(f[F_SPKI])
    except Exception as exc:  # ValueError, UnsupportedAlgorithm ...
        raise DerError(f"the public key cannot be read ({_short(exc)})") from None
    check_name(f[F_SUBJECT], good)  # RDN by RDN: holders share most of theirs
    if f[F_ISSUER] not in good:
        check_name(f[F_ISSUER], good)
        good[f[F_ISSUER]] = None
    if f[F_SAN] is not None:
        check_general_names(f[F_SAN], "subjectAltName")
    for x in f[F_CHECK]:
        if x not in good:
            break
    else:
        return  # every extension value was read fine before
    try:
        cert.extensions  # noqa: B018 (parsed for its errors)
    except Exception as exc:  # ValueError, DuplicateExtension ...
        raise DerError(f"an extension cannot be read ({_short(exc)})") from None
    for x in f[F_CHECK]:
        good[x] = None


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 160 else text[:157] + "..."


def _dp_name(b: bytes, s: int, e: int) -> frozenset[bytes]:
    """A DistributionPointName (the content of its [0] EXPLICIT wrapper) → name tokens:
    each fullName GeneralName TLV, or the nameRelativeToCRLIssuer TLV."""
    tag, cs, ce = _tlv(b, s, e)
    if ce != e:
        raise DerError("bad DistributionPointName")
    if tag == 0xA1:
        return frozenset([b[s:e]])
    if tag != 0xA0:
        raise DerError("bad DistributionPointName")
    out = []
    while cs < ce:
        _, _, ne = _tlv(b, cs, ce)
        out.append(b[cs:ne])
        cs = ne
    return frozenset(out)


def crl_dp_names(value: bytes) -> frozenset[bytes]:
    """Every distribution point name of a cRLDistributionPoints extnValue (CRL scope)."""
    try:
        tag, s, e = _tlv(value, 0, len(value))
        if tag != 0x30 or e != len(value):
            raise DerError("bad cRLDistributionPoints")
        out: set[bytes] = set()
        while s < e:
            tag, ds, de = _tlv(value, s, e)
            if tag != 0x30:
                raise DerError("bad DistributionPoint")
            if ds < de and value[ds] == 0xA0:
                _, ns, ne = _tlv(value, ds, de)
                out |= _dp_name(value, ns, ne)
            s = de
        return frozenset(out)
    except IndexError:
        raise DerError("truncated cRLDistributionPoints") from None


def idp_names(value: bytes) -> frozenset[bytes] | None:
    """The distributionPoint names of an issuingDistributionPoint extnValue (None if absent)."""
    try:
        tag, s, e = _tlv(value, 0, len(value))
        if tag != 0x30 or e != len(value):
            raise DerError("bad issuingDistributionPoint")
        if s < e and value[s] == 0xA0:
            _, ns, ne = _tlv(value, s, e)
            return _dp_name(value, ns, ne)
        return None
    except IndexError:
        raise DerError("truncated issuingDistributionPoint") from None
