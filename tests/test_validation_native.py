"""The native batch signature check (cps_middleware._verify) gives cryptography's verdicts."""

from __future__ import annotations

import datetime as dt
import functools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cps_middleware.testing.pki import key_usage
from cps_middleware.validation import Status, ValidatorBuilder

_verify = pytest.importorskip("cps_middleware._verify")

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@functools.cache
def keys() -> dict[str, object]:
    return {
        "root": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(65537, 2048),
        "ec": ec.generate_private_key(ec.SECP384R1()),
        "rogue": rsa.generate_private_key(65537, 2048),
        "leaf": ec.generate_private_key(ec.SECP256R1()),
    }


def _cert(
    cn: str,
    key: object,
    issuer: x509.Certificate | None,
    signer: object,
    *,
    ca: bool,
    h: hashes.HashAlgorithm,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    pub = key.public_key()  # type: ignore[attr-defined]
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 9 * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        .add_extension(
            key_usage(*(("key_cert_sign", "crl_sign") if ca else ("digital_signature",))), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False)
    )
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),
            False,  # type: ignore[arg-type]
        )
    return b.sign(signer, h)  # type: ignore[arg-type]


def test_native_and_cryptography_agree_on_a_mixed_batch() -> None:
    k = keys()
    root = _cert("ROOT", k["root"], None, k["root"], ca=True, h=hashes.SHA256())
    cas = {
        "rsa": _cert("CA RSA", k["rsa"], root, k["root"], ca=True, h=hashes.SHA256()),
        "ec": _cert("CA EC", k["ec"], root, k["root"], ca=True, h=hashes.SHA384()),
    }
    batch = []
    for i in range(600):
        which = "rsa" if i % 3 else "ec"
        ca = cas[which]
        signer = k["rogue"] if which == "rsa" and i % 7 == 0 else k[which]
        h = [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()][i % 3]
        batch.append(_cert(f"holder {i}", k["leaf"], ca, signer, ca=False, h=h))
    base = ValidatorBuilder().trust([root]).intermediates(list(cas.values())).time(NOW)
    small = batch[:48]
    one_by_one = [base.threads(0).build().validate(c) for c in small]
    assert {r.status for r in one_by_one} == {Status.VALID, Status.BAD_SIGNATURE}
    for n in (0, 1, 2):
        got = base.threads(n).memo_size(0).build().validate_many(small)
        assert list(got) == one_by_one, n
    # 600 certificates: with threads >= 2, parts are checked by native threads
    # while the next part is read; the same verdicts, in order
    ders = [c.public_bytes(serialization.Encoding.DER) for c in batch]
    want = base.threads(0).memo_size(0).build().validate_many(ders)
    with base.threads(2).memo_size(0).build() as v:
        assert list(v.validate_many(ders)) == list(want)
