"""The "Test SSL" of the ANS tools: one mutual-TLS request with the card, explained.

:func:`test_ssl` connects to a URL with the card (or any key), sends one
HTTP GET and reports what happened as a :class:`TestSslResult`: protocol,
cipher, the signature the client made, the server's chain and whether it was
trusted, whether the server accepted the client certificate (HTTP status or
TLS alert), timings, and for a failure a reason code and a plain-language
explanation. It never raises for a failed connection.

The server chain is the one the server sent, leaf first. Python >= 3.13 hands
it over (``SSLSocket.get_unverified_chain()``); before that ``ssl`` gives the
leaf only, so the chain comes from a second, short handshake with pyOpenSSL
to the same host, port and name: no client certificate, no verification,
nothing that can reach the card (pyOpenSSL has its own OpenSSL copy, without
the card's provider). The server sends its Certificate message before it asks
for the client's, so the chain arrives even when that handshake then fails
for want of a client certificate. It is made after the card connection is
closed (``openssl s_server`` serves one connection at a time) and kept only
when its leaf is the one the card connection saw. Whether the server was
trusted is always the card connection's verdict.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
import selectors
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

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

    def to_dict(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }


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
    server_chain: tuple[ServerCertificate, ...] = ()  # as the server sent it, leaf first
    # How server_chain was read: "get_unverified_chain" (Python >= 3.13, the
    # card connection itself), "pyopenssl" (a second handshake without client
    # certificate), "leaf_only" (that handshake failed or saw another leaf),
    # None when there is no chain.
    server_chain_source: str | None = None
    server_verified: bool = False
    http_status: int | None = None
    http_body: str = ""  # the start of the server's answer (4 KiB at most)
    client_holder: Practitioner | None = None  # who the client certificate names
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.failure.value if self.failure else "the server accepted the card"

    @property
    def signature_scheme(self) -> str | None:
        """The TLS SignatureScheme of the client signature, e.g. ``rsa_pss_rsae_sha256``."""
        return _SCHEMES.get(self.client_signature or "")

    def to_text(self) -> str:
        lines = [f"Test SSL {self.url}: {'OK' if self.ok else 'FAILED'} — {self.reason}"]
        if self.client_holder is not None:
            lines.append(f"  card holder: {self.client_holder}")
        if self.detail:
            lines.append(f"  detail: {self.detail}")
        if self.protocol:
            lines.append(f"  protocol: {self.protocol}, cipher: {self.cipher}")
        if self.client_signature:
            scheme = f" ({self.signature_scheme})" if self.signature_scheme else ""
            lines.append(f"  client signature: {self.client_signature}{scheme}")
        lines.append(f"  server verified: {'yes' if self.server_verified else 'no'}")
        if self.server_chain:
            lines.append(
                f"  server chain: {len(self.server_chain)} certificate(s), "
                f"read with {_SOURCE_TEXT.get(self.server_chain_source or '', '?')}"
            )
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


#: the signer's "<padding> <hash>" -> TLS SignatureScheme (RFC 8446 4.2.3; the
#: rsa_pss_rsae_* schemes are the ones a card's rsaEncryption key signs)
_SCHEMES = {
    **{f"rsa_pss {md}": f"rsa_pss_rsae_{md}" for md in ("sha256", "sha384", "sha512")},
    **{f"rsa_pkcs1 {md}": f"rsa_pkcs1_{md}" for md in ("sha1", "sha256", "sha384", "sha512")},
    "ecdsa sha256": "ecdsa_secp256r1_sha256",
    "ecdsa sha384": "ecdsa_secp384r1_sha384",
    "ecdsa sha512": "ecdsa_secp521r1_sha512",
}

_SOURCE_TEXT = {
    "get_unverified_chain": "the card connection (get_unverified_chain)",
    "pyopenssl": "a separate handshake without the card (pyOpenSSL)",
    "leaf_only": "the card connection (leaf only: the separate handshake failed or differed)",
}


def _describe(ders: list[bytes]) -> tuple[ServerCertificate, ...]:
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


@dataclass(frozen=True)
class _Peer:
    """What the card connection saw of the server (read before the socket closes)."""

    leaf: bytes | None  # None: the handshake stopped before (server untrusted)
    sent: list[bytes] | None  # the whole chain, when ``ssl`` gives it (Python >= 3.13)

    @classmethod
    def of(cls, sock: ssl.SSLSocket) -> _Peer:
        getter = getattr(sock, "get_unverified_chain", None)  # Python >= 3.13
        sent = [bytes(der) for der in getter() or ()] if getter is not None else None
        return cls(sock.getpeercert(binary_form=True), sent or None)


def _fetch_chain(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> list[bytes]:
    """The chain the server sends, by a handshake without client certificate; [] on failure.

    Never touches the card: the pyOpenSSL context has no certificate and no
    key. The whole exchange is bounded by *timeout* seconds.
    """
    from OpenSSL import SSL  # only needed here (Python < 3.13, or an untrusted server)

    deadline = time.monotonic() + timeout
    try:
        pctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        pctx.set_verify(SSL.VERIFY_NONE)
        # the same protocol bounds as the card connection: a server may pick
        # another certificate for another version
        if int(ctx.minimum_version) > 0:
            pctx.set_min_proto_version(int(ctx.minimum_version))
        if int(ctx.maximum_version) > 0:
            pctx.set_max_proto_version(int(ctx.maximum_version))
        raw = socket.create_connection((host, port), timeout=timeout)
    except (OSError, SSL.Error):
        return []
    with raw, selectors.DefaultSelector() as sel:
        raw.setblocking(False)
        conn = SSL.Connection(pctx, raw)
        try:
            ipaddress.ip_address(host)
        except ValueError:  # a name: send it as SNI, as ssl does (not for an address)
            try:
                conn.set_tlsext_host_name(host.encode("idna"))
            except (UnicodeError, SSL.Error):
                return []
        conn.set_connect_state()
        sel.register(raw, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                sel.modify(raw, selectors.EVENT_READ)
            except SSL.WantWriteError:
                sel.modify(raw, selectors.EVENT_WRITE)
            except (SSL.Error, OSError):
                break  # e.g. the alert for the missing client certificate: the chain came before
            sel.select(left)
        chain = conn.get_peer_cert_chain() or []
        return [c.to_cryptography().public_bytes(Encoding.DER) for c in chain]


def _server_chain(
    peer: _Peer,
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    timeout: float,
    timings: dict[str, float],
) -> dict[str, Any]:
    """``server_chain`` and ``server_chain_source`` for the result."""
    if peer.sent:
        return {"server_chain": _describe(peer.sent), "server_chain_source": "get_unverified_chain"}
    t = time.perf_counter()
    fetched = _fetch_chain(host, port, ctx, timeout)
    timings["chain_fetch"] = (time.perf_counter() - t) * 1e3
    if fetched and (peer.leaf is None or fetched[0] == peer.leaf):
        return {"server_chain": _describe(fetched), "server_chain_source": "pyopenssl"}
    if peer.leaf:
        return {"server_chain": _describe([peer.leaf]), "server_chain_source": "leaf_only"}
    return {}


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
        if peer is not None:  # the card connection is closed by now
            kw.update(_server_chain(peer, host, port, ctx, timeout, timings))
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
    peer: _Peer | None = None

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
        peer = _Peer(None, None)  # show what was not trusted
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
        "server_verified": True,
    }
    peer = _Peer.of(sock)
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
