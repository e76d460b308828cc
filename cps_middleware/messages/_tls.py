"""The Test SSL report (``cps test-ssl``, the demo, the diagnostic)."""

from __future__ import annotations

from cps_middleware.messages import Msg

MESSAGES: dict[str, Msg] = {
    "tls.head": Msg(fr="Test SSL {url} : {verdict} — {reason}",
                    en="Test SSL {url}: {verdict} — {reason}"),
    "tls.failed": Msg(fr="ÉCHEC", en="FAILED"),
    "tls.accepted": Msg(fr="le serveur a accepté la carte", en="the server accepted the card"),
    "tls.failure_no_client_cert_requested": Msg(
        fr="le serveur n'a pas demandé de certificat client",
        en="the server did not ask for a client certificate"),
    "tls.failure_client_cert_rejected": Msg(
        fr="le serveur a refusé le certificat de la carte",
        en="the server rejected the card's certificate"),
    "tls.failure_mechanism_refused": Msg(
        fr="la carte a refusé le mécanisme de signature demandé par le serveur",
        en="the card refused the signature mechanism the server asked for"),
    "tls.failure_pin_needed": Msg(
        fr="la carte demande le code porteur avant de signer",
        en="the card needs the PIN before it can sign (log in first)"),
    "tls.failure_card_removed": Msg(fr="la carte a été retirée pendant la connexion",
                                    en="the card was removed during the connection"),
    "tls.failure_signature_failed": Msg(fr="la carte n'a pas pu signer",
                                        en="the card could not sign"),
    "tls.failure_server_untrusted": Msg(
        fr="le certificat du serveur n'est pas reconnu (ou pas pour ce nom)",
        en="the server's certificate is not trusted (or not for this name)"),
    "tls.failure_network": Msg(fr="le serveur est injoignable",
                               en="the server could not be reached"),
    "tls.failure_tls": Msg(fr="la connexion sécurisée (TLS) a échoué",
                           en="the TLS connection failed"),
    "tls.holder": Msg(fr="  titulaire de la carte : {holder}", en="  card holder: {holder}"),
    "tls.detail": Msg(fr="  détail : {detail}", en="  detail: {detail}"),
    "tls.protocol": Msg(fr="  protocole : {protocol}, suite de chiffrement : {cipher}",
                        en="  protocol: {protocol}, cipher: {cipher}"),
    "tls.signature": Msg(fr="  signature de la carte : {signature}",
                         en="  client signature: {signature}"),
    "tls.server_verified": Msg(fr="  serveur vérifié : {answer}",
                               en="  server verified: {answer}"),
    "tls.chain": Msg(fr="  chaîne du serveur : {n} certificat(s), lue par {source}",
                     en="  server chain: {n} certificate(s), read with {source}"),
    "tls.source_get_unverified_chain": Msg(
        fr="la connexion avec la carte (get_unverified_chain)",
        en="the card connection (get_unverified_chain)"),
    "tls.source_pyopenssl": Msg(
        fr="une seconde connexion sans la carte (pyOpenSSL)",
        en="a separate handshake without the card (pyOpenSSL)"),
    "tls.source_leaf_only": Msg(
        fr="la connexion avec la carte (certificat final seul : la seconde connexion a échoué "
           "ou différait)",
        en="the card connection (leaf only: the separate handshake failed or differed)"),
    "tls.server_cert": Msg(
        fr="  certificat du serveur : {subject} (émetteur {issuer}, {start} → {end})",
        en="  server cert: {subject} (issuer {issuer}, {start} → {end})"),
    "tls.http_status": Msg(fr="  statut HTTP : {status}", en="  HTTP status: {status}"),
    "tls.timings": Msg(fr="  durées (ms) : {timings}", en="  timings (ms): {timings}"),
    "tls.timing_tcp_connect": Msg(fr="connexion TCP", en="tcp_connect"),
    "tls.timing_card_signature": Msg(fr="signature de la carte", en="card_signature"),
    "tls.timing_tls_handshake": Msg(fr="négociation TLS", en="tls_handshake"),
    "tls.timing_http_request": Msg(fr="requête HTTP", en="http_request"),
    "tls.timing_chain_fetch": Msg(fr="lecture de la chaîne", en="chain_fetch"),
    # cps test-ssl
    "tls.need_https": Msg(fr="L'adresse du Test SSL doit commencer par https://.",
                          en="The Test SSL address must start with https://."),
}
