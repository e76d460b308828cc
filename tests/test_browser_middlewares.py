"""The real middlewares in the browsers' NSS databases, with the virtual CPS3 on a vpcd reader.

``cps browser setup --module`` registers OpenSC's module, then the ANS
Cryptolib CPS, in a throw-away Chromium database; NSS loads them (``modutil
-list`` loads every registered module as the browser does at start-up) and the
status must show the virtual CPS3 through them. Then the whole card login with
the real middleware: Chromium opens a mutual-TLS site that auto-selects the
card, loads the module in its own process, and asks the PIN in its own "Unlock
Security Device" dialog (a vpcd reader has no PIN pad, and Chromium never uses
a protected authentication path anyway). Nobody can answer that dialog in a
headless run, so this browser has a window on a private Xvfb display and the
PIN is typed into the dialog as a person would (xdotool); the page is read over
the DevTools protocol. Without Xvfb/xdotool the test checks only that the
headless browser loads the middleware in its own process. Firefox ESR does the
same from a profile set up by ``cps browser setup --firefox`` (its "Password
Required" prompt, policies.json in a private namespace, page read over BiDi).

The ANS module reads and writes ``/etc/opt`` and ``/var/opt``: everything that
loads it runs in a private mount namespace with throw-away folders bound there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _firefox import bidi_page

from cps_middleware import browser
from cps_middleware.testing.ansmodule import ans_module_path
from cps_middleware.testing.pki import CardCredentials
from cps_middleware.testing.servers import MutualTlsServer

REPO = Path(__file__).resolve().parents[1]
ANS_MODULE = ans_module_path(REPO)  # $CPS_ANS_MODULE or ../shared; None: those tests skip
CHROMIUM = "/usr/lib/chromium/chromium" if os.path.exists("/usr/lib/chromium/chromium") else None

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


pytestmark = [
    pytest.mark.pcsc,
    pytest.mark.skipif(not _can_unshare(), reason="no private mount namespace (unshare) here"),
    pytest.mark.skipif(shutil.which("modutil") is None, reason="libnss3-tools is not installed"),
]


def _ans_module() -> str:
    if ANS_MODULE is None:
        pytest.skip("the ANS Cryptolib module (libcps3_pkcs11_lux.so) is not available")
    return str(ANS_MODULE)


def _private_opt_command(tmp: Path, argv: list[str]) -> list[str]:
    """argv run with throw-away /etc/opt and /var/opt (the ANS module writes there)."""
    etc_opt, var_opt = tmp / "etc_opt", tmp / "var_opt"
    conf = etc_opt / "santesocial" / "CPS"
    conf.mkdir(parents=True, exist_ok=True)
    var_opt.mkdir(exist_ok=True)
    shipped = ANS_MODULE.parent / "cps3_pkcs11.conf" if ANS_MODULE else None
    if shipped and shipped.exists():
        shutil.copy(shipped, conf / "cps3_pkcs11.conf")
    ns = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    script = 'mount --bind "$0" /etc/opt && mount --bind "$1" /var/opt && shift && exec "$@"'
    return ["unshare", *ns, "--propagation", "private", "sh", "-c", script,
            str(etc_opt), str(var_opt), *argv]  # fmt: skip


def _in_private_opt(
    tmp: Path, argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_private_opt_command(tmp, argv), env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _chromium_loads(module: str, home: Path, tmp: Path, credentials: CardCredentials) -> list[int]:
    """Start headless Chromium on a mutual-TLS page that auto-selects the card: the PIDs of
    the Chromium processes that loaded ``module`` (the browser process, where NSS runs)."""
    srv = MutualTlsServer(client_cas=list(credentials.chain),
                          maximum_version=ssl.TLSVersion.TLSv1_2).start()  # fmt: skip
    etc = tmp / "etc-chromium"
    (etc / "policies" / "managed").mkdir(parents=True)
    (etc / "policies" / "managed" / "cps.json").write_text(json.dumps(
        {"AutoSelectCertificateForUrls": [json.dumps({"pattern": srv.url.rstrip("/"),
                                                      "filter": {}})]}))  # fmt: skip
    argv = ["sh", "-c", 'mount --bind "$0" /etc/chromium && exec "$@"', str(etc), CHROMIUM,
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp / 'ud'}", srv.url]  # fmt: skip
    proc = subprocess.Popen(_private_opt_command(tmp, argv), env={**os.environ, "HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    found: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            time.sleep(0.3)
            for pid in (int(n) for n in os.listdir("/proc") if n.isdigit()):
                try:
                    if os.path.basename(module) in Path(f"/proc/{pid}/maps").read_text() \
                            and Path(f"/proc/{pid}/comm").read_text().strip() == "chromium":
                        found.append(pid)
                except OSError:
                    continue
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        srv.stop()
    return found


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """A private X server; its display number chosen by Xvfb itself (-displayfd)."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24",
                             "-nolisten", "tcp"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write)
    with os.fdopen(read) as f:
        display = f.readline().strip()
    assert display.isdigit(), "Xvfb did not start"
    return xvfb, f":{display}"


def _windows(env: dict[str, str]) -> dict[str, str]:
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "."], env=env,
                           capture_output=True, text=True, timeout=10).stdout.split()  # fmt: skip
    return {w: subprocess.run(["xdotool", "getwindowname", w], env=env, capture_output=True,
                              text=True, timeout=10).stdout.strip() for w in found}  # fmt: skip


def _chromium_login(
    home: Path, tmp: Path, credentials: CardCredentials, pin: str
) -> tuple[str, bytes, MutualTlsServer]:
    """Chromium (with a window, on a private X server) opens a mutual-TLS page that
    auto-selects the card; its own "Unlock Security Device" dialog asks for the PIN, which
    is typed there as a person would (xdotool); the page is then read over CDP."""
    from playwright.sync_api import sync_playwright

    srv = MutualTlsServer(client_cas=list(credentials.chain),
                          maximum_version=ssl.TLSVersion.TLSv1_2).start()  # fmt: skip
    ca = tmp / "server-ca.pem"
    ca.write_bytes(srv.ca_pem)
    browser.NssDb(browser.chromium_target(home).directory).add_certificate("test server CA", ca,
                                                                           "C,,")  # fmt: skip
    etc = tmp / "etc-chromium"
    (etc / "policies" / "managed").mkdir(parents=True)
    (etc / "policies" / "managed" / "cps.json").write_text(json.dumps(
        {"AutoSelectCertificateForUrls": [json.dumps({"pattern": srv.url.rstrip("/"),
                                                      "filter": {}})]}))  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cdp = s.getsockname()[1]
    xvfb, display = _xvfb()
    env = {**os.environ, "HOME": str(home), "DISPLAY": display, "LANGUAGE": "en"}
    argv = ["sh", "-c", 'mount --bind "$0" /etc/chromium && exec "$@"', str(etc), CHROMIUM or "",
            "--no-sandbox", "--disable-gpu", "--ozone-platform=x11", "--lang=en-US",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp / 'ud'}", f"--remote-debugging-port={cdp}",
            srv.url + "whoami"]  # fmt: skip
    proc = subprocess.Popen(_private_opt_command(tmp, argv), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        typed = False
        deadline = time.monotonic() + 40
        while not srv.handshakes and time.monotonic() < deadline:
            time.sleep(0.3)
            if typed:
                continue
            dialogs = [w for w, name in _windows(env).items() if name.startswith("Unlock")]
            if dialogs:
                for args in (["windowfocus", "--sync", dialogs[0]],
                             ["type", "--delay", "30", pin], ["key", "Return"]):
                    subprocess.run(["xdotool", *args], env=env, check=True, timeout=20)
                typed = True
        assert typed, f"no PIN dialog: {_windows(env)}"
        with sync_playwright() as pw:
            b = pw.chromium.connect_over_cdp(f"http://127.0.0.1:{cdp}", timeout=30_000)
            page = next(p for c in b.contexts for p in c.pages if "/whoami" in p.url)
            page.wait_for_load_state("load", timeout=30_000)
            body, png = page.inner_text("body"), page.screenshot()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        xvfb.terminate()
        xvfb.wait(10)
        srv.stop()
    return body, png, srv


def _cli(
    tmp: Path, home: Path, *args: str, which: str = "--chromium"
) -> dict[str, object] | list[object]:
    env = {**os.environ, "HOME": str(home)}
    proc = _in_private_opt(tmp, [sys.executable, "-m", "cps_middleware.cli", "browser", *args,
                                 which, "--home", str(home), "--json"], env)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, object] | list[object] = json.loads(proc.stdout)
    return data


def _card_tokens(status: list[object]) -> list[dict[str, object]]:
    (target,) = status
    assert isinstance(target, dict)
    mods = [m for m in target["modules"] if not m["builtin"]]
    return [t for m in mods for t in m["tokens"]]


@pytest.mark.parametrize("which", ["opensc", "ans"])
def test_real_middleware_registered_in_chromium_sees_the_virtual_cps3(
    which: str, cps_iasecc_cps3: object, cps_opensc_module: str, tmp_path: Path
) -> None:
    module = cps_opensc_module if which == "opensc" else _ans_module()
    home = tmp_path / "home"
    home.mkdir()
    setup = _cli(tmp_path, home, "setup", "--module", module)
    assert isinstance(setup, dict)
    (res,) = setup["results"]  # type: ignore[misc]
    assert res["outcome"] == "done" and res["module_added"], res
    status = _cli(tmp_path, home, "status")
    assert isinstance(status, list)
    tokens = _card_tokens(status)
    assert status[0]["module_loads"] is True, status  # type: ignore[index]
    serial = cps_iasecc_cps3.objects.serial  # type: ignore[attr-defined]
    # OpenSC shows the 10 digits of EF.SN.ICC, the ANS module their first 8.
    assert any(t["serial"] and str(t["serial"]) in serial for t in tokens), (serial, tokens)
    creds: CardCredentials = cps_iasecc_cps3.credentials  # type: ignore[attr-defined]
    if CHROMIUM is not None and shutil.which("Xvfb") and shutil.which("xdotool"):
        # The whole login with the real middleware: Chromium asks the PIN in its own
        # dialog (no PIN pad on a vpcd reader), which needs a display: a private Xvfb.
        body, png, srv = _chromium_login(home, tmp_path, creds,
                                         cps_iasecc_cps3.pin)  # type: ignore[attr-defined]
        (tmp_path / f"chromium-{which}-login.png").write_bytes(png)
        answer = json.loads(body)
        assert answer["client"]["display_name"] == "CLAIRE IASECC-TEST"
        assert answer["client"]["ps_id_nat"] == creds.holder.ps_idnat
        assert answer["tls"]["version"] == "TLSv1.2" and png[:4] == b"\x89PNG"
        assert srv.handshakes >= 1
    elif CHROMIUM is not None:
        # Headless, the login stops at Chromium's PIN dialog: check at least that the
        # browser loads the middleware in its own process.
        assert _chromium_loads(module, home, tmp_path, creds)
    removed = _cli(tmp_path, home, "remove")
    assert removed["results"][0]["module_removed"] is True  # type: ignore[index,call-overload]
    assert browser.NssDb(browser.chromium_target(home).directory).registrations()[-1].library == ""


def test_ans_and_opensc_in_one_browser_are_a_conflict(
    cps_iasecc_cps3: object, cps_opensc_module: str, tmp_path: Path
) -> None:
    """The classic conflict: both real middlewares registered, both see the card."""
    ans = _ans_module()
    home = tmp_path / "home"
    home.mkdir()
    _cli(tmp_path, home, "setup", "--module", cps_opensc_module, "--no-certificates")
    db = browser.chromium_target(home).directory
    added = _in_private_opt(tmp_path, ["modutil", "-dbdir", f"sql:{db}", "-add", "Cryptolib CPS",
                                       "-libfile", ans, "-force"],
                            {**os.environ, "HOME": str(home)})  # fmt: skip
    assert added.returncode == 0, added.stderr
    (target,) = _cli(tmp_path, home, "status")  # type: ignore[misc]
    (conflict,) = target["conflicts"]
    assert sorted(conflict["modules"]) == ["CPS (cps-middleware)", "Cryptolib CPS"]
    assert conflict["serial"] in cps_iasecc_cps3.objects.serial  # type: ignore[attr-defined]
    cps_iasecc_cps3.remove()  # type: ignore[attr-defined]
    (target,) = _cli(tmp_path, home, "status")  # type: ignore[misc]
    assert target["conflicts"] == [{"serial": "*", "modules": ["CPS (cps-middleware)",
                                                              "Cryptolib CPS"]}]  # fmt: skip


FIREFOX = shutil.which("firefox-esr")


@pytest.mark.parametrize("which", ["opensc", "ans"])
def test_firefox_card_login_with_real_middleware(
    which: str, cps_iasecc_cps3: object, cps_opensc_module: str, tmp_path: Path
) -> None:
    """Firefox ESR with its profile set up by ``cps browser setup --firefox``: it asks the
    PIN in its "Password Required" prompt (on a private Xvfb display, typed with xdotool);
    its policies.json auto-selects the card's certificate."""
    import asyncio

    module = cps_opensc_module if which == "opensc" else _ans_module()
    if not (FIREFOX and shutil.which("Xvfb") and shutil.which("xdotool")):
        pytest.skip("firefox-esr, Xvfb or xdotool is not installed")
    dist_dir = Path(os.path.realpath(FIREFOX)).parent / "distribution"
    if not dist_dir.is_dir():
        pytest.skip(f"{dist_dir} does not exist (no mount point for policies.json)")
    creds: CardCredentials = cps_iasecc_cps3.credentials  # type: ignore[attr-defined]
    home = tmp_path / "home"
    home.mkdir()
    profile = tmp_path / "profile"
    env = {**os.environ, "HOME": str(home), "LANGUAGE": "en"}
    env.pop("XDG_CONFIG_HOME", None)
    subprocess.run([FIREFOX, "--headless", "--createprofile", f"cps {profile}"],
                   env={**env, "MOZ_HEADLESS": "1"}, check=True, capture_output=True,
                   timeout=60)  # fmt: skip
    setup = _cli(tmp_path, home, "setup", "--module", module, which="--firefox")
    assert setup["results"][0]["outcome"] == "done"  # type: ignore[call-overload,index]
    dist = tmp_path / "distribution"
    shutil.copytree(dist_dir, dist)
    (dist / "policies.json").write_text(json.dumps({"policies": {"Preferences": {
        "security.default_personal_cert": {"Value": "Select Automatically", "Status": "locked"},
    }}}))  # fmt: skip
    srv = MutualTlsServer(client_cas=list(creds.chain),
                          maximum_version=ssl.TLSVersion.TLSv1_2).start()  # fmt: skip
    ca = tmp_path / "server-ca.pem"
    ca.write_bytes(srv.ca_pem)
    browser.NssDb(profile, env).add_certificate("test server CA", ca, "C,,")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        bidi = s.getsockname()[1]
    xvfb, display = _xvfb()
    env["DISPLAY"] = display
    argv = ["sh", "-c", f'mount --bind "$0" {dist_dir} && exec "$@"', str(dist), FIREFOX,
            "--no-remote", "--profile", str(profile), f"--remote-debugging-port={bidi}",
            srv.url + "whoami"]  # fmt: skip
    proc = subprocess.Popen(_private_opt_command(tmp_path, argv), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        typed = False
        deadline = time.monotonic() + 40
        while not srv.handshakes and time.monotonic() < deadline:
            time.sleep(0.3)
            prompts = [w for w, name in _windows(env).items() if name.startswith("Password")]
            if prompts and not typed:
                for args in (["windowfocus", "--sync", prompts[0]],
                             ["type", "--delay", "30", cps_iasecc_cps3.pin],  # type: ignore[attr-defined]
                             ["key", "Return"]):
                    subprocess.run(["xdotool", *args], env=env, check=True, timeout=20)
                typed = True
        assert typed, f"no PIN prompt: {_windows(env)}"
        page = bidi_page(bidi, ready=lambda text: "whoami" in text)
        body, png = asyncio.run(asyncio.wait_for(page, 60))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        xvfb.terminate()
        xvfb.wait(10)
        srv.stop()
    (tmp_path / f"firefox-{which}-login.png").write_bytes(png)
    assert "CLAIRE IASECC-TEST" in body and creds.holder.ps_idnat in body, body[:300]
    assert png[:4] == b"\x89PNG" and srv.handshakes >= 1
