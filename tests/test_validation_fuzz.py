"""Fuzzed DER never makes the validator raise; random bytes are only ever MALFORMED."""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cps_middleware.validation import Status, Validator, ValidatorBuilder

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


@functools.cache
def setup() -> tuple[Validator, bytes]:
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FUZZ ROOT")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=9))
        .not_valid_after(NOW + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), False)
        .sign(k, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "holder")]))
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(2)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(k.public_key()), False)
        .sign(k, hashes.SHA256())
    )
    v = ValidatorBuilder().trust([root]).time(NOW).memo_size(0).build()
    return v, leaf.public_bytes(serialization.Encoding.DER)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_are_malformed(data: bytes) -> None:
    v, _ = setup()
    r = v.validate(data)
    assert r.status is Status.MALFORMED
    batch = v.validate_many([data, data])
    assert [x.status for x in batch] == [Status.MALFORMED] * 2


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_certificates_never_raise(data: st.DataObject) -> None:
    v, good = setup()
    assert v.validate(good).ok
    d = bytearray(good)
    n = data.draw(st.integers(1, 4))
    for _ in range(n):
        i = data.draw(st.integers(0, len(d) - 1))
        d[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(d)))
    mutated = bytes(d[:cut]) if data.draw(st.booleans()) else bytes(d)
    r = v.validate(mutated)
    assert isinstance(r.status, Status) and r.reason
    if mutated != good:
        # whatever changed is covered by the signature, or breaks the structure
        assert r.status is not Status.VALID, r
    # truncated DER is always malformed
    if len(mutated) < len(good) and mutated == good[: len(mutated)]:
        assert r.status is Status.MALFORMED
