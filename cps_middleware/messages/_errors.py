# ruff: noqa: E501  (a table of sentences: one per line reads best)
"""What each library error means, for a person: one sentence and what to do, per error class.

Codes are ``errors.<ClassName>`` (the sentence) and ``errors.<ClassName>.hint``
(what to do). :func:`cps_middleware.messages.error_text` walks an exception's
classes up to ``CpsError`` and uses the first one that has a sentence here, so
a French reader never gets the (English) technical message in the French slot.
"""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "errors.CpsError": Msg(fr="La bibliothèque CPS a signalé une erreur.",
                           en="The CPS library reported an error."),
    "errors.CpsError.hint": Msg(fr="relancez avec --debug et transmettez le détail au support",
                                en="run again with --debug and send the details to support"),
    "errors.InvalidInput": Msg(fr="Une valeur donnée n'est pas valable.",
                               en="A value given is not valid."),
    "errors.InvalidInput.hint": Msg(fr="vérifiez la valeur indiquée",
                                    en="check the value given"),
    "errors.PinFormatError": Msg(fr="Le code saisi n'a pas le bon format.",
                                 en="The code typed has the wrong format."),
    "errors.PinFormatError.hint": Msg(
        fr="le code porteur d'une CPS a 4 à 8 chiffres ; le code de déblocage (PUK) en a 8",
        en="a CPS holder PIN is 4 to 8 digits; the unblocking code (PUK) is 8 digits"),
    "errors.TestCardError": Msg(fr="La carte de test ne peut pas être utilisée ainsi.",
                                en="The test card cannot be used this way."),
    "errors.TestCardError.hint": Msg(fr="vérifiez les options données pour la carte de test",
                                     en="check the options given for the test card"),
    "errors.ValidationSetupError": Msg(fr="La validation des certificats est mal configurée.",
                                       en="The certificate validation is badly set up."),
    "errors.ValidationSetupError.hint": Msg(
        fr="vérifiez les autorités de confiance, les listes de révocation et les options",
        en="check the trust anchors, revocation lists and options"),
    "errors.PcscError": Msg(fr="Le lecteur de cartes a signalé une erreur.",
                            en="The card reader reported an error."),
    "errors.PcscError.hint": Msg(fr="vérifiez le lecteur et le service des cartes à puce",
                                 en="check the reader and the smart-card service"),
    "errors.PcscServiceUnavailable": Msg(
        fr="Le service des cartes à puce (PC/SC) ne répond pas.",
        en="The smart-card service (PC/SC) does not answer."),
    "errors.PcscServiceUnavailable.hint": Msg(
        fr="démarrez le service pcscd (ou « Carte à puce » sous Windows)",
        en="start the pcscd service (or 'Smart Card' on Windows)"),
    "errors.NoReaders": Msg(fr="Aucun lecteur de cartes n'est branché.",
                            en="No card reader is connected."),
    "errors.NoReaders.hint": Msg(fr="branchez le lecteur, ou installez son pilote",
                                 en="plug the reader in, or install its driver"),
    "errors.NoCardPresent": Msg(fr="Aucune carte dans le lecteur.",
                                en="No card in the reader."),
    "errors.NoCardPresent.hint": Msg(fr="insérez la carte CPS, puce en premier et vers le haut",
                                     en="insert the CPS card, chip first and facing up"),
    "errors.CardInUse": Msg(fr="Un autre programme utilise la carte.",
                            en="Another program is using the card."),
    "errors.CardInUse.hint": Msg(fr="fermez ce programme, ou attendez puis réessayez",
                                 en="close that program, or wait and try again"),
    "errors.CardCommandError": Msg(fr="La carte a refusé la commande.",
                                   en="The card refused the command."),
    "errors.CardCommandError.hint": Msg(fr="retirez et réinsérez la carte, puis réessayez",
                                        en="remove and reinsert the card, then try again"),
    "errors.CardRemoved": Msg(fr="La carte a été retirée.", en="The card was removed."),
    "errors.CardRemoved.hint": Msg(
        fr="remettez la carte, puis ouvrez-la et saisissez à nouveau le code porteur",
        en="put the card back, then open it and log in again"),
    "errors.Pkcs11Error": Msg(fr="Le logiciel de la carte (module PKCS#11) a signalé une erreur.",
                              en="The card middleware (PKCS#11 module) reported an error."),
    "errors.Pkcs11Error.hint": Msg(fr="vérifiez que la carte est bien insérée, puis réessayez",
                                   en="check that the card is inserted, then try again"),
    "errors.ModuleLoadError": Msg(
        fr="Le logiciel de la carte (module PKCS#11) n'a pas pu être chargé.",
        en="The card middleware (PKCS#11 module) could not be loaded."),
    "errors.ModuleLoadError.hint": Msg(
        fr="installez le logiciel de la carte CPS (Cryptolib CPS de l'ANS) ou OpenSC, ou "
           "indiquez son chemin avec --module ou CPS_PKCS11_MODULE",
        en="install the CPS middleware (Cryptolib CPS from ANS) or OpenSC, or give its "
           "path with --module or CPS_PKCS11_MODULE"),
    "errors.NoSuchToken": Msg(fr="Le logiciel de la carte ne voit aucune carte correspondante.",
                              en="The card middleware sees no matching card."),
    "errors.NoSuchToken.hint": Msg(
        fr="insérez la carte CPS, ou vérifiez que le logiciel voit le lecteur",
        en="insert the CPS card, or check that the middleware sees the reader"),
    "errors.MultipleTokens": Msg(fr="Plusieurs cartes sont présentes.",
                                 en="Several cards are present."),
    "errors.MultipleTokens.hint": Msg(fr="choisissez-en une avec --serial ou --reader",
                                      en="choose one with --serial or --reader"),
    "errors.NoSuchObject": Msg(fr="La carte ne contient pas cet objet.",
                               en="The card does not hold this object."),
    "errors.NoSuchObject.hint": Msg(fr="vérifiez la carte utilisée",
                                    en="check which card is used"),
    "errors.MultipleObjects": Msg(fr="Plusieurs objets de la carte correspondent.",
                                  en="Several objects on the card match."),
    "errors.MultipleObjects.hint": Msg(fr="précisez la recherche (libellé, identifiant, classe)",
                                       en="narrow the search (label, CKA_ID, class)"),
    "errors.MechanismUnsupported": Msg(fr="La carte ne sait pas faire cette opération.",
                                       en="The card cannot do this operation."),
    "errors.MechanismUnsupported.hint": Msg(
        fr="une CPS3 ne fait pas de RSA-PSS ; utilisez PKCS#1 v1.5",
        en="a CPS3 has no RSA-PSS; use PKCS#1 v1.5"),
    "errors.NotLoggedIn": Msg(fr="Le code porteur n'a pas encore été saisi.",
                              en="The PIN has not been entered yet."),
    "errors.NotLoggedIn.hint": Msg(fr="saisissez d'abord le code porteur",
                                   en="log in with the PIN first"),
    "errors.TokenUnusable": Msg(fr="La carte est dans un état inutilisable.",
                                en="The card is in an unusable state."),
    "errors.TokenUnusable.hint": Msg(
        fr="contactez le support cartes de l'ANS : monserviceclient.cartes@asipsante.fr, "
           "0 825 852 000",
        en="contact ANS card support: monserviceclient.cartes@asipsante.fr, 0 825 852 000"),
    "errors.PrivateKeyExportRefused": Msg(
        fr="Une clé privée de carte CPS ne sort jamais de la carte.",
        en="A private key on a CPS card never leaves the card."),
    "errors.PrivateKeyExportRefused.hint": Msg(fr="faites signer la carte à la place",
                                               en="have the card sign instead"),
    "errors.PinError": Msg(fr="Problème de code porteur.", en="PIN problem."),
    "errors.PinError.hint": Msg(fr="vérifiez le code porteur", en="check the PIN"),
    "errors.PinIncorrect": Msg(fr="Code porteur incorrect.", en="Wrong PIN."),
    "errors.PinIncorrect.hint": Msg(
        fr="la carte se bloque après 3 codes faux de suite",
        en="the card blocks after 3 wrong PINs in a row"),
    "errors.PinLocked": Msg(fr="Le code porteur est bloqué.", en="The PIN is blocked."),
    "errors.PinLocked.hint": Msg(
        fr="débloquez-le avec le code de déblocage (cps pin unblock), ou commandez une "
           "nouvelle carte",
        en="unblock it with the unblocking code (cps pin unblock), or order a new card"),
    "errors.FinalTryRefused": Msg(
        fr="Il ne reste qu'un essai : le code porteur n'a pas été présenté.",
        en="One try is left: the PIN was not presented."),
    "errors.FinalTryRefused.hint": Msg(
        fr="assurez-vous du code, puis relancez avec --allow-final-try",
        en="make sure of the code, then run again with --allow-final-try"),
    "errors.PukIncorrect": Msg(fr="Code de déblocage (PUK) incorrect.",
                               en="Wrong unblocking code (PUK)."),
    "errors.PukIncorrect.hint": Msg(fr="vérifiez le code de déblocage reçu avec la carte",
                                    en="check the unblocking code that came with the card"),
    "errors.PinEntryCancelled": Msg(
        fr="La saisie du code sur le clavier du lecteur a été annulée ou a expiré.",
        en="PIN entry on the reader's keypad was cancelled or timed out."),
    "errors.PinEntryCancelled.hint": Msg(
        fr="tapez le code porteur sur le clavier du lecteur et validez (touche OK) sans "
           "attendre, puis recommencez : aucun essai n'a été consommé",
        en="type the PIN on the reader's keypad and confirm it (OK key) in time, then try "
           "again: no PIN try was spent"),
    "errors.PukLocked": Msg(fr="Le code de déblocage est bloqué lui aussi.",
                            en="The unblocking code is blocked too."),
    "errors.PukLocked.hint": Msg(fr="la carte doit être remplacée (contactez l'ANS)",
                                 en="the card must be replaced (contact ANS)"),
    "errors.UnblockNotSupported": Msg(
        fr="Le logiciel de la carte, tel qu'il est configuré, ne débloque pas le code porteur.",
        en="The card middleware, as configured, does not unblock the PIN."),
    "errors.UnblockNotSupported.hint": Msg(
        fr="pour OpenSC, ajoutez « user_pin_unblock_style = set_pin_in_unlogged_session; » "
           "à sa configuration (une CPS3 telle qu'émise ; « init_pin_in_so_session » pour "
           "une carte qui ne décrit pas son code de déblocage), puis relancez l'application ; "
           "le logiciel de l'ANS n'a pas cette limite",
        en="for OpenSC, add 'user_pin_unblock_style = set_pin_in_unlogged_session;' to its "
           "configuration (a CPS3 as issued; 'init_pin_in_so_session' for a card that does "
           "not list its unblocking code), then restart the application; the ANS middleware "
           "has no such limit"),
    "errors.SelectionError": Msg(fr="Aucun certificat de la carte ne convient.",
                                 en="No certificate on the card fits."),
    "errors.SelectionError.hint": Msg(fr="vérifiez la carte et les critères de choix",
                                      en="check the card and the selection criteria"),
    "errors.NoMatchingCertificate": Msg(fr="Aucun certificat de la carte ne convient.",
                                        en="No certificate on the card fits."),
    "errors.NoMatchingCertificate.hint": Msg(fr="élargissez les critères ou vérifiez la carte",
                                             en="relax the criteria or check the card"),
    "errors.AmbiguousSelection": Msg(fr="Plusieurs certificats de la carte conviennent.",
                                     en="Several certificates on the card fit."),
    "errors.AmbiguousSelection.hint": Msg(fr="ajoutez un critère (usage, libellé, identifiant)",
                                          en="add a criterion (usage, label, CKA_ID)"),
    "errors.TlsError": Msg(fr="La connexion sécurisée (TLS) avec la carte a échoué.",
                           en="The secure (TLS) connection with the card failed."),
    "errors.TlsError.hint": Msg(fr="lancez « cps diag » pour trouver la cause",
                                en="run 'cps diag' to find the cause"),
    "errors.BridgeUnavailable": Msg(
        fr="Le pont natif vers OpenSSL ne fonctionne pas avec ce Python.",
        en="The native OpenSSL bridge does not work with this Python."),
    "errors.BridgeUnavailable.hint": Msg(
        fr="réinstallez cps-middleware avec le même OpenSSL 3 que le module ssl de Python",
        en="reinstall cps-middleware against the same OpenSSL 3 as Python's ssl module"),
    "errors.SignatureFailed": Msg(fr="La carte n'a pas pu signer.",
                                  en="The card could not sign."),
    "errors.SignatureFailed.hint": Msg(
        fr="vérifiez que la carte est insérée et que le code porteur a été saisi",
        en="check that the card is inserted and the PIN was entered"),
    # Pro Santé Connect and revocation sources
    "errors.PscError": Msg(
        fr="L'échange avec Pro Santé Connect a échoué.",
        en='The Pro Santé Connect exchange failed.'),
    "errors.PscError.hint": Msg(
        fr='réessayez ; si cela persiste, vérifiez la configuration du client',
        en="try again; if it persists, check the client's configuration"),
    "errors.ProviderUnreachable": Msg(
        fr='Pro Santé Connect est injoignable.',
        en='Pro Santé Connect cannot be reached.'),
    "errors.ProviderUnreachable.hint": Msg(
        fr="vérifiez la connexion au réseau et l'adresse du fournisseur",
        en="check the network connection and the provider's address"),
    "errors.ProviderResponseInvalid": Msg(
        fr='Pro Santé Connect a répondu de façon incompréhensible.',
        en='Pro Santé Connect gave an answer that cannot be read.'),
    "errors.ProviderResponseInvalid.hint": Msg(
        fr="vérifiez l'adresse du fournisseur et réessayez plus tard",
        en="check the provider's address and try again later"),
    "errors.TokenRejected": Msg(
        fr='Un jeton de Pro Santé Connect a été refusé.',
        en='A Pro Santé Connect token was rejected.'),
    "errors.TokenRejected.hint": Msg(
        fr='reconnectez-vous',
        en='log in again'),
    "errors.CibaCancelled": Msg(
        fr='La connexion a été annulée.',
        en='The login was cancelled.'),
    "errors.CibaCancelled.hint": Msg(
        fr='lancez une nouvelle connexion',
        en='start a new login'),
    "errors.OAuthError": Msg(
        fr='Pro Santé Connect a refusé la demande.',
        en='Pro Santé Connect refused the request.'),
    "errors.OAuthError.hint": Msg(
        fr='voir le détail technique',
        en='see the technical detail'),
    "errors.OAuthInvalidRequest": Msg(
        fr='La demande envoyée à Pro Santé Connect est incomplète ou mal formée.',
        en='The request sent to Pro Santé Connect is incomplete or malformed.'),
    "errors.OAuthInvalidRequest.hint": Msg(
        fr="vérifiez l'identifiant, le message de confirmation et les droits demandés",
        en='check the identifier, the binding message and the scopes'),
    "errors.OAuthInvalidClient": Msg(
        fr='Pro Santé Connect ne reconnaît pas ce logiciel client.',
        en='Pro Santé Connect does not recognise this client.'),
    "errors.OAuthInvalidClient.hint": Msg(
        fr="vérifiez l'identifiant du client et son certificat d'organisation",
        en='check the client id and its organisation certificate'),
    "errors.OAuthInvalidGrant": Msg(
        fr="L'autorisation présentée n'est pas (ou plus) valable.",
        en='The grant presented is not (or no longer) valid.'),
    "errors.OAuthInvalidGrant.hint": Msg(
        fr='reconnectez-vous',
        en='log in again'),
    "errors.OAuthUnauthorizedClient": Msg(
        fr="Ce client n'a pas le droit d'utiliser ce mode de connexion.",
        en='This client may not use this kind of login.'),
    "errors.OAuthUnauthorizedClient.hint": Msg(
        fr='vérifiez son inscription auprès de Pro Santé Connect',
        en='check its registration with Pro Santé Connect'),
    "errors.OAuthUnsupportedGrantType": Msg(
        fr='Pro Santé Connect ne propose pas ce mode de connexion.',
        en='Pro Santé Connect does not offer this kind of login.'),
    "errors.OAuthUnsupportedGrantType.hint": Msg(
        fr='utilisez un mode de connexion proposé par le fournisseur',
        en='use a kind of login the provider offers'),
    "errors.OAuthInvalidScope": Msg(
        fr='Les droits demandés ne sont pas autorisés pour ce client.',
        en='The scopes asked for are not allowed for this client.'),
    "errors.OAuthInvalidScope.hint": Msg(
        fr='ne demandez que les droits inscrits pour ce client',
        en='ask only for the scopes registered for this client'),
    "errors.OAuthInvalidTarget": Msg(
        fr='Le service visé est inconnu de Pro Santé Connect.',
        en='The target service is unknown to Pro Santé Connect.'),
    "errors.OAuthInvalidTarget.hint": Msg(
        fr="vérifiez l'audience ou la ressource demandée",
        en='check the audience or resource asked for'),
    "errors.OAuthAccessDenied": Msg(
        fr='Le professionnel a refusé la connexion.',
        en='The practitioner refused the login.'),
    "errors.OAuthAccessDenied.hint": Msg(
        fr="recommencez si c'était une erreur",
        en='start again if it was a mistake'),
    "errors.OAuthExpiredToken": Msg(
        fr="Le professionnel n'a pas répondu à temps.",
        en='The practitioner did not answer in time.'),
    "errors.OAuthExpiredToken.hint": Msg(
        fr='lancez une nouvelle connexion',
        en='start a new login'),
    "errors.OAuthAuthorizationPending": Msg(
        fr="Le professionnel n'a pas encore répondu.",
        en='The practitioner has not answered yet.'),
    "errors.OAuthAuthorizationPending.hint": Msg(
        fr='patientez, la demande est toujours en attente',
        en='wait: the request is still pending'),
    "errors.OAuthSlowDown": Msg(
        fr='Les interrogations sont trop rapprochées.',
        en='Polling too fast.'),
    "errors.OAuthSlowDown.hint": Msg(
        fr='attendez 5 secondes de plus entre deux interrogations',
        en='wait 5 more seconds between polls'),
    "errors.OAuthUnknownUserId": Msg(
        fr='Pro Santé Connect ne connaît pas cet identifiant national.',
        en='Pro Santé Connect does not know this national identifier.'),
    "errors.OAuthUnknownUserId.hint": Msg(
        fr="vérifiez l'identifiant, et que la e-CPS est activée",
        en='check the identifier, and that the e-CPS is activated'),
    "errors.OAuthInvalidBindingMessage": Msg(
        fr="Le message de confirmation n'est pas accepté.",
        en='The binding message is not accepted.'),
    "errors.OAuthInvalidBindingMessage.hint": Msg(
        fr='raccourcissez-le, avec des lettres, chiffres et ponctuation simples',
        en='shorten it, with plain letters, digits and punctuation'),
    "errors.OAuthInvalidUserCode": Msg(
        fr='Le code utilisateur est faux.',
        en='The user code is wrong.'),
    "errors.OAuthInvalidUserCode.hint": Msg(
        fr='vérifiez le code saisi',
        en='check the code typed'),
    "errors.OAuthInvalidToken": Msg(
        fr="Le jeton d'accès n'est pas valable.",
        en='The access token is not valid.'),
    "errors.OAuthInvalidToken.hint": Msg(
        fr='reconnectez-vous pour obtenir un nouveau jeton',
        en='log in again for a new token'),
    "errors.OAuthInsufficientScope": Msg(
        fr="Le jeton d'accès ne donne pas les droits nécessaires.",
        en='The access token lacks a required scope.'),
    "errors.OAuthInsufficientScope.hint": Msg(
        fr='demandez les droits nécessaires lors de la connexion',
        en='ask for the required scopes when logging in'),
    "errors.OAuthInteractionRequired": Msg(
        fr='Le professionnel doit se connecter lui-même.',
        en='The practitioner must log in interactively.'),
    "errors.OAuthInteractionRequired.hint": Msg(
        fr='lancez une connexion interactive',
        en='start an interactive login'),
    "errors.OAuthServerError": Msg(
        fr='Pro Santé Connect est en panne ou surchargé.',
        en='Pro Santé Connect failed or is overloaded.'),
    "errors.OAuthServerError.hint": Msg(
        fr='réessayez plus tard',
        en='try again later'),
    "errors.RevocationSourceError": Msg(
        fr="Une source de révocation (liste ou OCSP) n'a pas pu servir.",
        en='A revocation source (list or OCSP) could not be used.'),
    "errors.RevocationSourceError.hint": Msg(
        fr='vérifiez la connexion au réseau, ou donnez les listes de révocation en fichiers',
        en='check the network, or give the revocation lists as files'),
    "errors.RevocationFetchError": Msg(
        fr="Le téléchargement d'une liste de révocation ou d'une réponse OCSP a échoué.",
        en='Downloading a revocation list or OCSP answer failed.'),
    "errors.RevocationFetchError.hint": Msg(
        fr='vérifiez la connexion au réseau et réessayez',
        en='check the network and try again'),
    "errors.RevocationDataRejected": Msg(
        fr="Une liste de révocation ou une réponse OCSP reçue n'est pas fiable.",
        en='A revocation list or OCSP answer received cannot be trusted.'),
    "errors.RevocationDataRejected.hint": Msg(
        fr='vérifiez la source (miroir, cache) ; la réponse a été écartée',
        en='check the source (mirror, cache); the answer was set aside'),
    "errors.BrowserSetupError": Msg(
        fr="L'enregistrement du middleware de la carte dans un navigateur a échoué.",
        en='Registering the card middleware with a browser failed.'),
    "errors.BrowserSetupError.hint": Msg(
        fr="vérifiez que le profil du navigateur existe et qu'il est modifiable",
        en='check that the browser profile exists and is writable'),
    "errors.BrowserRunning": Msg(
        fr="Le navigateur est ouvert sur ce profil : ses fichiers ne sont pas modifiés pendant qu'il tourne.",
        en='The browser is running on that profile: its files are not edited while it runs.'),
    "errors.BrowserRunning.hint": Msg(
        fr='fermez le navigateur (toutes ses fenêtres), puis relancez la commande',
        en='close the browser (every window), then run the command again'),
    "errors.NssToolsMissing": Msg(
        fr='Les outils NSS (modutil, certutil) ne sont pas installés.',
        en='The NSS tools (modutil, certutil) are not installed.'),
    "errors.NssToolsMissing.hint": Msg(
        fr='installez les outils NSS : apt-get install libnss3-tools (dnf install nss-tools)',
        en='install the NSS tools: apt-get install libnss3-tools (dnf install nss-tools)'),
    "errors.SessionLost": Msg(
        fr='La session avec la carte a été perdue (un autre processus a utilisé la carte, ou elle a été réinitialisée).',
        en='The session with the card was lost (another process used the card, or it was reset).'),
    "errors.SessionLost.hint": Msg(
        fr='connectez-vous de nouveau avec le code porteur',
        en='log in again with the PIN'),
}
