"""Sentences about the PKCS#11 middleware in use (which one, what it cannot do)."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "pkcs11.middleware_ans": Msg(
        fr="Cryptolib CPS de l'ANS {version}", en="ANS Cryptolib CPS {version}"
    ),
    "pkcs11.middleware_opensc": Msg(fr="OpenSC {version}", en="OpenSC {version}"),
    "pkcs11.middleware_test_token": Msg(
        fr="jeton de test CPS {version}", en="CPS test token {version}"
    ),
    "pkcs11.middleware_other": Msg(fr="{name} {version}", en="{name} {version}"),
    "pkcs11.module_loaded": Msg(
        fr="Logiciel de la carte : {middleware} ({path}).",
        en="Card middleware: {middleware} ({path}).",
    ),
    "pkcs11.opensc_cannot_sign": Msg(
        fr="Logiciel de la carte : {middleware} ({path}). Il permet l'authentification "
        "et le déchiffrement, mais pas la signature avec la clé de signature de la CPS "
        "(OpenSC compilé avec OpenSSL 3 ne sait pas faire la signature qualifiée IAS-ECC) : "
        "pour signer des documents, installez la Cryptolib CPS de l'ANS.",
        en="Card middleware: {middleware} ({path}). It can authenticate and decrypt, but "
        "cannot sign with the CPS signature key (OpenSC built on OpenSSL 3 lacks the "
        "IAS-ECC qualified signature): to sign documents, install the ANS Cryptolib CPS.",
    ),
    "pkcs11.ans_sign_key_hashes": Msg(
        fr="Avec la Cryptolib CPS, la clé de signature d'une CPS3 ne signe que des "
        "empreintes SHA-1 ou SHA-256.",
        en="Through the ANS Cryptolib CPS, the signature key of a CPS3 signs SHA-1 or "
        "SHA-256 digests only.",
    ),
}
