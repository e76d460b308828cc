"""What every command group shares: exit codes, output streams, the parser classes,
the global options, PIN prompts and opening the card.

A group module uses :func:`add_command` for its commands (and for the actions of a
command with sub-actions): every parser it makes accepts the global options
(``--debug --reader --module --lang``), so they work before or after the command.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeAlias

from rich.console import Console

from cps_middleware import errors

if TYPE_CHECKING:
    from cryptography import x509

    from cps_middleware.card import CpsCard
    from cps_middleware.cards.identity import Practitioner
    from cps_middleware.messages import Lang
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
    "describe_holder",
    "help_text",
    "make_pin",
    "new_pin",
    "open_card",
    "parser_language",
    "read_secret",
    "readable_name",
    "tcp_port",
    "usage_text",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_PIN = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class Io:
    """Where a command writes, and in which language.

    ``out`` / ``err`` are rich consoles on the streams of the moment (tests swap
    them) with markup *off*: a string printed, a table cell or a title is shown
    exactly as it is, so a holder name or an issuer holding ``[/]`` or
    ``[link=...]`` can neither break nor spoof the output. Styles are given with
    ``style=`` or :class:`rich.text.Text`, never inside the text.
    ``t(code, **values)`` is the catalogue sentence in the command's language.
    """

    def __init__(self, stdout: TextIO, stderr: TextIO, lang: str | None = None) -> None:
        from cps_middleware.messages import resolve_lang

        self.stdout = stdout
        self.stderr = stderr
        self.lang: Lang = resolve_lang(lang)
        self.out = Console(file=stdout, highlight=False, soft_wrap=False, markup=False,
                           emoji=False)
        self.err = Console(file=stderr, highlight=False, soft_wrap=True, markup=False,
                           emoji=False)

    def t(self, code: str, **values: object) -> str:
        """The sentence ``code`` of the catalogue in this command's language."""
        from cps_middleware.messages import text

        return text(code, self.lang, **values)

    def json(self, data: object) -> None:
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def describe_holder(holder: Practitioner, lang: str) -> str:
    """``JEAN MEDECIN-TEST, Médecin (10), 810001234567, carte de TEST`` in ``lang``."""
    return holder.describe(lang)


def readable_name(name: x509.Name | str) -> str:
    """A distinguished name with short attribute names, never raw OIDs (a string as it is)."""
    if isinstance(name, str):
        return name
    from cps_middleware.cards._x509 import readable_name as _readable

    return _readable(name)


Handler = Callable[[argparse.Namespace, Io], int]


class UsageError(Exception):
    """Bad arguments (exit code 2); the message is argparse's."""


class Exit(Exception):
    """argparse wants to stop (``--help``): the exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# The language of the parser being built and run (``main`` sets it from ``--lang`` or the
# locale before building the parser): help texts, section titles and argparse's own
# messages are shown in it (catalogue area ``help``, keyed by the English text).
_parser_lang: list[str] = ["fr"]


@functools.cache
def _french_help() -> dict[str, str]:
    from cps_middleware.messages import all_messages

    return {m.en: m.fr for code, m in all_messages().items() if code.startswith("help.")}


def help_text(english: str) -> str:
    """``english`` (a help text, a section title, an argparse message) in the parser's
    language: its French from the catalogue area ``help`` when the language is French."""
    if _parser_lang[0] == "en" or not english:
        return english
    return _french_help().get(english, english)


def usage_text(code: str, **values: object) -> str:
    """The catalogue sentence ``code`` in the parser's language (for argparse type errors)."""
    from cps_middleware.messages import text

    return text(code, _parser_lang[0], **values)


@contextlib.contextmanager
def parser_language(lang: str) -> Iterator[None]:
    """Build and run the parser in ``lang``: help and argparse's messages in that language."""
    module = vars(argparse)  # argparse looks its sentences up through its global ``_``
    previous, previous_gettext = _parser_lang[0], module["_"]
    _parser_lang[0] = lang
    if lang != "en":
        module["_"] = help_text
    try:
        yield
    finally:
        _parser_lang[0] = previous
        module["_"] = previous_gettext


class _Formatter(argparse.HelpFormatter):
    """argparse's help, with every text in the parser's language."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return help_text(action.help) if action.help else action.help

    def start_section(self, heading: str | None) -> None:
        super().start_section(help_text(heading) if heading else heading)

    def _format_text(self, text: str) -> str:
        return super()._format_text(help_text(text))

    def add_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                  groups: Iterable[argparse._MutuallyExclusiveGroup],
                  prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups,
                          help_text("usage: ") if prefix is None else prefix)


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns the exit code, and
    speaks the language of :func:`parser_language`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(usage_text("help.argparse_error", prog=self.prog, message=message))

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


def tcp_port(*, allow_zero: bool = False) -> Callable[[str], int]:
    """argparse type: a TCP port number (``0``, "any free port", only with ``allow_zero``)."""
    low = 0 if allow_zero else 1

    def parse(text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                usage_text("cli.not_a_port", value=repr(text))) from None
        if not low <= port <= 65535:
            raise argparse.ArgumentTypeError(
                usage_text("cli.port_range", port=port, low=low))
        return port

    return parse


def read_secret(prompt: str) -> str:
    """A PIN or PUK: typed with no echo on a terminal, else one line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise errors.InvalidInput("no PIN given on standard input",
                                  hint="type the PIN when asked, or pipe it on stdin",
                                  )
    return line.rstrip("\r\n")


def make_pin(digits: str) -> Pin:
    from cps_middleware.pkcs11 import Pin

    return Pin(digits)


def new_pin(io: Io) -> Pin:
    """The new PIN, typed twice."""
    first = make_pin(read_secret(io.t("pin.prompt_new")))
    second = make_pin(read_secret(io.t("pin.prompt_new_again")))
    if first != second:
        raise errors.PinFormatError("the two new PINs differ; nothing was changed")
    return first


def open_card(args: argparse.Namespace) -> CpsCard:
    """The card ``--module`` / ``--serial`` name (see :func:`cps_middleware.card.open_card`)."""
    from cps_middleware.card import open_card as _open

    return _open(args.module, serial=args.serial)
