"""The batch path-validation engine behind :class:`~cps_middleware.validation.Validator`.

Issuer side, once per validator (and once per time window): the CA
certificates are parsed, linked into candidate paths to the trust anchors, their
signatures checked, the CRLs verified and indexed, and every CA path judged
at the validation time. Holder side, per certificate: one DER walk
(:mod:`._der`), one dictionary lookup for the issuer group, one signature
check; dates, usages and revocation are then decided for the whole batch over
numpy columns. Name constraints (:mod:`._names`) are checked once per CA path;
a holder certificate's names are read only when its path carries constraints.

The engine is deterministic and picklable through its :class:`Config`, so
worker processes rebuild the same engine and give the same verdicts.

Every verdict carries a time window ``[lo, hi)`` (epoch seconds) over which it
cannot change: every time comparison made for it (validity bounds, CRL
thisUpdate / nextUpdate, revocation dates) keeps its outcome inside it. The
validator's memo uses it to re-serve a verdict without re-checking.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from asn1crypto import algos as _aalgos
from asn1crypto import x509 as _ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from cps_middleware.validation import _der, _names
from cps_middleware.validation._der import (
    F_AKI,
    F_CA,
    F_CRITICAL,
    F_CRITMASK,
    F_CRLDP,
    F_EKU,
    F_ISSUER,
    F_KU,
    F_NA,
    F_NB,
    F_NC,
    F_PATHLEN,
    F_POLICIES,
    F_PRESENT,
    F_SAN,
    F_SERIAL,
    F_SIG,
    F_SIGALG,
    F_SKI,
    F_SPKI,
    F_SUBJECT,
    F_TBS,
    DerError,
)
from cps_middleware.validation.results import REASON_NAMES, Revocation, Status

__all__: list[str] = []  # private module

_MAX_PATHS = 64  # candidate paths kept per CA certificate
_LIMIT = "path building limit: too many CA signature checks"
_MAX_GROUPS = 65536  # (issuer name, key id) pairs remembered
_MAX_GOOD = 4096  # names and extension values known to be readable (a cache)
NEVER = np.iinfo(np.int64).min
FOREVER = np.iinfo(np.int64).max
_S = Status


@dataclass(frozen=True)
class Config:
    """Everything that determines verdicts; plain data, picklable."""

    anchors: tuple[bytes, ...]
    intermediates: tuple[bytes, ...] = ()
    time: int | None = None  # epoch seconds; None = the clock at each call
    crls: tuple[bytes, ...] = ()
    key_usage: int = 0  # keyUsage bits all required on the validated certificate
    eku: tuple[bytes, ...] | None = None  # raw OIDs, one of which is required
    policies: tuple[bytes, ...] | None = None  # raw OIDs acceptable (explicit policy)
    max_depth: int = 8  # most intermediate CAs between a certificate and its anchor
    revocation: str = "off"  # "off" | "soft" | "hard"
    profile: str = "card"  # "card" | "pkix": what an end-entity certificate may lack
    relaxed: frozenset[str] = frozenset()  # RULES not enforced
    # path building: candidate paths per CA certificate, CA signature checks in all
    budget: tuple[int, int] = (64, 256)
    # threads of the native batch signature check (0: cryptography, one by one)
    threads: int = 1


# RFC 5280 rules on what certificate and CRL issuers produce, enforced unless
# relaxed by name (ValidatorBuilder.relax). name -> RFC 5280 section.
RULES: dict[str, str] = {
    "serial_not_positive": "4.1.2.2",
    "aki_missing": "4.2.1.1",
    "aki_critical": "4.2.1.1",
    "ski_missing": "4.2.1.2",
    "ski_critical": "4.2.1.2",
    "ca_empty_subject": "4.1.2.6",
    "basic_constraints_not_critical": "4.2.1.9",
    "key_cert_sign_without_ca": "4.2.1.3",
    "eku_empty": "4.2.1.12",
    "name_constraints_not_critical": "4.2.1.10",
    "empty_subject_without_critical_san": "4.2.1.6",
    "crl_number_missing": "5.2.3",
    "crl_number_critical": "5.2.3",
}
# What the "pkix" profile asks of an end-entity certificate and the "card"
# profile (IGC-Santé card certificates) does not.
PROFILE_RULES: dict[str, str] = {
    "san_missing": "an end-entity certificate without subjectAltName",
    "non_repudiation_only": "a keyUsage with nonRepudiation and without digitalSignature",
}
PROFILES = ("card", "pkix")


def rule_violation(f: tuple[Any, ...], relaxed: frozenset[str]) -> tuple[str, str] | None:
    """The first RFC 5280 issuer rule the certificate breaks: (rule, reason), or None."""
    ca = f[F_CA]
    present = f[F_PRESENT]
    crit = f[F_CRITMASK]
    subject_empty = f[F_SUBJECT] == b"\x30\x00"
    found: list[tuple[str, str]] = []
    if f[F_SERIAL] <= 0:
        found.append(("serial_not_positive", f"its serial number {f[F_SERIAL]} is not positive"))
    if f[F_AKI] is None and f[F_SUBJECT] != f[F_ISSUER]:
        found.append(("aki_missing", "it has no authorityKeyIdentifier key identifier"))
    if crit & _der.X_AKI:
        found.append(("aki_critical", "its authorityKeyIdentifier is marked critical"))
    if crit & _der.X_SKI:
        found.append(("ski_critical", "its subjectKeyIdentifier is marked critical"))
    if ca and not present & _der.X_SKI:
        found.append(("ski_missing", "a CA certificate without subjectKeyIdentifier"))
    if ca and subject_empty:
        found.append(("ca_empty_subject", "a CA certificate with an empty subject"))
    if ca and not crit & _der.X_BC:
        found.append(
            (
                "basic_constraints_not_critical",
                "a CA certificate whose basicConstraints is not critical",
            )
        )
    if not ca and f[F_KU] != -1 and f[F_KU] & _der.KU_KEY_CERT_SIGN:
        found.append(
            ("key_cert_sign_without_ca", "keyCertSign asserted without basicConstraints cA")
        )
    if f[F_EKU] is not None and not f[F_EKU]:
        found.append(("eku_empty", "an empty extendedKeyUsage"))
    if present & _der.X_NC and not crit & _der.X_NC:
        found.append(("name_constraints_not_critical", "nameConstraints not marked critical"))
    if subject_empty and not crit & _der.X_SAN:
        found.append(
            (
                "empty_subject_without_critical_san",
                "an empty subject without a critical subjectAltName",
            )
        )
    for rule, why in found:
        if rule not in relaxed:
            return rule, f"{why} (RFC 5280 {RULES[rule]}; relax with '{rule}')"
    return None


def profile_violation(f: tuple[Any, ...], profile: str) -> tuple[str, str] | None:
    """What the end-entity profile refuses: (code, reason), or None."""
    if profile == "card":
        return None
    if not f[F_PRESENT] & _der.X_SAN:
        return "san_missing", f"{PROFILE_RULES['san_missing']} (the card profile accepts it)"
    ku = f[F_KU]
    if ku != -1 and ku & 2 and not ku & 1:
        return (
            "non_repudiation_only",
            f"{PROFILE_RULES['non_repudiation_only']} (the card profile accepts it)",
        )
    return None


# --- signature algorithms ---------------------------------------------------------

_RSA_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "2a864886f70d01010b": hashes.SHA256,
    "2a864886f70d01010c": hashes.SHA384,
    "2a864886f70d01010d": hashes.SHA512,
    "2a864886f70d01010e": hashes.SHA224,
}
_ECDSA_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "2a8648ce3d040302": hashes.SHA256,
    "2a8648ce3d040303": hashes.SHA384,
    "2a8648ce3d040304": hashes.SHA512,
    "2a8648ce3d040301": hashes.SHA224,
}
_PSS = "2a864886f70d01010a"
_ED25519 = "2b6570"
_ED448 = "2b6571"
_SHA1_RSA = "2a864886f70d010105"
_PSS_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

Verify = Callable[[bytes, bytes], bool]

# hash names of the native verifier's schemes (cps_middleware._verify.Key)
_RSA_HASH_ID = {
    "2a864886f70d01010b": "sha256",
    "2a864886f70d01010c": "sha384",
    "2a864886f70d01010d": "sha512",
}
_ECDSA_HASH_ID = {
    "2a8648ce3d040302": "sha256",
    "2a8648ce3d040303": "sha384",
    "2a8648ce3d040304": "sha512",
}
_NATIVE_MIN = 16  # fewer signatures than this in a batch: cryptography, one by one
_PIPELINE_PART = 512  # signatures per part started on native threads (bigger: fewer joins)

try:
    from cps_middleware import _verify as _native
except ImportError:  # not built (a source checkout without build_ext): cryptography only
    _native = None  # type: ignore[assignment]


def _sigalg_oid(sigalg: bytes) -> tuple[str, bytes]:
    tag, s, e = _der._tlv(sigalg, 0, len(sigalg))
    tag, os_, oe = _der._tlv(sigalg, s, e)
    if tag != 0x06:
        raise DerError("bad AlgorithmIdentifier")
    return sigalg[os_:oe].hex(), sigalg[oe:e]


def make_verifier(key: Any, sigalg: bytes) -> Verify | str:
    """A ``verify(signature, data) -> bool`` for this key and algorithm, or why not."""
    try:
        oid, params = _sigalg_oid(sigalg)
    except (DerError, IndexError):
        return "unreadable signature algorithm"
    if oid in _RSA_HASH:
        if params not in (b"", b"\x05\x00"):
            return "bad RSA signature algorithm parameters"
        if not isinstance(key, rsa.RSAPublicKey):
            return "the issuer key is not an RSA key"
        return _rsa_verifier(key, padding.PKCS1v15(), _RSA_HASH[oid]())
    if oid in _ECDSA_HASH:
        if params:
            return "bad ECDSA signature algorithm parameters"
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return "the issuer key is not an EC key"
        return _ec_verifier(key, ec.ECDSA(_ECDSA_HASH[oid]()))
    if oid == _PSS:
        if not isinstance(key, rsa.RSAPublicKey):
            return "the issuer key is not an RSA key"
        try:
            p = _aalgos.SignedDigestAlgorithm.load(sigalg)["parameters"]
            hname = p["hash_algorithm"]["algorithm"].native
            mgf = p["mask_gen_algorithm"]
            mgf_hash = mgf["parameters"]["algorithm"].native
            salt = int(p["salt_length"].native)
            if (
                hname not in _PSS_HASH
                or mgf["algorithm"].native != "mgf1"
                or mgf_hash != hname
                or int(p["trailer_field"].native == "trailer_field_bc") != 1
            ):
                return "unsupported RSASSA-PSS parameters"
        except (ValueError, TypeError, KeyError):
            return "bad RSASSA-PSS parameters"
        h = _PSS_HASH[hname]
        return _rsa_verifier(key, padding.PSS(padding.MGF1(h()), salt), h())
    if oid in (_ED25519, _ED448):
        if params or not isinstance(
            key, ed25519.Ed25519PublicKey if oid == _ED25519 else ed448.Ed448PublicKey
        ):
            return "bad EdDSA key or parameters"
        return _ed_verifier(key)
    if oid == _SHA1_RSA:
        return "SHA-1 signatures are refused"
    return f"unsupported signature algorithm {_der.oid_text(bytes.fromhex(oid))}"


def _rsa_verifier(key: rsa.RSAPublicKey, pad: Any, h: hashes.HashAlgorithm) -> Verify:
    kv = key.verify

    def verify(sig: bytes, data: bytes) -> bool:
        try:
            kv(sig, data, pad, h)
        except Exception:  # InvalidSignature, or a signature of the wrong size
            return False
        return True

    return verify


def _ec_verifier(key: ec.EllipticCurvePublicKey, alg: ec.ECDSA) -> Verify:
    kv = key.verify

    def verify(sig: bytes, data: bytes) -> bool:
        try:
            kv(sig, data, alg)
        except Exception:
            return False
        return True

    return verify


def _ed_verifier(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> Verify:
    kv = key.verify

    def verify(sig: bytes, data: bytes) -> bool:
        try:
            kv(sig, data)
        except Exception:
            return False
        return True

    return verify


# --- time helpers -------------------------------------------------------------------


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def stamp_text(stamp: bytes | int) -> str:
    if isinstance(stamp, bytes):
        stamp = _der.time_to_epoch(stamp)
    try:
        return _dt_of(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError):
        return f"{stamp} s after 1970"


def _dt_of(epoch: int) -> _dt.datetime:
    # not fromtimestamp: it refuses years before 1 on some platforms and
    # dates before 1970 on others
    return _EPOCH + _dt.timedelta(seconds=epoch)


class _Window:
    """Collects breakpoints b (each a comparison ``t >= b``) → the stable window."""

    __slots__ = ("hi", "lo", "t")

    def __init__(self, t: int) -> None:
        self.t = t
        self.lo = int(NEVER)
        self.hi = int(FOREVER)

    def bp(self, b: int) -> None:
        if b <= self.t:
            if b > self.lo:
                self.lo = b
        elif b < self.hi:
            self.hi = b

    def merge(self, lo: int, hi: int) -> None:
        self.lo = max(self.lo, lo)
        self.hi = min(self.hi, hi)


# --- CA certificates and CRLs ------------------------------------------------------


@dataclass
class _Ca:
    id: int
    der: bytes
    cert: x509.Certificate
    facts: tuple[Any, ...]
    anchor: bool
    nb: int
    na: int
    key: Any
    label: str
    crl_key: tuple[bytes, bytes]  # (subject, spki): CRLs are matched on name + key
    self_issued: bool
    # nameConstraints: None if absent, a str saying why it cannot be processed
    nc: _names.Constraints | str | None = None
    rule: tuple[str, str] | None = None  # the first issuer rule it breaks


@dataclass
class _Crl:
    label: str
    this_update: int
    next_update: int | None
    number: int
    delta_base: int | None  # set for a delta CRL
    scope: str  # "all" | "ee" | "ca"
    entries: _Entries
    partition: bytes = b""  # the issuingDistributionPoint (DER), b"" if none
    dps: frozenset[bytes] | None = None  # its distributionPoint names (None: any)
    reasons: int = 0  # the reasons it covers (bits of _REASON_BITS)


# serial number -> (revocation time, reason code or -1, invalidity time or None)
_Entries = dict[int, tuple[int, int, int | None]]


@dataclass
class _CrlState:
    entries: _Entries | None  # None: no usable CRL at this time
    stale: bool
    label: str
    next_update: int | None
    lo: int
    hi: int
    partial: bool = False  # the CRLs in force do not cover every reason
    note: str | None = None  # why no CRL is there (a result code), if known


# ReasonFlags bit numbers (RFC 5280 5.2.5 onlySomeReasons)
_REASON_BITS = {
    "key_compromise": 1,
    "ca_compromise": 2,
    "affiliation_changed": 3,
    "superseded": 4,
    "cessation_of_operation": 5,
    "certificate_hold": 6,
    "privilege_withdrawn": 7,
    "aa_compromise": 8,
}
_ALL_REASONS = 0b111111110
_NOTES = {
    "crl_indirect": "an indirect CRL, not supported",
    "crl_number_missing": "no CRLNumber, RFC 5280 5.2.3",
    "crl_number_critical": "CRLNumber marked critical, RFC 5280 5.2.3",
}


@dataclass
class _PathVerdict:
    status: Status
    reason: str
    revocation: Revocation | None
    lo: int
    hi: int
    policies: frozenset[bytes] | None  # authority-constrained set; None = any
    failures: int = 0  # how many checks failed on this path
    out_of_date: bool = False  # a CA of the path is outside its validity period
    # name constraints of the path's CAs, which the certificates below must meet
    nc: tuple[_names.Constraints, ...] = ()
    code: str = ""  # the result code (a rule name for NONCONFORMING)


@dataclass
class _Group:
    """Leaves with the same issuer name and authority key id."""

    label: str  # issuer, for reasons
    problem: str | None  # UNKNOWN_ISSUER reason, when no candidate
    # (key, CA label, pc id, SubjectPublicKeyInfo DER)
    keys: list[tuple[Any, str, int, bytes]] = field(default_factory=list)
    # signature algorithm -> the native verifier's key for the first key, None: Python
    native: dict[bytes, Any] = field(default_factory=dict)
    verifiers: dict[bytes, list[tuple[Verify | str, int, str]]] = field(default_factory=dict)
    limited: bool = False  # more same-name candidate keys than the budget: some untried


def _cn(cert: x509.Certificate) -> str:
    try:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if cns:
            return str(cns[0].value)
        return cert.subject.rfc4514_string()
    except ValueError:
        return "?"


_SHORT = {
    "common_name": "CN",
    "organizational_unit_name": "OU",
    "organization_name": "O",
    "country_name": "C",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "surname": "SN",
    "given_name": "GN",
    "serial_number": "serialNumber",
    "title": "title",
}


def _name_text(name_der: bytes) -> str:
    """``CN=..., OU=..., C=..`` (most specific first) for reasons shown to people."""
    try:
        rdns = []
        for rdn in _ax509.Name.load(name_der).chosen:
            rdns.append(
                "+".join(
                    f"{_SHORT.get(atv['type'].native, atv['type'].native)}={atv['value'].native}"
                    for atv in rdn
                )
            )
        return ", ".join(reversed(rdns))
    except (ValueError, TypeError, KeyError):
        return name_der.hex()


def _name_key(name_der: bytes) -> str | None:
    """RFC 5280 7.1 comparison key (case folding, whitespace), for names not byte-equal."""
    try:
        return str(_ax509.Name.load(name_der).hashable)
    except (ValueError, TypeError):
        return None


class Engine:
    """Validator state built from a :class:`Config` (see module docstring)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cas: list[_Ca] = []
        self.problems: list[str] = []  # CA / CRL inputs that were set aside, and why
        seen: set[bytes] = set()
        for anchor, ders in ((True, config.anchors), (False, config.intermediates)):
            for der in ders:
                if der in seen:
                    continue
                seen.add(der)
                self._add_ca(der, anchor)
        self.by_subject: dict[bytes, list[int]] = {}
        self.by_name_key: dict[str, list[int]] = {}
        self._name_cap = 4 * max((len(ca.facts[F_SUBJECT]) for ca in self.cas), default=0) + 64
        self._good: dict[bytes, None] = {}  # names / extensions known to be readable
        for ca in self.cas:
            self.by_subject.setdefault(ca.facts[F_SUBJECT], []).append(ca.id)
            k = _name_key(ca.facts[F_SUBJECT])
            if k is not None:
                self.by_name_key.setdefault(k, []).append(ca.id)
        self._sig_ok: dict[tuple[int, int], bool | str] = {}
        self._sig_budget = config.budget[1]  # CA signature checks left
        self._parents: dict[tuple[bytes, bytes | None], list[int]] = {}
        self._limited: set[int] = set()  # CAs whose path search hit the budget
        self.paths: list[tuple[int, ...]] = []  # path id -> CA ids, issuer first, anchor last
        self._paths_of: dict[int, list[int]] = {}
        for ca in self.cas:
            self._paths_of[ca.id] = self._build_paths(ca.id)
        self.crls: dict[tuple[bytes, bytes], list[_Crl]] = {}
        self.crl_notes: dict[bytes, str] = {}  # issuer name -> why its CRL was set aside
        self._partitioned: set[tuple[bytes, bytes]] = set()  # issuers with IDP-scoped CRLs
        self._dp_cache: dict[bytes, frozenset[bytes]] = {}
        for der in config.crls:
            self._add_crl(der)
        self.groups: dict[tuple[bytes, bytes | None], _Group] = {}
        self._native_keys: dict[tuple[bytes, str], Any] = {}  # (SPKI, scheme) -> _verify.Key
        self.pcs: list[tuple[tuple[bytes, bytes], tuple[int, ...]]] = []  # (crl key, path ids)
        self._pc_limited: list[bool] = []  # its CAs' path search hit the budget
        self._pc_of: dict[tuple[int, ...], int] = {}
        self._at: int | None = None
        self._win = (0, -1)
        self._path_verdicts: list[_PathVerdict] = []
        self._pc_best: list[tuple[int, _PathVerdict]] = []
        self._crl_states: dict[Any, _CrlState] = {}
        # candidate id -> its valid paths and their name constraints (per prepare)
        self._nc_cands: dict[int, list[tuple[int, tuple[_names.Constraints, ...]]]] = {}

    # -- building ------------------------------------------------------------------

    def _add_ca(self, der: bytes, anchor: bool) -> None:
        try:
            facts = _der.parse_certificate(der)
            _der.check_certificate(der, facts, {})
            cert = x509.load_der_x509_certificate(der)
            key = cert.public_key()
            cert.extensions  # noqa: B018 (every extension of a CA must parse)
            nb, na = (int(x) for x in _der.times_to_epoch([facts[F_NB], facts[F_NA]]))
        except Exception as exc:  # DerError, ValueError, UnsupportedAlgorithm ...
            self.problems.append(f"CA certificate set aside: {exc}")
            return
        label = _cn(cert)
        nc: _names.Constraints | str | None = None
        if facts[F_NC] is not None:
            try:
                nc = _names.parse_constraints(facts[F_NC], label)
            except DerError as exc:
                nc = f"CA '{label}' has name constraints that cannot be processed: {exc}"
        self.cas.append(
            _Ca(
                id=len(self.cas),
                der=der,
                cert=cert,
                facts=facts,
                anchor=anchor,
                nb=nb,
                na=na,
                key=key,
                label=label,
                crl_key=(facts[F_SUBJECT], facts[F_SPKI]),
                self_issued=facts[F_SUBJECT] == facts[F_ISSUER],
                nc=nc,
                rule=rule_violation(facts, self.config.relaxed),
            )
        )

    def _issuers_of(self, issuer: bytes, aki: bytes | None) -> list[int]:
        """Candidate issuer CA ids: same name (bytes, else RFC 5280 comparison), same key id."""
        cands = self.by_subject.get(issuer)
        if cands is None:
            # the RFC 5280 comparison costs microseconds per byte: a name much
            # longer than any CA's cannot match (whitespace folding shortens)
            if len(issuer) > self._name_cap:
                return []
            k = _name_key(issuer)
            cands = self.by_name_key.get(k, []) if k is not None else []
        if aki is not None:
            cands = [c for c in cands if self.cas[c].facts[F_SKI] in (None, aki)]
        return cands

    def _link_ok(self, child: int, parent: int) -> bool | str:
        """Signature of CA ``child`` under CA ``parent``'s key: True, or why not."""
        r = self._sig_ok.get((child, parent))
        if r is None:
            if self._sig_budget <= 0:
                return _LIMIT
            self._sig_budget -= 1
            f = self.cas[child].facts
            v = make_verifier(self.cas[parent].key, f[F_SIGALG])
            if isinstance(v, str):
                r = v
            else:
                r = v(f[F_SIG], f[F_TBS]) or "its signature does not verify"
            self._sig_ok[(child, parent)] = r
        return r

    def _build_paths(self, start: int) -> list[int]:
        """Loop-free paths from CA ``start`` up to an anchor, shortest first.

        Bounded: at most ``_MAX_PATHS`` paths, and ``budget[0] * 8`` candidate
        steps explored (same-name CA meshes would otherwise be exponential);
        a CA whose exploration hit the bound is remembered (PATH_BUILDING_LIMIT
        when no path was found)."""
        found: list[tuple[int, ...]] = []
        cap = self.config.max_depth + 2  # one more than allowed, to report PATH_TOO_LONG
        steps = self.config.budget[0] * 8
        limited = False

        def walk(path: tuple[int, ...]) -> None:
            nonlocal steps, limited
            ca = self.cas[path[-1]]
            if ca.anchor:
                found.append(path)
                return
            if len(path) >= cap or len(found) >= _MAX_PATHS:  # cross-certificate meshes
                return
            key = (ca.facts[F_ISSUER], ca.facts[F_AKI])
            parents = self._parents.get(key)
            if parents is None:
                parents = self._parents[key] = self._issuers_of(*key)
            for parent in parents:
                if parent in path:
                    continue
                if steps <= 0:
                    limited = True
                    return
                steps -= 1
                walk((*path, parent))

        walk((start,))
        if limited and not found:
            self._limited.add(start)
        found.sort(key=len)
        ids = []
        for p in found:
            ids.append(len(self.paths))
            self.paths.append(p)
        return ids

    def _add_crl(self, der: bytes) -> None:
        try:
            self._add_crl_checked(der)
        except Exception as exc:
            self.problems.append(f"CRL set aside: unreadable ({exc})")

    def _add_crl_checked(self, der: bytes) -> None:
        crl = x509.load_der_x509_crl(der)
        issuer = crl.issuer.public_bytes()
        raw, bad_entry_ext = _der.parse_crl_entries(der)
        # every date of the list converted at once
        dates = _der.times_to_epoch([e[0] for e in raw.values()]).tolist()
        inv_stamps = [e[2] for e in raw.values() if e[2] is not None]
        inv = iter(_der.times_to_epoch(inv_stamps).tolist())
        entries: _Entries = {
            serial: (d, e[1], next(inv) if e[2] is not None else None)
            for (serial, e), d in zip(raw.items(), dates, strict=True)
        }
        label = f"CRL of {_name_text(issuer)} (thisUpdate {crl.last_update_utc:%Y-%m-%d})"

        def aside(why: str, note: str | None = None) -> None:
            self.problems.append(f"{label} set aside: {why}")
            if note is not None:
                self.crl_notes[issuer] = note

        if bad_entry_ext is not None:
            # certificateIssuer (indirect CRLs) or another critical entry extension
            return aside(
                f"unhandled critical entry extension {_der.oid_text(bad_entry_ext)} "
                "(indirect CRLs are not supported)",
                "crl_indirect",
            )
        relaxed = self.config.relaxed
        scope = "all"
        number: int | None = None
        number_critical = False
        delta_base = None
        partition = b""
        dps: frozenset[bytes] | None = None
        reasons = _ALL_REASONS
        for ext in crl.extensions:
            oid = ext.oid
            if oid == ExtensionOID.CRL_NUMBER:
                number = ext.value.crl_number
                number_critical = ext.critical
            elif oid == ExtensionOID.DELTA_CRL_INDICATOR:
                delta_base = ext.value.crl_number
            elif oid == ExtensionOID.ISSUING_DISTRIBUTION_POINT:
                idp = ext.value
                if idp.indirect_crl:
                    return aside("an indirect CRL (not supported)", "crl_indirect")
                if idp.only_contains_attribute_certs:
                    return aside("it covers attribute certificates only")
                if idp.only_contains_user_certs:
                    scope = "ee"
                elif idp.only_contains_ca_certs:
                    scope = "ca"
                if idp.only_some_reasons:
                    reasons = 0
                    for flag in idp.only_some_reasons:
                        reasons |= 1 << _REASON_BITS.get(flag.name, 0)
                    reasons &= _ALL_REASONS
                partition = ext.value.public_bytes()
                dps = _der.idp_names(partition)
            elif oid in (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.FRESHEST_CRL):
                pass
            elif ext.critical:
                return aside(f"unhandled critical extension {oid.dotted_string}")
        if number is None and "crl_number_missing" not in relaxed:
            return aside(
                "no CRLNumber (RFC 5280 5.2.3; relax with 'crl_number_missing')",
                "crl_number_missing",
            )
        if number_critical and "crl_number_critical" not in relaxed:
            return aside(
                "CRLNumber marked critical (RFC 5280 5.2.3; relax with 'crl_number_critical')",
                "crl_number_critical",
            )
        # The CRL must be signed by a CA of that name allowed to sign CRLs; it
        # then covers the certificates that CA (name + key) issued.
        signers = []
        for cid in self._issuers_of(issuer, None):
            ca = self.cas[cid]
            if ca.facts[F_KU] != -1 and not ca.facts[F_KU] & _der.KU_CRL_SIGN:
                continue
            try:
                if crl.is_signature_valid(ca.key):
                    signers.append(ca.crl_key)
            except (TypeError, ValueError):
                continue
        if not signers:
            return aside("no known CA of that name signed it")
        this_update = int(crl.last_update_utc.timestamp())
        nu = crl.next_update_utc
        item = _Crl(
            label=label,
            this_update=this_update,
            next_update=int(nu.timestamp()) if nu is not None else None,
            number=number or 0,
            delta_base=delta_base,
            scope=scope,
            entries=entries,
            partition=partition,
            dps=dps,
            reasons=reasons,
        )
        for k in dict.fromkeys(signers):
            self.crls.setdefault(k, []).append(item)
            if dps is not None:
                self._partitioned.add(k)

    # -- time-dependent issuer side ---------------------------------------------------

    def prepare(self, t: int) -> None:
        """Judge every CA path at time ``t`` (kept while ``t`` stays in the window)."""
        if self._at is not None and self._win[0] <= t < self._win[1]:
            self._at = t
            # CRL states first used by holder certificates have their own windows
            self._crl_states = {k: s for k, s in self._crl_states.items() if s.lo <= t < s.hi}
            return
        self._at = t
        self._crl_states = {}
        self._nc_cands = {}
        lo, hi = int(NEVER), int(FOREVER)
        self._path_verdicts = []
        for path in self.paths:
            v = self._judge_path(path, t)
            self._path_verdicts.append(v)
            lo, hi = max(lo, v.lo), min(hi, v.hi)
        self._pc_best = [self._best(pc) for pc in range(len(self.pcs))]
        for st in self._crl_states.values():
            lo, hi = max(lo, st.lo), min(hi, st.hi)
        self._win = (lo, hi)

    def dps_of(self, key: tuple[bytes, bytes], f: tuple[Any, ...]) -> frozenset[bytes] | None:
        """The certificate's CRL distribution point names, when its issuer has
        partitioned CRLs (else None: they do not matter)."""
        if key not in self._partitioned:
            return None
        raw = f[F_CRLDP]
        if raw is None:
            return frozenset()
        got = self._dp_cache.get(raw)
        if got is None:
            try:
                got = _der.crl_dp_names(raw)
            except DerError:
                got = frozenset()
            if len(self._dp_cache) >= _MAX_GOOD:
                self._dp_cache.clear()
            self._dp_cache[raw] = got
        return got

    def crl_state(
        self,
        key: tuple[bytes, bytes],
        for_ca: bool,
        t: int,
        dps: frozenset[bytes] | None = None,
    ) -> _CrlState:
        """The revocation information for certificates of one issuer (CA name + key),
        CA or end-entity, with these CRL distribution points (RFC 5280 6.3.3):
        per CRL scope (issuingDistributionPoint) the newest complete CRL in
        force and its newest delta; the certificate is covered when these
        together cover every reason."""
        ck = (key, for_ca, dps)
        st = self._crl_states.get(ck)
        if st is not None:
            return st
        w = _Window(t)
        scope_ok = ("all", "ca") if for_ca else ("all", "ee")
        crls = self.crls.get(key, [])
        for c in crls:
            w.bp(c.this_update)
            if c.next_update is not None:
                w.bp(c.next_update + 1)

        def applies(c: _Crl) -> bool:
            # 6.3.3 (b)(2)(i): a distributionPoint in the IDP must name one of
            # the certificate's distribution points
            if c.scope not in scope_ok or c.this_update > t:
                return False
            return c.dps is None or (dps is not None and bool(c.dps & dps))

        best: dict[bytes, _Crl] = {}  # newest complete CRL per scope
        for c in crls:
            if c.delta_base is None and applies(c):
                cur = best.get(c.partition)
                if cur is None or (c.number, c.this_update) > (cur.number, cur.this_update):
                    best[c.partition] = c
        note = self.crl_notes.get(key[0])
        if not best:
            st = _CrlState(None, False, "", None, w.lo, w.hi, note=note)
        else:
            entries: _Entries = {}
            covered = 0
            stale_of: _Crl | None = None
            for part, full in best.items():
                part_entries = full.entries
                delta: _Crl | None = None
                for c in crls:
                    if (
                        c.delta_base is not None
                        and c.partition == part
                        and applies(c)
                        and c.delta_base <= full.number < c.number
                        and (c.next_update is None or t <= c.next_update)
                        and (delta is None or c.number > delta.number)
                    ):
                        delta = c
                if delta is not None:
                    part_entries = dict(part_entries)
                    for serial, e in delta.entries.items():
                        if e[1] == 8:  # removeFromCRL
                            part_entries.pop(serial, None)
                        else:
                            part_entries[serial] = e
                for serial, e in part_entries.items():
                    entries.setdefault(serial, e)
                covered |= full.reasons
                if full.next_update is not None and t > full.next_update and stale_of is None:
                    stale_of = full
            first = next(iter(best.values()))
            shown = stale_of or first
            st = _CrlState(
                entries,
                stale_of is not None,
                shown.label,
                shown.next_update,
                w.lo,
                w.hi,
                partial=covered != _ALL_REASONS,
            )
        if len(self._crl_states) >= _MAX_GOOD:  # a cache: bounded against odd CRLDP floods
            self._crl_states.clear()
        self._crl_states[ck] = st
        return st

    def revocation_check(
        self, st: _CrlState, serial: int, who: str, w: _Window | None
    ) -> tuple[Any, ...] | None:
        """None when the certificate passes; else (status, reason, revocation[, code])."""
        mode = self.config.revocation
        if st.entries is None:
            if mode == "hard":
                if st.note is not None:
                    return (
                        _S.REVOCATION_UNKNOWN,
                        f"no CRL available to check {who}: a CRL of its issuer was set aside "
                        f"({_NOTES.get(st.note, st.note)})",
                        None,
                        st.note,
                    )
                return (
                    _S.REVOCATION_UNKNOWN,
                    f"no CRL available to check {who}",
                    None,
                    "crl_missing",
                )
            return None
        e = st.entries.get(serial)
        if e is not None:
            rd = e[0]
            t = self._at if w is None else w.t
            assert t is not None
            if w is not None:
                w.bp(rd)
            if rd <= t:
                reason = REASON_NAMES.get(e[1], "unspecified")
                inv = _dt_of(e[2]) if e[2] is not None else None
                rev = Revocation(reason, _dt_of(rd), inv)
                return _S.REVOKED, f"{who} was revoked on {stamp_text(rd)} ({reason})", rev
        if st.stale and mode == "hard":
            assert st.next_update is not None
            return (
                _S.REVOCATION_UNKNOWN,
                f"the {st.label} expired on {stamp_text(st.next_update)}; {who} cannot be checked",
                None,
                "crl_expired",
            )
        if st.partial and mode == "hard":
            return (
                _S.REVOCATION_UNKNOWN,
                f"the CRLs in force cover only some revocation reasons; {who} cannot be checked",
                None,
                "crl_partial_reasons",
            )
        return None

    def _judge_path(self, path: tuple[int, ...], t: int) -> _PathVerdict:
        """All RFC 5280 checks on the CA part of a path; the first failure wins."""
        cfg = self.config
        w = _Window(t)
        fails: list[tuple[Any, ...]] = []  # (rank, status, reason, revocation[, code])
        cas = [self.cas[i] for i in path]
        n_inter = len(path) - 1
        if n_inter > cfg.max_depth:
            fails.append(
                (
                    0,
                    _S.PATH_TOO_LONG,
                    f"{n_inter} intermediate CAs (at most {cfg.max_depth} allowed)",
                    None,
                )
            )
        below = 0  # non-self-issued intermediates below the current element
        for k, ca in enumerate(cas):
            f = ca.facts
            rank = 10 * (len(cas) - k)  # higher elements fail first
            who = f"CA '{ca.label}'"
            w.bp(ca.nb)
            w.bp(ca.na + 1)
            if t < ca.nb:
                fails.append(
                    (
                        rank + 5,
                        _S.NOT_YET_VALID,
                        f"{who} is not valid before {stamp_text(ca.nb)}",
                        None,
                    )
                )
            elif t > ca.na:
                fails.append((rank + 5, _S.EXPIRED, f"{who} expired on {stamp_text(ca.na)}", None))
            if f[F_PATHLEN] >= 0 and below > f[F_PATHLEN]:
                fails.append(
                    (
                        rank + 4,
                        _S.PATH_TOO_LONG,
                        f"{who} allows {f[F_PATHLEN]} intermediate CA(s) below it, "
                        f"the path has {below}",
                        None,
                    )
                )
            # the trust anchor is processed like every CA of the path (its
            # critical extensions, basicConstraints, keyUsage, the issuer
            # rules), only its signature and revocation are not checked
            if f[F_CRITICAL] is not None:
                fails.append(
                    (
                        rank + 8,
                        _S.UNHANDLED_CRITICAL_EXTENSION,
                        f"{who} has an unhandled critical extension {_der.oid_text(f[F_CRITICAL])}",
                        None,
                    )
                )
            if not f[F_CA]:
                fails.append(
                    (
                        rank + 7,
                        _S.CA_CONSTRAINT_VIOLATED,
                        f"{who} is not a CA (basicConstraints cA is not set)",
                        None,
                    )
                )
            if f[F_KU] != -1 and not f[F_KU] & _der.KU_KEY_CERT_SIGN:
                fails.append(
                    (
                        rank + 6,
                        _S.KEY_USAGE_NOT_ALLOWED,
                        f"{who} may not sign certificates (no keyCertSign)",
                        None,
                    )
                )
            rv = ca.rule
            if rv is not None:
                fails.append((rank + 1, _S.NONCONFORMING, f"{who}: {rv[1]}", None, rv[0]))
            if not ca.anchor:
                parent = cas[k + 1]
                ok = self._link_ok(ca.id, parent.id)
                if ok is _LIMIT:
                    fails.append((rank + 9, _S.PATH_BUILDING_LIMIT, f"{who}: {ok}", None))
                elif ok is not True:
                    fails.append(
                        (
                            rank + 9,
                            _S.BAD_SIGNATURE,
                            f"{who} (issued by '{parent.label}'): {ok}",
                            None,
                        )
                    )
                if cfg.revocation != "off":
                    st = self.crl_state(parent.crl_key, True, t, self.dps_of(parent.crl_key, f))
                    w.merge(st.lo, st.hi)
                    r = self.revocation_check(st, f[F_SERIAL], who, w)
                    if r is not None:
                        fails.append((rank + 3, *r))
                if not ca.self_issued:
                    below += 1
        # policies: authority-constrained set, from the anchor down (the anchor
        # itself is not processed, RFC 5280 6.1).
        pols: frozenset[bytes] | None = None
        for ca in reversed(cas[:-1]):
            p = ca.facts[F_POLICIES]
            if p is None:
                pols = frozenset()
            elif _der.OID_ANY_POLICY not in p:
                pols = frozenset(p) if pols is None else pols & frozenset(p)
        # name constraints (RFC 5280 6.1.3 (b)/(c), 6.1.4 (g)): every CA below a
        # constraining CA, self-issued intermediates exempt. The trust anchor's
        # own constraints apply too (RFC 5937 trust anchor constraints; OpenSSL
        # and cryptography's verifier apply them): the stricter reading.
        ncs: list[_names.Constraints] = []
        for k in range(len(cas) - 1, -1, -1):
            ca = cas[k]
            if ncs and not ca.anchor and not ca.self_issued:
                f = ca.facts
                try:
                    why = _names.violation(_names.names_of(f[F_SUBJECT], f[F_SAN]), tuple(ncs))
                except DerError as exc:
                    why = f"its names cannot be read ({exc})"
                if why is not None:
                    fails.append(
                        (
                            10 * (len(cas) - k) + 2,
                            _S.NAME_CONSTRAINTS_VIOLATED,
                            f"CA '{ca.label}': {why}",
                            None,
                        )
                    )
            if isinstance(ca.nc, str):
                fails.append((10 * (len(cas) - k) + 2, _S.NAME_CONSTRAINTS_VIOLATED, ca.nc, None))
            elif ca.nc is not None:
                ncs.append(ca.nc)
        nc = tuple(ncs)
        if not fails:
            return _PathVerdict(_S.VALID, "", None, w.lo, w.hi, pols, nc=nc)
        fails.sort(key=lambda x: -x[0])
        status, reason, rev = fails[0][1:4]
        code = fails[0][4] if len(fails[0]) > 4 else status.code
        dated = any(x[1] in (_S.EXPIRED, _S.NOT_YET_VALID) for x in fails)
        return _PathVerdict(status, reason, rev, w.lo, w.hi, pols, len(fails), dated, nc, code)

    def _best(self, pc: int) -> tuple[int, _PathVerdict]:
        """The path reported for a candidate: the first valid one, else the first
        failing path among those whose CAs are all in their validity period, and
        of those the fewest failures. A dead end such as an expired old copy of a
        re-issued CA must not hide the fault of the path a single-certificate
        validator builds (path building prefers certificates valid at the time,
        RFC 4158 3.5 sorts candidates so; OpenSSL's issuer lookup does too)."""
        pids = self.pcs[pc][1]
        if not pids and self._pc_limited[pc]:
            return -1, _PathVerdict(
                _S.PATH_BUILDING_LIMIT,
                f"no path from the issuing CA '{_name_text(self.pcs[pc][0][0])}' found "
                "within the path building budget",
                None,
                int(NEVER),
                int(FOREVER),
                frozenset(),
            )
        if not pids:
            return -1, _PathVerdict(
                _S.UNKNOWN_ISSUER,
                f"no path from the issuing CA '{_name_text(self.pcs[pc][0][0])}' to a trust anchor",
                None,
                int(NEVER),
                int(FOREVER),
                frozenset(),
            )
        lo, hi = int(NEVER), int(FOREVER)
        for pid in pids:
            v = self._path_verdicts[pid]
            lo, hi = max(lo, v.lo), min(hi, v.hi)
        for pid in pids:
            v = self._path_verdicts[pid]
            if v.status is _S.VALID:
                return pid, replace(v, lo=lo, hi=hi)
        verdicts = self._path_verdicts
        pid = min(pids, key=lambda p: (verdicts[p].out_of_date, verdicts[p].failures))
        v = verdicts[pid]
        return pid, replace(v, lo=lo, hi=hi)

    # -- holder side --------------------------------------------------------------------

    def _group(self, issuer: bytes, aki: bytes | None) -> _Group:
        g = self.groups.get((issuer, aki))
        if g is not None:
            return g
        label = _name_text(issuer)
        cands = self._issuers_of(issuer, aki)
        problem = None
        if not cands:
            if self._issuers_of(issuer, None):
                problem = (
                    f"issuer '{label}' is known, but not with the key identifier "
                    f"{aki.hex() if aki else ''}"
                )
            else:
                problem = f"no trusted or intermediate CA named '{label}'"
        g = _Group(label, problem)
        by_key: dict[bytes, list[int]] = {}
        for cid in cands:
            by_key.setdefault(self.cas[cid].facts[F_SPKI], []).append(cid)
        tried = list(by_key.values())
        if len(tried) > self.config.budget[0]:  # same-name CAs: try this many keys at most
            tried = tried[: self.config.budget[0]]
            g.limited = True
        for cids in tried:
            ca = self.cas[cids[0]]
            # one candidate entry per set of CA certificates, however many
            # (issuer, key id) spellings lead to it: the table stays small
            pc = self._pc_of.get(tuple(cids))
            if pc is None:
                pids: list[int] = []
                for cid in cids:
                    pids.extend(self._paths_of[cid])
                pc = len(self.pcs)
                self.pcs.append((ca.crl_key, tuple(pids)))
                self._pc_limited.append(any(cid in self._limited for cid in cids))
                self._pc_of[tuple(cids)] = pc
                if self._at is not None:
                    self._pc_best.append(self._best(pc))
            g.keys.append((ca.key, ca.label, pc, ca.facts[F_SPKI]))
        if len(self.groups) >= _MAX_GROUPS:  # a cache: bounded against floods of odd issuers
            self.groups.clear()
        self.groups[(issuer, aki)] = g
        return g

    def _native_key(self, entry: tuple[Any, str, int, bytes], sigalg: bytes) -> Any:
        """The native verifier's key (``_verify.Key``) for this issuer key and
        algorithm, or None when the native verifier does not take it."""
        if _native is None or self.config.threads < 1:
            return None
        key, _, _, spki = entry
        try:
            oid, params = _sigalg_oid(sigalg)
        except (DerError, IndexError):
            return None
        if (
            oid in _RSA_HASH_ID
            and params in (b"", b"\x05\x00")
            and isinstance(key, rsa.RSAPublicKey)
        ):
            scheme = f"rsa-pkcs1-{_RSA_HASH_ID[oid]}"
        elif oid in _ECDSA_HASH_ID and not params and isinstance(key, ec.EllipticCurvePublicKey):
            scheme = f"ecdsa-{_ECDSA_HASH_ID[oid]}"
        else:
            return None
        nk = self._native_keys.get((spki, scheme))
        if nk is None:
            try:
                nk = _native.Key(spki, scheme)
            except ValueError:  # a key OpenSSL does not take: cryptography checks it
                return None
            self._native_keys[(spki, scheme)] = nk
        return nk

    def close(self) -> None:
        """Nothing to release: a batch's native threads end with the batch."""

    def _submit(
        self, jobs: list[tuple[Any, bytes, bytes]], threads: int, here: bool = False
    ) -> Any:
        """Native check of (key, signed data, signature) jobs: bytes of 1/0
        (``here``: ``threads`` threads counting this one), or a ``Pending`` whose
        ``threads`` native threads work beside this thread's Python code (they
        need no GIL) and whose ``result()`` lets this thread help with the rest."""
        assert _native is not None
        args = ([j[0] for j in jobs], [j[2] for j in jobs], [j[1] for j in jobs], max(1, threads))
        if here:
            return _native.verify_many(*args)
        return _native.start_many(*args)

    def _verifiers(self, g: _Group, sigalg: bytes) -> list[tuple[Verify | str, int, str]]:
        vs = g.verifiers.get(sigalg)
        if vs is None:
            if len(g.verifiers) >= 16:  # a cache: bounded against odd algorithm encodings
                g.verifiers.clear()
                g.native.clear()
            vs = [(make_verifier(key, sigalg), pc, label) for key, label, pc, _ in g.keys]
            g.verifiers[sigalg] = vs
            g.native[sigalg] = self._native_key(g.keys[0], sigalg) if g.keys else None
        return vs

    def run(self, ders: Sequence[bytes], t: int) -> Chunk:
        """Validate DER certificates at time ``t`` → columns + details."""
        self.prepare(t)
        n = len(ders)
        out = Chunk(
            np.zeros(n, dtype=np.uint8),
            np.full(n, -1, dtype=np.int32),
            np.full(n, NEVER, dtype=np.int64),
            np.full(n, FOREVER, dtype=np.int64),
            {},
        )
        idx, facts, pcs, nb, na = self._per_certificate(ders, out)
        if idx:
            self._per_batch(idx, facts, pcs, nb, na, t, out)
        return out

    def _per_certificate(
        self, ders: Sequence[bytes], out: Chunk
    ) -> tuple[
        list[int], list[tuple[Any, ...]], list[int], npt.NDArray[np.int64], npt.NDArray[np.int64]
    ]:
        """Parse, find the issuer group, check the signature; the rest go on together."""
        status, detail = out.status, out.detail
        parse = _der.parse_certificate
        groups = self.groups
        good = self._good
        idx: list[int] = []
        facts: list[tuple[Any, ...]] = []
        pcs: list[int] = []
        use_native = _native is not None and self.config.threads >= 1 and len(ders) >= _NATIVE_MIN
        # with 2 threads or more, reading and checking signatures overlap
        pipelined = use_native and self.config.threads >= 2 and len(ders) > _PIPELINE_PART
        pending: list[tuple[int, bytes, tuple[Any, ...], _Group, list[Any]]] = []
        jobs: list[tuple[Any, bytes, bytes]] = []
        in_flight: tuple[Any, list[Any]] | None = None

        def settle(result: Any, part: list[Any]) -> None:
            ok = result.result() if hasattr(result, "result") else result
            for (i, der, f, g, vs), good_sig in zip(part, ok, strict=True):
                if good_sig:
                    # verified with vs[0]'s key: accept with that candidate
                    finish(i, der, f, g, vs, 0, verified=True)
                else:
                    finish(i, der, f, g, vs, 1)

        def finish(
            i: int,
            der: bytes,
            f: tuple[Any, ...],
            g: _Group,
            vs: list[Any],
            start: int,
            verified: bool = False,
        ) -> None:
            """Try the candidate keys from ``start`` (``verified``: the first of them
            was checked already); then the checks the walk left."""
            sig, tbs = f[F_SIG], f[F_TBS]
            for verify, pc, _label in vs[start:]:
                if verified or (not isinstance(verify, str) and verify(sig, tbs)):
                    # signed by a known CA: now what the walk did not read
                    if len(good) >= _MAX_GOOD:
                        good.clear()
                    try:
                        _der.check_certificate(der, f, good)
                    except DerError as exc:
                        status[i] = _S.MALFORMED
                        detail[i] = (f"malformed certificate: {exc}", None)
                        return
                    idx.append(i)
                    facts.append(f)
                    pcs.append(pc)
                    return
            if g.limited:
                status[i] = _S.PATH_BUILDING_LIMIT
                detail[i] = (
                    f"none of the first {len(vs)} keys of the CAs named '{g.label}' "
                    "verifies the signature (path building budget)",
                    None,
                )
                return
            status[i] = _S.BAD_SIGNATURE
            why = vs[0][0]
            detail[i] = (
                f"the signature cannot be checked: {why}"
                if isinstance(why, str)
                else f"the signature does not verify with the key of '{vs[0][2]}'",
                None,
            )

        for i, der in enumerate(ders):
            try:
                f = parse(der)
            except DerError as exc:
                status[i] = _S.MALFORMED
                detail[i] = (f"malformed certificate: {exc}", None)
                continue
            g = groups.get((f[F_ISSUER], f[F_AKI]))
            if g is None:
                g = self._group(f[F_ISSUER], f[F_AKI])
            if g.problem is not None:
                status[i] = _S.UNKNOWN_ISSUER
                detail[i] = (g.problem, None)
                continue
            vs = g.verifiers.get(f[F_SIGALG])
            if vs is None:
                vs = self._verifiers(g, f[F_SIGALG])
            spec = g.native.get(f[F_SIGALG]) if use_native else None
            if spec is not None:
                # the first candidate key, natively for a part of the batch (below)
                pending.append((i, der, f, g, vs))
                jobs.append((spec, f[F_TBS], f[F_SIG]))
                if pipelined and len(jobs) >= _PIPELINE_PART:
                    # this part's signatures are checked by native threads (no
                    # GIL) while this thread finishes the previous part (helping
                    # with its last signatures) and reads the next one
                    started = self._submit(jobs, self.config.threads - 1)
                    if in_flight is not None:
                        settle(*in_flight)
                    in_flight = (started, pending)
                    jobs, pending = [], []
            else:
                finish(i, der, f, g, vs, 0)
        if in_flight is not None:
            settle(*in_flight)
        if jobs:
            settle(self._submit(jobs, self.config.threads, here=True), pending)
        # validity as epoch seconds, all at once; impossible dates (31 February)
        # pass the walk and are caught here
        try:
            both = _der.times_to_epoch([f[F_NB] for f in facts] + [f[F_NA] for f in facts])
        except DerError:
            keep = []
            for j, f in enumerate(facts):
                try:
                    _der.times_to_epoch([f[F_NB], f[F_NA]])
                    keep.append(j)
                except DerError as exc:
                    status[idx[j]] = _S.MALFORMED
                    detail[idx[j]] = (f"malformed certificate: {exc}", None)
            idx = [idx[j] for j in keep]
            facts = [facts[j] for j in keep]
            pcs = [pcs[j] for j in keep]
            both = _der.times_to_epoch([f[F_NB] for f in facts] + [f[F_NA] for f in facts])
        m = len(idx)
        return idx, facts, pcs, both[:m], both[m:]

    def _per_batch(
        self,
        idx: list[int],
        facts: list[tuple[Any, ...]],
        pcs: list[int],
        nb: npt.NDArray[np.int64],
        na: npt.NDArray[np.int64],
        t: int,
        out: Chunk,
    ) -> None:
        """Dates, usages, path verdicts, revocation and policies over columns."""
        cfg = self.config
        detail = out.detail
        m = len(idx)
        pc = np.asarray(pcs, dtype=np.int64)
        ku = np.fromiter((f[F_KU] for f in facts), dtype=np.int64, count=m)
        best = self._pc_best
        pc_status = np.array([b[1].status for b in best], dtype=np.uint8)
        pc_path = np.array([b[0] for b in best], dtype=np.int32)
        pc_lo = np.array([b[1].lo for b in best], dtype=np.int64)
        pc_hi = np.array([b[1].hi for b in best], dtype=np.int64)

        st = np.zeros(m, dtype=np.uint8)
        undecided = np.ones(m, dtype=bool)

        def decide(mask: npt.NDArray[np.bool_], s: Status) -> list[int]:
            sel = undecided & mask
            st[sel] = s
            undecided[sel] = False
            return [int(j) for j in np.flatnonzero(sel)]

        # the window: the certificate's own dates and its candidate paths
        na1 = na + 1
        wlo = np.maximum(
            pc_lo[pc], np.maximum(np.where(nb <= t, nb, NEVER), np.where(na1 <= t, na1, NEVER))
        )
        whi = np.minimum(
            pc_hi[pc], np.minimum(np.where(nb > t, nb, FOREVER), np.where(na1 > t, na1, FOREVER))
        )

        for j in decide(nb > t, _S.NOT_YET_VALID):
            detail[idx[j]] = (f"not valid before {stamp_text(int(nb[j]))}", None)
        for j in decide(na < t, _S.EXPIRED):
            detail[idx[j]] = (f"expired on {stamp_text(int(na[j]))}", None)
        crit = np.fromiter((f[F_CRITICAL] is not None for f in facts), dtype=bool, count=m)
        for j in decide(crit, _S.UNHANDLED_CRITICAL_EXTENSION):
            oid = _der.oid_text(facts[j][F_CRITICAL])
            detail[idx[j]] = (f"unhandled critical extension {oid}", None)
        # RFC 5280 issuer rules, then what the end-entity profile refuses
        relaxed, profile = cfg.relaxed, cfg.profile
        for j in np.flatnonzero(undecided).tolist():
            f = facts[j]
            rv = rule_violation(f, relaxed)
            if rv is None and not f[F_CA]:
                rv = profile_violation(f, profile)
            if rv is not None:
                st[j] = _S.NONCONFORMING
                undecided[j] = False
                detail[idx[j]] = (rv[1], None, rv[0])
        if cfg.key_usage:
            need = cfg.key_usage
            for j in decide((ku != -1) & ((ku & need) != need), _S.KEY_USAGE_NOT_ALLOWED):
                have = int(ku[j])
                missing = [
                    name
                    for name, bit in _der.KU_BITS.items()
                    if need & (1 << bit) and not have & (1 << bit) and name != "content_commitment"
                ]
                detail[idx[j]] = (f"key usage lacks {', '.join(missing)}", None)
        if cfg.eku is not None:
            want = frozenset(cfg.eku)
            bad_eku = np.fromiter(
                (
                    f[F_EKU] is not None
                    and _der.OID_ANY_EKU not in f[F_EKU]
                    and not want.intersection(f[F_EKU])
                    for f in facts
                ),
                dtype=bool,
                count=m,
            )
            for j in decide(bad_eku, _S.KEY_USAGE_NOT_ALLOWED):
                allowed = ", ".join(_der.oid_text(o) for o in cfg.eku)
                detail[idx[j]] = (f"extended key usage allows none of {allowed}", None)
        # the path, judged once per candidate issuer (the status is the path's)
        for j in decide(pc_status[pc] != _S.VALID, _S.VALID):
            verdict = best[pcs[j]][1]
            st[j] = verdict.status
            detail[idx[j]] = (verdict.reason, verdict.revocation, verdict.code)
        paths = pc_path[pc]
        # name constraints: only the certificates whose path carries some pay
        pc_nc = np.fromiter((bool(b[1].nc) for b in best), dtype=bool, count=len(best))
        if pc_nc.any():
            self._nc_stage(idx, facts, pcs, st, undecided, pc_nc[pc], paths, detail)
        if cfg.revocation != "off":
            self._revocation_stage(idx, facts, pcs, t, st, undecided, wlo, whi, detail)
        if cfg.policies is not None:
            want_p = frozenset(cfg.policies)
            any_ok = _der.OID_ANY_POLICY in want_p
            for j in np.flatnonzero(undecided).tolist():
                auth = best[pcs[j]][1].policies
                leaf = facts[j][F_POLICIES]
                ok = False
                if leaf is not None:
                    lp = frozenset(leaf)
                    if _der.OID_ANY_POLICY in lp:
                        lp = auth if auth is not None else want_p
                    elif auth is not None:
                        lp = lp & auth
                    ok = bool(lp) if any_ok else bool(lp & want_p)
                if not ok:
                    st[j] = _S.POLICY_NOT_ALLOWED
                    undecided[j] = False
                    detail[idx[j]] = ("no acceptable certificate policy on the path", None)

        ix = np.asarray(idx, dtype=np.int64)
        out.status[ix] = st
        out.path[ix] = paths
        out.lo[ix] = wlo
        out.hi[ix] = whi

    def _nc_stage(
        self,
        idx: list[int],
        facts: list[tuple[Any, ...]],
        pcs: list[int],
        st: npt.NDArray[np.uint8],
        undecided: npt.NDArray[np.bool_],
        constrained: npt.NDArray[np.bool_],
        paths: npt.NDArray[np.int32],
        detail: dict[int, tuple[Any, ...]],
    ) -> None:
        """Subject and SAN names against the path's name constraints (RFC 5280
        6.1.3 (b)/(c)); when the candidate issuer has several valid paths, the
        first whose constraints the certificate meets is the one reported."""
        for j in np.flatnonzero(undecided & constrained).tolist():
            f = facts[j]
            try:
                names = _names.names_of(f[F_SUBJECT], f[F_SAN])
            except DerError as exc:
                st[j] = _S.MALFORMED
                undecided[j] = False
                detail[idx[j]] = (f"malformed certificate: {exc}", None)
                continue
            p = pcs[j]
            cands = self._nc_cands.get(p)
            if cands is None:
                verdicts = self._path_verdicts
                cands = [
                    (pid, verdicts[pid].nc)
                    for pid in self.pcs[p][1]
                    if verdicts[pid].status is _S.VALID
                ]
                self._nc_cands[p] = cands
            first: str | None = None
            for pid, nc in cands:
                why = _names.violation(names, nc) if nc else None
                if why is None:
                    paths[j] = pid
                    break
                if first is None:
                    first = why
            else:
                st[j] = _S.NAME_CONSTRAINTS_VIOLATED
                undecided[j] = False
                detail[idx[j]] = (f"name constraints: {first}", None)

    def _revocation_stage(
        self,
        idx: list[int],
        facts: list[tuple[Any, ...]],
        pcs: list[int],
        t: int,
        st: npt.NDArray[np.uint8],
        undecided: npt.NDArray[np.bool_],
        wlo: npt.NDArray[np.int64],
        whi: npt.NDArray[np.int64],
        detail: dict[int, tuple[Any, ...]],
    ) -> None:
        """Each certificate against its issuer's CRL: one set intersection per issuer."""
        by_pc: dict[int, list[int]] = {}
        for j in np.flatnonzero(undecided).tolist():
            by_pc.setdefault(pcs[j], []).append(j)
        for p, js in by_pc.items():
            ca_key = self.pcs[p][0]
            # one CRL state per (CA or not, distribution points): the latter
            # only when the issuer publishes partitioned CRLs
            groups: dict[tuple[bool, frozenset[bytes] | None], list[int]] = {}
            for j in js:
                f = facts[j]
                groups.setdefault((bool(f[F_CA]), self.dps_of(ca_key, f)), []).append(j)
            for (for_ca, dps), sub in groups.items():
                state = self.crl_state(ca_key, for_ca, t, dps)
                subj = np.asarray(sub, dtype=np.int64)
                wlo[subj] = np.maximum(wlo[subj], state.lo)
                whi[subj] = np.minimum(whi[subj], state.hi)
                if state.entries is None or state.stale or state.partial:
                    check = sub  # each fails in hard mode, unless listed
                else:
                    listed = state.entries.keys() & {facts[j][F_SERIAL] for j in sub}
                    check = [j for j in sub if facts[j][F_SERIAL] in listed]
                for j in check:
                    w = _Window(t)
                    r = self.revocation_check(state, facts[j][F_SERIAL], "the certificate", w)
                    wlo[j] = max(int(wlo[j]), w.lo)
                    whi[j] = min(int(whi[j]), w.hi)
                    if r is not None:
                        st[j] = r[0]
                        undecided[j] = False
                        detail[idx[j]] = r[1:]


@dataclass
class Chunk:
    """Verdict columns for a run of certificates (what worker processes send back)."""

    status: npt.NDArray[np.uint8]
    path: npt.NDArray[np.int32]
    lo: npt.NDArray[np.int64]
    hi: npt.NDArray[np.int64]
    detail: dict[int, tuple[Any, ...]]  # (reason, revocation[, code])


# --- worker processes -----------------------------------------------------------------

_WORKER: Engine | None = None


def worker_init(config: Config) -> None:
    global _WORKER
    _WORKER = Engine(config)


def worker_run(ders: list[bytes], t: int) -> Chunk:
    assert _WORKER is not None
    return _WORKER.run(ders, t)
