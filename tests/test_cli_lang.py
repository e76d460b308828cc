"""The ``cps`` command in French (the default) and English, its exit codes, and user text
shown literally (never as rich markup)."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cps_middleware.cli import EXIT_ERROR, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main
from cps_middleware.testing.pki import TestHolder
from cps_middleware.testing.servers import MutualTlsServer
from cps_middleware.testing.testcard import CpsTestCard

Capture = pytest.CaptureFixture[str]

# English words that must not appear in a French run (word boundaries, case-sensitive:
# product names such as "CPS test token (SoftHSM)" and certificate names are data).
ENGLISH = re.compile(
    r"\b(the|and|with|from|card|cards|server|reader|readers|error|errors|warning|valid|"
    r"tries|left|serial|holder|found|checked|accepted|failed|missing|loaded|present|"
    r"everything|works|finished|recognised|logged|selecting|paired|chains|through|"
    r"Creating|Discovering|Holder|Logging|Validating|Diagnostic of|Note|enable|skipped|"
    r"cipher|timings|verified|yes|no)\b"
)


def _english_words(text: str) -> list[str]:
    return sorted({m.group(0) for m in ENGLISH.finditer(text)})


def _run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _cli(*argv: str, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "CPS_TEST_CARDS_DIR"}
    return subprocess.run([sys.executable, "-m", "cps_middleware.cli", *argv],
                          env=dict(base, COLUMNS="200", **(env or {})), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def lang_card(cps_card_factory: Callable[..., CpsTestCard]) -> CpsTestCard:
    holder = TestHolder(given_name="LANGUE", surname="BILINGUE-TEST",
                        id_number="10000000147", card_number="8025000001/2800000147")
    return cps_card_factory(holder=holder, name="lang-card")


def _card(card: CpsTestCard) -> list[str]:
    return ["--module", card.module_path, "--serial", card.serial]


# --- one test per command, in both languages ---------------------------------------------------


def test_cards_info_certs_in_both_languages(lang_card: CpsTestCard, capsys: Capture) -> None:
    expected = {
        "cards": ("Titulaire", "Holder"),
        "info": ("Identifiant national", "National identifier"),
        "certs": ("Émetteur", "Issuer"),
    }
    for command, (fr, en) in expected.items():
        args = _card(lang_card) if command != "cards" else ["--module", lang_card.module_path]
        code, out, _err = _run(capsys, command, *args)
        assert code == EXIT_OK and fr in out and en not in out, out
        code, out, _err = _run(capsys, command, *args, "--lang", "en")
        assert code == EXIT_OK and en in out and fr not in out, out
    code, out, _err = _run(capsys, "info", *_card(lang_card))
    assert "carte de TEST" in out or "(carte de TEST)" in out
    assert "authentification" in out and "non bloqué (3 essai(s) restant(s))" in out


@pytest.mark.pcsc
def test_readers_in_both_languages(capsys: Capture) -> None:
    code, out, _err = _run(capsys, "readers")
    assert code == EXIT_OK and "Lecteurs de cartes" in out and "Lecteur" in out
    code, out, _err = _run(capsys, "--lang", "en", "readers")
    assert code == EXIT_OK and "Card readers" in out and "Lecteur" not in out


def test_pin_commands_in_both_languages(lang_card: CpsTestCard, capsys: Capture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Global options after the command and after the action: `cps pin status --module X`.
    code, out, _err = _run(capsys, "pin", "status", *_card(lang_card))
    assert code == EXIT_OK and out.strip() == "Code porteur : non bloqué (3 essai(s) restant(s))"
    code, out, _err = _run(capsys, "pin", "status", *_card(lang_card), "--lang", "en")
    assert code == EXIT_OK and out.strip() == "PIN: not blocked (3 tries left)"
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    code, out, _err = _run(capsys, "pin", "verify", *_card(lang_card))
    assert code == EXIT_OK and out.strip() == "Code porteur correct."
    monkeypatch.setattr("sys.stdin", io.StringIO("9999\n"))
    code, out, err = _run(capsys, "pin", "verify", *_card(lang_card))
    assert code == 4 and err.startswith("cps : erreur : Code porteur incorrect (2 essai(s) "
                                        "restant(s)) — la carte se bloque"), err
    assert "9999" not in out + err
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n4321\n4321\n"))
    code, out, _err = _run(capsys, "pin", "change", *_card(lang_card), "--lang", "en")
    assert code == EXIT_OK and out.strip() == "PIN changed."
    monkeypatch.setattr("sys.stdin", io.StringIO("4321\n1234\n1234\n"))
    code, out, _err = _run(capsys, "pin", "change", *_card(lang_card))
    assert code == EXIT_OK and out.strip() == "Code porteur changé."


def test_test_ssl_in_both_languages(lang_card: CpsTestCard, cps_tls_server: MutualTlsServer,
                                    capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    args = [cps_tls_server.url, "--cafile", str(cps_tls_server.ca_file), *_card(lang_card)]
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    code, out, _err = _run(capsys, "test-ssl", *args)
    assert code == EXIT_OK and "OK — le serveur a accepté la carte" in out
    assert "titulaire de la carte : LANGUE BILINGUE-TEST" in out and not _english_words(out), out
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    code, out, _err = _run(capsys, "test-ssl", *args, "--lang", "en")
    assert code == EXIT_OK and "OK — the server accepted the card" in out


def test_validate_in_both_languages(lang_card: CpsTestCard, capsys: Capture,
                                    tmp_path: Path) -> None:
    (tmp_path / "auth.pem").write_bytes(lang_card.credentials.authentication.pem)
    code, out, err = _run(capsys, "validate", "-v", str(tmp_path))
    assert code == EXIT_PROBLEM and "émetteur inconnu (UNKNOWN_ISSUER)" in out
    assert "Révocation non vérifiée" in err
    code, out, err = _run(capsys, "validate", "-v", str(tmp_path), "--lang", "en")
    assert code == EXIT_PROBLEM and "unknown issuer (UNKNOWN_ISSUER)" in out
    assert "Revocation not checked" in err


def test_testcard_commands_in_both_languages(capsys: Capture, tmp_path: Path) -> None:
    cards = str(tmp_path / "cards")
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "create", "--name", "t2")
    assert code == EXIT_OK and out.startswith("Carte de test t2 créée (")
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "list", "--lang", "en")
    assert code == EXIT_OK and "Test cards in" in out and "PIN tries left" in out
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "list")
    assert code == EXIT_OK and "Cartes de test dans" in out and "Insérée" in out
    for action, fr, en in (("remove", "retirée de son lecteur", "removed from its reader"),
                           ("insert", "insérée", "inserted")):
        assert _run(capsys, "testcard", "--cards-dir", cards, action, "t2")[1].strip() \
            .endswith(fr)
        code, out, _err = _run(capsys, "--lang", "en", "testcard", "--cards-dir", cards,
                               action, "t2")
        assert out.strip().endswith(en)
    code, out, _err = _run(capsys, "testcard", "--cards-dir", cards, "delete", "t2")
    assert code == EXIT_OK and out.strip() == "Carte de test t2 supprimée"


# --- the whole demo and the diagnostic in French -------------------------------------------


@pytest.mark.pcsc
@pytest.mark.slow
def test_whole_demo_in_french_has_no_english() -> None:
    proc = _cli("demo")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    out = proc.stdout
    for step in ("Création d'une carte CPS de test", "Découverte des cartes",
                 "Titulaire et code porteur", "Connexion avec le code porteur",
                 "Choix du certificat d'authentification", "Validation de la chaîne",
                 "Test SSL contre le serveur local", "Diagnostic de la carte",
                 "Certificat valide : rattaché à", "le serveur a accepté la carte",
                 "✔ Tout fonctionne. 13 OK, 0 avertissement(s)"):
        assert step in out, step
    assert "Le serveur a reconnu : GN=JEAN+CN=810001234567+SN=MEDECIN-TEST" in out  # no OIDs
    assert not re.search(r"\b2\.5\.4\.\d+=", out)
    # Product and certificate names the demo prints as data, not sentences.
    data = out.replace("CPS test token (SoftHSM)", "")
    assert not _english_words(data), _english_words(data)


def test_diag_in_french_has_no_english(lang_card: CpsTestCard, capsys: Capture,
                                       tmp_path: Path) -> None:
    html = tmp_path / "diag.html"
    code, out, _err = _run(capsys, "diag", "--module", lang_card.module_path,
                           "--token", lang_card.serial, "--trust", "test", "--details",
                           "--html", str(html))
    assert "Diagnostic de la carte CPS" in out and "Vérification" in out
    # A software test card needs no reader: never "Carte dans le lecteur : Erreur" for it.
    assert "Erreur" not in out and code == EXIT_OK, out
    sentences = out.split("Détails techniques")[0].replace("CPS test token (SoftHSM)", "")
    assert not _english_words(sentences), _english_words(sentences)
    page = html.read_text(encoding="utf-8")
    assert '<html lang="fr">' in page and "Diagnostic de la carte CPS" in page
    body = page.split("</style>", 1)[1].split("<details>")[0]
    assert not _english_words(re.sub(r"<[^>]+>", " ", body)
                              .replace("CPS test token (SoftHSM)", ""))


@pytest.mark.pcsc
def test_diag_of_a_software_card_with_pcscd_and_readers_is_ok(
    lang_card: CpsTestCard, capsys: Capture
) -> None:
    code, out, _err = _run(capsys, "diag", "--json", "--module", lang_card.module_path,
                           "--token", lang_card.serial, "--trust", "test")
    run = json.loads(out)
    by_id = {r["id"]: r for r in run["results"]}
    assert by_id["pkcs11.token"]["status"] == "ok"
    assert by_id["pcsc.card"]["status"] in ("ok", "skipped"), by_id["pcsc.card"]
    assert run["status"] != "error" and code == EXIT_OK


# --- cps demo after a plain pip install: its own pcscd, or the PKCS#11 path -------------------


def _path_without(program: str, tmp_path: Path) -> str:
    """A PATH holding every program of the current PATH except ``program``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = bindir / name
            if name != program and not target.exists():
                target.symlink_to(os.path.join(d, name))
    return str(bindir)


def _can_unshare() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def _demo_in_namespaces(*argv: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """``cps demo`` in fresh mount and network namespaces: no pcscd socket, free vpcd ports.

    With ``path`` (a PATH without pcscd), the sbin copies of pcscd are hidden too
    (the demo also looks there: an ordinary user's PATH lacks sbin)."""
    os.makedirs("/run/pcscd", exist_ok=True)
    hide = ("for f in /usr/local/sbin/pcscd /usr/sbin/pcscd /sbin/pcscd; do "
            'if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi; done && ') if path else ""
    script = (f"ip link set lo up && {hide}mount -t tmpfs tmpfs /run/pcscd && "
              f"exec {sys.executable} -m cps_middleware.cli demo " + " ".join(argv))
    env = {k: v for k, v in os.environ.items() if k != "CPS_TEST_CARDS_DIR"}
    env.update(COLUMNS="200", **({"PATH": path} if path else {}))
    proc = subprocess.run(["unshare", "--mount", "--net", "--fork", "sh", "-c", script],
                          env=env, capture_output=True, text=True, timeout=180)
    if "unshare failed" in proc.stderr or "Operation not permitted" in proc.stderr:
        pytest.skip(f"namespaces not available: {proc.stderr.strip()[:200]}")
    return proc


@pytest.mark.slow
def test_demo_without_pcscd_runs_on_pkcs11_with_a_french_note(tmp_path: Path) -> None:
    """pcscd not installed and none running: the whole demo on the PKCS#11 path, one note."""
    if not _can_unshare():
        pytest.skip("needs root and unshare (a machine view without the running pcscd)")
    path = _path_without("pcscd", tmp_path)
    proc = _demo_in_namespaces(path=path)
    out = proc.stdout
    assert proc.returncode == EXIT_OK, out + proc.stderr
    notes = [ln for ln in out.splitlines() if ln.startswith("Remarque : ")]
    assert len(notes) == 1, out
    assert "le service pcscd n'est pas installé" in notes[0] and "PKCS#11" in notes[0]
    assert "apt-get install pcscd vsmartcard-vpcd" in notes[0]
    assert "scripts/" not in out + proc.stderr and "Puce CPS3 virtuelle" not in out
    assert "Tout fonctionne." in out and "Non nécessaire : la carte de test logicielle" in out
    proc = _demo_in_namespaces("--lang", "en", path=path)
    assert proc.returncode == EXIT_OK and "Note: no virtual reader (pcscd is not installed)" \
        in proc.stdout, proc.stdout


def test_demo_on_a_port_without_a_virtual_reader_runs_on_pkcs11() -> None:
    proc = _cli("demo", "--port", "35999")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    notes = [ln for ln in proc.stdout.splitlines() if ln.startswith("Remarque : ")]
    assert len(notes) == 1 and "le port 35999 n'est pas celui d'un lecteur vpcd" in notes[0]
    assert "Puce CPS3 virtuelle" not in proc.stdout and "Tout fonctionne." in proc.stdout


@pytest.mark.slow
def test_demo_starts_and_stops_its_own_pcscd() -> None:
    """No pcscd runs: the demo starts pcscd with the vpcd readers, uses the virtual reader,
    and stops it by PID."""
    if not _can_unshare() or shutil.which("pcscd") is None:
        pytest.skip("needs root, unshare and pcscd")
    proc = _demo_in_namespaces()
    out = proc.stdout
    assert proc.returncode == EXIT_OK, out + proc.stderr
    started = re.search(r"Service pcscd démarré pour la démo \(PID (\d+), arrêté à la fin\)", out)
    assert started, out
    assert "Puce CPS3 virtuelle insérée dans « Virtual PCD 35967 00 00 »" in out
    assert "13 OK" in out
    with pytest.raises(ProcessLookupError):  # the demo's pcscd is gone
        os.kill(int(started.group(1)), 0)


# --- exit codes: usage 2, library error 3, never 70 for bad input ----------------------------


def test_bad_ports_and_a_taken_port(capsys: Capture) -> None:
    for bad in ("70000", "x", "-1"):
        code, _out, err = _run(capsys, "diag", "--serve", "--port", bad)
        assert code == EXIT_USAGE and "--port" in err, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _out, err = _run(capsys, "diag", "--serve", "--port", str(port))
        assert code == EXIT_ERROR and f"le port {port} n'est pas disponible" in err, err
        code, _out, err = _run(capsys, "--lang", "en", "diag", "--serve", "--port", str(port))
        assert code == EXIT_ERROR and f"port {port} is not available" in err, err


def test_diag_serve_without_the_web_extra_is_an_error_not_a_crash() -> None:
    # The optional dependency is absent for this interpreter: its import fails as when the
    # extra is not installed.
    code = ("import sys; sys.modules['uvicorn'] = None; from cps_middleware.cli import main; "
            "sys.exit(main(['diag', '--serve']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "pip install 'cps-middleware[web]'" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal" not in proc.stderr


def test_unreadable_file_in_validate_dir_is_a_per_item_result(
    lang_card: CpsTestCard, tmp_path: Path, capsys: Capture
) -> None:
    if not os.path.exists("/proc/self/mem"):
        pytest.skip("needs Linux /proc")
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "auth.pem").write_bytes(lang_card.credentials.authentication.pem)
    # A regular file that even root cannot read: reading it fails with EIO.
    (certs / "broken.pem").symlink_to("/proc/self/mem")
    code, out, err = _run(capsys, "validate", "--json", str(certs))
    assert code == EXIT_PROBLEM, err
    results = {Path(r["file"]).name: r for r in json.loads(out)["results"]}
    assert results["broken.pem"]["status"] == "MALFORMED"
    assert results["broken.pem"]["reason"].startswith("unreadable: ")
    assert results["auth.pem"]["status"] == "UNKNOWN_ISSUER"  # production trust, test card
    code, out, err = _run(capsys, "validate", "-v", str(certs))
    assert code == EXIT_PROBLEM and "illisible (MALFORMED)" in out


def test_bad_iso_date_is_a_usage_error(capsys: Capture, tmp_path: Path) -> None:
    code, _out, err = _run(capsys, "validate", str(tmp_path), "--at", "yesterday")
    assert code == EXIT_USAGE and "argument --at : ce n'est pas une date ISO" in err
    code, _out, err = _run(capsys, "validate", str(tmp_path), "--at", "yesterday", "--lang", "en")
    assert code == EXIT_USAGE and "argument --at: not an ISO date" in err


# --- user-controlled text is never markup ---------------------------------------------------


def test_markup_in_holder_names_and_file_names_prints_literally(
    cps_card_factory: Callable[..., CpsTestCard], capsys: Capture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    card = cps_card_factory(
        holder=TestHolder(given_name="A[/]", surname="[link=http://x]Z",
                          id_number="10000000148", card_number="8025000001/2800000148"),
        name="markup-card")
    for argv in (["cards", "--module", card.module_path], ["info", *_card(card)],
                 ["certs", *_card(card)]):
        code, out, err = _run(capsys, *argv)
        assert code == EXIT_OK, err
        assert "A[/]" in out and "[link=http://x]Z" in out, out
        assert "\x1b]8;" not in out  # no hyperlink escape sequence
    weird = tmp_path / "[bold]x[link=y].pem"
    weird.write_bytes(card.credentials.authentication.pem)
    code, out, err = _run(capsys, "validate", "-v", str(weird))
    assert code == EXIT_PROBLEM and "[bold]x[link=y].pem" in out.replace("\n", "")


# --- the help of every command, in French ------------------------------------------------


def _parsers() -> list[argparse.ArgumentParser]:
    from cps_middleware.cli import build_parser

    found, todo = [], [build_parser()]
    while todo:
        parser = todo.pop()
        found.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    return found


def test_every_help_text_has_its_french() -> None:
    from cps_middleware.cli._common import _french_help

    french = _french_help()
    missing = set()
    for parser in _parsers():
        texts = [parser.description, parser.epilog,
                 *(g.title for g in parser._action_groups)]
        for action in parser._actions:
            texts.append(action.help)
            if isinstance(action, argparse._SubParsersAction):
                texts += [c.help for c in action._choices_actions]
        missing |= {t for t in texts if t and t != argparse.SUPPRESS and t not in french}
    assert not missing, sorted(missing)


def test_help_of_each_command_in_both_languages(capsys: Capture) -> None:
    for parser in _parsers():
        argv = parser.prog.split()[1:]
        code, out, _err = _run(capsys, *argv, "--help")
        assert code == EXIT_OK and out.startswith("utilisation : "), parser.prog
        assert "afficher cette aide et quitter" in out
        # Command names (first word of a command line) and option names are not sentences.
        body = out.split("\n\n", 1)[1]  # after the usage lines (they name the command)
        sentences = re.sub(r"(?m)^\s{4}\S+|--?[\w-]+|\b[A-Z][A-Z_]+\b", "", body)
        assert not _english_words(sentences), (parser.prog, _english_words(sentences))
        code, out, _err = _run(capsys, *argv, "--help", "--lang", "en")
        assert code == EXIT_OK and out.startswith("usage: ") and "show this help" in out
