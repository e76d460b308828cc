"""The ``cps`` command: table titles and columns, what each command prints, its errors."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    # errors and interruptions (main)
    "cli.error": Msg(fr="cps : erreur : {message}", en="cps: error: {message}"),
    "cli.internal_error": Msg(
        fr="cps : erreur interne : {error} (relancez avec --debug pour le détail)",
        en="cps: internal error: {error} (run with --debug for details)"),
    "cli.interrupted": Msg(fr="cps : interrompu", en="cps: interrupted"),
    "cli.not_a_port": Msg(fr="ce n'est pas un numéro de port : {value}",
                          en="not a port number: {value}"),
    "cli.port_range": Msg(fr="{port} n'est pas un port TCP ({low} à 65535)",
                          en="{port} is not a TCP port ({low} to 65535)"),
    "cli.not_a_date": Msg(fr="ce n'est pas une date ISO : {value}",
                          en="not an ISO date or time: {value}"),
    "cli.test_secret": Msg(fr="le {what} d'une carte de test a {span} chiffres",
                           en="the {what} of a test card is {span} digits"),
    "cli.what_pin": Msg(fr="code porteur", en="PIN"),
    "cli.what_puk": Msg(fr="code de déblocage (PUK)", en="unblocking code (PUK)"),
    "cli.span": Msg(fr="{low} à {high}", en="{low} to {high}"),
    # readers, cards, info, certs
    "cli.readers_title": Msg(fr="Lecteurs de cartes", en="Card readers"),
    "cli.cards_title": Msg(fr="Cartes", en="Cards"),
    "cli.certs_title": Msg(fr="Certificats", en="Certificates"),
    "cli.no_card": Msg(fr="Aucune carte.", en="No card."),
    "cli.card_mute": Msg(fr="muette", en="mute"),
    "cli.col_reader": Msg(fr="Lecteur", en="Reader"),
    "cli.col_card": Msg(fr="Carte", en="Card"),
    "cli.col_atr": Msg(fr="ATR (réponse de la carte)", en="ATR"),
    "cli.col_cps": Msg(fr="Génération CPS", en="CPS generation"),
    "cli.col_token": Msg(fr="Jeton PKCS#11", en="PKCS#11 token"),
    "cli.col_holder": Msg(fr="Titulaire", en="Holder"),
    "cli.col_usage": Msg(fr="Usage", en="Use"),
    "cli.col_name": Msg(fr="Nom", en="Name"),
    "cli.col_issuer": Msg(fr="Émetteur", en="Issuer"),
    "cli.col_valid_until": Msg(fr="Valide jusqu'au", en="Valid until"),
    "cli.col_label": Msg(fr="Libellé", en="Label"),
    "cli.col_serial": Msg(fr="N° de série", en="Serial"),
    "cli.col_present": Msg(fr="Insérée", en="Present"),
    "cli.col_pin_tries": Msg(fr="Essais restants du code porteur", en="PIN tries left"),
    "cli.usage_auth": Msg(fr="authentification", en="authentication"),
    "cli.usage_sign": Msg(fr="signature", en="signature"),
    "cli.usage_technical": Msg(fr="technique (sans contact)", en="technical (contactless)"),
    "cli.usage_unknown": Msg(fr="inconnu", en="unknown"),
    "cli.info_holder": Msg(fr="Titulaire", en="Holder"),
    "cli.info_profession": Msg(fr="Profession", en="Profession"),
    "cli.info_ps_id_nat": Msg(fr="Identifiant national", en="National identifier"),
    "cli.info_rpps": Msg(fr="RPPS / ADELI", en="RPPS / ADELI number"),
    "cli.info_card": Msg(fr="N° de carte", en="Card number"),
    "cli.info_until": Msg(fr="Valide jusqu'au", en="Valid until"),
    "cli.info_pin": Msg(fr="Code porteur", en="PIN"),
    "cli.info_reader": Msg(fr="Lecteur", en="Reader"),
    # diag
    "cli.diag_html": Msg(fr="Rapport HTML : {path}", en="HTML report: {path}"),
    "cli.diag_serving": Msg(fr="Diagnostic : {url}", en="Diagnostic: {url}"),
    "cli.diag_stop": Msg(fr="(Ctrl-C pour arrêter)", en="(Ctrl-C to stop)"),
    "cli.web_extra_missing": Msg(
        fr="cps : erreur : la page de diagnostic demande le module optionnel « web » "
           "({module} manque) — installez-le : pip install 'cps-middleware[web]'",
        en="cps: error: the diagnostic page needs the optional 'web' extra ({module} is "
           "missing) — install it: pip install 'cps-middleware[web]'"),
    "cli.port_unavailable": Msg(
        fr="cps : erreur : le port {port} n'est pas disponible ({reason}) — choisissez-en un "
           "autre avec --port, ou 0 pour un port libre",
        en="cps: error: port {port} is not available ({reason}) — choose another with "
           "--port, or 0 for any free port"),
    # testcard
    "cli.testcard_created": Msg(
        fr="Carte de test {name} créée ({label}, n° de série {serial}) dans {directory}",
        en="Created test card {name} ({label}, serial {serial}) in {directory}"),
    "cli.pkcs11_module": Msg(fr="Module PKCS#11 : {module}", en="PKCS#11 module: {module}"),
    "cli.testcards_title": Msg(fr="Cartes de test dans {directory}",
                               en="Test cards in {directory}"),
    "cli.testcard_deleted": Msg(fr="Carte de test {name} supprimée",
                                en="Deleted test card {name}"),
    "cli.testcard_removed": Msg(fr="Carte de test {name} retirée de son lecteur",
                                en="Test card {name} removed from its reader"),
    "cli.testcard_inserted": Msg(fr="Carte de test {name} insérée",
                                 en="Test card {name} inserted"),
    "cli.virtual_conflict": Msg(
        fr="cps testcard create : erreur : {option} ne va pas avec --virtual (une carte "
           "virtuelle n'a pas de nom et est servie au premier plan)",
        en="cps testcard create: error: {option} cannot be used with --virtual (a virtual "
           "card has no name and is served in the foreground)"),
    "cli.needs_virtual": Msg(
        fr="cps testcard create : erreur : {option} ne va qu'avec --virtual (une carte "
           "virtuelle dans un lecteur)",
        en="cps testcard create: error: {option} goes only with --virtual (a virtual card "
           "in a reader)"),
    "cli.virtual_pinpad_port": Msg(
        fr="cps testcard create : erreur : --pin-pad utilise le lecteur à clavier du port "
           "{port}",
        en="cps testcard create: error: --pin-pad uses the PIN-pad reader of port {port}"),
    "cli.virtual_pinpad_asks": Msg(
        fr="Le lecteur à clavier demande le code porteur (il attend {seconds} s).",
        en="The PIN-pad reader asks for the PIN (it waits {seconds} s)."),
    "cli.virtual_pinpad_prompt": Msg(
        fr="Code porteur sur le clavier du lecteur (rien ne s'affiche ; Entrée seule = "
           "Annuler) : ",
        en="PIN on the reader's keypad (nothing is shown; Enter alone = Cancel): "),
    "cli.virtual_pinpad_digits": Msg(
        fr="Le clavier du lecteur n'a que des chiffres (16 au plus) : saisie annulée.",
        en="The reader's keypad has digits only (16 at most): entry cancelled."),
    "cli.virtual_in": Msg(
        fr="{generation} virtuelle dans {reader} (port vpcd {port}) : jeton {label}, n° de "
           "série {serial}",
        en="Virtual {generation} in {reader} (vpcd port {port}): token {label}, serial "
           "{serial}"),
    "cli.virtual_holder": Msg(fr="Titulaire : {holder}", en="Holder: {holder}"),
    "cli.virtual_codes": Msg(fr="Code porteur {pin}, code de déblocage {puk} (valeurs de test)",
                             en="PIN {pin}, PUK {puk} (test values)"),
    "cli.virtual_no_opensc": Msg(
        fr="Module PKCS#11 : OpenSC introuvable (Debian/Ubuntu : apt-get install "
           "opensc-pkcs11) ; tout logiciel PC/SC peut utiliser la carte",
        en="PKCS#11 module: OpenSC not found (Debian/Ubuntu: apt-get install opensc-pkcs11); "
           "any PC/SC middleware can use the card"),
    "cli.virtual_stop": Msg(fr="Ctrl-C pour retirer la carte", en="Ctrl-C to remove the card"),
    "cli.virtual_removed": Msg(fr="{generation} virtuelle retirée de {reader}",
                               en="Virtual {generation} removed from {reader}"),
    "cli.virtual_no_ans": Msg(
        fr="Module PKCS#11 : la Cryptolib CPS de l'ANS (5.2 ou plus récente) est introuvable ; "
           "OpenSC ne connaît pas la CPS4",
        en="PKCS#11 module: the ANS Cryptolib CPS (5.2 or later) was not found; OpenSC does "
           "not know the CPS4"),
}
