"""Sentences about the CPS4 and which middleware works with which card generation."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "cps4.opensc_unknown": Msg(
        fr="Carte CPS4 : OpenSC ({module}) ne connaît pas cette carte (aucune clé, aucun "
        "certificat). Installez le logiciel de la carte CPS de l'ANS, Cryptolib CPS {version} "
        "ou plus récent.",
        en="CPS4 card: OpenSC ({module}) does not know this card (no key, no certificate). "
        "Install the ANS CPS card middleware, Cryptolib CPS {version} or later.",
    ),
    "cps4.remedy_title": Msg(
        fr="Installez Cryptolib CPS de l'ANS pour la CPS4",
        en="Install the ANS Cryptolib CPS for the CPS4",
    ),
    "cps4.remedy_why": Msg(
        fr="Une carte CPS4 ne fonctionne qu'avec le logiciel de l'ANS (Cryptolib CPS {version} "
        "ou plus récent) ; OpenSC ne la lit pas.",
        en="A CPS4 card works only with the ANS middleware (Cryptolib CPS {version} or later); "
        "OpenSC does not read it.",
    ),
    "cps4.remedy_install": Msg(
        fr="Installez le package ATSAM ou Cryptolib CPS depuis le site de l'ANS, puis relancez "
        "le diagnostic.",
        en="Install the ATSAM package or Cryptolib CPS from the ANS web site, then run the "
        "diagnostic again.",
    ),
    "cps4.works_with": Msg(
        fr="{generation} avec {middleware} : carte lue {token}, authentification {auth}, "
        "signature {sign}, déchiffrement {decrypt}, TLS 1.3 {tls13}.",
        en="{generation} with {middleware}: card read {token}, authentication {auth}, "
        "signature {sign}, decryption {decrypt}, TLS 1.3 {tls13}.",
    ),
    "cps4.tls13": Msg(
        fr="La carte signe en RSA-PSS : connexion en TLS 1.3 possible.",
        en="The card signs with RSA-PSS: TLS 1.3 connections are possible.",
    ),
    "cps4.tls12_only": Msg(
        fr="La carte ne signe pas en RSA-PSS : connexion limitée à TLS 1.2.",
        en="The card does not sign with RSA-PSS: connections are limited to TLS 1.2.",
    ),
}
