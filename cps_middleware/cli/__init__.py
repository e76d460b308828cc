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

One module per command group
----------------------------
Each group of commands is a module of this package (``cards``: readers, cards,
info, certs; ``pin``; ``tls``: test-ssl; ``validate``; ``diag``; ``demo``;
``testcard``) with the same small interface::

    def register(sub: Subparsers) -> None:
        p = add_command(sub, "name", help="...", card=True)   # card=True: --serial
        p.add_argument(...)
        p.set_defaults(handler=cmd_name)

    def cmd_name(args: argparse.Namespace, io: Io) -> int:   # returns the exit code
        ...

``add_command`` (from ``cli._common``, with ``add_actions`` for sub-actions
like ``cps pin status``) gives every parser the global options
(``--debug --reader --module --lang``), so they are accepted before or after
the command. A handler writes through ``io`` (``io.out`` / ``io.err`` rich
consoles, ``io.json``), raises :mod:`cps_middleware.errors` for failures (exit
3, or 4 for PIN errors) and returns one of the ``EXIT_*`` codes.

Adding a group is writing ``cli/<group>.py`` and adding ``"<group>"`` to
:data:`GROUPS` below (the order of ``GROUPS`` is the order of ``cps --help``).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence

from cps_middleware import errors
from cps_middleware.cli._common import (
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIN,
    EXIT_PROBLEM,
    EXIT_USAGE,
    Exit,
    Handler,
    Io,
    Parser,
    UsageError,
    add_global_options,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIN",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "GROUPS",
    "build_parser",
    "main",
]

# The command groups, one module each in this package, in the order of ``cps --help``.
GROUPS: tuple[str, ...] = ("cards", "pin", "tls", "validate", "diag", "demo", "testcard", "psc")


def build_parser() -> Parser:
    """The ``cps`` parser: global options, then each group's commands."""
    parser = Parser(
        prog="cps",
        description="French health-professional smart cards (CPS): readers, PIN, certificates, "
        "Test SSL, chain validation and a diagnostic with remedies.",
        epilog="Exit codes: 0 ok, 1 problem found, 2 usage, 3 operation failed, 4 PIN refused, "
        "70 internal error, 130 interrupted.",
    )
    add_global_options(parser, defaults=True)
    parser.set_defaults(serial=None)  # the card commands' --serial, before or after the action
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in GROUPS:
        importlib.import_module(f"{__name__}.{group}").register(sub)
    return parser


def _exit_code_for(exc: errors.CpsError) -> int:
    return EXIT_PIN if isinstance(exc, errors.PinError) else EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cps`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from cps_middleware.messages import resolve_lang

    io = Io(sys.stdout, sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except UsageError as exc:
        io.stderr.write(parser.format_usage() + str(exc) + "\n")
        return EXIT_USAGE
    except Exit as exc:
        return exc.status
    args.lang = resolve_lang(args.lang)
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
