"""Chain validator: every status from a crafted case, batch == one by one, stores, builder."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from pathlib import Path

import pytest
from _der_tools import tlv
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps_middleware.errors import ValidationSetupError
from cps_middleware.testing.pki import key_usage
from cps_middleware.validation import (
    Status,
    TrustStore,
    ValidatorBuilder,
    igc_sante,
    igc_sante_test,
    load_certificates,
    load_crls,
)

DATA = Path(__file__).parent / "data"
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
POLICY = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.1")
OTHER_POLICY = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.9")
ANY_POLICY = x509.ObjectIdentifier("2.5.29.32.0")


@functools.cache
def rsa_key(n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@functools.cache
def ec_key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


_serial = iter(range(1000, 10**6))


def make(
    subject: x509.Name | str,
    key,
    issuer: x509.Certificate | None = None,
    issuer_key=None,
    *,
    ca: bool | None = False,
    pathlen: int | None = None,
    ku: tuple[str, ...] | None = ("digital_signature",),
    eku: list[x509.ObjectIdentifier] | None = None,
    policies: list[x509.ObjectIdentifier] | None = None,
    nb: dt.datetime = NOW - 30 * DAY,
    na: dt.datetime = NOW + 365 * DAY,
    serial: int | None = None,
    extra: list[tuple[x509.ExtensionType, bool]] = (),
    aki: bool = True,
    issuer_name: x509.Name | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
    rsa_padding=None,
) -> x509.Certificate:
    """A certificate; self-signed when ``issuer`` is None."""
    subject = name(subject) if isinstance(subject, str) else subject
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or (issuer.subject if issuer else subject))
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else next(_serial))
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    if ku is not None:
        b = b.add_extension(key_usage(*ku), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if policies is not None:
        b = b.add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(p, None) for p in policies]), False
        )
    if aki and issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), False
        )
    for ext, crit in extra:
        b = b.add_extension(ext, crit)
    signer = issuer_key if issuer_key is not None else key
    if isinstance(signer, rsa.RSAPrivateKey):
        return b.sign(signer, algorithm or hashes.SHA256(), rsa_padding=rsa_padding)
    return b.sign(signer, algorithm or hashes.SHA256())


def make_ca(cn, key, issuer=None, issuer_key=None, **kw):
    kw.setdefault("ca", True)
    kw.setdefault("ku", ("key_cert_sign", "crl_sign"))
    return make(cn, key, issuer, issuer_key, **kw)


def make_crl(
    issuer: x509.Certificate,
    key,
    revoked: list[tuple[int, x509.ReasonFlags | None]] = (),
    *,
    this: dt.datetime = NOW - DAY,
    nxt: dt.datetime = NOW + 7 * DAY,
    number: int = 1,
    delta_of: int | None = None,
    revoked_on: dt.datetime = NOW - 2 * DAY,
) -> x509.CertificateRevocationList:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this)
        .next_update(nxt)
        .add_extension(x509.CRLNumber(number), False)
    )
    if delta_of is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(delta_of), True)
    for serial, reason in revoked:
        e = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_on)
        if reason is not None:
            e = e.add_extension(x509.CRLReason(reason), False)
        b = b.add_revoked_certificate(e.build())
    return b.sign(key, hashes.SHA256())


def der(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


class Pki:
    """Root → intermediate (pathlen 0) → leaves, plus the odd CAs the cases need."""

    def __init__(self) -> None:
        self.root_key, self.int_key, self.leaf_key = rsa_key(0), rsa_key(1), rsa_key(2)
        self.root = make_ca("TEST AC RACINE", self.root_key, na=NOW + 3650 * DAY)
        self.inter = make_ca(
            "TEST AC PERSONNES",
            self.int_key,
            self.root,
            self.root_key,
            pathlen=0,
            policies=[ANY_POLICY],
        )
        self.root_crl = make_crl(self.root, self.root_key)
        self.int_crl = make_crl(self.inter, self.int_key)

    def leaf(self, **kw) -> x509.Certificate:
        return make("holder", self.leaf_key, self.inter, self.int_key, **kw)

    def builder(self, *, crls=True) -> ValidatorBuilder:
        b = ValidatorBuilder().trust([self.root]).intermediates([self.inter]).time(NOW)
        return b.crls([self.root_crl, self.int_crl]) if crls else b


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


# --- every status --------------------------------------------------------------------


def test_valid(pki: Pki) -> None:
    r = pki.builder().build().validate(pki.leaf())
    assert r.status is Status.VALID, r.reason
    assert r.ok and r.status.ok
    assert r.path == (pki.inter, pki.root)
    assert r.revocation is None


def test_expired_and_not_yet_valid(pki: Pki) -> None:
    v = pki.builder().build()
    r = v.validate(pki.leaf(nb=NOW - 400 * DAY, na=NOW - DAY))
    assert r.status is Status.EXPIRED and "expired on" in r.reason
    r = v.validate(pki.leaf(nb=NOW + DAY, na=NOW + 400 * DAY))
    assert r.status is Status.NOT_YET_VALID
    # boundaries are inclusive (RFC 5280 4.1.2.5)
    assert v.validate(pki.leaf(nb=NOW, na=NOW + DAY)).status is Status.VALID
    assert v.validate(pki.leaf(nb=NOW - DAY, na=NOW)).status is Status.VALID


def test_revoked_with_reason_and_date(pki: Pki) -> None:
    leaf = pki.leaf()
    crl = make_crl(pki.inter, pki.int_key, [(leaf.serial_number, x509.ReasonFlags.key_compromise)])
    v = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter]).time(NOW)
    v = v.crls([pki.root_crl, crl]).build()
    r = v.validate(leaf)
    assert r.status is Status.REVOKED
    assert r.revocation is not None
    assert r.revocation.reason == "key_compromise"
    assert r.revocation.date == NOW - 2 * DAY
    # revocation dated after the validation time does not count yet
    v2 = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter])
    v2 = (
        v2.time(NOW - 3 * DAY)
        .crls(
            [
                make_crl(pki.root, pki.root_key, this=NOW - 4 * DAY),
                make_crl(pki.inter, pki.int_key, [(leaf.serial_number, None)], this=NOW - 4 * DAY),
            ]
        )
        .build()
    )
    assert v2.validate(leaf).status is Status.VALID


def test_certificate_hold_and_delta_crl(pki: Pki) -> None:
    leaf = pki.leaf()
    base = make_crl(
        pki.inter, pki.int_key, [(leaf.serial_number, x509.ReasonFlags.certificate_hold)], number=10
    )
    b = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter]).time(NOW)
    r = b.crls([pki.root_crl, base]).build().validate(leaf)
    assert r.status is Status.REVOKED and r.revocation.reason == "certificate_hold"
    # a delta CRL releases the hold (removeFromCRL)
    delta = make_crl(
        pki.inter,
        pki.int_key,
        [(leaf.serial_number, x509.ReasonFlags.remove_from_crl)],
        number=11,
        delta_of=10,
    )
    r = b.crls([pki.root_crl, base, delta]).build().validate(leaf)
    assert r.status is Status.VALID, r.reason
    # a delta CRL can also add a revocation
    other = pki.leaf()
    delta2 = make_crl(
        pki.inter,
        pki.int_key,
        [(other.serial_number, x509.ReasonFlags.superseded)],
        number=12,
        delta_of=10,
    )
    v = b.crls([pki.root_crl, base, delta2]).build()
    assert v.validate(other).status is Status.REVOKED
    assert v.validate(other).revocation.reason == "superseded"


def test_revoked_intermediate(pki: Pki) -> None:
    root_crl = make_crl(
        pki.root, pki.root_key, [(pki.inter.serial_number, x509.ReasonFlags.ca_compromise)]
    )
    v = pki.builder(crls=False).crls([root_crl, pki.int_crl]).build()
    r = v.validate(pki.leaf())
    assert r.status is Status.REVOKED
    assert "TEST AC PERSONNES" in r.reason and r.revocation.reason == "ca_compromise"


def test_revocation_unknown(pki: Pki) -> None:
    leaf = pki.leaf()
    # hard mode: a CA without CRL
    v = pki.builder(crls=False).crls([pki.root_crl]).build()
    assert v.revocation_mode == "hard"
    assert v.validate(leaf).status is Status.REVOCATION_UNKNOWN
    # soft mode: that is fine
    v = pki.builder(crls=False).crls([pki.root_crl]).revocation("soft").build()
    assert v.validate(leaf).status is Status.VALID
    # a stale CRL
    stale = make_crl(pki.inter, pki.int_key, this=NOW - 30 * DAY, nxt=NOW - DAY)
    v = pki.builder(crls=False).crls([pki.root_crl, stale]).build()
    r = v.validate(leaf)
    assert r.status is Status.REVOCATION_UNKNOWN and "expired" in r.reason
    # a CRL signed by the wrong key is set aside
    forged = make_crl(pki.inter, rsa_key(3))
    v = pki.builder(crls=False).crls([pki.root_crl, forged]).build()
    assert v.problems and "no known CA" in v.problems[0]
    assert v.validate(leaf).status is Status.REVOCATION_UNKNOWN
    # a CRL from the future is not used yet
    future = make_crl(pki.inter, pki.int_key, this=NOW + DAY, nxt=NOW + 9 * DAY)
    v = pki.builder(crls=False).crls([pki.root_crl, future]).build()
    assert v.validate(leaf).status is Status.REVOCATION_UNKNOWN
    # a CRL of a CA nobody configured is set aside, with the reason
    stranger = make_ca("AC ETRANGERE", rsa_key(3))
    v = pki.builder(crls=False).crls([pki.root_crl, pki.int_crl, make_crl(stranger, rsa_key(3))])
    assert "AC ETRANGERE" in v.build().problems[0]
    # no CRLs at all: no revocation checking
    assert pki.builder(crls=False).build().validate(leaf).status is Status.VALID


def test_bad_signature(pki: Pki) -> None:
    # issued in the intermediate's name (same key id) but signed by another key
    forged = make("holder", pki.leaf_key, pki.inter, rsa_key(3))
    r = pki.builder().build().validate(forged)
    assert r.status is Status.BAD_SIGNATURE
    # one flipped bit in the signature
    d = bytearray(der(pki.leaf()))
    d[-5] ^= 1
    assert pki.builder().build().validate(bytes(d)).status is Status.BAD_SIGNATURE


def test_unknown_issuer(pki: Pki) -> None:
    other_root = make_ca("AUTRE RACINE", rsa_key(3))
    leaf = make("holder", pki.leaf_key, other_root, rsa_key(3))
    r = pki.builder().build().validate(leaf)
    assert r.status is Status.UNKNOWN_ISSUER and "AUTRE RACINE" in r.reason
    # same issuer name, other key identifier: still unknown
    impostor = make_ca("TEST AC PERSONNES", rsa_key(4), pki.root, pki.root_key, pathlen=0)
    leaf = make("holder", pki.leaf_key, impostor, rsa_key(4))
    r = pki.builder().build().validate(leaf)
    assert r.status is Status.UNKNOWN_ISSUER and "key identifier" in r.reason
    # an intermediate with no path to an anchor
    v = ValidatorBuilder().trust([other_root]).intermediates([pki.inter]).time(NOW).build()
    r = v.validate(pki.leaf())
    assert r.status is Status.UNKNOWN_ISSUER and "no path" in r.reason


def test_real_test_card_has_unknown_issuer() -> None:
    cert = (DATA / "test-cpx-signature-infirmier.der").read_bytes()
    v = ValidatorBuilder().trust(igc_sante()).build()
    r = v.validate(cert)
    assert r.status is Status.UNKNOWN_ISSUER
    assert "TEST AC IGC-SANTE FORT PERSONNES" in r.reason


def test_path_too_long(pki: Pki) -> None:
    sub_key = rsa_key(3)
    sub = make_ca("SOUS AC", sub_key, pki.inter, pki.int_key)
    leaf = make("holder", pki.leaf_key, sub, sub_key)
    v = pki.builder(crls=False).build()
    v = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter, sub]).time(NOW).build()
    r = v.validate(leaf)
    assert r.status is Status.PATH_TOO_LONG and "TEST AC PERSONNES" in r.reason
    # max_depth counts intermediate CAs
    v = pki.builder(crls=False).max_depth(0).build()
    assert v.validate(pki.leaf()).status is Status.PATH_TOO_LONG
    v = pki.builder(crls=False).max_depth(1).build()
    assert v.validate(pki.leaf()).status is Status.VALID


def test_ca_constraint_violated(pki: Pki) -> None:
    k = rsa_key(3)
    not_ca = make_ca("PAS UNE AC", k, pki.root, pki.root_key, ca=False)
    no_bc = make_ca("SANS BC", k, pki.root, pki.root_key, ca=None)
    v = ValidatorBuilder().trust([pki.root]).intermediates([not_ca, no_bc]).time(NOW).build()
    for ca in (not_ca, no_bc):
        r = v.validate(make("holder", pki.leaf_key, ca, k))
        assert r.status is Status.CA_CONSTRAINT_VIOLATED, r.reason


def test_key_usage(pki: Pki) -> None:
    v = pki.builder().key_usage("digital_signature").build()
    assert v.validate(pki.leaf(ku=("digital_signature", "key_encipherment"))).ok
    r = v.validate(pki.leaf(ku=("key_encipherment",)))
    assert r.status is Status.KEY_USAGE_NOT_ALLOWED and "digital_signature" in r.reason
    v = pki.builder().key_usage("non_repudiation").build()
    assert v.validate(pki.leaf(ku=("content_commitment",))).ok
    assert v.validate(pki.leaf()).status is Status.KEY_USAGE_NOT_ALLOWED
    # a CA without keyCertSign
    k = rsa_key(3)
    ca = make_ca("AC SANS KEYCERTSIGN", k, pki.root, pki.root_key, ku=("crl_sign",))
    v = ValidatorBuilder().trust([pki.root]).intermediates([ca]).time(NOW).build()
    r = v.validate(make("holder", pki.leaf_key, ca, k))
    assert r.status is Status.KEY_USAGE_NOT_ALLOWED and "keyCertSign" in r.reason


def test_extended_key_usage(pki: Pki) -> None:
    v = pki.builder().extended_key_usage(ExtendedKeyUsageOID.CLIENT_AUTH).build()
    assert v.validate(pki.leaf(eku=[ExtendedKeyUsageOID.CLIENT_AUTH])).ok
    assert v.validate(pki.leaf()).ok  # no EKU extension: unrestricted
    r = v.validate(pki.leaf(eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION]))
    assert r.status is Status.KEY_USAGE_NOT_ALLOWED and "1.3.6.1.5.5.7.3.2" in r.reason


def test_unhandled_critical_extension(pki: Pki) -> None:
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.250.1.71.1.2.7"), b"\x02\x01\x3c")
    v = pki.builder().build()
    r = v.validate(pki.leaf(extra=[(ext, True)]))
    assert r.status is Status.UNHANDLED_CRITICAL_EXTENSION and "1.2.250.1.71.1.2.7" in r.reason
    assert v.validate(pki.leaf(extra=[(ext, False)])).ok
    # on a CA too
    k = rsa_key(3)
    ca = make_ca("AC CRITIQUE", k, pki.root, pki.root_key, extra=[(ext, True)])
    v = ValidatorBuilder().trust([pki.root]).intermediates([ca]).time(NOW).build()
    r = v.validate(make("holder", pki.leaf_key, ca, k))
    assert r.status is Status.UNHANDLED_CRITICAL_EXTENSION


def test_policies(pki: Pki) -> None:
    v = pki.builder().policies(POLICY).build()
    assert v.validate(pki.leaf(policies=[POLICY])).ok
    assert v.validate(pki.leaf(policies=[OTHER_POLICY])).status is Status.POLICY_NOT_ALLOWED
    assert v.validate(pki.leaf()).status is Status.POLICY_NOT_ALLOWED
    # an intermediate restricted to another policy blocks it
    k = rsa_key(3)
    ca = make_ca("AC POLITIQUE", k, pki.root, pki.root_key, policies=[OTHER_POLICY])
    v = ValidatorBuilder().trust([pki.root]).intermediates([ca]).time(NOW).policies(POLICY).build()
    r = v.validate(make("holder", pki.leaf_key, ca, k, policies=[POLICY]))
    assert r.status is Status.POLICY_NOT_ALLOWED
    # without required policies, policies are not checked
    assert pki.builder().build().validate(pki.leaf(policies=[OTHER_POLICY])).ok


def test_malformed(pki: Pki) -> None:
    v = pki.builder().build()
    good = der(pki.leaf())
    for bad in (
        b"",
        b"\x30",
        b"garbage",
        good[:-1],
        good + b"\x00",
        b"\x30\x80" + good[2:],
        42,
        None,
    ):
        r = v.validate(bad)
        assert r.status is Status.MALFORMED, (bad, r)
        assert r.reason


def test_expired_intermediate_and_crossed_roots(pki: Pki) -> None:
    """Several candidate issuers: a re-issued intermediate and a cross-certified root."""
    old_root_key, k = rsa_key(3), rsa_key(4)
    old_root = make_ca("ANCIENNE RACINE", old_root_key, na=NOW + 3650 * DAY)
    # the same CA (name + key) certified by the old root, and by the trusted root but expired
    inter_old = make_ca("AC CROISEE", k, old_root, old_root_key, pathlen=0)
    inter_expired = make_ca("AC CROISEE", k, pki.root, pki.root_key, pathlen=0, na=NOW - DAY)
    leaf = make("holder", pki.leaf_key, inter_old, k)
    b = ValidatorBuilder().trust([pki.root]).time(NOW)
    # only the expired link: EXPIRED (of the CA)
    r = b.intermediates([inter_old, inter_expired]).build().validate(leaf)
    assert r.status is Status.EXPIRED and "AC CROISEE" in r.reason
    # add a cross-certificate of the old root by the trusted root: a valid path exists
    cross = make_ca("ANCIENNE RACINE", old_root_key, pki.root, pki.root_key)
    v = b.intermediates([inter_expired, inter_old, cross]).build()
    r = v.validate(leaf)
    assert r.status is Status.VALID, r.reason
    assert [c.subject for c in r.path] == [inter_old.subject, old_root.subject, pki.root.subject]
    # several roots: trusting the old root directly gives the short path
    v = ValidatorBuilder().trust([pki.root, old_root]).intermediates([inter_old]).time(NOW).build()
    assert v.validate(leaf).path == (inter_old, old_root)


def test_key_rollover_same_name(pki: Pki) -> None:
    """Two CAs with the same name and no AKI in the leaf: the key that verifies wins."""
    k1, k2 = rsa_key(3), rsa_key(4)
    a1 = make_ca("AC ROULEMENT", k1, pki.root, pki.root_key)
    a2 = make_ca("AC ROULEMENT", k2, pki.root, pki.root_key)
    v = (
        ValidatorBuilder()
        .trust([pki.root])
        .intermediates([a1, a2])
        .time(NOW)
        .relax("aki_missing")
        .build()
    )
    for ca, k in ((a1, k1), (a2, k2)):
        r = v.validate(make("holder", pki.leaf_key, ca, k, aki=False))
        assert r.status is Status.VALID and r.path[0] == ca


def test_name_matching_is_rfc5280(pki: Pki) -> None:
    # the leaf spells its issuer's name in another case: RFC 5280 7.1 matches it
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "asip-sante"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE  TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, "test ac personnes"),
        ]
    )
    leaf = make("holder", pki.leaf_key, pki.inter, pki.int_key, issuer_name=issuer)
    assert pki.builder().build().validate(leaf).ok


def test_ec_and_pss_signatures(pki: Pki) -> None:
    eck = ec_key(0)
    ec_ca = make_ca("AC EC", eck, pki.root, pki.root_key)
    ec_leaf = make("holder", ec_key(1), ec_ca, eck)
    pss_leaf = make(
        "holder",
        pki.leaf_key,
        pki.inter,
        pki.int_key,
        rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), 32),
    )
    v = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter, ec_ca]).time(NOW).build()
    assert v.validate(ec_leaf).ok
    assert v.validate(pss_leaf).ok
    # a key of the wrong type for the algorithm: BAD_SIGNATURE, not an exception
    wrong = make("holder", pki.leaf_key, ec_ca, pki.int_key)
    assert v.validate(wrong).status is Status.BAD_SIGNATURE


def test_inputs_pem_bytes_objects(pki: Pki) -> None:
    v = pki.builder().build()
    leaf = pki.leaf()
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    batch = v.validate_many([leaf, der(leaf), pem, pem.decode(), bytearray(der(leaf))])
    assert [r.status for r in batch] == [Status.VALID] * 5
    assert v.validate(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----").status is (
        Status.MALFORMED
    )


# --- batch ------------------------------------------------------------------------------


def mixed_batch(pki: Pki) -> tuple[list[object], ValidatorBuilder]:
    k = rsa_key(3)
    other = make_ca("AUTRE RACINE", k)
    revoked = [pki.leaf() for _ in range(3)]
    crl = make_crl(
        pki.inter, pki.int_key, [(c.serial_number, x509.ReasonFlags.superseded) for c in revoked]
    )
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")
    certs: list[object] = []
    for j in range(40):
        certs.append(pki.leaf(ku=("digital_signature",) if j % 2 else ("content_commitment",)))
    certs += revoked
    certs += [pki.leaf(na=NOW - DAY, nb=NOW - 9 * DAY), pki.leaf(nb=NOW + DAY)]
    certs += [make("holder", pki.leaf_key, other, k), make("x", pki.leaf_key, pki.inter, k)]
    certs += [pki.leaf(extra=[(ext, True)]), b"\x30\x03\x02\x01\x01", 7, der(pki.leaf())]
    certs += [pki.root, pki.inter, certs[0], der(revoked[0])]
    b = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter]).time(NOW)
    return certs, b.crls([pki.root_crl, crl]).key_usage("digital_signature")


def test_batch_equals_one_by_one(pki: Pki) -> None:
    certs, b = mixed_batch(pki)
    batch = b.build().validate_many(certs)
    assert len(batch) == len(certs)
    singles = [b.build().validate(c) for c in certs]
    assert list(batch) == singles
    seen = set(batch.statuses.tolist())
    assert {
        Status.VALID,
        Status.REVOKED,
        Status.EXPIRED,
        Status.NOT_YET_VALID,
        Status.MALFORMED,
        Status.UNKNOWN_ISSUER,
        Status.BAD_SIGNATURE,
        Status.KEY_USAGE_NOT_ALLOWED,
        Status.UNHANDLED_CRITICAL_EXTENSION,
    } <= seen
    counts = batch.counts()
    assert counts[Status.REVOKED] == 4 and batch.count(Status.REVOKED) == 4
    assert sum(counts.values()) == len(certs)


def test_memo_serves_the_same_verdicts(pki: Pki) -> None:
    certs, b = mixed_batch(pki)
    v = b.build()
    first = list(v.validate_many(certs))
    assert len(v._memo) > 0
    again = list(v.validate_many(certs))
    assert again == first
    assert all(a is b for a, b in zip(again, first, strict=True) if a.status is Status.VALID)


def test_memo_follows_the_clock(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a fixed time, a memoised verdict is re-judged once its window has passed."""
    import cps_middleware.validation.validator as vmod

    leaf = pki.leaf(nb=NOW - DAY, na=NOW + DAY)
    v = ValidatorBuilder().trust([pki.root]).intermediates([pki.inter]).build()
    clock = [NOW.timestamp()]
    monkeypatch.setattr(vmod._time, "time", lambda: clock[0])
    assert v.validate(leaf).ok
    clock[0] = (NOW + 2 * DAY).timestamp()
    assert v.validate(leaf).status is Status.EXPIRED
    clock[0] = (NOW - 2 * DAY).timestamp()
    assert v.validate(leaf).status is Status.NOT_YET_VALID
    clock[0] = NOW.timestamp()
    assert v.validate(leaf).ok


def test_workers_give_the_same_verdicts(pki: Pki) -> None:
    import cps_middleware.validation.validator as vmod

    certs, b = mixed_batch(pki)
    certs = certs * 60  # over the parallel threshold
    certs += [pki.leaf() for _ in range(50)]
    serial = b.memo_size(0).build().validate_many(certs)
    assert len(certs) >= vmod._PARALLEL_MIN
    with b.workers(2).memo_size(0).build() as v:
        par = v.validate_many(certs)
    assert list(par) == list(serial)


# --- builder ----------------------------------------------------------------------------


def test_builder_is_immutable_and_strict(pki: Pki) -> None:
    b0 = ValidatorBuilder()
    b1 = b0.trust([pki.root])
    assert b1 is not b0
    with pytest.raises(ValidationSetupError):
        b0.build()  # no trust anchors
    with pytest.raises(ValidationSetupError, match="already set"):
        b1.trust([pki.root])
    with pytest.raises(ValidationSetupError, match="already set"):
        b1.time(NOW).time(NOW)
    with pytest.raises(ValidationSetupError):
        b1.key_usage("sign_everything")
    with pytest.raises(ValidationSetupError):
        b1.revocation("sometimes")
    with pytest.raises(ValidationSetupError):
        b1.crls([b"not a crl"])
    with pytest.raises(ValidationSetupError):
        b1.policies("not.an.oid")
    b1.build()


# --- stores and loaders -----------------------------------------------------------------

FINGERPRINT_STARTS = {
    "AC RACINE IGC-SANTE ELEMENTAIRE": "2d9e22ca",
    "AC RACINE IGC-SANTE STANDARD": "5891815e",
    "AC RACINE IGC-SANTE FORT": "53d30a19",
}


def test_igc_sante_store() -> None:
    store = igc_sante()
    assert len(store.anchors) == 3 and len(store.intermediates) == 6
    for root in store.anchors:
        cn = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        fp = hashlib.sha256(der(root)).hexdigest()
        assert fp.startswith(FINGERPRINT_STARTS[cn])
    # every intermediate chains to its root today and has pathlen 0
    v = ValidatorBuilder().trust(store).time(dt.datetime(2026, 1, 1)).build()
    for c in store.intermediates:
        r = v.validate(c)
        assert r.ok, r.reason
        assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    # they expire in 2033
    later = ValidatorBuilder().trust(store).time(dt.datetime(2034, 1, 1)).build()
    assert later.validate(store.intermediates[0]).status is Status.EXPIRED


def test_igc_sante_test_store(tmp_path: Path) -> None:
    from cps_middleware.testing.pki import TestPki

    tp = TestPki()
    cas = tp.ca_certificates
    store = igc_sante_test(cas)
    assert len(store.anchors) == 1 and len(store.intermediates) == 1
    for c in cas:
        (tmp_path / f"{c.serial_number}.pem").write_bytes(
            c.public_bytes(serialization.Encoding.PEM)
        )
    store2 = igc_sante_test(tmp_path)
    assert set(store2.anchors + store2.intermediates) == set(cas)
    with pytest.raises(ValidationSetupError):
        igc_sante_test(igc_sante().anchors)
    v = ValidatorBuilder().trust(store).build()
    assert v.validate(cas[1]).ok


def test_loaders(pki: Pki, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs7

    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pki.root, pki.inter))
    assert load_certificates(bundle) == [pki.root, pki.inter]
    p7 = pkcs7.serialize_certificates([pki.root, pki.inter], serialization.Encoding.DER)
    (tmp_path / "chain.p7b").write_bytes(p7)
    assert set(load_certificates(tmp_path / "chain.p7b")) == {pki.root, pki.inter}
    store = TrustStore.from_directory(tmp_path)
    assert store.anchors == (pki.root,) and store.intermediates == (pki.inter,)
    crl_dir = tmp_path / "crls"
    crl_dir.mkdir()
    (crl_dir / "a.crl").write_bytes(pki.int_crl.public_bytes(serialization.Encoding.DER))
    (crl_dir / "b.pem").write_bytes(pki.root_crl.public_bytes(serialization.Encoding.PEM) * 2)
    assert len(load_crls(crl_dir)) == 3
    v = ValidatorBuilder().trust(store).time(NOW).crls([crl_dir]).build()
    assert v.validate(pki.leaf()).ok
    with pytest.raises(ValidationSetupError):
        load_certificates(b"nothing here")
    with pytest.raises(ValidationSetupError):
        load_crls(tmp_path / "missing.crl")


def test_impossible_dates_are_malformed(pki: Pki) -> None:
    """A correctly signed certificate whose notBefore is 31 February."""
    leaf = pki.leaf(nb=dt.datetime(2025, 1, 31, tzinfo=dt.UTC))
    tbs = leaf.tbs_certificate_bytes
    assert b"250131" in tbs
    tbs = tbs.replace(b"250131", b"250231", 1)
    sig = pki.int_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    alg = tlv(0x30, bytes.fromhex("06092a864886f70d01010b0500"))
    forged = tlv(0x30, tbs + alg + tlv(0x03, b"\x00" + sig))
    v = pki.builder().build()
    r = v.validate(forged)
    assert r.status is Status.MALFORMED and "impossible date" in r.reason
    # the same in a large batch (the vectorised date conversion)
    batch = v.validate_many([forged] + [pki.leaf() for _ in range(30)])
    assert batch[0] == r and batch.count(Status.VALID) == 30


def test_date_conversions_agree() -> None:
    import calendar
    import random

    from cps_middleware.validation import _der

    rng = random.Random(5)
    stamps = [
        b"%04d%02d%02d%02d%02d%02dZ"
        % (rng.randrange(1950, 2100), rng.randrange(1, 13), rng.randrange(1, 29),
           rng.randrange(24), rng.randrange(60), rng.randrange(60))
        for _ in range(500)
    ] + [b"20240229235959Z", b"20000229000000Z", b"19700101000000Z"]  # fmt: skip
    vec = _der.times_to_epoch(stamps).tolist()
    one = [_der.time_to_epoch(s) for s in stamps]
    ref = [
        calendar.timegm(dt.datetime.strptime(s.decode(), "%Y%m%d%H%M%SZ").timetuple())
        for s in stamps
    ]
    assert vec == one == ref
    for bad in (b"20250229000000Z", b"21000229000000Z", b"20251301000000Z", b"20250101246000Z"):
        with pytest.raises(_der.DerError):
            _der.time_to_epoch(bad)
        with pytest.raises(_der.DerError):
            _der.times_to_epoch([bad] * 40)
