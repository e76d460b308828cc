"""cps_middleware.pkcs11 without a token: module discovery, the CKR table, PIN values."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path

import pkcs11.exceptions as px
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cps_middleware.errors import (
    CardRemoved,
    CpsError,
    ModuleLoadError,
    PinFormatError,
    PinIncorrect,
    Pkcs11Error,
    TokenUnusable,
)
from cps_middleware.pkcs11 import (
    CKR,
    ENV_VAR,
    Pin,
    Puk,
    _discovery,
    candidate_paths,
    diagnose,
    load_module,
)
from cps_middleware.pkcs11._ckr import code_name, code_of, error_for

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def _cc(tmp: Path, name: str, source: str, *extra: str) -> Path:
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / f"lib{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src), *extra],
                   check=True, capture_output=True)  # fmt: skip
    return out


def _elf32_arm(path: Path) -> Path:
    header = bytearray(52)
    header[:7] = b"\x7fELF\x01\x01\x01"  # 32-bit, little endian
    header[16:18] = (3).to_bytes(2, "little")  # ET_DYN
    header[18:20] = (40).to_bytes(2, "little")  # EM_ARM
    path.write_bytes(bytes(header))
    return path


# --- discovery ---------------------------------------------------------------------------


def test_candidates_explicit_then_env_then_ans_then_opensc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert [c.source for c in candidate_paths("/x.so")] == ["explicit"]
    assert [c.path for c in candidate_paths(None, {ENV_VAR: "/env.so"})] == ["/env.so"]
    chain = candidate_paths(None, {})
    sources = [c.source for c in chain]
    assert sources == sorted(sources, key=["ans", "opensc"].index) and set(sources) == {
        "ans", "opensc"}  # fmt: skip
    paths = [c.path for c in chain]
    assert "/opt/santesocial/CPS/lib/libcps3_pkcs11_lux.so" in paths
    assert any(re.fullmatch(r"/usr/lib/[a-z0-9_]+-linux-gnu/opensc-pkcs11\.so", p) for p in paths)


@needs_gcc
def test_every_failure_reason_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "nope.so")
    arm = str(_elf32_arm(tmp_path / "arm.so"))
    not_p11 = str(_cc(tmp_path, "plain", "int nothing(void) { return 0; }\n"))
    dep = _cc(tmp_path, "cpsdep", "int dep(void) { return 1; }\n")
    needs_dep = str(_cc(tmp_path, "needsdep",
                        "int dep(void);\nint C_GetFunctionList(void **p) { return dep(); }\n",
                        f"-L{tmp_path}", "-lcpsdep"))  # fmt: skip
    dep.unlink()
    bad_init = str(_cc(tmp_path, "badinit", """
typedef unsigned long CK_RV;
typedef CK_RV (*fn)(void *);
static CK_RV init(void *a) { (void)a; return 5; /* CKR_GENERAL_ERROR */ }
static struct { unsigned char v[2]; fn f[80]; } list = { {2, 40}, { init } };
CK_RV C_GetFunctionList(void **pp) { *pp = &list; return 0; }
"""))  # fmt: skip
    assert diagnose(missing) == "missing"
    assert diagnose(str(tmp_path)) == "is a directory"
    assert diagnose(arm).startswith("wrong architecture: 32-bit ARM")  # type: ignore[union-attr]
    assert diagnose(not_p11) == "not a PKCS#11 module: no C_GetFunctionList"
    assert diagnose(needs_dep).startswith("missing dependency: libcpsdep.so")  # type: ignore[union-attr]

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(_discovery, "ANS_PATHS", {"linux": (missing, arm)})
    monkeypatch.setattr(_discovery, "OPENSC_PATHS", {"linux": (not_p11, needs_dep, bad_init)})
    with pytest.raises(ModuleLoadError) as e:
        load_module()
    reasons = dict(e.value.attempts)
    assert list(reasons) == [missing, arm, not_p11, needs_dep, bad_init]
    assert reasons[bad_init] == "C_Initialize failed: CKR_GENERAL_ERROR"
    for path in reasons:
        assert path in str(e.value)


def test_explicit_path_and_env_are_never_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModuleLoadError) as e:
        load_module("/nonexistent/module.so")
    assert e.value.attempts == (("/nonexistent/module.so", "missing"),)
    monkeypatch.setenv(ENV_VAR, "/nonexistent/env.so")
    with pytest.raises(ModuleLoadError) as e2:
        load_module()
    assert e2.value.attempts == (("/nonexistent/env.so", "missing"),)
    assert "CPS_PKCS11_MODULE" in (e2.value.hint or "")


# --- CKR table -------------------------------------------------------------------------


def test_table_covers_every_python_pkcs11_error_class() -> None:
    not_codes = {"PKCS11Error", "NoSuchKey", "NoSuchToken", "MultipleObjectsReturned",
                 "MultipleTokensReturned"}  # fmt: skip
    for name, cls in inspect.getmembers(px, inspect.isclass):
        if issubclass(cls, px.PKCS11Error) and name not in not_codes:
            code = code_of(cls())
            assert code is not None and code in CKR, name


def test_table_entries_are_well_formed() -> None:
    names = [info.name for info in CKR.values()]
    assert len(names) == len(set(names)) and len(CKR) >= 90
    for code, info in CKR.items():
        assert info.name.startswith("CKR_") and issubclass(info.error, CpsError) and info.hint
        err = error_for(code, function="C_Sign", module="/m.so")
        assert (err.code, err.code_name, err.function, err.module) == (code, info.name, "C_Sign",
                                                                      "/m.so")  # fmt: skip
    assert CKR[0xA0].error is PinIncorrect and CKR[0xE0].error is CardRemoved
    assert CKR[0x32].error is CardRemoved


def test_ans_vendor_codes_are_named() -> None:
    for code in (0x80000001, 0x80000002):
        err = error_for(code, function="C_OpenSession", module="/opt/santesocial/x.so")
        assert isinstance(err, TokenUnusable)
        assert err.code_name is not None and "ANS" in err.code_name
    assert "VENDOR_DEFINED+0x1234" in code_name(0x80001234)
    assert type(error_for(0x80001234, function="C_Login", module=None)) is Pkcs11Error
    unmapped = px.PKCS11Error("Unmapped error code 0x80000001")
    assert code_of(unmapped) == 0x80000001
    assert code_of(px.PKCS11Error("Initialisation error (already initialized). x")) == 0x191
    assert code_of(ValueError()) is None


def test_error_text_names_function_code_module_and_hint() -> None:
    err = error_for(0xA4, function="C_Login", module="/usr/lib64/libcps3_pkcs11_lux.so")
    text = str(err)
    assert text.startswith("C_Login: CKR_PIN_LOCKED (0xA4): ")
    assert "/usr/lib64/libcps3_pkcs11_lux.so" in text and "unblock" in text


# --- PIN values ------------------------------------------------------------------------


@given(st.from_regex(r"[0-9]{4,8}", fullmatch=True))
def test_valid_pins_never_show_their_digits(digits: str) -> None:
    pin = Pin(digits)
    assert len(pin) == len(digits)
    for text in (repr(pin), str(pin), f"{pin}", f"{pin!r:>20}"):
        assert not any(ch.isdigit() for ch in text)
    assert pin == Pin(digits) and pin != Pin("0000" if digits != "0000" else "1111")


@given(
    st.one_of(
        st.from_regex(r"[0-9]{3}|[0-9]{9,16}", fullmatch=True),
        st.text(min_size=1).map(lambda s: s + "§7"),
    )
)  # "§" is in no message
def test_invalid_pins_are_refused_without_echo(text: str) -> None:
    with pytest.raises(PinFormatError) as e:
        Pin(text)
    assert text not in str(e.value) and text not in repr(e.value.args)


def test_pin_rules() -> None:
    with pytest.raises(PinFormatError):
        Pin("١٢٣٤")  # Arabic-Indic digits are digits for str.isdigit, not for a card
    with pytest.raises(PinFormatError):
        Pin(1234)  # type: ignore[arg-type]
    with pytest.raises(PinFormatError):
        Puk("1234567")
    assert repr(Puk("12345678")) == "Puk(<redacted>)"
    assert not hasattr(Pin("1234"), "__dict__")


def test_falls_back_to_opensc_when_no_ans_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    chain = candidate_paths(None, {})
    if any(c.source == "ans" and diagnose(c.path) is None for c in chain):
        pytest.skip("the ANS Cryptolib CPS is installed here: it comes first")
    opensc = [c.path for c in chain if c.source == "opensc" and diagnose(c.path) is None]
    if not opensc:
        pytest.skip("OpenSC's PKCS#11 module is not installed")
    module = load_module()
    assert module.manufacturer == "OpenSC Project"  # (source: whoever loaded it first)
    assert module.resolved_path == str(Path(opensc[0]).resolve())
    assert all(r.slot_id >= 0 for r in module.scan_slots(token_present=False))
