"""Open a mutually authenticated HTTPS connection with the card's key.

    python examples/mutual_tls_request.py            # test card + local test server

The authentication key never leaves the card: OpenSSL asks the card (through
cps-middleware's provider bridge) for the one signature of the TLS handshake.
Without arguments the example makes a CPS3 test card and starts a local
mutual-TLS server that trusts the test PKI, then sends the same request with
urllib and with requests, and prints what the server saw.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request

import cps_middleware as cps
from cps_middleware.testing import CpsTestCard, MutualTlsServer, TestPki


def main() -> int:
    pki = TestPki(seed="example-mtls")
    with (
        tempfile.TemporaryDirectory(prefix="cps-example-") as cards_dir,
        CpsTestCard(cards_dir, pki=pki, generation="CPS3") as test_card,
    ):
        test_card.activate()
        with (
            MutualTlsServer(client_cas=list(pki.ca_certificates)) as server,
            cps.open_card(module=test_card.module_path) as card,
        ):
            card.login(cps.Pin(test_card.pin))
            # CPS3: PKCS#1 v1.5 only, so the context is capped at TLS 1.2 by itself.
            ctx = cps.tls.client_context(card, cafile=server.ca_file)
            with urllib.request.urlopen(server.url, context=ctx, timeout=10) as resp:
                seen = json.load(resp)
            client = seen["client"]
            print(
                f"urllib   : HTTP {resp.status} over {seen['tls']['version']}, the server saw "
                f"{client['holder']['display_name']} ({client['ps_id_nat']})"
            )

            session = cps.tls.requests_session(ctx)
            answer = session.get(server.url, timeout=10)
            print(
                f"requests : HTTP {answer.status_code}, the server saw "
                f"{answer.json()['client']['ps_id_nat']}"
            )

            report = cps.tls.test_ssl(server.url, card, cafile=server.ca_file)
            print(
                f"Test SSL : {'OK' if report.ok else 'FAILED'} — {report.protocol}, "
                f"client signature {report.client_signature}"
            )
            return 0 if report.ok and answer.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
