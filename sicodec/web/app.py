"""The HTTP side of the web page: a FastAPI app over a `Workspace`.

    GET  /                              the page (static HTML, JS and CSS from this package; nothing from elsewhere)
    GET  /static/{app.js,style.css,favicon.svg}   the page's script, style and icon (a fixed table, not a folder)
    GET  /api/info                      models, samples, limits, which classic codecs work here
    POST /api/jobs?model=&seed=&filename=   body: the raw bytes of an image or a .sic file -> a job
    POST /api/jobs?sample=NAME&model=&seed= a job from a bundled sample (empty body)
    GET  /api/jobs/{id}                 the job's summary (levels and their sizes)
    GET  /api/jobs/{id}/view?level=&mode=&seed=   reconstruction at a level: bytes, bpp, PSNR, LPIPS, image URL
    GET  /api/jobs/{id}/classic?level=  JPEG, WebP and AVIF at the size of that level
    GET  /api/jobs/{id}/images/{key}.png, /api/jobs/{id}/original.png
    GET  /api/jobs/{id}/download?level=&seed=     the .sic file at that level

Uploads are the request body itself (no multipart form), read in chunks and refused with 413 as soon as they pass
the limit, so nothing is spooled to disk. Errors are JSON `{"error": "one line"}` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ModelError, SicodecError
from .jobs import Limits, WebError, Workspace, installed_models, status_of

STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; "
                               "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(models=None, *, max_upload_bytes: int = Limits.max_upload_bytes, max_pixels: int = Limits.max_pixels,
               max_jobs: int = Limits.max_jobs, temp_root: str | Path | None = None) -> FastAPI:
    """The web app. `models`: registered names or .safetensors files (default: every installed model).
    Its temporary folder is made when the app starts (`app.state.workspace.dir`) and removed when it stops."""
    limits = Limits(max_upload_bytes=int(max_upload_bytes), max_pixels=int(max_pixels), max_jobs=int(max_jobs))
    if min(limits.max_upload_bytes, limits.max_pixels, limits.max_jobs) < 1:
        raise SicodecError("the upload, pixel and job limits must be positive")
    choices = installed_models(models)  # unknown names and unreadable weights fail here, before serving
    if not choices:
        raise ModelError("no model weights are installed; the page needs at least one model "
                         "(see `sicodec models`, or give a weights file with --model)")
    pages = {name: _static(name) for name in STATIC}
    index = _static("index.html")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        workspace = await run_in_threadpool(Workspace, choices, limits, temp_root)
        app.state.workspace = workspace
        try:
            yield
        finally:
            workspace.close()

    app = FastAPI(title="sicodec", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(WebError)
    async def web_error(request: Request, e: WebError):
        return _error(e.status, str(e))

    @app.exception_handler(SicodecError)
    async def sicodec_error(request: Request, e: SicodecError):
        return _error(status_of(e), str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, e: RequestValidationError):
        errors = e.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(400, f"invalid {where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception):  # a bug: still one line for the page
        return _error(500, f"internal error: {type(e).__name__}: {e} (please report this)")

    def ws(request: Request) -> Workspace:
        return request.app.state.workspace

    @app.get("/", include_in_schema=False)
    async def page():
        return Response(index, media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name not in STATIC:
            raise WebError(404, "not found")
        return Response(pages[name], media_type=STATIC[name])

    @app.get("/api/info")
    async def info(request: Request):
        return await run_in_threadpool(ws(request).info)

    @app.post("/api/jobs")
    async def create_job(request: Request, model: str | None = None, seed: int = 0, filename: str | None = None,
                         sample: str | None = None):
        w = ws(request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_upload_bytes:
            raise WebError(413, f"upload of {int(declared)} bytes exceeds the limit of {limits.max_upload_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_upload_bytes:
                raise WebError(413, f"upload exceeds the limit of {limits.max_upload_bytes} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        if sample is not None:
            if data:
                raise WebError(400, "send either a sample name or a file, not both")
            job = await run_in_threadpool(w.create_sample_job, sample, model, seed)
        else:
            job = await run_in_threadpool(w.create_job, data, model, seed, filename)
        return JSONResponse(job.summary(), status_code=201)

    @app.get("/api/jobs/{job_id}")
    async def job_summary(request: Request, job_id: str):
        return ws(request).job(job_id).summary()

    @app.get("/api/jobs/{job_id}/view")
    async def view(request: Request, job_id: str, level: int | None = None, mode: str | None = None,
                   seed: int | None = None):
        w = ws(request)
        return await run_in_threadpool(w.view, w.job(job_id), level, mode, seed)

    @app.get("/api/jobs/{job_id}/classic")
    async def classic(request: Request, job_id: str, level: int | None = None):
        w = ws(request)
        job = w.job(job_id)
        cancel = threading.Event()

        async def watch():  # the search takes seconds: stop it when the page has gone or moved on
            while not cancel.is_set():
                if await request.is_disconnected():
                    cancel.set()
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        try:
            return await run_in_threadpool(w.classic, job, level, cancel.is_set)
        finally:
            cancel.set()
            watcher.cancel()

    @app.get("/api/jobs/{job_id}/original.png")
    async def original(request: Request, job_id: str):
        job = ws(request).job(job_id)
        if job.original is None:
            raise WebError(404, "an opened .sic file has no original image")
        return FileResponse(job.dir / "original.png", media_type="image/png")

    @app.get("/api/jobs/{job_id}/images/{key}.png")
    async def image(request: Request, job_id: str, key: str):
        w = ws(request)
        return FileResponse(w.image_path(w.job(job_id), key), media_type="image/png")

    @app.get("/api/jobs/{job_id}/download")
    async def download(request: Request, job_id: str, level: int | None = None, seed: int | None = None):
        w = ws(request)
        data, name = await run_in_threadpool(w.download, w.job(job_id), level, seed)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return app
