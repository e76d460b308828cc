"""Sentences of the Pro Santé Connect logins (CLI and examples)."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "psc.ciba_sent": Msg(
        fr="Demande d'authentification envoyée pour {who} ; message affiché : « {binding} »",
        en="Authentication request sent for {who}; message shown: “{binding}”",
    ),
    "psc.waiting": Msg(
        fr="Validez sur l'application e-CPS ou avec la carte CPS…",
        en="Approve in the e-CPS app or with the CPS card…",
    ),
    "psc.holder": Msg(fr="Connecté : {holder}", en="Logged in: {holder}"),
    "psc.access_token": Msg(
        fr="Jeton d'accès : expire dans {seconds} s ({at})",
        en="Access token: expires in {seconds} s ({at})",
    ),
    "psc.refresh_token": Msg(
        fr="Jeton de rafraîchissement : {present}", en="Refresh token: {present}"
    ),
    "psc.id_token": Msg(fr="Jeton d'identité : {present}", en="ID token: {present}"),
    "psc.bound": Msg(
        fr="Jetons liés au certificat de la structure (x5t#S256 {thumbprint})",
        en="Tokens bound to the organisation certificate (x5t#S256 {thumbprint})",
    ),
    "psc.exchanged": Msg(
        fr="Jeton échangé pour « {scope} » : expire dans {seconds} s",
        en="Exchanged token for “{scope}”: expires in {seconds} s",
    ),
    "psc.denied": Msg(
        fr="Le professionnel a refusé l'authentification.",
        en="The practitioner refused the authentication.",
    ),
    "psc.expired": Msg(
        fr="Pas de réponse à temps : relancez la connexion.",
        en="No answer in time: start the login again.",
    ),
    "psc.cancelled": Msg(fr="Connexion annulée.", en="Login cancelled."),
    "psc.client_refused": Msg(
        fr="Pro Santé Connect refuse le certificat de la structure : vérifiez qu'il est "
        "valide, non révoqué et enregistré pour l'identifiant client {client_id}.",
        en="Pro Santé Connect refuses the organisation certificate: check that it is "
        "valid, not revoked and registered for client id {client_id}.",
    ),
    "psc.failed": Msg(
        fr="Échec Pro Santé Connect : {error}", en="Pro Santé Connect failed: {error}"
    ),
}
