"""What a doctor should do about each diagnostic finding, in French and English.

The texts follow the field guide doctors use to log in to SI-DEP (reader and
workstation problems, the CPS middleware to install and the "Test SSL" to run,
contact details to update at the Ordre, the support numbers) and the CPS facts
of the project (PIN blocked after three wrong entries, unblocking code, card
expiry). They are data: correct a number or a step here and every report,
the command line and the web page follow.

Each remedy is a title and a few steps; most end with the "try another computer
or reader" and "call support" steps, as the guide advises.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LANGUAGES",
    "REMEDY_IDS",
    "SUPPORT_ANS_EMAIL",
    "SUPPORT_ANS_PHONE",
    "SUPPORT_SIDEP_PHONE",
    "Remedy",
    "remedy",
]

LANGUAGES = ("fr", "en")

SUPPORT_SIDEP_PHONE = "0 800 08 32 04"
SUPPORT_ANS_EMAIL = "monserviceclient.cartes@asipsante.fr"
SUPPORT_ANS_PHONE = "0 825 852 000"
_ATSAM_URL = "https://espacepro.ameli.fr/inscription/#/aide"
_TESTSSL_URL = "https://testssl.asipsante.fr"
_ORDRE_URL = "https://monespace.medecin.fr/"


@dataclass(frozen=True)
class Remedy:
    """What to do, for a person: ``id`` is stable, ``title`` and ``steps`` are localised."""

    id: str
    lang: str
    title: str
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "lang": self.lang, "title": self.title, "steps": list(self.steps)}


# Steps shared by several remedies; a remedy lists them by key after its own steps.
_COMMON: dict[str, dict[str, str]] = {
    "other_computer": {
        "fr": (
            "Essayez avec un autre ordinateur et un autre lecteur de cartes, par exemple "
            "celui d'un confrère qui a réussi : une contrainte propre à votre poste peut "
            "bloquer l'opération."
        ),
        "en": (
            "Try another computer and another card reader, for example a colleague's that "
            "works: something specific to your workstation may be in the way."
        ),
    },
    "support_ans": {
        "fr": (
            f"Support carte CPS de l'Agence du Numérique en Santé : {SUPPORT_ANS_EMAIL}, "
            f"ou {SUPPORT_ANS_PHONE} (service 0,06 €/min + prix d'un appel)."
        ),
        "en": (
            f"ANS CPS card support (Agence du Numérique en Santé): {SUPPORT_ANS_EMAIL}, "
            f"or {SUPPORT_ANS_PHONE} (0.06 €/min + call price)."
        ),
    },
    "support_sidep": {
        "fr": (
            f"Support SI-DEP : {SUPPORT_SIDEP_PHONE} (appel gratuit, de 9h00 à 20h00 du lundi "
            "au samedi), qui vous oriente vers le bon interlocuteur."
        ),
        "en": (
            f"SI-DEP support: {SUPPORT_SIDEP_PHONE} (free call, 9:00 to 20:00 Monday to "
            "Saturday); they direct you to the right contact."
        ),
    },
    "install_middleware": {
        "fr": (
            "Installez le package « ATSAM » (distribué par ameli.fr, qui contient le "
            f"logiciel de la carte CPS « Cryptolib CPS ») : {_ATSAM_URL} — sélectionnez tous "
            "les composants proposés et gardez cochée l'option « Lancer l'outil de "
            "diagnostic »."
        ),
        "en": (
            "Install the \u201cATSAM\u201d package (from ameli.fr; it contains the CPS card "
            f"middleware \u201cCryptolib CPS\u201d): {_ATSAM_URL} \u2014 select every component "
            "offered and keep \u201cLaunch the diagnostic tool\u201d ticked."
        ),
    },
    "test_ssl": {
        "fr": (
            f"Puis faites un « Test SSL » ({_TESTSSL_URL}, ou `cps test-ssl URL`) : "
            "sélectionnez le certificat, puis saisissez votre code porteur CPS."
        ),
        "en": (
            f"Then run a \u201cTest SSL\u201d ({_TESTSSL_URL}, or `cps test-ssl URL`): choose "
            "the certificate, then type your CPS PIN (code porteur)."
        ),
    },
}

# id -> lang -> (title, own steps); then the common steps appended.
_CATALOGUE: dict[str, tuple[dict[str, tuple[str, tuple[str, ...]]], tuple[str, ...]]] = {
    "pcsc_service": (
        {
            "fr": (
                "Démarrez le service des cartes à puce",
                (
                    "Le service qui fait le lien entre l'ordinateur et les lecteurs de cartes "
                    "(PC/SC) ne répond pas.",
                    "Windows : démarrez le service « Carte à puce » (services.msc), ou "
                    "redémarrez l'ordinateur.",
                    "Linux : installez et démarrez pcscd (`sudo apt install pcscd`, puis "
                    "`sudo systemctl start pcscd`).",
                    "macOS : débranchez puis rebranchez le lecteur ; redémarrez si besoin.",
                ),
            ),
            "en": (
                "Start the smart card service",
                (
                    "The service that links the computer to card readers (PC/SC) does not "
                    "answer.",
                    "Windows: start the \u201cSmart Card\u201d service (services.msc), or "
                    "restart the computer.",
                    "Linux: install and start pcscd (`sudo apt install pcscd`, then "
                    "`sudo systemctl start pcscd`).",
                    "macOS: unplug and plug the reader back in; restart if needed.",
                ),
            ),
        },
        ("other_computer", "support_sidep"),
    ),
    "reader": (
        {
            "fr": (
                "Branchez le lecteur de cartes",
                (
                    "Aucun lecteur de cartes n'est visible.",
                    "Branchez le lecteur (essayez un autre port USB, sans concentrateur).",
                    "Installez le pilote du lecteur s'il en demande un (il fait partie du "
                    "package ATSAM).",
                ),
            ),
            "en": (
                "Plug the card reader in",
                (
                    "No card reader can be seen.",
                    "Plug the reader in (try another USB port, without a hub).",
                    "Install the reader's driver if it needs one (ATSAM includes the usual "
                    "ones).",
                ),
            ),
        },
        ("other_computer", "support_sidep"),
    ),
    "card_insert": (
        {
            "fr": (
                "Insérez votre carte CPS",
                (
                    "Aucune carte n'est détectée dans le lecteur.",
                    "Insérez la carte CPS à fond, puce en premier et vers le haut.",
                    "Si elle est déjà insérée, retirez-la et insérez-la de nouveau dans le "
                    "bon sens.",
                ),
            ),
            "en": (
                "Insert your CPS card",
                (
                    "No card is detected in the reader.",
                    "Insert the CPS card all the way, chip first and facing up.",
                    "If it is already in, take it out and insert it again the right way.",
                ),
            ),
        },
        ("other_computer",),
    ),
    "card_contact": (
        {
            "fr": (
                "Utilisez la carte dans un lecteur à contact",
                (
                    "La carte est lue sans contact : dans ce mode, elle n'a ni code porteur ni "
                    "signature, et ne sert pas à se connecter.",
                    "Insérez la carte dans la fente d'un lecteur à contact, puce en premier et "
                    "vers le haut.",
                ),
            ),
            "en": (
                "Use the card in a contact reader",
                (
                    "The card is read contactless: in that mode it has no PIN and no "
                    "signature, and cannot be used to log in.",
                    "Insert the card in the slot of a contact reader, chip first and facing up.",
                ),
            ),
        },
        ("other_computer",),
    ),
    "card_wrong_way": (
        {
            "fr": (
                "La carte ne répond pas : vérifiez son sens",
                (
                    "Le lecteur voit une carte mais elle ne répond pas : elle est souvent "
                    "insérée à l'envers.",
                    "Retirez la carte et insérez-la puce en premier, vers le haut, à fond.",
                    "Si la puce est sale ou rayée, nettoyez-la délicatement.",
                ),
            ),
            "en": (
                "The card does not answer: check which way it is inserted",
                (
                    "The reader sees a card but it does not answer: it is often inserted the "
                    "wrong way.",
                    "Take the card out and insert it chip first, facing up, all the way.",
                    "If the chip is dirty or scratched, clean it gently.",
                ),
            ),
        },
        ("other_computer", "support_ans"),
    ),
    "card_in_use": (
        {
            "fr": (
                "La carte est utilisée par un autre programme",
                (
                    "Un autre programme garde la carte pour lui seul.",
                    "Fermez les autres logiciels qui utilisent la carte CPS (navigateur, "
                    "logiciel métier, outil de gestion de la carte), puis relancez.",
                ),
            ),
            "en": (
                "The card is used by another program",
                (
                    "Another program holds the card for itself.",
                    "Close the other programs using the CPS card (browser, practice "
                    "software, card management tool), then run again.",
                ),
            ),
        },
        ("other_computer",),
    ),
    "card_unknown": (
        {
            "fr": (
                "Cette carte n'est pas une carte CPS",
                (
                    "La carte dans le lecteur n'est pas reconnue comme une carte CPS (carte "
                    "Vitale, carte bancaire ... ?).",
                    "Insérez votre carte CPS (ou CPE, CPF) à la place.",
                    "Si c'est bien une carte CPS récente, mettez à jour le logiciel de la "
                    "carte (Cryptolib CPS, package ATSAM).",
                ),
            ),
            "en": (
                "This card is not a CPS card",
                (
                    "The card in the reader is not recognised as a CPS card (Vitale card, "
                    "bank card ...?).",
                    "Insert your CPS card (or CPE, CPF) instead.",
                    "If it is a recent CPS card, update the card middleware (Cryptolib CPS, "
                    "ATSAM package).",
                ),
            ),
        },
        ("support_ans",),
    ),
    "middleware_missing": (
        {
            "fr": (
                "Installez le logiciel de la carte CPS",
                ("Le logiciel qui permet d'utiliser la carte CPS (module PKCS#11) est "
                 "introuvable.",),
            ),
            "en": (
                "Install the CPS card middleware",
                ("The software that lets programs use the CPS card (PKCS#11 module) cannot "
                 "be found.",),
            ),
        },
        ("install_middleware", "test_ssl", "other_computer", "support_sidep"),
    ),
    "module_broken": (
        {
            "fr": (
                "Réinstallez le logiciel de la carte CPS",
                (
                    "Le logiciel de la carte CPS est présent mais ne se charge pas (version "
                    "32/64 bits qui ne correspond pas, fichier manquant ou abîmé).",
                    "Désinstallez-le puis réinstallez la version qui correspond à votre "
                    "système.",
                ),
            ),
            "en": (
                "Reinstall the CPS card middleware",
                (
                    "The CPS card middleware is there but does not load (32/64-bit mismatch, "
                    "missing or damaged file).",
                    "Uninstall it, then install the version that matches your system.",
                ),
            ),
        },
        ("install_middleware", "test_ssl", "support_ans"),
    ),
    "token_missing": (
        {
            "fr": (
                "Le logiciel de la carte ne voit pas votre carte",
                (
                    "Le logiciel de la carte CPS est installé mais ne trouve aucune carte.",
                    "Vérifiez que la carte est insérée (puce en premier, vers le haut) et "
                    "que le lecteur est branché.",
                    "Une carte CPS4 demande une version récente du logiciel (Cryptolib CPS "
                    "5.2 ou plus) : mettez-le à jour.",
                ),
            ),
            "en": (
                "The card middleware does not see your card",
                (
                    "The CPS card middleware is installed but finds no card.",
                    "Check that the card is inserted (chip first, facing up) and that the "
                    "reader is plugged in.",
                    "A CPS4 card needs a recent middleware (Cryptolib CPS 5.2 or later): "
                    "update it.",
                ),
            ),
        },
        ("install_middleware", "other_computer", "support_ans"),
    ),
    "token_unusable": (
        {
            "fr": (
                "La carte est dans un état inutilisable",
                (
                    "La carte est reconnue mais ne peut pas être utilisée (mise à jour "
                    "interrompue, réinitialisation nécessaire, contenu incomplet).",
                    "Ne la retirez pas pendant une opération ; contactez le support carte CPS "
                    "pour la faire remettre en état ou la remplacer.",
                ),
            ),
            "en": (
                "The card is in an unusable state",
                (
                    "The card is recognised but cannot be used (interrupted update, "
                    "re-initialisation needed, incomplete content).",
                    "Do not pull it out during an operation; contact the CPS card support to "
                    "have it repaired or replaced.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "opensc_cannot_sign": (
        {
            "fr": (
                "Pour signer, installez le logiciel de l'ANS",
                (
                    "Le logiciel utilisé est OpenSC : il permet de s'authentifier avec la "
                    "carte, mais la clé de signature ne peut pas signer avec lui.",
                    "Pour signer des documents, installez le logiciel de la carte CPS de "
                    "l'ANS (Cryptolib CPS, package ATSAM).",
                ),
            ),
            "en": (
                "To sign, install the ANS middleware",
                (
                    "The middleware in use is OpenSC: it can authenticate with the card, but "
                    "the signature key cannot sign through it.",
                    "To sign documents, install the ANS CPS card middleware (Cryptolib CPS, "
                    "ATSAM package).",
                ),
            ),
        },
        ("install_middleware",),
    ),
    "pin_count_low": (
        {
            "fr": (
                "Attention au code porteur",
                (
                    "Un code porteur faux a déjà été saisi : la carte se bloque après 3 "
                    "erreurs de suite.",
                    "Saisissez le code avec soin ; un code juste remet le compteur à zéro.",
                ),
            ),
            "en": (
                "Careful with the PIN",
                (
                    "A wrong PIN (code porteur) was already typed: the card blocks after 3 "
                    "wrong entries in a row.",
                    "Type the PIN carefully; a right PIN resets the counter.",
                ),
            ),
        },
        (),
    ),
    "pin_final_try": (
        {
            "fr": (
                "Dernier essai du code porteur",
                (
                    "Il ne reste qu'un essai : un code faux maintenant bloque la carte.",
                    "Ne saisissez le code que si vous en êtes sûr. En cas de doute, "
                    "débloquez-le d'abord avec le code de déblocage (courrier reçu avec la "
                    "carte) : `cps pin unblock`.",
                ),
            ),
            "en": (
                "Last PIN try",
                (
                    "Only one try is left: a wrong PIN now blocks the card.",
                    "Type the PIN only if you are sure of it. If in doubt, first unblock it "
                    "with the unblocking code (letter sent with the card): `cps pin unblock`.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "pin_locked": (
        {
            "fr": (
                "Le code porteur est bloqué",
                (
                    "Trois codes faux ont été saisis : le code porteur est bloqué.",
                    "Débloquez-le avec le code de déblocage (8 chiffres, dans le courrier "
                    "reçu avec la carte) et choisissez un nouveau code porteur : "
                    "`cps pin unblock` ou l'outil de gestion de la carte CPS.",
                    "Si vous n'avez plus le code de déblocage, ou s'il est bloqué lui aussi, "
                    "commandez une nouvelle carte.",
                ),
            ),
            "en": (
                "The PIN is blocked",
                (
                    "Three wrong PINs were typed: the holder PIN (code porteur) is blocked.",
                    "Unblock it with the unblocking code (code de déblocage, 8 digits, in the "
                    "letter sent with the card) and choose a new PIN: `cps pin unblock` or "
                    "the CPS card management tool.",
                    "If you no longer have the unblocking code, or it is blocked too, order "
                    "a new card.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "card_expired": (
        {
            "fr": (
                "La carte CPS est expirée",
                (
                    "Les certificats de la carte ne sont plus valides : la carte est arrivée "
                    "à expiration.",
                    "Commandez son renouvellement (la nouvelle carte arrive en principe "
                    "avant l'échéance : vérifiez votre courrier) ; en attendant, utilisez "
                    "votre e-CPS si elle est activée.",
                ),
            ),
            "en": (
                "The CPS card has expired",
                (
                    "The card's certificates are no longer valid: the card has expired.",
                    "Order its renewal (the new card is normally sent before the end date: "
                    "check your mail); meanwhile use your e-CPS if it is activated.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "card_expiring": (
        {
            "fr": (
                "La carte CPS expire bientôt",
                ("Les certificats de la carte expirent bientôt : surveillez l'arrivée de la "
                 "nouvelle carte, ou demandez son renouvellement.",),
            ),
            "en": (
                "The CPS card expires soon",
                ("The card's certificates expire soon: watch for the new card, or ask for "
                 "its renewal.",),
            ),
        },
        ("support_ans",),
    ),
    "clock": (
        {
            "fr": (
                "Vérifiez la date de l'ordinateur",
                ("Le certificat n'est pas encore valide d'après l'horloge de cet ordinateur : "
                 "réglez la date et l'heure (réglage automatique).",),
            ),
            "en": (
                "Check the computer's date",
                ("The certificate is not valid yet according to this computer's clock: set "
                 "the date and time (automatic setting).",),
            ),
        },
        ("support_ans",),
    ),
    "certificates_missing": (
        {
            "fr": (
                "Certificats de la carte manquants ou incomplets",
                (
                    "La carte ne présente pas le certificat attendu, ou sa clé privée.",
                    "Retirez et réinsérez la carte, puis relancez le diagnostic ; si cela "
                    "persiste, la carte doit être remplacée.",
                ),
            ),
            "en": (
                "Card certificates missing or incomplete",
                (
                    "The card does not show the expected certificate, or its private key.",
                    "Take the card out, put it back and run the diagnostic again; if it "
                    "persists, the card must be replaced.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "untrusted_chain": (
        {
            "fr": (
                "Certificat non reconnu par l'IGC-Santé",
                (
                    "Le certificat de la carte ne remonte pas à une autorité de l'IGC-Santé "
                    "reconnue (carte de test, carte d'un autre organisme, ou certificats de "
                    "l'IGC-Santé absents de ce poste).",
                    "Vérifiez qu'il s'agit bien de votre carte CPS de production ; "
                    "l'installation d'ATSAM ajoute les certificats de l'IGC-Santé.",
                ),
            ),
            "en": (
                "Certificate not recognised by IGC-Santé",
                (
                    "The card certificate does not chain to a known IGC-Santé authority (test "
                    "card, a card from another issuer, or IGC-Santé certificates missing on "
                    "this computer).",
                    "Check that this is your production CPS card; installing ATSAM adds the "
                    "IGC-Santé certificates.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "revoked": (
        {
            "fr": (
                "La carte est révoquée",
                (
                    "Le certificat de la carte a été révoqué (carte déclarée perdue, volée, "
                    "ou remplacée) : il n'est plus accepté.",
                    "Utilisez votre nouvelle carte si vous en avez reçu une ; sinon commandez "
                    "une nouvelle carte.",
                ),
            ),
            "en": (
                "The card is revoked",
                (
                    "The card certificate was revoked (card declared lost, stolen, or "
                    "replaced): it is no longer accepted.",
                    "Use your new card if you received one; otherwise order a new card.",
                ),
            ),
        },
        ("support_ans",),
    ),
    "revocation_unknown": (
        {
            "fr": (
                "Révocation non vérifiée",
                (
                    "La liste des cartes révoquées (CRL) n'était pas disponible : on ne sait "
                    "pas si la carte est révoquée.",
                    "Connectez l'ordinateur à Internet, ou donnez les CRL de l'IGC-Santé "
                    "(`cps diag --crl FICHIER`), puis relancez.",
                ),
            ),
            "en": (
                "Revocation not checked",
                (
                    "The revocation list (CRL) was not available: whether the card is "
                    "revoked is unknown.",
                    "Connect the computer to the Internet, or give the IGC-Santé CRLs "
                    "(`cps diag --crl FILE`), then run again.",
                ),
            ),
        },
        (),
    ),
    "contact_details": (
        {
            "fr": (
                "Mettez à jour vos coordonnées auprès de votre Ordre",
                (
                    "Un refus alors que la carte est valide vient souvent de coordonnées "
                    "(adresse mail, téléphone) pas à jour auprès de votre Ordre.",
                    f"Mettez-les à jour en ligne ({_ORDRE_URL} pour les médecins) ; la mise "
                    "à jour prend environ 72 h avant de pouvoir réessayer.",
                ),
            ),
            "en": (
                "Update your contact details at your Ordre",
                (
                    "A refusal while the card is valid often comes from contact details "
                    "(e-mail, phone) out of date at your professional Ordre.",
                    f"Update them online ({_ORDRE_URL} for doctors); the update takes about "
                    "72 hours before you can try again.",
                ),
            ),
        },
        ("other_computer", "support_sidep", "support_ans"),
    ),
    "tls_rejected": (
        {
            "fr": (
                "Le serveur a refusé la carte",
                (
                    "La connexion sécurisée a échoué : le serveur n'a pas accepté le "
                    "certificat de la carte.",
                    "Vérifiez que la carte est valide (voir les autres lignes du diagnostic) "
                    "et que vous utilisez le bon certificat (authentification).",
                    "Si la carte est valide, vos coordonnées auprès de votre Ordre ne sont "
                    "peut-être pas à jour : mettez-les à jour, puis attendez environ 72 h.",
                ),
            ),
            "en": (
                "The server refused the card",
                (
                    "The secure connection failed: the server did not accept the card's "
                    "certificate.",
                    "Check that the card is valid (see the other diagnostic lines) and that "
                    "the authentication certificate is used.",
                    "If the card is valid, your contact details at your Ordre may be out of "
                    "date: update them, then wait about 72 hours.",
                ),
            ),
        },
        ("other_computer", "support_sidep", "support_ans"),
    ),
    "tls_network": (
        {
            "fr": (
                "Le serveur est injoignable",
                (
                    "La connexion au serveur n'a pas pu s'établir (réseau, proxy, adresse).",
                    "Vérifiez la connexion Internet et l'adresse ; un proxy ou un pare-feu "
                    "d'entreprise peut bloquer l'authentification par carte.",
                ),
            ),
            "en": (
                "The server cannot be reached",
                (
                    "The connection to the server could not be made (network, proxy, "
                    "address).",
                    "Check the Internet connection and the address; a company proxy or "
                    "firewall may block card authentication.",
                ),
            ),
        },
        ("other_computer", "support_sidep"),
    ),
    "tls_server_untrusted": (
        {
            "fr": (
                "Le certificat du serveur n'est pas reconnu",
                (
                    "Le serveur présente un certificat que cet ordinateur ne reconnaît pas.",
                    "Vérifiez la date et l'heure de l'ordinateur ; un proxy qui inspecte les "
                    "connexions empêche l'authentification par carte.",
                ),
            ),
            "en": (
                "The server certificate is not recognised",
                (
                    "The server shows a certificate this computer does not trust.",
                    "Check the computer's date and time; a proxy that inspects connections "
                    "prevents card authentication.",
                ),
            ),
        },
        ("other_computer", "support_sidep"),
    ),
    "tls_card": (
        {
            "fr": (
                "La carte n'a pas pu signer la connexion",
                (
                    "La carte ou son logiciel a refusé l'opération demandée pendant la "
                    "connexion sécurisée.",
                    "Retirez et réinsérez la carte, saisissez le code porteur si demandé ; "
                    "mettez à jour le logiciel de la carte.",
                ),
            ),
            "en": (
                "The card could not sign the connection",
                (
                    "The card or its middleware refused the operation asked during the "
                    "secure connection.",
                    "Take the card out and put it back, type the PIN if asked; update the "
                    "card middleware.",
                ),
            ),
        },
        ("install_middleware", "other_computer", "support_ans"),
    ),
    "pin_needed": (
        {
            "fr": (
                "Code porteur nécessaire",
                ("Ce test utilise la clé de la carte : saisissez votre code porteur CPS "
                 "lorsqu'il est demandé.",),
            ),
            "en": (
                "PIN needed",
                ("This test uses the card key: type your CPS PIN (code porteur) when "
                 "asked.",),
            ),
        },
        (),
    ),
    "timeout": (
        {
            "fr": (
                "Pas de réponse dans le délai",
                (
                    "La carte, le lecteur ou le serveur n'a pas répondu à temps.",
                    "Retirez puis réinsérez la carte, débranchez puis rebranchez le lecteur, "
                    "et relancez le diagnostic.",
                ),
            ),
            "en": (
                "No answer in time",
                (
                    "The card, the reader or the server did not answer in time.",
                    "Take the card out and put it back, unplug and plug the reader back in, "
                    "then run the diagnostic again.",
                ),
            ),
        },
        ("other_computer", "support_sidep"),
    ),
    "internal": (
        {
            "fr": (
                "Erreur inattendue du diagnostic",
                ("Le diagnostic a rencontré une erreur inattendue : relancez-le ; si elle "
                 "persiste, transmettez le rapport (JSON) au support.",),
            ),
            "en": (
                "Unexpected diagnostic error",
                ("The diagnostic met an unexpected error: run it again; if it persists, send "
                 "the report (JSON) to support.",),
            ),
        },
        ("other_computer", "support_sidep"),
    ),
}

def _cps4_needs_ans() -> dict[str, tuple[str, tuple[str, ...]]]:
    from cps_middleware.messages import LANGUAGES as _LANGS
    from cps_middleware.messages import text

    return {
        lg: (text("cps4.remedy_title", lg),
             (text("cps4.remedy_why", lg, version="5.2"), text("cps4.remedy_install", lg)))
        for lg in _LANGS
    }  # fmt: skip


# A CPS4 with OpenSC only (sentences in the message catalogue, area "cps4").
_CATALOGUE["cps4_needs_ans"] = (_cps4_needs_ans(), ("install_middleware", "support_ans"))

REMEDY_IDS: tuple[str, ...] = tuple(_CATALOGUE)


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else "fr"


def remedy(remedy_id: str, lang: str = "fr") -> Remedy:
    """The remedy ``remedy_id`` in ``lang`` (``"fr"`` or ``"en"``; French otherwise).

    Raises ``KeyError`` for an unknown id: remedies are referenced by the checks
    of this package only, and a typo must fail the tests.
    """
    texts, common = _CATALOGUE[remedy_id]
    lg = _lang(lang)
    title, steps = texts[lg]
    return Remedy(
        id=remedy_id,
        lang=lg,
        title=title,
        steps=(*steps, *(_COMMON[k][lg] for k in common)),
    )
