"""The dashboard: a static single-page app shipped inside the package (engine/api/static),
served at ``/ui/``. No CDN, no build step: hand-written HTML, CSS and JS that call the
same /api/v1 endpoints as any client, with the token the operator types in.

Files are read once when the router is built and served from an explicit allowlist, so
no request path ever reaches the filesystem. A strict Content-Security-Policy allows
only same-origin scripts, styles and connections.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(root: Path = STATIC) -> dict[str, Asset]:
    """Every shipped file with a known type, by its path relative to ``root``."""
    out = {}
    for path in sorted(root.rglob("*")):
        media = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media is not None:
            body = path.read_bytes()
            out[path.relative_to(root).as_posix()] = Asset(body, media, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return out


def router(root: Path = STATIC) -> APIRouter:
    assets = load_assets(root)
    if "index.html" not in assets:
        raise RuntimeError(f"dashboard assets missing in {root}: the package was installed without its data files")

    def send(request: Request, name: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            raise HTTPException(404, "no such dashboard file")
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers={**HEADERS, "ETag": asset.etag})
        return Response(asset.body, media_type=asset.media_type, headers={**HEADERS, "ETag": asset.etag})

    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    async def index(request: Request) -> Response:
        """The single page; the hash (``#/runs/<id>``, ``#/targets``) picks the view."""
        return send(request, "index.html")

    async def asset(request: Request, name: str) -> Response:
        return send(request, f"assets/{name}")

    r = APIRouter(include_in_schema=False)
    r.add_api_route("/", home, methods=["GET"])
    r.add_api_route("/ui", home, methods=["GET"])
    r.add_api_route("/ui/", index, methods=["GET"])
    r.add_api_route("/ui/assets/{name}", asset, methods=["GET"])
    return r
