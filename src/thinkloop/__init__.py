"""thinkloop: open test-time compute for any chat model.

Wrap a model in reasoning strategies that re-prompt it until a verifier accepts or a hard token budget stops
them, with every step in a visible trace.
"""

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
    ThinkloopError,
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
    "Strategy",
    "StrategyConfig",
    "ThinkloopError",
    "TokenLogprob",
    "Trace",
    "TreeSearch",
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
