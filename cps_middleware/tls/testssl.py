"""The "Test SSL" of the ANS tools: one mutual-TLS request with the card, explained.

:func:`test_ssl` connects to a URL with the card (or any key), sends one
HTTP GET and reports what happened as a :class:`TestSslResult`: protocol,
cipher, the signature the client made, the server's chain and whether it was
trusted, whether the server accepted the client certificate (HTTP status or
TLS alert), timings, and for a failure a reason code and a plain-language
explanation. It never raises for a failed connection.
"""

from __future__ import annotations

import datetime as _dt
import enum
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from cps_middleware.cards.identity import Practitioner, practitioner_from_certificate
from cps_middleware.errors import (
    CardRemoved,
    CpsError,
    MechanismUnsupported,
    NotLoggedIn,
    PinError,
)
from cps_middleware.tls import _native
from cps_middleware.tls.context import client_context

__all__ = ["Failure", "ServerCertificate", "TestSslResult", "test_ssl"]


class Failure(enum.Enum):
    """Why a Test SSL failed; the value is the plain-language reason."""

    NO_CLIENT_CERT_REQUESTED = "the server did not ask for a client certificate"
    CLIENT_CERT_REJECTED = "the server rejected the card's certificate"
    MECHANISM_REFUSED = "the card refused the signature mechanism the server asked for"
    PIN_NEEDED = "the card needs the PIN before it can sign (log in first)"
    CARD_REMOVED = "the card was removed during the connection"
    SIGNATURE_FAILED = "the card could not sign"
    SERVER_UNTRUSTED = "the server's certificate is not trusted (or not for this name)"
    NETWORK = "the server could not be reached"
    TLS = "the TLS connection failed"


@dataclass(frozen=True)
class ServerCertificate:
    subject: str
    issuer: str
    not_before: _dt.datetime
    not_after: _dt.datetime


@dataclass(frozen=True)
class TestSslResult:
    """What one Test SSL saw; ``ok`` is true when the server accepted the card."""

    __test__ = False  # not a pytest test class

    url: str
    ok: bool
    failure: Failure | None = None
    detail: str = ""
    protocol: str | None = None
    cipher: str | None = None
    client_signature: str | None = None  # e.g. "rsa_pss sha256", "rsa_pkcs1 sha256", "ecdsa sha256"
    client_certificate_sent: bool = False
    server_chain: tuple[ServerCertificate, ...] = ()
    server_verified: bool = False
    http_status: int | None = None
    http_body: str = ""  # the start of the server's answer (4 KiB at most)
    client_holder: Practitioner | None = None  # who the client certificate names
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.failure.value if self.failure else "the server accepted the card"

    def to_text(self) -> str:
        lines = [f"Test SSL {self.url}: {'OK' if self.ok else 'FAILED'} — {self.reason}"]
        if self.client_holder is not None:
            lines.append(f"  card holder: {self.client_holder}")
        if self.detail:
            lines.append(f"  detail: {self.detail}")
        if self.protocol:
            lines.append(f"  protocol: {self.protocol}, cipher: {self.cipher}")
        if self.client_signature:
            lines.append(f"  client signature: {self.client_signature}")
        lines.append(f"  server verified: {'yes' if self.server_verified else 'no'}")
        for c in self.server_chain:
            lines.append(
                f"  server cert: {c.subject} (issuer {c.issuer}, "
                f"{c.not_before:%Y-%m-%d} → {c.not_after:%Y-%m-%d})"
            )
        if self.http_status is not None:
            lines.append(f"  HTTP status: {self.http_status}")
        if self.timings_ms:
            lines.append(
                "  timings (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings_ms.items())
            )
        return "\n".join(lines)


def _chain(sock: ssl.SSLSocket) -> tuple[ServerCertificate, ...]:
    ders: list[bytes] = []
    getter = getattr(sock, "get_verified_chain", None)  # Python >= 3.13
    if getter is not None:
        ders = [bytes(c) if isinstance(c, bytes) else c.public_bytes() for c in getter()]
    else:
        der = sock.getpeercert(binary_form=True)
        if der:
            ders = [der]
    out = []
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        out.append(
            ServerCertificate(
                cert.subject.rfc4514_string(),
                cert.issuer.rfc4514_string(),
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
            )
        )
    return tuple(out)


def test_ssl(
    url: str,
    card_or_key: object,
    certificate: object = None,
    *,
    cafile: str | None = None,
    cadata: str | bytes | None = None,
    pss: bool | None = None,
    timeout: float = 15.0,
) -> TestSslResult:
    """Connect to *url* with the card and report; never raises for a failed test."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timings: dict[str, float] = {}
    signatures: list[str] = []

    def spying(inner: _native.Signer) -> _native.Signer:
        def sign(md: str, digest: bytes, pad: str | None, salt: int, mgf1: str | None) -> bytes:
            t = time.perf_counter()
            signatures.append(f"{'ecdsa' if pad is None else 'rsa_' + pad} {md}")
            try:
                return inner(md, digest, pad, salt, mgf1)
            finally:
                timings["card_signature"] = (time.perf_counter() - t) * 1e3

        return sign

    def result(ok: bool, failure: Failure | None, detail: str = "", **kw: Any) -> TestSslResult:
        return TestSslResult(
            url,
            ok,
            failure,
            detail,
            client_signature=signatures[-1] if signatures else None,
            client_certificate_sent=bool(signatures),
            client_holder=holder,
            timings_ms=dict(timings),
            **kw,
        )

    holder: Practitioner | None = None

    try:
        ctx = client_context(
            card_or_key, certificate, cafile=cafile, cadata=cadata, pss=pss, _wrap_signer=spying
        )
    except CpsError as exc:
        return result(False, _failure_for(exc), str(exc))
    holder = practitioner_from_certificate(ctx.credentials.certificate)

    t0 = time.perf_counter()
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return result(False, Failure.NETWORK, str(exc))
    timings["tcp_connect"] = (time.perf_counter() - t0) * 1e3
    t1 = time.perf_counter()
    try:
        sock = ctx.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        return result(False, Failure.SERVER_UNTRUSTED, exc.verify_message or str(exc))
    except CpsError as exc:
        raw.close()
        return result(False, _failure_for(exc), str(exc))
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        return result(False, _alert_failure(exc), str(exc))
    timings["tls_handshake"] = (time.perf_counter() - t1) * 1e3
    info: dict[str, Any] = {
        "protocol": sock.version(),
        "cipher": (sock.cipher() or ("",))[0],
        "server_chain": _chain(sock),
        "server_verified": True,
    }
    t2 = time.perf_counter()
    try:
        with sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while len(data) < 65536:
                try:
                    chunk = sock.recv(16384)
                except ssl.SSLError:
                    if data:  # a server closing without close_notify after answering
                        break
                    raise
                if not chunk:
                    break
                data += chunk
    except CpsError as exc:
        return result(False, _failure_for(exc), str(exc), **info)
    except (ssl.SSLError, OSError) as exc:
        # In TLS 1.3 the server checks the client certificate after the
        # handshake: its refusal arrives as an alert on the first read, or as
        # a reset / EOF when the close overtakes the alert.
        failure = _alert_failure(exc)
        if signatures and isinstance(exc, ssl.SSLEOFError | ConnectionResetError | BrokenPipeError):
            failure = Failure.CLIENT_CERT_REJECTED
        return result(False, failure, str(exc), **info)
    timings["http_request"] = (time.perf_counter() - t2) * 1e3
    status: int | None = None
    info["http_body"] = data.partition(b"\r\n\r\n")[2][:4096].decode("utf-8", "replace")
    first = data.split(b"\r\n", 1)[0].split()
    if len(first) >= 2 and first[1].isdigit():
        status = int(first[1])
    if not signatures:
        return result(False, Failure.NO_CLIENT_CERT_REQUESTED, http_status=status, **info)
    if status is not None and status in (401, 403, 495, 496):
        return result(
            False, Failure.CLIENT_CERT_REJECTED, f"HTTP {status}", http_status=status, **info
        )
    return result(
        status is not None and status < 400,
        None if status and status < 400 else Failure.TLS,
        http_status=status,
        **info,
    )


def _failure_for(exc: BaseException) -> Failure:
    if isinstance(exc, CardRemoved):
        return Failure.CARD_REMOVED
    if isinstance(exc, NotLoggedIn | PinError):
        return Failure.PIN_NEEDED
    if isinstance(exc, MechanismUnsupported):
        return Failure.MECHANISM_REFUSED
    return Failure.SIGNATURE_FAILED


def _alert_failure(exc: BaseException) -> Failure:
    text = str(exc).lower()
    if isinstance(exc, ssl.SSLError) and ("alert" in text or "certificate required" in text):
        return Failure.CLIENT_CERT_REJECTED
    if isinstance(exc, ssl.SSLError):
        return Failure.TLS
    return Failure.NETWORK


test_ssl.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
