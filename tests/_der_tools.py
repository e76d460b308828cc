"""Building and re-signing DER by hand, for the validator's crafted and fuzzed cases
(tests and ``benchmarks/fuzz_validation.py``)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cps_middleware.validation import _der

SIG_ALG = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256


def tlv(tag: int, body: bytes) -> bytes:
    """One DER TLV with a minimal length."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + body


def outer(der: bytes) -> tuple[int, int]:
    """(start, end) of the TBS element inside the outer SEQUENCE."""
    _, s, e = _der._tlv(der, 0, len(der))
    _, _, ce = _der._tlv(der, s, e)
    return s, ce


def tbs_of(der: bytes) -> bytes:
    """The signed part (TBSCertificate / TBSCertList, with its header) of ``der``."""
    s, e = outer(der)
    return der[s:e]


def rewrap(t: bytes) -> bytes:
    """A (resized) TBS under a fresh SEQUENCE header, whatever its old declared length."""
    n = t[1]
    return tlv(0x30, t[2 + (n & 0x7F if n & 0x80 else 0) :])


def resign(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``tbs`` signed again (ECDSA-SHA256) into a whole certificate or CRL."""
    sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + SIG_ALG + tlv(0x03, b"\x00" + sig))


def walk(parse: Callable[[bytes], object], der: bytes) -> object:
    """What ``parse`` gives for ``der``, or ``("DerError", reason)``: the native and
    the Python DER walks compare equal on the same bytes."""
    try:
        return parse(der)
    except _der.DerError as exc:
        return ("DerError", str(exc))
