"""Driving Firefox over WebDriver BiDi, which Firefox has built in (no geckodriver,
nothing downloaded): the browser tests' one client."""

from __future__ import annotations

from collections.abc import Callable


async def bidi_page(
    port: int, *, url: str | None = None, ready: Callable[[str], bool] = lambda text: True
) -> tuple[str, bytes]:
    """Over the BiDi endpoint on ``port``: open ``url`` (else the page Firefox shows),
    wait until the page is complete and ``ready(text)`` (20 s at most), and return its
    text and a screenshot (PNG)."""
    import asyncio
    import base64

    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                ws = await http.ws_connect(f"ws://127.0.0.1:{port}/session")
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("Firefox's WebDriver BiDi endpoint did not open")
        seq = 0

        async def call(method: str, **params: object) -> dict[str, object]:
            nonlocal seq
            seq += 1
            await ws.send_json({"id": seq, "method": method, "params": params})
            while True:
                msg = await ws.receive_json()
                if msg.get("id") == seq:
                    assert msg.get("type") != "error", msg
                    result: dict[str, object] = msg["result"]
                    return result

        await call("session.new", capabilities={})
        ctx = (await call("browsingContext.getTree"))["contexts"][0]["context"]  # type: ignore[index]
        if url is not None:
            await call("browsingContext.navigate", context=ctx, url=url, wait="complete")
        for _ in range(100):
            state = await call("script.evaluate", expression="document.readyState + ' ' + "
                               "document.body.innerText", target={"context": ctx},
                               awaitPromise=False)  # fmt: skip
            text = str(state["result"]["value"])  # type: ignore[index]
            if text.startswith("complete ") and ready(text):
                break
            await asyncio.sleep(0.2)
        shot = await call("browsingContext.captureScreenshot", context=ctx)
        await call("session.end")
        await ws.close()
        return text.removeprefix("complete "), base64.b64decode(str(shot["data"]))
