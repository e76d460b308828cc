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

The ANS module writes under ``/etc/opt`` and ``/var/opt``; the ``cps_ans_module``
fixture binds throw-away directories over them in a private mount namespace.
A mount namespace belongs to a thread and to the threads it starts afterwards:
a worker thread started before the fixture (a thread pool of an earlier test)
that calls the module would write on the machine. ``cps_private_opt = true``
(ini) makes the namespace at start-up, before any thread, for the whole run.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil

import pytest

import cps_middleware.testing as _testing

__all__ = ["pytest_addoption", "pytest_configure"]


def _fixture_modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules(_testing.__path__, _testing.__name__ + ".")
        if m.name.rsplit(".", 1)[1].startswith("_fixtures_")
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--cps-start-pcscd`` and the ini option ``cps_start_pcscd`` (see the module doc)."""
    group = parser.getgroup("cps-middleware")
    group.addoption(
        "--cps-start-pcscd", action="store_true", default=None,
        help="let the cps_pcscd fixture start pcscd with vpcd readers when none runs",
    )
    parser.addini(
        "cps_private_opt", type="bool", default=False,
        help="(root, Linux) throw-away /etc/opt and /var/opt for the whole run, for the ANS module",
    )
    parser.addini(
        "cps_start_pcscd", type="bool", default=False,
        help="let the cps_pcscd fixture start pcscd with vpcd readers when none runs",
    )
    parser.addini(
        "cps_private_opt", type="bool", default=False,
        help="(root, Linux) throw-away /etc/opt and /var/opt for the whole run, for the ANS module",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register every ``cps_middleware.testing._fixtures_<area>`` module as a plugin;
    with ``cps_private_opt``, make the private ``/etc/opt`` now, before any thread."""
    if config.getini("cps_private_opt"):
        from cps_middleware.errors import TestCardError
        from cps_middleware.testing.ansmodule import private_opt_dirs

        # not root or not Linux: the cps_ans_module fixture skips with the reason
        with contextlib.suppress(TestCardError):
            private_opt_dirs()
    for name in _fixture_modules():
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(importlib.import_module(name), name)
