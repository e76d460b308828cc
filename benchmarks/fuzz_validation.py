"""Fuzz job for the validator's DER reader: mutated, re-signed certificates and CRLs.

Each certificate (CRL) is a holder certificate (a CRL) whose signed part got
1-4 random byte changes (overwrite, insert, delete), then signed again by its
CA, so that the mutation reaches the field extraction. Checked for each:

- the validator never raises (``validate_many`` over batches), and no single
  certificate takes more than 1 s;
- nothing is VALID unless ``cryptography`` loads it fully (public key,
  subject, issuer, extensions);
- whatever the reader accepts (``parse_certificate`` + ``check_certificate``)
  cryptography reads with the same serial, issuer, subject, validity and key;
- a mutated CRL never makes ``load_crls`` / ``crls()`` / ``build()`` raise
  anything but ValidationSetupError, and the CRL entries the reader accepts
  are those cryptography lists;
- a mutated CA certificate (trust anchor or intermediate) never makes
  ``trust()`` / ``intermediates()`` / ``build()`` raise anything but
  ValidationSetupError, nor the validator.

    python benchmarks/fuzz_validation.py [--certs 100000] [--crls 100000] [--cas 20000]
        [--seed 1]

Prints the counts and exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import random
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _der_tools import resign, tbs_of, walk
from test_validation_strict_der import assert_same_as_cryptography

from cps_middleware.errors import ValidationSetupError
from cps_middleware.validation import Status, ValidatorBuilder, _der, load_crls

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
def mutate(rng: random.Random, tbs: bytes) -> bytes:
    d = bytearray(tbs)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(d))
        op = rng.random()
        if op < 0.6:
            d[i] = rng.randrange(256) if rng.random() < 0.7 else d[i] ^ (1 << rng.randrange(8))
        elif op < 0.8:
            d.insert(i, rng.randrange(256))
        else:
            del d[i]
    return bytes(d)


def setup() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, list[bytes], bytes]:
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.COMMON_NAME, "FUZZ CA"),
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
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), False)
        .sign(k, hashes.SHA256())
    )
    leaves = []
    for i, hk in enumerate(
        [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())]
    ):
        b = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cabinet"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"holder {i}"),
                    ]
                )
            )
            .issuer_name(name)
            .public_key(hk.public_key())
            .serial_number(0x1234 + i)
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 300 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), False)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("holder.sante.fr"),
                        x509.RFC822Name("holder@sante.fr"),
                        x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
                        x509.DirectoryName(name),
                    ]
                ),
                False,
            )
            .add_extension(
                x509.CertificatePolicies(
                    [
                        x509.PolicyInformation(
                            x509.ObjectIdentifier("1.2.250.1.213.1.1"), ["http://a/"]
                        )
                    ]
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
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.2.250.1.71.1.2.7"), b"\x05\x00"
                ),
                False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(hk.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(k.public_key()), False
            )
        )
        leaves.append(b.sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    crl_b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW - DAY)
        .next_update(NOW + 6 * DAY)
        .add_extension(x509.CRLNumber(7), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(k.public_key()), False)
    )
    for s in (5, 0x1234, 2**70):
        crl_b = crl_b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(s)
            .revocation_date(NOW - 2 * DAY)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
            .add_extension(x509.InvalidityDate(NOW - 3 * DAY), False)
            .build()
        )
    crl = crl_b.sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return k, ca, leaves, crl


def reader_agrees(der: bytes) -> str | None:
    """None if the reader refuses der or reads it as cryptography does; else the finding.

    The native walk (dercert.c) must also give what the Python walk gives."""
    if walk(_der.parse_certificate, der) != walk(_der.parse_certificate_py, der):
        return "the native walk and the Python walk differ"
    try:
        f = _der.parse_certificate(der)
        _der.check_certificate(der, f, {})
    except _der.DerError:
        return None
    try:
        c = x509.load_der_x509_certificate(der)
        c.subject.rfc4514_string()
        c.issuer.rfc4514_string()
        c.extensions  # noqa: B018
        spki = c.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        nb, na = (int(x) for x in _der.times_to_epoch([f[_der.F_NB], f[_der.F_NA]]))
    except Exception as exc:
        return f"reader accepts, cryptography refuses: {exc}"
    if c.serial_number != f[_der.F_SERIAL]:
        return "serial differs"
    if c.issuer.public_bytes() != f[_der.F_ISSUER] or c.subject.public_bytes() != f[_der.F_SUBJECT]:
        return "names differ"
    if (
        int(c.not_valid_before_utc.timestamp()) != nb
        or int(c.not_valid_after_utc.timestamp()) != na
    ):
        return "validity differs"
    if (
        spki != f[_der.F_SPKI]
        and serialization.load_der_public_key(f[_der.F_SPKI]) != c.public_key()
    ):
        return "key differs"  # (the same key may be spelled otherwise: a compressed EC point)
    try:  # every extension value the reader keeps, against cryptography's
        assert_same_as_cryptography(der)
    except AssertionError as exc:
        return f"extensions differ: {exc!r}"
    return None


def fuzz_certs(n: int, rng: random.Random, findings: list[str]) -> dict[str, int]:
    k, ca, leaves, _ = setup()
    v = ValidatorBuilder().trust([ca]).time(NOW).memo_size(0).build()
    counts: dict[str, int] = {}
    slowest = 0.0
    batch: list[bytes] = []
    done = 0
    while done < n:
        batch.clear()
        for _ in range(min(500, n - done)):
            leaf = leaves[rng.randrange(len(leaves))]
            der = resign(mutate(rng, tbs_of(leaf)), k)
            batch.append(der)
            why = reader_agrees(der)
            if why:
                findings.append(f"{why}: certificate {der.hex()}")
        t0 = time.perf_counter()
        try:
            results = v.validate_many(batch)
        except Exception as exc:
            findings.append(f"validate_many raised {type(exc).__name__}: {exc}")
            results = None
        per = (time.perf_counter() - t0) / len(batch)
        if results is not None:
            for der, r in zip(batch, results, strict=True):
                counts[r.status.name] = counts.get(r.status.name, 0) + 1
                if r.status is Status.VALID:
                    try:
                        c = x509.load_der_x509_certificate(der)
                        c.extensions  # noqa: B018
                        c.public_key()
                        c.subject.rfc4514_string()
                    except Exception as exc:
                        findings.append(f"VALID but cryptography refuses ({exc}): {der.hex()}")
        slowest = max(slowest, per)
        done += len(batch)
    # single certificates timed one by one on a sample: the hang check
    for leaf in leaves:
        for _ in range(200):
            der = resign(mutate(rng, tbs_of(leaf)), k)
            t0 = time.perf_counter()
            v.validate(der)
            slowest = max(slowest, time.perf_counter() - t0)
    counts["slowest_ms"] = int(slowest * 1000)
    return counts


def fuzz_crls(n: int, rng: random.Random, findings: list[str]) -> dict[str, int]:
    k, ca, leaves, crl = setup()
    base = ValidatorBuilder().trust([ca]).time(NOW).memo_size(0).revocation("soft")
    counts = {"loaded": 0, "refused": 0, "revoked": 0}
    tbs = tbs_of(crl)
    for _ in range(n):
        der = resign(mutate(rng, tbs), k)
        try:
            entries = _der.parse_crl_entries(der)[0]
            listed = {r.serial_number for r in x509.load_der_x509_crl(der)}
            if set(entries) != listed:
                findings.append(f"CRL entries differ: {der.hex()}")
        except Exception:
            pass
        try:
            load_crls(der)
            v = base.crls([der]).build()
            counts["loaded"] += 1
            if v.validate(leaves[0]).status is Status.REVOKED:
                counts["revoked"] += 1
        except ValidationSetupError:
            counts["refused"] += 1
        except Exception as exc:
            findings.append(f"CRL raised {type(exc).__name__}: {exc}: {der.hex()}")
    return counts


def fuzz_cas(n: int, rng: random.Random, findings: list[str]) -> dict[str, int]:
    """Mutated (re-signed) CA certificates as trust anchor, then as intermediate:
    the builder raises nothing but ValidationSetupError, the validator nothing."""
    k, ca, leaves, _ = setup()
    counts: dict[str, int] = {"refused": 0}
    tbs = tbs_of(ca.public_bytes(serialization.Encoding.DER))
    for _ in range(n):
        der = resign(mutate(rng, tbs), k)
        for role in ("anchor", "intermediate"):
            try:
                b = ValidatorBuilder().time(NOW)
                b = b.trust([der]) if role == "anchor" else b.trust([ca]).intermediates([der])
                t0 = time.perf_counter()
                r = b.build().validate(leaves[0])
                if time.perf_counter() - t0 > 1:
                    findings.append(f"CA as {role} took > 1 s: {der.hex()}")
                key = f"{role}:{r.status.name}"
                counts[key] = counts.get(key, 0) + 1
            except ValidationSetupError:
                counts["refused"] += 1
            except Exception as exc:
                findings.append(f"CA as {role} raised {type(exc).__name__}: {exc}: {der.hex()}")
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--certs", type=int, default=100_000)
    ap.add_argument("--crls", type=int, default=100_000)
    ap.add_argument("--cas", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    findings: list[str] = []
    t0 = time.perf_counter()
    cert_counts = fuzz_certs(args.certs, rng, findings)
    t1 = time.perf_counter()
    crl_counts = fuzz_crls(args.crls, rng, findings)
    t2 = time.perf_counter()
    ca_counts = fuzz_cas(args.cas, rng, findings)
    t3 = time.perf_counter()
    print(f"certificates: {args.certs} mutated in {t1 - t0:.1f} s: {cert_counts}")
    print(f"CRLs: {args.crls} mutated in {t2 - t1:.1f} s: {crl_counts}")
    print(f"CA certificates: {args.cas} mutated in {t3 - t2:.1f} s: {ca_counts}")
    print(f"findings: {len(findings)}")
    for f in findings[:20]:
        print("  ", f[:400])
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
