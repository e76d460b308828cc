"""An IAS-ECC card engine: the card side of a virtual CPS3 on vpcd.

:class:`IasEccCard` is a ``CardModel`` (``atr``, ``reset()``, ``process(apdu)``)
that speaks enough IAS-ECC 1.0.1 for real middleware (OpenSC's IAS/ECC CPx
driver, the ANS module) to drive it: the T=0 transport (``61xx`` + GET
RESPONSE), SELECT in the forms middlewares use, READ BINARY (also by SFI),
VERIFY with a try counter and the no-data status query, CHANGE REFERENCE
DATA, RESET RETRY COUNTER (PUK with its own counter and use count), GET DATA
of security data objects (PIN, RSA keys, security environments), MSE SET
(AT, HT, DST, CT), INTERNAL AUTHENTICATE, PSO HASH from an intermediate hash
state, PSO COMPUTE DIGITAL SIGNATURE and PSO DECIPHER with command chaining.

What the card holds (files, PINs, keys, security environments) is data given
to the constructor; :mod:`cps_middleware.testing.cps3image` builds a CPS3.
Facts behind the byte layouts: ``VIRTUAL_CPS3.md`` of the project docs.

A command the engine does not know gets the ISO status word (``6D00``,
``6E00``, ``6A86`` ...); an internal error gets ``6F00``: the engine never
raises into the vpcd loop.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "SW",
    "ApduLogEntry",
    "CardPin",
    "CardRsaKey",
    "DedicatedFile",
    "ElementaryFile",
    "IasEccCard",
    "SecurityEnvironment",
    "digest_info",
    "sha_resume",
    "sha_state",
]

# --- status words -----------------------------------------------------------------


class SW:
    """ISO 7816-4 status words the engine answers with."""

    OK = 0x9000
    END_OF_FILE = 0x6282  # fewer bytes than asked: end of file reached
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_UNSUPPORTED = 0x6881
    SM_UNSUPPORTED = 0x6882
    LAST_COMMAND_EXPECTED = 0x6883
    CHAINING_UNSUPPORTED = 0x6884
    COMMAND_INCOMPATIBLE = 0x6981
    SECURITY_STATUS = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_OF_USE = 0x6985
    NO_CURRENT_EF = 0x6986
    WRONG_DATA = 0x6A80
    FUNCTION_UNSUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_UNSUPPORTED = 0x6D00
    CLA_UNSUPPORTED = 0x6E00
    NO_DIAGNOSIS = 0x6F00


class _CardError(Exception):
    """Internal: abort the command with a status word."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


# --- small BER-TLV helpers -----------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def _tlv(tag: int, value: bytes) -> bytes:
    t = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    return t + _len(len(value)) + value


def _parse_tlvs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (tag, value) of a flat BER-TLV list; multi-byte tags as one int."""
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while i < len(data) and data[i] & 0x80:
                tag = (tag << 8) | data[i]
                i += 1
            if i >= len(data):
                raise _CardError(SW.WRONG_DATA)
            tag = (tag << 8) | data[i]
            i += 1
        if i >= len(data):
            raise _CardError(SW.WRONG_DATA)
        n = data[i]
        i += 1
        if n == 0x81:
            n = data[i]
            i += 1
        elif n == 0x82:
            n = (data[i] << 8) | data[i + 1]
            i += 2
        elif n > 0x82:
            raise _CardError(SW.WRONG_DATA)
        if i + n > len(data):
            raise _CardError(SW.WRONG_DATA)
        yield tag, data[i : i + n]
        i += n


# --- SHA-1 / SHA-256 that resume from an intermediate state -----------------------


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def _sha1_compress(h: list[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 80):
        w.append(_rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1))
    a, b, c, d, e = h
    for t in range(80):
        if t < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif t < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif t < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_rotl(a, 5) + f + e + k + w[t]) & 0xFFFFFFFF, a, _rotl(b, 30), c, d
    for i, v in enumerate((a, b, c, d, e)):
        h[i] = (h[i] + v) & 0xFFFFFFFF


_K256 = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
    0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
    0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
    0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
    0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
    0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
    0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
    0xC67178F2,
)  # fmt: skip


def _sha256_compress(h: list[int], block: bytes) -> None:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, hh = h
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ (~e & g)
        t1 = (hh + s1 + ch + _K256[t] + w[t]) & 0xFFFFFFFF
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = (s0 + maj) & 0xFFFFFFFF
        a, b, c, d, e, f, g, hh = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & 0xFFFFFFFF


_SHA: dict[str, tuple[tuple[int, ...], Callable[[list[int], bytes], None]]] = {
    "sha1": ((0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0), _sha1_compress),
    "sha256": (
        (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
         0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19),
        _sha256_compress,
    ),
}  # fmt: skip


def sha_state(algorithm: str, data: bytes) -> tuple[bytes, int, bytes]:
    """What a host sends for PSO HASH: (intermediate state, bits hashed, rest).

    The state covers every full 64-byte block of *data* except that at least one
    byte is always left for the card (1..64 bytes), as middlewares do.
    """
    iv, compress = _SHA[algorithm]
    h = list(iv)
    full = (len(data) - 1) // 64 if data else 0
    for i in range(full):
        compress(h, data[64 * i : 64 * i + 64])
    return struct.pack(f">{len(h)}I", *h), full * 512, data[full * 64 :]


def sha_resume(algorithm: str, state: bytes, bit_count: int, tail: bytes) -> bytes:
    """Finish a SHA-1/SHA-256 from an intermediate *state* after *bit_count* bits.

    *bit_count* must be a multiple of 512 (whole blocks); *tail* is the rest of
    the message. Returns the digest, equal to hashing the whole message.
    """
    iv, compress = _SHA[algorithm]
    if len(state) != 4 * len(iv) or bit_count % 512:
        raise ValueError("bad intermediate hash state")
    h = list(struct.unpack(f">{len(iv)}I", state))
    total = bit_count + 8 * len(tail)
    padded = tail + b"\x80" + b"\x00" * ((55 - len(tail)) % 64) + total.to_bytes(8, "big")
    for i in range(0, len(padded), 64):
        compress(h, padded[i : i + 64])
    return struct.pack(f">{len(h)}I", *h)


_DIGEST_INFO_PREFIX = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
}


def digest_info(algorithm: str, digest: bytes) -> bytes:
    """DER DigestInfo of *digest* (PKCS#1 v1.5 signature input)."""
    return _DIGEST_INFO_PREFIX[algorithm] + digest


# --- what the card holds ------------------------------------------------------------------

# IAS-ECC algorithm references (VIRTUAL_CPS3.md): MSE CRT tag -> {ref: meaning}.
_ALG_AT: dict[int, str | None] = {0x02: None}  # RSA PKCS#1 v1.5 of the host's DigestInfo
_ALG_HT: dict[int, str | None] = {0x10: "sha1", 0x40: "sha256"}
_ALG_DST: dict[int, str | None] = {0x12: "sha1", 0x42: "sha256", 0x02: None}
_ALG_CT: dict[int, str | None] = {0x1A: None, 0x0A: None}  # RSA PKCS#1 v1.5 decipher

_ALWAYS = 0x00
_NEVER = 0xFF
_USER_AUTH = 0x10


@dataclass
class ElementaryFile:
    """A transparent EF. SCBs: ``00`` always, ``FF`` never, ``1n`` PIN of SE n."""

    fid: int
    data: bytes
    sfi: int | None = None
    read_scb: int = _ALWAYS
    update_scb: int = _NEVER


@dataclass
class DedicatedFile:
    """A DF (the MF is the DF ``3F00``) with its children and optional AID."""

    fid: int
    children: list[ElementaryFile | DedicatedFile] = field(default_factory=list)
    aid: bytes | None = None

    def child(self, fid: int) -> ElementaryFile | DedicatedFile | None:
        return next((c for c in self.children if c.fid == fid), None)

    def walk(self) -> Iterator[DedicatedFile]:
        yield self
        for c in self.children:
            if isinstance(c, DedicatedFile):
                yield from c.walk()


@dataclass
class CardPin:
    """A CHV security data object (holder PIN or PUK).

    ``acl`` is the DOCP access rule: AM byte then SCBs for (change, verify,
    reset, -, -, put data, get data) in AM bit order. ``uses_left`` limits
    successful uses (a PUK's unblock count); ``None`` = unlimited.
    """

    reference: int
    value: bytes
    max_tries: int = 3
    tries_left: int = 3
    min_length: int = 4
    max_length: int = 8
    acl: bytes = bytes.fromhex("73110012FF00")
    uses_left: int | None = None

    @property
    def blocked(self) -> bool:
        return self.tries_left <= 0 or self.uses_left == 0


@dataclass
class CardRsaKey:
    """An RSA private key SDO (``reference`` as in MSE, e.g. ``0x82``).

    ``acl``: AM byte then SCBs for (PSO CDS, INTERNAL AUTHENTICATE,
    PSO DECIPHER, GENERATE, -, PUT DATA, GET DATA) in AM bit order.
    """

    reference: int
    private_key: rsa.RSAPrivateKey
    acl: bytes = bytes.fromhex("7BFF1111FFFF00")


@dataclass
class SecurityEnvironment:
    """An SE SDO: its CRTs (e.g. AT ``A4 {83 01 <pin ref>, 95 01 08}``)."""

    reference: int
    crts: list[bytes]

    def pin_references(self) -> list[int]:
        refs: list[int] = []
        for crt in self.crts:
            for tag, value in _parse_tlvs(crt):
                if tag == 0xA4:
                    refs += [v[0] for t, v in _parse_tlvs(value) if t == 0x83 and v]
        return refs


@dataclass(frozen=True)
class ApduLogEntry:
    command: bytes
    response: bytes


def _scbs(acl: bytes) -> list[int]:
    """Expand an AM byte + SCBs into 7 SCBs (``FF`` where the AM bit is clear)."""
    out, offs = [], 1
    for bit in (0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01):
        if acl[0] & bit and offs < len(acl):
            out.append(acl[offs])
            offs += 1
        else:
            out.append(_NEVER)
    return out


def _rsa_raw_private(key: rsa.RSAPrivateKey, block: bytes) -> bytes:
    """RSA private-key primitive (CRT) on a modulus-sized block."""
    nums = key.private_numbers()
    n = nums.public_numbers.n
    k = (n.bit_length() + 7) // 8
    c = int.from_bytes(block, "big")
    if len(block) != k or c >= n:
        raise _CardError(SW.WRONG_DATA)
    m1 = pow(c, nums.dmp1, nums.p)
    m2 = pow(c, nums.dmq1, nums.q)
    h = (nums.iqmp * (m1 - m2)) % nums.p
    return (m2 + h * nums.q).to_bytes(k, "big")


def _pkcs1_sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    k = (key.key_size + 7) // 8
    if len(data) > k - 11:
        raise _CardError(SW.WRONG_LENGTH)
    return _rsa_raw_private(key, b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data)


def _pkcs1_decrypt(key: rsa.RSAPrivateKey, cryptogram: bytes) -> bytes:
    block = _rsa_raw_private(key, cryptogram)
    sep = block.find(b"\x00", 2)
    if block[:2] != b"\x00\x02" or sep < 10:
        raise _CardError(SW.WRONG_DATA)
    return block[sep + 1 :]


# --- the engine ---------------------------------------------------------------------------


class IasEccCard:
    """An IAS-ECC card: a ``CardModel`` for :class:`cps_middleware.testing.vpcd.VirtualCard`.

    Thread-safe: the vpcd thread calls :meth:`process`, tests may change the
    card (block the PIN, read counters) from another thread at the same time.
    PIN try counters live as long as the object; :meth:`reset` clears only
    the volatile state (verified PINs, current DF, MSE, pending data).
    """

    def __init__(
        self,
        *,
        atr: bytes,
        mf: DedicatedFile,
        pins: Iterable[CardPin],
        keys: Iterable[CardRsaKey] = (),
        security_environments: Iterable[SecurityEnvironment] = (),
        log: bool = False,
    ) -> None:
        self.atr = bytes(atr)
        self.mf = mf
        self.pins = {p.reference: p for p in pins}
        self.keys = {k.reference & 0x7F: k for k in keys}
        self.security_environments = {s.reference: s for s in security_environments}
        self.apdu_count = 0
        self.log: list[ApduLogEntry] | None = [] if log else None
        self._lock = threading.RLock()
        self._parents: dict[int, DedicatedFile] = {}
        self._index_parents()
        self.reset_count = 0  #: resets seen (power on / warm reset from the reader)
        self._clear()

    # -- CardModel ----------------------------------------------------------------

    def reset(self) -> None:
        """Power cycle / warm reset: volatile state only; counters survive."""
        with self._lock:
            self.reset_count += 1
            self._clear()

    def _clear(self) -> None:
        with self._lock:
            self.verified: set[int] = set()
            self.current_df: DedicatedFile = self.mf
            self.current_ef: ElementaryFile | None = None
            self._env: dict[int, tuple[int | None, int | None]] = {}
            self._hash: tuple[str, bytes] | None = None
            self._pending = b""
            self._chain: tuple[bytes, bytes] | None = None  # (INS P1 P2, data so far)

    def process(self, apdu: bytes) -> bytes:
        """One C-APDU in, one R-APDU out. Never raises."""
        with self._lock:
            self.apdu_count += 1
            try:
                data, sw = self._process(bytes(apdu))
                response = data + sw.to_bytes(2, "big")
            except _CardError as exc:
                response = exc.sw.to_bytes(2, "big")
            except Exception:  # never crash the reader loop: a card says 6F00
                response = SW.NO_DIAGNOSIS.to_bytes(2, "big")
            if self.log is not None:
                self.log.append(ApduLogEntry(bytes(apdu), response))
            return response

    # -- test controls ----------------------------------------------------------------

    def pin(self, reference: int = 1) -> CardPin:
        return self.pins[reference]

    def block_pin(self, reference: int = 1) -> None:
        """Spend every try of a PIN, as three wrong entries would."""
        with self._lock:
            self.pins[reference].tries_left = 0
            self.verified.discard(reference)

    def replace_pins(self, pins: Iterable[CardPin]) -> None:
        """Put new PIN objects in (values and counters); clears the volatile state."""
        with self._lock:
            self.pins = {p.reference: p for p in pins}
            self._clear()

    def set_tries(self, tries_left: int, reference: int = 1) -> None:
        with self._lock:
            pin = self.pins[reference]
            pin.tries_left = max(0, min(tries_left, pin.max_tries))
            if pin.blocked:
                self.verified.discard(reference)

    # -- dispatch ---------------------------------------------------------------------

    def _index_parents(self) -> None:
        self._parents = {}
        for df in self.mf.walk():
            for c in df.children:
                self._parents[id(c)] = df

    def _process(self, apdu: bytes) -> tuple[bytes, int]:
        if len(apdu) < 4:
            raise _CardError(SW.WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        lc_data, le = b"", None
        if len(body) == 1:
            le = body[0] or 256
        elif len(body) > 1:
            lc = body[0]
            if lc == 0 or len(body) < 1 + lc:
                raise _CardError(SW.WRONG_LENGTH)
            lc_data = body[1 : 1 + lc]
            if len(body) == 2 + lc:
                le = body[1 + lc] or 256
            elif len(body) != 1 + lc:
                raise _CardError(SW.WRONG_LENGTH)
        if ins == 0xC0 and cla & 0xFC == 0:
            return self._get_response(le)
        self._pending = b""
        if cla == 0xFF or cla & 0x80:
            raise _CardError(SW.CLA_UNSUPPORTED)
        if cla & 0x03:
            raise _CardError(SW.LOGICAL_CHANNEL_UNSUPPORTED)
        if cla & 0x0C:
            raise _CardError(SW.SM_UNSUPPORTED)
        header = bytes([ins, p1, p2])
        if self._chain is not None:
            chained_header, so_far = self._chain
            self._chain = None
            if chained_header != header:
                raise _CardError(SW.LAST_COMMAND_EXPECTED)
            lc_data = so_far + lc_data
        if cla & 0x10:
            if ins not in _CHAINABLE:
                raise _CardError(SW.CHAINING_UNSUPPORTED)
            self._chain = (header, lc_data)
            return b"", SW.OK
        handler = _HANDLERS.get(ins)
        if handler is None:
            raise _CardError(SW.INS_UNSUPPORTED)
        # looked up on the instance, so that a card profile subclass can override a command
        data, sw = getattr(self, handler.__name__)(p1, p2, lc_data, le)
        if data and le is None:
            # T=0 case 4: the data waits for GET RESPONSE
            self._pending = data
            return b"", 0x6100 | (min(len(data), 256) & 0xFF)
        if data and le is not None and len(data) > le:
            self._pending = data[le:]
            return data[:le], 0x6100 | (min(len(self._pending), 256) & 0xFF)
        return data, sw

    def _get_response(self, le: int | None) -> tuple[bytes, int]:
        if not self._pending:
            raise _CardError(SW.CONDITIONS_OF_USE)
        n = le or 256
        out, self._pending = self._pending[:n], self._pending[n:]
        if self._pending:
            return out, 0x6100 | (min(len(self._pending), 256) & 0xFF)
        return out, SW.OK

    # -- access conditions ----------------------------------------------------------------

    def _scb_satisfied(self, scb: int) -> bool:
        if scb == _ALWAYS:
            return True
        if scb == _NEVER or not scb & _USER_AUTH:
            return False
        se = self.security_environments.get(scb & 0x0F)
        refs = se.pin_references() if se else []
        return bool(refs) and all(r in self.verified for r in refs)

    def _require(self, scb: int) -> None:
        if scb == _NEVER:
            raise _CardError(SW.CONDITIONS_OF_USE)
        if not self._scb_satisfied(scb):
            raise _CardError(SW.SECURITY_STATUS)

    # -- SELECT ---------------------------------------------------------------------------

    def _fcp(self, node: ElementaryFile | DedicatedFile) -> bytes:
        fid = node.fid.to_bytes(2, "big")
        if isinstance(node, ElementaryFile):
            body = _tlv(0x80, len(node.data).to_bytes(2, "big")) + _tlv(0x82, b"\x01")
            body += _tlv(0x83, fid)
            if node.sfi is not None:
                body += _tlv(0x88, bytes([node.sfi << 3]))
            body += _tlv(0x8A, b"\x05")
            body += _tlv(0xA1, _tlv(0x8C, bytes([0x03, node.update_scb, node.read_scb])))
        else:
            body = _tlv(0x82, b"\x38") + _tlv(0x83, fid)
            if node.aid:
                body += _tlv(0x84, node.aid)
            body += _tlv(0x8A, b"\x05") + _tlv(0xA1, _tlv(0x8C, bytes([0x42, 0xFF, 0xFF])))
        return _tlv(0x62, body)

    def _select_node(self, node: ElementaryFile | DedicatedFile) -> None:
        if isinstance(node, DedicatedFile):
            self.current_df, self.current_ef = node, None
        else:
            self.current_df, self.current_ef = self._parents[id(node)], node

    def _walk_path(self, start: DedicatedFile, path: bytes) -> ElementaryFile | DedicatedFile:
        if len(path) % 2 or not path:
            raise _CardError(SW.WRONG_DATA)
        node: ElementaryFile | DedicatedFile = start
        for i in range(0, len(path), 2):
            fid = int.from_bytes(path[i : i + 2], "big")
            if i == 0 and fid == 0x3F00:
                node = self.mf
                continue
            if not isinstance(node, DedicatedFile):
                raise _CardError(SW.FILE_NOT_FOUND)
            nxt = node.child(fid)
            if nxt is None:
                raise _CardError(SW.FILE_NOT_FOUND)
            node = nxt
        return node

    def _select(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        node: ElementaryFile | DedicatedFile | None
        if p1 in (0x00, 0x01, 0x02) and len(data) == 2:
            fid = int.from_bytes(data, "big")
            if fid == 0x3F00:
                node = self.mf
            elif fid == self.current_df.fid and p1 == 0x00:
                node = self.current_df
            else:
                node = self.current_df.child(fid)
                if node is None and p1 == 0x00:
                    parent = self._parents.get(id(self.current_df))
                    node = parent.child(fid) if parent else None
                want = {0x01: DedicatedFile, 0x02: ElementaryFile}.get(p1)
                if node is not None and want is not None and not isinstance(node, want):
                    node = None
            if node is None:
                raise _CardError(SW.FILE_NOT_FOUND)
        elif p1 == 0x00 and not data:
            node = self.mf
        elif p1 == 0x03 and not data:
            node = self._parents.get(id(self.current_df), self.mf)
        elif p1 == 0x04:
            if p2 & 0x03 or not data:  # only "first occurrence"
                raise _CardError(SW.FILE_NOT_FOUND)
            node = next((df for df in self.mf.walk() if df.aid and df.aid.startswith(data)), None)
            if node is None:
                raise _CardError(SW.FILE_NOT_FOUND)
        elif p1 == 0x08:
            node = self._walk_path(self.mf, data)
        elif p1 == 0x09:
            node = self._walk_path(self.current_df, data)
        else:
            raise _CardError(SW.INCORRECT_P1P2)
        self._select_node(node)
        if p2 & 0x0C == 0x0C:
            return b"", SW.OK
        return self._fcp(node), SW.OK

    # -- READ BINARY ------------------------------------------------------------------------

    def _read_binary(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        if data:
            raise _CardError(SW.WRONG_LENGTH)
        if p1 & 0x80:
            sfi, offset = p1 & 0x1F, p2
            ef = next(
                (c for c in self.current_df.children
                 if isinstance(c, ElementaryFile) and c.sfi == sfi),
                None,
            ) or next(
                (c for df in self.mf.walk() for c in df.children
                 if isinstance(c, ElementaryFile) and c.sfi == sfi),
                None,
            )  # fmt: skip
            if ef is None:
                raise _CardError(SW.FILE_NOT_FOUND)
            self._select_node(ef)
        else:
            offset = (p1 << 8) | p2
            ef = self.current_ef
            if ef is None:
                raise _CardError(SW.NO_CURRENT_EF)
        self._require(ef.read_scb)
        if offset > len(ef.data):
            raise _CardError(SW.WRONG_P1P2)
        n = le or 256
        out = ef.data[offset : offset + n]
        return out, (SW.OK if len(out) == n else SW.END_OF_FILE)

    # -- PINs -----------------------------------------------------------------------------

    def _pin_for(self, p2: int) -> CardPin:
        pin = self.pins.get(p2 & 0x1F)
        if pin is None or p2 & 0x60:
            raise _CardError(SW.DATA_NOT_FOUND)
        return pin

    @staticmethod
    def _unpad(value: bytes) -> bytes:
        return value.rstrip(b"\xff")

    def _check(self, pin: CardPin, candidate: bytes) -> None:
        """Compare and count: raises 63Cx / 6983 on a wrong value."""
        if pin.blocked:
            raise _CardError(SW.AUTH_METHOD_BLOCKED)
        if self._unpad(candidate) == pin.value:
            pin.tries_left = pin.max_tries
            self.verified.add(pin.reference)
            return
        self.verified.discard(pin.reference)
        pin.tries_left = max(0, pin.tries_left - 1)
        if pin.tries_left == 0:
            raise _CardError(SW.AUTH_METHOD_BLOCKED)
        raise _CardError(0x63C0 | min(pin.tries_left, 15))

    def _verify(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        if p1 == 0xFF and not data:  # ISO 7816-4: reset the security status
            self.verified.discard(self._pin_for(p2).reference)
            return b"", SW.OK
        if p1 != 0x00:
            raise _CardError(SW.INCORRECT_P1P2)
        pin = self._pin_for(p2)
        if not data:
            if pin.blocked:
                raise _CardError(SW.AUTH_METHOD_BLOCKED)
            if pin.reference in self.verified:
                return b"", SW.OK
            return b"", 0x63C0 | min(pin.tries_left, 15)
        self._check(pin, data)
        return b"", SW.OK

    def _valid_new(self, pin: CardPin, new: bytes) -> bytes:
        new = self._unpad(new)
        if not pin.min_length <= len(new) <= pin.max_length:
            raise _CardError(SW.WRONG_DATA)
        return new

    def _change_reference_data(
        self, p1: int, p2: int, data: bytes, le: int | None
    ) -> tuple[bytes, int]:
        pin = self._pin_for(p2)
        scb = _scbs(pin.acl)[0]
        if p1 != 0x00 or not data:
            raise _CardError(SW.INCORRECT_P1P2)
        if scb == _NEVER:
            raise _CardError(SW.CONDITIONS_OF_USE)
        if pin.blocked:
            raise _CardError(SW.AUTH_METHOD_BLOCKED)
        # old || new, both unpadded or both padded to max_length: the card knows
        # its current value, so the split point is the old value's length.
        if (
            len(data) == 2 * pin.max_length
            and data[: pin.max_length].rstrip(b"\xff") != data[: pin.max_length]
        ):
            old, new = data[: pin.max_length], data[pin.max_length :]
        else:
            old, new = data[: len(pin.value)], data[len(pin.value) :]
        self._check(pin, old)
        pin.value = self._valid_new(pin, new)
        return b"", SW.OK

    def _reset_retry_counter(
        self, p1: int, p2: int, data: bytes, le: int | None
    ) -> tuple[bytes, int]:
        pin = self._pin_for(p2)
        scb = _scbs(pin.acl)[2]
        if scb == _NEVER:
            raise _CardError(SW.CONDITIONS_OF_USE)
        se = self.security_environments.get(scb & 0x0F)
        puk_refs = [r for r in (se.pin_references() if se else []) if r in self.pins]
        puk = self.pins[puk_refs[0]] if puk_refs else None
        new: bytes | None = None
        if p1 in (0x00, 0x01):  # PUK in the data (00: followed by the new PIN)
            if puk is None or not data:
                raise _CardError(SW.CONDITIONS_OF_USE)
            n = min(len(data), puk.max_length) if p1 == 0x00 else len(data)
            self._check(puk, data[:n])
            if p1 == 0x00:
                new = self._valid_new(pin, data[n:])
        elif p1 in (0x02, 0x03):  # PUK verified before (IAS-ECC, what OpenSC does)
            if not self._scb_satisfied(scb):
                raise _CardError(SW.SECURITY_STATUS)
            if p1 == 0x02:
                new = self._valid_new(pin, data)
            elif data:
                raise _CardError(SW.WRONG_LENGTH)
        else:
            raise _CardError(SW.INCORRECT_P1P2)
        if new is not None:
            pin.value = new
        pin.tries_left = pin.max_tries
        self.verified.discard(pin.reference)
        if puk is not None:
            if puk.uses_left is not None:
                puk.uses_left = max(0, puk.uses_left - 1)
            self.verified.discard(puk.reference)
        return b"", SW.OK

    # -- GET DATA of security data objects ------------------------------------------------

    def _get_data(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        if (p1, p2) != (0x3F, 0xFF):
            raise _CardError(SW.INCORRECT_P1P2)
        # 4D { 70 { BF <class|80> <ref> L <tag> 80 } }  (70 may be absent)
        tlvs = dict(_parse_tlvs(data))
        inner = tlvs.get(0x4D)
        if inner is None:
            raise _CardError(SW.WRONG_DATA)
        if inner[:1] == b"\x70":
            inner = dict(_parse_tlvs(inner))[0x70]
        if len(inner) < 4 or inner[0] != 0xBF:
            raise _CardError(SW.WRONG_DATA)
        sdo_class, ref = inner[1] & 0x7F, inner[2] & 0x1F
        wanted = inner[4 : 4 + inner[3]]
        if wanted.endswith(b"\x80"):
            wanted = wanted[:-1]
        tag = int.from_bytes(wanted, "big") if wanted else 0
        header = bytes([0xBF, sdo_class | 0x80, ref])
        if sdo_class == 0x01:
            body = self._chv_data(ref, tag)
        elif sdo_class in (0x10, 0x20):
            body = self._key_data(sdo_class, ref, tag)
        elif sdo_class == 0x7B:
            se = self.security_environments.get(ref)
            if se is None:
                raise _CardError(SW.DATA_NOT_FOUND)
            return _tlv(0x7B, b"".join(se.crts)), SW.OK
        else:
            raise _CardError(SW.DATA_NOT_FOUND)
        return header + _len(len(body)) + body, SW.OK

    def _chv_data(self, ref: int, tag: int) -> bytes:
        pin = self.pins.get(ref)
        if pin is None:
            raise _CardError(SW.DATA_NOT_FOUND)
        if tag == 0x7F41:
            return _tlv(
                0x7F41, _tlv(0x80, bytes([pin.max_length])) + _tlv(0x81, bytes([pin.min_length]))
            )
        if tag == 0xA0:
            docp = _tlv(0x9A, bytes([pin.max_tries])) + _tlv(0x9B, bytes([pin.tries_left]))
            if pin.uses_left is not None:
                docp += _tlv(0x9D, bytes([min(pin.uses_left, 255)]))
            docp += _tlv(0xA1, _tlv(0x8C, pin.acl))
            return _tlv(0xA0, docp)
        raise _CardError(SW.INCORRECT_P1P2)

    def _key_data(self, sdo_class: int, ref: int, tag: int) -> bytes:
        key = self.keys.get(ref)
        if key is None:
            raise _CardError(SW.DATA_NOT_FOUND)
        size = (key.private_key.key_size + 7) // 8
        if tag == 0xA0:
            acl = key.acl if sdo_class == 0x10 else bytes([0x03, 0xFF, 0x00])
            return _tlv(0xA0, _tlv(0x80, size.to_bytes(2, "big")) + _tlv(0xA1, _tlv(0x8C, acl)))
        if sdo_class == 0x20 and tag == 0x7F49:
            pub = key.private_key.public_key().public_numbers()
            e = pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big")
            return _tlv(0x7F49, _tlv(0x81, pub.n.to_bytes(size, "big")) + _tlv(0x82, e))
        # no readable private part: what OpenSC expects for 7F48 (VIRTUAL_CPS3.md)
        raise _CardError(SW.INCORRECT_P1P2)

    # -- MSE and cryptographic operations -------------------------------------------------

    def _mse(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        if p1 == 0xF3:  # RESTORE SE n: back to no operation prepared
            self._env.clear()
            self._hash = None
            return b"", SW.OK
        if p1 not in (0x41, 0x81):
            raise _CardError(SW.INCORRECT_P1P2)
        algs: dict[int, str | None] | None = {
            0xA4: _ALG_AT, 0xAA: _ALG_HT, 0xB6: _ALG_DST, 0xB8: _ALG_CT
        }.get(p2)  # fmt: skip
        if algs is None:
            raise _CardError(SW.INCORRECT_P1P2)
        key_ref: int | None = None
        alg: int | None = None
        for tag, value in _parse_tlvs(data):
            if tag in (0x83, 0x84) and len(value) == 1:
                key_ref = value[0]
            elif tag == 0x80 and len(value) == 1:
                alg = value[0]
            elif tag == 0x95:
                continue
            else:
                raise _CardError(SW.WRONG_DATA)
        if alg is not None and alg not in algs:
            raise _CardError(SW.WRONG_DATA)
        if p2 != 0xAA and (key_ref is None or (key_ref & 0x7F) not in self.keys):
            raise _CardError(SW.DATA_NOT_FOUND)
        self._env[p2] = (key_ref, alg)
        if p2 == 0xAA:
            self._hash = None
        return b"", SW.OK

    def _key_for(self, crt: int, scb_index: int) -> tuple[CardRsaKey, int | None]:
        env = self._env.get(crt)
        if env is None or env[0] is None:
            raise _CardError(SW.CONDITIONS_OF_USE)
        key = self.keys[env[0] & 0x7F]
        self._require(_scbs(key.acl)[scb_index])
        return key, env[1]

    def _internal_authenticate(
        self, p1: int, p2: int, data: bytes, le: int | None
    ) -> tuple[bytes, int]:
        if (p1, p2) != (0x00, 0x00):
            raise _CardError(SW.INCORRECT_P1P2)
        if not data:
            raise _CardError(SW.WRONG_LENGTH)
        key, _ = self._key_for(0xA4, 1)
        return _pkcs1_sign(key.private_key, data), SW.OK

    def _pso(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        op = (p1 << 8) | p2
        if op == 0x90A0:
            return self._pso_hash(data)
        if op == 0x9E9A:
            return self._pso_cds(data)
        if op == 0x8086:
            return self._pso_decipher(data)
        raise _CardError(SW.INCORRECT_P1P2)

    def _pso_hash(self, data: bytes) -> tuple[bytes, int]:
        env = self._env.get(0xAA)
        if env is None or env[1] is None:
            raise _CardError(SW.CONDITIONS_OF_USE)
        algorithm = _ALG_HT[env[1]] or "sha256"
        size = hashlib.new(algorithm).digest_size
        tlvs = list(_parse_tlvs(data))
        state = next((v for t, v in tlvs if t == 0x90), None)
        tail = next((v for t, v in tlvs if t == 0x80), None)
        if state is not None and len(state) == size and tail is None:
            digest = state  # the host hashed everything
        elif state is not None and len(state) == size + 8 and tail is not None:
            bits = int.from_bytes(state[size:], "big")
            if bits % 512 or not 1 <= len(tail) <= 64:
                raise _CardError(SW.WRONG_DATA)
            digest = sha_resume(algorithm, state[:size], bits, tail)
        elif tail is not None and (state is None or not state):
            digest = hashlib.new(algorithm, tail).digest()
        else:
            raise _CardError(SW.WRONG_DATA)
        self._hash = (algorithm, digest)
        return b"", SW.OK

    def _pso_cds(self, data: bytes) -> tuple[bytes, int]:
        key, alg = self._key_for(0xB6, 0)
        algorithm = _ALG_DST.get(alg) if alg is not None else None
        if data:  # the host sends the hash (or, for RSA_PKCS, the DigestInfo)
            if algorithm is not None:
                if len(data) != hashlib.new(algorithm).digest_size:
                    raise _CardError(SW.WRONG_LENGTH)
                to_sign = digest_info(algorithm, data)
            else:
                to_sign = data
        else:
            if self._hash is None or (algorithm is not None and self._hash[0] != algorithm):
                raise _CardError(SW.CONDITIONS_OF_USE)
            to_sign = digest_info(*self._hash)
        self._hash = None
        return _pkcs1_sign(key.private_key, to_sign), SW.OK

    def _pso_decipher(self, data: bytes) -> tuple[bytes, int]:
        key, _ = self._key_for(0xB8, 2)
        if not data or data[0] not in (0x00, 0x81):
            raise _CardError(SW.WRONG_DATA)
        return _pkcs1_decrypt(key.private_key, data[1:]), SW.OK

    def _get_challenge(self, p1: int, p2: int, data: bytes, le: int | None) -> tuple[bytes, int]:
        if (p1, p2) != (0x00, 0x00) or data:
            raise _CardError(SW.INCORRECT_P1P2)
        return os.urandom(le or 8), SW.OK


_Handler = Callable[[IasEccCard, int, int, bytes, "int | None"], tuple[bytes, int]]
_HANDLERS: dict[int, _Handler] = {
    0xA4: IasEccCard._select,
    0xB0: IasEccCard._read_binary,
    0x20: IasEccCard._verify,
    0x24: IasEccCard._change_reference_data,
    0x2C: IasEccCard._reset_retry_counter,
    0xCB: IasEccCard._get_data,
    0x22: IasEccCard._mse,
    0x88: IasEccCard._internal_authenticate,
    0x2A: IasEccCard._pso,
    0x84: IasEccCard._get_challenge,
}
_CHAINABLE = frozenset({0x2A, 0x88, 0xCB})
