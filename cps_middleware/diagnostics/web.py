"""The local diagnostic web page (``cps diag --serve``): a small Starlette app served by uvicorn.

Only the doctor's own browser may drive it:

* it listens on 127.0.0.1 only, on a port chosen by the system;
* every URL starts with a random per-run token (``http://127.0.0.1:PORT/TOKEN/``);
  a request without it gets 404;
* a ``Host`` header other than ``127.0.0.1:PORT`` gets 403 (a DNS-rebinding page
  of another site would send its own host name), and so does an ``Origin`` other
  than the page's own;
* no CORS header is ever sent, the API accepts only ``application/json`` bodies
  (a cross-site form cannot post one without a preflight, which fails), and
  pages are not cacheable, not framable and send no referrer;
* any local user can connect, token or not, so the server bounds what a
  connection may cost: a request (headers and body) must arrive within
  :data:`READ_TIMEOUT` seconds and an idle keep-alive connection is closed after
  :data:`KEEP_ALIVE` seconds, at most :data:`MAX_CONNECTIONS` connections are open
  at once (more are closed on accept), headers are at most 16 KiB, a body at most
  :data:`MAX_BODY` bytes (413), JSON at most :data:`MAX_JSON_DEPTH` levels deep
  (400) — bad input gets a 4xx, never a 500;
* ``--open`` starts the browser on a private local file that redirects to the
  page (:class:`BrowserOpener`): the token never appears on a command line.

The checks run on demand in a worker thread, one run at a time; the page polls
for progress and shows each result with its remedy (the HTML of a result comes
from :func:`cps_middleware.diagnostics.report.render_result_html`, the same as
in the HTML report). A PIN typed into the page is used for the Test SSL of that
run only: it is kept in a :class:`cps_middleware.pkcs11.Pin`, never written to
the run, a log or a response, and dropped when the run ends. uvicorn's access
log is off (the URL holds the token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from cps_middleware.diagnostics.checks import DiagnosticOptions
from cps_middleware.diagnostics.framework import Check, CheckResult, DiagnosticRun, RunObserver
from cps_middleware.diagnostics.remedies import LANGUAGES
from cps_middleware.diagnostics.report import CSS, render_overall_html, render_result_html
from cps_middleware.messages import error_text, text
from cps_middleware.pkcs11 import Pin

__all__ = [
    "KEEP_ALIVE",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "MAX_JSON_DEPTH",
    "READ_TIMEOUT",
    "BrowserOpener",
    "DiagnosticServer",
    "RunFunction",
]

#: Seconds a client has to send a whole request (headers and body) once connected.
READ_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE = 5.0
#: Connections open at once; more are closed as soon as they are accepted.
MAX_CONNECTIONS = 32
#: Largest request body accepted (the API's JSON is a URL and a PIN).
MAX_BODY = 16 * 1024
#: Deepest JSON accepted (the API's JSON is one flat object).
MAX_JSON_DEPTH = 4


#: What the server calls to run a diagnostic: (lang, url, pin digits or None, observer) -> run.
RunFunction = Callable[[str, str | None, str | None, RunObserver], DiagnosticRun]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    ),
]


class _Guard:
    """ASGI middleware: Host, token and Origin checks, and security headers on every response."""

    def __init__(self, app: ASGIApp, token: str, host: str, port_ref: Callable[[], int]) -> None:
        self.app = app
        self.token = token
        self.host = host
        self.port_ref = port_ref

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets
        expected_host = f"{self.host}:{self.port_ref()}".encode()
        headers = dict(scope.get("headers") or [])
        if headers.get(b"host", b"") != expected_host:
            await self._plain(send, 403, "forbidden host")
            return
        origin = headers.get(b"origin")
        if origin is not None and origin != b"http://" + expected_host:
            await self._plain(send, 403, "forbidden origin")
            return
        path: str = scope.get("path", "")
        prefix = "/" + self.token
        head, sep, rest = path[1:].partition("/")
        if not hmac.compare_digest(("/" + head).encode(), prefix.encode()):
            await self._plain(send, 404, "not found")
            return
        if not sep:  # "/TOKEN" -> "/TOKEN/"
            await self._redirect(send, prefix + "/")
            return
        inner = dict(scope)
        inner["path"] = "/" + rest
        inner["root_path"] = scope.get("root_path", "") + prefix

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                hdrs = [
                    (k, v) for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
                message = dict(message)
                message["headers"] = hdrs + _SECURITY_HEADERS
            await send(message)

        await self.app(inner, receive, send_with_headers)

    async def _plain(self, send: Send, status: int, text: str) -> None:
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *_SECURITY_HEADERS],
        })
        await send({"type": "http.response.body", "body": text.encode()})

    async def _redirect(self, send: Send, location: str) -> None:
        await send({
            "type": "http.response.start", "status": 307,
            "headers": [(b"location", location.encode()), *_SECURITY_HEADERS],
        })
        await send({"type": "http.response.body", "body": b""})


class _BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a connection cap and a read deadline.

    uvicorn closes idle keep-alive connections but waits forever for a request
    that never completes (a client that connects and sends nothing, or half the
    headers, or half the body): each one would hold a file descriptor until the
    page became unreachable. Here a connection over the cap is aborted at once, and
    one whose request is not complete within :data:`READ_TIMEOUT` is aborted.
    """

    max_connections = MAX_CONNECTIONS
    read_timeout = READ_TIMEOUT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._admitted = len(self.connections) < self.max_connections
        if not self._admitted:
            transport.abort()  # type: ignore[attr-defined]
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self._deadline = None
        # IDLE: no request, or its headers are incomplete; SEND_BODY: the body is.
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE,
                                                                           h11.SEND_BODY):
            self.transport.abort()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        if not getattr(self, "_admitted", False):
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)


def _json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in ``data`` (strings skipped), without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` when it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class _RunState:
    id: str
    lang: str
    total: int = 0
    current: str = ""
    results: list[CheckResult] = field(default_factory=list)
    run: DiagnosticRun | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _Progress(RunObserver):
    def __init__(self, state: _RunState) -> None:
        self.state = state

    def run_started(self, checks: Any, lang: str) -> None:
        self.state.total = len(checks)

    def check_started(self, check: Check, index: int, total: int) -> None:
        self.state.current = check.title(self.state.lang)

    def check_finished(self, result: CheckResult, index: int, total: int) -> None:
        self.state.results.append(result)


_JS = r"""
"use strict";
const form = document.getElementById("diag-form");
const button = document.getElementById("run");
const bar = document.getElementById("progress");
const status = document.getElementById("status");
const results = document.getElementById("results");
const overall = document.getElementById("overall");
const lang = document.documentElement.lang;
const runningWord = document.body.dataset.running;

async function poll(id) {
  const r = await fetch("api/runs/" + encodeURIComponent(id), {cache: "no-store"});
  if (!r.ok) { status.textContent = "HTTP " + r.status; button.disabled = false; return; }
  const s = await r.json();
  bar.max = Math.max(s.total, 1); bar.value = s.results.length;
  results.innerHTML = s.results.map(x => x.html).join("");
  if (s.state === "done") {
    overall.innerHTML = s.overall_html || "";
    if (s.overall) {
      const a = document.createElement("a");
      a.href = "api/runs/" + encodeURIComponent(id) + "/report.json";
      a.download = "diagnostic-cps.json"; a.id = "report-json";
      a.textContent = document.body.dataset.jsonLabel;
      overall.appendChild(a);
    }
    status.textContent = s.error || "";
    bar.hidden = true; button.disabled = false;
    document.body.dataset.state = "done";
    return;
  }
  status.textContent =
    runningWord + " : " + s.current + " (" + s.results.length + "/" + s.total + ")";
  setTimeout(() => poll(id), 250);
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  button.disabled = true; results.innerHTML = ""; overall.innerHTML = "";
  bar.hidden = false; bar.value = 0; document.body.dataset.state = "running";
  const pinField = document.getElementById("pin");
  const body = {lang: lang, url: document.getElementById("url").value || null,
                pin: pinField.value || null};
  pinField.value = "";  // the page keeps no copy of the PIN
  const r = await fetch("api/runs", {method: "POST", cache: "no-store",
                                     headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify(body)});
  body.pin = null;
  if (!r.ok && r.status !== 409) {
    status.textContent = "HTTP " + r.status; button.disabled = false; return;
  }
  const s = await r.json();
  poll(s.id);
});
"""


class BrowserOpener:
    """A private local file that redirects to the token URL (see ``open_browser``)."""

    def __init__(self, url: str, lang: str = "fr") -> None:
        import html
        import os
        import tempfile
        from pathlib import Path

        self.directory = Path(tempfile.mkdtemp(prefix="cps-diag-"))  # 0700
        self.path = self.directory / "diagnostic.html"
        e = html.escape(url, quote=True)
        page = (
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="referrer" content="no-referrer">'
            f'<meta http-equiv="refresh" content="0;url={e}">'
            f"<title>{html.escape(text('diag.title', lang))}</title></head><body>"
            f'<p><a href="{e}">{html.escape(text("diag.page_open", lang))}</a></p>'
            "</body></html>\n"
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)

    @property
    def uri(self) -> str:
        """``file:///...`` of the redirecting file: what goes on the browser's command line."""
        return self.path.as_uri()

    def open(self, browser: Callable[[str], object] | None = None) -> None:
        """Start the browser on :attr:`uri` (``webbrowser.open`` unless ``browser`` is given)."""
        if browser is None:
            import webbrowser

            browser = webbrowser.open
        browser(self.uri)

    def cleanup(self) -> None:
        """Remove the file (once the browser has loaded it, or when the server stops)."""
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)


class DiagnosticServer:
    """The diagnostic web app bound to 127.0.0.1 with a random token; see the module docstring.

    ``run_function(lang, url, pin, observer)`` runs the checks (the CLI passes
    :func:`cps_middleware.diagnostics.run` with its options). Use :meth:`start`
    / :meth:`stop` to serve in a background thread, or :meth:`serve` to block.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        run_function: RunFunction,
        *,
        lang: str = "fr",
        default_url: str | None = None,
        port: int = 0,
        token: str | None = None,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.run_function = run_function
        self._protocol = type("_ServerH11", (_BoundedH11,), {
            "read_timeout": read_timeout, "max_connections": max_connections})
        self.lang = lang if lang in LANGUAGES else "fr"
        self.default_url = default_url
        self.token = token or secrets.token_urlsafe(24)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, port))
        self._sock.listen(64)  # connections wait in the backlog until uvicorn serves them
        self.port: int = self._sock.getsockname()[1]
        self._runs: dict[str, _RunState] = {}
        self._runs_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = _Guard(self._starlette(), self.token, self.host, lambda: self.port)

    @classmethod
    def for_options(
        cls, options: DiagnosticOptions, *, lang: str = "fr", port: int = 0
    ) -> DiagnosticServer:
        """A server that runs :func:`cps_middleware.diagnostics.run` with ``options``.

        The page may give a Test SSL URL and a PIN for one run: the PIN becomes a
        :class:`~cps_middleware.pkcs11.Pin` for that run only.
        """

        def run_function(
            run_lang: str, url: str | None, pin_text: str | None, observer: RunObserver
        ) -> DiagnosticRun:
            from cps_middleware.diagnostics import run

            pin = Pin(pin_text) if pin_text else None
            opts = dataclasses.replace(options, url=url or options.url, pin=pin)
            try:
                return run(opts, lang=run_lang, observer=observer)
            finally:
                del pin, opts

        return cls(run_function, lang=lang, default_url=options.url, port=port)

    @property
    def url(self) -> str:
        """The URL to open (it carries the token)."""
        return f"http://{self.host}:{self.port}/{self.token}/"

    def open_browser(self, *, browser: Callable[[str], object] | None = None) -> BrowserOpener:
        """Open the page in the user's browser without the token on any command line.

        The browser is started on a private file (``0600`` in a ``0700`` directory)
        that sends it on to :attr:`url`: ``ps`` shows only that file's path. Call
        :meth:`BrowserOpener.cleanup` when the server stops.
        """
        opener = BrowserOpener(self.url, self.lang)
        opener.open(browser)
        return opener

    # --- the app ------------------------------------------------------------------

    def _starlette(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self._page, methods=["GET"]),
            Route("/app.js", self._js, methods=["GET"]),
            Route("/app.css", self._css, methods=["GET"]),
            Route("/api/runs", self._start_run, methods=["POST"]),
            Route("/api/runs/{run_id}", self._run_status, methods=["GET"]),
            Route("/api/runs/{run_id}/report.json", self._run_json, methods=["GET"]),
        ])

    async def _page(self, request: Request) -> Response:
        import html

        lang = request.query_params.get("lang", self.lang)
        lang = lang if lang in LANGUAGES else "fr"

        def w(key: str) -> str:
            return text("diag." + key, lang)

        other = "en" if lang == "fr" else "fr"
        e = html.escape
        return HTMLResponse(
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(w("title"))}</title><link rel="stylesheet" href="app.css"></head>'
            f'<body data-state="idle" data-running="{e(w("page_running"))}" '
            f'data-json-label="{e(w("page_json"))}"><main>'
            f'<p class="muted lang"><a href="?lang={other}">{e(w("page_other"))}</a></p>'
            f'<h1>{e(w("title"))}</h1><p>{e(w("page_intro"))}</p>'
            '<form id="diag-form" autocomplete="off">'
            f'<p><label>{e(w("page_url"))}<br><input id="url" type="url" size="50" '
            f'value="{e(self.default_url or "")}"></label></p>'
            f'<p><label>{e(w("page_pin"))}<br><input id="pin" type="password" inputmode="numeric" '
            'autocomplete="off" maxlength="8" size="10"></label></p>'
            f'<p><button id="run" type="submit">{e(w("page_run"))}</button> '
            '<progress id="progress" hidden></progress> <span id="status" role="status"></span></p>'
            '</form><div id="overall"></div><div id="results" aria-live="polite"></div>'
            '<script src="app.js"></script></main></body></html>'
        )

    async def _js(self, request: Request) -> Response:
        return Response(_JS, media_type="text/javascript; charset=utf-8")

    async def _css(self, request: Request) -> Response:
        extra = (
            "input,button{font:inherit;padding:.3rem .5rem} progress{width:12rem} "
            ".lang{float:right}"
        )
        return Response(CSS + extra, media_type="text/css; charset=utf-8")

    async def _start_run(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return PlainTextResponse("JSON only", status_code=415)
        raw = await _read_body(request, MAX_BODY)
        if raw is None:
            return PlainTextResponse("body too large", status_code=413)
        if _json_depth(raw) > MAX_JSON_DEPTH:
            return PlainTextResponse("JSON nested too deeply", status_code=400)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return PlainTextResponse("bad JSON", status_code=400)
        if not isinstance(body, dict):
            return PlainTextResponse("bad JSON", status_code=400)
        lang = body.get("lang") if body.get("lang") in LANGUAGES else self.lang
        url = body.get("url") or None
        pin = body.get("pin") or None
        body.clear()
        if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
            return JSONResponse({"error": text("diag.page_need_https", str(lang))},
                                status_code=400)
        if pin is not None and not isinstance(pin, str):
            return PlainTextResponse("bad PIN field", status_code=400)
        with self._runs_lock:
            for st in self._runs.values():
                if not st.done.is_set():
                    return JSONResponse({"id": st.id, "state": "running"}, status_code=409)
            state = _RunState(id=secrets.token_urlsafe(8), lang=str(lang))
            self._runs[state.id] = state
        threading.Thread(
            target=self._execute, args=(state, url, pin), name="cps-diag-web-run", daemon=True
        ).start()
        del pin
        return JSONResponse({"id": state.id, "state": "running"}, status_code=202)

    def _execute(self, state: _RunState, url: str | None, pin: str | None) -> None:
        try:
            state.run = self.run_function(state.lang, url, pin, _Progress(state))
        except Exception as exc:  # shown on the page; never the PIN (not in any message here)
            state.error = text("diag.page_run_failed", state.lang,
                               error=error_text(exc, state.lang))
        finally:
            pin = None
            state.done.set()

    def _state(self, request: Request) -> _RunState | None:
        return self._runs.get(request.path_params["run_id"])

    async def _run_status(self, request: Request) -> Response:
        state = self._state(request)
        if state is None:
            return PlainTextResponse("no such run", status_code=404)
        done = state.done.is_set()
        results = list(state.results)
        return JSONResponse({
            "id": state.id,
            "state": "done" if done else "running",
            "total": state.total,
            "current": state.current,
            "results": [
                {"id": r.check_id, "status": r.status.value,
                 "html": render_result_html(r, state.lang)}
                for r in results
            ],
            "overall": state.run.status.value if state.run else None,
            "overall_html": render_overall_html(state.run) if state.run else None,
            "error": state.error,
        })

    async def _run_json(self, request: Request) -> Response:
        state = self._state(request)
        if state is None or state.run is None:
            return PlainTextResponse("no such finished run", status_code=404)
        return Response(state.run.to_json(), media_type="application/json")

    # --- serving ---------------------------------------------------------------------

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off",
            server_header=False, date_header=False, http=self._protocol, ws="none",
            timeout_keep_alive=int(KEEP_ALIVE), h11_max_incomplete_event_size=16 * 1024,
        )

    def serve(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self._server = uvicorn.Server(self._config())
        self._server.run(sockets=[self._sock])

    def start(self) -> str:
        """Serve in a background thread; returns the URL once it accepts connections."""
        self._server = uvicorn.Server(self._config())
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[self._sock]), name="cps-diag-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the diagnostic web server did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def wait_run(self, timeout: float = 60.0) -> DiagnosticRun | None:
        """Wait for the latest run to finish (tests, scripts) and return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._runs_lock:
                states = list(self._runs.values())
            if states and states[-1].done.wait(max(0.0, deadline - time.monotonic())):
                return states[-1].run
            time.sleep(0.05)
        return None
