"""What the chain validator answers: a status per certificate, its reason and path.

:class:`ValidationResult` is the per-certificate answer (a frozen dataclass);
:class:`BatchResult` is what :meth:`Validator.validate_many` returns: a
sequence of results backed by columns (``statuses`` is a numpy array), so that
a program can count or filter thousands of verdicts without building objects.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["BatchResult", "Revocation", "Status", "ValidationResult"]


class Status(enum.IntEnum):
    """Outcome of validating one certificate (a program branches on this)."""

    VALID = 0
    MALFORMED = 1
    UNKNOWN_ISSUER = 2
    BAD_SIGNATURE = 3
    NOT_YET_VALID = 4
    EXPIRED = 5
    UNHANDLED_CRITICAL_EXTENSION = 6
    KEY_USAGE_NOT_ALLOWED = 7
    CA_CONSTRAINT_VIOLATED = 8
    PATH_TOO_LONG = 9
    REVOKED = 10
    REVOCATION_UNKNOWN = 11
    POLICY_NOT_ALLOWED = 12
    NAME_CONSTRAINTS_VIOLATED = 13
    NONCONFORMING = 14  # breaks an RFC 5280 rule of the profile (``code`` names it)
    PATH_BUILDING_LIMIT = 15  # path building gave up: too many candidates or checks

    @property
    def ok(self) -> bool:
        return self is Status.VALID

    @property
    def code(self) -> str:
        """The status as a message code (``validation.<code>`` in the catalogue)."""
        return self.name.lower()


# RFC 5280 CRLReason codes → names (as in cryptography's x509.ReasonFlags).
REASON_NAMES = {
    -1: "unspecified",
    0: "unspecified",
    1: "key_compromise",
    2: "ca_compromise",
    3: "affiliation_changed",
    4: "superseded",
    5: "cessation_of_operation",
    6: "certificate_hold",
    8: "remove_from_crl",
    9: "privilege_withdrawn",
    10: "aa_compromise",
}


@dataclass(frozen=True, slots=True)
class Revocation:
    """Why and when a certificate of the path was revoked (from a CRL entry)."""

    reason: str  # a REASON_NAMES value: "key_compromise", "superseded" ...
    date: _dt.datetime
    invalidity_date: _dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """One certificate's verdict.

    ``path`` holds the CA certificates from the issuer of the validated
    certificate up to the trust anchor (the validated certificate itself is
    not repeated); it is the path that was judged, empty when none was found.
    ``revocation`` is set when the status is REVOKED. ``code`` says why in a
    form a program branches on: the status code (``"expired"``...) or, for
    NONCONFORMING and some REVOCATION_UNKNOWN results, the rule or cause
    (``"aki_missing"``, ``"crl_indirect"``...); each code has a French and an
    English sentence in the message catalogue (``validation.<code>``).
    """

    status: Status
    reason: str
    path: tuple[x509.Certificate, ...] = ()
    revocation: Revocation | None = None
    code: str = ""

    def __post_init__(self) -> None:
        if not self.code:
            object.__setattr__(self, "code", self.status.code)

    def message(self, lang: str | None = None) -> str:
        """The catalogue sentence for :attr:`code` (French by default)."""
        from cps_middleware.messages import text

        return text(f"validation.{self.code}", lang)

    @property
    def ok(self) -> bool:
        return self.status is Status.VALID


class BatchResult(Sequence[ValidationResult]):
    """One :class:`ValidationResult` per input certificate, in input order.

    ``statuses`` is a numpy ``uint8`` array of :class:`Status` values, for
    counting and filtering without building objects (``batch.count(Status.REVOKED)``).
    """

    __slots__ = ("_results", "statuses")

    def __init__(self, results: list[ValidationResult]) -> None:
        self._results = results
        self.statuses: npt.NDArray[np.uint8] = np.fromiter(
            (r.status for r in results), dtype=np.uint8, count=len(results)
        )

    def __len__(self) -> int:
        return len(self._results)

    @overload
    def __getitem__(self, i: int) -> ValidationResult: ...
    @overload
    def __getitem__(self, i: slice) -> list[ValidationResult]: ...
    def __getitem__(self, i: int | slice) -> ValidationResult | list[ValidationResult]:
        return self._results[i]

    def __iter__(self) -> Iterator[ValidationResult]:
        return iter(self._results)

    def count(self, value: object) -> int:
        """How many results have this status (or equal this result)."""
        if isinstance(value, Status):
            return int(np.count_nonzero(self.statuses == int(value)))
        return self._results.count(value)  # type: ignore[arg-type]

    def counts(self) -> dict[Status, int]:
        """Status → number of certificates, for the statuses present."""
        values, n = np.unique(self.statuses, return_counts=True)
        return {Status(int(v)): int(k) for v, k in zip(values, n, strict=True)}

    def __repr__(self) -> str:
        inner = ", ".join(f"{s.name}={n}" for s, n in self.counts().items())
        return f"BatchResult({len(self)} certificates: {inner})"
