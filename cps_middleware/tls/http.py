"""HTTP client helpers around a card context: requests (urllib3) adapter and session.

urllib, httpx (``httpx.Client(verify=ctx)``, ``httpx.AsyncClient(verify=ctx)``)
and aiohttp (``session.get(url, ssl=ctx)``) take the context directly;
requests needs a transport adapter to pass an ``ssl.SSLContext`` down to urllib3.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["requests_adapter", "requests_session"]


def requests_adapter(context: ssl.SSLContext, **kwargs: Any) -> Any:
    """A ``requests`` HTTPAdapter whose connections use *context*.

    ``session.mount("https://", requests_adapter(ctx))``.
    """
    from requests.adapters import HTTPAdapter

    class _CardAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kw: Any) -> None:
            kw["ssl_context"] = context
            super().init_poolmanager(*args, **kw)

        def proxy_manager_for(self, *args: Any, **kw: Any) -> Any:
            kw["ssl_context"] = context
            return super().proxy_manager_for(*args, **kw)

    return _CardAdapter(**kwargs)


def requests_session(context: ssl.SSLContext) -> Any:
    """A ``requests.Session`` with :func:`requests_adapter` mounted for https."""
    import requests

    session = requests.Session()
    session.mount("https://", requests_adapter(context))
    return session
