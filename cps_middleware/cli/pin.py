"""``cps pin status|verify|change|unblock``: the PIN (read with no echo, never an argument)."""

from __future__ import annotations

import argparse

from cps_middleware import errors
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

__all__ = ["cmd_pin", "register"]


def register(sub: Subparsers) -> None:
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


def cmd_pin(args: argparse.Namespace, io: Io) -> int:
    try:
        return _pin_action(args, io)
    except errors.FinalTryRefused as exc:
        exc.hint = ("one try is left: make sure of the PIN (or code), then run again with "
                    "--allow-final-try")
        raise


def _pin_action(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.pkcs11 import PinStatus, Puk

    with open_card(args) as card:
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
                pin = make_pin(read_secret("Code porteur CPS / CPS PIN: "))
                card.login(pin, allow_final_try=args.allow_final_try)
            card.logout()
            io.out.print("Code porteur correct / PIN correct")
            return EXIT_OK
        if args.pin_cmd == "change":
            old = make_pin(read_secret("Code porteur actuel / Current PIN: "))
            new = new_pin()
            card.token.change_pin(old, new, allow_final_try=args.allow_final_try)
            io.out.print("Code porteur changé / PIN changed")
            return EXIT_OK
        puk = Puk(read_secret("Code de déblocage / Unblocking code (PUK): "))
        new = new_pin()
        card.token.unblock(puk, new, allow_final_try=args.allow_final_try)
        io.out.print("Code porteur débloqué / PIN unblocked")
        return EXIT_OK
