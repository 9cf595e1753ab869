"""A backend for the OpenAI API and any OpenAI-compatible server (vLLM, llama.cpp, Ollama), through the
official ``openai`` SDK.

The SDK owns the connection and the timeout; retries are the runtime's (the SDK's are switched off), so every
attempt is reserved in the budget and traced. This module only says which failures are worth retrying, how
long the server asked to wait, and whether a failed request may have been billed.

``n`` is sent wherever it is asked for: a server that honours it answers ``n`` choices in one request (the
fast path). Servers that return fewer (llama.cpp's, Ollama's) are found out from their first short answer,
remembered per server and model for the life of the process, and asked one choice at a time from then on;
the runtime tops up the choices that were missing. Native reasoning models (o1, o3-mini, ...) differ in what
they accept; their :class:`~thinkloop.backends.profiles.ModelProfile` says how.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from thinkloop.backends.base import BaseBackend, Capabilities, RetryPolicy
from thinkloop.backends.profiles import ModelProfile as ModelProfile  # re-exported: thinkloop.ModelProfile
from thinkloop.backends.reasoning import join_reasoning, reasoning_usage, split_thinking
from thinkloop.backends.streaming import StreamAssembler, StreamCut
from thinkloop.exceptions import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ModelNotFound,
    RateLimited,
    Unauthorized,
)
from thinkloop.types import ChatRequest, Choice, Completion, Message, TokenLogprob, Usage

DEFAULT_TIMEOUT = {"connect": 10.0, "read": 120.0, "write": 30.0, "pool": 30.0}
"""Seconds per attempt, by phase: a host that does not take the connection fails in 10 s; a reply may take
two minutes to start (a non-streamed reply arrives whole, so its first byte is its last). A server that
takes connections and never answers is found out by :meth:`OpenAIBackend.check_server` in seconds."""
PROBE_TIMEOUT = 10.0
"""Seconds the server check waits for ``GET /models``: an answer of any kind, never a generation."""
_RECHECK_AFTER = 30.0
"""Seconds a failed server check stands before the next call checks again (calls in between fail at once)."""

_IGNORES_N: set[tuple[str, str]] = set()
"""(base URL, model) pairs seen returning fewer choices than ``n``: asked one choice at a time from then on."""


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls is not None:
        wire["tool_calls"] = list(message.tool_calls)
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _fold_system(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = [_wire_message(m) for m in messages if m.role != "system"]
    if system:
        if rest and rest[0]["role"] == "user":
            rest[0] = {"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}
        else:
            rest.insert(0, {"role": "user", "content": system})
    return rest


class OpenAIBackend(BaseBackend):
    """Chat completions through ``openai.AsyncOpenAI``.

    Args:
        model: the model name the server knows.
        base_url: an OpenAI-compatible server (``None``: the SDK's default, or ``OPENAI_BASE_URL``).
        api_key: defaults to ``OPENAI_API_KEY``; a local server with no key gets a placeholder.
        honours_n: whether one request with ``n`` returns ``n`` choices (``None``: assume so, and learn
            otherwise from the server's first reply with fewer choices).
        max_concurrency: requests the server serves at once (``None``: no limit known).
        max_retries: retries of a retryable failure (429, 408, 409, 5xx, a lost connection), done by the
            runtime so each attempt is budgeted; ``Retry-After`` is honoured.
        timeout: seconds (or an ``httpx2.Timeout``) per attempt, handed to the SDK (``None``:
            :data:`DEFAULT_TIMEOUT`, 10 s to connect and 120 s for the reply to start).
        check_server: before the first call (and after a failed check, at most every 30 s), ask the server for
            ``GET /models`` with a short timeout: a server that takes connections and never answers, or
            refuses the key (401/403), fails in seconds with an error naming it, instead of after the whole
            read timeout per attempt. Any other answer, 404 included, means the server is there.
        probe_timeout: seconds that check waits (``None``: 10 s, or the read timeout if shorter).
        http_client: an ``httpx2.AsyncClient`` for the SDK (tests inject a mock transport here).
        profile: override the model profile (``None``: detected from the model name).
        stream: receive each reply as a stream of chunks (with usage in the last), put back together before
            it is returned: a reasoning model that thinks for minutes keeps the connection busy, so no proxy
            drops it as idle. Reasoning deltas are read as in a whole reply.

    Thinking budgets (``ChatRequest.thinking_budget``) need a backend that can continue a completion; a
    request with one is refused here before it is sent (no OpenAI-compatible server takes a token cap on
    thinking that thinkloop could rely on; pass a server's own parameter in ``extra_body`` instead).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        honours_n: bool | None = None,
        max_concurrency: int | None = None,
        max_retries: int = 2,
        timeout: Any | None = None,
        http_client: Any | None = None,
        profile: ModelProfile | None = None,
        prompt_overhead_tokens: int = 64,
        stream: bool = False,
        check_server: bool = False,
        probe_timeout: float | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if key is None and base_url is not None:
            key = "not-needed"  # local OpenAI-compatible servers take any key
        self._model = model
        self.stream = stream
        self.profile = profile or ModelProfile.for_model(model)
        # Imported on first use: the SDK is over half the time of ``import thinkloop`` and ``thinkloop --help``.
        import httpx2
        import openai

        if timeout is None:
            timeout = httpx2.Timeout(**DEFAULT_TIMEOUT)
        read = timeout.read if isinstance(timeout, httpx2.Timeout) else timeout
        self.probe_timeout = probe_timeout if probe_timeout is not None else min(PROBE_TIMEOUT, read or PROBE_TIMEOUT)
        self.check_server_first = check_server
        self._checked = False
        self._check_failed: tuple[float, BackendError] | None = None
        self._check_lock: Any = None
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=base_url,
            max_retries=0,  # the runtime retries, reserving budget for every attempt
            timeout=timeout,
            http_client=http_client,
        )
        self.base_url = str(self._client.base_url)
        self._learn_n = honours_n is None
        self._capabilities = Capabilities(
            honours_n=honours_n if honours_n is not None else (self.base_url, model) not in _IGNORES_N,
            logprobs=self.profile.logprobs,
            system_messages=self.profile.system_role,
            max_concurrency=max_concurrency,
            prompt_overhead_tokens=prompt_overhead_tokens,
            retry=RetryPolicy(max_retries=max_retries),
        )

    def _scrub(self, text: str) -> str:
        """Remove this backend's own key from a message, whatever its shape (a server may echo it)."""
        key = self._client.api_key
        return text.replace(key, "[REDACTED]") if key and len(key) >= 6 else text

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(model={self._model!r}, base_url={self.base_url!r})"

    @property
    def name(self) -> str:
        return self._model

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def aclose(self) -> None:
        await self._client.close()

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create``, shaped by the model profile."""
        profile = self.profile
        if profile.system_role:
            messages: list[dict[str, Any]] = [_wire_message(m) for m in request.messages]
        else:
            messages = _fold_system(request.messages)
        params: dict[str, Any] = {"model": self._model, "messages": messages}
        if request.n != 1:
            params["n"] = request.n
        if request.max_tokens is not None:
            params[profile.max_tokens_param] = request.max_tokens
        if profile.sampling_params:
            if request.temperature is not None:
                params["temperature"] = request.temperature
            if request.top_p is not None:
                params["top_p"] = request.top_p
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.logprobs and profile.logprobs:
            params["logprobs"] = True
            # llama-cpp-python's server returns no logprobs unless top_logprobs is set; 0 is valid everywhere.
            params["top_logprobs"] = request.top_logprobs or 0
        if self.stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        if request.extra_body:
            params.update(request.extra_body)  # tools, response_format, reasoning_effort: sent as given
        return params

    async def complete(self, request: ChatRequest) -> Completion:
        import httpx2  # already loaded with the SDK
        import openai

        if request.thinking_budget is not None:
            raise BackendError(
                f"{self.base_url} ({self._model}): thinking_budget={request.thinking_budget} needs a backend "
                "that can continue a completion (LlamaCppBackend); an OpenAI-compatible server cannot be made "
                "to stop thinking at a token count. Drop thinking_budget, or pass the server's own parameter "
                "in extra_body."
            )
        if self.check_server_first and not self._checked:
            await self.ensure_checked()
        started = time.perf_counter()
        try:
            data: bytes | dict[str, Any]
            if self.stream:
                data = await self._streamed(request)
            else:
                # Posted through the SDK's client (its auth, base URL, timeout, headers and error mapping), but with
                # the body as built here and the reply read from its JSON: the SDK's parameter transform and
                # its tree of response models were over half of a proxy's CPU per request
                # (benchmarks/sc_throughput.py, serve_throughput.py).
                raw = await self._client.post(
                    "/chat/completions", body=self.request_params(request), cast_to=httpx2.Response
                )
                data = raw.content
        except openai.APIError as exc:
            failure: BackendError | None = self._error(exc)
        else:
            failure = None
        if failure is not None:
            # Raised outside the handler, with no cause: the SDK's error may hold what the server echoed back
            # (a key); ours is scrubbed and says everything the caller needs.
            raise failure
        latency = time.perf_counter() - started
        try:
            body: dict[str, Any] = json.loads(data) if isinstance(data, bytes) else data
            completion = completion_from_json(body, latency_s=latency)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pydantic's ValidationError included
            raise BackendError(
                f"{self.base_url} sent a reply that is not a chat completion: {exc}", maybe_billed=True
            ) from exc
        if request.n > 1 and len(completion.choices) < request.n and self._learn_n:
            self._ignores_n()
        return completion

    async def _streamed(self, request: ChatRequest) -> dict[str, Any]:
        """Post with ``stream`` and fold the chunks into one reply body (a mid-stream error raises as the
        SDK's, mapped by the caller)."""
        import openai

        assembler = StreamAssembler()
        stream = await self._client.post(
            "/chat/completions",
            body=self.request_params(request),
            cast_to=dict,
            stream=True,
            stream_cls=openai.AsyncStream[dict],
        )
        # From here on the server has accepted the request and may be generating: every failure is billed
        # (at the reservation) unless proven otherwise, and a reply that did not finish is a failure.
        try:
            async with stream:
                async for chunk in stream:
                    assembler.add(chunk)
            return assembler.completion()
        except StreamCut as exc:
            failure: BackendError = BackendError(
                self._scrub(f"{self.base_url}: {exc}"), retryable=True, maybe_billed=True
            )
        except ValueError as exc:  # an error event, a chunk that is not one
            failure = BackendError(self._scrub(f"{self.base_url}: {exc}"), maybe_billed=True)
        except openai.APIError as exc:  # an SSE error event the SDK raised, a connection lost mid-stream
            failure = self._error(exc)
            failure.maybe_billed = True
        raise failure

    async def check_server(self, within: float | None = None) -> None:
        """Ask the server for ``GET /models`` within ``within`` seconds (default :attr:`probe_timeout`):
        returns when it answers anything but 401/403; raises :class:`Unauthorized` for those,
        :class:`BackendUnavailable` when it cannot be reached and :class:`BackendTimeout` when it takes the
        connection but does not answer. None of these is retryable: each names what is wrong with the server.
        Nothing is generated, so nothing is billed."""
        import httpx2
        import openai

        seconds = self.probe_timeout if within is None else within
        where = self.base_url
        try:
            await self._client.with_options(timeout=seconds, max_retries=0).get("/models", cast_to=httpx2.Response)
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                failure: BackendError | None = self._error(exc)
            else:
                failure = None  # an answer: the server is there (many have no /models)
        except openai.APITimeoutError as exc:
            connecting = type(exc.__cause__).__name__ in ("ConnectTimeout", "PoolTimeout")
            failure = BackendTimeout(
                self._scrub(
                    f"{where} did not take the connection within {seconds:g} s (is the host up, and the address right?)"
                    if connecting
                    else f"{where} took the connection but did not answer GET /models within {seconds:g} s "
                    "(is the server hung, or is something else listening there?)"
                ),
                retryable=False,
                maybe_billed=False,
            )
        except openai.APIConnectionError as exc:
            failure = BackendUnavailable(self._scrub(f"cannot reach {where}: {exc}"), retryable=False)
        else:
            failure = None
        if failure is not None:
            raise failure

    async def ensure_checked(self) -> None:
        """:meth:`check_server`, once: before the first call (a benchmark's gate calls it before its grid);
        concurrent first calls wait for one check, and a failed check fails the calls that follow at once for
        30 s (rather than each waiting out its own)."""
        import anyio

        if self._check_lock is None:
            self._check_lock = anyio.Lock()
        async with self._check_lock:
            if self._checked:
                return
            if self._check_failed is not None and time.monotonic() - self._check_failed[0] < _RECHECK_AFTER:
                failure = self._check_failed[1]
                raise type(failure)(str(failure), retryable=False, maybe_billed=False)
            try:
                await self.check_server()
            except BackendError as exc:
                self._check_failed = (time.monotonic(), exc)
                raise
            self._checked, self._check_failed = True, None

    def _ignores_n(self) -> None:
        """The server answered fewer choices than ``n``: ask it one at a time from now on (the runtime tops
        up what this reply lacked)."""
        _IGNORES_N.add((self.base_url, self._model))
        self._capabilities = self._capabilities.model_copy(update={"honours_n": False})

    def _error(self, exc: Exception) -> BackendError:
        """The SDK's error as thinkloop's: retryable or not, the wait the server asked for, maybe billed.

        Billed unless proven otherwise: only a refused connection and a 4xx answer (the server turned the
        request down before generating) are known to be free; a timeout, a lost connection, a 5xx and an
        error that arrived in the body (an SSE ``error`` event after tokens were generated) keep the call's
        reservation billed.
        """
        import openai

        where = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            return BackendTimeout(self._scrub(f"{where} did not answer in time: {exc}"))
        if isinstance(exc, openai.APIConnectionError):
            # Refused before the request was sent: not billed. Lost mid-request: the server may have worked.
            refused = type(exc.__cause__).__name__ == "ConnectError"
            return BackendUnavailable(self._scrub(f"cannot reach {where}: {exc}"), maybe_billed=not refused)
        if not isinstance(exc, openai.APIStatusError):
            return BackendError(self._scrub(f"{where}: {exc}"), maybe_billed=True)
        status, wait = exc.status_code, _retry_after(exc.response.headers)
        if status == 429:
            return RateLimited(self._scrub(f"rate limited by {where}: {exc.message}"), retry_after=wait, status=status)
        if status in (401, 403):
            return Unauthorized(
                self._scrub(
                    f"{where} answered {status} ({'unauthorised' if status == 401 else 'forbidden'}): the key was "
                    f"refused: {exc.message}"
                ),
                status=status,
            )
        if status == 404:
            return ModelNotFound(
                self._scrub(f"model {self._model!r} not found at {where}: {exc.message}"), status=status
            )
        retryable = status in (408, 409) or status >= 500
        return BackendError(
            self._scrub(f"{where} answered {status}: {exc.message}"),
            retryable=retryable,
            retry_after=wait,
            maybe_billed=status >= 500,
            status=status,
        )


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); ``None`` if absent."""
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def completion_from_json(data: dict[str, Any], *, latency_s: float) -> Completion:
    """Convert a chat completion's JSON body into a :class:`Completion`.

    A reasoning model's thinking is read from ``reasoning_content``, ``reasoning`` or a leading ``<think>``
    block and kept in :attr:`Choice.reasoning`, apart from the answer text (see :mod:`.reasoning`).
    """
    choices = []
    thought = False
    for choice in sorted(data["choices"], key=lambda c: c.get("index") or 0):
        message = choice.get("message") or {}
        content = (choice.get("logprobs") or {}).get("content")
        logprobs = tuple(TokenLogprob.from_wire(t) for t in content) if content else None
        tool_calls = message.get("tool_calls")
        inline, text = split_thinking(message.get("content") or "")
        fields = message.get("reasoning_content"), message.get("reasoning")
        reasoning = join_reasoning(*fields, inline) if inline is not None or any(fields) else None
        thought = thought or reasoning is not None
        choices.append(
            Choice(
                text=text,
                reasoning=reasoning,
                finish_reason=choice.get("finish_reason"),
                logprobs=logprobs,
                tool_calls=tuple(tool_calls) if tool_calls else None,
            )
        )
    usage = usage_from_json(data.get("usage"))
    return Completion(
        choices=tuple(choices),
        usage=reasoning_usage(usage, choices) if thought else usage,
        latency_s=latency_s,
        model=data.get("model"),
    )


def usage_from_json(usage: dict[str, Any] | None) -> Usage:
    if not usage:
        return Usage()
    completion_details = usage.get("completion_tokens_details") or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
        cached_prompt_tokens=prompt_details.get("cached_tokens"),
    )
