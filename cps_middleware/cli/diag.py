"""``cps diag``: the diagnostic as text, ``--json``, ``--html FILE`` or a local web page."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from cps_middleware.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Io,
    Subparsers,
    add_command,
    make_pin,
    read_secret,
)
from cps_middleware.diagnostics.framework import Check, DiagnosticRun, RunObserver

if TYPE_CHECKING:
    from cps_middleware.diagnostics import DiagnosticOptions
    from cps_middleware.pkcs11 import Pin

__all__ = ["cmd_diag", "diag_options", "register"]


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "diag", help="run the diagnostic (text, --json, --html FILE or --serve)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the run as JSON")
    fmt.add_argument("--serve", action="store_true",
                     help="serve the diagnostic page on 127.0.0.1 (URL with a token)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--details", action="store_true", help="show technical details")
    p.add_argument("--token", metavar="LABEL|SERIAL",
                   help="the card to diagnose when the middleware sees several")
    p.add_argument("--url", help="run the Test SSL against this https:// URL")
    p.add_argument("--cafile", help="CA bundle for the Test SSL server certificate")
    p.add_argument("--ask-pin", action="store_true",
                   help="read the PIN for the Test SSL even when stdin is not a terminal "
                   "(on a terminal it is always asked, with no echo)")
    p.add_argument("--trust", choices=("auto", "production", "test"), default="auto",
                   help="IGC-Santé hierarchy to validate against (default: auto)")
    p.add_argument("--trust-file", action="append", metavar="FILE",
                   help="extra trusted CA certificate (PEM/DER); repeatable")
    p.add_argument("--crl", action="append", metavar="FILE", help="CRL file; repeatable")
    p.add_argument("--crl-dir", metavar="DIR", help="directory of cached CRLs")
    p.add_argument("--port", type=int, default=0, help="port for --serve (default: any free)")
    p.add_argument("--open", action="store_true", help="open the page in a browser (--serve)")
    p.set_defaults(handler=cmd_diag)


def diag_options(args: argparse.Namespace, pin: Pin | None = None) -> DiagnosticOptions:
    from cps_middleware.diagnostics import DiagnosticOptions

    return DiagnosticOptions(
        reader=args.reader,
        module=args.module,
        token=getattr(args, "token", None),
        url=getattr(args, "url", None),
        ca_file=getattr(args, "cafile", None),
        pin=pin,
        trust=getattr(args, "trust", "auto"),
        trust_files=tuple(getattr(args, "trust_file", None) or ()),
        crl_files=tuple(getattr(args, "crl", None) or ()),
        crl_dir=getattr(args, "crl_dir", None),
    )


def cmd_diag(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware import diagnostics

    if args.serve:
        return _serve(args, io)
    pin = None
    if args.url and (args.ask_pin or (sys.stdin is not None and sys.stdin.isatty())):
        pin = make_pin(read_secret("Code porteur CPS / CPS PIN: "))
    options = diag_options(args, pin)
    observer = None if (args.json or not io.stderr.isatty()) else RichProgress(io.err)
    run = diagnostics.run(options, lang=args.lang, observer=observer)
    if args.html:
        Path(args.html).write_text(run.to_html(), encoding="utf-8")
    if args.json:
        io.stdout.write(run.to_json() + "\n")
    else:
        from cps_middleware.diagnostics.report import render_text

        render_text(run, io.out, details=args.details)
        if args.html:
            io.err.print(f"HTML: {args.html}")
    return EXIT_PROBLEM if run.status is diagnostics.Status.ERROR else EXIT_OK


def _serve(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.diagnostics.web import DiagnosticServer

    server = DiagnosticServer.for_options(diag_options(args), lang=args.lang, port=args.port)
    # Plain text on one line, flushed: scripts and tests read the URL from it.
    io.stdout.write(f"Diagnostic : {server.url}\n(Ctrl-C pour arrêter / to stop)\n")
    io.stdout.flush()
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve()
    finally:
        server.stop()
    return EXIT_OK


class RichProgress(RunObserver):
    """A spinner line on stderr while the checks run (only on a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status: Any = None
        self.lang = "fr"

    def run_started(self, checks: Sequence[Check], lang: str) -> None:
        self.lang = lang
        self.status = self.console.status("…")
        self.status.start()

    def check_started(self, check: Check, index: int, total: int) -> None:
        if self.status is not None:
            self.status.update(f"[{index + 1}/{total}] {check.title(self.lang)}")

    def run_finished(self, run: DiagnosticRun) -> None:
        if self.status is not None:
            self.status.stop()
