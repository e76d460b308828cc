"""The diagnostic: run outcomes, the report (text and HTML) and the local web page.

The sentences of each check live with the check (``diagnostics/checks.py``,
French and English side by side) and the remedies in ``diagnostics/remedies.py``;
a test holds both to the same rules as this catalogue.
"""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    # framework
    "diag.timeout": Msg(fr="Pas de réponse en {seconds} s.", en="No answer within {seconds} s."),
    "diag.dependency": Msg(fr="Non vérifié : l'étape « {titles} » n'a pas abouti.",
                           en="Not checked: \u201c{titles}\u201d did not pass."),
    "diag.unexpected": Msg(fr="Erreur inattendue : {error}", en="Unexpected error: {error}"),
    "diag.not_pcsc_card": Msg(
        fr="Non nécessaire : la carte de test logicielle ({module}) ne passe pas par un "
           "lecteur de cartes.",
        en="Not needed: the software test card ({module}) does not use a card reader."),
    # report
    "diag.status_ok": Msg(fr="OK", en="OK"),
    "diag.status_warning": Msg(fr="Attention", en="Warning"),
    "diag.status_error": Msg(fr="Erreur", en="Error"),
    "diag.status_skipped": Msg(fr="Non vérifié", en="Not checked"),
    "diag.title": Msg(fr="Diagnostic de la carte CPS", en="CPS card diagnostic"),
    "diag.col_check": Msg(fr="Vérification", en="Check"),
    "diag.col_status": Msg(fr="État", en="Status"),
    "diag.col_seen": Msg(fr="Constat", en="Finding"),
    "diag.what_to_do": Msg(fr="Que faire ?", en="What to do:"),
    "diag.details": Msg(fr="Détails techniques", en="Technical details"),
    "diag.overall_ok": Msg(fr="Tout fonctionne.", en="Everything works."),
    "diag.overall_warning": Msg(fr="Cela fonctionne, avec des points d'attention.",
                                en="It works, with points to watch."),
    "diag.overall_error": Msg(fr="Un problème empêche d'utiliser la carte.",
                              en="A problem prevents using the card."),
    "diag.overall_skipped": Msg(fr="Rien n'a été vérifié.", en="Nothing was checked."),
    "diag.summary": Msg(
        fr="{ok} OK, {warning} avertissement(s), {error} erreur(s), {skipped} non vérifié(s) "
           "— {duration} s",
        en="{ok} OK, {warning} warning(s), {error} error(s), {skipped} not checked "
           "— {duration} s"),
    "diag.generated": Msg(fr="Rapport produit par cps-middleware {version} le {when}",
                          en="Report made by cps-middleware {version} on {when}"),
    # web page
    "diag.page_intro": Msg(
        fr="Ce diagnostic vérifie le lecteur, la carte, le logiciel de la carte, les "
           "certificats et le code porteur, sans consommer d'essai.",
        en="This diagnostic checks the reader, the card, the card middleware, the "
           "certificates and the PIN, without spending a try."),
    "diag.page_url": Msg(fr="Adresse pour le Test SSL (facultatif)",
                         en="Address for the Test SSL (optional)"),
    "diag.page_pin": Msg(fr="Code porteur (seulement pour le Test SSL ; jamais enregistré)",
                         en="PIN (only for the Test SSL; never stored)"),
    "diag.page_run": Msg(fr="Lancer le diagnostic", en="Run the diagnostic"),
    "diag.page_running": Msg(fr="Vérification en cours", en="Checking"),
    "diag.page_json": Msg(fr="Télécharger le rapport (JSON) pour le support",
                          en="Download the report (JSON) for support"),
    "diag.page_other": Msg(fr="English", en="Français"),
    "diag.page_run_failed": Msg(fr="Le diagnostic n'a pas pu se dérouler : {error}",
                                en="The diagnostic could not run: {error}"),
    "diag.page_need_https": Msg(fr="L'adresse du Test SSL doit commencer par https://.",
                                en="The Test SSL address must start with https://."),
    "diag.page_open": Msg(fr="Ouverture du diagnostic…", en="Opening the diagnostic…"),
}
