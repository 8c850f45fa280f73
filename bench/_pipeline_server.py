"""The serving peer of bench/serve_load.py: the Hugging Face ``pipeline("text-classification")`` behind
the same Starlette ``/ping`` + ``/invocations`` contract bertbridge serves (a JSON string or list of
strings in; ``{"predictions": [{"label", "score"}, ...]}`` out), as a user would wrap it: one pipeline
call per request, run in Starlette's thread pool so the event loop keeps accepting.

    python bench/_pipeline_server.py MODEL_DIR PORT
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("USE_TF", "0")


def main() -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    pipe = pipeline("text-classification", model=sys.argv[1], device=-1)

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def invocations(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "bad JSON"}, status_code=400)
        texts = body if isinstance(body, list) else [body]
        return JSONResponse({"predictions": await run_in_threadpool(pipe, texts)})

    app = Starlette(routes=[Route("/ping", ping), Route("/invocations", invocations, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")


if __name__ == "__main__":
    main()
