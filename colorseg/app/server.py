"""What the app's web server refuses before gradio sees a request, and the launch settings with it.

:func:`protect` makes a demo's ``launch()`` serve with all of it, so that ``python app.py``, a
Space (which runs app.py) and the tests start the same server:

- request bodies other than file uploads are capped at :data:`MAX_BODY_BYTES`;
- the file route (``/gradio_api/file=PATH``) answers only for paths inside the app's own
  folders, decided from the path's text before anything looks at the disk;
- uploads are capped at :data:`MAX_UPLOAD` by gradio itself;
- gradio's monitoring dashboard (``/monitoring``, unauthenticated) is off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from colorseg.app.uploads import READABLE, ReadableFiles

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Photos are capped at 4096 px anyway: gradio refuses uploads over 50 MB before it stores them.
MAX_UPLOAD = "50mb"
# Every request body but a file upload is an event's JSON: its settings and references to uploaded
# files, a few kB (pictures travel only as uploads: data: URLs are refused). 1 MiB leaves room for
# hundreds of times that; an 80 MB JSON body was accepted, parsed and held in memory before.
MAX_BODY_BYTES = 1 << 20
# gradio's upload route streams multipart bodies to disk under its own cap (MAX_UPLOAD).
_UPLOAD_ROUTE = re.compile(r"/gradio_api/upload/?")
# The file route and its deprecated spelling (gradio.routes: /file={path_or_url}, /file/{path}).
_FILE_ROUTE = re.compile(r"/gradio_api/file(?:=|/)(?P<path>.*)", re.DOTALL)

BODY_TOO_LARGE = (
    f"Request body too large: outside file uploads this app accepts at most "
    f"{MAX_BODY_BYTES // 1024} kB. Upload pictures as files."
)
FILE_NOT_SERVED = "File not served."  # the same answer whether the file exists or not


def _route(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyCap:
    """ASGI middleware: a request body larger than ``max_bytes`` gets 413, unless it is a file upload.

    The declared Content-Length is refused at once; a body sent without one (chunked) is counted
    as it arrives and refused as soon as it passes the cap. Bodies within it are read here and
    handed on whole (at most ``max_bytes`` held per request).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _UPLOAD_ROUTE.fullmatch(_route(scope)):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _answer(send, 413, BODY_TOO_LARGE)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return None
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await _answer(send, 413, BODY_TOO_LARGE)
            more = message.get("more_body", False)
        whole = {"type": "http.request", "body": body, "more_body": False}
        handed = False

        async def replay() -> Message:
            nonlocal handed
            if handed:
                return await receive()  # after the body: the disconnect a streaming response waits for
            handed = True
            return whole

        return await self.app(scope, replay, send)


class FileRouteGuard:
    """ASGI middleware: the file route serves only paths inside the app's own folders (gradio's
    upload/cache folder, where uploads and results live, and the example photos), decided from the
    path's text alone (:meth:`ReadableFiles.lexically_allows`). gradio's own handler looks the path
    up on disk before it checks it, and a file that exists anywhere on the machine answered
    measurably later than one that does not: an oracle for any path. Refused paths never reach it;
    gradio's check, which resolves links, still runs behind this one for the rest."""

    def __init__(self, app: ASGIApp, readable: ReadableFiles = READABLE):
        self.app, self.readable = app, readable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _FILE_ROUTE.fullmatch(_route(scope))
            if match and not self.readable.lexically_allows(match.group("path")):
                return await _answer(send, 403, FILE_NOT_SERVED)
        return await self.app(scope, receive, send)


def protect(demo: gr.Blocks, readable: ReadableFiles = READABLE, css: str = "") -> gr.Blocks:
    """Make ``demo.launch(...)`` serve with this module's protections whatever the caller passes:
    the two middlewares, the upload cap (unless given) and no monitoring dashboard; and with the
    app's stylesheet ``css`` before any the caller adds (gradio 6 takes css in launch(), no longer
    in gr.Blocks)."""
    launch = demo.launch

    def protected_launch(*args: Any, **kwargs: Any) -> Any:
        kwargs["css"] = "\n".join(part for part in (css, kwargs.get("css")) if part) or None
        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        app_kwargs["middleware"] = [
            *app_kwargs.get("middleware", ()),
            Middleware(FileRouteGuard, readable=readable),
            Middleware(BodyCap),
        ]
        kwargs.update(app_kwargs=app_kwargs, enable_monitoring=False)
        kwargs.setdefault("max_file_size", MAX_UPLOAD)
        return launch(*args, **kwargs)

    demo.launch = protected_launch  # on the instance, as uploads.photo_input does: no gradio subclass
    return demo
