"""The demo's shop: a small Starlette app behind devsecmw, with the bugs real apps have.

Some handlers fail on hostile input the way careless code does (a search that
builds SQL by hand, a template that formats user text, a hardened XML parser
that raises on a DTD), so that some attacks end in a 500: the
``attack_5xx`` correlation the summary shows.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from opentelemetry import metrics, trace
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..asgi import SecurityMiddleware

PRODUCTS = {
    "blue-shirt": {"name": "Blue cotton shirt", "price": 19.99},
    "red-scarf": {"name": "Red wool scarf", "price": 24.50},
    "green-hat": {"name": "Green felt hat", "price": 15.00},
}
USERS = {1: {"id": 1, "name": "Alice", "role": "admin"}, 2: {"id": 2, "name": "Bob", "role": "customer"}}
# A toy credential store for a toy shop: the login route needs something to compare with.
ACCOUNTS = {"alice": "wonderland"}
FILES = {"terms.txt": "Terms of sale: be nice.", "shipping.txt": "We ship on Tuesdays."}
PAGES = {"about": "<h1>About us</h1>", "contact": "<h1>Contact</h1>"}


class DatabaseError(Exception):
    """What the demo's hand-built SQL raises on a stray quote."""


async def _form(request: Request) -> dict[str, Any]:
    # Parsed here rather than with request.form(), which needs python-multipart:
    # the demo runs on the demo extra alone.
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


async def home(request: Request) -> Response:
    return HTMLResponse("<h1>devsecmw demo shop</h1><form action=/search><input name=q></form>")


async def search(request: Request) -> Response:
    q = request.query_params.get("q", "")
    # Deliberate bug: the query is "built" by concatenation, so a quote breaks it (a 500).
    sql = f"SELECT name FROM products WHERE name LIKE '%{q}%'"
    if sql.count("'") % 2:
        raise DatabaseError(f"unrecognized token near {q[:20]!r}")
    hits = [p["name"] for p in PRODUCTS.values() if q.lower() in str(p["name"]).lower()]
    return JSONResponse({"q": q, "results": hits})


async def list_users(request: Request) -> Response:
    role = request.query_params.get("role")
    return JSONResponse([u for u in USERS.values() if role is None or u["role"] == role])


async def get_user(request: Request) -> Response:
    user = USERS.get(request.path_params["user_id"])
    if user is None:
        return JSONResponse({"error": "no such user"}, status_code=404)
    return JSONResponse(user)


async def get_product(request: Request) -> Response:
    product = PRODUCTS.get(request.path_params["slug"])
    if product is None:
        return JSONResponse({"error": "no such product"}, status_code=404)
    return JSONResponse(product)


async def create_order(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("application/json"):
        doc = await request.json()  # invalid JSON raises: a 500, as in many real handlers
    else:
        doc = await _form(request)
    sku = doc.get("sku")
    if sku not in PRODUCTS:
        return JSONResponse({"error": "unknown sku"}, status_code=422)
    return JSONResponse({"order": 1001, "sku": sku, "qty": int(doc.get("qty", 1))}, status_code=201)


async def add_comment(request: Request) -> Response:
    doc = await request.json()
    return JSONResponse({"id": 7, "length": len(str(doc.get("text", "")))}, status_code=201)


async def login(request: Request) -> Response:
    if request.method == "GET":
        return HTMLResponse("<form method=post><input name=username><input name=password></form>")
    if request.headers.get("content-type", "").startswith("application/json"):
        doc: dict[str, Any] = await request.json()
    else:
        doc = await _form(request)
    if ACCOUNTS.get(str(doc.get("username"))) != doc.get("password"):
        return JSONResponse({"error": "invalid credentials"}, status_code=401)
    return JSONResponse({"welcome": doc["username"]})


async def read_file(request: Request) -> Response:
    name = request.query_params.get("name", "")
    if "/" in name:
        # The demo's "storage" only has flat names; a path ends in an unhandled error.
        raise FileNotFoundError(name)
    text = FILES.get(name)
    return PlainTextResponse(text or "not found", status_code=200 if text else 404)


async def page(request: Request) -> Response:
    html = PAGES.get(request.query_params.get("name", ""))
    return HTMLResponse(html or "<h1>Not found</h1>", status_code=200 if html else 404)


async def preview(request: Request) -> Response:
    url = request.query_params.get("url", "")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"unsupported URL scheme in {url[:30]!r}")
    # The demo never fetches anything: an SSRF attempt only shows up in telemetry.
    return JSONResponse({"url": url, "title": "(previews are disabled in the demo)"})


_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_TEMPLATE_VARS = {"shop": "the demo shop"}


async def greeting(request: Request) -> Response:
    name = request.query_params.get("name", "friend")
    # Deliberate bug: user text is pasted into the template before rendering, and the
    # "engine" is strict about unknown names (KeyError, a 500), like Jinja's StrictUndefined.
    template = "Hello, " + name + ", welcome to {{ shop }}!"
    return PlainTextResponse(_PLACEHOLDER.sub(lambda m: _TEMPLATE_VARS[m.group(1)], template))


async def ping(request: Request) -> Response:
    host = request.query_params.get("host", "")
    if not all(c.isalnum() or c in ".:-" for c in host):
        raise ValueError("invalid host")  # unhandled: the route answers 500
    return JSONResponse({"host": host, "alive": True})


_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _arith(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_arith(node.left), _arith(node.right)))
    raise ValueError(f"unsupported expression: {type(node).__name__}")


async def calc(request: Request) -> Response:
    # Arithmetic only, never eval(): anything else raises, and the route answers 500.
    expr = request.query_params.get("expr", "0")
    return JSONResponse({"result": round(_arith(ast.parse(expr, mode="eval")), 2)})


async def report(request: Request) -> Response:
    fmt = request.query_params.get("format", "json")
    if fmt != "json":
        raise NotImplementedError(f"report format {fmt!r}")
    return JSONResponse({"year": request.path_params["year"], "orders": 1234})


async def import_xml(request: Request) -> Response:
    body = await request.body()
    if b"<!DOCTYPE" in body.upper():
        # What a hardened parser (defusedxml) does with a DTD: refuse, by raising.
        raise ValueError("DTDs are forbidden")
    root = ElementTree.fromstring(body)
    return JSONResponse({"imported": len(root)})


async def export_csv(request: Request) -> Response:
    async def rows() -> AsyncIterator[bytes]:
        yield b"sku,name,price\n"
        for sku, p in PRODUCTS.items():
            yield f"{sku},{p['name']},{p['price']}\n".encode()

    return StreamingResponse(rows(), media_type="text/csv")


ROUTES = [
    Route("/", home),
    Route("/search", search),
    Route("/api/users", list_users),
    Route("/api/users/{user_id:int}", get_user),
    Route("/api/products/{slug}", get_product),
    Route("/api/orders", create_order, methods=["POST"]),
    Route("/api/comments", add_comment, methods=["POST"]),
    Route("/api/preview", preview),
    Route("/api/calc", calc),
    Route("/api/reports/{year:int}", report),
    Route("/api/import", import_xml, methods=["POST"]),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/files", read_file),
    Route("/page", page),
    Route("/greeting", greeting),
    Route("/tools/ping", ping),
    Route("/export.csv", export_csv),
]


def build_app(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    **options: Any,
) -> Starlette:
    """The demo shop with devsecmw added the way a user adds it."""
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SecurityMiddleware,  # type: ignore[arg-type]
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                **options,
            )
        ],
    )


__all__ = ["ROUTES", "DatabaseError", "build_app"]
