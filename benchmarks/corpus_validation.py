"""Deterministic certificate corpus for the chain-validation benchmark.

Shaped like IGC-Santé: a root (RSA-4096), two intermediate CAs with pathlen 0
(PERSONNES, ORGANISATIONS; RSA-2048, so that a holder certificate costs one
RSA-2048 verification), and 20 000 holder certificates with the card profile
(multi-valued RDN subject, critical keyUsage, policy, EKU, CRL DP, AIA, NOS
private extensions), RSA-2048 with a few P-256 keys drawn from a small pool.
Ground truth: 90 % valid, 3 % expired, 3 % revoked (on the intermediates'
CRLs, among a few thousand other entries), 2 % bad signature (signed by a rogue
key under the right issuer name and key id), 2 % issued by an unknown CA.

Everything is derived from fixed seeds (keys from ``cps_middleware.testing``'s
deterministic key maker, RSA PKCS#1 v1.5 signatures), so two runs produce the
same bytes. The corpus is cached under ``benchmarks/.cache/validation/``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps_middleware.testing._keys import deterministic_key
from cps_middleware.testing.pki import key_usage

CACHE = Path(__file__).resolve().parent / ".cache" / "validation"
T = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)  # validation time
DAY = dt.timedelta(days=1)
CATEGORIES = (
    ("valid", 90),
    ("expired", 3),
    ("revoked", 3),
    ("bad_signature", 2),
    ("unknown_ca", 2),
)
VERSION = "1"

_ANY_POLICY = x509.ObjectIdentifier("2.5.29.32.0")
_POLICY_AUTH = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.2")
_POLICY_SIGN = x509.ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.1")
_NOS = [
    (x509.ObjectIdentifier("1.2.250.1.71.1.2.7"), b"\x02\x01\x0a"),  # profession 10
    (x509.ObjectIdentifier("1.2.250.1.71.1.2.2"), b"\x02\x01\x00"),  # card type CPS
    (x509.ObjectIdentifier("1.2.250.1.71.1.2.5"), b"\x02\x02\x00\x80"),  # test card
]
_REASONS = [
    x509.ReasonFlags.key_compromise,
    x509.ReasonFlags.superseded,
    x509.ReasonFlags.cessation_of_operation,
    x509.ReasonFlags.affiliation_changed,
]


@dataclass
class Corpus:
    root: bytes
    intermediates: list[bytes]
    crls: list[bytes]
    leaves: list[bytes]
    truth: list[str]
    time: dt.datetime = T
    dir: Path = CACHE
    int_key: str = "rsa2048"  # key type of the intermediates (what a holder costs)


def _dn(cn: str, ou: str = "IGC-SANTE") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "0002 187512751"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca(subject, key, issuer_name, issuer_key, serial, pathlen, nb, na) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), True)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(_ANY_POLICY, None)]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    return b.sign(issuer_key, hashes.SHA256())


def _leaf(rng: random.Random, i: int, key, issuer: x509.Certificate, signer, nb, na, serial):
    auth = i % 2 == 0
    idnat = f"8{10000000000 + i:011d}"
    subject = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.TITLE, "Médecin")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.GIVEN_NAME, f"PRENOM{i % 997}"),
                    x509.NameAttribute(NameOID.COMMON_NAME, idnat),
                    x509.NameAttribute(NameOID.SURNAME, f"NOM{i}"),
                ]
            ),
        ]
    )
    cn = issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), False
        )
        .add_extension(
            key_usage("digital_signature", "key_encipherment")
            if auth
            else key_usage("content_commitment"),
            True,
        )
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(_POLICY_AUTH if auth else _POLICY_SIGN, None)]
            ),
            False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH]
                if auth
                else [ExtendedKeyUsageOID.EMAIL_PROTECTION]
            ),
            False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [
                            x509.UniformResourceIdentifier(
                                f"http://igc-sante.esante.gouv.fr/CRL/{cn[:12]}.crl"
                            )
                        ],
                        None,
                        None,
                        None,
                    )
                ]
            ),
            False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://ocsp.esante.gouv.fr"),
                    ),
                ]
            ),
            False,
        )
    )
    for oid, value in _NOS:
        b = b.add_extension(x509.UnrecognizedExtension(oid, value), False)
    b = b.add_extension(
        x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.2.250.1.71.1.2.3"),
            b"\x16\x16" + f"8025000001/{2800000000 + i}".encode(),
        ),
        False,
    )
    return b.sign(signer, hashes.SHA256())


def _crl(issuer: x509.Certificate, key, entries: list[tuple[int, x509.ReasonFlags, dt.datetime]]):
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(T - DAY)
        .next_update(T + 6 * DAY)
        .add_extension(x509.CRLNumber(4242), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
    )
    for serial, reason, when in entries:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(when)
            .add_extension(x509.CRLReason(reason), False)
            .build()
        )
    return b.sign(key, hashes.SHA256())


def build(
    n: int = 20000, *, filler: int = 3000, progress: bool = True, int_key: str = "rsa2048"
) -> Corpus:
    """Make the corpus (deterministic; about 10 s for 20 000 leaves once keys are cached).

    ``int_key``: the intermediates' key type, ``"rsa2048"`` or ``"rsa4096"``
    (the real IGC-Santé intermediates are RSA-4096)."""
    rng = random.Random(20260115)
    root_key = deterministic_key("bench-root-fort", "rsa4096")
    suffix = "" if int_key == "rsa2048" else f"-{int_key}"
    int_keys = [deterministic_key(f"bench-int-{k}{suffix}", int_key) for k in ("pp", "mm")]
    unk_root_key = deterministic_key("bench-unknown-root", "rsa2048")
    unk_int_key = deterministic_key("bench-unknown-int", "rsa2048")
    rogue = deterministic_key("bench-rogue", "rsa2048")
    pool = [deterministic_key(f"bench-leaf-{k}", "rsa2048") for k in range(12)]
    pool += [deterministic_key(f"bench-leaf-ec-{k}", "p256") for k in range(2)]
    root_dn = _dn("BENCH AC RACINE IGC-SANTE FORT")
    root = _ca(root_dn, root_key, root_dn, root_key, 1, None, T - 3000 * DAY, T + 4000 * DAY)
    inters = [
        _ca(
            _dn(f"BENCH AC IGC-SANTE FORT {name}"),
            int_keys[k],
            root_dn,
            root_key,
            10 + k,
            0,
            T - 2900 * DAY,
            T + 3900 * DAY,
        )
        for k, name in enumerate(("PERSONNES", "ORGANISATIONS"))
    ]
    unk_root_dn = _dn("TEST AC RACINE IGC-SANTE FORT", "IGC-SANTE TEST")
    unk_root = _ca(
        unk_root_dn,
        unk_root_key,
        unk_root_dn,
        unk_root_key,
        1,
        None,
        T - 3000 * DAY,
        T + 4000 * DAY,
    )
    unk_int = _ca(
        _dn("TEST AC IGC-SANTE FORT PERSONNES", "IGC-SANTE TEST"),
        unk_int_key,
        unk_root_dn,
        unk_root_key,
        2,
        0,
        T - 2900 * DAY,
        T + 3900 * DAY,
    )
    del unk_root

    weights = [w for _, w in CATEGORIES]
    names = [c for c, _ in CATEGORIES]
    truth: list[str] = []
    leaves: list[bytes] = []
    revoked: list[list[tuple[int, x509.ReasonFlags, dt.datetime]]] = [[], []]
    for i in range(n):
        cat = rng.choices(names, weights)[0]
        k = 0 if rng.random() < 0.7 else 1
        issuer, signer = inters[k], int_keys[k]
        key = pool[rng.randrange(len(pool))]
        nb = T - rng.randrange(1, 900) * DAY - rng.randrange(86400) * dt.timedelta(seconds=1)
        na = nb + 3 * 365 * DAY
        serial = 0x1000000000000000 + i * 7919 + rng.randrange(7919)
        if cat == "expired":
            na = T - rng.randrange(1, 300) * DAY
            nb = na - 3 * 365 * DAY
        elif cat == "revoked":
            revoked[k].append((serial, rng.choice(_REASONS), T - rng.randrange(2, 200) * DAY))
        elif cat == "bad_signature":
            signer = rogue
        elif cat == "unknown_ca":
            issuer, signer = unk_int, unk_int_key
        cert = _leaf(rng, i, key, issuer, signer, nb, na, serial)
        leaves.append(cert.public_bytes(serialization.Encoding.DER))
        truth.append(cat)
        if progress and i % 2000 == 1999:
            print(f"  corpus: {i + 1}/{n} certificates", flush=True)
    for k in range(2):
        for _ in range(filler):  # other revoked cards, not in the corpus
            revoked[k].append(
                (rng.getrandbits(120), rng.choice(_REASONS), T - rng.randrange(2, 900) * DAY)
            )
        rng.shuffle(revoked[k])
    crls = [_crl(root, root_key, [])] + [_crl(inters[k], int_keys[k], revoked[k]) for k in range(2)]
    der = serialization.Encoding.DER
    return Corpus(
        root=root.public_bytes(der),
        intermediates=[c.public_bytes(der) for c in inters],
        crls=[c.public_bytes(der) for c in crls],
        leaves=leaves,
        truth=truth,
        dir=cache_dir(int_key),
        int_key=int_key,
    )


def cache_dir(int_key: str) -> Path:
    return CACHE if int_key == "rsa2048" else CACHE.parent / f"validation-{int_key}"


def _pem(der: bytes, kind: str = "CERTIFICATE") -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode()


def save(c: Corpus, d: Path | None = None) -> None:
    d = d or c.dir
    d.mkdir(parents=True, exist_ok=True)
    gi = d.parent / ".gitignore"
    if not gi.exists():
        gi.write_text("*\n")  # the cache ignores itself
    (d / "root.pem").write_bytes(_pem(c.root))
    (d / "intermediates.pem").write_bytes(b"".join(_pem(x) for x in c.intermediates))
    (d / "crls.pem").write_bytes(b"".join(_pem(x, "X509 CRL") for x in c.crls))
    for k, crl in enumerate(c.crls):
        (d / f"crl{k}.der").write_bytes(crl)
    pem_dir = d / "leaves"
    pem_dir.mkdir(exist_ok=True)
    with (d / "leaves.bin").open("wb") as f:
        for i, leaf in enumerate(c.leaves):
            f.write(len(leaf).to_bytes(4, "big") + leaf)
            (pem_dir / f"{i:05d}.pem").write_bytes(_pem(leaf))
    meta = {
        "version": VERSION,
        "n": len(c.leaves),
        "time": T.isoformat(),
        "truth": c.truth,
        "intermediates": len(c.intermediates),
        "crls": len(c.crls),
    }
    (d / "corpus.json").write_text(json.dumps(meta))


def load(d: Path = CACHE, int_key: str = "rsa2048") -> Corpus | None:
    try:
        meta = json.loads((d / "corpus.json").read_text())
        if meta.get("version") != VERSION:
            return None
        root = _der_of((d / "root.pem").read_bytes())[0]
        inters = _der_of((d / "intermediates.pem").read_bytes())
        crls = [(d / f"crl{k}.der").read_bytes() for k in range(meta["crls"])]
        blob = (d / "leaves.bin").read_bytes()
    except (OSError, ValueError, KeyError):
        return None
    leaves = []
    i = 0
    while i < len(blob):
        n = int.from_bytes(blob[i : i + 4], "big")
        leaves.append(blob[i + 4 : i + 4 + n])
        i += 4 + n
    if len(leaves) != meta["n"]:
        return None
    return Corpus(root, inters, crls, leaves, meta["truth"], T, d, int_key)


def _der_of(pem: bytes) -> list[bytes]:
    return [
        c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(pem)
    ]


def load_or_build(n: int = 20000, int_key: str = "rsa2048") -> Corpus:
    d = cache_dir(int_key)
    c = load(d, int_key)
    if c is not None and len(c.leaves) == n:
        return c
    print(f"building the benchmark corpus ({n} certificates) in {d} ...", flush=True)
    c = build(n, int_key=int_key)
    save(c)
    return c


if __name__ == "__main__":
    corpus = load_or_build()
    print(f"{len(corpus.leaves)} certificates in {CACHE}")
