"""pytest plugin of cps-middleware (registered under the ``pytest11`` entry point).

Any project that installs cps-middleware gets its fixtures: a test PKI shaped
like IGC-Santé TEST, SoftHSM-backed CPS test cards, virtual PC/SC cards and
test servers. Each area keeps its fixtures in ``cps_middleware.testing._fixtures_<area>``;
this plugin registers every such module with pytest.
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


def pytest_configure(config: pytest.Config) -> None:
    for name in _fixture_modules():
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(importlib.import_module(name), name)
