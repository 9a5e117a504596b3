"""Views covering what devsecmw must stay transparent to: bodies read every way, uploads,
streaming (sync and async), files, errors, statuses."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt

#: The file the ``file/`` view serves (a real file: the server may use sendfile).
FILE_PATH = __file__


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"home", content_type="text/plain")


def item(request: HttpRequest, pk: int) -> HttpResponse:
    return JsonResponse({"id": pk, "q": request.GET.get("q", "")})


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


@csrf_exempt
def read_stream(request: HttpRequest) -> HttpResponse:
    """Reads the body the streaming way: request.read(n) then line iteration."""
    how = request.GET.get("how", "read")
    if how == "chunks":
        data = b"".join(iter(lambda: request.read(7), b""))
    elif how == "lines":
        data = b"".join(request)
    elif how == "readline":
        data = b"".join(iter(request.readline, b""))
    else:
        data = request.read()
    return HttpResponse(data, content_type="application/octet-stream")


@csrf_exempt
def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.POST.get("q", ""), content_type="text/plain")


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    f = request.FILES["file"]
    digest = hashlib.sha256(f.read()).hexdigest()
    return JsonResponse({"size": f.size, "sha256": digest, "note": request.POST.get("note", "")})


@csrf_exempt
def ignore_body(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ignored", content_type="text/plain")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        for i in range(5):
            yield f"chunk {i}\n".encode()

    return StreamingHttpResponse(gen(), content_type="text/plain")


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"achunk {i}\n".encode()

    return StreamingHttpResponse(gen(), content_type="text/plain")


def stream_fails(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        yield b"partial"
        raise OSError("backend went away")

    return StreamingHttpResponse(gen(), content_type="text/plain")


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(open(FILE_PATH, "rb"), content_type="application/octet-stream")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view failed")


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


def status(request: HttpRequest, code: int) -> HttpResponse:
    return HttpResponse(b"status", status=code, content_type="text/plain")


SQL_ERROR = (
    "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server "
    "version for the right syntax to use near ''1''' at line 1"
)


def sql_error(request: HttpRequest) -> HttpResponse:
    """A database error leaking into the page (streamed with ?stream=1)."""
    if request.GET.get("stream"):
        return StreamingHttpResponse(iter([b"<p>", SQL_ERROR.encode(), b"</p>"]), status=500)
    return HttpResponse(SQL_ERROR, status=500, content_type="text/html")


def not_modified(request: HttpRequest) -> HttpResponse:
    return HttpResponseNotModified()


async def async_echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


def head_ok(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"body of a GET", content_type="text/plain")
    response["X-Extra"] = "1"
    return response


def context_probe(request: HttpRequest) -> HttpResponse:
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return HttpResponse(f"{ctx.trace_id:032x}:{ctx.span_id:016x}".encode(), content_type="text/plain")
