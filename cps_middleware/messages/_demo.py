"""``cps demo``: its steps and what each one prints."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "demo.step_card": Msg(fr="Création d'une carte CPS de test", en="Creating a CPS test card"),
    "demo.step_discovery": Msg(fr="Découverte des cartes", en="Discovering the cards"),
    "demo.step_holder": Msg(fr="Titulaire et code porteur", en="Holder and PIN state"),
    "demo.step_login": Msg(fr="Connexion avec le code porteur", en="Logging in with the PIN"),
    "demo.step_select": Msg(fr="Choix du certificat d'authentification",
                            en="Selecting the authentication certificate"),
    "demo.step_validate": Msg(fr="Validation de la chaîne (PKI de test, avec listes de "
                                 "révocation)",
                              en="Validating the chain (test PKI, with revocation lists)"),
    "demo.step_test_ssl": Msg(fr="Test SSL contre le serveur local à authentification mutuelle",
                              en="Test SSL against the local mutual-TLS server"),
    "demo.step_diag": Msg(fr="Diagnostic de la carte", en="Card diagnostic"),
    "demo.card_made": Msg(fr="{label} — n° de série {serial} — module PKCS#11 : {module}",
                          en="{label} — serial {serial} — PKCS#11 module: {module}"),
    "demo.chip_inserted": Msg(fr="Puce CPS3 virtuelle insérée dans « {reader} »",
                              en="Virtual CPS3 chip inserted in \u201c{reader}\u201d"),
    "demo.token": Msg(fr="jeton « {label} » (n° de série {serial})",
                      en="token \u201c{label}\u201d (serial {serial})"),
    "demo.logged_in": Msg(fr="Connecté (code porteur de la carte de test).",
                          en="Logged in (the test card's PIN)."),
    "demo.selected": Msg(fr="{certificate} + {key} (associés par {paired_by})",
                         en="{certificate} + {key} (paired by {paired_by})"),
    "demo.server_saw": Msg(fr="Le serveur a reconnu : {who}", en="The server recognised: {who}"),
    "demo.finished": Msg(fr="Démo terminée en {seconds} s.", en="Demo finished in {seconds} s."),
    "demo.pcscd_started": Msg(
        fr="Service pcscd démarré pour la démo (PID {pid}, arrêté à la fin).",
        en="pcscd started for the demo (PID {pid}, stopped at the end)."),
    "demo.pkcs11_only": Msg(
        fr="Remarque : lecteur virtuel non utilisé ({why}) ; la démo passe par le seul "
           "module PKCS#11. Pour l'activer : {how}.",
        en="Note: no virtual reader ({why}); the demo runs on the PKCS#11 module only. "
           "To enable it: {how}."),
    "demo.why_no_pcscd": Msg(fr="le service pcscd n'est pas installé",
                             en="pcscd is not installed"),
    "demo.why_no_vpcd": Msg(fr="le pilote de lecteur virtuel vpcd n'est pas installé",
                            en="the vpcd virtual reader driver is not installed"),
    "demo.how_install": Msg(fr="installez pcscd et vsmartcard-vpcd (apt-get install pcscd "
                               "vsmartcard-vpcd), puis relancez « cps demo »",
                            en="install pcscd and vsmartcard-vpcd (apt-get install pcscd "
                               "vsmartcard-vpcd), then run 'cps demo' again"),
    "demo.why_not_root": Msg(fr="démarrer pcscd demande les droits administrateur",
                             en="starting pcscd needs administrator rights"),
    "demo.how_root": Msg(fr="relancez « sudo cps demo », ou démarrez pcscd avec les lecteurs "
                            "vpcd (sudo python -m cps_middleware.testing.pcscd start)",
                         en="run 'sudo cps demo', or start pcscd with the vpcd readers "
                            "(sudo python -m cps_middleware.testing.pcscd start)"),
    "demo.why_start_failed": Msg(fr="pcscd n'a pas démarré : {reason}",
                                 en="pcscd did not start: {reason}"),
    "demo.why_other_pcscd": Msg(
        fr="le service pcscd en marche n'a pas de lecteur « {reader} »",
        en="the running pcscd has no reader \u201c{reader}\u201d"),
    "demo.how_other_pcscd": Msg(
        fr="arrêtez ce pcscd puis relancez « sudo cps demo » (il démarre le sien), ou "
           "ajoutez les lecteurs vpcd à sa configuration",
        en="stop that pcscd and run 'sudo cps demo' (it starts its own), or add the vpcd "
           "readers to its configuration"),
    "demo.why_reader_busy": Msg(fr="une carte est déjà dans « {reader} »",
                                en="a card is already in \u201c{reader}\u201d"),
    "demo.why_port": Msg(fr="le port {port} n'est pas celui d'un lecteur vpcd",
                         en="port {port} is not a vpcd reader's port"),
    "demo.how_port": Msg(fr="choisissez un autre port avec --port (35963 à 35968)",
                         en="choose another port with --port (35963 to 35968)"),
}
