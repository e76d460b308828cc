"""The ``cps`` command: readers, cards, PIN, certificates, Test SSL, validation, diagnostic, demo.

``main(argv=None) -> int`` is the whole program (tested in-process). A library
error is printed as one line with its hint (the traceback only with
``--debug``). A PIN is always read with no echo (``getpass``), never taken
from the command line (except a test card's PIN and PUK, which are test values:
``cps testcard create --pin --puk``).

Exit codes:

====  ==============================================================================
0     success: everything checked is fine
1     a problem was found: diagnostic error, invalid certificate, Test SSL failed,
      PIN blocked (``cps pin status``)
2     usage error (bad arguments)
3     the operation failed: a library error (no reader, no card, no module ...)
4     PIN refused: wrong PIN, PIN blocked, final try refused, PUK wrong or blocked
70    internal error (a bug: run again with ``--debug`` and report it)
130   interrupted (Ctrl-C)
====  ==============================================================================
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from cps_middleware import errors
from cps_middleware.diagnostics.framework import Check, DiagnosticRun, RunObserver

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIN",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_PIN = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class _Io:
    """Where a command writes: rich consoles on the streams of the moment (tests swap them)."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.out = Console(file=stdout, highlight=False, soft_wrap=False)
        self.err = Console(file=stderr, highlight=False, soft_wrap=True)

    def json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


Handler = Callable[[argparse.Namespace, _Io], int]


def _read_secret(prompt: str) -> str:
    """A PIN or PUK: typed with no echo on a terminal, else one line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise errors.InvalidInput("no PIN given on standard input",
                                  hint="type the PIN when asked, or pipe it on stdin")
    return line.rstrip("\r\n")


def _new_pin(what: str = "Nouveau code porteur / New PIN") -> Any:
    first = _make_pin(_read_secret(f"{what}: "))
    second = _make_pin(_read_secret(f"{what} (confirmation): "))
    if first != second:
        raise errors.PinFormatError("the two new PINs differ; nothing was changed")
    return first


# --- diag ---------------------------------------------------------------------------------


def _diag_options(args: argparse.Namespace, pin: Any = None) -> Any:
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


def _cmd_diag(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware import diagnostics

    if args.serve:
        return _serve_diag(args, io)
    pin = None
    if args.url and (args.ask_pin or (sys.stdin is not None and sys.stdin.isatty())):
        pin = _make_pin(_read_secret("Code porteur CPS / CPS PIN: "))
    options = _diag_options(args, pin)
    observer = None if (args.json or not io.stderr.isatty()) else _RichProgress(io.err)
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


def _serve_diag(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware.diagnostics.web import DiagnosticServer

    server = DiagnosticServer.for_options(_diag_options(args), lang=args.lang, port=args.port)
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


class _RichProgress(RunObserver):
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


def _make_pin(text: str) -> Any:
    from cps_middleware.pkcs11 import Pin

    return Pin(text)


# --- readers --------------------------------------------------------------------------


def _cmd_readers(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware.pcsc.readers import list_readers

    readers = list_readers(allow_empty=True)
    if args.reader:
        readers = [r for r in readers if args.reader.casefold() in r.name.casefold()]
    if args.json:
        io.json([
            {
                "reader": r.name,
                "card_present": r.card_present,
                "atr": r.atr.hex(" ").upper() if r.atr else None,
                "generation": r.generation.value if r.generation else None,
                "interface": r.identification.interface.value if r.identification else None,
                "exclusive": r.exclusive,
                "mute": r.mute,
            }
            for r in readers
        ])
        return EXIT_OK
    if not readers:
        raise errors.NoReaders("no PC/SC reader found", function="SCardListReaders")
    table = Table(title="Lecteurs / Readers")
    for col in ("Reader", "Card", "ATR", "CPS"):
        table.add_column(col)
    for r in readers:
        table.add_row(
            r.name,
            ("mute" if r.mute else "yes") if r.card_present else "-",
            r.atr.hex(" ").upper() if r.atr else "",
            r.generation.value if r.generation else "",
        )
    io.out.print(table)
    return EXIT_OK


# --- cards, info, pin, certs --------------------------------------------------------------


def _cmd_cards(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware.discovery import discover

    cards = discover(module_path=args.module, pkcs11=not args.no_pkcs11)
    if args.reader:
        cards = [c for c in cards if c.reader and args.reader.casefold() in c.reader.casefold()]
    if args.json:
        io.json([
            {
                "reader": c.reader,
                "atr": c.atr_hex,
                "generation": c.generation.value if c.generation else None,
                "interface": c.interface.value,
                "is_cps": c.is_cps,
                "token": c.token.label if c.token else None,
                "serial": c.token.serial if c.token else None,
                "holder": c.holder.to_dict() if c.holder else None,
                "pkcs11_module": c.pkcs11_module,
                "pkcs11_error": c.pkcs11_error,
            }
            for c in cards
        ])
        return EXIT_OK
    if not cards:
        io.out.print("Aucune carte / no card")
        return EXIT_OK
    table = Table(title="Cartes / Cards")
    for col in ("Reader", "Card", "Token", "Holder"):
        table.add_column(col, overflow="fold")
    for c in cards:
        kind = c.generation.value if c.generation else ("CPS" if c.is_cps else "?")
        table.add_row(
            c.reader or "-",
            f"{kind} {c.interface.value}" if c.atr else kind,
            f"{c.token.label} ({c.token.serial})" if c.token else (c.pkcs11_error or "-"),
            str(c.holder) if c.holder else "-",
        )
    io.out.print(table)
    return EXIT_OK


def _open(args: argparse.Namespace) -> Any:
    from cps_middleware.card import open_card

    return open_card(args.module, serial=args.serial)


def _cert_row(cert: Any) -> dict[str, Any]:
    from cps_middleware.cards.identity import practitioner_from_certificate

    who = practitioner_from_certificate(cert)
    name = (f"{who.display_name} ({who.ps_id_nat})" if who.ps_id_nat
            else who.common_name or cert.subject.rfc4514_string())
    return {
        "name": name,
        "subject": cert.subject.rfc4514_string(),
        "issuer": who.issuer_cn or cert.issuer.rfc4514_string(),
        "usage": who.usage.value,
        "not_before": who.not_before.isoformat(),
        "not_after": who.not_after.isoformat(),
        "serial": f"{cert.serial_number:X}",
        "sha256": who.fingerprint_sha256,
    }


def _cmd_info(args: argparse.Namespace, io: _Io) -> int:
    with _open(args) as card:
        holder = card.holder
        certs = card.certificates()
        data = {
            "label": card.label,
            "serial": card.serial,
            "generation": card.generation,
            "reader": card.reader,
            "pin_status": card.pin_status.value,
            "pin_tries_left": card.pin_tries_left,
            "holder": holder.to_dict(),
            "certificates": [_cert_row(c) for c in certs],
        }
    if args.json:
        io.json(data)
        return EXIT_OK
    table = Table(title=f"{data['label']} — {data['generation'] or 'CPS'} — {data['serial']}",
                  show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("Titulaire / Holder", holder.display_name),
        ("Profession", f"{holder.profession.label} ({holder.profession.code})"
         if holder.profession else "-"),
        ("Identifiant national", holder.ps_id_nat or "-"),
        ("RPPS / ADELI", holder.rpps or holder.adeli or "-"),
        ("Carte / Card", (holder.card_number or "-") + (" (TEST)" if holder.is_test_card else "")),
        ("Valide jusqu'au / until", holder.not_after.date().isoformat()),
        ("Code porteur / PIN", f"{data['pin_status']} ({data['pin_tries_left']})"),
        ("Lecteur / Reader", str(data["reader"])),
    ]
    for k, v in rows:
        table.add_row(k, v)
    io.out.print(table)
    _print_certs(io, data["certificates"])
    return EXIT_OK


def _print_certs(io: _Io, rows: list[dict[str, Any]]) -> None:
    table = Table(title="Certificats / Certificates")
    for col in ("Usage", "Name", "Issuer", "Valid until"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["usage"], r["name"], r["issuer"], r["not_after"][:10])
    io.out.print(table)


def _cmd_certs(args: argparse.Namespace, io: _Io) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    with _open(args) as card:
        stored = card.token.certificates()
    rows = [dict(_cert_row(c.certificate), label=c.label) for c in stored]
    if args.export:
        out = Path(args.export)
        out.mkdir(parents=True, exist_ok=True)
        for c, row in zip(stored, rows, strict=True):
            name = "".join(ch if ch.isalnum() else "-" for ch in (c.label or row["serial"]))
            path = out / f"{name.strip('-').lower()}.pem"
            path.write_bytes(c.certificate.public_bytes(Encoding.PEM))
            row["file"] = str(path)
    if args.json:
        io.json(rows)
    else:
        _print_certs(io, rows)
        for row in rows:
            if "file" in row:
                io.out.print(f"{row['label']} → {row['file']}")
    return EXIT_OK


def _cmd_pin(args: argparse.Namespace, io: _Io) -> int:
    try:
        return _pin_action(args, io)
    except errors.FinalTryRefused as exc:
        exc.hint = ("one try is left: make sure of the PIN (or code), then run again with "
                    "--allow-final-try")
        raise


def _pin_action(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware.pkcs11 import PinStatus, Puk

    with _open(args) as card:
        if args.pin_cmd == "status":
            status, left = card.pin_status, card.pin_tries_left
            if args.json:
                io.json({"pin_status": status.value, "tries_left": left})
            else:
                io.out.print(f"PIN: {status.value}" + (f" ({left} tries left)" if left is not None
                                                      else ""))
            return EXIT_PROBLEM if status is PinStatus.LOCKED else EXIT_OK
        if args.pin_cmd == "verify":
            if card.pin_status is PinStatus.PIN_PAD:
                io.err.print("Tapez le code porteur sur le lecteur / type the PIN on the reader")
                card.login(None, allow_final_try=args.allow_final_try)
            else:
                pin = _make_pin(_read_secret("Code porteur CPS / CPS PIN: "))
                card.login(pin, allow_final_try=args.allow_final_try)
            card.logout()
            io.out.print("Code porteur correct / PIN correct")
            return EXIT_OK
        if args.pin_cmd == "change":
            old = _make_pin(_read_secret("Code porteur actuel / Current PIN: "))
            new = _new_pin()
            card.token.change_pin(old, new, allow_final_try=args.allow_final_try)
            io.out.print("Code porteur changé / PIN changed")
            return EXIT_OK
        puk = Puk(_read_secret("Code de déblocage / Unblocking code (PUK): "))
        new = _new_pin()
        card.token.unblock(puk, new, allow_final_try=args.allow_final_try)
        io.out.print("Code porteur débloqué / PIN unblocked")
        return EXIT_OK


# --- test-ssl -------------------------------------------------------------------------------------


def _cmd_test_ssl(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware.pkcs11 import PinStatus
    from cps_middleware.tls.testssl import test_ssl

    if not args.url.startswith("https://"):
        raise errors.InvalidInput("the Test SSL address must start with https://",
                                  hint="e.g. cps test-ssl https://testssl.asipsante.fr/")
    with _open(args) as card:
        if not card.is_logged_in:
            if card.pin_status is PinStatus.PIN_PAD:
                io.err.print("Tapez le code porteur sur le lecteur / type the PIN on the reader")
                card.login(None)
            else:
                card.login(_make_pin(_read_secret("Code porteur CPS / CPS PIN: ")),
                           allow_final_try=args.allow_final_try)
        report = test_ssl(args.url, card, cafile=args.cafile, timeout=args.timeout)
        card.logout()
    if args.json:
        io.json({
            "url": report.url, "ok": report.ok, "reason": report.reason,
            "failure": report.failure.name if report.failure else None,
            "detail": report.detail, "protocol": report.protocol, "cipher": report.cipher,
            "client_signature": report.client_signature,
            "client_certificate_sent": report.client_certificate_sent,
            "server_verified": report.server_verified,
            "server_chain": [c.to_dict() for c in report.server_chain],
            "server_chain_source": report.server_chain_source,
            "http_status": report.http_status,
            "holder": report.client_holder.to_dict() if report.client_holder else None,
            "timings_ms": report.timings_ms,
        })
    else:
        io.out.print(report.to_text(), style="green" if report.ok else "red", soft_wrap=True)
    return EXIT_OK if report.ok else EXIT_PROBLEM


# --- validate ---------------------------------------------------------------------------------

_CERT_SUFFIXES = {".der", ".cer", ".crt", ".pem"}


def _collect_certificates(paths: Sequence[str]) -> list[tuple[str, bytes]]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*")
                                if f.is_file() and f.suffix.lower() in _CERT_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise errors.InvalidInput(f"no such file or directory: {p}")
    out: list[tuple[str, bytes]] = []
    for f in files:
        data = f.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" in data:
            blocks = data.split(b"-----BEGIN CERTIFICATE-----")[1:]
            for i, block in enumerate(blocks):
                pem = b"-----BEGIN CERTIFICATE-----" + block.split(b"-----END CERTIFICATE-----")[0]
                name = f"{f}#{i}" if len(blocks) > 1 else str(f)
                out.append((name, pem + b"-----END CERTIFICATE-----\n"))
        else:
            out.append((str(f), data))  # DER, or something the validator reports as malformed
    return out


def _trust_for(args: argparse.Namespace) -> Any:
    from cps_middleware.validation import TrustStore, igc_sante, igc_sante_test, load_certificates

    extra = [c for f in (args.trust_file or ()) for c in load_certificates(f)]
    if args.trust == "test":
        return igc_sante_test(extra) if extra else igc_sante_test()
    store = igc_sante()
    if extra:
        store = store + TrustStore.from_certificates(extra, name="given")
    return store


def _cmd_validate(args: argparse.Namespace, io: _Io) -> int:
    import datetime as dt

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from cps_middleware.validation import Status, ValidatorBuilder

    items = _collect_certificates(args.paths)
    builder = ValidatorBuilder().trust(_trust_for(args))
    builder = (
        builder.crls(args.crl).revocation("hard") if args.crl else builder.revocation("off")
    )
    if args.at:
        builder = builder.time(dt.datetime.fromisoformat(args.at))
    results: list[Any] = []
    with builder.build() as validator, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=io.err, transient=True, disable=args.json or not io.stderr.isatty(),
    ) as progress:
        task = progress.add_task("validation", total=len(items))
        chunk = 2000
        for i in range(0, len(items), chunk):
            results.extend(validator.validate_many([d for _n, d in items[i:i + chunk]]))
            progress.update(task, advance=min(chunk, len(items) - i))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.name] = counts.get(r.status.name, 0) + 1
    if args.json:
        io.json({
            "revocation": "checked" if args.crl else "not checked",
            "counts": counts,
            "results": [
                {"file": name, "status": r.status.name, "reason": r.reason,
                 "path": [c.subject.rfc4514_string() for c in r.path],
                 "revocation": {"reason": r.revocation.reason,
                                "date": r.revocation.date.isoformat()} if r.revocation else None}
                for (name, _d), r in zip(items, results, strict=True)
            ],
        })
    else:
        if args.verbose:
            detail = Table(title="Certificats / Certificates")
            for col in ("File", "Status", "Reason"):
                detail.add_column(col, overflow="fold")
            for (name, _d), r in zip(items, results, strict=True):
                detail.add_row(name, r.status.name, r.reason)
            io.out.print(detail)
        summary = Table(title=f"{len(results)} certificat(s)")
        summary.add_column("Status")
        summary.add_column("Count", justify="right")
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            style = "green" if name == Status.VALID.name else "red"
            summary.add_row(f"[{style}]{name}[/]", str(n))
        io.out.print(summary)
        if not args.crl:
            io.err.print("revocation not checked (give --crl)", style="yellow")
    bad = sum(n for k, n in counts.items() if k != Status.VALID.name)
    return EXIT_PROBLEM if bad else EXIT_OK


# --- testcard -----------------------------------------------------------------------------


def _cmd_testcard(args: argparse.Namespace, io: _Io) -> int:
    from cps_middleware.testing.testcard import CpsTestCard, default_cards_dir, list_cards

    cards_dir = Path(args.cards_dir) if args.cards_dir else default_cards_dir()
    if args.testcard_cmd == "create":
        if args.virtual:
            return _serve_virtual_cps3(args, io)
        card = CpsTestCard(
            cards_dir, name=args.name, generation=args.generation,
            latency_ms=args.latency_ms, holder=_test_holder(args), pin=args.pin, puk=args.puk,
        ).create()
        info = {"name": card.name, "directory": str(card.directory), "label": card.label,
                "serial": card.serial, "module": card.module_path, "env": card.env}
        if args.json:
            io.json(info)
        else:
            io.out.print(f"Created test card [bold]{card.name}[/] ({card.label}, serial "
                         f"{card.serial}) in {card.directory}")
            io.out.print(f"PKCS#11 module: {card.module_path}")
            io.out.print(f"export CPS_TEST_CARDS_DIR={cards_dir.resolve()}")
        return EXIT_OK
    if args.testcard_cmd == "list":
        cards = list_cards(cards_dir)
        if args.json:
            io.json(cards)
            return EXIT_OK
        table = Table(title=f"Test cards in {cards_dir}")
        for col in ("Name", "Label", "Serial", "Present", "PIN tries left"):
            table.add_column(col)
        for c in cards:
            table.add_row(str(c.get("name")), str(c.get("label")), str(c.get("serial")),
                          "yes" if c.get("present") else "no", str(c.get("pin_tries_left")))
        io.out.print(table)
        return EXIT_OK
    card = _find_test_card(cards_dir, args.name)
    if args.testcard_cmd == "delete":
        card.destroy()
        io.out.print(f"Deleted test card {args.name}")
    elif args.testcard_cmd == "remove":
        card.remove()
        io.out.print(f"Test card {args.name} removed from its reader")
    elif args.testcard_cmd == "insert":
        card.insert()
        io.out.print(f"Test card {args.name} inserted")
    return EXIT_OK


def _find_test_card(cards_dir: Path, name: str) -> Any:
    from cps_middleware.testing.testcard import CpsTestCard, list_cards

    for meta in list_cards(cards_dir):
        if meta.get("name") == name:
            return CpsTestCard(cards_dir, name=name)
    raise errors.TestCardError(
        f"no test card named {name!r} in {cards_dir}", hint="see `cps testcard list`"
    )


def _tcp_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1 to 65535)")
    return port


def _test_secret(what: str, lengths: range) -> Callable[[str], str]:
    """argparse type for a test card's PIN or PUK (test values: allowed as options)."""
    def parse(text: str) -> str:
        if not (text.isdigit() and len(text) in lengths):
            span = (f"{lengths.start} to {lengths.stop - 1}" if len(lengths) > 1
                    else str(lengths.start))
            raise argparse.ArgumentTypeError(f"the {what} of a test card is {span} digits")
        return text

    return parse


def _test_holder(args: argparse.Namespace) -> Any:
    from cps_middleware.testing.pki import TestHolder

    return TestHolder(given_name=args.given_name, surname=args.surname,
                      profession_code=args.profession, id_number=args.rpps)


def _opensc_module(explicit: str | None) -> str | None:
    """``--module``, else ``CPS_OPENSC_MODULE``, else the installed OpenSC PKCS#11 module."""
    import os

    from cps_middleware.pkcs11 import candidate_paths

    if explicit:
        return explicit
    env = os.environ.get("CPS_OPENSC_MODULE")
    if env:
        return env
    # Not CPS_PKCS11_MODULE: it may name a module that does not read PC/SC cards.
    for c in candidate_paths(environ={}):
        if c.source == "opensc" and Path(c.path).is_file():
            return c.path
    return None


def _virtual_reader(args: argparse.Namespace) -> str:
    """The vpcd reader of ``--port``: the one ``--reader`` names, else the scripts/pcscd.sh one."""
    from cps_middleware.pcsc.readers import list_readers
    from cps_middleware.testing.vpcd import vpcd_reader_name

    readers = list_readers(allow_empty=True)
    if args.reader:
        matches = [r for r in readers if args.reader.casefold() in r.name.casefold()]
        if len(matches) != 1:
            raise errors.TestCardError(
                f"{len(matches)} readers match {args.reader!r}",
                hint="give --reader a part of exactly one reader's name (see `cps readers`)")
        reader = matches[0]
    else:
        try:
            name = vpcd_reader_name(args.port)
        except errors.TestCardError as exc:
            exc.hint = ("use a port of the scripts/pcscd.sh readers (35963 to 35968), or name "
                        "the vpcd reader of this port with --reader")
            raise
        found = [r for r in readers if r.name == name]
        if not found:
            raise errors.TestCardError(
                f"no reader {name!r} (the vpcd reader of port {args.port})",
                hint="start pcscd with the vpcd readers: scripts/pcscd.sh start")
        reader = found[0]
    if reader.card_present:
        raise errors.TestCardError(
            f"a card is already in {reader.name!r}",
            hint="remove it (stop the program serving it), or use another --port")
    return str(reader.name)


def _serve_virtual_cps3(args: argparse.Namespace, io: _Io) -> int:
    """`cps testcard create --virtual`: a virtual IAS-ECC CPS3 in a vpcd reader until a signal."""
    import os
    import shlex
    import signal
    import threading
    import time

    from rich.markup import escape

    from cps_middleware.cards.identity import practitioner_from_certificate
    from cps_middleware.testing.cps3image import VirtualCps3
    from cps_middleware.testing.pki import TestPki

    for given, what in ((args.generation != "CPS3", "--generation CPS4"),
                        (args.latency_ms != 0, "--latency-ms"), (args.name, "--name")):
        if given:
            io.stderr.write(f"cps testcard create: error: {what} cannot be used with --virtual "
                            "(a virtual card is a CPS3 with no name, served in the foreground)\n")
            return EXIT_USAGE
    holder = _test_holder(args)
    reader = _virtual_reader(args)
    card = VirtualCps3(TestPki().issue_card(holder), port=args.port, reader=reader,
                       pin=args.pin, puk=args.puk)
    module = _opensc_module(args.module)
    who = practitioner_from_certificate(card.objects.auth_certificate)
    tool = f"pkcs11-tool --module {shlex.quote(module)} -L" if module else None

    # SIGINT and SIGTERM end the wait, not the process: the card leaves the reader cleanly.
    stop: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, _frame: stop.append(signum))
    try:
        card.insert()
        try:
            if args.json:
                io.stdout.write(json.dumps({
                    "reader": card.reader, "port": args.port,
                    "atr": card.card.atr.hex(" ").upper(),
                    "label": card.objects.token_label, "serial": card.objects.serial,
                    "holder": who.to_dict(), "pin": card.pin, "puk": card.puk,
                    "module": module, "pkcs11_tool": tool, "pid": os.getpid(),
                }, ensure_ascii=False, default=str) + "\n")
            else:
                out = io.out
                out.print(f"Virtual CPS3 in [bold]{escape(card.reader)}[/] (vpcd port "
                          f"{args.port}): token {escape(card.objects.token_label)}, serial "
                          f"{card.objects.serial}", soft_wrap=True)
                out.print(f"Holder: {escape(str(who))}", soft_wrap=True)
                out.print(f"PIN {card.pin}, PUK {card.puk} (test values)")
                if module and tool:
                    out.print(f"PKCS#11 module: {escape(module)}", soft_wrap=True)
                    out.print(escape(tool), soft_wrap=True)  # pasted: never wrapped
                else:
                    out.print("PKCS#11 module: OpenSC not found (Debian/Ubuntu: apt-get install "
                              "opensc-pkcs11); any PC/SC middleware can use the card",
                              soft_wrap=True)
                out.print("Ctrl-C pour retirer la carte / to remove the card")
            io.stdout.flush()
            while not stop:
                time.sleep(0.2)
        finally:
            card.remove()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if not args.json:
        io.out.print(f"Virtual CPS3 removed from {escape(card.reader)}", soft_wrap=True)
    return EXIT_OK


# --- demo ---------------------------------------------------------------------------------------


class _Demo:
    """`cps demo`: a CPS test card and a virtual PC/SC card, then the library end to end."""

    def __init__(self, args: argparse.Namespace, io: _Io) -> None:
        self.args = args
        self.io = io
        self.lang = args.lang
        self.n = 0

    def say(self, fr: str, en: str) -> str:
        return fr if self.lang == "fr" else en

    def step(self, fr: str, en: str) -> None:
        self.n += 1
        self.io.out.rule(f"[bold]{self.n}. {self.say(fr, en)}", align="left")

    def run(self) -> int:
        import contextlib
        import tempfile
        import time

        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            cards_dir = self.args.cards_dir or stack.enter_context(
                tempfile.TemporaryDirectory(prefix="cps-demo-"))
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cps-demo-work-")))
            code = self._run(stack, Path(cards_dir), work)
        self.io.out.print(self.say(f"Démo terminée en {time.monotonic() - t0:.1f} s.",
                                   f"Demo finished in {time.monotonic() - t0:.1f} s."),
                          style="dim")
        return code

    def _run(self, stack: Any, cards_dir: Path, work: Path) -> int:
        import os

        from cryptography.hazmat.primitives.serialization import Encoding
        from cryptography.x509.oid import NameOID

        from cps_middleware import diagnostics
        from cps_middleware.card import open_card
        from cps_middleware.diagnostics.report import render_text
        from cps_middleware.discovery import discover
        from cps_middleware.pkcs11 import Pin
        from cps_middleware.selection import CertificateCriteria
        from cps_middleware.testing.pki import TestPki
        from cps_middleware.testing.servers import MutualTlsServer
        from cps_middleware.testing.testcard import CpsTestCard
        from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard
        from cps_middleware.tls.testssl import test_ssl
        from cps_middleware.validation import ValidatorBuilder, igc_sante_test

        out = self.io.out
        # --- the test card: a SoftHSM token behind the CPS test-token module, and the same
        # card's chip in a virtual PC/SC reader. The token's slot is named after that
        # reader (as OpenSC and the ANS middleware name theirs), so discovery shows one
        # card, not a PC/SC view and a PKCS#11 view.
        self.step("Création d'une carte CPS de test", "Creating a CPS test card")
        os.environ["CPS_TEST_CARDS_DIR"] = str(cards_dir)  # before the module is loaded
        pki = TestPki(seed="cps-demo")
        serial = CpsTestCard(cards_dir, name="demo", pki=pki).serial
        chip = VirtualCard(SimpleCpsCard.cps3(serial=serial), port=self.args.port)
        card = CpsTestCard(cards_dir, name="demo", pki=pki, reader=chip.reader).create()
        stack.callback(card.destroy)
        out.print(f"{card.label} — {self.say('n° de série', 'serial')} {card.serial} — "
                  f"PKCS#11: {card.module_path}")
        chip.insert()
        stack.callback(chip.remove)
        out.print(self.say(f"Puce CPS3 virtuelle insérée dans « {chip.reader} »",
                           f"Virtual CPS3 chip inserted in \u201c{chip.reader}\u201d"))

        self.step("Découverte des cartes", "Discovering the cards")
        for found in discover(module_path=card.module_path):
            if found.reader and found.reader != chip.reader and found.token is None:
                continue  # other programs' readers
            where = found.reader or (found.token.slot_description if found.token else "?")
            what = (found.generation.value if found.generation else
                    (found.token.generation or "CPS") if found.token else "?")
            token = (f" — {self.say('jeton', 'token')} {found.token.label!r} "
                     f"({self.say('n° de série', 'serial')} {found.token.serial})"
                     if found.token else "")
            who = f" — {found.holder}" if found.holder else ""
            out.print(f"• {where}: {what}{token}{who}")
            if found.pkcs11_error:
                out.print(f"  {found.pkcs11_error}", style="dim")

        self.step("Titulaire et code porteur", "Holder and PIN state")
        cps = stack.enter_context(open_card(card.module_path, serial=card.serial))
        holder = cps.holder
        out.print(str(holder))
        out.print(self.say(f"Code porteur : {cps.pin_status.value}, essais restants : "
                           f"{cps.pin_tries_left}",
                           f"PIN: {cps.pin_status.value}, tries left: {cps.pin_tries_left}"))

        self.step("Connexion avec le code porteur", "Logging in with the PIN")
        pin = Pin(card.pin)
        cps.login(pin)
        out.print(self.say("Connecté (code porteur de la carte de test).",
                           "Logged in (the test card's PIN)."))

        self.step("Choix du certificat d'authentification", "Selecting the authentication "
                  "certificate")
        chosen = cps.select(CertificateCriteria.for_tls())
        out.print(f"{chosen.certificate.label} + {chosen.key.label} "
                  f"({self.say('associés par', 'paired by')} {chosen.paired_by})")

        self.step("Validation de la chaîne (PKI de test, avec CRL)",
                  "Validating the chain (test PKI, with CRLs)")
        crls = [pki.crl("root"), pki.crl("intermediate")]
        with (ValidatorBuilder().trust(igc_sante_test(pki.ca_certificates))
              .crls(crls).build()) as validator:
            verdict = validator.validate(chosen.certificate.certificate)
        path = " → ".join(
            str(n.value) for c in verdict.path
            for n in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)) or "-"
        out.print(f"{verdict.status.name}: {verdict.reason}")
        out.print(path, style="dim")

        trust_file = work / "igc-sante-test.pem"
        trust_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM)
                                        for c in pki.ca_certificates))
        crl_file = work / "crls.pem"
        crl_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in crls))

        self.step("Test SSL contre le serveur local à authentification mutuelle",
                  "Test SSL against the local mutual-TLS server")
        server = stack.enter_context(MutualTlsServer(client_cas=list(pki.ca_certificates)))
        report = test_ssl(server.url, cps, cafile=str(server.ca_file))
        out.print(report.to_text(), soft_wrap=True)
        seen = _server_saw(report.http_body)
        if seen:
            out.print(self.say(f"Le serveur a reconnu : {seen}", f"The server recognised: {seen}"))

        self.step("Diagnostic", "Diagnostic")
        options = diagnostics.DiagnosticOptions(
            reader=chip.reader, module=card.module_path, token=card.serial, pin=pin,
            trust="test", trust_files=(str(trust_file),), crl_files=(str(crl_file),),
            url=server.url, ca_file=str(server.ca_file),
        )
        run = diagnostics.run(options, lang=self.lang)
        render_text(run, out)
        return EXIT_PROBLEM if run.status is diagnostics.Status.ERROR else EXIT_OK


def _server_saw(body: str) -> str | None:
    """Who the local test server says the client certificate names (its JSON answer)."""
    try:
        client = json.loads(body).get("client") or {}
    except (ValueError, AttributeError):
        return None
    return f"{client.get('subject')} ({client.get('ps_id_nat')})" if client else None


def _cmd_demo(args: argparse.Namespace, io: _Io) -> int:
    return _Demo(args, io).run()


# --- the parser -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns the exit code."""

    def error(self, message: str) -> Any:
        raise _UsageError(f"{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _UsageError(Exception):
    pass


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="cps",
        description="French health-professional smart cards (CPS): readers, PIN, certificates, "
        "Test SSL, chain validation and a diagnostic with remedies.",
        epilog="Exit codes: 0 ok, 1 problem found, 2 usage, 3 operation failed, 4 PIN refused, "
        "70 internal error, 130 interrupted.",
    )
    # The global options are accepted before or after the command: the command's copy
    # has no default, so it never overwrites a value given before the command.
    common = _Parser(add_help=False)
    for target, defaults in ((parser, True), (common, False)):
        def dflt(value: Any, defaults: bool = defaults) -> Any:
            return value if defaults else argparse.SUPPRESS

        target.add_argument("--debug", action="store_true", default=dflt(False),
                            help="show tracebacks")
        target.add_argument("--reader", metavar="NAME", default=dflt(None),
                            help="only readers whose name contains NAME")
        target.add_argument("--module", metavar="PATH", default=dflt(None),
                            help="PKCS#11 module to load")
        target.add_argument("--lang", choices=("fr", "en"), default=dflt("fr"),
                            help="language of messages and remedies (default: fr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "readers", parents=[common], help="list card readers and the cards in them")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_readers)

    p = sub.add_parser(
        "cards", parents=[common], help="cards present: reader, generation, token, holder")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-pkcs11", action="store_true", help="PC/SC only (no middleware)")
    p.set_defaults(handler=_cmd_cards)

    card_opts = _Parser(add_help=False)
    card_opts.add_argument("--serial", help="the card's serial number (when several)")

    p = sub.add_parser(
        "info", parents=[common, card_opts], help="holder identity and certificates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser(
        "certs", parents=[common, card_opts], help="certificates on the card")
    p.add_argument("--export", metavar="DIR", help="write each certificate as PEM in DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_certs)

    p = sub.add_parser(
        "pin", parents=[common, card_opts],
        help="PIN: status (no try spent), verify, change, unblock (PIN read with no echo)")
    psub = p.add_subparsers(dest="pin_cmd", metavar="ACTION", parser_class=_Parser)
    psub.required = True
    t = psub.add_parser("status", help="PIN state from the card (spends no try)")
    t.add_argument("--json", action="store_true")
    for action, text in (("verify", "check the PIN (spends a try if wrong)"),
                         ("change", "change the PIN"),
                         ("unblock", "unblock with the unblocking code (PUK)")):
        t = psub.add_parser(action, help=text)
        t.add_argument("--allow-final-try", action="store_true",
                       help="go on even when one try is left")
    p.set_defaults(handler=_cmd_pin)

    p = sub.add_parser(
        "test-ssl", parents=[common, card_opts],
        help="Test SSL: one mutual-TLS request to URL with the card (PIN read with no echo)")
    p.add_argument("url", metavar="URL")
    p.add_argument("--cafile", help="CA bundle to verify the server (default: system CAs)")
    p.add_argument("--timeout", type=float, default=20.0, help="network timeout in seconds")
    p.add_argument("--allow-final-try", action="store_true",
                   help="go on even when one PIN try is left")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_test_ssl)

    p = sub.add_parser(
        "validate", parents=[common],
        help="validate certificate files against IGC-Santé (progress, summary, --json)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="certificate files or directories")
    p.add_argument("--crl", action="append", metavar="FILE", help="CRL file or directory")
    p.add_argument("--trust", choices=("production", "test"), default="production")
    p.add_argument("--trust-file", action="append", metavar="FILE",
                   help="extra trusted CA certificate(s); repeatable")
    p.add_argument("--at", metavar="ISO-DATE", help="validation time (default: now)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per certificate")
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser(
        "diag", parents=[common], help="run the diagnostic (text, --json, --html FILE or --serve)")
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
    p.set_defaults(handler=_cmd_diag)

    p = sub.add_parser(
        "demo", parents=[common],
        help="the whole library on a CPS test card and a virtual reader, then the diagnostic")
    p.add_argument("--cards-dir", metavar="DIR",
                   help="cards directory for the demo card (default: a temporary one)")
    p.add_argument("--port", type=int, default=35967,
                   help="vpcd port of the virtual reader (default: 35967)")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser(
        "testcard", parents=[common], help="CPS test cards (SoftHSM): create, list, delete ...")
    p.add_argument("--cards-dir", metavar="DIR",
                   help="cards directory (default: $CPS_TEST_CARDS_DIR or a per-user folder)")
    tsub = p.add_subparsers(dest="testcard_cmd", metavar="ACTION", parser_class=_Parser)
    tsub.required = True
    t = tsub.add_parser(
        "create", parents=[common],
        help="create a test card (SoftHSM), or serve a virtual CPS3 in a reader (--virtual)")
    t.add_argument("--name")
    t.add_argument("--generation", choices=("CPS3", "CPS4"), default="CPS3")
    t.add_argument("--latency-ms", type=int, default=0)
    t.add_argument("--given-name", default="JEAN", help="holder's given name (default: JEAN)")
    t.add_argument("--surname", default="MEDECIN-TEST",
                   help="holder's surname (default: MEDECIN-TEST)")
    t.add_argument("--profession", type=int, default=10, metavar="CODE",
                   help="profession code, ANS table G15 (default: 10, Médecin)")
    t.add_argument("--rpps", default="10001234567", metavar="NUMBER",
                   help="holder's RPPS number, 11 digits (default: 10001234567)")
    # A test card's codes are test values: unlike a real card's PIN, they may be options.
    t.add_argument("--pin", type=_test_secret("PIN", range(4, 9)), default="1234",
                   help="the test card's PIN (default: 1234)")
    t.add_argument("--puk", type=_test_secret("unblocking code (PUK)", range(8, 9)),
                   default="12345678", help="the test card's PUK (default: 12345678)")
    t.add_argument("--virtual", action="store_true",
                   help="a virtual IAS-ECC CPS3 in a vpcd reader, for OpenSC or any PC/SC "
                   "middleware, served until Ctrl-C or SIGTERM")
    t.add_argument("--port", type=_tcp_port, default=35965,
                   help="vpcd port of the reader for --virtual (default: 35965)")
    t.add_argument("--json", action="store_true",
                   help="print the card as JSON (--virtual: one line, once the card is in)")
    t = tsub.add_parser(
        "list", parents=[common], help="list the test cards")
    t.add_argument("--json", action="store_true")
    for action, text in (("delete", "delete a test card"),
                         ("remove", "pull a test card out of its reader"),
                         ("insert", "put a test card back")):
        t = tsub.add_parser(action, help=text)
        t.add_argument("name")
    p.set_defaults(handler=_cmd_testcard)
    return parser


# --- main ------------------------------------------------------------------------------------


def _exit_code_for(exc: errors.CpsError) -> int:
    return EXIT_PIN if isinstance(exc, errors.PinError) else EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cps`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    io = _Io(sys.stdout, sys.stderr)
    parser = _build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except _UsageError as exc:
        io.stderr.write(parser.format_usage() + str(exc) + "\n")
        return EXIT_USAGE
    except _Exit as exc:
        return exc.status
    handler: Handler = args.handler
    try:
        return handler(args, io)
    except KeyboardInterrupt:
        io.stderr.write("cps: interrupted\n")
        return EXIT_INTERRUPTED
    except errors.CpsError as exc:
        if args.debug:
            traceback.print_exc(file=io.stderr)
        io.stderr.write(f"cps: error: {exc}\n")
        return _exit_code_for(exc)
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=io.stderr)
        io.stderr.write(
            f"cps: internal error: {type(exc).__name__}: {exc} (run with --debug for details)\n"
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
