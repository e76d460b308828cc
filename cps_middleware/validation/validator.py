"""The chain validator: an immutable builder, then a reusable :class:`Validator`.

```python
validator = (ValidatorBuilder()
             .trust(igc_sante())
             .crls(load_crls("crls/"))
             .key_usage("non_repudiation")
             .build())
batch = validator.validate_many(der_list)      # one result per certificate, never raises
```

Like ``cryptography``'s ``PolicyBuilder``, each setter returns a new builder
and setting the same thing twice is an error. A validator is built once and
reused: CA certificates, CA signatures and CRLs are prepared once, and verdicts
are memoised by certificate bytes (a memoised verdict is served again only
while the validation time stays inside the window where it cannot change).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import multiprocessing
import os
import sys
import threading
import time as _time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cps_middleware.errors import ValidationSetupError
from cps_middleware.validation import _der
from cps_middleware.validation._engine import (
    PROFILES,
    RULES,
    Chunk,
    Config,
    Engine,
    worker_init,
    worker_run,
)
from cps_middleware.validation.results import BatchResult, Status, ValidationResult
from cps_middleware.validation.store import CertificateSource, TrustStore, load_crls

__all__ = ["Validator", "ValidatorBuilder"]

CrlSource = bytes | x509.CertificateRevocationList | str | os.PathLike[str]
_UNSET: Any = object()
_MODES = ("off", "soft", "hard")
# Below this many new certificates a batch stays in the calling process.
_PARALLEL_MIN = 2000


def _oid(value: object, what: str) -> bytes:
    dotted = value.dotted_string if isinstance(value, x509.ObjectIdentifier) else value
    if not isinstance(dotted, str):
        raise ValidationSetupError(f"{what}: not an OID: {value!r}", function="ValidatorBuilder")
    try:
        return _der.oid_raw(dotted)
    except ValueError as exc:
        raise ValidationSetupError(
            f"{what}: not an OID: {dotted!r}", function="ValidatorBuilder"
        ) from exc


@dataclass(frozen=True)
class ValidatorBuilder:
    """Immutable configuration of a :class:`Validator` (each setter returns a new builder)."""

    _trust: Any = _UNSET
    _intermediates: Any = _UNSET
    _time: Any = _UNSET
    _crls: Any = _UNSET
    _revocation: Any = _UNSET
    _key_usage: Any = _UNSET
    _eku: Any = _UNSET
    _policies: Any = _UNSET
    _max_depth: Any = _UNSET
    _workers: Any = _UNSET
    _memo_size: Any = _UNSET
    _profile: Any = _UNSET
    _relaxed: Any = _UNSET
    _budget: Any = _UNSET
    _threads: Any = _UNSET

    def _set(self, name: str, value: object) -> ValidatorBuilder:
        if getattr(self, name) is not _UNSET:
            raise ValidationSetupError(
                f"{name.lstrip('_')} was already set on this builder",
                function=f"ValidatorBuilder.{name.lstrip('_')}",
                hint="each setting may be given once; start from a new ValidatorBuilder",
            )
        return replace(self, **{name: value})

    def trust(self, anchors: TrustStore | Iterable[CertificateSource]) -> ValidatorBuilder:
        """Trust anchors: a :class:`TrustStore` (anchors + intermediates) or root certificates."""
        if isinstance(anchors, TrustStore):
            store = anchors
        else:
            certs = _certificates(anchors, "trust")
            store = TrustStore(tuple(certs), (), "custom")
        if not store.anchors:
            raise ValidationSetupError("no trust anchor given", function="ValidatorBuilder.trust")
        return self._set("_trust", store)

    def intermediates(self, certs: Iterable[CertificateSource]) -> ValidatorBuilder:
        """Untrusted CA certificates that may complete paths (cross-certificates too)."""
        return self._set("_intermediates", tuple(_certificates(certs, "intermediates")))

    def time(self, when: _dt.datetime) -> ValidatorBuilder:
        """Validation time (default: the clock at each call). Naive datetimes are UTC."""
        if not isinstance(when, _dt.datetime):
            raise ValidationSetupError("time must be a datetime", function="ValidatorBuilder.time")
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
        return self._set("_time", int(when.timestamp()))

    def crls(self, crls: Iterable[CrlSource]) -> ValidatorBuilder:
        """CRLs (DER/PEM bytes, ``cryptography`` objects, files or directories)."""
        out: list[bytes] = []
        for c in crls:
            if isinstance(c, x509.CertificateRevocationList):
                try:
                    der = c.public_bytes(Encoding.DER)
                except Exception as exc:
                    raise ValidationSetupError(
                        f"unreadable CRL: {exc}", function="ValidatorBuilder.crls"
                    ) from exc
                out.extend(load_crls(der))
            elif isinstance(c, bytes | bytearray | str | os.PathLike):
                out.extend(load_crls(bytes(c) if isinstance(c, bytearray) else c))
            else:
                raise ValidationSetupError(
                    f"not a CRL: {type(c).__name__}", function="ValidatorBuilder.crls"
                )
        return self._set("_crls", tuple(out))

    def revocation(self, mode: str) -> ValidatorBuilder:
        """``"hard"`` (default with CRLs): every non-root certificate needs a current CRL;
        ``"soft"``: use the CRLs there are; ``"off"``: no revocation check."""
        if mode not in _MODES:
            raise ValidationSetupError(
                f"revocation mode {mode!r} is not one of {', '.join(_MODES)}",
                function="ValidatorBuilder.revocation",
            )
        return self._set("_revocation", mode)

    def key_usage(self, *usages: str) -> ValidatorBuilder:
        """keyUsage bits all required on the validated certificate
        (``"digital_signature"``, ``"non_repudiation"``, ``"key_encipherment"`` ...)."""
        bits = 0
        for u in usages:
            if u not in _der.KU_BITS:
                raise ValidationSetupError(
                    f"unknown key usage {u!r}",
                    function="ValidatorBuilder.key_usage",
                    hint="one of " + ", ".join(_der.KU_BITS),
                )
            bits |= 1 << _der.KU_BITS[u]
        if not bits:
            raise ValidationSetupError("no key usage given", function="ValidatorBuilder.key_usage")
        return self._set("_key_usage", bits)

    def extended_key_usage(self, *oids: x509.ObjectIdentifier | str) -> ValidatorBuilder:
        """Extended key usages, one of which the certificate must allow (when it has EKU)."""
        if not oids:
            raise ValidationSetupError(
                "no EKU given", function="ValidatorBuilder.extended_key_usage"
            )
        return self._set("_eku", tuple(_oid(o, "extended_key_usage") for o in oids))

    def policies(self, *oids: x509.ObjectIdentifier | str) -> ValidatorBuilder:
        """Acceptable certificate policies; the path must assert one (explicit policy)."""
        if not oids:
            raise ValidationSetupError("no policy given", function="ValidatorBuilder.policies")
        return self._set("_policies", tuple(_oid(o, "policies") for o in oids))

    def max_depth(self, n: int) -> ValidatorBuilder:
        """Most intermediate CAs between a certificate and its anchor (default 8)."""
        if not isinstance(n, int) or n < 0 or n > 32:
            raise ValidationSetupError(
                "max_depth must be 0..32", function="ValidatorBuilder.max_depth"
            )
        return self._set("_max_depth", n)

    def profile(self, name: str) -> ValidatorBuilder:
        """What an end-entity certificate may lack (the CA side is the same in both).

        ``"card"`` (default): the IGC-Santé card profile; a holder certificate
        without subjectAltName (its subject names the holder) and a signature
        certificate with nonRepudiation alone are accepted, and a VALID result
        says it was judged under this profile. ``"pkix"``: an end-entity
        certificate needs a subjectAltName, and a keyUsage with nonRepudiation
        needs digitalSignature too (NONCONFORMING, code ``san_missing`` /
        ``non_repudiation_only``).
        """
        if name not in PROFILES:
            raise ValidationSetupError(
                f"profile {name!r} is not one of {', '.join(PROFILES)}",
                function="ValidatorBuilder.profile",
            )
        return self._set("_profile", name)

    def relax(self, *rules: str) -> ValidatorBuilder:
        """RFC 5280 issuer rules not to enforce (all are by default), by name.

        ``serial_not_positive`` (4.1.2.2), ``aki_missing`` / ``aki_critical``
        (4.2.1.1), ``ski_missing`` / ``ski_critical`` (4.2.1.2),
        ``ca_empty_subject`` (4.1.2.6), ``basic_constraints_not_critical``
        (4.2.1.9), ``key_cert_sign_without_ca`` (4.2.1.3), ``eku_empty``
        (4.2.1.12), ``name_constraints_not_critical`` (4.2.1.10),
        ``empty_subject_without_critical_san`` (4.2.1.6), ``crl_number_missing``
        / ``crl_number_critical`` (5.2.3). A certificate breaking one is
        NONCONFORMING with the rule as its ``code``; a CRL breaking one is set
        aside (see :attr:`Validator.problems`).
        """
        unknown = [r for r in rules if r not in RULES]
        if unknown or not rules:
            raise ValidationSetupError(
                f"unknown rule(s): {', '.join(unknown) or '(none given)'}",
                function="ValidatorBuilder.relax",
                hint="one of " + ", ".join(RULES),
            )
        return self._set("_relaxed", frozenset(rules))

    def path_budget(self, *, candidates: int = 64, signatures: int = 256) -> ValidatorBuilder:
        """Limits of path building among the CA certificates (defaults shown):
        candidate paths explored per certificate and CA signature checks in all.
        Beyond them, PATH_BUILDING_LIMIT (depth is bounded by :meth:`max_depth`)."""
        if not (1 <= candidates <= 4096 and 1 <= signatures <= 1_000_000):
            raise ValidationSetupError(
                "path_budget: candidates 1..4096, signatures 1..1000000",
                function="ValidatorBuilder.path_budget",
            )
        return self._set("_budget", (candidates, signatures))

    def threads(self, n: int) -> ValidatorBuilder:
        """Threads that share a batch's signature checks (default 1).

        The holders' signatures of a batch (RSA PKCS#1 v1.5 and ECDSA with
        SHA-2, the first candidate issuer key) are checked in native code
        (``cps_middleware._verify``, OpenSSL, the GIL released), split across
        ``n`` threads; ``0`` checks each with ``cryptography`` instead. Other
        algorithms and small batches always use ``cryptography``."""
        if not isinstance(n, int) or not 0 <= n <= 64:
            raise ValidationSetupError("threads must be 0..64", function="ValidatorBuilder.threads")
        return self._set("_threads", n)

    def workers(self, n: int) -> ValidatorBuilder:
        """Processes that share large batches (default 1: this process only).

        With ``n > 1``, batches of 2 000 new certificates or more are split
        between this process and ``n - 1`` worker processes (``forkserver`` on
        Linux): as with any ``multiprocessing`` use, a script's entry point
        needs the ``if __name__ == "__main__":`` guard. Threads would not help:
        signature checks hold the GIL.
        """
        if not isinstance(n, int) or n < 1:
            raise ValidationSetupError("workers must be >= 1", function="ValidatorBuilder.workers")
        return self._set("_workers", n)

    def memo_size(self, n: int) -> ValidatorBuilder:
        """Verdicts kept for re-validation (default 262 144; 0 disables the memo)."""
        if not isinstance(n, int) or n < 0:
            raise ValidationSetupError(
                "memo_size must be >= 0", function="ValidatorBuilder.memo_size"
            )
        return self._set("_memo_size", n)

    def build(self) -> Validator:
        """The :class:`Validator` with these settings (trust anchors are required)."""
        if self._trust is _UNSET:
            raise ValidationSetupError(
                "no trust anchors",
                function="ValidatorBuilder.build",
                hint="call .trust(igc_sante()) or .trust(your root certificates)",
            )
        store: TrustStore = self._trust
        inter = store.intermediates + (() if self._intermediates is _UNSET else self._intermediates)
        crls = () if self._crls is _UNSET else self._crls
        mode = self._revocation if self._revocation is not _UNSET else ("hard" if crls else "off")
        config = Config(
            anchors=tuple(c.public_bytes(Encoding.DER) for c in store.anchors),
            intermediates=tuple(c.public_bytes(Encoding.DER) for c in inter),
            time=None if self._time is _UNSET else self._time,
            crls=crls,
            key_usage=0 if self._key_usage is _UNSET else self._key_usage,
            eku=None if self._eku is _UNSET else self._eku,
            policies=None if self._policies is _UNSET else self._policies,
            max_depth=8 if self._max_depth is _UNSET else self._max_depth,
            revocation=mode,
            profile="card" if self._profile is _UNSET else self._profile,
            relaxed=frozenset() if self._relaxed is _UNSET else self._relaxed,
            budget=(64, 256) if self._budget is _UNSET else self._budget,
            threads=1 if self._threads is _UNSET else self._threads,
        )
        return Validator(
            config,
            workers=1 if self._workers is _UNSET else self._workers,
            memo_size=262144 if self._memo_size is _UNSET else self._memo_size,
        )


class Validator:
    """Validates certificates against one configuration; built by :class:`ValidatorBuilder`.

    Thread-safe (calls are serialised). With ``workers(n)`` large batches are
    shared with ``n - 1`` worker processes; call :meth:`close` (or use ``with``)
    to stop them early, else they stop with the validator.
    """

    def __init__(self, config: Config, *, workers: int = 1, memo_size: int = 262144) -> None:
        self._config = config
        self._engine = Engine(config)
        self._workers = workers
        self._memo_size = memo_size
        self._memo: dict[bytes, tuple[ValidationResult, int, int]] = {}
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize[Any, Validator] | None = None
        self._path_certs: dict[int, tuple[x509.Certificate, ...]] = {}
        self._valid: dict[int, ValidationResult] = {}

    # -- public ---------------------------------------------------------------------

    @property
    def problems(self) -> tuple[str, ...]:
        """CA certificates and CRLs that were set aside at build time, and why."""
        return tuple(self._engine.problems)

    @property
    def revocation_mode(self) -> str:
        return self._config.revocation

    @property
    def profile(self) -> str:
        """The end-entity profile verdicts are given under (``"card"`` or ``"pkix"``)."""
        return self._config.profile

    def validate(self, cert: CertificateSource | object) -> ValidationResult:
        """One certificate's verdict (never raises for bad input)."""
        return self.validate_many([cert])[0]

    def validate_many(self, certs: Iterable[CertificateSource | object]) -> BatchResult:
        """One verdict per certificate, in order; bad input gives MALFORMED, never an error."""
        t = self._config.time if self._config.time is not None else int(_time.time())
        ders: list[bytes | None] = []
        early: dict[int, ValidationResult] = {}
        for i, c in enumerate(certs):
            d = _to_der(c)
            if isinstance(d, str):
                early[i] = ValidationResult(Status.MALFORMED, d)
                ders.append(None)
            else:
                ders.append(d)
        with self._lock:
            return self._validate(ders, early, t)

    def close(self) -> None:
        """Stop the worker processes and the helper thread (the validator stays usable)."""
        self._engine.close()
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._pool = None

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------

    def _validate(
        self, ders: list[bytes | None], early: dict[int, ValidationResult], t: int
    ) -> BatchResult:
        n = len(ders)
        out: list[ValidationResult | None] = [None] * n
        for i, r in early.items():
            out[i] = r
        memo = self._memo
        miss_ix: list[int] = []
        miss: list[bytes] = []
        for i, d in enumerate(ders):
            if d is None:
                continue
            hit = memo.get(d)
            if hit is not None and hit[1] <= t < hit[2]:
                out[i] = hit[0]
            else:
                miss_ix.append(i)
                miss.append(d)
        if miss:
            # the same certificate twice in one batch is validated once
            uniq = list(dict.fromkeys(miss))
            chunks = self._run(uniq, t)
            results = self._materialise(chunks)
            lo = np.concatenate([c.lo for c in chunks])
            hi = np.concatenate([c.hi for c in chunks])
            by_der = dict(zip(uniq, results, strict=True))
            for i, d in zip(miss_ix, miss, strict=True):
                out[i] = by_der[d]
            if self._memo_size:
                if len(memo) + len(uniq) > self._memo_size:
                    memo.clear()
                if len(uniq) <= self._memo_size:
                    memo.update(
                        zip(uniq, zip(results, lo.tolist(), hi.tolist(), strict=True), strict=True)
                    )
        return BatchResult(out)  # type: ignore[arg-type]

    def _run_here(self, ders: list[bytes], t: int) -> Any:
        """The engine on one part; a certificate that makes it fail is MALFORMED
        on its own (the rest of the batch keeps its verdicts)."""
        try:
            return self._engine.run(ders, t)
        except Exception:
            if len(ders) == 1:
                return _failed_chunk(1)
            parts = [self._run_here([d], t) for d in ders]
            return _concat_chunks(parts)

    def _run(self, ders: list[bytes], t: int) -> list[Any]:
        if self._workers <= 1 or len(ders) < _PARALLEL_MIN:
            return [self._run_here(ders, t)]
        # Parts small enough to balance the load (the workers and this process
        # take the next part when they are done), large enough to keep the
        # per-part cost (pickling, numpy set-up) small.
        k = self._workers
        size = max(256, min(2500, len(ders) // (6 * k)))
        parts = [ders[j : j + size] for j in range(0, len(ders), size)]
        out: list[Any] = [None] * len(parts)
        pending: dict[Future[Any], int] = {}
        nxt = 0
        try:
            pool = self._get_pool()
            while nxt < len(parts) and len(pending) < 2 * (k - 1):
                pending[pool.submit(worker_run, parts[nxt], t)] = nxt
                nxt += 1
            while nxt < len(parts):
                j = nxt
                nxt += 1
                out[j] = self._run_here(parts[j], t)
                for f in [f for f in pending if f.done()]:
                    out[pending.pop(f)] = f.result()
                    if nxt < len(parts):
                        pending[pool.submit(worker_run, parts[nxt], t)] = nxt
                        nxt += 1
            for f, j in pending.items():
                out[j] = f.result()
        except Exception:  # a worker died (BrokenProcessPool ...): finish here
            self.close()
            for j, part in enumerate(parts):
                if out[j] is None:
                    out[j] = self._run_here(part, t)
        return out

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = "forkserver" if sys.platform.startswith("linux") else None
            ctx = multiprocessing.get_context(method)
            pool = ProcessPoolExecutor(
                max_workers=self._workers - 1,
                mp_context=ctx,
                initializer=worker_init,
                initargs=(self._config,),
            )
            self._pool = pool
            self._finalizer = weakref.finalize(self, pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def warm_up(self) -> None:
        """Start the worker processes now rather than on the first large batch."""
        if self._workers > 1:
            pool = self._get_pool()
            list(pool.map(worker_run, [[]] * (self._workers - 1), [0] * (self._workers - 1)))

    def _path(self, pid: int) -> tuple[x509.Certificate, ...]:
        p = self._path_certs.get(pid)
        if p is None:
            p = tuple(self._engine.cas[c].cert for c in self._engine.paths[pid])
            self._path_certs[pid] = p
        return p

    def _materialise(self, chunks: Sequence[Any]) -> list[ValidationResult]:
        results: list[ValidationResult] = []
        valid = self._valid
        for ch in chunks:
            st = ch.status.tolist()
            pth = ch.path.tolist()
            detail = ch.detail
            for j, (s, pid) in enumerate(zip(st, pth, strict=True)):
                if s == 0:
                    r = valid.get(pid)
                    if r is None:
                        path = self._path(pid)
                        anchor = self._engine.cas[self._engine.paths[pid][-1]].label
                        r = ValidationResult(
                            Status.VALID,
                            f"valid ({self._config.profile} profile): chains to '{anchor}' "
                            f"through {len(path)} CA certificate(s)",
                            path,
                        )
                        valid[pid] = r
                    results.append(r)
                else:
                    d = detail.get(j, ("", None))
                    results.append(
                        ValidationResult(
                            Status(s),
                            d[0],
                            self._path(pid) if pid >= 0 else (),
                            d[1],
                            d[2] if len(d) > 2 else "",
                        )
                    )
        return results


def _failed_chunk(n: int) -> Chunk:
    return Chunk(
        np.full(n, int(Status.MALFORMED), dtype=np.uint8),
        np.full(n, -1, dtype=np.int32),
        np.full(n, 0, dtype=np.int64),
        np.full(n, 0, dtype=np.int64),  # an empty window: never served from the memo
        {j: ("malformed certificate: it could not be judged", None) for j in range(n)},
    )


def _concat_chunks(parts: list[Chunk]) -> Chunk:
    detail: dict[int, Any] = {}
    k = 0
    for p in parts:
        for j, d in p.detail.items():
            detail[k + j] = d
        k += len(p.status)
    return Chunk(
        np.concatenate([p.status for p in parts]),
        np.concatenate([p.path for p in parts]),
        np.concatenate([p.lo for p in parts]),
        np.concatenate([p.hi for p in parts]),
        detail,
    )


def _certificates(certs: Iterable[CertificateSource], what: str) -> list[x509.Certificate]:
    from cps_middleware.validation.store import _as_certificates

    if isinstance(certs, bytes | x509.Certificate):
        certs = [certs]
    out = _as_certificates(certs)
    if not out:
        raise ValidationSetupError(
            f"{what}: no certificate given", function=f"ValidatorBuilder.{what}"
        )
    return out


_PEM_HEAD = b"-----BEGIN CERTIFICATE-----"
_PEM_TAIL = b"-----END CERTIFICATE-----"


def _to_der(c: object) -> bytes | str:
    """DER bytes of one input, or the reason it is not a certificate."""
    if isinstance(c, bytes):
        if c[:1] == b"0":
            return c
        if _PEM_HEAD in c[:200]:
            return _pem_to_der(c)
        return c
    if isinstance(c, x509.Certificate):
        try:
            return c.public_bytes(Encoding.DER)
        except ValueError as exc:
            return f"malformed certificate: {exc}"
    if isinstance(c, bytearray | memoryview):
        return _to_der(bytes(c))
    if isinstance(c, str) and _PEM_HEAD.decode() in c:
        return _pem_to_der(c.encode("ascii", "replace"))
    return f"not a certificate: {type(c).__name__}"


def _pem_to_der(data: bytes) -> bytes | str:
    s = data.find(_PEM_HEAD)
    e = data.find(_PEM_TAIL, s)
    if s < 0 or e < 0:
        return "malformed PEM: no END CERTIFICATE line"
    try:
        return base64.b64decode(b"".join(data[s + len(_PEM_HEAD) : e].split()), validate=True)
    except (binascii.Error, ValueError):
        return "malformed PEM: bad base64"
