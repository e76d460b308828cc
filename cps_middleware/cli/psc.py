"""``cps psc login --ciba`` and ``cps psc exchange``: Pro Santé Connect from the command line.

The client authenticates by mutual TLS with the organisation certificate of a
PKCS#12 file (``--p12``; its password from ``CPS_PSC_P12_PASSWORD`` or typed
with no echo). Output: who logged in and the tokens' lifetimes; the tokens
themselves only with ``--show-tokens``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cps_middleware import errors
from cps_middleware.cli._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Io,
    Subparsers,
    add_actions,
    add_command,
    open_card,
    read_secret,
)

if TYPE_CHECKING:
    from cps_middleware.psc import PscClient
    from cps_middleware.psc.tokens import TokenSet

__all__ = ["cmd_psc", "register"]


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--client-id", required=True, help="the client id registered at PSC")
    p.add_argument("--p12", required=True, metavar="FILE",
                   help="PKCS#12 file of the organisation certificate (IGC-Santé ORG AUTH_CLI); "
                   "password from CPS_PSC_P12_PASSWORD, else asked with no echo")
    p.add_argument("--env", default=None, metavar="NAME|URL",
                   help="sandbox (default, or CPS_PSC_ISSUER), production, or an issuer URL")
    p.add_argument("--cafile", help="CA bundle to verify the provider (default: system CAs)")
    p.add_argument("--show-tokens", action="store_true",
                   help="also print the tokens (secrets: keep them out of logs)")
    p.add_argument("--json", action="store_true")


def register(sub: Subparsers) -> None:
    p = add_command(sub, "psc", help="Pro Santé Connect: CIBA login, token exchange (mutual TLS)")
    actions = add_actions(p, "psc_cmd")
    login = add_command(actions, "login", card=True,
                        help="log a practitioner in by CIBA (e-CPS app or CPS card)")
    login.add_argument("--ciba", action="store_true", required=True,
                       help="backchannel login (the only mode of the command line)")
    who = login.add_mutually_exclusive_group(required=True)
    who.add_argument("--id", metavar="PS_IDNAT", help="national identifier, e.g. 8xxxxxxxxxxx")
    who.add_argument("--card", action="store_true",
                     help="the holder of the inserted CPS card (--module / --serial)")
    login.add_argument("--binding-message", default=None,
                       help="short text shown on the phone to match this request")
    login.add_argument("--channel", choices=("CARD", "MOBILE"), default=None)
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    _client_options(login)
    ex = add_command(actions, "exchange",
                     help="RFC 8693 token exchange of a PSC access token (mutual TLS)")
    ex.add_argument("--subject-token-file", required=True, metavar="FILE",
                    help="file holding the PSC access token ('-' for standard input)")
    ex.add_argument("--scope", default=None)
    ex.add_argument("--audience", default=None)
    ex.add_argument("--token-endpoint", default=None,
                    help="the authorisation server's token endpoint (default: PSC's)")
    _client_options(ex)
    p.set_defaults(handler=cmd_psc)


def _client(args: argparse.Namespace) -> PscClient:
    from cps_middleware.psc import OrganisationCredentials, PscClient

    password = os.environ.get("CPS_PSC_P12_PASSWORD")
    if password is None:
        password = read_secret("Mot de passe du PKCS#12 / PKCS#12 password: ")
    creds = OrganisationCredentials.from_pkcs12(Path(args.p12), password or None)
    return PscClient(args.client_id, creds, env=args.env, verify_cafile=args.cafile)


def _print_tokens(args: argparse.Namespace, io: Io, tokens: TokenSet) -> None:
    from cps_middleware.messages import text

    lang = args.lang
    seconds = round(tokens.expires_in() or 0)
    io.out.print(text("psc.access_token", lang, seconds=seconds, at=tokens.expires_at))
    if tokens.refresh_token is not None or tokens.id_token is not None:
        yes, no = text("common.yes", lang), text("common.no", lang)
        io.out.print(text("psc.refresh_token", lang,
                          present=yes if tokens.refresh_token else no))
        io.out.print(text("psc.id_token", lang, present=yes if tokens.id_token else no))
    if args.show_tokens:
        io.out.print(f"access_token={tokens.access_token}", soft_wrap=True)
        for name in ("refresh_token", "id_token"):
            value = getattr(tokens, name)
            if value:
                io.out.print(f"{name}={value}", soft_wrap=True)


def _token_json(args: argparse.Namespace, tokens: TokenSet) -> dict[str, object]:
    out = dict(tokens.lifetimes())
    if args.show_tokens:
        out.update(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                   id_token=tokens.id_token)
    return out


def cmd_psc(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.messages import text

    try:
        return _login(args, io) if args.psc_cmd == "login" else _exchange(args, io)
    except errors.OAuthAccessDenied:
        io.err.print(text("psc.denied", args.lang))
    except errors.OAuthExpiredToken:
        io.err.print(text("psc.expired", args.lang))
    except errors.CibaCancelled:
        io.err.print(text("psc.cancelled", args.lang))
    except errors.OAuthInvalidClient:
        io.err.print(text("psc.client_refused", args.lang, client_id=args.client_id))
        raise
    return EXIT_PROBLEM


def _login(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.messages import text

    if args.card:
        with open_card(args) as card:
            who: object = card.holder
    else:
        who = args.id
    with _client(args) as psc:
        request = psc.ciba_start(who, binding_message=args.binding_message,
                                 channel=args.channel)
        if not args.json:
            io.err.print(text("psc.ciba_sent", args.lang, who=request.login_hint,
                              binding=request.binding_message or ""))
            io.err.print(text("psc.waiting", args.lang))
        try:
            login = psc.ciba_wait(request, timeout=args.timeout)
        except KeyboardInterrupt:
            request.cancel()
            raise
    if args.json:
        io.json({"holder": login.practitioner.to_dict(), "tokens": _token_json(args, login.tokens)})
    else:
        io.out.print(text("psc.holder", args.lang, holder=login.practitioner))
        _print_tokens(args, io, login.tokens)
    return EXIT_OK


def _exchange(args: argparse.Namespace, io: Io) -> int:
    from cps_middleware.messages import text

    source = args.subject_token_file
    raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    subject = raw.strip()
    if not subject:
        raise errors.InvalidInput("the subject token file is empty")
    with _client(args) as psc:
        tokens = psc.exchange(subject, scope=args.scope, audience=args.audience,
                              token_endpoint=args.token_endpoint)
    if args.json:
        io.json(_token_json(args, tokens))
    else:
        io.out.print(text("psc.exchanged", args.lang, scope=tokens.scope or args.scope or "",
                          seconds=round(tokens.expires_in() or 0)))
        _print_tokens(args, io, tokens)
    return EXIT_OK
