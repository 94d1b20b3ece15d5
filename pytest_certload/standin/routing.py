"""Go's ServeMux, as far as certctl's router needs it.

certctl registers ``METHOD /path/{id}`` patterns on net/http's ServeMux, so clients see ServeMux's
answers around the handlers: a 307 to the cleaned path for ``//``, ``.`` and ``..``; a plain-text
404 for a path no pattern matches; a 405 with a sorted ``Allow`` (HEAD wherever GET is) for a path
matched with another method. :class:`Router` gives those answers so that app.py's route table can
read like certctl's route registrations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from pytest_certload.standin.config import ROUTES
from pytest_certload.standin.responses import method_not_allowed, not_found

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """``"GET /api/v1/certificates/{id}"``: a ``{name}`` segment matches one non-empty segment.

    ``name`` is the route's name for ``--latency`` / ``--error-rate`` (one of :data:`.config.ROUTES`).
    A GET route also answers HEAD, unless ``head`` is how certctl's GET handler refuses it (certctl
    checks ``r.Method``).
    """

    pattern: str
    name: str
    handler: Handler
    head: Callable[[], web.Response] | None = None
    method: str = field(init=False)
    segments: tuple[str | None, ...] = field(init=False)  # None: a wildcard

    def __post_init__(self) -> None:
        if self.name not in ROUTES:
            raise ValueError(f"route name {self.name!r} is not in config.ROUTES (add it there)")
        method, _, path = self.pattern.partition(" ")
        segments = tuple(None if s.startswith("{") else s for s in path.split("/")[1:])
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "segments", segments)

    def matches(self, parts: list[str]) -> bool:
        """Whether the path segments fit the pattern (the caller has checked that their count does)."""
        for want, part in zip(self.segments, parts, strict=True):
            if want is None:  # a {name} wildcard: any non-empty segment
                if part == "":
                    return False
            elif part != want:
                return False
        return True

    def accepts(self, method: str) -> bool:
        return method == self.method or (method == "HEAD" and self.method == "GET")


class Router:
    """Picks the route for a method and path segments, or ServeMux's 404/405 (or the HEAD refusal)."""

    def __init__(self, *routes: Route) -> None:
        self.routes = routes
        self._by_length: dict[int, list[Route]] = {}
        for route in routes:
            self._by_length.setdefault(len(route.segments), []).append(route)

    def resolve(self, method: str, parts: list[str]) -> Route | web.Response:
        matched = [r for r in self._by_length.get(len(parts), ()) if r.matches(parts)]
        if not matched:
            return not_found()
        for route in matched:
            if route.accepts(method):
                if method == "HEAD" and route.head is not None:
                    return route.head()
                return route
        methods = {r.method for r in matched}
        if "GET" in methods:
            methods.add("HEAD")
        return method_not_allowed(", ".join(sorted(methods)))


def path_segments(request: web.Request) -> list[str]:
    """The path's segments: ServeMux matches the escaped path, handlers then read them decoded."""
    return [unquote(p) for p in request.raw_path.split("?", 1)[0].split("/")[1:]]


def clean_path(path: str) -> str:
    """Go's ServeMux cleanPath: collapse // and resolve . and .., keep a trailing slash."""
    if path == "" or path[0] != "/":
        path = "/" + path
    if "//" not in path and "/." not in path:
        return path
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def redirect_to_clean_path(request: web.Request) -> web.Response | None:
    """ServeMux's 307 to the cleaned path (query kept), or None when the path is clean."""
    cleaned = clean_path(request.path)
    if cleaned == request.path:
        return None
    location = cleaned + (f"?{request.query_string}" if request.query_string else "")
    return web.Response(
        status=307,
        body=f'<a href="{location}">Temporary Redirect</a>.\n\n'.encode(),
        headers={"Location": location, "Content-Type": "text/html; charset=utf-8"},
    )
