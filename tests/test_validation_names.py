"""Name constraints (RFC 5280 4.2.1.10, 6.1.3 (b)/(c), 6.1.4 (g)): crafted cases per name form.

Each name form the validator processes has a passing and a failing case;
constraints on forms it does not process fail closed when the certificate has
a name of that form; constraints accumulate along the path; self-issued
intermediates are exempt. The comparison with ``openssl verify`` on generated
cases is in ``test_validation_differential.py``.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cps_middleware.testing.pki import key_usage
from cps_middleware.validation import Status, ValidationResult, ValidatorBuilder, _der, _names

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
C, ORG, CN = NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME
EMAIL = NameOID.EMAIL_ADDRESS
_serial = iter(range(5000, 10**6))


@functools.cache
def key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def dn(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, v) for oid, v in pairs])


ROOT_NAME = dn((C, "FR"), (ORG, "NC TEST"), (CN, "NC ROOT"))
CA_NAME = dn((C, "FR"), (ORG, "NC TEST"), (CN, "NC CA"))
LEAF_NAME = dn((C, "FR"), (ORG, "NC TEST"), (CN, "holder one"))


def cert(
    subject: x509.Name,
    k: int,
    issuer: tuple[x509.Certificate, int] | None,
    *,
    ca: bool = False,
    nc: x509.NameConstraints | x509.UnrecognizedExtension | None = None,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    iname = issuer[0].subject if issuer else subject
    ikey = key(issuer[1]) if issuer else key(k)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(iname)
        .public_key(key(k).public_key())
        .serial_number(next(_serial))
        .not_valid_before(NOW - 30 * DAY)
        .not_valid_after(NOW + 365 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key(k).public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ikey.public_key()), False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    b = b.add_extension(
        key_usage("key_cert_sign", "crl_sign") if ca else key_usage("digital_signature"), True
    )
    if nc is not None:
        b = b.add_extension(nc, critical=True)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=not subject)
    return b.sign(ikey, hashes.SHA256())


def constraints(
    permitted: list[x509.GeneralName] | None = None, excluded: list[x509.GeneralName] | None = None
) -> x509.NameConstraints:
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def check(
    nc: x509.NameConstraints | x509.UnrecognizedExtension,
    *,
    subject: x509.Name = LEAF_NAME,
    san: list[x509.GeneralName] | None = None,
) -> ValidationResult:
    """root → CA (with ``nc``) → leaf; one-by-one and batch verdicts agree."""
    root = cert(ROOT_NAME, 0, None, ca=True)
    inter = cert(CA_NAME, 1, (root, 0), ca=True, nc=nc)
    leaf = cert(subject, 2, (inter, 1), san=san)
    vb = ValidatorBuilder().trust([root]).intermediates([inter]).time(NOW)
    r = vb.build().validate(leaf)
    assert vb.build().validate_many([leaf, leaf])[1] == r
    if r.ok:
        assert r.path == (inter, root)
    return r


def violated(r: ValidationResult, *words: str) -> None:
    assert r.status is Status.NAME_CONSTRAINTS_VIOLATED, r
    assert "NC CA" in r.reason, r.reason
    for w in words:
        assert w in r.reason, r.reason


# --- directoryName ---------------------------------------------------------------------


def test_directory_name_permitted_and_excluded() -> None:
    fr = x509.DirectoryName(dn((C, "FR"), (ORG, "NC TEST")))
    assert check(constraints([fr])).ok
    # RFC 5280 7.1: case and spacing do not matter
    assert check(constraints([x509.DirectoryName(dn((C, "fr"), (ORG, "nc  test ")))])).ok
    r = check(constraints([fr]), subject=dn((C, "FR"), (ORG, "OTHER"), (CN, "holder")))
    violated(r, "permitted subtrees", "NC TEST")
    # a prefix of RDNs, not a suffix nor a set of attributes
    r = check(constraints([x509.DirectoryName(dn((ORG, "NC TEST")))]))
    violated(r, "permitted subtrees")
    r = check(constraints(None, [x509.DirectoryName(dn((C, "FR")))]))
    violated(r, "excluded subtree", "Country: FR")
    assert check(constraints(None, [x509.DirectoryName(dn((C, "DE")))])).ok


def test_directory_name_in_san_and_empty_subject() -> None:
    fr = x509.DirectoryName(dn((C, "FR"), (ORG, "NC TEST")))
    de = x509.DirectoryName(dn((C, "DE"), (CN, "x")))
    assert check(constraints([fr]), san=[x509.DirectoryName(LEAF_NAME)]).ok
    violated(check(constraints([fr]), san=[de]), "DirName", "permitted")
    # an empty subject is no directoryName (the SAN carries the names)
    assert check(constraints([fr]), subject=x509.Name([]), san=[x509.DNSName("a.b")]).ok


# --- rfc822Name and emailAddress -----------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "mail", "ok"),
    [
        ("sante.fr", "jean@sante.fr", True),  # a host: every mailbox on it
        ("sante.fr", "jean@mail.sante.fr", False),
        (".sante.fr", "jean@mail.sante.fr", True),  # a domain: hosts under it
        (".sante.fr", "jean@sante.fr", False),
        ("jean@sante.fr", "jean@SANTE.FR", True),  # one mailbox, host without case
        ("jean@sante.fr", "Jean@sante.fr", False),  # local part exact (7.5)
        ("sante.fr", "not-a-mailbox", False),  # cannot be checked: refused
    ],
)
def test_rfc822_name(base: str, mail: str, ok: bool) -> None:
    r = check(constraints([x509.RFC822Name(base)]), san=[x509.RFC822Name(mail)])
    assert r.ok is ok, r
    if not ok:
        violated(r, "email:")


def test_rfc822_excluded_and_subject_email_address() -> None:
    excl = constraints(None, [x509.RFC822Name(".evil.example")])
    assert check(excl, san=[x509.RFC822Name("a@good.example")]).ok
    violated(check(excl, san=[x509.RFC822Name("a@x.evil.example")]), "excluded subtree")
    # RFC 5280 4.2.1.10: emailAddress attributes of the subject DN are rfc822Names
    subject = dn((C, "FR"), (CN, "holder"), (EMAIL, "a@x.evil.example"))
    violated(check(excl, subject=subject), "subject emailAddress", "excluded")
    subject = dn((C, "FR"), (CN, "holder"), (EMAIL, "a@sante.fr"))
    assert check(constraints([x509.RFC822Name("sante.fr")]), subject=subject).ok


# --- dNSName ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "dns", "ok"),
    [
        ("sante.fr", "sante.fr", True),
        ("sante.fr", "www.SANTE.fr", True),  # labels added on the left, no case
        ("sante.fr", "notsante.fr", False),  # not a label boundary
        ("sante.fr", "sante.fr.evil", False),
        (".sante.fr", "sante.fr", False),  # a leading period: subdomains only
        (".sante.fr", "a.sante.fr", True),
    ],
)
def test_dns_name(base: str, dns: str, ok: bool) -> None:
    r = check(constraints([x509.DNSName(base)]), san=[x509.DNSName(dns)])
    assert r.ok is ok, r
    if not ok:
        violated(r, f"DNS:{dns}", "permitted")
    r = check(constraints(None, [x509.DNSName(base)]), san=[x509.DNSName(dns)])
    assert r.ok is not ok, r
    if ok:
        violated(r, f"excluded subtree DNS:{base}")


def test_every_san_entry_is_checked() -> None:
    nc = constraints([x509.DNSName("sante.fr")])
    violated(check(nc, san=[x509.DNSName("a.sante.fr"), x509.DNSName("b.other.fr")]), "b.other")
    # forms the constraint does not name are not restricted by it
    assert check(nc, san=[x509.DNSName("a.sante.fr"), x509.RFC822Name("x@other.fr")]).ok


# --- iPAddress ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "ip", "ok"),
    [
        ("10.1.0.0/16", "10.1.200.3", True),
        ("10.1.0.0/16", "10.2.0.1", False),
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("2001:db8::/32", "10.1.0.1", False),  # IPv4 name, only IPv6 permitted
        ("0.0.0.0/0", "192.0.2.1", True),
    ],
)
def test_ip_address(net: str, ip: str, ok: bool) -> None:
    base = x509.IPAddress(ipaddress.ip_network(net))
    r = check(constraints([base]), san=[x509.IPAddress(ipaddress.ip_address(ip))])
    assert r.ok is ok, r
    if not ok:
        violated(r, f"IP:{ip}", net)


def test_ip_address_bad_mask_is_not_processed() -> None:
    # 10.0.0.0 with mask 255.0.255.0 (not a prefix): cryptography cannot read
    # the CA certificate either, so the CA is set aside and nothing chains to it
    ext = _nc_ext(_seq(_ctx(0xA0, _seq(_ctx(0x87, bytes([10, 0, 0, 0, 255, 0, 255, 0]))))))
    r = check(ext, san=[x509.IPAddress(ipaddress.ip_address("10.0.0.1"))])
    assert r.status is Status.UNKNOWN_ISSUER, r


# --- uniformResourceIdentifier ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "uri", "ok"),
    [
        ("ws.sante.fr", "https://ws.sante.fr/a?b", True),
        ("ws.sante.fr", "https://user@WS.sante.fr:8443/", True),
        ("ws.sante.fr", "https://x.ws.sante.fr/", False),  # a host, not a domain
        (".sante.fr", "https://x.ws.sante.fr/", True),
        (".sante.fr", "https://sante.fr/", False),
        ("sante.fr", "urn:oid:1.2.3", False),  # no host part: cannot be checked
    ],
)
def test_uri(base: str, uri: str, ok: bool) -> None:
    r = check(
        constraints([x509.UniformResourceIdentifier(base)]),
        san=[x509.UniformResourceIdentifier(uri)],
    )
    assert r.ok is ok, r
    if not ok:
        violated(r, "URI:")


# --- forms not processed, malformed constraints ------------------------------------------------


def test_unprocessed_form_fails_closed() -> None:
    upn = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
    nc = constraints(None, [x509.OtherName(upn, b"\x0c\x03a@b")])
    violated(check(nc, san=[x509.OtherName(upn, b"\x0c\x03x@y")]), "otherName", "cannot be checked")
    # no name of that form in the certificate: nothing to check
    assert check(nc, san=[x509.DNSName("a.example")]).ok
    rid = constraints([x509.RegisteredID(x509.ObjectIdentifier("1.2.3"))])
    violated(check(rid, san=[x509.RegisteredID(x509.ObjectIdentifier("1.2.3"))]), "registeredID")


def _len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n])


def _ctx(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def _seq(content: bytes) -> bytes:
    return _ctx(0x30, content)


def _nc_ext(value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.30"), value)


def test_minimum_or_maximum_is_not_processed() -> None:
    dns = _ctx(0x82, b"sante.fr")
    # GeneralSubtree with maximum [1] 2: RFC 5280 says it MUST be absent
    ext = _nc_ext(_seq(_ctx(0xA0, _seq(dns + _ctx(0x81, b"\x02")))))
    violated(check(ext, san=[x509.DNSName("sante.fr")]), "cannot be processed")
    # the same without it is fine
    assert check(_nc_ext(_seq(_ctx(0xA0, _seq(dns)))), san=[x509.DNSName("sante.fr")]).ok
    # truncated: cryptography cannot read the CA either, it is set aside
    r = check(_nc_ext(b"\x30\x03\xa0"), san=[x509.DNSName("sante.fr")])
    assert r.status is Status.UNKNOWN_ISSUER, r


# --- the path: accumulation, intermediates, self-issued ---------------------------------------


def test_constraints_accumulate_along_the_path() -> None:
    root = cert(ROOT_NAME, 0, None, ca=True)
    ca1 = cert(
        dn((C, "FR"), (ORG, "NC TEST"), (CN, "NC CA 1")),
        1,
        (root, 0),
        ca=True,
        nc=constraints([x509.DNSName("sante.fr")], [x509.DNSName("bad.sante.fr")]),
    )
    ca2 = cert(
        CA_NAME,
        3,
        (ca1, 1),
        ca=True,
        nc=constraints([x509.DNSName("a.sante.fr"), x509.DNSName("other.fr")]),
    )
    vb = ValidatorBuilder().trust([root]).intermediates([ca1, ca2]).time(NOW)
    v = vb.build()
    good = cert(LEAF_NAME, 2, (ca2, 3), san=[x509.DNSName("x.a.sante.fr")])
    assert v.validate(good).ok
    # permitted by CA 2 but not by CA 1: the intersection is what is permitted
    outside = cert(LEAF_NAME, 2, (ca2, 3), san=[x509.DNSName("other.fr")])
    r = v.validate(outside)
    assert r.status is Status.NAME_CONSTRAINTS_VIOLATED and "NC CA 1" in r.reason, r
    # CA 1's exclusion holds below CA 2 too (union of excluded)
    excluded = cert(LEAF_NAME, 2, (ca2, 3), san=[x509.DNSName("bad.sante.fr")])
    r = v.validate(excluded)
    assert r.status is Status.NAME_CONSTRAINTS_VIOLATED, r
    batch = vb.build().validate_many([good, outside, excluded])
    assert list(batch) == [v.validate(good), v.validate(outside), v.validate(excluded)]


def test_intermediate_outside_the_constraints() -> None:
    root = cert(ROOT_NAME, 0, None, ca=True)
    ca1 = cert(
        dn((C, "FR"), (ORG, "NC TEST"), (CN, "NC CA 1")),
        1,
        (root, 0),
        ca=True,
        nc=constraints([x509.DirectoryName(dn((C, "DE")))]),
    )
    ca2 = cert(dn((C, "FR"), (ORG, "NC TEST"), (CN, "NC CA 2")), 3, (ca1, 1), ca=True)
    leaf = cert(dn((C, "DE"), (CN, "holder")), 2, (ca2, 3))
    r = ValidatorBuilder().trust([root]).intermediates([ca1, ca2]).time(NOW).build().validate(leaf)
    assert r.status is Status.NAME_CONSTRAINTS_VIOLATED, r
    assert r.reason.startswith("CA 'NC CA 2'") and "NC CA 1" in r.reason, r.reason


def test_self_issued_intermediate_is_exempt() -> None:
    root = cert(ROOT_NAME, 0, None, ca=True)
    # CA 1 constrains to C=DE, outside its own name (FR)
    nc = constraints([x509.DirectoryName(dn((C, "DE")))])
    ca1 = cert(CA_NAME, 1, (root, 0), ca=True, nc=nc)
    # a self-issued rollover certificate of CA 1 (same name, new key): exempt
    rollover = cert(CA_NAME, 3, (ca1, 1), ca=True)
    leaf = cert(dn((C, "DE"), (CN, "holder")), 2, (rollover, 3))
    v = ValidatorBuilder().trust([root]).intermediates([ca1, rollover]).time(NOW).build()
    r = v.validate(leaf)
    assert r.ok, r
    assert r.path == (rollover, ca1, root)
    # the leaf is never exempt
    bad = cert(dn((C, "FR"), (CN, "holder")), 2, (rollover, 3))
    assert v.validate(bad).status is Status.NAME_CONSTRAINTS_VIOLATED


def test_anchor_constraints_apply() -> None:
    """The trust anchor's constraints bind the path (as OpenSSL and cryptography do)."""
    root = cert(ROOT_NAME, 0, None, ca=True, nc=constraints(None, [x509.DNSName("evil.fr")]))
    inter = cert(CA_NAME, 1, (root, 0), ca=True)
    v = ValidatorBuilder().trust([root]).intermediates([inter]).time(NOW).build()
    assert v.validate(cert(LEAF_NAME, 2, (inter, 1), san=[x509.DNSName("ok.fr")])).ok
    r = v.validate(cert(LEAF_NAME, 2, (inter, 1), san=[x509.DNSName("www.evil.fr")]))
    assert r.status is Status.NAME_CONSTRAINTS_VIOLATED and "NC ROOT" in r.reason, r


def test_unreadable_san_is_malformed_with_or_without_constraints() -> None:
    """A leaf whose subjectAltName does not parse is MALFORMED, whether or
    not its path carries name constraints (RFC 5280 4.2.1.6, 4.1.2)."""
    bad_san = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.17"), b"\x30\x02\x99\x00")
    root = cert(ROOT_NAME, 0, None, ca=True)
    plain = cert(CA_NAME, 1, (root, 0), ca=True)
    b = (
        x509.CertificateBuilder()
        .subject_name(LEAF_NAME)
        .issuer_name(CA_NAME)
        .public_key(key(2).public_key())
        .serial_number(next(_serial))
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(bad_san, False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key(1).public_key()), False
        )
    )
    leaf = b.sign(key(1), hashes.SHA256())
    r = ValidatorBuilder().trust([root]).intermediates([plain]).time(NOW).build().validate(leaf)
    assert r.status is Status.MALFORMED, r
    constrained = cert(CA_NAME, 1, (root, 0), ca=True, nc=constraints([x509.DNSName("a.fr")]))
    r = (
        ValidatorBuilder()
        .trust([root])
        .intermediates([constrained])
        .time(NOW)
        .build()
        .validate(leaf)
    )
    assert r.status is Status.MALFORMED, r


def test_parser_on_raw_values() -> None:
    nc = _names.parse_constraints(
        _seq(_ctx(0xA0, _seq(_ctx(0x82, b"sante.fr"))) + _ctx(0xA1, _seq(_ctx(0x82, b"x.fr")))),
        "CA",
    )
    assert nc.permitted == {2: [("sante.fr", "DNS:sante.fr")]}
    assert nc.excluded == {2: [("x.fr", "DNS:x.fr")]}
    for bad in (b"", b"\x30\x00\x00", b"\x30\x04\xa1\x00\xa0\x00", b"\x31\x00", b"\x30\x02\xa0"):
        with pytest.raises(_der.DerError):
            _names.parse_constraints(bad, "CA")
