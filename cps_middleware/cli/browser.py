"""``cps browser setup|status|remove``: the CPS card in Firefox and Chromium.

``--module PATH`` (global option) names the PKCS#11 module, else the ANS
Cryptolib CPS, else OpenSC. ``--chromium`` / ``--firefox`` limit to one browser
(default: both); ``--profile DIR`` (repeatable) names Firefox profile folders
instead of those of ``profiles.ini``. ``--system`` also registers the module
system-wide through p11-kit (``--root`` for another tree than ``/``).
"""

from __future__ import annotations

import argparse

from cps_middleware.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Io,
    Subparsers,
    add_actions,
    add_command,
)

__all__ = ["cmd_browser", "register"]


def register(sub: Subparsers) -> None:
    """Add ``browser`` and its actions to the ``cps`` parser."""
    p = add_command(sub, "browser",
                    help="register the card middleware with Firefox and Chromium")  # fmt: skip
    actions = add_actions(p, "browser_cmd")
    for action, text in (
        ("setup", "register the module and the IGC-Santé CAs (idempotent)"),
        ("status", "what each browser/profile has registered, and whether it loads"),
        ("remove", "undo exactly what setup did"),
    ):
        t = add_command(actions, action, help=text)
        t.add_argument("--chromium", action="store_true", help="Chromium only")
        t.add_argument("--firefox", action="store_true", help="Firefox only")
        t.add_argument("--profile", action="append", default=[], metavar="DIR",
                       help="a Firefox profile folder (repeatable)")  # fmt: skip
        t.add_argument("--home", metavar="DIR", help="another home folder than $HOME")
        t.add_argument("--json", action="store_true")
        if action != "status":
            t.add_argument("--system", action="store_true",
                           help="also system-wide through p11-kit (/etc/pkcs11/modules)")
            t.add_argument("--root", default="/", metavar="DIR",
                           help="tree holding etc/pkcs11 for --system (default /)")
        if action == "setup":
            t.add_argument("--no-certificates", action="store_true",
                           help="do not import the IGC-Santé CA certificates")
    p.set_defaults(handler=cmd_browser)


def _say(io: Io, line: str) -> None:
    io.out.print(line, markup=False, soft_wrap=True)  # paths are pasted: never wrapped


def cmd_browser(args: argparse.Namespace, io: Io) -> int:
    """``cps browser setup|status|remove``: the card middleware in the browsers."""
    from cps_middleware import browser
    from cps_middleware.messages import text

    lang = args.lang
    both = not args.chromium and not args.firefox
    where = {
        "home": args.home,
        "chromium": args.chromium or (both and not args.profile),
        "firefox": args.firefox or both or bool(args.profile),
        "profiles": args.profile,
    }
    if args.browser_cmd == "status":
        states = browser.status(**where)
        if args.json:
            io.json([s.to_dict(lang) for s in states])
        elif not states:
            _say(io, text("browser.no_target", lang))
        for s in states if not args.json else ():
            _say(io, s.summary(lang))
            for serial, names in s.conflicts():
                _say(io, "  " + text("browser.check_conflict", lang,
                                         where=f"{serial}: {', '.join(names)}"))  # fmt: skip
        bad = [s for s in states if not s.registered or s.module_loads is False]
        return EXIT_PROBLEM if bad or not states else EXIT_OK

    lines: list[str] = []
    data: dict[str, object] = {}
    if args.browser_cmd == "setup":
        choice = browser.find_module(args.module)
        lines.append(text("browser.module_chosen", lang, module=choice.path, source=choice.source))
        data["module"] = {"path": choice.path, "source": choice.source}
        results = browser.setup(choice.path, certificates=not args.no_certificates, **where)
        if args.system:
            done = browser.p11kit_setup(choice.path, args.root)
            path = str(browser.module_file(args.root))
            code = "browser.system_done" if done else "browser.system_unchanged"
            lines.append(text(code, lang, module=choice.path, path=path))
            data["system"] = {"path": path, "changed": done}
    else:
        results = browser.remove(**where)
        if args.system:
            path = str(browser.module_file(args.root))
            done = browser.p11kit_remove(args.root)
            code = "browser.system_removed" if done else "browser.system_nothing"
            lines.append(text(code, lang, path=path))
            data["system"] = {"path": path, "changed": done}
    if not results:
        lines.append(text("browser.no_target", lang))
    lines += [r.message(lang) for r in results]
    if args.json:
        io.json({**data, "results": [r.to_dict(lang) for r in results]})
    else:
        for line in lines:
            _say(io, line)
    failed = [r for r in results if r.outcome in (browser.Outcome.FAILED,
                                                  browser.Outcome.REFUSED_RUNNING)]  # fmt: skip
    return EXIT_PROBLEM if failed else EXIT_OK
