"""Strict DER: whatever the validator's reader accepts, cryptography loads the same way.

The oracle is ``cryptography``: a holder certificate (or a CRL) is mutated
inside its signed part and signed again by its CA, so that the mutation
reaches the reader's field extraction instead of failing the signature. When
the reader (``_der.parse_certificate`` + ``_der.check_certificate``, what the
validator runs before a certificate can be VALID) accepts it, cryptography
must load it with the same serial, issuer, subject, validity, public key and
extensions; and the validator never raises. The budget here is small; the
fuzz job (``benchmarks/fuzz_validation.py``) runs 100 000+ of each.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress

import pytest
from _der_tools import outer, resign, rewrap, tlv, walk
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cps_middleware.errors import ValidationSetupError
from cps_middleware.testing.pki import key_usage
from cps_middleware.validation import Status, ValidatorBuilder, _der, load_certificates, load_crls

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

@functools.cache
def pki() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, bytes, bytes]:
    """CA key, CA certificate, a holder certificate's DER, a CRL's DER."""
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.COMMON_NAME, "STRICT DER CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(1)
        .not_valid_before(NOW - 9 * DAY)
        .not_valid_after(NOW + 900 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), False)
        .sign(k, hashes.SHA256())
    )
    hk = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cabinet"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "holder"),
                ]
            )
        )
        .issuer_name(name)
        .public_key(hk.public_key())
        .serial_number(0x1234)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 300 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), False)
        .add_extension(key_usage("digital_signature"), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("holder.sante.fr"),
                    x509.RFC822Name("holder@sante.fr"),
                    x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
                ]
            ),
            False,
        )
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier("1.2.250.1.213.1.1"), ["http://a/"])]
            ),
            False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier("http://crl/a.crl")], None, None, None
                    )
                ]
            ),
            False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(hk.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(k.public_key()), False)
        .sign(k, hashes.SHA256())
    )
    revoked = [
        x509.RevokedCertificateBuilder()
        .serial_number(s)
        .revocation_date(NOW - 2 * DAY)
        .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
        .build()
        for s in (5, 0x1234, 2**70)
    ]
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW - DAY)
        .next_update(NOW + 6 * DAY)
        .add_extension(x509.CRLNumber(7), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(k.public_key()), False)
    )
    for r in revoked:
        b = b.add_revoked_certificate(r)
    crl = b.sign(k, hashes.SHA256())
    enc = serialization.Encoding.DER
    return k, ca, leaf.public_bytes(enc), crl.public_bytes(enc)


def mutate(data: st.DataObject, der: bytes, start: int, end: int) -> bytes:
    """Change 1..4 bytes (overwrite, insert or delete) inside der[start:end]."""
    d = bytearray(der[start:end])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "set", "insert", "delete"]))
        i = data.draw(st.integers(0, len(d) - 1))
        if op == "set":
            d[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            d.insert(i, data.draw(st.integers(0, 255)))
        else:
            del d[i]
    return bytes(d)


def assert_same_as_cryptography(der: bytes) -> None:
    """If the reader accepts ``der``, cryptography reads the same facts from it."""
    try:
        f = _der.parse_certificate(der)
        _der.check_certificate(der, f, {})
    except _der.DerError:
        return
    c = x509.load_der_x509_certificate(der)
    assert c.serial_number == f[_der.F_SERIAL]
    assert c.issuer.public_bytes() == f[_der.F_ISSUER]
    assert c.subject.public_bytes() == f[_der.F_SUBJECT]
    c.issuer.rfc4514_string()
    c.subject.rfc4514_string()
    nb, na = (int(x) for x in _der.times_to_epoch([f[_der.F_NB], f[_der.F_NA]]))
    assert int(c.not_valid_before_utc.timestamp()) == nb
    assert int(c.not_valid_after_utc.timestamp()) == na
    spki = c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # the same key (an EC point may be spelled compressed in the certificate)
    assert spki == f[_der.F_SPKI] or (
        serialization.load_der_public_key(f[_der.F_SPKI]) == c.public_key()
    )
    # the extensions: what the reader keeps of each equals cryptography's value
    kinds = {
        x509.KeyUsage: _der.X_KU,
        x509.BasicConstraints: _der.X_BC,
        x509.AuthorityKeyIdentifier: _der.X_AKI,
        x509.SubjectKeyIdentifier: _der.X_SKI,
        x509.CertificatePolicies: _der.X_POLICIES,
        x509.ExtendedKeyUsage: _der.X_EKU,
        x509.SubjectAlternativeName: _der.X_SAN,
        x509.NameConstraints: _der.X_NC,
        x509.CRLDistributionPoints: _der.X_CRLDP,
    }
    present = critical = 0
    unhandled = None
    for ext in c.extensions:
        bit = kinds.get(type(ext.value), 0)
        present |= bit
        if ext.critical:
            critical |= bit
            if not bit and unhandled is None:
                unhandled = ext.oid.dotted_string
        v = ext.value
        if isinstance(v, x509.KeyUsage):
            names = ["digital_signature", "content_commitment", "key_encipherment"]
            names += ["data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"]
            bits = sum(1 << n for n, a in enumerate(names) if getattr(v, a))
            if v.key_agreement:
                bits |= (v.encipher_only << 7) | (v.decipher_only << 8)
            assert bits == f[_der.F_KU]
        elif isinstance(v, x509.BasicConstraints):
            assert (v.ca, -1 if v.path_length is None else v.path_length) == (
                f[_der.F_CA],
                f[_der.F_PATHLEN],
            )
        elif isinstance(v, x509.ExtendedKeyUsage):
            assert tuple(_der.oid_raw(o.dotted_string) for o in v) == f[_der.F_EKU]
        elif isinstance(v, x509.CertificatePolicies):
            got = tuple(_der.oid_raw(p.policy_identifier.dotted_string) for p in v)
            assert got == f[_der.F_POLICIES]
        elif isinstance(v, x509.AuthorityKeyIdentifier):
            assert v.key_identifier == f[_der.F_AKI]
        elif isinstance(v, x509.SubjectKeyIdentifier):
            assert v.digest == f[_der.F_SKI]
    assert present == f[_der.F_PRESENT] & ~1  # bit 0: extensions the reader does not keep
    assert critical == f[_der.F_CRITMASK] & ~1
    want = None if f[_der.F_CRITICAL] is None else _der.oid_text(f[_der.F_CRITICAL])
    assert unhandled == want


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_resigned_mutants_read_like_cryptography(data: st.DataObject) -> None:
    k, ca, leaf, _ = pki()
    s, e = outer(leaf)
    tbs = mutate(data, leaf, s, e)
    der = resign(tbs, k)
    assert_same_as_cryptography(der)
    v = ValidatorBuilder().trust([ca]).time(NOW).memo_size(0).build()
    r = v.validate(der)
    if r.status is Status.VALID:
        c = x509.load_der_x509_certificate(der)
        c.extensions  # noqa: B018
        c.public_key()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_resigned_crl_mutants_never_raise(data: st.DataObject) -> None:
    k, ca, leaf, crl = pki()
    s, e = outer(crl)
    der = resign(mutate(data, crl, s, e), k)
    try:
        entries, _ = _der.parse_crl_entries(der)
    except _der.DerError:
        entries = None
    if entries is not None:
        try:
            c = x509.load_der_x509_crl(der)
            listed = {r.serial_number for r in c}
        except Exception:
            listed = None  # the engine loads the CRL with cryptography first)
        if listed is not None:
            assert listed == set(entries)
    # the builder and the validator never raise on it
    v = ValidatorBuilder().trust([ca]).time(NOW).crls([c_ for c_ in [der] if _loads(der)])
    r = v.build().validate(leaf)
    assert isinstance(r.status, Status)


def _loads(der: bytes) -> bool:
    try:
        load_crls(der)
    except ValidationSetupError:
        return False
    return True


# --- crafted cases -------------------------------------------------------------------------


def _replace_once(der: bytes, old: bytes, new: bytes) -> bytes:
    assert der.count(old) >= 1
    s, e = outer(der)
    tbs = der[s:e].replace(old, new, 1)
    return tbs


def _validate_resigned(tbs: bytes) -> tuple[Status, str]:
    k, ca, _, _ = pki()
    v = ValidatorBuilder().trust([ca]).time(NOW).memo_size(0).build()
    r = v.validate(resign(tbs, k))
    return r.status, r.reason


def test_non_minimal_serial_is_malformed() -> None:
    # 02 02 12 34 → 02 03 00 12 34 (a leading zero byte that is not needed)
    _, _, leaf, _ = pki()
    tbs = _replace_once(leaf, b"\x02\x02\x12\x34", b"\x02\x03\x00\x12\x34")
    status, reason = _validate_resigned(rewrap(tbs))
    assert status is Status.MALFORMED and "serialNumber" in reason


def test_year_zero_is_malformed_not_an_exception() -> None:
    # notAfter as GeneralizedTime 00000101000000Z in a CA-signed certificate
    _, _, leaf, _ = pki()
    f = _der.parse_certificate(leaf)
    na_utc = f[_der.F_NA][2:]
    tbs = _replace_once(leaf, b"\x17\x0d" + na_utc, b"\x18\x0f00000101000000Z")
    # the Validity SEQUENCE grows by 2 bytes
    tbs = tbs.replace(b"\x30\x1e\x17\x0d", b"\x30\x20\x17\x0d", 1)
    k, ca, _, _ = pki()
    der = resign(rewrap(tbs), k)
    v = ValidatorBuilder().trust([ca]).time(NOW).build()
    batch = v.validate_many([der, leaf])
    assert batch[0].status is Status.MALFORMED, batch[0]
    assert batch[1].status is Status.VALID, batch[1]


def test_crl_year_zero_entry_bad_version_duplicate_extension_never_raise() -> None:
    k, ca, leaf, crl = pki()
    s, e = outer(crl)
    tbs = crl[s:e]
    bad = []
    # a revocation date in year 0 (UTCTime → GeneralizedTime changes sizes: use a
    # GeneralizedTime of the same length as a UTCTime + 2, fixing the entry length)
    stamp = (NOW - 2 * DAY).strftime("%y%m%d%H%M%SZ").encode()
    i = tbs.find(b"\x17\x0d" + stamp)
    assert i > 0
    bad.append(tbs[:i] + b"\x18\x0f00000101000000Z" + tbs[i + 15 :])
    # version 3 (value 2) instead of v2 (value 1)
    bad.append(tbs.replace(b"\x02\x01\x01", b"\x02\x01\x02", 1))
    # the CRLNumber extension twice
    ext = tlv(0x30, bytes.fromhex("0603551d14") + tlv(0x04, b"\x02\x01\x07"))
    j = tbs.find(ext)
    assert j > 0
    bad.append(tbs[:j] + ext + tbs[j:])
    for t in bad:
        der = resign(rewrap(t), k)
        # the loader refuses it with a typed error, or the builder sets it aside
        b = ValidatorBuilder().trust([ca]).time(NOW).revocation("hard")
        try:
            b = b.crls([der])
        except ValidationSetupError:
            continue
        v = b.build()
        assert v.problems, "the bad CRL is set aside"
        r = v.validate(leaf)
        assert r.status is Status.REVOCATION_UNKNOWN, r


def test_revocation_matches_the_serial_value() -> None:
    # the CRL lists 0x1234: the leaf is revoked, whatever the byte spelling
    k, ca, leaf, crl = pki()
    v = ValidatorBuilder().trust([ca]).time(NOW).crls([crl]).build()
    assert v.validate(leaf).status is Status.REVOKED
    # a non-minimal spelling of a listed serial in the CRL makes the CRL unreadable
    s, e = outer(crl)
    tbs = crl[s:e]
    tbs2 = tbs.replace(b"\x02\x02\x12\x34", b"\x02\x03\x00\x12\x34", 1)
    der = resign(rewrap(tbs2), k)
    with pytest.raises(ValidationSetupError):
        load_crls(der)


def test_version_6_certificate_is_a_typed_error() -> None:
    _, _, leaf, _ = pki()
    tbs = _replace_once(leaf, b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x05")
    k, _, _, _ = pki()
    der = resign(tbs, k)
    with pytest.raises(ValidationSetupError):
        load_certificates(der)
    status, _ = _validate_resigned(tbs)
    assert status is Status.MALFORMED


def test_large_certificate_is_refused_before_any_work() -> None:
    # a 1 MB certificate with tens of thousands of RDNs in its issuer
    rdn = tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"x")))
    issuer = tlv(0x30, rdn * 60000)
    k, ca, leaf, _ = pki()
    f = _der.parse_certificate(leaf)
    der = resign(rewrap(_replace_once(leaf, f[_der.F_ISSUER], issuer)), k)
    assert len(der) > 500_000
    import time

    v = ValidatorBuilder().trust([ca]).time(NOW).build()
    t0 = time.perf_counter()
    r = v.validate(der)
    assert time.perf_counter() - t0 < 0.5
    assert r.status is Status.MALFORMED and "KiB" in r.reason


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_native_walk_gives_what_the_python_walk_gives(data: st.DataObject) -> None:
    """The native DER walk (dercert.c) is a port of _der.parse_certificate_py: the
    same facts, or the same reason, on the same bytes — resigned TBS mutants (deep
    in the extensions) and raw mutants of the whole certificate (outer structure)."""
    assert _der._native_parse is not None, "the native part was not built"
    k, _, leaf, _ = pki()
    if data.draw(st.booleans()):
        s, e = outer(leaf)
        der = resign(mutate(data, leaf, s, e), k)
    else:
        der = mutate(data, leaf, 0, len(leaf))
        if data.draw(st.booleans()):
            der = der[: data.draw(st.integers(0, len(der)))]
    assert walk(_der.parse_certificate, der) == walk(_der.parse_certificate_py, der)


def test_native_walk_reads_a_long_serial_and_many_extensions_like_python() -> None:
    k, ca, leaf, _ = pki()
    c = x509.load_der_x509_certificate(leaf)
    b = (
        x509.CertificateBuilder()
        .subject_name(c.subject)
        .issuer_name(ca.subject)
        .public_key(c.public_key())
        .serial_number(2**159 - 1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(dt.datetime(2070, 1, 1, tzinfo=dt.UTC))  # GeneralizedTime
    )
    for n in range(40):  # past the pairwise duplicate check: the sorted one
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(f"1.2.3.{n}"), b""),
                            False)  # fmt: skip
    der = b.sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    f = _der.parse_certificate(der)
    assert f == _der.parse_certificate_py(der)
    assert f[_der.F_SERIAL] == 2**159 - 1 and f[_der.F_NA] == b"20700101000000Z"
    dup = resign(_replace_once(der, _der.oid_raw("1.2.3.39"), _der.oid_raw("1.2.3.38")), k)
    assert walk(_der.parse_certificate, dup) == ("DerError", "duplicate extension")
    assert walk(_der.parse_certificate_py, dup) == ("DerError", "duplicate extension")


_STRING_TAGS = [0x0C, 0x13, 0x16, 0x1A, 0x14, 0x12, 0x1E, 0x1C, 0x03, 0x04, 0x02]


@st.composite
def names(draw: st.DrawFn) -> bytes:
    """Names with every string type, odd lengths, bad OIDs and raw mutations."""
    rdns = []
    for _ in range(draw(st.integers(0, 4))):
        atvs = []
        for _ in range(draw(st.integers(1, 3))):
            good, bad = [bytes.fromhex("550403"), bytes.fromhex("550406")], [b"", b"\x80\x01"]
            oid = draw(st.sampled_from(good * 8 + bad + [b"\x2a\x86", b"\x2a\x80\x01"]))
            tag = draw(st.sampled_from(_STRING_TAGS))
            value = draw(st.one_of(
                st.binary(max_size=12),
                st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass")),
                st.text(max_size=6).map(lambda t: t.encode("utf-16-be", "surrogatepass")),
                st.text(max_size=4).map(lambda t: t.encode("utf-32-be", "surrogatepass")),
            ))  # fmt: skip
            atvs.append(tlv(0x30, tlv(0x06, oid) + tlv(tag, value)))
        rdns.append(tlv(0x31, b"".join(atvs)))
    name = tlv(0x30, b"".join(rdns))
    if draw(st.integers(0, 3)) == 0:
        d = bytearray(name)
        d[draw(st.integers(0, len(d) - 1))] = draw(st.integers(0, 255))
        name = bytes(d)
    return name


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names())
def test_native_name_check_agrees_with_the_python_one(name: bytes) -> None:
    assert _der._native_check_name is not None, "the native part was not built"
    assert walk(_der.check_name, name) == walk(_der.check_name_py, name)
    assert walk(lambda n: _der.check_name_py(n, {}), name) == walk(_der.check_name, name)
