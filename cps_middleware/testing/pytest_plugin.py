"""pytest plugin of cps-middleware (registered under the ``pytest11`` entry point).

Any project that installs cps-middleware gets its fixtures: a test PKI shaped
like IGC-Santé TEST, SoftHSM-backed CPS test cards, virtual PC/SC cards and
test servers. Each area keeps its fixtures in ``cps_middleware.testing._fixtures_<area>``;
this plugin registers every such module with pytest.

Every fixture is named ``cps_...``. Nothing starts a daemon unless asked: the
``cps_pcscd`` fixture (and the virtual-card fixtures built on it) adopts a
running pcscd, and starts one for the session only when the test requests it
AND one of these says so — the ini option ``cps_start_pcscd = true``, the
command-line option ``--cps-start-pcscd``, or ``CPS_START_PCSCD=1`` in the
environment. Otherwise such a test is skipped with the reason.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import cps_middleware.testing as _testing


def _fixture_modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules(_testing.__path__, _testing.__name__ + ".")
        if m.name.rsplit(".", 1)[1].startswith("_fixtures_")
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cps-middleware")
    group.addoption(
        "--cps-start-pcscd", action="store_true", default=None,
        help="let the cps_pcscd fixture start pcscd with vpcd readers when none runs",
    )
    parser.addini(
        "cps_start_pcscd", type="bool", default=False,
        help="let the cps_pcscd fixture start pcscd with vpcd readers when none runs",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name in _fixture_modules():
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(importlib.import_module(name), name)
