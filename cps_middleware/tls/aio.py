"""Async clients whose event loop keeps running while the card signs.

A card takes 100–500 ms per RSA signature, and the signature happens inside
the TLS handshake. With the plain context, asyncio (and aiohttp, httpx's async
client) run the handshake on the event loop thread, so the loop stops for the
card's time. The helpers here run each handshake step (``do_handshake``) in a
worker thread instead, moving the bytes between the memory BIOs and the
network from the loop; once the handshake is done the same ``SSLObject``
carries the connection as usual:

* :func:`open_connection` / :func:`create_connection` — asyncio streams and
  protocols (the handshaken ``SSLObject`` is adopted by asyncio's own TLS
  transport through ``loop.start_tls``);
* :func:`aiohttp_connector` — an ``aiohttp.TCPConnector`` doing that for
  every https connection made with a card context;
* :func:`httpx_transport` — an ``httpx.AsyncHTTPTransport`` whose network
  backend does it (asyncio or trio, through anyio).

The context itself (:func:`~cps_middleware.tls.client_context`) also works
directly with these libraries; it then blocks the loop while signing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = [
    "aiohttp_connector",
    "create_connection",
    "handshake_in_thread",
    "httpx_transport",
    "open_connection",
]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

_DEFAULT_HANDSHAKE_TIMEOUT = 60.0


async def handshake_in_thread(
    sslobj: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
    send: Callable[[bytes], Awaitable[None]],
    receive: Callable[[], Awaitable[bytes]],
    run_sync: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
) -> None:
    """Complete *sslobj*'s handshake; each OpenSSL step runs in a worker thread.

    *send* writes bytes to the peer, *receive* returns the next bytes (``b""``
    at end of stream). The BIOs are touched only between steps, so OpenSSL
    and the loop never use them at the same time.
    """
    if run_sync is None:
        loop = asyncio.get_running_loop()

        async def run_sync(fn: Callable[[], None]) -> None:
            await loop.run_in_executor(None, fn)

    while True:
        try:
            await run_sync(sslobj.do_handshake)
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = outgoing.read()
        if data:
            await send(data)
        if done:
            return
        chunk = await receive()
        if chunk:
            incoming.write(chunk)
        else:
            incoming.write_eof()


# -- asyncio ---------------------------------------------------------------------


class _HandshakeProtocol(asyncio.Protocol):
    """Collects the server's bytes during our handshake, then feeds the BIO directly."""

    def __init__(self, incoming: ssl.MemoryBIO) -> None:
        self._incoming = incoming
        self._buffer = bytearray()
        self._eof = False
        self._passthrough = False
        self._waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None

    def data_received(self, data: bytes) -> None:
        if self._passthrough:
            self._incoming.write(data)
        else:
            self._buffer += data
            self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        if self._passthrough:
            self._incoming.write_eof()
        self._wake()
        return True  # keep the transport: a TLS close_notify may still be written

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.error = exc
        if self._passthrough and not self._incoming.eof:
            self._incoming.write_eof()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive(self) -> bytes:
        while not self._buffer and not self._eof:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def pass_through(self) -> None:
        """After the handshake: whatever comes next goes straight to the BIO."""
        if self._buffer:
            self._incoming.write(bytes(self._buffer))
            self._buffer.clear()
        if self._eof:
            self._incoming.write_eof()
        self._passthrough = True


class _AdoptedSSLObject:
    """Stands for our handshaken SSLObject inside asyncio's SSLProtocol.

    asyncio's transport has its own memory BIOs; every call moves the bytes
    between them and ours.
    """

    def __init__(
        self,
        sslobj: ssl.SSLObject,
        own_in: ssl.MemoryBIO,
        own_out: ssl.MemoryBIO,
        proto_in: ssl.MemoryBIO,
        proto_out: ssl.MemoryBIO,
    ) -> None:
        self._obj = sslobj
        self._own_in, self._own_out = own_in, own_out
        self._proto_in, self._proto_out = proto_in, proto_out

    def _pull(self) -> None:
        data = self._proto_in.read()
        if data:
            self._own_in.write(data)
        if self._proto_in.eof and not self._own_in.eof:
            self._own_in.write_eof()

    def _push(self) -> None:
        data = self._own_out.read()
        if data:
            self._proto_out.write(data)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._pull()
        try:
            return fn(*args)
        finally:
            self._push()

    def do_handshake(self) -> None:
        self._call(self._obj.do_handshake)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        if buffer is None:
            return self._call(self._obj.read, len)
        return self._call(self._obj.read, len, buffer)

    def write(self, data: Any) -> int:
        return int(self._call(self._obj.write, data))

    def unwrap(self) -> Any:
        return self._call(self._obj.unwrap)

    def pending(self) -> int:
        return int(self._call(self._obj.pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)


_pending_adoption: contextvars.ContextVar[tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]] = (
    contextvars.ContextVar("cps_pending_adoption")
)


class _AdoptingContext(ssl.SSLContext):
    """Handed to ``loop.start_tls``: its wrap_bio returns the pending handshaken object."""

    def wrap_bio(
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: Any, **kwargs: Any
    ) -> Any:
        sslobj, own_in, own_out = _pending_adoption.get()
        return _AdoptedSSLObject(sslobj, own_in, own_out, incoming, outgoing)


_adopting_context: _AdoptingContext | None = None


def _adopter() -> _AdoptingContext:
    global _adopting_context
    if _adopting_context is None:
        ctx = _AdoptingContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # checked by the card context during the handshake
        _adopting_context = ctx
    return _adopting_context


async def _upgrade(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    raw: _HandshakeProtocol,
    incoming: ssl.MemoryBIO,
    context: ssl.SSLContext,
    server_hostname: str | None,
    protocol: _P,
    handshake_timeout: float,
) -> asyncio.Transport:
    outgoing = ssl.MemoryBIO()
    sslobj = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)

    async def send(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("the server closed the connection during the handshake")
        transport.write(data)

    try:
        await asyncio.wait_for(
            handshake_in_thread(sslobj, incoming, outgoing, send, raw.receive),
            handshake_timeout,
        )
        raw.pass_through()
        token = _pending_adoption.set((sslobj, incoming, outgoing))
        try:
            tls_transport = await loop.start_tls(
                transport,
                protocol,
                _adopter(),
                server_hostname=server_hostname,
            )
        finally:
            _pending_adoption.reset(token)
    except BaseException:
        transport.close()
        raise
    if tls_transport is None:  # pragma: no cover - only when the transport closed meanwhile
        raise ConnectionResetError("the connection closed right after the handshake")
    # start_tls does not announce the connection to the new protocol (it is
    # meant for protocols already connected): do it as create_connection would.
    protocol.connection_made(tls_transport)
    return tls_transport


async def create_connection(
    protocol_factory: Callable[[], _P],
    host: str | None = None,
    port: int | None = None,
    *,
    ssl: ssl.SSLContext,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    **kwargs: Any,
) -> tuple[asyncio.Transport, _P]:
    """``loop.create_connection`` with a TLS handshake that signs off the loop.

    Same arguments as ``loop.create_connection`` (``sock=``, ``local_addr=``
    ...); *ssl* is required (a card context).
    """
    loop = asyncio.get_running_loop()
    kwargs.pop("ssl_shutdown_timeout", None)
    incoming = ssl_module.MemoryBIO()
    raw = _HandshakeProtocol(incoming)
    # host and port may be None when sock= is given, as with loop.create_connection
    transport, _ = await loop.create_connection(lambda: raw, host, port, **kwargs)  # type: ignore[arg-type]
    if server_hostname is None:
        server_hostname = host
    protocol = protocol_factory()
    tls_transport = await _upgrade(
        loop,
        transport,
        raw,
        incoming,
        ssl,
        server_hostname,
        protocol,
        ssl_handshake_timeout or _DEFAULT_HANDSHAKE_TIMEOUT,
    )
    return tls_transport, protocol


ssl_module = ssl  # the parameter name "ssl" shadows the module inside create_connection


async def open_connection(
    host: str | None = None,
    port: int | None = None,
    *,
    ssl: ssl.SSLContext,
    server_hostname: str | None = None,
    limit: int = 2**16,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` with the card signing in a worker thread."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(
        lambda: protocol, host, port, ssl=ssl, server_hostname=server_hostname, **kwargs
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


# -- aiohttp ---------------------------------------------------------------------


def aiohttp_connector(**kwargs: Any) -> Any:
    """An ``aiohttp.TCPConnector`` that signs off the loop for card contexts.

    ``aiohttp.ClientSession(connector=aiohttp_connector())`` then
    ``session.get(url, ssl=ctx)`` (or ``aiohttp_connector(ssl=ctx)``).
    Connections made with another context behave as with the plain connector.
    """
    import aiohttp

    from cps_middleware.tls.context import CardSSLContext

    class CardTCPConnector(aiohttp.TCPConnector):
        async def _wrap_create_connection(self, *args: Any, **kw: Any) -> Any:
            context = kw.get("ssl")
            if not isinstance(context, CardSSLContext):
                return await super()._wrap_create_connection(*args, **kw)
            factory, *rest = args
            req = kw["req"]
            server_hostname = kw.pop("server_hostname", None) or req.url.raw_host
            kw["ssl"] = None
            kw.pop("ssl_shutdown_timeout", None)
            handshake_timeout = kw.pop("ssl_handshake_timeout", None)
            incoming = ssl.MemoryBIO()
            raw = _HandshakeProtocol(incoming)
            transport, _ = await super()._wrap_create_connection(lambda: raw, *rest, **kw)
            protocol = factory()
            try:
                tls_transport = await _upgrade(
                    self._loop,
                    transport,
                    raw,
                    incoming,
                    context,
                    server_hostname,
                    protocol,
                    handshake_timeout or _DEFAULT_HANDSHAKE_TIMEOUT,
                )
            except ssl.SSLCertVerificationError as exc:
                raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
            except ssl.SSLError as exc:
                raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
            except OSError as exc:
                raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc
            return tls_transport, protocol

    return CardTCPConnector(**kwargs)


# -- httpx (httpcore network backend, anyio) --------------------------------------


class _TlsStream:
    """An httpcore async network stream: TLS over another stream, from memory BIOs."""

    def __init__(
        self, inner: Any, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
    ) -> None:
        self._inner, self._ssl = inner, sslobj
        self._in, self._out = incoming, outgoing

    async def _flush(self, timeout: float | None) -> None:
        data = self._out.read()
        if data:
            await self._inner.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            try:
                data = self._ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                await self._flush(timeout)
                chunk = await self._inner.read(65536, timeout)
                if chunk:
                    self._in.write(chunk)
                else:
                    self._in.write_eof()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            await self._flush(timeout)
            return bytes(data)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        while view:
            n = self._ssl.write(view)
            view = view[n:]
            await self._flush(timeout)

    async def aclose(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._ssl.unwrap()
        with contextlib.suppress(Exception):  # closing anyway
            await self._flush(1.0)
        await self._inner.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("TLS inside TLS is not supported")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl
        return self._inner.get_extra_info(info)


class _Stream:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return bytes(await self._inner.read(max_bytes, timeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        from cps_middleware.tls.context import CardSSLContext

        if not isinstance(ssl_context, CardSSLContext):
            return await self._inner.start_tls(ssl_context, server_hostname, timeout)
        import anyio
        import anyio.to_thread

        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = ssl_context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)

        async def send(data: bytes) -> None:
            await self._inner.write(data, timeout)

        async def receive() -> bytes:
            return bytes(await self._inner.read(65536, timeout))

        async def run_sync(fn: Callable[[], None]) -> None:
            await anyio.to_thread.run_sync(fn)

        try:
            with anyio.fail_after(timeout or _DEFAULT_HANDSHAKE_TIMEOUT):
                await handshake_in_thread(sslobj, incoming, outgoing, send, receive, run_sync)
        except BaseException:
            await self._inner.aclose()
            raise
        return _TlsStream(self._inner, sslobj, incoming, outgoing)


class _Backend:
    """httpcore network backend: anyio's, with card handshakes off the loop."""

    def __init__(self) -> None:
        import httpcore

        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
        return _Stream(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        return _Stream(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def httpx_transport(context: ssl.SSLContext, **kwargs: Any) -> Any:
    """``httpx.AsyncHTTPTransport(verify=context, ...)`` signing off the loop.

    ``httpx.AsyncClient(transport=httpx_transport(ctx))``.
    """
    import httpcore
    import httpx

    transport = httpx.AsyncHTTPTransport(verify=context, **kwargs)
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError(
            "this httpx/httpcore version is not supported by httpx_transport(); "
            "use httpx.AsyncClient(verify=ctx) (the loop then waits for the card)"
        )
    pool._network_backend = _Backend()  # type: ignore[assignment]
    return transport
