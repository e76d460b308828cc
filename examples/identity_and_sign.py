"""Print who holds a CPS card, then sign a file with the card's signature key.

    python examples/identity_and_sign.py                      # on a throw-away test card
    python examples/identity_and_sign.py FILE --module PATH   # on a real card (asks the PIN)

Without ``--module`` the example makes a CPS test card (SoftHSM behind the CPS
test-token module, holder PIN 1234), so it runs anywhere cps-middleware's
tests run. The signature (PKCS#1 v1.5 with SHA-256, the scheme every CPS
generation can do) is written beside the file as ``FILE.sig`` and checked
with the certificate's public key.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

import cps_middleware as cps
from cps_middleware.card import CpsCard, open_card
from cps_middleware.pkcs11 import Pin


def sign_file(card: CpsCard, path: Path) -> bytes:
    """Sign ``path`` with the signature key; return the signature after checking it."""
    key = card.private_key("sign")
    data = path.read_bytes()
    public = card.certificate("sign").public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    return signature


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, help="file to sign (default: this script)")
    parser.add_argument("--module", help="PKCS#11 module of a real card (default: a test card)")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        if args.module:
            module, pin = args.module, None
        else:
            from cps_middleware.testing import CpsTestCard

            cards_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="cps-example-"))
            test_card = stack.enter_context(CpsTestCard(cards_dir, generation="CPS3"))
            test_card.activate()
            module, pin = test_card.module_path, Pin(test_card.pin)
            print(f"(no --module: using a throw-away CPS test card in {cards_dir})")

        card = stack.enter_context(open_card(module=module))
        holder = card.holder
        print(f"reader      : {card.reader}")
        print(f"generation  : {card.generation.value if card.generation else 'unknown'}")
        print(f"holder      : {holder.display_name}")
        print(f"profession  : {holder.profession.label if holder.profession else '-'}")
        print(
            f"identifier  : {holder.ps_id_nat} ({holder.id_type.label if holder.id_type else '?'})"
        )
        print(f"card        : {holder.card_number} {'(TEST card)' if holder.is_test_card else ''}")
        print(f"valid until : {holder.not_after:%Y-%m-%d}")
        print(f"PIN status  : {card.pin_status.name}")

        card.login(pin if pin is not None else Pin(getpass.getpass("CPS PIN: ")))
        target: Path = args.file or Path(__file__)
        try:
            signature = sign_file(card, target)
        except InvalidSignature:
            print("the signature does not verify", file=sys.stderr)
            return 1
        except cps.CpsError as exc:
            print(f"signing failed: {exc}", file=sys.stderr)
            return 1
        out = Path(stack.enter_context(tempfile.TemporaryDirectory())) / (target.name + ".sig")
        if args.file:
            out = target.with_name(target.name + ".sig")
        out.write_bytes(signature)
        print(f"signed      : {target} -> {out} ({len(signature)} bytes, verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
