# ruff: noqa: E501  (a table of sentences: one per line reads best)
"""Help of the ``cps`` command: each option's and command's help, keyed by its English text.

Group modules write their ``help=`` in English; ``cps --help`` shows the French of this
area (the ``en`` text must be exactly the module's). A test checks that every help
text of every command has its French here. ``help.argparse_*`` are argparse's own words.
"""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "help.h01": Msg(
        fr='Cartes des professionnels de santé (CPS) : lecteurs, code porteur, certificats, Test SSL, validation des chaînes et diagnostic avec les remèdes.',
        en='French health-professional smart cards (CPS): readers, PIN, certificates, Test SSL, chain validation and a diagnostic with remedies.'),
    "help.h02": Msg(
        fr='Codes de sortie : 0 tout va bien, 1 problème trouvé, 2 utilisation, 3 opération impossible, 4 code porteur refusé, 70 erreur interne, 130 interrompu.',
        en='Exit codes: 0 ok, 1 problem found, 2 usage, 3 operation failed, 4 PIN refused, 70 internal error, 130 interrupted.'),
    "help.h03": Msg(
        fr="afficher les traces d'erreur (traceback)",
        en='show tracebacks'),
    "help.h04": Msg(
        fr='seulement les lecteurs dont le nom contient NAME',
        en='only readers whose name contains NAME'),
    "help.h05": Msg(
        fr='module PKCS#11 à charger',
        en='PKCS#11 module to load'),
    "help.h06": Msg(
        fr="langue des messages et des remèdes (par défaut : fr, ou celle de l'environnement)",
        en='language of messages and remedies (default: fr, or the locale)'),
    "help.h07": Msg(
        fr="lister les lecteurs de cartes et les cartes qu'ils contiennent",
        en='list card readers and the cards in them'),
    "help.h08": Msg(
        fr='cartes présentes : lecteur, génération, jeton, titulaire',
        en='cards present: reader, generation, token, holder'),
    "help.h09": Msg(
        fr='identité du titulaire et certificats',
        en='holder identity and certificates'),
    "help.h10": Msg(
        fr='certificats de la carte',
        en='certificates on the card'),
    "help.h11": Msg(
        fr="code porteur : état (sans consommer d'essai), vérifier, changer, débloquer (saisi sans écho)",
        en='PIN: status (no try spent), verify, change, unblock (PIN read with no echo)'),
    "help.h12": Msg(
        fr='Test SSL : une requête à URL avec authentification mutuelle par la carte (code saisi sans écho)',
        en='Test SSL: one mutual-TLS request to URL with the card (PIN read with no echo)'),
    "help.h13": Msg(
        fr="valider des fichiers de certificats selon l'IGC-Santé (progression, résumé, --json)",
        en='validate certificate files against IGC-Santé (progress, summary, --json)'),
    "help.h14": Msg(
        fr='lancer le diagnostic (texte, --json, --html FILE ou --serve)',
        en='run the diagnostic (text, --json, --html FILE or --serve)'),
    "help.h15": Msg(
        fr='toute la bibliothèque sur une carte CPS de test et un lecteur virtuel, puis le diagnostic',
        en='the whole library on a CPS test card and a virtual reader, then the diagnostic'),
    "help.h16": Msg(
        fr='cartes CPS de test (SoftHSM) : créer, lister, supprimer ...',
        en='CPS test cards (SoftHSM): create, list, delete ...'),
    "help.h17": Msg(
        fr='Pro Santé Connect : connexion CIBA, échange de jetons (TLS mutuel)',
        en='Pro Santé Connect: CIBA login, token exchange (mutual TLS)'),
    "help.h18": Msg(
        fr='PC/SC seulement (sans logiciel de carte)',
        en='PC/SC only (no middleware)'),
    "help.h19": Msg(
        fr="le numéro de série de la carte (s'il y en a plusieurs)",
        en="the card's serial number (when several)"),
    "help.h20": Msg(
        fr='écrire chaque certificat en PEM dans DIR',
        en='write each certificate as PEM in DIR'),
    "help.h21": Msg(
        fr="état du code porteur lu sur la carte (sans consommer d'essai)",
        en='PIN state from the card (spends no try)'),
    "help.h22": Msg(
        fr="vérifier le code porteur (un essai est consommé s'il est faux)",
        en='check the PIN (spends a try if wrong)'),
    "help.h23": Msg(
        fr='changer le code porteur',
        en='change the PIN'),
    "help.h24": Msg(
        fr='débloquer avec le code de déblocage (PUK)',
        en='unblock with the unblocking code (PUK)'),
    "help.h25": Msg(
        fr="continuer même s'il ne reste qu'un essai",
        en='go on even when one try is left'),
    "help.h26": Msg(
        fr="certificats d'autorité pour vérifier le serveur (par défaut : ceux du système)",
        en='CA bundle to verify the server (default: system CAs)'),
    "help.h27": Msg(
        fr='délai réseau en secondes',
        en='network timeout in seconds'),
    "help.h28": Msg(
        fr="continuer même s'il ne reste qu'un essai du code porteur",
        en='go on even when one PIN try is left'),
    "help.h29": Msg(
        fr='sources de révocation (avec --fetch)',
        en='revocation sources (with --fetch)'),
    "help.h30": Msg(
        fr='fichiers ou dossiers de certificats',
        en='certificate files or directories'),
    "help.h31": Msg(
        fr='fichier ou dossier de listes de révocation (CRL)',
        en='CRL file or directory'),
    "help.h32": Msg(
        fr="certificat(s) d'autorité de confiance en plus ; peut être répété",
        en='extra trusted CA certificate(s); repeatable'),
    "help.h33": Msg(
        fr='date de validation (par défaut : maintenant)',
        en='validation time (default: now)'),
    "help.h34": Msg(
        fr='une ligne par certificat',
        en='one line per certificate'),
    "help.h35": Msg(
        fr="télécharger les listes de révocation des points de distribution HTTP de chaque certificat (en cache, rafraîchies chaque jour) et interroger le répondeur OCSP de l'IGC-Santé pour le reste",
        en="download the CRLs of each certificate's HTTP distribution points (cached, refreshed daily) and ask the IGC-Santé OCSP responder for what no CRL covers"),
    "help.h36": Msg(
        fr="accepter un certificat quand aucune réponse de révocation n'est obtenue (par défaut : refus, REVOCATION_UNKNOWN)",
        en='accept a certificate when no revocation answer can be had (default: hard-fail, REVOCATION_UNKNOWN)'),
    "help.h37": Msg(
        fr="répondeur OCSP (par défaut : http://ocsp.esante.gouv.fr ; « none » : pas d'OCSP)",
        en="OCSP responder (default: http://ocsp.esante.gouv.fr; 'none': no OCSP)"),
    "help.h38": Msg(
        fr='télécharger les adresses de CRL commençant par PREFIX depuis URL à la place ; peut être répété',
        en='fetch CRL addresses starting with PREFIX from URL instead; repeatable'),
    "help.h39": Msg(
        fr='cache des listes de révocation (par défaut : ~/.cache/cps-middleware/crl)',
        en='CRL cache (default: ~/.cache/cps-middleware/crl)'),
    "help.h40": Msg(
        fr='délai réseau par requête (10 par défaut)',
        en='network timeout per request (default 10)'),
    "help.h41": Msg(
        fr='afficher le résultat en JSON',
        en='print the run as JSON'),
    "help.h42": Msg(
        fr='servir la page de diagnostic sur 127.0.0.1 (adresse avec un jeton)',
        en='serve the diagnostic page on 127.0.0.1 (URL with a token)'),
    "help.h43": Msg(
        fr='écrire aussi un rapport HTML autonome',
        en='also write a self-contained HTML report'),
    "help.h44": Msg(
        fr='afficher les détails techniques',
        en='show technical details'),
    "help.h45": Msg(
        fr='la carte à diagnostiquer quand le logiciel en voit plusieurs',
        en='the card to diagnose when the middleware sees several'),
    "help.h46": Msg(
        fr='faire le Test SSL avec cette adresse https://',
        en='run the Test SSL against this https:// URL'),
    "help.h47": Msg(
        fr="certificats d'autorité pour vérifier le serveur du Test SSL",
        en='CA bundle for the Test SSL server certificate'),
    "help.h48": Msg(
        fr='demander le code porteur pour le Test SSL même hors terminal (dans un terminal il est toujours demandé, sans écho)',
        en='read the PIN for the Test SSL even when stdin is not a terminal (on a terminal it is always asked, with no echo)'),
    "help.h49": Msg(
        fr='hiérarchie IGC-Santé de validation (par défaut : auto)',
        en='IGC-Santé hierarchy to validate against (default: auto)'),
    "help.h50": Msg(
        fr="certificat d'autorité de confiance en plus (PEM/DER) ; peut être répété",
        en='extra trusted CA certificate (PEM/DER); repeatable'),
    "help.h51": Msg(
        fr='fichier de liste de révocation ; peut être répété',
        en='CRL file; repeatable'),
    "help.h52": Msg(
        fr='dossier de listes de révocation en cache',
        en='directory of cached CRLs'),
    "help.h53": Msg(
        fr='port pour --serve (par défaut : un port libre)',
        en='port for --serve (default: any free)'),
    "help.h54": Msg(
        fr='ouvrir la page dans le navigateur (--serve)',
        en='open the page in a browser (--serve)'),
    "help.h55": Msg(
        fr='dossier des cartes pour la carte de la démo (par défaut : un dossier temporaire)',
        en='cards directory for the demo card (default: a temporary one)'),
    "help.h56": Msg(
        fr='port vpcd du lecteur virtuel (par défaut : 35967)',
        en='vpcd port of the virtual reader (default: 35967)'),
    "help.h57": Msg(
        fr="dossier des cartes (par défaut : $CPS_TEST_CARDS_DIR ou un dossier propre à l'utilisateur)",
        en='cards directory (default: $CPS_TEST_CARDS_DIR or a per-user folder)'),
    "help.h58": Msg(
        fr='créer une carte de test (SoftHSM), ou servir une CPS3 ou CPS4 virtuelle dans un lecteur (--virtual)',
        en='create a test card (SoftHSM), or serve a virtual CPS3/CPS4 in a reader (--virtual)'),
    "help.h59": Msg(
        fr='lister les cartes de test',
        en='list the test cards'),
    "help.h60": Msg(
        fr='supprimer une carte de test',
        en='delete a test card'),
    "help.h61": Msg(
        fr='retirer une carte de test de son lecteur',
        en='pull a test card out of its reader'),
    "help.h62": Msg(
        fr='remettre une carte de test',
        en='put a test card back'),
    "help.h63": Msg(
        fr='prénom du titulaire (par défaut : JEAN)',
        en="holder's given name (default: JEAN)"),
    "help.h64": Msg(
        fr='nom du titulaire (par défaut : MEDECIN-TEST)',
        en="holder's surname (default: MEDECIN-TEST)"),
    "help.h65": Msg(
        fr="code de la profession, table G15 de l'ANS (par défaut : 10, Médecin)",
        en='profession code, ANS table G15 (default: 10, Médecin)'),
    "help.h66": Msg(
        fr='numéro RPPS du titulaire, 11 chiffres (par défaut : 10001234567)',
        en="holder's RPPS number, 11 digits (default: 10001234567)"),
    "help.h67": Msg(
        fr='code porteur de la carte de test (par défaut : 1234)',
        en="the test card's PIN (default: 1234)"),
    "help.h68": Msg(
        fr='code de déblocage de la carte de test (par défaut : 12345678)',
        en="the test card's PUK (default: 12345678)"),
    "help.h69": Msg(
        fr="une CPS3 IAS-ECC virtuelle dans un lecteur vpcd, pour OpenSC ou tout logiciel PC/SC, servie jusqu'à Ctrl-C ou SIGTERM",
        en='a virtual IAS-ECC CPS3 in a vpcd reader, for OpenSC or any PC/SC middleware, served until Ctrl-C or SIGTERM'),
    "help.h_virtual": Msg(
        fr="une carte virtuelle dans un lecteur vpcd, servie jusqu'à Ctrl-C ou SIGTERM : une CPS3 IAS-ECC (OpenSC, le logiciel de l'ANS) ou, avec --generation CPS4, une CPS4 ChipDoc (le logiciel de l'ANS 5.2 ou plus récent)",
        en="a virtual card in a vpcd reader, served until Ctrl-C or SIGTERM: an IAS-ECC CPS3 (OpenSC, the ANS middleware) or, with --generation CPS4, a ChipDoc CPS4 (the ANS middleware 5.2 or later)"),
    "help.h70": Msg(
        fr='port vpcd du lecteur pour --virtual (par défaut : 35965)',
        en='vpcd port of the reader for --virtual (default: 35965)'),
    "help.h70b": Msg(
        fr="avec --virtual : le lecteur à clavier (port 35969) ; quand le logiciel demande le code porteur sur le clavier, cette commande le demande",
        en="with --virtual: the reader with a PIN pad (port 35969); when the middleware asks for the PIN on the pad, this command prompts for it"),
    "help.h71": Msg(
        fr='afficher la carte en JSON (--virtual : une ligne, une fois la carte insérée)',
        en='print the card as JSON (--virtual: one line, once the card is in)'),
    "help.h72": Msg(
        fr='connecter un professionnel par CIBA (application e-CPS ou carte CPS)',
        en='log a practitioner in by CIBA (e-CPS app or CPS card)'),
    "help.h73": Msg(
        fr="échange de jeton RFC 8693 d'un jeton d'accès PSC (TLS mutuel)",
        en='RFC 8693 token exchange of a PSC access token (mutual TLS)'),
    "help.h74": Msg(
        fr='connexion par canal direct (le seul mode en ligne de commande)',
        en='backchannel login (the only mode of the command line)'),
    "help.h75": Msg(
        fr='identifiant national, par exemple 8xxxxxxxxxxx',
        en='national identifier, e.g. 8xxxxxxxxxxx'),
    "help.h76": Msg(
        fr='le titulaire de la carte CPS insérée (--module / --serial)',
        en='the holder of the inserted CPS card (--module / --serial)'),
    "help.h77": Msg(
        fr='texte court affiché sur le téléphone pour reconnaître la demande',
        en='short text shown on the phone to match this request'),
    "help.h78": Msg(
        fr="secondes d'attente",
        en='seconds to wait'),
    "help.h79": Msg(
        fr="l'identifiant client enregistré chez PSC",
        en='the client id registered at PSC'),
    "help.h80": Msg(
        fr="fichier PKCS#12 du certificat d'organisation (IGC-Santé ORG AUTH_CLI) ; mot de passe dans CPS_PSC_P12_PASSWORD, sinon demandé sans écho",
        en='PKCS#12 file of the organisation certificate (IGC-Santé ORG AUTH_CLI); password from CPS_PSC_P12_PASSWORD, else asked with no echo'),
    "help.h81": Msg(
        fr="bac à sable (par défaut, ou CPS_PSC_ISSUER), production, ou l'adresse d'un fournisseur",
        en='sandbox (default, or CPS_PSC_ISSUER), production, or an issuer URL'),
    "help.h82": Msg(
        fr="certificats d'autorité pour vérifier le fournisseur (par défaut : ceux du système)",
        en='CA bundle to verify the provider (default: system CAs)'),
    "help.h83": Msg(
        fr='afficher aussi les jetons (secrets : ne pas les laisser dans des journaux)',
        en='also print the tokens (secrets: keep them out of logs)'),
    "help.h84": Msg(
        fr="fichier du jeton d'accès PSC (« - » pour l'entrée standard)",
        en="file holding the PSC access token ('-' for standard input)"),
    "help.h85": Msg(
        fr="le point de terminaison « token » du serveur d'autorisation (par défaut : celui de PSC)",
        en="the authorisation server's token endpoint (default: PSC's)"),
    "help.argparse_usage": Msg(fr='utilisation : ', en='usage: '),
    "help.argparse_positional": Msg(fr='arguments', en='positional arguments'),
    "help.argparse_options": Msg(fr='options', en='options'),
    "help.argparse_help": Msg(fr='afficher cette aide et quitter', en='show this help message and exit'),
    "help.argparse_invalid_choice": Msg(fr='choix invalide : %(value)r (parmi %(choices)s)', en='invalid choice: %(value)r (choose from %(choices)s)'),
    "help.argparse_required": Msg(fr='arguments obligatoires manquants : %s', en='the following arguments are required: %s'),
    "help.argparse_unrecognized": Msg(fr='arguments non reconnus : %s', en='unrecognized arguments: %s'),
    "help.argparse_argument": Msg(fr='argument %(argument_name)s : %(message)s', en='argument %(argument_name)s: %(message)s'),
    "help.argparse_expected_one": Msg(fr='une valeur est attendue', en='expected one argument'),
    "help.argparse_invalid_value": Msg(fr='valeur %(type)s invalide : %(value)r', en='invalid %(type)s value: %(value)r'),
    "help.argparse_not_allowed": Msg(fr="incompatible avec l'argument %s", en='not allowed with argument %s'),
    "help.argparse_one_of": Msg(fr="l'un des arguments %s est obligatoire", en='one of the arguments %s is required'),
    "help.argparse_error": Msg(fr='{prog} : erreur : {message}', en='{prog}: error: {message}'),
    "help.b01": Msg(
        fr='Chromium seulement',
        en='Chromium only'),
    "help.b02": Msg(
        fr='Firefox seulement',
        en='Firefox only'),
    "help.b03": Msg(
        fr='un dossier de profil Firefox (répétable)',
        en='a Firefox profile folder (repeatable)'),
    "help.b04": Msg(
        fr='aussi pour tout le système, par p11-kit (/etc/pkcs11/modules)',
        en='also system-wide through p11-kit (/etc/pkcs11/modules)'),
    "help.b05": Msg(
        fr='un autre dossier personnel que $HOME',
        en='another home folder than $HOME'),
    "help.b06": Msg(
        fr='ne pas importer les certificats des autorités IGC-Santé',
        en='do not import the IGC-Santé CA certificates'),
    "help.b07": Msg(
        fr='déclarer le middleware de la carte dans Firefox et Chromium',
        en='register the card middleware with Firefox and Chromium'),
    "help.b08": Msg(
        fr='déclarer le module et les autorités IGC-Santé (sans effet si déjà fait)',
        en='register the module and the IGC-Santé CAs (idempotent)'),
    "help.b09": Msg(
        fr='arborescence contenant etc/pkcs11 pour --system (par défaut /)',
        en='tree holding etc/pkcs11 for --system (default /)'),
    "help.b10": Msg(
        fr='défaire exactement ce que setup a fait',
        en='undo exactly what setup did'),
    "help.b11": Msg(
        fr='ce que chaque navigateur ou profil a déclaré, et si le module se charge',
        en='what each browser/profile has registered, and whether it loads'),
}
