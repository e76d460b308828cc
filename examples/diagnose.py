"""Run the CPS diagnostic as a program would, and use its results as data.

    python examples/diagnose.py            # on a test card, in French
    python examples/diagnose.py --lang en  # remedies in English

The diagnostic returns frozen results (status, what was seen, remedy) that a
program can branch on, serialise to JSON, or render as text or HTML. Here it
looks at a CPS test card whose PIN was blocked, so the PIN check reports an
error with the remedy a doctor needs.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from cps_middleware import diagnostics
from cps_middleware.testing import CpsTestCard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=("fr", "en"), default="fr")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="cps-example-") as cards_dir,
        CpsTestCard(cards_dir, generation="CPS3") as card,
    ):
        card.activate()
        card.block_pin()  # as after three wrong PINs
        options = diagnostics.DiagnosticOptions(module=card.module_path, trust="test")
        run = diagnostics.run(options, lang=args.lang, only=["pin.status"])
        for result in run.results:
            print(f"{result.status.name:<8} {result.title}: {result.seen}")
            if result.remedy is not None:
                print(f"         → {result.remedy.title}")
                for step in result.remedy.steps:
                    print(f"           - {step}")
        data = json.loads(run.to_json())
        print("JSON:", ", ".join(f"{k}={data[k]}" for k in list(data)[:2]))
        pin = next(r for r in run.results if r.check_id == "pin.status")
        return 0 if pin.status.name == "ERROR" else 1


if __name__ == "__main__":
    raise SystemExit(main())
