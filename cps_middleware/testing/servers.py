"""Local mutual-TLS test servers: a Python HTTPS server and ``openssl s_server``.

:class:`MutualTlsServer` listens on 127.0.0.1 (ephemeral port), requires a
client certificate issued by the CA(s) it is given (the test PKI's CPS CA by
default), and answers every HTTP request with JSON describing the TLS session
and the client: subject, issuer, serial, the holder as
:class:`~cps_middleware.cards.identity.Practitioner`. Use it as a context
manager, from the ``cps_tls_server`` fixture, or from the demo.

:class:`OpenSslServer` runs ``openssl s_server -Verify 1 -www`` (the real
OpenSSL command line server) with the same server certificate, for tests that
want a server that is not Python and options Python's ``ssl`` lacks (the
signature algorithms asked of the client: ``client_sigalgs``).

:class:`ServerPki` makes the server side: a throw-away "TEST CPS SERVER CA"
and a server certificate for ``localhost`` / ``127.0.0.1`` (EC P-256, fast),
optionally issued by an intermediate CA that the servers send too.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps_middleware.cards._x509 import readable_name
from cps_middleware.cards.identity import practitioner_from_certificate
from cps_middleware.testing.pki import key_usage

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding

__all__ = [
    "ClientCertMode",
    "MutualTlsServer",
    "OpenSslServer",
    "ServerPki",
    "SlowRSAKey",
    "max_loop_lag",
]

ClientCertMode = Literal["required", "optional", "none"]
_T = TypeVar("_T")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class ServerPki:
    """A server CA and a certificate for ``localhost`` and ``127.0.0.1``.

    With ``intermediate=True`` the server certificate is issued by a
    "TEST CPS SERVER INTERMEDIATE CA" (itself issued by the root), and the
    servers send both: a chain of two certificates, like most real servers.
    """

    hostname: str = "localhost"
    intermediate: bool = False
    ca_key: ec.EllipticCurvePrivateKey = field(init=False)
    ca_certificate: x509.Certificate = field(init=False)
    intermediate_certificate: x509.Certificate | None = field(init=False, default=None)
    key: ec.EllipticCurvePrivateKey = field(init=False)
    certificate: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST CPS SERVER CA")])
        self.ca_certificate = self._ca(
            ca_name, self.ca_key.public_key(), ca_name, self.ca_key, 1 if self.intermediate else 0
        )
        issuer_name, issuer_key = ca_name, self.ca_key
        if self.intermediate:
            issuer_key = ec.generate_private_key(ec.SECP256R1())
            issuer_name = x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, "TEST CPS SERVER INTERMEDIATE CA")]
            )
            self.intermediate_certificate = self._ca(
                issuer_name, issuer_key.public_key(), ca_name, self.ca_key, 0
            )
        now = _dt.datetime.now(_dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.hostname)]))
            .issuer_name(issuer_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(self.hostname),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(issuer_key, hashes.SHA256())
        )

    @staticmethod
    def _ca(
        name: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        issuer: x509.Name,
        issuer_key: ec.EllipticCurvePrivateKey,
        path_length: int,
    ) -> x509.Certificate:
        now = _dt.datetime.now(_dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """What the servers send: the server certificate, then the intermediate if any."""
        if self.intermediate_certificate is None:
            return (self.certificate,)
        return (self.certificate, self.intermediate_certificate)

    @property
    def ca_pem(self) -> bytes:
        return _pem(self.ca_certificate)

    def write(self, directory: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
        """Write ``server.pem``, ``server.key``, ``ca.pem`` into *directory*.

        ``server.pem`` holds the whole chain the server sends (leaf first);
        with an intermediate, ``chain.pem`` holds the intermediate alone (for
        ``openssl s_server -cert_chain``).
        """
        d = Path(directory)
        cert, key, ca = d / "server.pem", d / "server.key", d / "ca.pem"
        cert.write_bytes(b"".join(_pem(c) for c in self.chain))
        if self.intermediate_certificate is not None:
            (d / "chain.pem").write_bytes(_pem(self.intermediate_certificate))
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ca.write_bytes(self.ca_pem)
        return cert, key, ca


def _client_ca_pem(client_cas: Iterable[x509.Certificate | bytes]) -> str:
    parts = []
    for c in client_cas:
        cert = c if isinstance(c, x509.Certificate) else x509.load_der_x509_certificate(c)
        parts.append(_pem(cert).decode())
    return "".join(parts)


def _describe_client(der: bytes | None) -> dict[str, Any] | None:
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    holder = practitioner_from_certificate(cert)
    return {
        "subject": readable_name(cert.subject),
        "issuer": readable_name(cert.issuer),
        "serial": format(cert.serial_number, "X"),
        "ps_id_nat": holder.ps_id_nat,
        "holder": holder.to_dict(),
        "display_name": holder.display_name,
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def setup(self) -> None:
        sock: ssl.SSLSocket = self.request
        sock.settimeout(self.server.owner.timeout)
        try:
            sock.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.server.owner._record_failure(exc)
            self.handshake_ok = False
        else:
            self.handshake_ok = True
            self.server.owner._count()
        super().setup()

    def handle(self) -> None:
        if self.handshake_ok:
            try:
                super().handle()
            except (ssl.SSLError, OSError) as exc:
                self.server.owner._record_failure(exc)

    def do_GET(self) -> None:
        sock: ssl.SSLSocket = self.request
        client = _describe_client(sock.getpeercert(binary_form=True))
        body = {
            "path": self.path,
            "tls": {"version": sock.version(), "cipher": (sock.cipher() or ("",))[0]},
            "client": client,
        }
        if client is None:
            status, body["error"] = 403, "no client certificate"
        else:
            status = 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:  # tell the client, or it may reuse a closed socket
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: MutualTlsServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet
        pass


class _LocalServer:
    """What both servers share: the server certificate in a temporary folder, ``with``."""

    def __init__(self, server_pki: ServerPki | None, prefix: str) -> None:
        self.server_pki = server_pki or ServerPki()
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        self.cert_file, self.key_file, self.ca_file = self.server_pki.write(self._dir.name)

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``https://localhost:<port>/`` (the certificate names localhost and 127.0.0.1)."""
        return f"https://{self.server_pki.hostname}:{self.port}/"

    @property
    def ca_pem(self) -> bytes:
        return self.server_pki.ca_pem

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MutualTlsServer(_LocalServer):
    """HTTPS on 127.0.0.1 that requires (or asks for) a client certificate.

    >>> with MutualTlsServer(client_cas=[pki.intermediate.certificate]) as srv:
    ...     ctx = client_context(key, cert, cafile=srv.ca_file)
    ...     urllib.request.urlopen(srv.url, context=ctx)
    """

    def __init__(
        self,
        client_cas: Sequence[x509.Certificate | bytes] = (),
        *,
        client_cert: ClientCertMode = "required",
        server_pki: ServerPki | None = None,
        minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        maximum_version: ssl.TLSVersion | None = None,
        timeout: float = 10.0,
    ) -> None:
        if client_cert != "none" and not client_cas:
            raise ValueError("client_cas is needed to verify client certificates")
        super().__init__(server_pki, "cps-tls-server-")
        self.client_cert = client_cert
        self.timeout = timeout
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.minimum_version = minimum_version
        if maximum_version is not None:
            ctx.maximum_version = maximum_version
        if client_cert != "none":
            ctx.load_verify_locations(cadata=_client_ca_pem(client_cas))
            ctx.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
        self.context = ctx
        self._lock = threading.Lock()
        self.handshakes = 0
        self.failures: list[BaseException] = []
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a background thread; returns the server."""
        httpd = _HttpServer(("127.0.0.1", 0), _Handler, bind_and_activate=True)
        httpd.owner = self
        httpd.socket = self.context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="cps-mtls-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._dir.cleanup()

    # -- where -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return "127.0.0.1"

    # -- bookkeeping -----------------------------------------------------------

    def _count(self) -> None:
        with self._lock:
            self.handshakes += 1

    def _record_failure(self, exc: BaseException) -> None:
        with self._lock:
            self.failures.append(exc)


def stop_process(
    proc: subprocess.Popen[Any] | None, timeout: float = 5.0, *, close_pipes: bool = True
) -> None:
    """Stop a server process started by a fixture, by its PID: SIGTERM, then SIGKILL.

    ``close_pipes=False`` when a thread still drains one of its pipes.
    """
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None and close_pipes:
            stream.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpenSslServer(_LocalServer):
    """``openssl s_server -Verify 1 -www`` on 127.0.0.1, stopped by its PID.

    ``-www`` answers ``GET /`` with a status page (the negotiated protocol,
    cipher and the client certificate). *client_sigalgs* is the list of
    signature algorithms sent in the CertificateRequest (e.g.
    ``"rsa_pss_rsae_sha256:rsa_pkcs1_sha256"``: PSS first). *client_cert*
    ``"optional"`` asks for a client certificate without requiring one
    (``-verify``), ``"none"`` does not ask.
    """

    def __init__(
        self,
        client_cas: Sequence[x509.Certificate | bytes],
        *,
        client_cert: ClientCertMode = "required",
        server_pki: ServerPki | None = None,
        tls_version: Literal["1.2", "1.3"] | None = None,
        client_sigalgs: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.openssl = shutil.which("openssl")
        if self.openssl is None:
            raise FileNotFoundError("the openssl command is not installed")
        super().__init__(server_pki, "cps-s-server-")
        self.client_ca_file = Path(self._dir.name) / "client-ca.pem"
        self.client_ca_file.write_text(_client_ca_pem(client_cas))
        self.client_cert = client_cert
        self.tls_version = tls_version
        self.client_sigalgs = client_sigalgs
        self.extra_args = list(extra_args)
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(self._dir.name) / "s_server.log"

    def start(self) -> Self:
        """Start ``openssl s_server``; returns the server once it accepts connections."""
        for _attempt in range(5):
            self._port = _free_port()
            args = [
                str(self.openssl),
                "s_server",
                "-accept",
                f"127.0.0.1:{self.port}",
                "-cert",
                str(self.cert_file),
                "-key",
                str(self.key_file),
                "-CAfile",
                str(self.client_ca_file),
                "-www",
                "-naccept",
                "1000000",
            ]
            if self.client_cert == "required":
                args += ["-Verify", "1", "-verify_return_error"]
            elif self.client_cert == "optional":
                args += ["-verify", "1", "-verify_return_error"]
            chain_file = self.cert_file.parent / "chain.pem"
            if chain_file.exists():  # s_server sends only the first certificate of -cert
                args += ["-cert_chain", str(chain_file)]
            if self.tls_version:
                args.append("-tls1_2" if self.tls_version == "1.2" else "-tls1_3")
            if self.client_sigalgs:
                args += ["-client_sigalgs", self.client_sigalgs]
            args += self.extra_args
            log = self._log.open("wb")
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return self
                except OSError:
                    time.sleep(0.02)
            self.stop_process()
        raise RuntimeError("openssl s_server did not start: " + self.log())

    def stop_process(self) -> None:
        """Stop the ``openssl`` process by PID (the server object stays)."""
        proc, self._proc = self._proc, None
        stop_process(proc)

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self.stop_process()
        self._dir.cleanup()

    def log(self) -> str:
        """What ``openssl s_server`` printed so far."""
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def port(self) -> int:
        """The port it listens on (0 before :meth:`start`)."""
        return self._port


class SlowRSAKey(rsa.RSAPrivateKey):
    """An RSA key that takes *delay* seconds per signature, like a card (100–500 ms).

    Wraps a software key; for measuring that async clients keep their event
    loop running while a card signs.
    """

    def __init__(self, key: rsa.RSAPrivateKey, delay: float = 0.2) -> None:
        self._key, self.delay = key, delay
        self.signatures = 0

    def sign(self, data: Any, padding: AsymmetricPadding, algorithm: Any) -> bytes:
        time.sleep(self.delay)
        self.signatures += 1
        return self._key.sign(data, padding, algorithm)

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        return self._key.decrypt(ciphertext, padding)

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        return self._key.private_numbers()

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        return self._key.private_bytes(*args, **kwargs)

    def __copy__(self) -> SlowRSAKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> SlowRSAKey:
        return self


async def max_loop_lag(work: Awaitable[_T], *, tick: float = 0.005) -> tuple[_T, float]:
    """Await *work* while a ticker measures the event loop's longest stall (seconds).

    For the tests and benchmarks that check that async clients keep their loop
    running while a card (or a :class:`SlowRSAKey`) signs.
    """
    lag = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal lag
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(tick)
            now = time.perf_counter()
            lag = max(lag, now - last - tick)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)  # the ticker runs before the work can block the loop
    try:
        result = await work
    finally:
        stop = True
        await task
    return result, lag
