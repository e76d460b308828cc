"""Sentences of `cps_middleware.browser` (cps browser setup/status/remove) and its diagnostic checks."""
# ruff: noqa: E501 -- one sentence per line reads better than wrapped fragments

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "browser.setup_done": Msg(
        fr="{browser} ({profile}) : module {module} enregistré, {added} certificat(s) IGC-Santé importé(s).",
        en="{browser} ({profile}): module {module} registered, {added} IGC-Santé certificate(s) imported.",
    ),
    "browser.setup_unchanged": Msg(
        fr="{browser} ({profile}) : déjà en place (module « {name} »), rien à changer.",
        en="{browser} ({profile}): already set up (module \"{name}\"), nothing to change.",
    ),
    "browser.running": Msg(
        fr="{browser} ({profile}) : le navigateur est ouvert (processus {pids}) ; fermez-le puis relancez la commande. Rien n'a été modifié.",
        en="{browser} ({profile}): the browser is running (process {pids}); close it and run the command again. Nothing was changed.",
    ),
    "browser.failed": Msg(
        fr="{browser} ({profile}) : échec : {error}",
        en="{browser} ({profile}): failed: {error}",
    ),
    "browser.remove_done": Msg(
        fr="{browser} ({profile}) : enregistrement retiré ({removed} certificat(s) supprimé(s)).",
        en="{browser} ({profile}): registration removed ({removed} certificate(s) deleted).",
    ),
    "browser.remove_nothing": Msg(
        fr="{browser} ({profile}) : rien à retirer (aucune installation par cps-middleware).",
        en="{browser} ({profile}): nothing to remove (not set up by cps-middleware).",
    ),
    "browser.status_no_db": Msg(
        fr="{browser} ({profile}) : pas de base de certificats dans {directory} (navigateur jamais lancé ?).",
        en="{browser} ({profile}): no certificate database in {directory} (browser never started?).",
    ),
    "browser.status_not_registered": Msg(
        fr="{browser} ({profile}) : aucun module de carte CPS enregistré.",
        en="{browser} ({profile}): no CPS card module registered.",
    ),
    "browser.status_loads": Msg(
        fr="{browser} ({profile}) : {modules} — se charge ; certificats IGC-Santé : {certs}/{expected}.",
        en="{browser} ({profile}): {modules} — loads; IGC-Santé certificates: {certs}/{expected}.",
    ),
    "browser.status_not_loading": Msg(
        fr="{browser} ({profile}) : {modules} — NE SE CHARGE PAS ; certificats IGC-Santé : {certs}/{expected}.",
        en="{browser} ({profile}): {modules} — DOES NOT LOAD; IGC-Santé certificates: {certs}/{expected}.",
    ),
    "browser.status_not_checked": Msg(
        fr="{browser} ({profile}) : {modules} — chargement non vérifié (navigateur ouvert) ; certificats IGC-Santé : {certs}/{expected}.",
        en="{browser} ({profile}): {modules} — loading not checked (browser running); IGC-Santé certificates: {certs}/{expected}.",
    ),
    "browser.system_done": Msg(
        fr="p11-kit (tout le système) : module {module} enregistré dans {path}.",
        en="p11-kit (system-wide): module {module} registered in {path}.",
    ),
    "browser.system_unchanged": Msg(
        fr="p11-kit (tout le système) : déjà enregistré dans {path}.",
        en="p11-kit (system-wide): already registered in {path}.",
    ),
    "browser.system_removed": Msg(
        fr="p11-kit (tout le système) : {path} supprimé.",
        en="p11-kit (system-wide): {path} deleted.",
    ),
    "browser.system_nothing": Msg(
        fr="p11-kit (tout le système) : rien à retirer.",
        en="p11-kit (system-wide): nothing to remove.",
    ),
    "browser.no_target": Msg(
        fr="Aucun navigateur trouvé (ni Chromium, ni profil Firefox).",
        en="No browser found (no Chromium, no Firefox profile).",
    ),
    "browser.module_chosen": Msg(
        fr="Module PKCS#11 : {module} ({source}).",
        en="PKCS#11 module: {module} ({source}).",
    ),
    # -- diagnostic checks --------------------------------------------------------------
    "browser.check_no_browser": Msg(
        fr="Aucun navigateur installé (Chromium, Firefox) : rien à vérifier.",
        en="No browser installed (Chromium, Firefox): nothing to check.",
    ),
    "browser.check_registered": Msg(
        fr="Module de la carte enregistré dans : {where}.",
        en="Card module registered in: {where}.",
    ),
    "browser.check_not_registered": Msg(
        fr="Le module de la carte n'est pas enregistré dans : {where}. Le navigateur ne verra pas la carte.",
        en="The card module is not registered in: {where}. The browser will not see the card.",
    ),
    "browser.check_sees_card": Msg(
        fr="Le module chargé par le navigateur voit la carte : {where}.",
        en="The module the browser loads sees the card: {where}.",
    ),
    "browser.check_no_card": Msg(
        fr="Le module enregistré se charge mais ne voit aucune carte ({where}).",
        en="The registered module loads but sees no card ({where}).",
    ),
    "browser.check_not_loading": Msg(
        fr="Le module enregistré ne se charge pas : {where}.",
        en="The registered module does not load: {where}.",
    ),
    "browser.check_chain_ok": Msg(
        fr="{n} certificats d'autorité IGC-Santé lisibles et importables.",
        en="{n} IGC-Santé CA certificates readable and importable.",
    ),
    "browser.check_chain_missing": Msg(
        fr="Certificats IGC-Santé absents de : {where} (le navigateur peut ne pas envoyer la chaîne complète).",
        en="IGC-Santé certificates missing from: {where} (the browser may not send the full chain).",
    ),
    "browser.check_chain_broken": Msg(
        fr="Certificats IGC-Santé du paquet illisibles : {error}.",
        en="IGC-Santé certificates of the package unreadable: {error}.",
    ),
    "browser.check_no_conflict": Msg(
        fr="Un seul logiciel de carte par navigateur.",
        en="One card middleware per browser.",
    ),
    "browser.check_conflict": Msg(
        fr="Deux logiciels de carte voient la même carte ({where}) : le navigateur peut proposer deux fois le certificat ou bloquer la carte.",
        en="Two card middlewares see the same card ({where}): the browser may offer the certificate twice or lock the card.",
    ),
    "browser.check_running": Msg(
        fr="{where} : navigateur ouvert, vérification du chargement impossible.",
        en="{where}: browser running, loading cannot be checked.",
    ),
}
