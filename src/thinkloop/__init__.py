"""thinkloop: open test-time compute for any chat model.

Wrap a model in reasoning strategies that re-prompt it until a verifier accepts or a hard token budget stops
them, with every step in a visible trace.
"""

import typing

from thinkloop.types import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported on first use
    from thinkloop.backends.base import Backend, BaseBackend, Capabilities, RetryPolicy
    from thinkloop.backends.llamacpp import LlamaCppBackend
    from thinkloop.backends.openai import ModelProfile, OpenAIBackend
    from thinkloop.backends.replay import ReplayBackend
    from thinkloop.backends.scripted import ScriptedBackend
    from thinkloop.backends.server import ManagedLlamaServer, managed_llama_server
    from thinkloop.exceptions import (
        BackendError,
        BackendTimeout,
        BackendUnavailable,
        BudgetExhausted,
        ConfigurationError,
        DatasetError,
        ExecutorError,
        ModelNotFound,
        RateLimited,
        ReplayMismatch,
        SandboxUnavailable,
        StoreLocked,
        ThinkloopError,
        Unauthorized,
    )
    from thinkloop.runtime.budget import Budget, Price
    from thinkloop.runtime.context import RunContext
    from thinkloop.runtime.engine import Engine, Policy
    from thinkloop.runtime.graph import Node, ReasoningGraph
    from thinkloop.runtime.result import Candidate, Outcome, Result
    from thinkloop.runtime.trace import JsonlTraceSink, Trace, graph_from_events, load_trace, recorded_calls, replay
    from thinkloop.runtime.verdict import Verdict, Verifier
    from thinkloop.strategies.auto import Auto
    from thinkloop.strategies.base import Conversation, Strategy, StrategyConfig
    from thinkloop.strategies.best_of_n import BestOfN
    from thinkloop.strategies.cot import ChainOfThought, Direct
    from thinkloop.strategies.critique import CritiqueRevise
    from thinkloop.strategies.effort import EFFORTS, Effort, think, think_sync
    from thinkloop.strategies.registry import build_strategy
    from thinkloop.strategies.self_consistency import SelfConsistency
    from thinkloop.strategies.tree_search import TreeSearch
    from thinkloop.types import ChatRequest, Choice, Completion, Message, RunUsage, TokenLogprob, Usage
    from thinkloop.verifiers import (
        AllOf,
        AnswerPresent,
        AnyOf,
        FormatVerifier,
        LLMJudge,
        MathAnswerVerifier,
        ProgramVerifier,
        Weighted,
        answers_equivalent,
        extract_answer,
        normalize_answer,
    )

__version__ = "0.1.0"

# Loaded on first use, as in every subpackage: ``import thinkloop`` no longer imports every backend, strategy
# and verifier (with the HTTP client, the sandbox and their modules) before a program asks for one.
# Each module loaded is one more for every full garbage collection of the program to walk.
_, __getattr__, __dir__ = _lazy_exports(__name__, {
    "Backend": "backends.base", "BaseBackend": "backends.base", "Capabilities": "backends.base",
    "RetryPolicy": "backends.base",
    "LlamaCppBackend": "backends.llamacpp",
    "ModelProfile": "backends.openai", "OpenAIBackend": "backends.openai",
    "ReplayBackend": "backends.replay",
    "ScriptedBackend": "backends.scripted",
    "ManagedLlamaServer": "backends.server", "managed_llama_server": "backends.server",
    "BackendError": "exceptions", "BackendTimeout": "exceptions", "BackendUnavailable": "exceptions",
    "BudgetExhausted": "exceptions", "ConfigurationError": "exceptions", "DatasetError": "exceptions",
    "ExecutorError": "exceptions", "ModelNotFound": "exceptions", "RateLimited": "exceptions",
    "ReplayMismatch": "exceptions", "SandboxUnavailable": "exceptions", "ThinkloopError": "exceptions",
    "StoreLocked": "exceptions", "Unauthorized": "exceptions",
    "Budget": "runtime.budget", "Price": "runtime.budget",
    "RunContext": "runtime.context",
    "Engine": "runtime.engine", "Policy": "runtime.engine",
    "Node": "runtime.graph", "ReasoningGraph": "runtime.graph",
    "Candidate": "runtime.result", "Outcome": "runtime.result", "Result": "runtime.result",
    "JsonlTraceSink": "runtime.trace", "Trace": "runtime.trace", "graph_from_events": "runtime.trace",
    "load_trace": "runtime.trace", "recorded_calls": "runtime.trace", "replay": "runtime.trace",
    "Verdict": "runtime.verdict", "Verifier": "runtime.verdict",
    "Auto": "strategies.auto",
    "Conversation": "strategies.base", "Strategy": "strategies.base", "StrategyConfig": "strategies.base",
    "BestOfN": "strategies.best_of_n",
    "ChainOfThought": "strategies.cot", "Direct": "strategies.cot",
    "CritiqueRevise": "strategies.critique",
    "EFFORTS": "strategies.effort", "Effort": "strategies.effort", "think": "strategies.effort",
    "think_sync": "strategies.effort",
    "build_strategy": "strategies.registry",
    "SelfConsistency": "strategies.self_consistency",
    "TreeSearch": "strategies.tree_search",
    "ChatRequest": "types", "Choice": "types", "Completion": "types", "Message": "types", "RunUsage": "types",
    "TokenLogprob": "types", "Usage": "types",
    "AllOf": "verifiers", "AnswerPresent": "verifiers", "AnyOf": "verifiers", "FormatVerifier": "verifiers",
    "LLMJudge": "verifiers", "MathAnswerVerifier": "verifiers", "ProgramVerifier": "verifiers",
    "Weighted": "verifiers", "answers_equivalent": "verifiers", "extract_answer": "verifiers",
    "normalize_answer": "verifiers",
})

__all__ = [
    "EFFORTS",
    "AllOf",
    "AnswerPresent",
    "AnyOf",
    "Auto",
    "Backend",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BaseBackend",
    "BestOfN",
    "Budget",
    "BudgetExhausted",
    "Candidate",
    "Capabilities",
    "ChainOfThought",
    "ChatRequest",
    "Choice",
    "Completion",
    "ConfigurationError",
    "Conversation",
    "CritiqueRevise",
    "DatasetError",
    "Direct",
    "Effort",
    "Engine",
    "ExecutorError",
    "FormatVerifier",
    "JsonlTraceSink",
    "LLMJudge",
    "LlamaCppBackend",
    "ManagedLlamaServer",
    "MathAnswerVerifier",
    "Message",
    "ModelNotFound",
    "ModelProfile",
    "Node",
    "OpenAIBackend",
    "Outcome",
    "Policy",
    "Price",
    "ProgramVerifier",
    "RateLimited",
    "ReasoningGraph",
    "ReplayBackend",
    "ReplayMismatch",
    "Result",
    "RetryPolicy",
    "RunContext",
    "RunUsage",
    "SandboxUnavailable",
    "ScriptedBackend",
    "SelfConsistency",
    "StoreLocked",
    "Strategy",
    "StrategyConfig",
    "ThinkloopError",
    "TokenLogprob",
    "Trace",
    "TreeSearch",
    "Unauthorized",
    "Usage",
    "Verdict",
    "Verifier",
    "Weighted",
    "__version__",
    "answers_equivalent",
    "build_strategy",
    "extract_answer",
    "graph_from_events",
    "load_trace",
    "managed_llama_server",
    "normalize_answer",
    "recorded_calls",
    "replay",
    "think",
    "think_sync",
]
