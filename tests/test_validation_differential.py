"""Differential test: the batch validator against ``openssl verify`` on generated PKIs.

Hypothesis draws a small PKI (root → 0..2 intermediates → leaves, RSA-2048 or
P-256 keys from a fixed pool) and a few defects (dates, signatures, issuers,
CA constraints, critical extensions, revocation, CRL freshness and signer,
same-name candidate issuers). For every leaf, ``validate()`` (one by one, a
fresh validator) and ``validate_many()`` (one batch) must agree with each
other, and with real ``openssl verify`` (``-attime``, ``-crl_check_all`` when
CRLs are given, no ``-partial_chain``) on the coarse verdict (valid / invalid),
and on the category (expired, not yet valid, revoked, bad signature, unknown
issuer) when the case has a single defect and both tools name it.

Name constraints (directoryName and dNSName subtrees, permitted and excluded,
on one or two constraining CAs) are drawn separately (``nc_cases``): there the
verdicts must be equal, and a refusal is NAME_CONSTRAINTS_VIOLATED where
OpenSSL reports a permitted / excluded subtree violation.

Where the two legitimately differ, the difference is written out below
(``DOCUMENTED``), each with the RFC 5280 section our validator follows; for
those the test checks that OpenSSL fails *only* for the documented reason.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cps_middleware.testing._keys import PrivateKey, deterministic_key
from cps_middleware.testing.pki import key_usage as ku
from cps_middleware.validation import RULES, Status, ValidationResult, ValidatorBuilder

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
UNKNOWN_EXT = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.250.1.71.1.2.7"), b"\x05\x00")
REASONS = [None] + [r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl]

# Defects of the CA side (one PKI per example) and of single leaves.
PKI_DEFECTS = (
    "ca_expired",  # a CA (root or intermediate) past its notAfter
    "ca_not_yet_valid",
    "ca_bad_signature",  # an intermediate signed by a key that is not its issuer's
    "ca_no_key_cert_sign",  # an intermediate whose keyUsage lacks keyCertSign
    "ca_not_ca",  # an intermediate with basicConstraints cA FALSE used as issuer
    "ca_no_basic_constraints",  # an intermediate without basicConstraints
    "ca_critical",  # an intermediate with an unknown critical extension
    "pathlen",  # root → CA pathlen 0 → CA → leaf
    "root_pathlen0",  # root pathlen 0 → CA → leaf
    "ca_revoked",  # an intermediate listed on its issuer's CRL
    "crl_expired",  # a CRL whose nextUpdate is past
    "crl_wrong_key",  # a CRL in a CA's name signed by another key
    "crl_at_next_update",  # the validation time is a CRL's nextUpdate (boundary)
    "decoy",  # another CA with the issuer's name and another key
    "self_issued",  # root → self-issued rollover CA (root's name, new key) → ...
    "ca_no_crl_sign",  # the leaves' issuer may not sign CRLs, and does
    "ca_no_key_usage",  # an intermediate without keyUsage (unrestricted)
    "root_critical",  # the trust anchor has an unknown critical extension
    "crl_not_yet_valid",  # the only CRL of a CA has thisUpdate in the future
    "crl_superseded_hold",  # an older, still current CRL has the leaves on hold
    "ca_reissued_expired",  # an expired copy of the issuer (same name and key) first
)
LEAF_DEFECTS = (
    "leaf_expired",
    "leaf_not_yet_valid",
    "at_not_after",  # the validation time is the leaf's notAfter (boundary)
    "at_not_before",  # the validation time is the leaf's notBefore (boundary)
    "leaf_bad_signature",  # names and key id of the issuer, signed by another key
    "unknown_issuer",  # issued by a CA nobody configured
    "leaf_is_ca",  # a leaf with cA TRUE: still a fine leaf
    "leaf_critical",
    "leaf_revoked",
    "no_aki",  # no authorityKeyIdentifier: name chaining only
    "issuer_name_case",  # the issuer's name in other case and spacing (RFC 5280 7.1)
)
NEEDS_INTER = {
    "ca_bad_signature",
    "ca_no_key_cert_sign",
    "ca_not_ca",
    "ca_no_basic_constraints",
    "ca_critical",
    "root_pathlen0",
    "ca_revoked",
    "decoy",
    "ca_no_key_usage",
    "ca_reissued_expired",
    "ca_no_crl_sign",
}
NEEDS_CRLS = {
    "ca_revoked",
    "crl_expired",
    "crl_wrong_key",
    "crl_at_next_update",
    "leaf_revoked",
    "ca_no_crl_sign",
    "crl_not_yet_valid",
    "crl_superseded_hold",
}
# Defects that leave the certificate valid for RFC 5280.
HARMLESS = {
    "leaf_is_ca",
    "no_aki",
    "at_not_before",
    "at_not_after",
    "crl_at_next_update",
    "decoy",
    "self_issued",
    "ca_no_key_usage",
    "crl_superseded_hold",
    "ca_reissued_expired",
    "issuer_name_case",
}
# What a single defect is called, where it has a name both tools use.
CATEGORY = {
    "ca_expired": "expired",
    "leaf_expired": "expired",
    "ca_not_yet_valid": "not_yet_valid",
    "leaf_not_yet_valid": "not_yet_valid",
    "ca_bad_signature": "bad_signature",
    "leaf_bad_signature": "bad_signature",
    "unknown_issuer": "unknown_issuer",
    "ca_revoked": "revoked",
    "leaf_revoked": "revoked",
}
OURS = {
    Status.EXPIRED: "expired",
    Status.NOT_YET_VALID: "not_yet_valid",
    Status.BAD_SIGNATURE: "bad_signature",
    Status.UNKNOWN_ISSUER: "unknown_issuer",
    Status.REVOKED: "revoked",
}
# openssl verify error numbers (X509_V_ERR_*) that name a category unambiguously
OPENSSL = {
    2: "unknown_issuer",  # unable to get issuer certificate
    20: "unknown_issuer",  # unable to get local issuer certificate
    7: "bad_signature",  # certificate signature failure
    9: "not_yet_valid",
    10: "expired",
    23: "revoked",
}
E_CRL_EXPIRED = 12
E_CERT_EXPIRED = 10
E_SIGNATURE = 7
E_CRL_SIGNATURE = 8
E_NO_CRL = 3
E_UNHANDLED_CRITICAL = 34
E_REVOKED = 23

# --- the documented differences (RFC 5280 semantics where OpenSSL has its own) -------
#
# at_not_after: RFC 5280 4.1.2.5 -- "the period of time from notBefore through
#   notAfter, inclusive": at t == notAfter the certificate is valid. OpenSSL
#   treats notAfter as exclusive (X509_cmp_time(notAfter, t) <= 0 is expired).
# crl_at_next_update: RFC 5280 5.1.2.5 / 6.3.3 (a)(2) -- a CRL is stale when the
#   current time is *after* nextUpdate. OpenSSL calls it expired at nextUpdate.
# decoy + no_aki (or a self-issued rollover CA with the root's name issuing the
#   leaves without AKI): RFC 5280 6.1 leaves path building to the implementation
#   (RFC 4158 section 2: try every candidate issuer); our validator tries every
#   same-name CA key, OpenSSL takes the first name match (no AKI to tell them
#   apart) and reports the signature failure of the certificate, or (as it
#   checks revocation before signatures) of the issuer's CRL under that key,
#   or finds no CRL for it (the CRLs' AKI names the right key).
# (root_critical is no longer a difference: the validator processes the trust
#   anchor's extensions like every CA's, as OpenSSL does.)
DOCUMENTED = {"at_not_after", "crl_at_next_update", "decoy+no_aki"}


def key(kind: str, slot: int) -> PrivateKey:
    return deterministic_key(f"differential-{slot}", "rsa2048" if kind == "rsa" else "p256")


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DIFFERENTIAL"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


_serials = iter(range(10_000, 10**9))


@dataclass
class Ca:
    cert: x509.Certificate
    key: PrivateKey


def issue(
    subject: x509.Name,
    subject_key: PrivateKey,
    issuer: Ca | None,
    *,
    signer: PrivateKey | None = None,
    issuer_name: x509.Name | None = None,
    aki_key: PrivateKey | None = None,
    ca: bool | None = False,
    pathlen: int | None = None,
    usage: x509.KeyUsage | None = None,
    nb: dt.datetime = NOW - 30 * DAY,
    na: dt.datetime = NOW + 365 * DAY,
    critical_ext: bool = False,
    aki: bool = True,
) -> x509.Certificate:
    """One certificate; self-signed when ``issuer`` is None."""
    iname = issuer_name or (issuer.cert.subject if issuer else subject)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(iname)
        .public_key(subject_key.public_key())
        .serial_number(next(_serials))
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), False)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    if usage is not None:
        b = b.add_extension(usage, critical=True)
    akey = aki_key or (issuer.key if issuer else None)
    if aki and akey is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(akey.public_key()),  # type: ignore[arg-type]
            False,
        )
    if critical_ext:
        b = b.add_extension(UNKNOWN_EXT, critical=True)
    sk = signer or (issuer.key if issuer else subject_key)
    return b.sign(sk, hashes.SHA256())  # type: ignore[arg-type]


def make_crl(
    ca: Ca,
    revoked: list[tuple[int, x509.ReasonFlags | None]],
    *,
    signer: PrivateKey | None = None,
    this: dt.datetime = NOW - DAY,
    nxt: dt.datetime = NOW + 7 * DAY,
    number: int = 2,
) -> x509.CertificateRevocationList:
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this)
        .next_update(nxt)
        .add_extension(x509.CRLNumber(number), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),  # type: ignore[arg-type]
            False,
        )
    )
    for serial, reason in revoked:
        e = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - 2 * DAY)
        if reason is not None:
            e = e.add_extension(x509.CRLReason(reason), False)
        b = b.add_revoked_certificate(e.build())
    return b.sign(signer or ca.key, hashes.SHA256())  # type: ignore[arg-type]


# --- the drawn case ---------------------------------------------------------------------


@dataclass
class Case:
    kinds: tuple[str, ...]  # key kind of root, intermediates..., leaves
    n_inter: int
    pki: frozenset[str]
    target: int  # which CA / CRL a CA-side defect hits
    leaves: tuple[frozenset[str], ...]
    reason: x509.ReasonFlags | None
    crls: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_inter = draw(st.integers(0, 2))
    allowed = [d for d in PKI_DEFECTS if n_inter or d not in NEEDS_INTER]
    if n_inter < 2:
        allowed.remove("pathlen")
    pki = frozenset(draw(st.lists(st.sampled_from(allowed), max_size=2, unique=True)))
    if {"ca_expired", "ca_not_yet_valid"} <= pki:  # one CA cannot be both
        pki -= {"ca_not_yet_valid"}
    crl_dates = sorted(pki & {"crl_expired", "crl_at_next_update", "crl_not_yet_valid"})
    pki -= set(crl_dates[1:])  # one CRL has one pair of dates
    usages = sorted(pki & {"ca_no_key_cert_sign", "ca_no_key_usage", "ca_no_crl_sign"})
    pki -= set(usages[1:])  # one keyUsage per CA
    leaves = tuple(
        frozenset(draw(st.lists(st.sampled_from(LEAF_DEFECTS), max_size=2, unique=True)))
        for _ in range(draw(st.integers(1, 3)))
    )
    # two date defects on one leaf would contradict each other
    leaves = tuple(
        d if len(d & {"leaf_expired", "leaf_not_yet_valid", "at_not_after", "at_not_before"}) < 2
        else frozenset(sorted(d)[:1])
        for d in leaves
    )  # fmt: skip
    kinds = tuple(draw(st.sampled_from(("rsa", "p256"))) for _ in range(n_inter + 2))
    need_crls = bool(pki & NEEDS_CRLS) or any(d & NEEDS_CRLS for d in leaves)
    return Case(
        kinds=kinds,
        n_inter=n_inter,
        pki=pki,
        target=draw(st.integers(0, n_inter)),
        leaves=leaves,
        reason=draw(st.sampled_from(REASONS)),
        crls=need_crls or draw(st.booleans()),
    )


@dataclass
class Built:
    root: Ca
    inters: list[Ca]  # from under the root down to the leaves' issuer
    untrusted: list[x509.Certificate]
    crls: list[x509.CertificateRevocationList]
    leaves: list[x509.Certificate]
    fillers: list[x509.Certificate] = field(default_factory=list)


def build(case: Case) -> Built:
    kinds = case.kinds
    pki = case.pki
    # the CA a CA-side defect hits: 0 = root, k = k-th intermediate
    t = case.target
    ti = max(t, 1) if case.n_inter else 0  # intermediate-only defects
    root_key = key(kinds[0], 0)
    root = Ca(
        issue(
            name("DIFF ROOT"),
            root_key,
            None,
            ca=True,
            pathlen=0 if "root_pathlen0" in pki else None,
            usage=ku("key_cert_sign", "crl_sign"),
            nb=NOW + DAY if "ca_not_yet_valid" in pki and t == 0 else NOW - 3650 * DAY,
            na=NOW - DAY if "ca_expired" in pki and t == 0 else NOW + 3650 * DAY,
            critical_ext="root_critical" in pki,
        ),
        root_key,
    )
    cas = [root]
    parents: list[Ca] = [root]  # parents[k]: the issuer of cas[k]
    untrusted: list[x509.Certificate] = []
    # the CA under which intermediate 1 (or the leaves) are issued
    top = root
    if "self_issued" in pki:
        # a key rollover: the root's name with a new key, certified by the old
        # key; self-issued, so it does not count against pathLenConstraint
        rk2 = key(kinds[0], 10)
        top = Ca(
            issue(root.cert.subject, rk2, root, ca=True, usage=ku("key_cert_sign", "crl_sign")),
            rk2,
        )
        untrusted.append(top.cert)
    for k in range(1, case.n_inter + 1):
        k_key = key(kinds[k], k)
        hit = k == ti
        dates_hit = k == t
        bc_ca: bool | None = True
        if hit and "ca_not_ca" in pki:
            bc_ca = False
        if hit and "ca_no_basic_constraints" in pki:
            bc_ca = None
        parent = top if k == 1 else cas[-1]
        usage: x509.KeyUsage | None = ku("key_cert_sign", "crl_sign")
        if hit and "ca_no_key_cert_sign" in pki:
            usage = ku("crl_sign")
        elif hit and "ca_no_key_usage" in pki:
            usage = None
        elif k == case.n_inter and "ca_no_crl_sign" in pki:
            usage = ku("key_cert_sign")
        if hit and "ca_reissued_expired" in pki:
            # the same CA (name and key) once certified for an earlier period
            untrusted.append(
                issue(name(f"DIFF CA {k}"), k_key, parent, ca=True, usage=usage,
                      nb=NOW - 900 * DAY, na=NOW - 400 * DAY)
            )  # fmt: skip
        cert = issue(
            name(f"DIFF CA {k}"),
            k_key,
            parent,
            signer=key(kinds[k - 1], 9) if hit and "ca_bad_signature" in pki else None,
            ca=bc_ca,
            pathlen=0 if k == 1 and "pathlen" in pki and bc_ca else None,
            usage=usage,
            nb=NOW + DAY if dates_hit and "ca_not_yet_valid" in pki else NOW - 365 * DAY,
            na=NOW - DAY if dates_hit and "ca_expired" in pki else NOW + 730 * DAY,
            critical_ext=hit and "ca_critical" in pki,
        )
        cas.append(Ca(cert, k_key))
        parents.append(parent)
    issuer = cas[-1] if case.n_inter else top
    untrusted += [c.cert for c in cas[1:]]
    if "decoy" in pki:
        # same name as the leaves' issuer, certified by the same parent, other key;
        # listed first so that a first-match lookup meets it first
        dk = key(kinds[-1], 8)
        decoy = issue(
            issuer.cert.subject,
            dk,
            parents[-1] if case.n_inter else root,
            ca=True,
            usage=ku("key_cert_sign", "crl_sign"),
            nb=NOW - 365 * DAY,
            na=NOW + 730 * DAY,
        )
        untrusted.insert(0, decoy)
    stranger = Ca(
        issue(name("DIFF STRANGER"), key("rsa", 7), None, ca=True, usage=ku("key_cert_sign")),
        key("rsa", 7),
    )
    leaf_kind = kinds[-1]
    # every CA that issues something publishes a CRL
    publishers = cas + ([top] if top is not root else [])
    revoked: dict[int, list[tuple[int, x509.ReasonFlags | None]]] = {
        c.cert.serial_number: [] for c in publishers
    }
    leaves = []
    for j, d in enumerate(case.leaves):
        lk = key(leaf_kind, 5)
        nb, na = NOW - 30 * DAY, NOW + 365 * DAY
        if "leaf_expired" in d:
            nb, na = NOW - 400 * DAY, NOW - DAY
        if "leaf_not_yet_valid" in d:
            nb = NOW + DAY
        if "at_not_after" in d:
            na = NOW
        if "at_not_before" in d:
            nb = NOW
        spelled = None
        if "issuer_name_case" in d:
            spelled = x509.Name(
                [
                    x509.NameAttribute(a.oid, str(a.value).lower().replace(" ", "  "))
                    if a.oid != NameOID.COUNTRY_NAME
                    else a
                    for a in issuer.cert.subject
                ]
            )
        if "unknown_issuer" in d:
            # alternately: a CA nobody knows, or the issuer's name with a foreign key id
            leaf = issue(
                name(f"holder {j}"),
                lk,
                stranger,
                issuer_name=issuer.cert.subject if j % 2 else None,
                nb=nb,
                na=na,
                usage=ku("digital_signature"),
                critical_ext="leaf_critical" in d,
                ca="leaf_is_ca" in d,
            )
        else:
            leaf = issue(
                name(f"holder {j}"),
                lk,
                issuer,
                # another key of the issuer's type (a type mismatch is an
                # unknown issuer for OpenSSL, whose lookup matches key types)
                signer=key(kinds[len(cas) - 1], 6) if "leaf_bad_signature" in d else None,
                issuer_name=spelled,
                nb=nb,
                na=na,
                usage=ku("digital_signature"),
                critical_ext="leaf_critical" in d,
                ca="leaf_is_ca" in d,
                aki="no_aki" not in d,
            )
        if "leaf_revoked" in d:
            revoked[issuer.cert.serial_number].append((leaf.serial_number, case.reason))
        leaves.append(leaf)
    if "ca_revoked" in pki:
        revoked[parents[ti].cert.serial_number].append((cas[ti].cert.serial_number, case.reason))
    crls = []
    if case.crls:
        for i, ca in enumerate(publishers):
            listed = revoked[ca.cert.serial_number]
            kw: dict[str, object] = {}
            if i == t and "crl_expired" in pki:
                kw = {"this": NOW - 30 * DAY, "nxt": NOW - DAY}
            elif i == t and "crl_at_next_update" in pki:
                kw = {"this": NOW - 7 * DAY, "nxt": NOW}
            elif i == t and "crl_not_yet_valid" in pki:
                kw = {"this": NOW + DAY, "nxt": NOW + 8 * DAY}
            if i == t and "crl_wrong_key" in pki:
                kw["signer"] = key(case.kinds[i], 9)
            if ca is issuer and "crl_superseded_hold" in pki:
                # an older CRL, still within its nextUpdate, had the leaves on hold
                hold = [(c.serial_number, x509.ReasonFlags.certificate_hold) for c in leaves]
                crls.append(make_crl(ca, hold, this=NOW - 3 * DAY, nxt=NOW + 4 * DAY, number=1))
            crls.append(make_crl(ca, listed, **kw))  # type: ignore[arg-type]
    # clean leaves of the same issuer, so that the batch is large enough for the
    # vectorised date conversion (24 stamps or more)
    fillers = [
        issue(name(f"filler {j}"), key(leaf_kind, 5), issuer, usage=ku("digital_signature"))
        for j in range(12)
    ]
    return Built(root, cas[1:], untrusted, crls, leaves, fillers)


# --- the two tools -----------------------------------------------------------------------


@dataclass
class OpensslVerdict:
    ok: bool
    errors: list[tuple[int, int]]  # (X509_V_ERR code, depth)
    text: str

    @property
    def codes(self) -> set[int]:
        return {e for e, _ in self.errors}

    @property
    def categories(self) -> set[str]:
        return {OPENSSL[e] for e in self.codes if e in OPENSSL}


_ERR = re.compile(r"error (\d+) at (\d+) depth lookup")


def openssl_verify(b: Built, leaf: x509.Certificate, tmp: Path) -> OpensslVerdict:
    (tmp / "root.pem").write_bytes(pem(b.root.cert))
    (tmp / "leaf.pem").write_bytes(pem(leaf))
    args = ["openssl", "verify", "-attime", str(int(NOW.timestamp())), "-CAfile", "root.pem"]
    if b.untrusted:
        (tmp / "untrusted.pem").write_bytes(b"".join(pem(c) for c in b.untrusted))
        args += ["-untrusted", "untrusted.pem"]
    if b.crls:
        (tmp / "crls.pem").write_bytes(b"".join(pem(c) for c in b.crls))
        args += ["-CRLfile", "crls.pem", "-crl_check_all"]
    p = subprocess.run([*args, "leaf.pem"], cwd=tmp, capture_output=True, text=True, timeout=30)
    text = p.stdout + p.stderr
    errors = [(int(e), int(d)) for e, d in _ERR.findall(text)]
    ok = p.returncode == 0
    assert ok == (not errors), text  # every failure names its error
    return OpensslVerdict(ok, errors, text)


def builder(b: Built) -> ValidatorBuilder:
    # RFC 5280 path validation (section 6) is compared; the rules on what
    # issuers produce (AKI present, ...) are not OpenSSL's default and have
    # their own crafted tests (test_validation_rules.py)
    vb = ValidatorBuilder().trust([b.root.cert]).time(NOW).relax(*RULES)
    if b.untrusted:
        vb = vb.intermediates(b.untrusted)
    if b.crls:
        vb = vb.crls(b.crls)  # hard mode: every non-root certificate needs a CRL
    return vb


# --- the comparison ---------------------------------------------------------------------


def compare(
    case: Case, defects: frozenset[str], ours: ValidationResult, ossl: OpensslVerdict
) -> None:
    where = f"defects={sorted(defects)} kinds={case.kinds} crls={case.crls}\n"
    where += f"ours: {ours.status.name} {ours.reason}\nopenssl: {ossl.text}"
    real = defects - HARMLESS
    # every defect we generate is a reason to refuse, except the harmless ones
    assert ours.ok == (not real), where
    documented = set(defects & DOCUMENTED)
    same_name = "decoy" in defects or ("self_issued" in defects and case.n_inter == 0)
    if same_name and "no_aki" in defects:
        documented.add("decoy+no_aki")
    if not documented:
        assert ours.ok == ossl.ok, where
    elif ours.ok != ossl.ok:
        # OpenSSL refuses only for a documented reason
        allowed: set[int] = set()
        if "at_not_after" in documented:
            allowed.add(E_CERT_EXPIRED)
        if "crl_at_next_update" in documented:
            allowed.add(E_CRL_EXPIRED)
            if "crl_superseded_hold" in defects:
                # the newer CRL being "expired", OpenSSL falls back to the older
                # one, still current, which has the leaves on hold
                allowed.add(E_REVOKED)
        if "decoy+no_aki" in documented:
            allowed |= {E_SIGNATURE, E_CRL_SIGNATURE, E_NO_CRL}
        assert ours.ok, where  # never the other way round
        assert ossl.codes and ossl.codes <= allowed, where
    # the category, when the case has one defect (harmless ones aside) and both
    # name it; except for an expired old copy of a CA whose current copy has a
    # date defect too: no version of it is in its period, either may be named
    no_good_copy = (
        "ca_reissued_expired" in defects
        and case.target >= 1
        and bool(real & {"ca_expired", "ca_not_yet_valid"})
    )
    if len(real) == 1 and not no_good_copy:
        (only,) = real
        want = CATEGORY.get(only)
        if want is not None:
            assert OURS.get(ours.status) == want, where
            if not documented:
                assert want in ossl.categories, where
        if only in ("leaf_revoked", "ca_revoked"):
            assert ours.revocation is not None, where
            want_reason = "unspecified" if case.reason is None else case.reason.name
            assert ours.revocation.reason == want_reason, where


def run_case(case: Case, tmp: Path) -> None:
    b = build(case)
    vb = builder(b)
    batch = vb.build().validate_many([*b.leaves, *b.fillers])
    singles = [vb.build().validate(leaf) for leaf in b.leaves]
    # one batch, one by one: the same verdicts
    assert list(batch[: len(b.leaves)]) == singles
    # the filler leaves are clean: their verdict is the PKI's
    fill = vb.build().validate(b.fillers[0])
    assert {(r.status, r.reason) for r in batch[len(b.leaves) :]} == {(fill.status, fill.reason)}
    for leaf, defects, ours in zip(b.leaves, case.leaves, singles, strict=True):
        all_defects = case.pki | defects
        if not case.crls:
            all_defects -= NEEDS_CRLS
        if "decoy" in all_defects and "unknown_issuer" in all_defects:
            all_defects -= {"decoy"}
        compare(case, _effective(case, all_defects), ours, openssl_verify(b, leaf, tmp))


def _effective(case: Case, defects: frozenset[str]) -> frozenset[str]:
    """The defects that concern this leaf's path."""
    out = set(defects)
    if "unknown_issuer" in out:
        # the path is not built: CA-side defects do not reach this leaf
        return frozenset(out - set(PKI_DEFECTS))
    if "pathlen" in out and case.n_inter < 2:
        out.discard("pathlen")
    return frozenset(out)


@settings(
    # CPS_DIFFERENTIAL_EXAMPLES=3000 for a longer hunt
    max_examples=int(os.environ.get("CPS_DIFFERENTIAL_EXAMPLES", "600")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_matches_openssl(case: Case, tmp_path: Path) -> None:
    for d in sorted({*case.pki, *(x for ds in case.leaves for x in ds)}):
        event(d)
    run_case(case, tmp_path)


def test_key_types() -> None:
    """The pool gives both key types the brief asks for."""
    assert isinstance(key("rsa", 0), rsa.RSAPrivateKey)
    assert isinstance(key("p256", 0), ec.EllipticCurvePrivateKey)


# --- regressions found by the differential test ------------------------------------------


def test_dead_end_copy_does_not_hide_the_fault(tmp_path: Path) -> None:
    """An expired old copy of a re-issued CA (listed first) is a dead end: the
    verdict names the fault of the path through the current copy, as OpenSSL
    does (found by ``test_matches_openssl``: the reason named the dead end)."""
    case = Case(
        kinds=("rsa", "p256", "rsa"),
        n_inter=1,
        pki=frozenset({"ca_not_yet_valid", "ca_reissued_expired"}),
        target=0,  # the root is not yet valid
        leaves=(frozenset(),),
        reason=None,
        crls=False,
    )
    b = build(case)
    old, current = b.untrusted
    assert old.not_valid_after_utc < NOW < current.not_valid_after_utc
    vb = builder(b)
    r = vb.build().validate(b.leaves[0])
    assert r.status is Status.NOT_YET_VALID, r.reason
    assert "DIFF ROOT" in r.reason
    assert r.path == (current, b.root.cert)
    assert vb.build().validate_many(b.leaves)[0] == r
    assert openssl_verify(b, b.leaves[0], tmp_path).errors == [(9, 2)]
    run_case(case, tmp_path)
    # the current copy revoked, the old copy expired: the path through the copy
    # in its validity period is the one judged (REVOKED, not EXPIRED)
    case = replace(
        case,
        n_inter=2,
        kinds=("rsa",) * 4,
        pki=frozenset({"ca_revoked", "ca_reissued_expired"}),
        crls=True,
    )
    b = build(case)
    r = builder(b).build().validate(b.leaves[0])
    assert r.status is Status.REVOKED and "DIFF CA 1" in r.reason, r.reason
    assert r.path[1] == b.inters[0].cert
    assert (23, 2) in openssl_verify(b, b.leaves[0], tmp_path).errors
    run_case(case, tmp_path)


# --- documented differences, pinned -----------------------------------------------------


def _one_leaf_pki(n_inter: int) -> tuple[Case, Built]:
    case = Case(
        kinds=("rsa",) * (n_inter + 2),
        n_inter=n_inter,
        pki=frozenset(),
        target=0,
        leaves=(frozenset(),),
        reason=None,
        crls=False,
    )
    return case, build(case)


# --- name constraints (RFC 5280 4.2.1.10), against openssl -----------------------------

E_PERMITTED = 47  # X509_V_ERR_PERMITTED_VIOLATION
E_EXCLUDED = 48  # X509_V_ERR_EXCLUDED_VIOLATION


def _dn(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, v) for oid, v in pairs])


C, ORG, CN = NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME
# Subtree bases: directoryName prefixes (one in other case and spacing: RFC
# 5280 7.1 caseIgnoreMatch) and dNSName domains, hosts and "."-domains.
NC_BASES: list[x509.GeneralName] = [
    x509.DirectoryName(_dn((C, "FR"))),
    x509.DirectoryName(_dn((C, "DE"))),
    x509.DirectoryName(_dn((C, "FR"), (ORG, "DIFFERENTIAL"))),
    x509.DirectoryName(_dn((C, "fr"), (ORG, "  differential "))),
    x509.DirectoryName(_dn((C, "FR"), (ORG, "OTHER"))),
    x509.DirectoryName(_dn((C, "FR"), (ORG, "DIFFERENTIAL"), (CN, "leaf b"))),
    x509.DNSName("example.com"),
    x509.DNSName(".example.com"),
    x509.DNSName("host.example.com"),
    x509.DNSName("other.org"),
]
# Leaf subjects (the common names are not host names: OpenSSL would check a
# host-name-like CN against dNSName constraints, RFC 5280 does not) and SANs.
LEAF_SUBJECTS = [
    _dn((C, "FR"), (ORG, "DIFFERENTIAL"), (CN, "leaf a")),
    _dn((C, "FR"), (ORG, "DIFFERENTIAL"), (CN, "leaf b")),
    _dn((C, "FR"), (ORG, "OTHER"), (CN, "leaf c")),
    _dn((C, "DE"), (ORG, "DIFFERENTIAL"), (CN, "leaf d")),
]
LEAF_DNS = [
    "example.com",
    "host.example.com",
    "a.host.example.com",
    "badexample.com",
    "other.org",
    "x.other.org",
    "unrelated.net",
]


@dataclass(frozen=True)
class NcCase:
    # per constraining CA (root → CA 1 → [CA 2]): (permitted, excluded) or None
    constraints: tuple[tuple[tuple[int, ...], tuple[int, ...]] | None, ...]
    leaves: tuple[tuple[int, tuple[int, ...]], ...]  # (subject, SAN dNSNames)


@st.composite
def nc_cases(draw: st.DrawFn) -> NcCase:
    n_inter = draw(st.integers(1, 2))
    bases = st.lists(st.integers(0, len(NC_BASES) - 1), max_size=2, unique=True)
    cons = []
    for _ in range(n_inter):
        p, x = tuple(draw(bases)), tuple(draw(bases))
        cons.append((p, x) if (p or x) and draw(st.integers(0, 3)) else None)
    if all(c is None for c in cons):
        cons[-1] = ((draw(st.integers(0, len(NC_BASES) - 1)),), ())
    leaves = tuple(
        (
            draw(st.integers(0, len(LEAF_SUBJECTS) - 1)),
            tuple(draw(st.lists(st.integers(0, len(LEAF_DNS) - 1), max_size=2, unique=True))),
        )
        for _ in range(draw(st.integers(1, 3)))
    )
    return NcCase(tuple(cons), leaves)


def _nc_pki(case: NcCase) -> Built:
    root_key = key("rsa", 0)
    root = Ca(
        issue(name("DIFF ROOT"), root_key, None, ca=True, usage=ku("key_cert_sign", "crl_sign")),
        root_key,
    )
    cas = [root]
    for k, cons in enumerate(case.constraints, start=1):
        sub_key = key("p256", k)
        b = (
            x509.CertificateBuilder()
            .subject_name(name(f"DIFF CA {k}"))
            .issuer_name(cas[-1].cert.subject)
            .public_key(sub_key.public_key())  # type: ignore[arg-type]
            .serial_number(next(_serials))
            .not_valid_before(NOW - 30 * DAY)
            .not_valid_after(NOW + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ku("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(sub_key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    cas[-1].key.public_key()  # type: ignore[arg-type]
                ),
                False,
            )
        )
        if cons is not None:
            perm = [NC_BASES[i] for i in cons[0]] or None
            excl = [NC_BASES[i] for i in cons[1]] or None
            b = b.add_extension(x509.NameConstraints(perm, excl), critical=True)
        cas.append(Ca(b.sign(cas[-1].key, hashes.SHA256()), sub_key))  # type: ignore[arg-type]
    issuer = cas[-1]
    leaves = []
    for subj, dns in case.leaves:
        b = (
            x509.CertificateBuilder()
            .subject_name(LEAF_SUBJECTS[subj])
            .issuer_name(issuer.cert.subject)
            .public_key(key("rsa", 5).public_key())  # type: ignore[arg-type]
            .serial_number(next(_serials))
            .not_valid_before(NOW - 30 * DAY)
            .not_valid_after(NOW + 365 * DAY)
            .add_extension(ku("digital_signature"), critical=True)
        )
        if dns:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(LEAF_DNS[i]) for i in dns]), False
            )
        leaves.append(b.sign(issuer.key, hashes.SHA256()))  # type: ignore[arg-type]
    return Built(root, cas[1:], [c.cert for c in cas[1:]], [], leaves)


def run_nc_case(case: NcCase, tmp: Path) -> None:
    b = _nc_pki(case)
    vb = builder(b)
    batch = vb.build().validate_many(b.leaves)
    for leaf, r in zip(b.leaves, batch, strict=True):
        assert vb.build().validate(leaf) == r
        ossl = openssl_verify(b, leaf, tmp)
        where = f"{case}\nours: {r.status.name} {r.reason}\nopenssl: {ossl.text}"
        assert r.ok == ossl.ok, where
        if not r.ok:
            assert r.status is Status.NAME_CONSTRAINTS_VIOLATED, where
            assert ossl.codes <= {E_PERMITTED, E_EXCLUDED}, where
            # the reason names the subtree, as OpenSSL names the kind
            if ossl.codes == {E_EXCLUDED}:
                assert "excluded subtree" in r.reason, where
            elif ossl.codes == {E_PERMITTED}:
                assert "permitted subtrees" in r.reason, where


@settings(
    max_examples=int(os.environ.get("CPS_DIFFERENTIAL_EXAMPLES", "600")) // 4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=nc_cases())
def test_name_constraints_match_openssl(case: NcCase, tmp_path: Path) -> None:
    """directoryName and dNSName subtrees, permitted and excluded, on one or
    two constraining CAs (accumulated): the same verdict as openssl verify."""
    run_nc_case(case, tmp_path)


@pytest.mark.parametrize(
    ("constraints", "leaf", "ok"),
    [
        ((((2,), ()),), (0, (1,)), True),  # permitted O=DIFFERENTIAL
        ((((3,), ()),), (0, ()), True),  # the same, other case and spacing
        ((((2,), ()),), (2, ()), False),  # O=OTHER not permitted
        ((((), (5,)),), (1, ()), False),  # excluded ...CN=leaf b
        ((((), (5,)),), (0, ()), True),
        ((((6,), ()),), (0, (2,)), True),  # a.host.example.com under example.com
        ((((6,), ()),), (0, (3,)), False),  # badexample.com is not under example.com
        ((((7,), ()),), (0, (0,)), False),  # .example.com: subdomains only
        ((((), (8,)),), (0, (2,)), False),  # excluded host.example.com covers a.host...
        ((((6,), ()),), (0, ()), True),  # no dNSName: the constraint does not apply
        ((((0,), ()), ((6,), (8,))), (0, (1,)), False),  # accumulated: excluded below
        ((((0, 6), ()), ((9,), ())), (0, (0,)), False),  # accumulated: intersection empty
        ((((1,), ()), None), (3, ()), False),  # CA 2 (C=FR) outside CA 1's C=DE
    ],
)
def test_name_constraints_cases(
    constraints: tuple[tuple[tuple[int, ...], tuple[int, ...]] | None, ...],
    leaf: tuple[int, tuple[int, ...]],
    ok: bool,
    tmp_path: Path,
) -> None:
    """Pinned cases, each a verdict both tools give."""
    case = NcCase(constraints, (leaf,))
    b = _nc_pki(case)
    assert builder(b).build().validate(b.leaves[0]).ok is ok
    run_nc_case(case, tmp_path)


def test_documented_newest_crl_governs(tmp_path: Path) -> None:
    """The most recent complete CRL of a CA governs; when it is stale, the
    status is unknown (hard mode), even if an older CRL still claims to be
    current. RFC 5280 5.2.3: the CRL number tells which CRL supersedes
    another; 6.3.3 (a): a stale CRL in the cache means a current one must be
    obtained. OpenSSL takes any CRL within its own dates (the older one).
    """
    _, b = _one_leaf_pki(0)
    old = make_crl(b.root, [], this=NOW - 10 * DAY, nxt=NOW + 30 * DAY, number=1)
    newer_stale = make_crl(b.root, [], this=NOW - 5 * DAY, nxt=NOW - DAY, number=2)
    b.crls = [old, newer_stale]
    r = builder(b).build().validate(b.leaves[0])
    assert r.status is Status.REVOCATION_UNKNOWN and "expired" in r.reason
    assert openssl_verify(b, b.leaves[0], tmp_path).ok
    # with the older CRL alone both accept
    b.crls = [old]
    assert builder(b).build().validate(b.leaves[0]).ok
    assert openssl_verify(b, b.leaves[0], tmp_path).ok
