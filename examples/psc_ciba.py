"""Log a practitioner in with Pro Santé Connect CIBA, as a software vendor's server does.

    python examples/psc_ciba.py                  # local test provider shaped like PSC
    CPS_PSC_ISSUER=https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet \\
    CPS_PSC_CLIENT_ID=my-client CPS_PSC_P12=org.p12 CPS_PSC_P12_PASSWORD=... \\
    CPS_PSC_LOGIN_HINT=8xxxxxxxxxxx python examples/psc_ciba.py    # the real sandbox

The server authenticates to PSC by mutual TLS with its organisation
certificate (IGC-Santé ORG AUTH_CLI, here from a PKCS#12 file), asks PSC to
authenticate the practitioner named by the national identifier (the e-CPS app
or the CPS card approves), polls until they answer, validates the ID token and
prints who logged in and how long the tokens live (never the tokens). It then
exchanges the access token (RFC 8693) for one to call a service.

Without settings the example starts the test provider of the test suite (a
real OpenID provider, panva's oidc-provider under Node, configured like PSC)
with a test PKI, and its test approver approves after 300 ms.
"""

from __future__ import annotations

import contextlib
import os
import sys

from cps_middleware.messages import text
from cps_middleware.psc import OrganisationCredentials, PscClient


def login(psc: PscClient, national_id: str) -> None:
    result = psc.ciba_login(national_id, binding_message="Connexion LPS", channel="MOBILE")
    print(text("psc.holder", None, holder=result.practitioner))
    seconds = round(result.tokens.expires_in() or 0)
    print(text("psc.access_token", None, seconds=seconds, at=result.tokens.expires_at))
    has_refresh = result.tokens.refresh_token is not None
    print(text("psc.refresh_token", None,
               present=text("common.yes" if has_refresh else "common.no")))
    if psc.credentials is not None:
        print(text("psc.bound", None, thumbprint=psc.credentials.thumbprint))
    scope = os.environ.get("CPS_PSC_EXCHANGE_SCOPE", "dmp:read")
    audience = os.environ.get("CPS_PSC_EXCHANGE_AUDIENCE", "https://api.dmp.test")
    exchanged = psc.exchange(result.tokens, scope=scope, audience=audience)
    print(text("psc.exchanged", None, scope=scope, seconds=round(exchanged.expires_in() or 0)))


def main() -> int:
    if os.environ.get("CPS_PSC_ISSUER") and os.environ.get("CPS_PSC_P12"):
        creds = OrganisationCredentials.from_pkcs12(
            os.environ["CPS_PSC_P12"], os.environ.get("CPS_PSC_P12_PASSWORD")
        )
        with PscClient(os.environ["CPS_PSC_CLIENT_ID"], creds) as psc:
            login(psc, os.environ["CPS_PSC_LOGIN_HINT"])
        return 0

    from cps_middleware.testing import PscTestProvider, TestHolder, TestPki

    pki = TestPki(seed="example-psc", ca_key_type="p256")
    with contextlib.ExitStack() as stack:
        provider = stack.enter_context(PscTestProvider(pki))
        p12 = provider.organisation.pkcs12(b"example")  # what a vendor receives from ANS
        creds = OrganisationCredentials.from_pkcs12(p12, "example")
        psc = stack.enter_context(PscClient(
            provider.client_id, creds, env=provider.issuer, verify_cadata=provider.ca_pem
        ))
        login(psc, TestHolder().ps_idnat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
