"""Falcon, zero code against by hand: time per request of a WSGI ``falcon.App`` called directly
(no server), plain, wrapped by ``devsecmw.falcon.instrument``, and wrapped by the instrumentor
(which finds its middleware in the app's list at each request). Prints ratios to the plain app,
measured in one run (run from the repository root: ``python benchmarks/instrument_falcon.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import falcon
from _common import GET_QUERY, providers
from falcon import testing

import devsecmw.falcon
from devsecmw.instrumentation import DevsecmwInstrumentor

ROUNDS = 2000


class Items:
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: int) -> None:
        resp.media = {"id": item_id}


def _app() -> falcon.App:
    app = falcon.App()
    app.add_route("/items/{item_id:int}", Items())
    return app


def _per_request(app: Callable[..., Any]) -> float:
    environ = testing.create_environ(path="/items/3", query_string=GET_QUERY.decode())

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def once() -> None:
        body = app(dict(environ), start_response)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    for _ in range(200):  # warm up
        once()
    best = float("inf")
    for _ in range(5):  # the best of five: the least disturbed by the machine
        start = time.perf_counter()
        for _ in range(ROUNDS):
            once()
        best = min(best, (time.perf_counter() - start) / ROUNDS)
    return best


def main() -> None:
    tracer_provider, meter_provider = providers()
    options = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    plain = _per_request(_app())
    by_hand = _per_request(devsecmw.falcon.instrument(_app(), **options))
    instrumentor = DevsecmwInstrumentor()
    instrumentor.instrument(frameworks="falcon", **options)
    try:
        zero_code = _per_request(_app())
    finally:
        instrumentor.uninstrument()
    print(f"plain falcon.App     {plain * 1e6:8.1f} us/request  1.00")
    print(f"by hand (instrument) {by_hand * 1e6:8.1f} us/request  {by_hand / plain:.2f}")
    print(f"zero code            {zero_code * 1e6:8.1f} us/request  {zero_code / plain:.2f}")
    print(f"zero code / by hand  {zero_code / by_hand:.3f}")


if __name__ == "__main__":
    main()
