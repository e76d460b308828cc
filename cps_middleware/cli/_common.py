"""What every command group shares: exit codes, output streams, the parser classes,
the global options, PIN prompts and opening the card.

A group module uses :func:`add_command` for its commands (and for the actions of a
command with sub-actions): every parser it makes accepts the global options
(``--debug --reader --module --lang``), so they work before or after the command.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeAlias

from rich.console import Console

from cps_middleware import errors

if TYPE_CHECKING:
    from cps_middleware.card import CpsCard
    from cps_middleware.pkcs11 import Pin

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIN",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "Handler",
    "Io",
    "Parser",
    "Subparsers",
    "add_actions",
    "add_command",
    "add_global_options",
    "make_pin",
    "new_pin",
    "open_card",
    "read_secret",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_PIN = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class Io:
    """Where a command writes: rich consoles on the streams of the moment (tests swap them)."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.out = Console(file=stdout, highlight=False, soft_wrap=False)
        self.err = Console(file=stderr, highlight=False, soft_wrap=True)

    def json(self, data: object) -> None:
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


Handler = Callable[[argparse.Namespace, Io], int]


class UsageError(Exception):
    """Bad arguments (exit code 2); the message is argparse's."""


class Exit(Exception):
    """argparse wants to stop (``--help``): the exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns the exit code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise Exit(status)


# What ``register`` receives: ``parser.add_subparsers(...)``.
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


def add_global_options(target: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options every command accepts. The copy on a command has no default
    (``SUPPRESS``), so it never overwrites a value given before the command."""

    def dflt(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    target.add_argument("--debug", action="store_true", default=dflt(False),
                        help="show tracebacks")
    target.add_argument("--reader", metavar="NAME", default=dflt(None),
                        help="only readers whose name contains NAME")
    target.add_argument("--module", metavar="PATH", default=dflt(None),
                        help="PKCS#11 module to load")
    target.add_argument("--lang", choices=("fr", "en"), default=dflt(None),
                        help="language of messages and remedies (default: fr, or the locale)")


def _card_options(target: argparse.ArgumentParser) -> None:
    target.add_argument("--serial", default=argparse.SUPPRESS,
                        help="the card's serial number (when several)")


def add_command(
    sub: Subparsers,
    name: str,
    *,
    help: str,
    card: bool = False,
    **kwargs: Any,
) -> Parser:
    """A command (or a command's action) that accepts the global options anywhere,
    and ``--serial`` when ``card`` is true."""
    parser: Parser = sub.add_parser(name, help=help, **kwargs)
    add_global_options(parser, defaults=False)
    if card:
        _card_options(parser)
    return parser


def add_actions(parser: argparse.ArgumentParser, dest: str) -> Subparsers:
    """Required sub-actions of a command (``cps pin status`` ...), stored in ``dest``."""
    actions = parser.add_subparsers(dest=dest, metavar="ACTION", parser_class=Parser)
    actions.required = True
    return actions


def read_secret(prompt: str) -> str:
    """A PIN or PUK: typed with no echo on a terminal, else one line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise errors.InvalidInput("no PIN given on standard input",
                                  hint="type the PIN when asked, or pipe it on stdin")
    return line.rstrip("\r\n")


def make_pin(digits: str) -> Pin:
    from cps_middleware.pkcs11 import Pin

    return Pin(digits)


def new_pin(what: str = "Nouveau code porteur / New PIN") -> Pin:
    first = make_pin(read_secret(f"{what}: "))
    second = make_pin(read_secret(f"{what} (confirmation): "))
    if first != second:
        raise errors.PinFormatError("the two new PINs differ; nothing was changed")
    return first


def open_card(args: argparse.Namespace) -> CpsCard:
    """The card ``--module`` / ``--serial`` name (see :func:`cps_middleware.card.open_card`)."""
    from cps_middleware.card import open_card as _open

    return _open(args.module, serial=args.serial)
