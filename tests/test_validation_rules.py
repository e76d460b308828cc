"""RFC 5280 rules the validator enforces, each from a crafted certificate or CRL.

Issuer rules (strict by default, each relaxable by name), the end-entity
profiles ("card", the default, and "pkix"), the trust anchor processed like
every CA, names that do not parse, and CRL scope (partitions by
issuingDistributionPoint, onlyContains*, onlySomeReasons, delta CRLs,
indirect CRLs refused). The RFC 5280 section is in each test's docstring.
"""

from __future__ import annotations

import datetime as dt
import functools

import _der_tools
import pytest
from _der_tools import rewrap, tbs_of, tlv
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cps_middleware.errors import ValidationSetupError
from cps_middleware.messages import text
from cps_middleware.testing.pki import key_usage
from cps_middleware.validation import RULES, Status, ValidatorBuilder, _der, igc_sante

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
URI_A = "http://crl.sante.fr/partition-a.crl"
URI_B = "http://crl.sante.fr/partition-b.crl"


@functools.cache
def key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def dn(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RULES TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


_serial = iter(range(0x1000, 10**6))


def cert(
    subject: x509.Name,
    k: int,
    issuer: tuple[x509.Certificate, int] | None,
    *,
    ca: bool = False,
    bc_critical: bool = True,
    ski: bool | str = True,  # True, False or "critical"
    aki: bool | str = True,
    ku: tuple[str, ...] | None = None,
    san: list[x509.GeneralName] | None = None,
    san_critical: bool = False,
    crldp: list[str] | None = None,
    extra: list[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    pub = key(k).public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(pub)
        .serial_number(next(_serial))
        .not_valid_before(NOW - 30 * DAY)
        .not_valid_after(NOW + 300 * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), bc_critical or not ca)
    )
    if ku is None:
        ku = ("key_cert_sign", "crl_sign") if ca else ("digital_signature",)
    b = b.add_extension(key_usage(*ku), True)
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), ski == "critical")
    if aki and issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key(issuer[1]).public_key()),
            aki == "critical",
        )
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName(san), san_critical)
    if crldp:
        b = b.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None)
                    for u in crldp
                ]
            ),
            False,
        )
    for ext, crit in extra:
        b = b.add_extension(ext, crit)
    return b.sign(key(issuer[1] if issuer else k), hashes.SHA256())


@functools.cache
def root() -> x509.Certificate:
    return cert(dn("RULES ROOT"), 0, None, ca=True)


@functools.cache
def inter() -> x509.Certificate:
    return cert(dn("RULES CA"), 1, (root(), 0), ca=True)


def leaf(**kw: object) -> x509.Certificate:
    kw.setdefault("san", [x509.RFC822Name("holder@sante.fr")])
    return cert(dn("holder"), 2, (inter(), 1), **kw)  # type: ignore[arg-type]


def builder(*extra: x509.Certificate) -> ValidatorBuilder:
    return ValidatorBuilder().trust([root()]).intermediates([inter(), *extra]).time(NOW)


def nonconforming(r: object, code: str) -> None:
    assert r.status is Status.NONCONFORMING and r.code == code, r  # type: ignore[attr-defined]
    assert RULES.get(code, "") in r.reason  # type: ignore[attr-defined]
    # the code has its sentences, French by default
    assert text(f"validation.{code}", "fr") != text(f"validation.{code}", "en")


def test_clean_chain_is_valid() -> None:
    r = builder().build().validate(leaf())
    assert r.status is Status.VALID and r.code == "valid", r
    assert "card profile" in r.reason


# --- issuer rules --------------------------------------------------------------------------


def test_aki_missing() -> None:
    """RFC 5280 4.2.1.1: the keyIdentifier of AKI MUST be in every certificate but
    a self-signed one; on the leaf and on an intermediate."""
    nonconforming(builder().build().validate(leaf(aki=False)), "aki_missing")
    ca = cert(dn("RULES CA NO AKI"), 3, (root(), 0), ca=True, aki=False)
    holder = cert(dn("holder"), 2, (ca, 3), san=[x509.DNSName("a.fr")])
    nonconforming(builder(ca).build().validate(holder), "aki_missing")
    assert builder(ca).relax("aki_missing").build().validate(holder).ok


def test_aki_critical() -> None:
    """RFC 5280 4.2.1.1: conforming CAs MUST mark AKI non-critical."""
    c = leaf(aki="critical")
    nonconforming(builder().build().validate(c), "aki_critical")
    assert builder().relax("aki_critical").build().validate(c).ok


def test_ski_missing_on_a_ca_and_critical() -> None:
    """RFC 5280 4.2.1.2: SKI MUST appear in CA certificates, non-critical."""
    ca = cert(dn("RULES CA NO SKI"), 3, (root(), 0), ca=True, ski=False)
    holder = cert(dn("holder"), 2, (ca, 3), san=[x509.DNSName("a.fr")], aki=False)
    r = builder(ca).relax("aki_missing").build().validate(holder)
    nonconforming(r, "ski_missing")
    assert builder(ca).relax("aki_missing", "ski_missing").build().validate(holder).ok
    nonconforming(builder().build().validate(leaf(ski="critical")), "ski_critical")
    # a leaf needs no SKI
    assert builder().build().validate(leaf(ski=False)).ok


def test_serial_zero_or_negative() -> None:
    """RFC 5280 4.1.2.2: the serial number MUST be a positive integer."""
    good = leaf()
    der = good.public_bytes(serialization.Encoding.DER)
    serial = _der.parse_certificate(der)[_der.F_SERIAL]
    enc = serial.to_bytes(2, "big")
    for new in (b"\x02\x02\x80\x00", b"\x02\x02\xff\x7f"):  # -32768, -129
        tbs = tbs_of(der).replace(b"\x02\x02" + enc, new, 1)
        r = builder().build().validate(resign(tbs, 1))
        nonconforming(r, "serial_not_positive")
        assert builder().relax("serial_not_positive").build().validate(resign(tbs, 1)).ok
    tbs = rewrap(tbs_of(der).replace(b"\x02\x02" + enc, b"\x02\x01\x00", 1))
    nonconforming(builder().build().validate(resign(tbs, 1)), "serial_not_positive")


def test_ca_with_empty_subject() -> None:
    """RFC 5280 4.1.2.6: a CA's subject MUST be non-empty."""
    ca = cert(
        x509.Name([]),
        3,
        (root(), 0),
        ca=True,
        san=[x509.DNSName("ca.sante.fr")],
        san_critical=True,
    )
    holder = cert(dn("holder"), 2, (ca, 3), san=[x509.DNSName("a.fr")])
    nonconforming(builder(ca).build().validate(holder), "ca_empty_subject")
    assert builder(ca).relax("ca_empty_subject").build().validate(holder).ok


def test_ca_basic_constraints_not_critical() -> None:
    """RFC 5280 4.2.1.9: a CA's basicConstraints MUST be critical."""
    ca = cert(dn("RULES CA BC"), 3, (root(), 0), ca=True, bc_critical=False)
    holder = cert(dn("holder"), 2, (ca, 3), san=[x509.DNSName("a.fr")])
    nonconforming(builder(ca).build().validate(holder), "basic_constraints_not_critical")


def test_leaf_with_key_cert_sign() -> None:
    """RFC 5280 4.2.1.3: keyCertSign asserted requires basicConstraints cA."""
    c = leaf(ku=("digital_signature", "key_cert_sign"))
    nonconforming(builder().build().validate(c), "key_cert_sign_without_ca")
    assert builder().relax("key_cert_sign_without_ca").build().validate(c).ok


def test_empty_eku() -> None:
    """RFC 5280 4.2.1.12: ExtKeyUsageSyntax is SIZE (1..MAX)."""
    empty = x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.37"), b"\x30\x00")
    c = leaf(extra=[(empty, False)])
    r = builder().build().validate(c)
    # cryptography may refuse to read it (MALFORMED): either way never VALID
    assert r.status in (Status.NONCONFORMING, Status.MALFORMED), r
    if r.status is Status.NONCONFORMING:
        nonconforming(r, "eku_empty")


def test_name_constraints_not_critical() -> None:
    """RFC 5280 4.2.1.10: conforming CAs MUST mark nameConstraints critical."""
    nc = x509.NameConstraints([x509.DNSName("sante.fr")], None)
    ca = cert(dn("RULES CA NC"), 3, (root(), 0), ca=True, extra=[(nc, False)])
    holder = cert(dn("holder"), 2, (ca, 3), san=[x509.DNSName("a.sante.fr")])
    nonconforming(builder(ca).build().validate(holder), "name_constraints_not_critical")
    ca2 = cert(dn("RULES CA NC2"), 4, (root(), 0), ca=True, extra=[(nc, True)])
    holder2 = cert(dn("holder"), 2, (ca2, 4), san=[x509.DNSName("a.sante.fr")])
    assert builder(ca2).build().validate(holder2).ok


def test_empty_subject_needs_a_critical_san() -> None:
    """RFC 5280 4.2.1.6: with an empty subject, subjectAltName MUST be critical."""
    c = cert(x509.Name([]), 2, (inter(), 1), san=[x509.DNSName("a.fr")], san_critical=False)
    nonconforming(builder().build().validate(c), "empty_subject_without_critical_san")
    c = cert(x509.Name([]), 2, (inter(), 1), san=[x509.DNSName("a.fr")], san_critical=True)
    assert builder().build().validate(c).ok


def test_relax_refuses_unknown_rules() -> None:
    with pytest.raises(ValidationSetupError):
        ValidatorBuilder().relax("no_such_rule")
    with pytest.raises(ValidationSetupError):
        ValidatorBuilder().profile("lenient")


# --- trust anchor --------------------------------------------------------------------------


def test_trust_anchor_is_processed_like_every_ca() -> None:
    """The trust anchor's extensions are processed (its critical extensions,
    basicConstraints, keyUsage, the issuer rules); only its signature and
    revocation are not checked (documented choice, as OpenSSL does)."""
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.250.1.71.9.9"), b"\x05\x00")
    r1 = cert(dn("RULES ROOT CRIT"), 5, None, ca=True, extra=[(odd, True)])
    c = cert(dn("holder"), 2, (r1, 5), san=[x509.DNSName("a.fr")])
    r = ValidatorBuilder().trust([r1]).time(NOW).build().validate(c)
    assert r.status is Status.UNHANDLED_CRITICAL_EXTENSION, r
    r2 = cert(dn("RULES ROOT NO SKI"), 6, None, ca=True, ski=False)
    c = cert(dn("holder"), 2, (r2, 6), san=[x509.DNSName("a.fr")])
    nonconforming(ValidatorBuilder().trust([r2]).time(NOW).build().validate(c), "ski_missing")
    r3 = cert(dn("RULES ROOT KU"), 7, None, ca=True, ku=("crl_sign",))
    c = cert(dn("holder"), 2, (r3, 7), san=[x509.DNSName("a.fr")])
    r = ValidatorBuilder().trust([r3]).time(NOW).build().validate(c)
    assert r.status is Status.KEY_USAGE_NOT_ALLOWED, r


def test_igc_sante_cas_meet_the_strict_rules() -> None:
    """The production IGC-Santé CA certificates satisfy every issuer rule."""
    store = igc_sante()
    v = ValidatorBuilder().trust(store).time(dt.datetime(2020, 1, 1, tzinfo=dt.UTC)).build()
    assert not v.problems
    for ca in store.intermediates:
        r = v.validate(ca)
        assert r.status is Status.VALID, r


# --- end-entity profiles -------------------------------------------------------------------


def test_card_and_pkix_profiles() -> None:
    """The card profile (default, named in every VALID reason) accepts no SAN and
    nonRepudiation alone; the pkix profile does not."""
    no_san = leaf(san=None)
    non_rep = leaf(ku=("content_commitment",))
    card = builder().build()
    assert card.profile == "card"
    for c in (no_san, non_rep):
        r = card.validate(c)
        assert r.ok and "card profile" in r.reason, r
    pkix = builder().profile("pkix").build()
    r = pkix.validate(no_san)
    assert r.status is Status.NONCONFORMING and r.code == "san_missing", r
    r = pkix.validate(non_rep)
    assert r.status is Status.NONCONFORMING and r.code == "non_repudiation_only", r
    assert pkix.validate(leaf()).ok


# --- names and keys that do not parse ------------------------------------------------------


def resign(tbs: bytes, signer: int) -> bytes:
    return _der_tools.resign(tbs, key(signer))


def test_leaf_whose_subject_or_key_does_not_parse_is_malformed() -> None:
    """RFC 5280 4.1.2.6 / 4.1.2.7: a CA-signed leaf with a garbage subject
    string or a public key that cannot be read is MALFORMED, not VALID."""
    der = leaf().public_bytes(serialization.Encoding.DER)
    tbs = tbs_of(der)
    bad_name = tbs.replace(b"\x0c\x06holder", b"\x0c\x06\xff\xfeolde", 1)
    r = builder().build().validate(resign(bad_name, 1))
    assert r.status is Status.MALFORMED, r
    spki = _der.parse_certificate(der)[_der.F_SPKI]
    bad_point = spki[:-5] + bytes([spki[-5] ^ 0x01]) + spki[-4:]  # off the curve
    r = builder().build().validate(resign(tbs.replace(spki, bad_point, 1), 1))
    assert r.status is Status.MALFORMED and "public key" in r.reason, r


@pytest.mark.parametrize(
    ("san", "why"),
    [
        (x509.DNSName("a..sante.fr"), "not a valid DNS name"),
        (x509.DNSName("-x.sante.fr"), "not a valid DNS name"),
        (x509.DNSName("x y.sante.fr"), "not a valid DNS name"),
        (x509.RFC822Name("holder.sante.fr"), "not a mailbox"),
        (x509.RFC822Name("a b@sante.fr"), "not a mailbox"),
        (x509.RFC822Name("holder@sante..fr"), "not a mailbox"),
    ],
)
def test_malformed_names_under_constraints_are_refused(san: x509.GeneralName, why: str) -> None:
    """RFC 5280 4.2.1.10 / 4.2.1.6: a constrained name form whose value is not
    a DNS name / mailbox cannot satisfy the constraints."""
    nc = x509.NameConstraints([x509.DNSName("sante.fr"), x509.RFC822Name("sante.fr")], None)
    ca = cert(dn("RULES CA NC3"), 3, (root(), 0), ca=True, extra=[(nc, True)])
    holder = cert(dn("holder"), 2, (ca, 3), san=[san])
    r = builder(ca).build().validate(holder)
    assert r.status is Status.NAME_CONSTRAINTS_VIOLATED and why in r.reason, r


# --- CRL scope -------------------------------------------------------------------------------


def crl(
    revoked: list[int] = (),
    *,
    number: int | None = 1,
    number_critical: bool = False,
    this: dt.datetime = NOW - DAY,
    idp: x509.IssuingDistributionPoint | None = None,
    delta_of: int | None = None,
    issuer: tuple[x509.Certificate, int] | None = None,
) -> x509.CertificateRevocationList:
    ca, k = issuer or (inter(), 1)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(this)
        .next_update(this + 7 * DAY)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key(k).public_key()), False
        )
    )
    if number is not None:
        b = b.add_extension(x509.CRLNumber(number), number_critical)
    if idp is not None:
        b = b.add_extension(idp, True)
    if delta_of is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(delta_of), True)
    for s in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(NOW - 2 * DAY).build()
        )
    return b.sign(key(k), hashes.SHA256())


def idp(
    uri: str | None,
    *,
    users: bool = False,
    cas: bool = False,
    reasons: frozenset[x509.ReasonFlags] | None = None,
    indirect: bool = False,
) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(uri)] if uri else None,
        relative_name=None,
        only_contains_user_certs=users,
        only_contains_ca_certs=cas,
        only_some_reasons=reasons,
        indirect_crl=indirect,
        only_contains_attribute_certs=False,
    )


def root_crl() -> x509.CertificateRevocationList:
    return crl(issuer=(root(), 0))


def check(c: x509.Certificate, *crls: x509.CertificateRevocationList) -> object:
    return builder().crls([root_crl(), *crls]).build().validate(c)


def test_partitioned_crls_are_matched_by_distribution_point() -> None:
    """RFC 5280 6.3.3 (b)(2): a CRL with an IDP covers only the certificates
    whose cRLDistributionPoints name it; the newest CRL is chosen per scope."""
    c = leaf(crldp=[URI_A])
    a_listing = crl([c.serial_number], number=1, this=NOW - 2 * DAY, idp=idp(URI_A))
    b_newer = crl([], number=2, this=NOW - DAY, idp=idp(URI_B))
    r = check(c, a_listing, b_newer)
    assert r.status is Status.REVOKED, r  # type: ignore[attr-defined]
    r = check(c, b_newer)
    assert r.status is Status.REVOCATION_UNKNOWN, r  # type: ignore[attr-defined]
    assert check(c, crl([], number=1, idp=idp(URI_A))).ok  # type: ignore[attr-defined]
    # the newest CRL of partition A wins over an older one of the same partition
    old_a = crl([c.serial_number], number=1, this=NOW - 3 * DAY, idp=idp(URI_A))
    new_a = crl([], number=3, this=NOW - DAY, idp=idp(URI_A))
    assert check(c, old_a, new_a).ok  # type: ignore[attr-defined]
    # a complete CRL (no IDP) covers every certificate of its issuer
    assert check(leaf(crldp=[URI_B]), crl([], number=4)).ok  # type: ignore[attr-defined]
    # a certificate without cRLDistributionPoints is not covered by a partition
    r = check(leaf(), crl([], number=1, idp=idp(URI_A)))
    assert r.status is Status.REVOCATION_UNKNOWN, r  # type: ignore[attr-defined]


def test_only_contains_user_or_ca_certs() -> None:
    """RFC 5280 5.2.5 / 6.3.3 (b)(2)(ii)-(iii)."""
    c = leaf()
    assert check(c, crl([], idp=idp(None, users=True))).ok  # type: ignore[attr-defined]
    r = check(c, crl([], idp=idp(None, cas=True)))
    assert r.status is Status.REVOCATION_UNKNOWN, r  # type: ignore[attr-defined]


def test_only_some_reasons() -> None:
    """RFC 5280 6.3.3 (d): a CRL covering some reasons does not complete the
    status alone; what it lists still revokes."""
    c = leaf()
    some = frozenset({x509.ReasonFlags.key_compromise})
    r = check(c, crl([], idp=idp(None, reasons=some)))
    assert r.status is Status.REVOCATION_UNKNOWN and r.code == "crl_partial_reasons", r  # type: ignore[attr-defined]
    r = check(c, crl([c.serial_number], idp=idp(None, reasons=some)))
    assert r.status is Status.REVOKED, r  # type: ignore[attr-defined]


def test_delta_crls() -> None:
    """RFC 5280 5.2.4 / 6.3.3 (c): a delta applies to its base (deltaCRLIndicator
    <= the complete CRL's number < the delta's number)."""
    c = leaf()
    base = crl([], number=5, this=NOW - 2 * DAY)
    delta = crl([c.serial_number], number=6, delta_of=5)
    assert check(c, base, delta).status is Status.REVOKED  # type: ignore[attr-defined]
    too_new_base = crl([c.serial_number], number=9, delta_of=7)
    assert check(c, base, too_new_base).ok  # type: ignore[attr-defined]
    # a delta alone is not revocation information
    r = check(c, delta)
    assert r.status is Status.REVOCATION_UNKNOWN, r  # type: ignore[attr-defined]


def test_indirect_crl_is_refused_with_a_clear_status() -> None:
    """RFC 5280 5.2.5 indirectCRL: not supported; refused, and said so."""
    v = builder().crls([root_crl(), crl([], idp=idp(None, indirect=True))]).build()
    r = v.validate(leaf())
    assert r.status is Status.REVOCATION_UNKNOWN and r.code == "crl_indirect", r
    assert any("indirect" in p for p in v.problems)


def test_crl_number_missing_or_critical() -> None:
    """RFC 5280 5.2.3: CRL issuers MUST include CRLNumber, non-critical."""
    c = leaf()
    r = check(c, crl([], number=None))
    assert r.status is Status.REVOCATION_UNKNOWN and r.code == "crl_number_missing", r  # type: ignore[attr-defined]
    r = check(c, crl([], number=3, number_critical=True))
    assert r.status is Status.REVOCATION_UNKNOWN and r.code == "crl_number_critical", r  # type: ignore[attr-defined]
    v = builder().crls([root_crl(), crl([], number=None)]).relax("crl_number_missing").build()
    assert v.validate(c).ok


def test_every_status_and_code_has_its_sentences() -> None:
    from cps_middleware.validation._engine import PROFILE_RULES

    codes = [s.code for s in Status] + list(RULES) + list(PROFILE_RULES)
    codes += ["crl_missing", "crl_expired", "crl_partial_reasons", "crl_indirect"]
    for code in codes:
        fr, en = text(f"validation.{code}", "fr"), text(f"validation.{code}", "en")
        assert fr and en and fr != en, code
    r = builder().build().validate(leaf())
    assert r.message("en") == text("validation.valid", "en")
    assert r.message("fr") == text("validation.valid", "fr")


# --- bounded work ----------------------------------------------------------------------------


def _mesh(n: int, same_key: bool) -> tuple[list[x509.Certificate], int]:
    """n CA certificates named X, each issued by 'X' (no AKI, signed by the
    first X's key), the first by the root: every X is a candidate issuer of
    every X, which an unbounded search explores exponentially."""
    out = [cert(dn("X"), 100, (root(), 0), ca=True)]
    for i in range(1, n):
        k = 100 if same_key else 100 + i
        # issued under the name X by the key of an earlier X
        out.append(
            cert(
                dn("X"),
                k,
                (out[(i * 7) % i], 100 if same_key else 100 + (i * 7) % i),
                ca=True,
                aki=False,
            )
        )
    return out, (100 if same_key else 100 + n - 1)


@pytest.mark.parametrize("same_key", [False, True])
def test_many_same_subject_cas_build_fast(same_key: bool) -> None:
    """100 CA certificates with one subject (same or distinct keys): building
    the validator and validating finish fast; the budget answers
    PATH_BUILDING_LIMIT rather than searching forever."""
    import time

    cas, k = _mesh(100, same_key)
    holder = cert(dn("holder"), 2, (cas[-1], k), san=[x509.DNSName("a.fr")], aki=False)
    t0 = time.perf_counter()
    v = ValidatorBuilder().trust([root()]).intermediates(cas).time(NOW).relax("aki_missing").build()
    r = v.validate(holder)
    assert time.perf_counter() - t0 < 20, "bounded path building"
    # distinct keys: 100 same-name keys, the budget tries 64 of them
    assert r.status is (Status.VALID if same_key else Status.PATH_BUILDING_LIMIT), r


def test_path_building_limit_status() -> None:
    """Same-name candidate keys beyond the budget are not tried: PATH_BUILDING_LIMIT."""
    cas = [cert(dn("Y"), 200 + i, (root(), 0), ca=True) for i in range(5)]
    holder = cert(dn("holder"), 2, (cas[-1], 204), san=[x509.DNSName("a.fr")], aki=False)
    b = ValidatorBuilder().trust([root()]).intermediates(cas).time(NOW).relax("aki_missing")
    assert b.build().validate(holder).ok
    r = b.path_budget(candidates=2).build().validate(holder)
    assert r.status is Status.PATH_BUILDING_LIMIT and r.code == "path_building_limit", r


def test_long_unknown_issuer_name_costs_nothing_per_byte() -> None:
    """An issuer name of 50 KB that no CA has is looked up without per-byte work."""
    import time

    rdn = tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"x")))
    big = tlv(0x30, rdn * 4500)
    der = leaf().public_bytes(serialization.Encoding.DER)
    f = _der.parse_certificate(der)
    tbs = rewrap(tbs_of(der).replace(f[_der.F_ISSUER], big, 1))
    v = builder().build()
    t0 = time.perf_counter()
    r = v.validate(resign(tbs, 1))
    assert time.perf_counter() - t0 < 0.5
    assert r.status is Status.UNKNOWN_ISSUER, r
