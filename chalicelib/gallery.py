"""The gallery page (GET /): one self-contained HTML file shipped inside chalicelib (so it is
packaged), served with a Content-Security-Policy pinned to its own inline script and style."""

from __future__ import annotations

import hashlib
import html
import re
from base64 import b64encode
from functools import cache
from importlib import resources

from chalicelib.api import Api, Reply
from chalicelib.links import bucket_origins
from chalicelib.settings import Settings


@cache
def gallery_page() -> str:
    """The gallery: one self-contained HTML file shipped inside chalicelib (so it is packaged)."""
    return resources.files("chalicelib").joinpath("gallery.html").read_text(encoding="utf-8")


def gallery_html(settings: Settings) -> str:
    """The page with what it needs to know of this API: the upload limit (to refuse a
    too-large file before asking for a form), whether writes or reads need an API key, and the upload
    prefix (left out of the folder a tile shows)."""
    values = {
        "max-upload-bytes": str(settings.max_source_bytes),
        "write-auth": settings.write_auth,
        "read-auth": settings.read_auth,
        "upload-prefix": settings.upload_prefix,
    }
    page = gallery_page()
    for name, value in values.items():
        tag = f'<meta name="{name}" content="{html.escape(value)}">'
        page = re.sub(f'<meta name="{name}" content="[^"]*">', lambda _, tag=tag: tag, page, count=1)  # type: ignore[misc]
    return page


def gallery_reply(api: Api) -> Reply:
    page = gallery_html(api.settings)
    settings = api.settings
    uploads = bucket_origins(settings.upload_bucket, settings.region, settings.endpoint_url)
    images = bucket_origins(settings.processed_bucket, settings.region, settings.endpoint_url)
    if settings.cdn_domain:
        images = (*images, f"https://{settings.cdn_domain}")
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-cache",
        "Content-Security-Policy": gallery_csp(page, uploads, images),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return Reply(200, page, headers)


@cache
def gallery_csp(page: str, upload_origins: tuple[str, ...] = (), image_origins: tuple[str, ...] = ()) -> str:
    """Only the page's own inline script and style run (pinned by hash); the page talks to the
    API ('self') and POSTs files to the upload bucket, and shows images from the processed
    bucket or the CDN: no other origin, and no plain `http:` (only the local emulator's origin,
    which is http://127.0.0.1:<port>)."""

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join(f"'sha256-{b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        f"img-src {' '.join(("'self'", *image_origins, 'data:', 'blob:'))}; connect-src {' '.join(("'self'", *upload_origins))}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
