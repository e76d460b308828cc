"""OCSP client for IGC-Santé (RFC 6960): one verified answer per certificate, never an exception.

IGC-Santé runs a responder at ``http://ocsp.esante.gouv.fr``; production
card certificates do not all name it in an authorityInformationAccess
extension, so the responder URL is *configured* (:data:`IGC_SANTE_OCSP_URL`
by default), never read from the certificate.

```python
client = OcspClient()                        # IGC-Santé's responder
answer = client.check(cert, issuer)          # an OcspResult, never raises
if answer.status is OcspStatus.REVOKED: ...
```

An answer is trusted only when

* it is signed by the certificate's CA itself, or by a *delegated responder*:
  a certificate the CA issued (signature checked) with the id-kp-OCSPSigning
  extended key usage, valid now, carried in the response (RFC 6960 4.2.2.2);
* its certID (hash of the issuer name and key, serial) is the one asked;
* it echoes the request's nonce (when the responder returns one; with
  ``require_nonce=True`` a response without the nonce is refused);
* thisUpdate is not in the future and nextUpdate is not past, both with a
  bounded leeway; without nextUpdate, thisUpdate must be recent (*max_age*).

Otherwise the answer is :attr:`OcspStatus.UNAVAILABLE` with a ``why`` code
(``TIMEOUT``, ``BAD_SIGNATURE``, ``UNAUTHORIZED_RESPONDER``,
``NONCE_MISMATCH``, ``STALE`` ...). Verified answers are cached in memory
until nextUpdate, at most *cache_ttl*.
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from cps_middleware.errors import RevocationFetchError, ValidationSetupError
from cps_middleware.messages import text
from cps_middleware.validation._http import http_request

__all__ = [
    "IGC_SANTE_OCSP_URL",
    "OcspClient",
    "OcspResult",
    "OcspStatus",
]

IGC_SANTE_OCSP_URL = "http://ocsp.esante.gouv.fr"
Clock = Callable[[], _dt.datetime]
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_RSASSA_PSS = "1.2.840.113549.1.1.10"
# Clock skew tolerated on thisUpdate / nextUpdate is bounded: a day of leeway would
# turn a stale answer into a current one.
_MAX_LEEWAY = _dt.timedelta(hours=1)


class OcspStatus(enum.Enum):
    """What the responder said about one certificate (or that it could not be asked)."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # the responder does not know this certificate
    UNAVAILABLE = "unavailable"  # no trustworthy answer: see OcspResult.why


@dataclass(frozen=True, slots=True)
class OcspResult:
    """One certificate's OCSP verdict.

    ``why`` is set for UNAVAILABLE (a code: ``TIMEOUT``, ``NETWORK``,
    ``HTTP_STATUS``, ``TOO_LARGE``, ``MALFORMED``, ``RESPONDER_ERROR``,
    ``BAD_SIGNATURE``, ``UNAUTHORIZED_RESPONDER``, ``NONCE_MISMATCH``,
    ``NONCE_MISSING``, ``CERTID_MISMATCH``, ``STALE``, ``NOT_YET_VALID``,
    ``NOT_CONFIGURED``); ``detail`` is the technical text (English, for logs).
    ``revocation_reason`` uses the names of :class:`~cps_middleware.validation.Revocation`
    (``"key_compromise"`` ...).
    """

    status: OcspStatus
    serial: int
    why: str = ""
    detail: str = ""
    revocation_time: _dt.datetime | None = None
    revocation_reason: str | None = None
    this_update: _dt.datetime | None = None
    next_update: _dt.datetime | None = None
    responder: str = ""  # subject of the certificate that signed the answer
    delegated: bool = False  # signed by a delegated responder, not the CA itself
    cached: bool = False
    url: str = ""
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is OcspStatus.GOOD

    def message(self, lang: str | None = None) -> str:
        """The verdict as a sentence (French by default)."""
        if self.status is OcspStatus.REVOKED:
            when = self.revocation_time.strftime("%Y-%m-%d %H:%M") if self.revocation_time else "?"
            return text(
                "revocation.ocsp_revoked",
                lang,
                serial=f"{self.serial:X}",
                reason=text(_code_or("revocation.reason_" + (self.revocation_reason or ""),
                                     "revocation.reason_unspecified"), lang),
                date=when,
            )
        if self.status is OcspStatus.UNAVAILABLE:
            return text(
                "revocation.ocsp_unavailable",
                lang,
                serial=f"{self.serial:X}",
                why=text(_why_code(self.why), lang),
            )
        return text(f"revocation.ocsp_{self.status.value}", lang, serial=f"{self.serial:X}")


def _code_or(code: str, fallback: str) -> str:
    from cps_middleware.messages import all_messages

    return code if code in all_messages() else fallback


def _why_code(why: str) -> str:
    return _code_or(f"revocation.why_{why.lower()}", "revocation.why_other")


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _unavailable(serial: int, url: str, started: float, why: str, detail: str) -> OcspResult:
    """An UNAVAILABLE answer for ``serial`` from ``url``, timed from ``started``."""
    return OcspResult(
        OcspStatus.UNAVAILABLE,
        serial,
        why,
        detail,
        url=url,
        elapsed_ms=(time.monotonic() - started) * 1000,
    )


class OcspClient:
    """Asks one configured OCSP responder; see the module docstring.

    *timeout* bounds each network wait and *deadline* the whole exchange
    (seconds); *max_bytes* caps the response. *leeway* is the clock skew
    allowed on thisUpdate / nextUpdate; *max_age* the age allowed for an
    answer without nextUpdate. *clock* gives "now" (tests move it).
    """

    def __init__(
        self,
        url: str | None = IGC_SANTE_OCSP_URL,
        *,
        timeout: float = 5.0,
        deadline: float = 10.0,
        max_bytes: int = 256 * 1024,
        leeway: _dt.timedelta = _dt.timedelta(minutes=5),
        max_age: _dt.timedelta = _dt.timedelta(hours=1),
        nonce: bool = True,
        require_nonce: bool = False,
        hash_algorithm: str = "sha1",
        cache_size: int = 4096,
        cache_ttl: _dt.timedelta = _dt.timedelta(hours=1),
        clock: Clock | None = None,
    ) -> None:
        if hash_algorithm not in _HASHES:
            raise ValidationSetupError(
                f"unknown OCSP hash {hash_algorithm!r}",
                function="OcspClient",
                hint="one of " + ", ".join(_HASHES),
            )
        if require_nonce and not nonce:
            raise ValidationSetupError(
                "require_nonce needs nonce=True", function="OcspClient"
            )
        if not _dt.timedelta(0) <= leeway <= _MAX_LEEWAY:
            raise ValidationSetupError(
                f"leeway must be between 0 and {_MAX_LEEWAY}", function="OcspClient"
            )
        if timeout <= 0 or deadline <= 0 or max_bytes <= 0 or cache_size < 0:
            raise ValidationSetupError(
                "timeout, deadline and max_bytes must be positive", function="OcspClient"
            )
        self.url = url
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.leeway = leeway
        self.max_age = max_age
        self.nonce = nonce
        self.require_nonce = require_nonce
        self._hash = _HASHES[hash_algorithm]
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self._clock = clock or _utcnow
        self._cache: OrderedDict[tuple[object, ...], tuple[OcspResult, _dt.datetime]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self.requests_sent = 0  # network exchanges made (the cache avoids the others)

    # -- public ----------------------------------------------------------------------

    def check(self, cert: x509.Certificate, issuer: x509.Certificate) -> OcspResult:
        """The verified status of *cert* (issued by *issuer*); never raises for bad input."""
        serial = _serial_of(cert)
        if self.url is None:
            return OcspResult(OcspStatus.UNAVAILABLE, serial, "NOT_CONFIGURED", "no OCSP URL")
        now = self._clock()
        try:
            request = self._request(cert, issuer, None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            return OcspResult(OcspStatus.UNAVAILABLE, serial, "MALFORMED", f"cannot ask: {exc}")
        key = (self.url, request.serial_number, request.issuer_name_hash, request.issuer_key_hash)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                result, expires = hit
                if now < expires:
                    self._cache.move_to_end(key)
                    return replace(result, cached=True, elapsed_ms=0.0)
                del self._cache[key]
        result = self._ask(cert, issuer, serial, now)
        if result.status is not OcspStatus.UNAVAILABLE and self.cache_size:
            expires = now + self.cache_ttl
            if result.next_update is not None:
                expires = min(expires, result.next_update)
            with self._lock:
                self._cache[key] = (result, expires)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return result

    def check_many(
        self, pairs: Iterable[tuple[x509.Certificate, x509.Certificate]]
    ) -> list[OcspResult]:
        """:meth:`check` for each (certificate, issuer) pair, in order."""
        return [self.check(c, i) for c, i in pairs]

    def clear_cache(self) -> None:
        """Forget the cached OCSP answers."""
        with self._lock:
            self._cache.clear()

    # -- internals -------------------------------------------------------------------

    def _request(
        self, cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None
    ) -> ocsp.OCSPRequest:
        builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, self._hash())
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build()

    def _ask(
        self, cert: x509.Certificate, issuer: x509.Certificate, serial: int, now: _dt.datetime
    ) -> OcspResult:
        assert self.url is not None
        url = self.url
        nonce = os.urandom(16) if self.nonce else None
        started = time.monotonic()
        unavailable = functools.partial(_unavailable, serial, url, started)

        body = self._request(cert, issuer, nonce).public_bytes(Encoding.DER)
        self.requests_sent += 1
        try:
            resp = http_request(
                url,
                method="POST",
                body=body,
                headers={
                    "Content-Type": "application/ocsp-request",
                    "Accept": "application/ocsp-response",
                },
                timeout=self.timeout,
                deadline=self.deadline,
                max_bytes=self.max_bytes,
                function="OcspClient.check",
            )
        except RevocationFetchError as exc:
            return unavailable(exc.code_name or "NETWORK", exc.message)
        if resp.status != 200:
            return unavailable("HTTP_STATUS", f"HTTP {resp.status}")
        try:
            answer = ocsp.load_der_ocsp_response(resp.body)
        except ValueError as exc:
            return unavailable("MALFORMED", f"not an OCSP response: {exc}")
        if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return unavailable("RESPONDER_ERROR", f"responder said {answer.response_status.name}")
        try:
            return self._judge(answer, cert, issuer, serial, nonce, now, url, started)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # a field cryptography cannot decode (unknown hash, bad extension ...)
            return unavailable("MALFORMED", f"unreadable OCSP response: {exc}")

    def _judge(
        self,
        answer: ocsp.OCSPResponse,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        serial: int,
        nonce: bytes | None,
        now: _dt.datetime,
        url: str,
        started: float,
    ) -> OcspResult:
        unavailable = functools.partial(_unavailable, serial, url, started)

        # 1. who signed it, and may they?
        signer, why = self._signer(answer, issuer, now)
        if signer is None:
            return unavailable(*why)
        if not _signature_ok(signer.public_key(), answer):
            return unavailable("BAD_SIGNATURE", "the response signature does not verify")
        delegated = signer is not issuer
        # 2. the nonce
        sent = nonce
        echoed: bytes | None
        try:
            echoed = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if sent is not None and echoed is not None and echoed != sent:
            return unavailable("NONCE_MISMATCH", "the response answers another request (nonce)")
        if self.require_nonce and echoed is None:
            return unavailable("NONCE_MISSING", "the response carries no nonce")
        # 3. the single response for this certificate
        single = None
        for s in answer.responses:
            expected = self._request_with(cert, issuer, s.hash_algorithm)
            if (
                expected is not None
                and s.serial_number == expected.serial_number
                and s.issuer_name_hash == expected.issuer_name_hash
                and s.issuer_key_hash == expected.issuer_key_hash
            ):
                single = s
                break
        if single is None:
            return unavailable("CERTID_MISMATCH", "no answer in the response for this certificate")
        # 4. times
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        if this_update > now + self.leeway:
            return unavailable("NOT_YET_VALID", f"thisUpdate {this_update:%Y-%m-%d %H:%M} is ahead")
        if next_update is not None and next_update < now - self.leeway:
            return unavailable("STALE", f"nextUpdate {next_update:%Y-%m-%d %H:%M} has passed")
        if next_update is None and this_update < now - self.max_age:
            return unavailable("STALE", f"thisUpdate {this_update:%Y-%m-%d %H:%M} is too old")
        common = {
            "this_update": this_update,
            "next_update": next_update,
            "responder": signer.subject.rfc4514_string(),
            "delegated": delegated,
            "url": url,
            "elapsed_ms": (time.monotonic() - started) * 1000,
        }
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.GOOD:
            return OcspResult(OcspStatus.GOOD, serial, **common)  # type: ignore[arg-type]
        if status is ocsp.OCSPCertStatus.REVOKED:
            reason = single.revocation_reason
            return OcspResult(
                OcspStatus.REVOKED,
                serial,
                revocation_time=single.revocation_time_utc,
                revocation_reason=reason.name if reason is not None else "unspecified",
                **common,  # type: ignore[arg-type]
            )
        return OcspResult(OcspStatus.UNKNOWN, serial, **common)  # type: ignore[arg-type]

    def _request_with(
        self, cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
    ) -> ocsp.OCSPRequest | None:
        cls = _HASHES.get(algorithm.name)
        if cls is None:
            return None
        return ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, cls()).build()

    def _signer(
        self, answer: ocsp.OCSPResponse, issuer: x509.Certificate, now: _dt.datetime
    ) -> tuple[x509.Certificate | None, tuple[str, str]]:
        """The certificate allowed to sign this answer, or (None, (why, detail))."""
        if _is_responder(issuer, answer):
            return issuer, ("", "")
        problem = (
            "the response is signed neither by the CA nor by a responder certificate it carries"
        )
        for cand in answer.certificates:
            if not _is_responder(cand, answer):
                continue
            why = self._delegation_problem(cand, issuer, now)
            if why is None:
                return cand, ("", "")
            problem = why
        return None, ("UNAUTHORIZED_RESPONDER", problem)

    def _delegation_problem(
        self, cand: x509.Certificate, issuer: x509.Certificate, now: _dt.datetime
    ) -> str | None:
        if cand.issuer != issuer.subject:
            return f"responder certificate issued by {cand.issuer.rfc4514_string()}, not the CA"
        try:
            cand.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            return "responder certificate not signed by the CA"
        try:
            eku = cand.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (x509.ExtensionNotFound, ValueError):
            return "responder certificate without the OCSP-signing usage"
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            return "responder certificate without the OCSP-signing usage"
        if not (
            cand.not_valid_before_utc - self.leeway <= now <= cand.not_valid_after_utc + self.leeway
        ):
            return "responder certificate outside its validity period"
        return None


def _serial_of(cert: x509.Certificate) -> int:
    try:
        return cert.serial_number
    except ValueError:
        return 0


def _is_responder(cert: x509.Certificate, answer: ocsp.OCSPResponse) -> bool:
    name = answer.responder_name
    if name is not None:
        return cert.subject == name
    try:
        digest = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return digest == answer.responder_key_hash


def _signature_ok(key: object, answer: ocsp.OCSPResponse) -> bool:
    try:
        data, sig = answer.tbs_response_bytes, answer.signature
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, data)
            return True
        algorithm = answer.signature_hash_algorithm
        if algorithm is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            if answer.signature_algorithm_oid.dotted_string == _RSASSA_PSS:
                return False  # parameters not exposed by cryptography: refuse rather than guess
            key.verify(sig, data, padding.PKCS1v15(), algorithm)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(algorithm))
            return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return False
