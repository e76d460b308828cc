"""``cps pin status|verify|change|unblock``: the PIN (read with no echo, never an argument)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cps_middleware.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Io,
    Subparsers,
    add_actions,
    add_command,
    make_pin,
    new_pin,
    open_card,
    read_secret,
)

if TYPE_CHECKING:
    from cps_middleware.pkcs11 import PinStatus

__all__ = ["cmd_pin", "describe_pin", "register"]


def register(sub: Subparsers) -> None:
    """Add ``pin`` and its actions to the ``cps`` parser."""
    p = add_command(
        sub, "pin", card=True,
        help="PIN: status (no try spent), verify, change, unblock (PIN read with no echo)")
    actions = add_actions(p, "pin_cmd")
    t = add_command(actions, "status", card=True, help="PIN state from the card (spends no try)")
    t.add_argument("--json", action="store_true")
    for action, text in (("verify", "check the PIN (spends a try if wrong)"),
                         ("change", "change the PIN"),
                         ("unblock", "unblock with the unblocking code (PUK)")):
        t = add_command(actions, action, card=True, help=text)
        t.add_argument("--allow-final-try", action="store_true",
                       help="go on even when one try is left")
    p.set_defaults(handler=cmd_pin)


def describe_pin(io: Io, status: PinStatus, tries_left: int | None) -> str:
    """``bloqué``, ``OK (3 essai(s) restant(s))`` ... in the command's language."""
    words = io.t(f"pin.status_{status.value}")
    if tries_left is None:
        return words
    return f"{words} ({io.t('common.tries_left', n=tries_left)})"


def cmd_pin(args: argparse.Namespace, io: Io) -> int:
    """``cps pin status|verify|change|unblock``."""
    from cps_middleware.pkcs11 import PinStatus, Puk

    with open_card(args) as card:
        if args.pin_cmd == "status":
            status, left = card.pin_status, card.pin_tries_left
            if args.json:
                io.json({"pin_status": status.value, "tries_left": left})
            else:
                io.out.print(io.t("pin.status_line", status=describe_pin(io, status, left)))
            return EXIT_PROBLEM if status is PinStatus.LOCKED else EXIT_OK
        if args.pin_cmd == "verify":
            if card.pin_status is PinStatus.PIN_PAD:
                io.err.print(io.t("pin.type_on_reader"))
                card.login(None, allow_final_try=args.allow_final_try)
            else:
                pin = make_pin(read_secret(io.t("pin.prompt")))
                card.login(pin, allow_final_try=args.allow_final_try)
            card.logout()
            io.out.print(io.t("pin.correct"))
            return EXIT_OK
        if args.pin_cmd == "change":
            old = make_pin(read_secret(io.t("pin.prompt_current")))
            new = new_pin(io)
            card.token.change_pin(old, new, allow_final_try=args.allow_final_try)
            io.out.print(io.t("pin.changed"))
            return EXIT_OK
        puk = Puk(read_secret(io.t("pin.prompt_puk")))
        new = new_pin(io)
        card.token.unblock(puk, new, allow_final_try=args.allow_final_try)
        io.out.print(io.t("pin.unblocked"))
        return EXIT_OK
