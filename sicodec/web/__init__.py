"""A small local web page to try the codec: upload an image (or pick a sample), choose model, level, fill mode and
seed, and compare the reconstruction with the original and with JPEG, WebP and AVIF at the same size; open a .sic
file and step through its levels. `sicodec serve` runs it; `create_app` is the FastAPI app (needs the `web` extra).
"""

from __future__ import annotations

import socket

from ..errors import SicodecError

__all__ = ["create_app", "serve"]


def _require() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise SicodecError(f"the web page needs the web extra ({e.name} is missing): pip install 'sicodec[web]'") from None


def create_app(*args, **kwargs):
    """See `sicodec.web.app.create_app`."""
    _require()
    from .app import create_app as make

    return make(*args, **kwargs)


def serve(host: str = "127.0.0.1", port: int = 8000, models=None, announce=None, **limits) -> None:
    """Serve the page until interrupted. Port 0 picks a free port; the address is announced (printed) once listening."""
    _require()
    announce = announce or (lambda line: print(line, flush=True))
    import uvicorn

    app = create_app(models, **limits)  # unknown models fail here, before anything listens
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise SicodecError(f"cannot listen on {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise SicodecError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                announce(f"sicodec: serving on http://{shown}:{bound}/ (Ctrl-C to stop)")
                if host not in ("127.0.0.1", "localhost", "::1"):
                    announce(f"sicodec: warning: listening on {host}, so other machines can reach this page")

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    Server(config).run(sockets=[sock])
