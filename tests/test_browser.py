"""cps_middleware.browser on throw-away homes and profiles: setup → status → setup → remove.

Real NSS tools (modutil/certutil from libnss3-tools) and the real CPS test-token
module; the Firefox profile is made by Debian's firefox-esr (``--createprofile``)
when it is installed, else its NSS database is made the way Firefox makes it
(``certutil -N --empty-password``). A running browser is a real headless Chromium.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps_middleware import browser
from cps_middleware.browser import Browser, Outcome, Target
from cps_middleware.errors import BrowserRunning, ModuleLoadError, NssToolsMissing
from cps_middleware.messages import text
from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.testcard import CpsTestCard

pytestmark = pytest.mark.skipif(
    shutil.which("modutil") is None or shutil.which("certutil") is None,
    reason="libnss3-tools (modutil, certutil) is not installed",
)
CHROMIUM = shutil.which("chromium")
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")


@pytest.fixture
def card(tmp_path: Path, cps_pki: TestPki) -> Iterator[CpsTestCard]:
    with CpsTestCard(tmp_path / "cards", pki=cps_pki, name="browser-card") as c:
        yield c


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def _env(card: CpsTestCard, home: Path) -> dict[str, str]:
    return {**os.environ, **card.env, "HOME": str(home)}


def _card_modules(directory: Path) -> list[str]:
    text_ = (directory / "pkcs11.txt").read_text()
    return [line.partition("=")[2] for line in text_.splitlines()
            if line.startswith("library=") and line != "library="]  # fmt: skip


def _round_trip(card: CpsTestCard, home: Path, target: Target, **where: object) -> None:
    env = _env(card, home)
    expected = len(browser.igc_sante_certificates())
    assert expected >= 2

    first = browser.setup(card.module_path, home=home, env=env, **where)  # type: ignore[arg-type]
    assert [r.target for r in first] == [target]
    assert first[0].outcome is Outcome.DONE, first[0].message("en")
    assert first[0].module_added and len(first[0].certificates_added) == expected
    assert _card_modules(target.directory) == [card.module_path]
    assert (target.directory / browser.MANIFEST).exists()

    (st,) = browser.status(home=home, env=env, **where)  # type: ignore[arg-type]
    assert st.registered and st.module_loads is True and st.managed
    (ours,) = st.card_modules
    assert ours.ours and ours.name == browser.MODULE_NAME
    assert [t.serial for t in ours.tokens] == [card.serial]
    assert len(st.certificates) == expected and not st.conflicts()
    assert "se charge" in st.summary("fr") and "loads" in st.summary("en")

    before = (target.directory / "pkcs11.txt").read_bytes()
    again = browser.setup(card.module_path, home=home, env=env, **where)  # type: ignore[arg-type]
    assert again[0].outcome is Outcome.UNCHANGED and again[0].reason == "browser.setup_unchanged"
    assert not again[0].module_added and not again[0].certificates_added
    assert (target.directory / "pkcs11.txt").read_bytes() == before

    removed = browser.remove(home=home, env=env, **where)  # type: ignore[arg-type]
    assert removed[0].outcome is Outcome.DONE and removed[0].module_removed
    assert len(removed[0].certificates_removed) == expected
    assert _card_modules(target.directory) == []
    assert not (target.directory / browser.MANIFEST).exists()

    (after,) = browser.status(home=home, env=env, **where)  # type: ignore[arg-type]
    assert not after.registered and not after.certificates and not after.managed
    assert after.summary("en") == text("browser.status_not_registered", "en",
                                       browser=target.browser.value, profile=target.name,
                                       directory=str(target.directory))  # fmt: skip
    nothing = browser.remove(home=home, env=env, **where)  # type: ignore[arg-type]
    assert nothing[0].outcome is Outcome.UNCHANGED and nothing[0].reason == "browser.remove_nothing"


def test_chromium_nssdb_round_trip(card: CpsTestCard, home: Path) -> None:
    _round_trip(card, home, browser.chromium_target(home), firefox=False)


def _firefox_profile(home: Path, env: dict[str, str]) -> Path:
    profile = home / "ff-profile"
    if FIREFOX:
        subprocess.run(
            [FIREFOX, "--headless", "--createprofile", f"cps-test {profile}"],
            env={**env, "MOZ_HEADLESS": "1"}, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    else:  # the profiles.ini Firefox writes, and the profile folder
        base = home / ".config" / "mozilla" / "firefox"
        base.mkdir(parents=True)
        (base / "profiles.ini").write_text(
            f"[Profile0]\nName=cps-test\nIsRelative=0\nPath={profile}\n\n[General]\nVersion=2\n"
        )
        profile.mkdir()
    return profile


def test_firefox_profile_round_trip(card: CpsTestCard, home: Path) -> None:
    profile = _firefox_profile(home, _env(card, home))
    assert browser.firefox_profiles(home) == [Target(Browser.FIREFOX, "cps-test", profile)]
    _round_trip(card, home, Target(Browser.FIREFOX, "cps-test", profile), chromium=False)


def test_explicit_profile_and_module_errors(card: CpsTestCard, home: Path) -> None:
    env = _env(card, home)
    with pytest.raises(ModuleLoadError) as err:
        browser.setup(home / "missing.so", home=home, env=env)
    assert err.value.attempts and err.value.attempts[0][1] == "missing"
    assert not (home / ".pki").exists()  # nothing touched

    profile = home / "given-profile"
    (res,) = browser.setup(card.module_path, home=home, env=env, chromium=False,
                           profiles=[profile])  # fmt: skip
    assert res.outcome is Outcome.DONE and res.target.browser is Browser.FIREFOX
    assert (profile / "cert9.db").exists()


def test_missing_nss_tools_is_a_typed_error(
    card: CpsTestCard, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(home))
    with pytest.raises(NssToolsMissing) as err:
        browser.setup(card.module_path, home=home, env=_env(card, home), firefox=False)
    assert "libnss3-tools" in (err.value.hint or "") and err.value.function in ("certutil",
                                                                                "modutil")


def test_second_middleware_for_the_same_card_is_a_conflict(card: CpsTestCard, home: Path) -> None:
    env = _env(card, home)
    browser.setup(card.module_path, home=home, env=env, firefox=False, certificates=False)
    # A second copy of the same middleware under another name: both see the card.
    other = home / "other-cps-pkcs11.so"
    shutil.copy(card.module_path, other)
    db = browser.NssDb(browser.chromium_target(home).directory, env)
    db.add_module("Other CPS middleware", str(other))
    (st,) = browser.status(home=home, env=env, firefox=False)
    assert st.conflicts() == [(card.serial, (browser.MODULE_NAME, "Other CPS middleware"))]
    # remove takes back only what setup added
    browser.remove(home=home, env=env, firefox=False)
    assert _card_modules(db.directory) == [str(other)]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_running_chromium_is_never_edited(card: CpsTestCard, home: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    env = _env(card, home)
    target = browser.chromium_target(home)
    browser.NssDb(target.directory, env).create()
    before = (target.directory / "pkcs11.txt").read_bytes()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'ud'}", "--remote-debugging-port=0", "about:blank"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not browser.users(target) and time.monotonic() < deadline:
            time.sleep(0.2)
        holders = browser.users(target)
        assert holders, "chromium did not open its NSS database"
        (res,) = browser.setup(card.module_path, home=home, env=env, firefox=False)
        assert res.outcome is Outcome.REFUSED_RUNNING and res.reason == "browser.running"
        assert str(holders[0].pid) in res.message("en") and "fermez-le" in res.message("fr")
        with pytest.raises(BrowserRunning):
            browser.setup_target(target, card.module_path, env=env)
        assert (target.directory / "pkcs11.txt").read_bytes() == before
        (st,) = browser.status(home=home, env=env, firefox=False)
        assert st.running and st.module_loads is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_system_wide_p11kit_in_a_throwaway_root(card: CpsTestCard, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert browser.p11kit_status(root) is None
    assert browser.p11kit_setup(card.module_path, root) is True
    path = browser.module_file(root)
    assert path == root / "etc/pkcs11/modules/cps-middleware.module"
    assert f"module: {card.module_path}\n" in path.read_text()
    assert browser.p11kit_setup(card.module_path, root) is False  # idempotent
    assert browser.p11kit_status(root) == card.module_path
    assert browser.p11kit_remove(root) is True and not path.exists()
    assert browser.p11kit_remove(root) is False
    path.write_text("module: /somebody/else.so\n")  # not ours: left alone
    assert browser.p11kit_remove(root) is False and path.exists()


def test_igc_sante_certificates_are_the_package_cas() -> None:
    certs = browser.igc_sante_certificates()
    names = [n for n, _ in certs]
    assert len(certs) == len(set(names)) >= 2
    assert any("IGC-SANTE" in n.upper() for n in names)


def test_browser_messages_exist_in_both_languages() -> None:
    from cps_middleware.messages import all_messages

    mine = {k: m for k, m in all_messages().items() if k.startswith("browser.")}
    assert len(mine) >= 20
    for code, msg in mine.items():
        assert msg.fr and msg.en and msg.fr != msg.en, code


@pytest.mark.skipif(FIREFOX is None, reason="firefox-esr is not installed")
def test_running_firefox_profile_is_never_edited(card: CpsTestCard, home: Path) -> None:
    assert FIREFOX is not None
    env = {**_env(card, home), "MOZ_HEADLESS": "1"}
    profile = _firefox_profile(home, env)
    proc = subprocess.Popen(
        [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), "about:blank"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    target = Target(Browser.FIREFOX, "cps-test", profile)
    try:
        deadline = time.monotonic() + 30
        while not browser.users(target) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert browser.users(target), "firefox did not lock its profile"
        (res,) = browser.setup(card.module_path, home=home, env=env, chromium=False)
        assert res.outcome is Outcome.REFUSED_RUNNING
        assert not (profile / browser.MANIFEST).exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    # closed: the stale lock symlink Firefox leaves behind does not count
    (res,) = browser.setup(card.module_path, home=home, env=env, chromium=False)
    assert res.outcome is Outcome.DONE, res.message("en")


def test_cli_setup_status_remove_with_system(
    card: CpsTestCard, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from cps_middleware.cli import main

    monkeypatch.setenv("CPS_TEST_CARDS_DIR", card.env["CPS_TEST_CARDS_DIR"])
    root = tmp_path / "root"
    where = ["--chromium", "--home", str(home)]
    assert main(["browser", "status", *where, "--lang", "en"]) == 1  # nothing registered
    assert "no certificate database" in capsys.readouterr().out
    assert main(["browser", "setup", *where, "--module", card.module_path, "--system",
                 "--root", str(root), "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["module"] == {"path": card.module_path, "source": "explicit"}
    assert out["system"]["changed"] is True and out["results"][0]["outcome"] == "done"
    assert browser.p11kit_status(root) == card.module_path
    assert main(["browser", "status", *where, "--json"]) == 0
    (st,) = json.loads(capsys.readouterr().out)
    assert st["registered"] and st["module_loads"] and st["modules"][-1]["ours"]
    assert main(["browser", "remove", *where, "--system", "--root", str(root)]) == 0
    said = capsys.readouterr().out
    assert "retiré" in said and "supprimé" in said  # French by default
    assert browser.p11kit_status(root) is None
    assert main(["browser", "setup", *where, "--module", str(home / "nope.so")]) == 3


def test_unwritable_profile_is_a_per_item_failure(card: CpsTestCard, home: Path) -> None:
    from cps_middleware.errors import BrowserSetupError

    not_a_dir = home / "a-file"
    not_a_dir.write_text("x")
    (res,) = browser.setup(card.module_path, home=home, env=_env(card, home), chromium=False,
                           profiles=[not_a_dir])  # fmt: skip
    assert res.outcome is Outcome.FAILED and res.reason == "browser.failed"
    assert str(not_a_dir) in res.message("en") and "échec" in res.message("fr")
    with pytest.raises(BrowserSetupError):
        browser.setup_target(Target(Browser.FIREFOX, "x", not_a_dir), card.module_path)

