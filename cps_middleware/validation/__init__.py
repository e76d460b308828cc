"""Certificate chain validation for CPS holder certificates (layer 2).

RFC 5280 path validation with CRL revocation, built for batches: a
:class:`Validator` made once by a :class:`ValidatorBuilder` judges thousands of
certificates per call and answers one :class:`ValidationResult` per
certificate (:class:`Status`, a reason, the path), never an exception for bad
input. Trust stores: :func:`igc_sante` (the nine production CAs, shipped) and
:func:`igc_sante_test` (the TEST hierarchy, from certificates you give).

Conformance, in short (details on :class:`ValidatorBuilder`):

- Strict DER: a certificate is VALID only if ``cryptography`` reads all of it
  too (serial, names, validity, key, extensions); non-minimal INTEGERs and
  lengths, trailing data, year 0, bad padding bits are MALFORMED. Revocation
  matches serial numbers by value.
- The trust anchor is processed like every CA of the path: its validity,
  basicConstraints (cA), keyUsage (keyCertSign), pathLenConstraint, name
  constraints, critical extensions and the issuer rules below; only its
  signature and its revocation are not checked.
- RFC 5280 rules on what issuers produce (AKI present and non-critical, SKI on
  CAs, positive serial, non-empty CA subject, no keyCertSign without cA, no
  empty EKU, critical nameConstraints / CA basicConstraints, CRLNumber present
  and non-critical) are enforced: a certificate breaking one is NONCONFORMING
  with the rule as ``code``; each rule can be relaxed by name
  (``ValidatorBuilder.relax``, list in :data:`RULES`).
- End-entity profile: ``"card"`` (default; IGC-Santé card certificates have no
  subjectAltName, signature certificates carry nonRepudiation alone; every
  VALID reason names the profile) or ``"pkix"`` (which refuses both).
- CRLs are applied per scope (issuingDistributionPoint against the
  certificate's cRLDistributionPoints, onlyContains*, onlySomeReasons, delta
  CRLs on their base); indirect CRLs are refused (REVOCATION_UNKNOWN, code
  ``crl_indirect``).
- Work is bounded: 64 KiB per certificate, a path-building budget
  (``path_budget``; PATH_BUILDING_LIMIT), bounded caches.

Every result has a ``code`` with a French and an English sentence in the
message catalogue (``ValidationResult.message(lang)``).
"""

from cps_middleware.validation._engine import PROFILES, RULES
from cps_middleware.validation.results import BatchResult, Revocation, Status, ValidationResult
from cps_middleware.validation.store import (
    TrustStore,
    igc_sante,
    igc_sante_test,
    load_certificates,
    load_crls,
)
from cps_middleware.validation.validator import Validator, ValidatorBuilder

__all__ = [
    "PROFILES",
    "RULES",
    "BatchResult",
    "Revocation",
    "Status",
    "TrustStore",
    "ValidationResult",
    "Validator",
    "ValidatorBuilder",
    "igc_sante",
    "igc_sante_test",
    "load_certificates",
    "load_crls",
]
