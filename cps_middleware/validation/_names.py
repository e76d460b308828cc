"""RFC 5280 name constraints (4.2.1.10, 6.1.3 (b)/(c), 6.1.4 (g)) for the batch validator.

A CA's nameConstraints extension is read once, when the engine is built
(:func:`parse_constraints`); a certificate below it has its names read
(:func:`names_of`: the subject DN, its emailAddress attributes, the
subjectAltName entries) only when its path carries constraints, so
certificates on unconstrained paths pay nothing.

Constraints accumulate along a path: a name must lie in the permitted subtrees
of *every* constraining CA above it (the intersection of 6.1.3 (b)) and in the
excluded subtrees of none (the union of 6.1.3 (c)); checking the name against
each CA's extension in turn is that, without computing intersections.

Name forms processed: directoryName (RDN-sequence prefix, RDNs compared with
the RFC 5280 7.1 rules the validator uses for name chaining), rfc822Name,
dNSName, iPAddress (address and mask) and uniformResourceIdentifier (its host).
A constraint on any other form (otherName, x400Address, ediPartyName,
registeredID) cannot be processed: a certificate with a name of that form
fails (4.2.1.10: "MUST either process the constraint or reject").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from asn1crypto import x509 as _ax509

from cps_middleware.validation._der import DerError, _tlv

__all__: list[str] = []  # private module

OID_EMAIL = "1.2.840.113549.1.9.1"  # PKCS #9 emailAddress in a subject DN

# GeneralName context tags → the form's short name (for reasons)
_FORMS = {
    0: "otherName",
    1: "email",
    2: "DNS",
    3: "x400Address",
    4: "DirName",
    5: "ediPartyName",
    6: "URI",
    7: "IP",
    8: "registeredID",
}
_UNSUPPORTED = frozenset({0, 3, 5, 8})
F_EMAIL, F_DNS, F_DIR, F_URI, F_IP = 1, 2, 4, 6, 7

# A name: (form tag, comparison value, text for reasons).
Name = tuple[int, object, str]


@dataclass(frozen=True)
class Constraints:
    """One CA's nameConstraints: form tag → list of (base, text)."""

    ca: str  # the CA's label, for reasons
    permitted: dict[int, list[tuple[object, str]]] = field(default_factory=dict)
    excluded: dict[int, list[tuple[object, str]]] = field(default_factory=dict)


# --- reading ---------------------------------------------------------------------------


def _ia5(b: bytes, what: str) -> str:
    try:
        return b.decode("ascii")
    except UnicodeDecodeError:
        raise DerError(f"{what} is not an IA5String") from None


_OID_EMAIL_RAW = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"


# RDN DER -> comparison key: holder certificates share most of their RDNs
_KEYS: dict[bytes, str] = {}


class _Dn:
    """A distinguished name as its RDNs' DER; the RFC 5280 7.1 comparison key of
    an RDN (string preparation, slow) is computed only when the bytes differ."""

    __slots__ = ("der", "keys", "raw")

    def __init__(self, der: bytes) -> None:
        self.der = der
        tag, s, e = _tlv(der, 0, len(der))
        if tag != 0x30 or e != len(der):
            raise DerError("bad Name")
        raw = []
        while s < e:
            tag, _, ce = _tlv(der, s, e)
            if tag != 0x31:
                raise DerError("bad RelativeDistinguishedName")
            raw.append(der[s:ce])
            s = ce
        self.raw = tuple(raw)
        self.keys: list[str | None] = [None] * len(raw)

    def key(self, i: int) -> str:
        k = self.keys[i]
        if k is None:
            raw = self.raw[i]
            k = _KEYS.get(raw)
            if k is None:
                try:
                    k = str(_ax509.RelativeDistinguishedName.load(raw).hashable)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise DerError(f"unreadable name ({exc})") from None
                if len(_KEYS) >= 4096:  # a cache: bounded against floods of odd names
                    _KEYS.clear()
                _KEYS[raw] = k
            self.keys[i] = k
        return k

    def emails(self) -> list[str]:
        if _OID_EMAIL_RAW not in self.der:  # the common case: no emailAddress
            return []
        out = []
        for rdn in self.raw:
            _, s, e = _tlv(rdn, 0, len(rdn))
            while s < e:
                _, as_, ae = _tlv(rdn, s, e)
                _, _, oe = _tlv(rdn, as_, ae)
                if rdn[as_:oe] == _OID_EMAIL_RAW:
                    _, vs, ve = _tlv(rdn, oe, ae)
                    out.append(_ia5(rdn[vs:ve], "emailAddress"))
                s = ae
        return out

    def text(self) -> str:
        try:
            return str(_ax509.Name.load(self.der).human_friendly) or "(empty)"
        except (ValueError, TypeError, KeyError, AttributeError):
            return self.der.hex()


def _ip_base(b: bytes) -> tuple[bytes, bytes]:
    if len(b) not in (8, 32):
        raise DerError(f"an iPAddress constraint of {len(b)} bytes (8 or 32 expected)")
    half = len(b) // 2
    addr, mask = b[:half], b[half:]
    bits = int.from_bytes(mask, "big")
    width = 8 * half
    ones = bits.bit_count()
    if bits != ((1 << ones) - 1) << (width - ones):  # a prefix mask, no holes
        raise DerError("an iPAddress constraint with a non-contiguous mask")
    return bytes(a & m for a, m in zip(addr, mask, strict=True)), mask


def _ip_text(addr: bytes, mask: bytes | None = None) -> str:
    text = str(ipaddress.ip_address(addr))
    if mask is not None:
        text += f"/{int.from_bytes(mask, 'big').bit_count()}"
    return text


def _general_names(b: bytes, s: int, e: int) -> list[tuple[int, int, int]]:
    """A SEQUENCE's worth of GeneralName → (form tag, content start, end)."""
    out = []
    while s < e:
        tag, cs, ce = _tlv(b, s, e)
        if tag & 0xC0 != 0x80 or (tag & 0x1F) not in _FORMS:
            raise DerError("bad GeneralName")
        out.append((tag & 0x1F, cs, ce))
        s = ce
    return out


def parse_constraints(value: bytes, ca: str) -> Constraints:
    """The extnValue of a nameConstraints extension → :class:`Constraints`.

    Raises DerError when it cannot be processed (bad DER, minimum / maximum
    present, RFC 5280 4.2.1.10 "MUST be zero" / "MUST be absent").
    """
    try:
        return _parse_constraints(value, ca)
    except IndexError:
        raise DerError("truncated nameConstraints") from None


def _parse_constraints(value: bytes, ca: str) -> Constraints:
    tag, s, e = _tlv(value, 0, len(value))
    if tag != 0x30 or e != len(value):
        raise DerError("bad nameConstraints")
    out = Constraints(ca)
    last = -1
    while s < e:
        tag, ls, le = _tlv(value, s, e)
        if tag not in (0xA0, 0xA1) or tag <= last:
            raise DerError("bad nameConstraints")
        last = tag
        into = out.permitted if tag == 0xA0 else out.excluded
        while ls < le:
            tag, gs, ge = _tlv(value, ls, le)
            if tag != 0x30:
                raise DerError("bad GeneralSubtree")
            base_tag, _bs, be = _tlv(value, gs, ge)
            if be != ge:
                raise DerError("a GeneralSubtree with minimum or maximum (not allowed)")
            ((form, cs, ce),) = _general_names(value, gs, ge)
            raw = value[cs:ce]
            base: object
            if form in (F_DNS, F_EMAIL, F_URI):
                base = _ia5(raw, _FORMS[form]).lower() if form != F_EMAIL else _ia5(raw, "email")
                text = f"{_FORMS[form]}:{base}"
            elif form == F_IP:
                base = _ip_base(raw)
                text = f"IP:{_ip_text(*base)}"
            elif form == F_DIR:
                tag, _, ie = _tlv(value, cs, ce)
                if base_tag != 0xA4 or tag != 0x30 or ie != ce:
                    raise DerError("bad directoryName")
                base = dn = _Dn(raw)
                for i in range(len(dn.raw)):
                    dn.key(i)  # prepared once, with the engine
                text = f"DirName:{dn.text()}"
            else:
                base = None
                text = _FORMS[form]
            into.setdefault(form, []).append((base, text))
            ls = ge
        s = le
    return out


def names_of(subject: bytes, san: bytes | None) -> list[Name]:
    """The names RFC 5280 6.1.3 (b)/(c) checks: subject DN (unless empty),
    its emailAddress attributes (as rfc822Name, 4.2.1.10), the SAN entries."""
    try:
        return _names_of(subject, san)
    except IndexError:
        raise DerError("truncated subjectAltName") from None


def _names_of(subject: bytes, san: bytes | None) -> list[Name]:
    out: list[Name] = []
    dn = _Dn(subject)
    if dn.raw:
        out.append((F_DIR, dn, ""))
    for m in dn.emails():
        out.append((F_EMAIL, m, f"email:{m} (subject emailAddress)"))
    if san is None:
        return out
    tag, s, e = _tlv(san, 0, len(san))
    if tag != 0x30 or e != len(san):
        raise DerError("bad subjectAltName")
    for form, cs, ce in _general_names(san, s, e):
        raw = san[cs:ce]
        if form in (F_DNS, F_EMAIL, F_URI):
            v = _ia5(raw, _FORMS[form])
            out.append((form, v, f"{_FORMS[form]}:{v}"))
        elif form == F_IP:
            if len(raw) not in (4, 16):
                raise DerError(f"an iPAddress of {len(raw)} bytes")
            out.append((form, raw, f"IP:{_ip_text(raw)}"))
        elif form == F_DIR:
            tag, _, ie = _tlv(san, cs, ce)
            if tag != 0x30 or ie != ce:
                raise DerError("bad directoryName")
            out.append((form, _Dn(raw), ""))
        else:
            out.append((form, None, _FORMS[form]))
    return out


# --- matching -------------------------------------------------------------------------


def _dns_match(name: str, base: str) -> bool:
    # 4.2.1.10: "any DNS name that can be constructed by simply adding zero or
    # more labels to the left-hand side"; a base with a leading period (common
    # practice, as in OpenSSL) matches subdomains only
    if not base:
        return True
    name = name.lower()
    if len(name) < len(base) or not name.endswith(base):
        return False
    return len(name) == len(base) or base[0] == "." or name[-len(base) - 1] == "."


_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _dns_syntax(name: str, *, wildcard: bool = True) -> bool:
    """RFC 5280 4.2.1.6 / RFC 1034 3.5 preferred name syntax (a leftmost ``*``
    label allowed in a certificate name): letters, digits, hyphens; labels of
    1..63 characters not starting or ending with a hyphen; 253 at most."""
    if not name or len(name) > 253:
        return False
    labels = name.lower().split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return all(
        0 < len(lab) <= 63 and _LDH.issuperset(lab) and lab[0] != "-" and lab[-1] != "-"
        for lab in labels
    )


def _mailbox(name: str) -> tuple[str, str]:
    local, at, host = name.rpartition("@")
    if (
        not at
        or not local
        or not host
        or any(c <= " " or c == "\x7f" for c in local)
        or not _dns_syntax(host, wildcard=False)
    ):
        raise DerError(f"'{name}' is not a mailbox (local-part@host)")
    return local, host.lower()


def _email_match(name: str, base: str) -> bool:
    local, host = _mailbox(name)
    if "@" in base:  # one mailbox: local part exact (7.5), host without case
        blocal, bhost = _mailbox(base)
        return local == blocal and host == bhost
    base = base.lower()
    if base.startswith("."):  # any host in that domain
        return host.endswith(base)
    return host == base  # every mailbox on that host


def _uri_host(uri: str) -> str:
    scheme, colon, rest = uri.partition(":")
    if not colon or not scheme or not rest.startswith("//"):
        raise DerError(f"the URI '{uri}' has no host part")
    auth = rest[2:]
    for sep in "/?#":
        auth = auth.split(sep, 1)[0]
    host = auth.rpartition("@")[2]
    # an IP literal keeps its brackets; otherwise the port goes
    host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]
    if not host:
        raise DerError(f"the URI '{uri}' has no host part")
    return host.lower()


def _uri_match(name: str, base: str) -> bool:
    # 4.2.1.10: a base with a leading period is a domain (subdomains only),
    # otherwise a host
    host = _uri_host(name)
    if base.startswith("."):
        return host.endswith(base)
    return host == base


def _ip_match(name: bytes, base: tuple[bytes, bytes]) -> bool:
    addr, mask = base
    if len(name) != len(addr):
        return False
    return all((n & m) == a for n, a, m in zip(name, addr, mask, strict=True))


def _dir_match(name: _Dn, base: _Dn) -> bool:
    if len(name.raw) < len(base.raw):
        return False
    return all(
        n == b or name.key(i) == base.key(i)
        for i, (n, b) in enumerate(zip(name.raw, base.raw, strict=False))
    )


_MATCH = {
    F_DNS: _dns_match,
    F_EMAIL: _email_match,
    F_URI: _uri_match,
    F_IP: _ip_match,
    F_DIR: _dir_match,
}


def _label(value: object, text: str) -> str:
    """A name for reasons (a DN is rendered only then: it is slow)."""
    if not text and isinstance(value, _Dn):
        return f"DirName:{value.text()}"
    return text


def violation(names: list[Name], constraints: tuple[Constraints, ...]) -> str | None:
    """None when every name satisfies every CA's constraints; else why not."""
    for nc in constraints:
        of = f"of CA '{nc.ca}'"
        for form, value, text in names:
            perm = nc.permitted.get(form)
            excl = nc.excluded.get(form)
            if perm is None and excl is None:
                continue  # the form is not constrained by this CA
            if form in _UNSUPPORTED:
                return (
                    f"the name form {_FORMS[form]} of the certificate is constrained by "
                    f"CA '{nc.ca}' and cannot be checked"
                )
            match = _MATCH[form]
            if form == F_DNS and not _dns_syntax(value):  # type: ignore[arg-type]
                return f"{text} is not a valid DNS name (RFC 5280 4.2.1.6), constrained {of}"
            try:
                # permitted first, as OpenSSL does: the same reason for a name in both
                if perm is not None and not any(match(value, b) for b, _ in perm):  # type: ignore[operator]
                    allowed = ", ".join(t for _, t in perm)
                    who = _label(value, text)
                    return f"{who} is outside the permitted subtrees ({allowed}) {of}"
                for base, btext in excl or ():
                    if match(value, base):  # type: ignore[operator]
                        return f"{_label(value, text)} is in the excluded subtree {btext} {of}"
            except DerError as exc:
                who = _label(value, text)
                return f"{who} cannot be checked against the constraints {of}: {exc}"
    return None
