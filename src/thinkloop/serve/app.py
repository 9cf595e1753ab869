"""The ASGI app: routes, auth, the body cap and admission, on Starlette.

Routes: ``POST /v1/chat/completions`` (streamed or not), ``GET /v1/models``, ``GET /health`` (no key needed,
for load balancers), ``GET /v1/traces/{run_id}`` (the run's JSONL trace) and ``GET /v1/traces/{run_id}/view``
(the same as the trace viewer's page). Every error is OpenAI-shaped
(:mod:`thinkloop.serve.errors`). Admission is a counter, not a queue: a request whose runs would take the
server past ``max_concurrency`` runs in flight gets a 429 with ``Retry-After`` at once, so a client's own retry
policy decides what waiting is worth.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from thinkloop.backends.base import Backend
from thinkloop.runtime.engine import Engine
from thinkloop.serve.errors import ApiError, as_api_error, bad_request, error_response, scrub
from thinkloop.serve.keys import KeyStore
from thinkloop.serve.plan import Plan, Settings, plan_call
from thinkloop.serve.runs import RunReply, run_one, thinkloop_json, usage_json
from thinkloop.serve.schema import parse_chat
from thinkloop.serve.selection import ALIAS, parse_model_name
from thinkloop.serve.stream import ChunkMaker, RunStream
from thinkloop.serve.traces import SharedTraceStore, TraceStore
from thinkloop.serve.upstream import Upstream


class ChatServer:
    """The state behind the routes: one engine over the upstream, the trace store, runs in flight."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.settings = settings
        self.upstream = Upstream(backend)
        self.engine = Engine(self.upstream)
        self.traces = (
            TraceStore(settings.keep_traces, settings.keep_trace_bytes)
            if settings.shared_traces is None
            else SharedTraceStore(settings.keep_traces, settings.keep_trace_bytes, settings.shared_traces)
        )
        self.in_flight = 0
        self.keys = KeyStore(settings.keys_path) if settings.keys_path else None

    # --- routes ---------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": self.upstream.name,
                "runs_in_flight": self.in_flight,
                "max_concurrency": self.settings.max_concurrency,
            }
        )

    async def models(self, request: Request) -> Response:
        self._authorize(request)
        return JSONResponse({"object": "list", "data": [_model(name) for name in (self.upstream.name, ALIAS)]})

    async def model(self, request: Request) -> Response:
        """``client.models.retrieve(name)``: the served model, ``thinkloop``, or either with a strategy prefix."""
        self._authorize(request)
        name = request.path_params["model"]
        try:
            served = parse_model_name(name).model
        except ValueError as exc:
            raise bad_request(str(exc), param="model", code="invalid_model") from None
        if served not in (None, ALIAS, self.upstream.name):
            raise ApiError(
                404,
                f"model {name!r} is not served here; use {self.upstream.name!r} or {ALIAS!r}",
                code="model_not_found",
                param="model",
            )
        return JSONResponse(_model(name))

    async def trace(self, request: Request) -> Response:
        self._authorize(request)
        run_id = request.path_params["run_id"]
        jsonl = self.traces.jsonl(run_id)
        if jsonl is None:
            raise ApiError(
                404,
                f"no trace for run {run_id!r} (the server keeps the last {self.settings.keep_traces} runs)",
                code="trace_not_found",
            )
        return PlainTextResponse(scrub(jsonl), media_type="application/x-ndjson")

    async def trace_view(self, request: Request) -> Response:
        """The run's trace as the viewer's self-contained page (``thinkloop view``), model output as text."""
        from thinkloop.view.page import render_trace_html

        self._authorize(request)
        run_id = request.path_params["run_id"]
        events = self.traces.events(run_id)
        if events is None:
            raise ApiError(
                404,
                f"no trace for run {run_id!r} (the server keeps the last {self.settings.keep_traces} runs)",
                code="trace_not_found",
            )
        return HTMLResponse(render_trace_html(list(events), run_id=run_id))

    async def chat(self, request: Request) -> Response:
        key_name = self._authorize(request)
        _require_json(request)
        body = await self._body(request)
        try:
            decoded = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
        except RecursionError:
            raise bad_request("the request body is nested too deeply", code="invalid_json") from None
        call = parse_chat(decoded, max_n=self.settings.max_n)
        limit = self.settings.max_concurrency
        if call.n > limit:
            raise bad_request(
                f"'n' = {call.n} runs can never be admitted: this server runs at most {limit} at "
                "once (--max-concurrency); ask for fewer",
                param="n",
            )
        plan = plan_call(call, self.settings, self.upstream)
        hold = None
        if key_name is not None and self.keys is not None:
            plan, hold = self._charge(key_name, plan, call.n)
        self._admit(call.n)

        def settle(replies: list[RunReply] | None) -> None:
            if hold is not None and self.keys is not None:
                used = sum(r.result.usage.total_tokens for r in replies) if replies is not None else None
                self.keys.settle(hold, used)

        if call.stream:

            def closed(replies: list[RunReply] | None) -> None:
                self._release(call.n)
                settle(replies)

            return _AsgiResponse(
                RunStream(
                    n=call.n,
                    start=lambda index, on_text: run_one(plan, self.engine, self.traces, index=index, on_text=on_text),
                    chunks=ChunkMaker(f"chatcmpl-{uuid.uuid4().hex[:12]}", call.model),
                    include_usage=call.include_usage,
                    info=lambda reply: reply.info(plan),
                    on_close=closed,
                )
            )
        replies = None
        held = hold.tokens if hold is not None else 0
        try:
            replies = await self._run_watched(request, plan, call.n)
        finally:
            self._release(call.n)
            settle(replies)
        if replies is None:  # the client went away; nobody to answer
            return Response(status_code=499)
        if (
            hold is not None
            and "thinkloop.budget.tokens" in plan.changed
            and all(r.result.usage.calls == 0 and r.result.stop_reason == "budget" for r in replies)
        ):
            raise ApiError(
                429,
                f"key {key_name!r}: what is left of its allowance ({held} tokens) is too little for one call",
                code="allowance_spent",
                retry_after=60,
            )
        return JSONResponse(_completion(replies, plan, call.model))

    def _charge(self, name: str, plan: Plan, n: int) -> tuple[Plan, Any]:
        """Hold the key's allowance for the request's worst case (its runs' token budgets) before it runs."""
        assert self.keys is not None
        wanted = (plan.budget.tokens or 0) * n
        hold = self.keys.reserve(name, wanted)
        if hold.tokens < wanted:  # less is left than the request could spend: its runs get what is left
            tokens = hold.tokens // n
            changed = dict(plan.changed)
            changed["thinkloop.budget.tokens"] = (
                f"{plan.budget.tokens} → {tokens}: what is left of key {name!r}'s allowance"
            )
            plan = dataclasses.replace(plan, budget=plan.budget.model_copy(update={"tokens": tokens}), changed=changed)
        return plan, hold

    # --- helpers ----------------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> str | None:
        """Check the key; the name of a named key (``--keys``), else ``None``."""
        self._check_host(request)
        key = self.settings.api_key
        if key is None and self.keys is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise ApiError(
                401, "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key", scrub=False
            )
        given = given.strip()
        if scheme.lower() == "bearer":
            if key is not None and hmac.compare_digest(given.encode(), key.encode()):
                return None
            name = self.keys.name_of(given) if self.keys is not None else None
            if name is not None:
                return name
        raise ApiError(401, "incorrect API key", code="invalid_api_key")

    def _check_host(self, request: Request) -> None:
        """A loopback server answers only to its own names: another site's page reached through DNS
        rebinding sends its own ``Host`` and is refused."""
        allowed = self.settings.allowed_hosts
        if allowed is None:
            return
        host = request.headers.get("host", "").lower()
        if host not in allowed and host.rsplit(":", 1)[0] not in allowed:
            raise ApiError(
                403, f"Host {host[:100]!r} is not one this server answers to (--allowed-host)", code="host_not_allowed"
            )

    async def _body(self, request: Request) -> bytes:
        cap = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise bad_request(f"bad Content-Length {declared!r}")
            if int(declared) > cap:
                raise ApiError(
                    413, f"request body of {declared} bytes exceeds the limit of {cap} bytes", code="request_too_large"
                )
        chunks, size = [], 0
        seconds = self.settings.body_seconds
        with anyio.move_on_after(seconds) as timer:  # a body sent a byte at a time would hold a connection
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise ApiError(413, f"request body exceeds the limit of {cap} bytes", code="request_too_large")
                chunks.append(chunk)
        if timer.cancelled_caught:
            raise ApiError(408, f"the request body did not arrive within {seconds:g} s", code="request_timeout")
        return b"".join(chunks)

    def _admit(self, runs: int) -> None:
        limit = self.settings.max_concurrency
        if self.in_flight + runs > limit:
            raise ApiError(
                429,
                f"the server is at its limit of {limit} runs in flight; retry shortly",
                code="too_many_runs",
                retry_after=1,
            )
        self.in_flight += runs

    def _release(self, runs: int) -> None:
        self.in_flight -= runs

    async def _run_watched(self, request: Request, plan: Plan, n: int) -> list[RunReply] | None:
        """Run ``n`` runs; cancel them (and their upstream calls) if the client disconnects."""
        replies: list[RunReply | None] = [None] * n
        disconnected = False

        async def watch(scope: anyio.CancelScope) -> None:
            nonlocal disconnected
            while (await request.receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            scope.cancel()

        async def one(index: int) -> None:
            replies[index] = await run_one(plan, self.engine, self.traces, index=index)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(watch, group.cancel_scope)
                async with anyio.create_task_group() as runs:
                    for index in range(n):
                        runs.start_soon(one, index)
                group.cancel_scope.cancel()
        except Exception as exc:
            raise as_api_error(exc) from None
        if disconnected:
            return None
        return [r for r in replies if r is not None]


def _completion(replies: list[RunReply], plan: Plan, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{replies[0].result.run_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {"index": r.index, "message": r.message(), "finish_reason": r.finish_reason(), "logprobs": r.logprobs()}
            for r in replies
        ],
        "usage": usage_json(replies),
        "thinkloop": thinkloop_json(replies, plan),
    }


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "thinkloop"}


def _require_json(request: Request) -> None:
    """Only ``application/json`` bodies: a web page's ``fetch`` with ``text/plain`` needs no CORS preflight, so
    reading any body as JSON would let every page the user visits spend the server's key."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(
            415,
            f"the body must be sent as 'Content-Type: application/json', not {kind or 'none'!r}",
            code="unsupported_media_type",
        )


class _AsgiResponse(Response):
    """Hands the connection to an ASGI callable (the stream writes its own status line, when it has one)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    return error_response(as_api_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"no route {request.method} {request.url.path}" if exc.status_code == 404 else str(exc.detail)
    return error_response(ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None))


def create_app(backend: Backend, settings: Settings | None = None) -> Starlette:
    """The app serving ``backend``; the backend is loaded at startup and closed at shutdown."""
    server = ChatServer(backend, settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        load = getattr(backend, "load", None)
        if load is not None:
            await load()  # the embedded model: load it now, so "ready" means ready
        # What startup made (modules, pydantic schemas, a loaded model's tables: about 87,000 objects for the
        # scripted backend) lives as long as the server. Frozen, no full collection walks it again: one took
        # ~30 ms a time unfrozen on the CI machine. What a run keeps is not frozen and is freed with the run.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", server.chat, methods=["POST"]),
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/v1/models/{model:path}", server.model, methods=["GET"]),
            Route("/health", server.health, methods=["GET"]),
            Route("/v1/traces/{run_id}", server.trace, methods=["GET"]),
            Route("/v1/traces/{run_id}/view", server.trace_view, methods=["GET"]),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _api_error},
        lifespan=lifespan,
    )
    app.state.server = server
    return app
