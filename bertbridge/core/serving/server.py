"""``bertbridge serve``: the SageMaker container contract (``GET /ping``, ``POST /invocations``)
on Starlette + uvicorn, with micro-batching of concurrent requests.

Concurrent requests are queued and predicted together: the batcher takes what is
waiting (up to ``max_batch`` inputs, waiting at most ``max_wait_ms`` for more) and
runs one forward pass in a worker thread, so the event loop keeps answering
``/ping`` and accepting requests meanwhile. Bodies over ``max_body_bytes`` get 413;
headers slower than ``header_timeout_s`` get the connection closed and bodies slower than
``body_timeout_s`` a 408 (so slow or unfinished requests cannot pile up connections);
every client mistake gets a 4xx JSON error; SIGTERM/SIGINT stop accepting new
connections, finish the requests in flight, print ``{"event": "stopped"}`` and exit
(uvicorn then re-raises the signal, so the exit status says which one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

from bertbridge.core.errors import BertbridgeError
from bertbridge.core.serving import protocol as serving

log = logging.getLogger("bertbridge.server")
PredictFn = Callable[[list], list[dict[str, Any]]]
DRAIN_LIMIT = 64 * 1024 * 1024  # oversized bodies up to this are read (and dropped) so the client sees the 413


@dataclass(frozen=True)
class ServerConfig:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 5 * 1024 * 1024
    header_timeout_s: float = 10.0
    """A connection whose request line and headers are not complete this long after it opened (or
    after its previous response) is closed."""
    body_timeout_s: float = 30.0
    """A body still arriving this long after its headers (a chunked body that never ends, a
    Content-Length longer than what is sent) gets 408 and the connection is closed."""


class MicroBatcher:
    """Collects concurrent requests' inputs and predicts them in one call."""

    def __init__(self, predict: PredictFn, max_batch: int, max_wait_ms: float) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.batches = 0  # predict calls made (for tests and /ping diagnostics)
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        await self.queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, inputs: list) -> list[dict[str, Any]]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            group = [first]
            size = len(first[0])
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                group.append(item)
                size += len(item[0])
            await self._predict(group)
            for _ in group:
                self.queue.task_done()

    async def _predict(self, group: list) -> None:
        flat = [x for inputs, _ in group for x in inputs]
        try:
            results = await asyncio.to_thread(self.predict, flat)
            self.batches += 1
        except Exception as exc:
            if len(group) == 1:
                if not group[0][1].done():
                    group[0][1].set_exception(exc)
                return
            for item in group:  # one request's bad input must not fail the others: retry each alone
                await self._predict([item])
            return
        start = 0
        for inputs, future in group:
            if not future.done():
                future.set_result(results[start : start + len(inputs)])
            start += len(inputs)


def create_app(predict: PredictFn, text_pair: bool = False, config: ServerConfig = ServerConfig(), *,
               normalize: Optional[Callable[[list], list]] = None):
    """The ASGI app for a predict function (``TextClassifier.predict`` in production). ``normalize``
    checks request items against the model (default: single texts, or pairs with ``text_pair``)."""
    normalize = normalize or (lambda items: serving.normalize_inputs(items, text_pair))
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    batcher = MicroBatcher(predict, config.max_batch, config.max_wait_ms)

    def error(exc: serving.RequestError) -> Response:
        close = {"connection": "close"} if exc.status in (408, 413) else None  # the rest of that body is not read
        return Response(exc.body(), status_code=exc.status, media_type=serving.JSON, headers=close)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        """404 and 405 in the contract's JSON error shape (Starlette answers them in plain text)."""
        where = f"{request.method} {request.url.path}"
        message = {404: f"no such path: {where}.", 405: f"{where} is not allowed."}.get(exc.status_code, str(exc.detail))
        message += " The server answers GET /ping and POST /invocations."
        return Response(serving.RequestError(exc.status_code, message).body(), status_code=exc.status_code,
                        media_type=serving.JSON, headers=exc.headers)

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def read_body(request: Request) -> bytes:
        """The body, up to the limit. An oversized body is read and discarded (up to
        DRAIN_LIMIT) so the client can read the 413 instead of a reset connection."""
        declared = request.headers.get("content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes
        if too_big and int(declared) > DRAIN_LIMIT:
            raise serving.RequestError(413, f"the body is {declared} bytes; the limit is {config.max_body_bytes}.")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > DRAIN_LIMIT:
                break
            if total <= config.max_body_bytes:
                chunks.append(chunk)
        if too_big or total > config.max_body_bytes:
            raise serving.RequestError(413, f"the body is over the {config.max_body_bytes}-byte limit; send less per request.")
        return b"".join(chunks)

    async def invocations(request: Request) -> Response:
        try:
            try:
                body = await asyncio.wait_for(read_body(request), config.body_timeout_s)
            except asyncio.TimeoutError:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > config.max_body_bytes:  # too big anyway: say that
                    raise serving.RequestError(413, f"the body is {declared} bytes; the limit is {config.max_body_bytes}.") from None
                raise serving.RequestError(408, f"the body did not arrive within {config.body_timeout_s:g} s; send "
                                                "all of it (Content-Length must match what is sent).") from None
            accept = request.headers.get("accept")
            serving.format_response([], accept)  # an unusable Accept is refused before inference
            items = serving.parse_items(body, request.headers.get("content-type"))
            inputs = normalize(items)
        except serving.RequestError as exc:
            return error(exc)
        except ClientDisconnect:
            return Response(status_code=499)
        try:
            predictions = await batcher.submit(inputs)
        except BertbridgeError as exc:  # e.g. input the model rejects
            return error(serving.RequestError(400, str(exc)))
        except Exception:
            log.exception("prediction failed")
            return error(serving.RequestError(500, "the model failed on this request; see the server log."))
        content, media_type = serving.format_response(predictions, accept)
        return Response(content, media_type=media_type)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()  # in-flight requests are answered before this returns
        print(json.dumps({"event": "stopped", "batches": batcher.batches}), flush=True)

    app = Starlette(routes=[Route("/ping", ping), Route("/invocations", invocations, methods=["POST"])], lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.state.batcher = batcher
    return app


SERVE_ENV = "BERTBRIDGE_SERVE"
"""How ``serve`` tells its worker processes what to load (JSON: model, backend, config)."""


def serve(model_path: str, *, host: str = "127.0.0.1", port: int = 8080, backend: Optional[str] = None,
          config: ServerConfig = ServerConfig(), graceful_timeout: float = 30.0, workers: int = 1,
          threads: Optional[int] = None) -> None:
    """Load the model and serve it until SIGTERM/SIGINT.

    ``workers`` > 1 runs that many processes on the one port (uvicorn's supervisor), each with its own
    copy of the model and ``threads`` intra-op threads (default: ``BERTBRIDGE_THREADS`` if set, else the
    cores divided among the workers; the PyTorch and ONNX backends apply it); one worker uses every
    core for each batch (see docs/serving.md for when each wins). Workers start with ``spawn``: a
    script calling this with ``workers`` > 1 needs an ``if __name__ == "__main__":`` guard."""
    import uvicorn

    from bertbridge.core.backend import THREADS_ENV
    from bertbridge.core.serving.timeouts import HeaderTimeoutH11Protocol

    if workers < 1 or (threads is not None and threads < 1):
        raise BertbridgeError(f"--workers {workers} --threads {threads}: give 1 or more of each (or leave --threads out).")
    if threads is None and workers > 1 and not os.environ.get(THREADS_ENV):
        threads = max(1, _cores() // workers)
    settings = {"model": str(model_path), "backend": backend, "config": dataclasses.asdict(config), "threads": threads}
    saved = {name: os.environ.get(name) for name in (SERVE_ENV, THREADS_ENV)}
    os.environ[SERVE_ENV] = json.dumps(settings)  # the worker processes inherit it
    try:
        app = app_from_environment()  # loads the model here first: a bad folder fails before any worker starts
        model = app.state.model
        print(json.dumps({"event": "serving", "model": str(model.path), "backend": model.running_backend,
                          "trained_backend": model.manifest.backend, "export": model.manifest.export.get("format"),
                          "host": host, "port": port, "workers": workers, "threads": os.environ.get(THREADS_ENV)}), flush=True)
        common = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": graceful_timeout,
                  "http": HeaderTimeoutH11Protocol}
        if workers == 1:
            uvicorn.run(app, **common)
        else:
            del app, model  # each worker loads its own
            uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, **common)
    finally:
        for name, value in saved.items():  # a later serve() or load() in this process starts from the caller's settings
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cores() -> int:
    """The cores this process may run on (its affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def app_from_environment():
    """The app for the model ``BERTBRIDGE_SERVE`` names (what each ``--workers`` process builds)."""
    from bertbridge.core.api import load
    from bertbridge.core.serving.timeouts import HeaderTimeoutH11Protocol

    from bertbridge.core.backend import THREADS_ENV

    settings = json.loads(os.environ[SERVE_ENV])
    if settings.get("threads"):
        os.environ[THREADS_ENV] = str(settings["threads"])
    config = ServerConfig(**settings["config"])
    HeaderTimeoutH11Protocol.seconds = config.header_timeout_s
    model = load(settings["model"], backend=settings["backend"])
    app = create_app(model.predict, config=config, normalize=model.normalize_request)
    app.state.model = model
    return app
