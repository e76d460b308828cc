"""Real revocation servers on loopback for tests: an HTTP server for CRLs, ``openssl ocsp``.

:class:`RevocationHttpServer` is a Python ``http.server`` in a thread on
127.0.0.1 (ephemeral port). It serves what you :meth:`~RevocationHttpServer.publish`
at a path, to GET and POST alike, with an ETag and a Last-Modified date, and
answers conditional GETs (If-None-Match / If-Modified-Since) with 304. Per
path it can wait before answering (*delay*), send the body slowly (*drip*),
leave out the Content-Length, or answer another status: slow, oversized and
broken servers for the CRL fetcher. It records every request.

:class:`OpenSslOcspResponder` runs the real ``openssl ocsp`` responder
(``-index``, ``-port 0``; the port it prints is read back) for one CA, signed
by the CA itself or by a delegated responder certificate
(:meth:`cps_middleware.testing.pki.TestPki.ocsp_responder`), and stops it by
PID. :func:`ocsp_response` builds a response by hand (stale dates, another
serial, no nonce) for a :class:`RevocationHttpServer` to serve.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import email.utils
import hashlib
import http.server
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from cps_middleware.testing.pki import CertifiedKey
from cps_middleware.testing.servers import stop_process

__all__ = [
    "OpenSslOcspResponder",
    "Published",
    "RecordedRequest",
    "RevocationHttpServer",
    "ocsp_response",
]


@dataclass
class Published:
    """What the server answers at one path, and how."""

    body: bytes
    content_type: str = "application/pkix-crl"
    etag: str | None = None  # None: no ETag header
    last_modified: _dt.datetime | None = None  # None: no Last-Modified header
    delay: float = 0.0  # seconds to wait before answering
    drip: float = 0.0  # seconds between 256-byte pieces of the body
    send_length: bool = True  # False: no Content-Length, the body ends with the connection
    status: int = 200


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(min(n, 1 << 20)))

    def _answer(self, body: bytes) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        item = owner.published.get(path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if item is None:
            status = 404
        elif item.status != 200:
            status = item.status
        elif self.command == "GET" and _not_modified(item, headers):
            status = 304
        else:
            status = 200
        owner.requests.append(RecordedRequest(self.command, path, headers, body, status))
        if item is not None and item.delay:
            time.sleep(item.delay)
        self.send_response(status)
        if item is not None and status in (200, 304):
            if item.etag:
                self.send_header("ETag", item.etag)
            if item.last_modified:
                self.send_header(
                    "Last-Modified", email.utils.format_datetime(item.last_modified, usegmt=True)
                )
        payload = item.body if item is not None and status == 200 else b""
        if status == 200 and item is not None:
            self.send_header("Content-Type", item.content_type)
            if item.send_length:
                self.send_header("Content-Length", str(len(payload)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
        else:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if status != 200 or item is None:
            return
        if not item.drip:
            self.wfile.write(payload)
            return
        for i in range(0, len(payload), 256):
            self.wfile.write(payload[i : i + 256])
            self.wfile.flush()
            time.sleep(item.drip)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _not_modified(item: Published, headers: dict[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        return item.etag is not None and inm.strip() == item.etag
    ims = headers.get("if-modified-since")
    if ims and item.last_modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        return item.last_modified.replace(microsecond=0) <= since
    return False


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping (delay/drip) does not hold stop()
    owner: RevocationHttpServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # client gave up: quiet
        pass


class RevocationHttpServer:
    """A loopback HTTP server publishing CRLs (or OCSP responses); see the module docstring."""

    def __init__(self) -> None:
        self.published: dict[str, Published] = {}
        self.requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start serving on 127.0.0.1 in a background thread; returns the server."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        """The address of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def publish(
        self,
        path: str,
        body: bytes | x509.CertificateRevocationList,
        *,
        etag: bool | str = True,
        last_modified: _dt.datetime | bool = True,
        **options: Any,
    ) -> str:
        """Serve *body* at *path* (a CRL object is served as DER); returns its URL.

        ``etag=True`` derives the ETag from the body; ``last_modified=True``
        uses the current second. Other options: see :class:`Published`.
        """
        data = (
            body.public_bytes(serialization.Encoding.DER)
            if isinstance(body, x509.CertificateRevocationList)
            else body
        )
        tag = (
            f'"{hashlib.sha256(data).hexdigest()[:16]}"' if etag is True else (etag or None)
        )
        when = (
            _dt.datetime.now(_dt.UTC).replace(microsecond=0)
            if last_modified is True
            else (last_modified or None)
        )
        self.published[path] = Published(data, etag=tag, last_modified=when, **options)
        return self.url(path)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """The requests received for ``path``, oldest first."""
        return [r for r in self.requests if r.path == path]


# --- openssl ocsp ------------------------------------------------------------------------

_OPENSSL_REASONS = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "CACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.remove_from_crl: "removeFromCRL",
}


def _index_time(t: _dt.datetime) -> str:
    return t.astimezone(_dt.UTC).strftime("%y%m%d%H%M%SZ")


def _index_serial(n: int) -> str:
    h = format(n, "X")
    return "0" + h if len(h) % 2 else h  # as OpenSSL's BN_bn2hex writes it


def _index_line(
    cert: x509.Certificate, revoked: tuple[x509.ReasonFlags, _dt.datetime] | None
) -> str:
    status, rev = "V", ""
    if revoked is not None:
        status = "R"
        rev = _index_time(revoked[1]) + "," + _OPENSSL_REASONS.get(revoked[0], "unspecified")
    subject = "/" + "/".join(
        a.rfc4514_string().replace("/", "\\/") for rdn in cert.subject.rdns for a in rdn
    )
    expiry = _index_time(cert.not_valid_after_utc)
    return "\t".join([status, expiry, rev, _index_serial(cert.serial_number), "unknown", subject])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class OpenSslOcspResponder:
    """``openssl ocsp`` answering for the CA *ca*, signed with *signer*'s key.

    *good* certificates are answered "good", *revoked* ones (certificate,
    reason, date) "revoked", any other serial "unknown". *signer* is the CA
    (its :class:`CertifiedKey`) or a delegated responder; *next_update_minutes*
    sets nextUpdate (0: none). *bad_signature* corrupts each signature
    (``-badsig``); *include_signer=False* leaves the signer certificate out of
    the response (``-resp_no_certs``); *by_key_id* names the responder by key
    hash (``-resp_key_id``).
    """

    ca: x509.Certificate
    signer: CertifiedKey
    good: Iterable[x509.Certificate] = ()
    revoked: Iterable[tuple[x509.Certificate, x509.ReasonFlags, _dt.datetime]] = ()
    next_update_minutes: int = 60
    bad_signature: bool = False
    include_signer: bool = True
    by_key_id: bool = False
    _dir: Path | None = field(init=False, default=None)
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _port: int = field(init=False, default=0)
    _stdout: list[bytes] = field(init=False, default_factory=list)

    def start(self, timeout: float = 10.0) -> Self:
        """Start ``openssl ocsp``; returns the responder once it answers."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl is not installed")
        d = Path(tempfile.mkdtemp(prefix="cps-ocsp-"))
        self._dir = d
        lines = [_index_line(c, None) for c in self.good]
        lines += [_index_line(c, (reason, when)) for c, reason, when in self.revoked]
        (d / "index.txt").write_text("".join(line + "\n" for line in lines))
        (d / "index.txt.attr").write_text("unique_subject = no\n")
        (d / "ca.pem").write_bytes(_pem(self.ca))
        (d / "signer.pem").write_bytes(self.signer.pem)
        (d / "signer.key").write_bytes(self.signer.private_key_pem())
        os.chmod(d / "signer.key", 0o600)
        args = [
            openssl, "ocsp", "-index", str(d / "index.txt"), "-port", "0",
            "-CA", str(d / "ca.pem"), "-rsigner", str(d / "signer.pem"),
            "-rkey", str(d / "signer.key"), "-ignore_err",
        ]  # fmt: skip
        if self.next_update_minutes:
            args += ["-nmin", str(self.next_update_minutes)]
        if self.bad_signature:
            args.append("-badsig")
        if not self.include_signer:
            args.append("-resp_no_certs")
        if self.by_key_id:
            args.append("-resp_key_id")
        log = open(d / "stderr.log", "wb")  # noqa: SIM115 - the process keeps it
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
        log.close()
        self._port = self._read_port(timeout)
        return self

    def _read_port(self, timeout: float) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        end = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = end - time.monotonic()
            if left <= 0 or self._proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"openssl ocsp did not start: {buf!r} {self.log}")
            ready, _, _ = select.select([out], [], [], left)
            if ready:
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
        # "ACCEPT [::]:PORT PID=..." (OpenSSL 3)
        line = buf.split(b"\n", 1)[0].decode("ascii", "replace")
        if not line.startswith("ACCEPT "):
            self.stop()
            raise RuntimeError(f"unexpected openssl ocsp output: {line!r}")
        port = int(line.split()[1].rsplit(":", 1)[1])
        # keep draining stdout so that the process never blocks on a full pipe
        threading.Thread(target=self._drain, args=(out,), daemon=True).start()
        return port

    def _drain(self, out: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := out.read1(4096):
                self._stdout.append(chunk)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log(self) -> str:
        if self._dir is None:
            return ""
        try:
            return (self._dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the ``openssl`` process by PID and remove its files."""
        proc, self._proc = self._proc, None
        stop_process(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- hand-made responses ------------------------------------------------------------------


def ocsp_response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    signer: CertifiedKey,
    *,
    status: str = "good",
    this_update: _dt.datetime | None = None,
    next_update: _dt.datetime | None = None,
    revocation: tuple[_dt.datetime, x509.ReasonFlags] | None = None,
    nonce: bytes | None = None,
    include_signer: bool = True,
) -> bytes:
    """A signed OCSP response (DER) about *cert*, with the dates you choose.

    *status*: ``"good"``, ``"revoked"`` (with *revocation*) or ``"unknown"``.
    Used to serve stale or foreign answers that ``openssl ocsp`` cannot make.
    """
    now = _dt.datetime.now(_dt.UTC)
    cert_status = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }[status]
    rev_time, rev_reason = revocation if revocation is not None else (None, None)
    if cert_status is ocsp.OCSPCertStatus.REVOKED and rev_time is None:
        rev_time, rev_reason = now - _dt.timedelta(days=1), x509.ReasonFlags.key_compromise
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=cert_status,
            this_update=this_update or now,
            next_update=next_update,
            revocation_time=rev_time,
            revocation_reason=rev_reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME, signer.certificate)
    )
    if include_signer and signer.certificate.subject != issuer.subject:
        builder = builder.certificates([signer.certificate])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signer.private_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER
    )
