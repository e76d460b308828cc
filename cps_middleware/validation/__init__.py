"""Certificate chain validation for CPS holder certificates (layer 2).

RFC 5280 path validation with CRL revocation, built for batches: a
:class:`Validator` made once by a :class:`ValidatorBuilder` judges thousands of
certificates per call and answers one :class:`ValidationResult` per
certificate (:class:`Status`, a reason, the path), never an exception for bad
input. Trust stores: :func:`igc_sante` (the nine production CAs, shipped) and
:func:`igc_sante_test` (the TEST hierarchy, from certificates you give).
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
