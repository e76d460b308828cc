"""``cps testcard``: CPS test cards (SoftHSM) and a virtual CPS3 (IAS-ECC) or CPS4 (ChipDoc)
in a vpcd reader."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from cps_middleware import errors
from cps_middleware.cli._common import (
    EXIT_OK,
    EXIT_USAGE,
    Io,
    Subparsers,
    add_actions,
    add_command,
    tcp_port,
    usage_text,
)

if TYPE_CHECKING:
    from cps_middleware.testing.pki import TestHolder
    from cps_middleware.testing.testcard import CpsTestCard

__all__ = ["cmd_testcard", "register"]


def register(sub: Subparsers) -> None:
    """Add ``testcard`` and its actions to the ``cps`` parser."""
    p = add_command(sub, "testcard", help="CPS test cards (SoftHSM): create, list, delete ...")
    p.add_argument("--cards-dir", metavar="DIR",
                   help="cards directory (default: $CPS_TEST_CARDS_DIR or a per-user folder)")
    tsub = add_actions(p, "testcard_cmd")
    t = add_command(
        tsub, "create",
        help="create a test card (SoftHSM), or serve a virtual CPS3/CPS4 in a reader (--virtual)")
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
    t.add_argument("--pin", type=_test_secret("pin", range(4, 9)), default="1234",
                   help="the test card's PIN (default: 1234)")
    t.add_argument("--puk", type=_test_secret("puk", range(8, 9)),
                   default="12345678", help="the test card's PUK (default: 12345678)")
    t.add_argument("--virtual", action="store_true",
                   help="a virtual card in a vpcd reader, served until Ctrl-C or SIGTERM: "
                   "an IAS-ECC CPS3 (OpenSC, the ANS middleware) or, with --generation CPS4, "
                   "a ChipDoc CPS4 (the ANS middleware 5.2 or later)")
    t.add_argument("--port", type=tcp_port(), default=None,
                   help="vpcd port of the reader for --virtual (default: 35965)")
    t.add_argument("--pin-pad", action="store_true",
                   help="with --virtual: the reader with a PIN pad (port 35969); when the "
                   "middleware asks for the PIN on the pad, this command prompts for it")
    t.add_argument("--json", action="store_true",
                   help="print the card as JSON (--virtual: one line, once the card is in)")
    t = add_command(tsub, "list", help="list the test cards")
    t.add_argument("--json", action="store_true")
    for action, text in (("delete", "delete a test card"),
                         ("remove", "pull a test card out of its reader"),
                         ("insert", "put a test card back")):
        t = add_command(tsub, action, help=text)
        t.add_argument("name")
    p.set_defaults(handler=cmd_testcard)


def cmd_testcard(args: argparse.Namespace, io: Io) -> int:
    """``cps testcard create|list|delete|remove|insert``."""
    from cps_middleware.testing.testcard import CpsTestCard, default_cards_dir, list_cards

    cards_dir = Path(args.cards_dir) if args.cards_dir else default_cards_dir()
    if args.testcard_cmd == "create":
        if args.virtual:
            return _serve_virtual_cps3(args, io)
        for given, what in ((args.pin_pad, "--pin-pad"), (args.port is not None, "--port")):
            if given:
                io.stderr.write(io.t("cli.needs_virtual", option=what) + "\n")
                return EXIT_USAGE
        card = CpsTestCard(
            cards_dir, name=args.name, generation=args.generation,
            latency_ms=args.latency_ms, holder=_test_holder(args), pin=args.pin, puk=args.puk,
        ).create()
        info = {"name": card.name, "directory": str(card.directory), "label": card.label,
                "serial": card.serial, "module": card.module_path, "env": card.env}
        if args.json:
            io.json(info)
        else:
            io.out.print(io.t("cli.testcard_created", name=card.name, label=card.label,
                              serial=card.serial, directory=card.directory))
            io.out.print(io.t("cli.pkcs11_module", module=card.module_path))
            io.out.print(f"export CPS_TEST_CARDS_DIR={cards_dir.resolve()}")
        return EXIT_OK
    if args.testcard_cmd == "list":
        cards = list_cards(cards_dir)
        if args.json:
            io.json(cards)
            return EXIT_OK
        table = Table(title=io.t("cli.testcards_title", directory=cards_dir))
        for col in ("cli.col_name", "cli.col_label", "cli.col_serial", "cli.col_present",
                    "cli.col_pin_tries"):
            table.add_column(io.t(col))
        for c in cards:
            table.add_row(str(c.get("name")), str(c.get("label")), str(c.get("serial")),
                          io.t("common.yes") if c.get("present") else io.t("common.no"),
                          str(c.get("pin_tries_left")))
        io.out.print(table)
        return EXIT_OK
    card = _find_test_card(cards_dir, args.name)
    if args.testcard_cmd == "delete":
        card.destroy()
        io.out.print(io.t("cli.testcard_deleted", name=args.name))
    elif args.testcard_cmd == "remove":
        card.remove()
        io.out.print(io.t("cli.testcard_removed", name=args.name))
    elif args.testcard_cmd == "insert":
        card.insert()
        io.out.print(io.t("cli.testcard_inserted", name=args.name))
    return EXIT_OK


def _find_test_card(cards_dir: Path, name: str) -> CpsTestCard:
    from cps_middleware.testing.testcard import CpsTestCard, list_cards

    for meta in list_cards(cards_dir):
        if meta.get("name") == name:
            return CpsTestCard(cards_dir, name=name)
    raise errors.TestCardError(
        f"no test card named {name!r} in {cards_dir}", hint="see `cps testcard list`"
    )


def _test_secret(what: str, lengths: range) -> Callable[[str], str]:
    """argparse type for a test card's PIN or PUK (test values: allowed as options);
    ``what`` is ``"pin"`` or ``"puk"``."""
    def parse(text: str) -> str:
        if not (text.isdigit() and len(text) in lengths):
            span = (usage_text("cli.span", low=lengths.start, high=lengths.stop - 1)
                    if len(lengths) > 1 else str(lengths.start))
            raise argparse.ArgumentTypeError(usage_text(
                "cli.test_secret", what=usage_text(f"cli.what_{what}"), span=span))
        return text

    return parse


def _test_holder(args: argparse.Namespace) -> TestHolder:
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


def _ans_module(explicit: str | None) -> str | None:
    """``--module``, else ``CPS_ANS_MODULE``, else the installed ANS Cryptolib CPS module."""
    import os

    from cps_middleware.pkcs11 import candidate_paths

    if explicit:
        return explicit
    env = os.environ.get("CPS_ANS_MODULE")
    if env:
        return env
    for c in candidate_paths(environ={}):
        if c.source == "ans" and Path(c.path).is_file():
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
            exc.hint = ("use a port of the vpcd readers (35963 to 35968), or name "
                        "the vpcd reader of this port with --reader")
            raise
        found = [r for r in readers if r.name == name]
        if not found:
            raise errors.TestCardError(
                f"no reader {name!r} (the vpcd reader of port {args.port})",
                hint="start pcscd with the vpcd readers "
                     "(as root: python -m cps_middleware.testing.pcscd start)")
        reader = found[0]
    if reader.card_present:
        raise errors.TestCardError(
            f"a card is already in {reader.name!r}",
            hint="remove it (stop the program serving it), or use another --port")
    return str(reader.name)


def _pin_pad_prompt(io: Io) -> Callable[[float], str]:
    """What a person types on the virtual reader's PIN pad, asked on this terminal
    (no echo; an empty line is the cancel key)."""
    import getpass

    def ask(timeout: float) -> str:
        io.stderr.write(io.t("cli.virtual_pinpad_asks", seconds=int(timeout)) + "\n")
        io.stderr.flush()
        digits = getpass.getpass(io.t("cli.virtual_pinpad_prompt"))
        if digits and not (digits.isdigit() and digits.isascii() and len(digits) <= 16):
            io.stderr.write(io.t("cli.virtual_pinpad_digits") + "\n")
            return ""
        return digits

    return ask


def _serve_virtual_cps3(args: argparse.Namespace, io: Io) -> int:
    """`cps testcard create --virtual`: a virtual CPS3 or CPS4 in a vpcd reader until a signal."""
    import os
    import shlex
    import signal
    import threading
    import time

    from cps_middleware.cards.identity import practitioner_from_certificate
    from cps_middleware.testing.cps3image import VirtualCps3
    from cps_middleware.testing.cps4image import VirtualCps4
    from cps_middleware.testing.pki import TestPki

    for given, what in ((args.latency_ms != 0, "--latency-ms"), (args.name, "--name")):
        if given:
            io.stderr.write(io.t("cli.virtual_conflict", option=what) + "\n")
            return EXIT_USAGE
    from cps_middleware.testing.pcscd import DEFAULT_PINPAD_PORTS

    if args.port is None:
        args.port = DEFAULT_PINPAD_PORTS[0] if args.pin_pad else 35965
    elif args.pin_pad and args.port not in DEFAULT_PINPAD_PORTS:
        io.stderr.write(io.t("cli.virtual_pinpad_port", port=DEFAULT_PINPAD_PORTS[0]) + "\n")
        return EXIT_USAGE
    holder = _test_holder(args)
    reader = _virtual_reader(args)
    gen = args.generation
    card: VirtualCps3 | VirtualCps4
    if gen == "CPS4":
        # OpenSC has no CPS4 driver: point at the ANS module
        card = VirtualCps4(TestPki().issue_card(holder), port=args.port, reader=reader,
                           pin=args.pin, puk=args.puk)
        module = _ans_module(args.module)
    else:
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
    if args.pin_pad:
        card.keypad.source = _pin_pad_prompt(io)
    try:
        card.insert()
        try:
            if args.json:
                io.stdout.write(json.dumps({
                    "reader": card.reader, "port": args.port, "generation": gen,
                    "atr": card.card.atr.hex(" ").upper(),
                    "label": card.objects.token_label, "serial": card.objects.serial,
                    "holder": who.to_dict(), "pin": card.pin, "puk": card.puk,
                    "module": module, "pkcs11_tool": tool, "pid": os.getpid(),
                }, ensure_ascii=False, default=str) + "\n")
            else:
                out = io.out
                out.print(io.t("cli.virtual_in", generation=gen, reader=card.reader,
                               port=args.port, label=card.objects.token_label,
                               serial=card.objects.serial), soft_wrap=True)
                out.print(io.t("cli.virtual_holder", holder=who.describe(io.lang)),
                          soft_wrap=True)
                out.print(io.t("cli.virtual_codes", pin=card.pin, puk=card.puk))
                if module and tool:
                    out.print(io.t("cli.pkcs11_module", module=module), soft_wrap=True)
                    out.print(tool, soft_wrap=True)  # pasted: never wrapped
                elif gen == "CPS4":
                    out.print(io.t("cli.virtual_no_ans"), soft_wrap=True)
                else:
                    out.print(io.t("cli.virtual_no_opensc"), soft_wrap=True)
                out.print(io.t("cli.virtual_stop"))
            io.stdout.flush()
            while not stop:
                time.sleep(0.2)
        finally:
            card.remove()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if not args.json:
        io.out.print(io.t("cli.virtual_removed", generation=gen, reader=card.reader),
                     soft_wrap=True)
    return EXIT_OK
