"""The package facade: small, typed, lazy."""

from __future__ import annotations

import subprocess
import sys

import cps_middleware as cps


def test_every_public_name_resolves() -> None:
    for name in cps.__all__:
        assert getattr(cps, name) is not None, name


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, cps_middleware\n"
        "heavy = [m for m in ('smartcard', 'pkcs11', 'numpy', 'cps_middleware._bridge')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        cps.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_errors_are_one_tree() -> None:
    from cps_middleware import errors

    classes = [getattr(errors, n) for n in errors.__all__]
    assert all(issubclass(c, errors.CpsError) for c in classes)
    err = errors.PinIncorrect("C_Login failed", tries_left=2, function="C_Login",
                              code=0xA0, code_name="CKR_PIN_INCORRECT", module="/x.so")
    text = str(err)
    assert "C_Login" in text and "CKR_PIN_INCORRECT (0xA0)" in text and "2 tries left" in text
    assert err.hint
