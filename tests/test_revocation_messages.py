"""The revocation sentences exist in French and English, and importing the package stays light."""

from __future__ import annotations

import string
import subprocess
import sys

from cps_middleware.messages import AREAS, text
from cps_middleware.messages._revocation import MESSAGES


def test_every_revocation_sentence_in_both_languages() -> None:
    assert "revocation" in AREAS
    for code, msg in MESSAGES.items():
        assert code.startswith("revocation.")
        names = {n for _, n, _, _ in string.Formatter().parse(msg.fr) if n}
        values = dict.fromkeys(names, "X")
        fr, en = text(code, "fr", **values), text(code, "en", **values)
        assert fr and en and fr != en, code


def test_importing_the_package_does_not_load_the_network_code() -> None:
    code = (
        "import sys, cps_middleware, cps_middleware.validation; "
        "bad = [m for m in ('cps_middleware.validation.revocation', "
        "'cps_middleware.validation.ocsp', 'http.client') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
