"""A real card login in a real headless browser, set up by `cps_middleware.browser.setup`.

Debian's Chromium (headless, driven by playwright, nothing downloaded) with a
throw-away HOME, so that ``~/.pki/nssdb`` is the test's: ``cps browser setup``
registers the CPS test-token module there, the browser auto-selects the card's
certificate (``AutoSelectCertificateForUrls`` policy), signs the TLS 1.2
handshake with the key on the token, and the local mutual-TLS server answers
with the holder it read from the certificate.

Chromium reads policies only from ``/etc/chromium/policies``: the browser runs
in a private mount namespace where a throw-away folder is bind-mounted on
``/etc/chromium``; the machine's ``/etc`` is never written.

The PIN: Chromium shows its own PIN dialog for any token that needs a login,
even one with a protected authentication path (PIN pad), and nobody can answer
it in a headless run. The test token's PIN-pad mode with ``pad_auto_login``
logs in through the simulated pad when the browser opens the card, so no PIN is
typed anywhere and none is given to the browser.

Firefox ESR (Debian's, headless) does the same from a profile set up by
``cps browser setup --firefox``; its ``policies.json`` (auto-selection of the
client certificate) is bind-mounted over its installation's ``distribution``
folder in a private mount namespace, and the page is read over WebDriver BiDi,
which Firefox has built in.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _firefox import bidi_page

from cps_middleware import browser
from cps_middleware.cli import main
from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.servers import MutualTlsServer
from cps_middleware.testing.testcard import CpsTestCard


def _can_unshare() -> bool:
    """A private mount namespace is possible here (root, or unprivileged user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    ns = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    try:
        done = subprocess.run(["unshare", *ns, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


CHROMIUM = "/usr/bin/chromium"
ISSUER_CN = "TEST AC IGC-SANTE FORT PERSONNES"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.skipif(shutil.which("modutil") is None, reason="libnss3-tools is not installed"),
    pytest.mark.skipif(not _can_unshare(), reason="no private mount namespace (unshare) here"),
]


def _chromium_in_namespace(tmp: Path, policies: dict[str, object]) -> Path:
    """An executable that runs Chromium with ``policies`` as its managed policies."""
    etc = tmp / "etc-chromium"
    managed = etc / "policies" / "managed"
    managed.mkdir(parents=True)
    (managed / "cps-test.json").write_text(json.dumps(policies))
    for keep in ("master_preferences", "initial_preferences"):
        if os.path.exists(f"/etc/chromium/{keep}"):
            shutil.copy(f"/etc/chromium/{keep}", etc / keep)
    # root (CI): a mount namespace; a user: a user namespace that maps it to root.
    ns = "--mount" if os.geteuid() == 0 else "--user --map-root-user --mount"
    wrapper = tmp / "chromium-with-policies"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec unshare {ns} --propagation private sh -c "
        f"'mount --bind \"$0\" /etc/chromium && exec {CHROMIUM} \"$@\"' '{etc}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def pin_pad_card(tmp_path: Path, cps_pki: TestPki) -> Iterator[CpsTestCard]:
    with CpsTestCard(tmp_path / "cards", pki=cps_pki, name="browser-login") as card:
        card.set_pin_pad(auto_login=True)
        yield card


def _open(wrapper: Path, env: dict[str, str], url: str, shot: Path) -> tuple[str, str]:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as pw:
        launch_env: dict[str, str | float | bool] = dict(env)
        b = pw.chromium.launch(
            executable_path=str(wrapper), env=launch_env, headless=True, timeout=30_000,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        try:
            page = b.new_page(viewport={"width": 1100, "height": 500})
            try:
                page.goto(url, timeout=30_000)
            except Error as exc:
                return "", str(exc)
            page.screenshot(path=str(shot))
            return page.inner_text("body"), ""
        finally:
            b.close()


def _login(
    card: CpsTestCard, tmp_path: Path, *, set_up: bool
) -> tuple[MutualTlsServer, str, str, Path]:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **card.env, "HOME": str(home)}
    if set_up:  # the command a doctor's helper runs
        code = main(["browser", "setup", "--chromium", "--home", str(home),
                     "--module", card.module_path, "--lang", "en"])  # fmt: skip
        assert code == 0
        (st,) = browser.status(home=home, env=env, firefox=False)
        assert st.registered and st.module_loads and st.card_modules[0].ours
    else:
        browser.NssDb(browser.chromium_target(home).directory, env).create()
    # A CPS3 has no RSA-PSS: TLS 1.2, as the ANS sites offer it.
    srv = MutualTlsServer(
        client_cas=list(card.credentials.chain), maximum_version=ssl.TLSVersion.TLSv1_2
    ).start()
    try:
        # The test's own server CA, trusted for web sites in the throw-away database.
        ca = tmp_path / "server-ca.pem"
        ca.write_bytes(srv.ca_pem)
        browser.NssDb(browser.chromium_target(home).directory, env).add_certificate(
            "cps test server CA", ca, "C,,"
        )
        origin = srv.url.rstrip("/")
        wrapper = _chromium_in_namespace(tmp_path, {
            "AutoSelectCertificateForUrls": [json.dumps(
                {"pattern": origin, "filter": {"ISSUER": {"CN": ISSUER_CN}}}
            )],
        })  # fmt: skip
        shot = tmp_path / "chromium-card-login.png"
        body, error = _open(wrapper, env, srv.url + "whoami", shot)
    finally:
        srv.stop()
    return srv, body, error, shot


def test_chromium_logs_in_with_the_card_set_up_by_cps_browser_setup(
    pin_pad_card: CpsTestCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    card = pin_pad_card
    monkeypatch.setenv("CPS_TEST_CARDS_DIR", card.env["CPS_TEST_CARDS_DIR"])
    srv, body, error, shot = _login(card, tmp_path, set_up=True)
    said = " ".join(capsys.readouterr().out.split())
    assert f"module {card.module_path} registered" in said
    assert not error, error
    answer = json.loads(body)
    assert answer["path"] == "/whoami" and answer["tls"]["version"] == "TLSv1.2"
    client = answer["client"]
    assert client["display_name"] == f"{card.holder.given_name} {card.holder.surname}"
    assert client["ps_id_nat"] == card.holder.ps_idnat
    assert client["serial"] == format(card.credentials.authentication.certificate.serial_number,
                                      "X")  # fmt: skip
    assert srv.handshakes >= 1
    # the PIN was presented by the pad and was right: the counter is full
    assert card.state().pin_tries_left == card.state().pin_tries_max
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (after,) = browser.status(home=tmp_path / "home", env={**os.environ, **card.env},
                              firefox=False)  # fmt: skip
    assert after.module_loads and after.card_modules[0].ours  # still there after the browser
    # nothing outside the private namespace changed
    assert not os.path.exists("/etc/chromium/policies/managed/cps-test.json")


def test_chromium_without_setup_has_no_card(pin_pad_card: CpsTestCard, tmp_path: Path) -> None:
    srv, body, error, _shot = _login(pin_pad_card, tmp_path, set_up=False)
    assert "ERR_BAD_SSL_CLIENT_AUTH_CERT" in error or "403" in body
    assert srv.handshakes == 0 or "no client certificate" in body


# -- Firefox ESR ------------------------------------------------------------------------------

FIREFOX = shutil.which("firefox-esr")


@pytest.mark.skipif(FIREFOX is None, reason="firefox-esr is not installed")
def test_firefox_esr_logs_in_with_the_card_set_up_by_cps_browser_setup(
    pin_pad_card: CpsTestCard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import signal
    import socket
    import subprocess

    assert FIREFOX is not None
    card = pin_pad_card
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **card.env, "HOME": str(home), "MOZ_HEADLESS": "1"}
    env.pop("XDG_CONFIG_HOME", None)
    profile = tmp_path / "profile"
    subprocess.run([FIREFOX, "--headless", "--createprofile", f"cps {profile}"], env=env,
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    monkeypatch.setenv("CPS_TEST_CARDS_DIR", card.env["CPS_TEST_CARDS_DIR"])
    assert main(["browser", "setup", "--firefox", "--home", str(home),
                 "--module", card.module_path]) == 0  # fmt: skip
    (st,) = browser.status(home=home, env=env, chromium=False)
    assert st.target.directory == profile and st.module_loads and st.card_modules[0].ours

    # Firefox reads policies.json from its installation's distribution folder:
    # a throw-away copy is bind-mounted there in a private mount namespace.
    dist_dir = Path(os.path.realpath(FIREFOX)).parent / "distribution"
    dist = tmp_path / "distribution"
    if dist_dir.is_dir():
        shutil.copytree(dist_dir, dist)
    else:
        pytest.skip(f"{dist_dir} does not exist (no mount point for policies.json)")
    (dist / "policies.json").write_text(json.dumps({"policies": {"Preferences": {
        "security.default_personal_cert": {"Value": "Select Automatically", "Status": "locked"},
    }}}))  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = MutualTlsServer(
        client_cas=list(card.credentials.chain), maximum_version=ssl.TLSVersion.TLSv1_2
    ).start()
    ns = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    try:
        ca = tmp_path / "server-ca.pem"
        ca.write_bytes(srv.ca_pem)
        browser.NssDb(profile, env).add_certificate("cps test server CA", ca, "C,,")
        proc = subprocess.Popen(
            ["unshare", *ns, "--propagation", "private", "sh", "-c",
             f'mount --bind "$0" {dist_dir} && exec {FIREFOX} "$@"', str(dist),
             "--headless", "--no-remote", "--profile", str(profile),
             f"--remote-debugging-port={port}", "about:blank"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            body, png = asyncio.run(asyncio.wait_for(bidi_page(port, url=srv.url + "whoami"), 60))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
    finally:
        srv.stop()
    (tmp_path / "firefox-card-login.png").write_bytes(png)
    assert f"{card.holder.given_name} {card.holder.surname}" in body
    assert card.holder.ps_idnat in body and "TLSv1.2" in body and "/whoami" in body
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert srv.handshakes >= 1
    assert not (dist_dir / "policies.json").exists()  # the machine's Firefox is untouched
    # Firefox rewrote its profile's pkcs11.txt when it stopped: the module is still there.
    (after,) = browser.status(home=home, env=env, chromium=False)
    assert after.module_loads and after.card_modules[0].ours and not after.running
