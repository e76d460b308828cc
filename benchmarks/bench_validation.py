"""Benchmark: the batch chain validator against the reference validators.

    .venv/bin/python benchmarks/bench_validation.py [--quick] [--markdown]
        [--intermediates rsa4096|rsa2048|both]

On the IGC-Santé-like corpora of ``corpus_validation`` (built and cached on
the first run; intermediates RSA-4096 like the real IGC-Santé CAs, the
headline, and RSA-2048), measures certificates per second and checks every
verdict against the ground truth for: this validator on one core and on two
(worker processes), its memo (re-validation of seen certificates, each
repetition with fresh bytes objects so that no cached hash helps), the anchor
(a plain Python loop of ``cryptography``'s ``verify_directly_issued_by``),
``cryptography``'s ``PolicyBuilder`` client verifier plus a CRL lookup,
``openssl verify -crl_check_all`` on the same files, and pyhanko-certvalidator
(on a sample). The floor is the issuer key's verify rate on this machine
(cryptography's verify loop and ``openssl speed``). Timings are medians of the
repetitions. ``--quick`` uses 4 000 certificates and smaller samples.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus_validation as cv
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cps_middleware.validation import Status, ValidatorBuilder

EXPECTED = {
    "valid": Status.VALID,
    "expired": Status.EXPIRED,
    "revoked": Status.REVOKED,
    "bad_signature": Status.BAD_SIGNATURE,
    "unknown_ca": Status.UNKNOWN_ISSUER,
}


@dataclass
class Row:
    name: str
    n: int
    seconds: float
    right: int | None  # verdicts equal to ground truth (None: not a validator)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else float("inf")


def median_of(
    k: int, fn: Callable[[], object], before: Callable[[], None] | None = None
) -> tuple[float, object]:
    """The median time of k runs (``before`` runs untimed ahead of each)."""
    times = []
    out: object = None
    for _ in range(k):
        if before is not None:
            before()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def score(statuses: list[Status], truth: list[str]) -> tuple[int, Counter[tuple[str, str]]]:
    wrong: Counter[tuple[str, str]] = Counter()
    right = 0
    for s, t in zip(statuses, truth, strict=True):
        if s is EXPECTED[t]:
            right += 1
        else:
            wrong[(t, s.name)] += 1
    return right, wrong


# --- this validator -------------------------------------------------------------------


def builder(c: cv.Corpus) -> ValidatorBuilder:
    return (
        ValidatorBuilder().trust([c.root]).intermediates(c.intermediates).crls(c.crls).time(c.time)
    )


def ours(c: cv.Corpus, leaves: list[bytes], truth: list[str], reps: int) -> list[Row]:
    rows = []

    def one(name: str, b: ValidatorBuilder, note: str = "") -> None:
        t0 = time.perf_counter()
        v = b.memo_size(0).build()
        build_s = time.perf_counter() - t0
        v.warm_up()
        sec, res = median_of(reps, lambda: v.validate_many(leaves))
        right, wrong = score([r.status for r in res], truth)  # type: ignore[attr-defined]
        v.close()
        extra = f"build {build_s * 1e3:.0f} ms" + (f"; {note}" if note else "")
        rows.append(
            Row(name, len(leaves), sec, right, extra + (f"; wrong: {dict(wrong)}" if wrong else ""))
        )

    one("cps_middleware, 1 thread (native verify)", builder(c).threads(1))
    one("cps_middleware, 2 threads (native verify)", builder(c).threads(2))
    one("cps_middleware, 2 processes", builder(c).workers(2), "1 thread each")
    vm = builder(c).build()
    first = vm.validate_many(leaves)
    # fresh bytes objects each time: a reused one carries its cached hash
    fresh: list[list[bytes]] = []

    def refresh() -> None:
        fresh[:] = [[bytes(bytearray(d)) for d in leaves]]

    sec, res = median_of(reps, lambda: vm.validate_many(fresh[0]), refresh)
    right, _ = score([r.status for r in res], truth)  # type: ignore[attr-defined]
    assert list(res) == list(first)  # type: ignore[call-overload]
    rows.append(
        Row("cps_middleware, memo (seen before)", len(leaves), sec, right, "fresh bytes objects")
    )
    one(
        "cps_middleware, 1 core, cryptography verify",
        builder(c).threads(0),
        "threads(0): each signature through cryptography",
    )
    return rows


# --- the anchor: a plain Python loop over cryptography ----------------------------------------


def anchor_loop(c: cv.Corpus, leaves: list[bytes], truth: list[str]) -> Row:
    """``load_der_x509_certificate`` + ``verify_directly_issued_by`` on the issuer
    found by name, dates, then the issuer's CRL serial set: what a short script
    over cryptography does (no path building, no extensions processed)."""
    cas = [x509.load_der_x509_certificate(d) for d in [c.root, *c.intermediates]]
    by_name = {ca.subject: ca for ca in cas}
    revoked: dict[x509.Name, set[int]] = {}
    for d in c.crls:
        crl = x509.load_der_x509_crl(d)
        revoked[crl.issuer] = {r.serial_number for r in crl}

    def run() -> list[Status]:
        out = []
        for d in leaves:
            cert = x509.load_der_x509_certificate(d)
            ca = by_name.get(cert.issuer)
            if ca is None:
                out.append(Status.UNKNOWN_ISSUER)
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except Exception:
                out.append(Status.BAD_SIGNATURE)
                continue
            if not cert.not_valid_before_utc <= c.time <= cert.not_valid_after_utc:
                out.append(Status.EXPIRED)
            elif cert.serial_number in revoked.get(ca.subject, ()):
                out.append(Status.REVOKED)
            else:
                out.append(Status.VALID)
        return out

    sec, res = median_of(3, run)
    right, wrong = score(res, truth)  # type: ignore[arg-type]
    return Row(
        "anchor: Python loop, cryptography verify_directly_issued_by",
        len(leaves),
        sec,
        right,
        f"wrong: {dict(wrong)}" if wrong else "",
    )


# --- cryptography's verifier + CRL lookup ------------------------------------------------


def crypto_policy(c: cv.Corpus, leaves: list[bytes], truth: list[str]) -> Row:
    from cryptography.x509.verification import (
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    root = x509.load_der_x509_certificate(c.root)
    inters = [x509.load_der_x509_certificate(d) for d in c.intermediates]
    # CRLs: signature checked and serials indexed once, outside the timed loop
    # (cryptography's get_revoked_certificate_by_serial_number scans the list)
    crls: dict[x509.Name, set[int]] = {}
    for d in c.crls:
        crl = x509.load_der_x509_crl(d)
        for ca in [root, *inters]:
            if ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
                crls[crl.issuer] = {r.serial_number for r in crl}
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(c.time)
        # the card profile has no SAN and sign certificates have no clientAuth EKU
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )

    def run() -> list[Status]:
        out = []
        for d in leaves:
            try:
                leaf = x509.load_der_x509_certificate(d)
                chain = verifier.verify(leaf, inters).chain
            except VerificationError as exc:
                msg = str(exc)
                if "not valid at validation time" in msg:
                    out.append(Status.EXPIRED)
                elif "signature does not match" in msg:
                    out.append(Status.BAD_SIGNATURE)
                elif "no interior errors" in msg:
                    out.append(Status.UNKNOWN_ISSUER)
                else:
                    out.append(Status.MALFORMED)
                continue
            status = Status.VALID
            for k in range(len(chain) - 1):  # every non-root element, by its issuer's CRL
                revoked = crls.get(chain[k + 1].subject)
                if revoked is None:
                    status = Status.REVOCATION_UNKNOWN
                    break
                if chain[k].serial_number in revoked:
                    status = Status.REVOKED
                    break
            out.append(status)
        return out

    sec, res = median_of(1, run)
    right, wrong = score(res, truth[: len(leaves)])  # type: ignore[arg-type]
    return Row(
        "cryptography PolicyBuilder + CRL",
        len(leaves),
        sec,
        right,
        f"wrong: {dict(wrong)}" if wrong else "",
    )


# --- openssl verify -----------------------------------------------------------------------

_OPENSSL_CODES = {
    "10": Status.EXPIRED,
    "9": Status.NOT_YET_VALID,
    "7": Status.BAD_SIGNATURE,
    "23": Status.REVOKED,
    "20": Status.UNKNOWN_ISSUER,
    "2": Status.UNKNOWN_ISSUER,
    "3": Status.REVOCATION_UNKNOWN,
}


def openssl_verify(c: cv.Corpus, idx: list[int], truth: list[str]) -> Row:
    d = c.dir
    files = [f"leaves/{i:05d}.pem" for i in idx]
    base = [
        "openssl",
        "verify",
        "-attime",
        str(int(c.time.timestamp())),
        "-crl_check_all",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "intermediates.pem",
        "-CRLfile",
        "crls.pem",
    ]
    verdict: dict[str, Status] = {}
    t0 = time.perf_counter()
    for k in range(0, len(files), 1000):  # one process per 1 000 files
        part = files[k : k + 1000]
        p = subprocess.run(base + part, cwd=d, capture_output=True, text=True, check=False)
        for line in p.stdout.splitlines():
            if line.endswith(": OK"):
                verdict[line[:-4]] = Status.VALID
        code = None
        for line in p.stderr.splitlines():
            m = re.match(r"error (\d+) at \d+ depth lookup", line)
            if m and code is None:
                code = m.group(1)
            m = re.match(r"error (\S+): verification failed", line)
            if m:
                verdict[m.group(1)] = _OPENSSL_CODES.get(code or "", Status.MALFORMED)
                code = None
    sec = time.perf_counter() - t0
    res = [verdict.get(f, Status.MALFORMED) for f in files]
    right, wrong = score(res, [truth[i] for i in idx])
    return Row(
        "openssl verify -crl_check_all",
        len(files),
        sec,
        right,
        "1 process per 1 000 files" + (f"; wrong: {dict(wrong)}" if wrong else ""),
    )


# --- pyhanko-certvalidator ------------------------------------------------------------------


def pyhanko(c: cv.Corpus, idx: list[int], truth: list[str]) -> Row:
    from asn1crypto import crl as acrl
    from asn1crypto import x509 as ax509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import (
        ExpiredError,
        InvalidCertificateError,
        PathBuildingError,
        PathValidationError,
        RevokedError,
    )

    root = ax509.Certificate.load(c.root)
    inters = [ax509.Certificate.load(d) for d in c.intermediates]
    crls = [acrl.CertificateList.load(d) for d in c.crls]
    ctx = ValidationContext(
        trust_roots=[root],
        other_certs=inters,
        crls=crls,
        moment=c.time,
        revocation_mode="hard-fail",
        allow_fetching=False,
    )

    async def one(d: bytes) -> Status:
        try:
            await CertificateValidator(
                ax509.Certificate.load(d), validation_context=ctx
            ).async_validate_usage(set())
        except RevokedError:
            return Status.REVOKED
        except ExpiredError:
            return Status.EXPIRED
        except PathBuildingError:
            return Status.UNKNOWN_ISSUER
        except (PathValidationError, InvalidCertificateError) as exc:
            return Status.BAD_SIGNATURE if "signature" in str(exc).lower() else Status.MALFORMED
        return Status.VALID

    async def run() -> list[Status]:
        return [await one(c.leaves[i]) for i in idx]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = asyncio.run(run())
        sec = time.perf_counter() - t0
    right, wrong = score(res, [truth[i] for i in idx])
    return Row(
        "pyhanko-certvalidator", len(idx), sec, right, f"wrong: {dict(wrong)}" if wrong else ""
    )


# --- the floor --------------------------------------------------------------------------------


def floor_cryptography(c: cv.Corpus, n: int) -> Row:
    from cps_middleware.validation import _der

    facts = _der.parse_certificate(c.leaves[next(i for i, t in enumerate(c.truth) if t == "valid")])
    sig, tbs = facts[_der.F_SIG], facts[_der.F_TBS]
    pad, h = padding.PKCS1v15(), hashes.SHA256()
    for d in c.intermediates:  # the issuer's key
        key = x509.load_der_x509_certificate(d).public_key()
        try:
            key.verify(sig, tbs, pad, h)  # type: ignore[union-attr,call-arg]
            break
        except Exception:
            continue

    def loop() -> None:
        for _ in range(n):
            key.verify(sig, tbs, pad, h)  # type: ignore[union-attr,call-arg]

    sec, _ = median_of(3, loop)
    bits = key.key_size  # type: ignore[union-attr]
    return Row(f"floor: RSA-{bits} verify (cryptography)", n, sec, None, "signature only, 1 core")


def floor_openssl(seconds: int, multi: int, alg: str = "rsa2048") -> Row | None:
    cmd = ["openssl", "speed", "-seconds", str(seconds)]
    if multi > 1:
        cmd += ["-multi", str(multi)]
    try:
        p = subprocess.run([*cmd, alg], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    bits = alg.removeprefix("rsa")
    for line in p.stdout.splitlines():
        m = re.match(rf"\s*rsa\s+{bits} bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rate = float(m.group(2))
            return Row(
                f"floor: openssl speed {alg} verify ({multi} core{'s' if multi > 1 else ''})",
                int(rate),
                1.0,
                None,
                "signature only",
            )
    return None


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 000 certificates, small samples")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument(
        "--intermediates",
        choices=("rsa4096", "rsa2048", "both"),
        default="both",
        help="key type of the corpus' intermediate CAs (default: both, RSA-4096 first)",
    )
    args = ap.parse_args(argv)
    kinds = ["rsa4096", "rsa2048"] if args.intermediates == "both" else [args.intermediates]
    ok = True
    for kind in kinds:
        ok &= run_corpus(cv.load_or_build(int_key=kind), args)
    return 0 if ok else 1


def run_corpus(c: cv.Corpus, args: argparse.Namespace) -> bool:
    n = 4000 if args.quick else len(c.leaves)
    leaves, truth = c.leaves[:n], c.truth[:n]
    step = max(1, n // (1000 if args.quick else 4000))
    openssl_idx = list(range(0, n, step))
    pyhanko_idx = list(range(0, n, max(1, n // (100 if args.quick else 400))))
    reps = 3 if args.quick else 5
    print(
        f"\ncorpus with {c.int_key.upper()} intermediates: {n} certificates "
        f"({dict(Counter(truth))}), time {c.time:%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    rows: list[Row] = []
    rows += ours(c, leaves, truth, reps)
    print("  ours done", flush=True)
    rows.append(anchor_loop(c, leaves, truth))
    print("  anchor done", flush=True)
    rows.append(crypto_policy(c, leaves if not args.quick else leaves[:2000], truth))
    print("  cryptography done", flush=True)
    rows.append(openssl_verify(c, openssl_idx, truth))
    print("  openssl done", flush=True)
    rows.append(pyhanko(c, pyhanko_idx, truth))
    print("  pyhanko done", flush=True)
    rows.append(floor_cryptography(c, 2000 if args.quick else 10000))
    for multi in (1, 2):
        r = floor_openssl(1 if args.quick else 2, multi, c.int_key)
        if r is not None:
            rows.append(r)

    ref = rows[0].rate
    head = (
        "validator",
        "certs",
        "seconds",
        "certs/s",
        "× ours (1 thread)",
        "verdicts right",
        "note",
    )
    table = [
        (
            r.name,
            str(r.n),
            f"{r.seconds:.3f}" if r.right is not None else "-",
            f"{r.rate:,.0f}",
            f"{r.rate / ref:.3f}",
            "-" if r.right is None else f"{r.right}/{r.n}",
            r.note,
        )
        for r in rows
    ]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for t in table:
            print("| " + " | ".join(t) + " |")
    else:
        widths = [max(len(x[k]) for x in [head, *table]) for k in range(len(head))]
        for t in [head, *table]:
            print("  ".join(x.ljust(w) for x, w in zip(t, widths, strict=True)).rstrip())
    ok = all(r.right == r.n for r in rows[:5])
    anchor = next(r.rate for r in rows if r.name.startswith("anchor"))
    floor = next((r.rate for r in rows if r.name.startswith("floor: RSA")), 0.0)
    speed1 = next((r.rate for r in rows if "openssl speed" in r.name and "(1 core)" in r.name), 0)
    print(
        f"1 thread / anchor loop: {ref / anchor:.2f}; 1 thread / cryptography verify floor: "
        f"{ref / floor:.2f}; 1 thread / openssl speed (1 core): "
        f"{ref / speed1 if speed1 else float('nan'):.2f} (goal >= 0.8); 2 threads / 1 thread: "
        f"{rows[1].rate / ref:.2f} (goal >= 1.8); 2 processes / 1 thread: "
        f"{rows[2].rate / ref:.2f}; all verdicts right: {ok}"
    )
    load = os.getloadavg()[0]
    if load > 1.5:
        print(
            f"note: load average {load:.1f} on {os.cpu_count()} CPUs during the run: other work "
            "shared the CPUs, rates are lower than on an idle machine (compare with the floor)"
        )
    return ok


if __name__ == "__main__":
    sys.exit(main())
