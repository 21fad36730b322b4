"""What maskops' own web servers (the review page, the scoring server) check on every request before any work."""

from __future__ import annotations

from starlette.requests import Request


class Refused(Exception):
    """A request the server will not serve: its HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def require_json(request: Request) -> None:
    """JSON only: a form or text/plain body can be sent cross-site without a CORS preflight."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Refused(415, f"Content-Type must be application/json, got {media or 'none'}")


def own_origin(request: Request) -> str:
    """The origin of a page this server served itself."""
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (Content-Length is checked first, then counted)."""
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"request body over the limit of {limit} bytes")
    return bytes(body)
