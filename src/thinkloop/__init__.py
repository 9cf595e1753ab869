"""thinkloop: open test-time compute for any chat model.

Wrap a model in reasoning strategies that re-prompt it until a verifier accepts or a hard token budget stops
them, with every step in a visible trace.
"""

import typing

from thinkloop.types import exports_of_imports as _exports_of_imports

__version__ = "0.1.0"
"""The one place the version is written: the package's metadata reads it (``[tool.hatch.version]``)."""

# The public names, once. Type checkers and IDEs read these imports (``import X as X`` marks a re-export);
# at run time the block is skipped, and ``_exports_of_imports`` reads the same lines into a table that loads
# each name on first use, so ``import thinkloop`` does not import every backend, strategy and verifier (with
# the HTTP client, the sandbox and their modules) before a program asks for one.
if typing.TYPE_CHECKING:
    from thinkloop.backends.base import Backend as Backend
    from thinkloop.backends.base import BaseBackend as BaseBackend
    from thinkloop.backends.base import Capabilities as Capabilities
    from thinkloop.backends.base import RetryPolicy as RetryPolicy
    from thinkloop.backends.llamacpp import LlamaCppBackend as LlamaCppBackend
    from thinkloop.backends.openai import OpenAIBackend as OpenAIBackend
    from thinkloop.backends.profiles import ModelProfile as ModelProfile
    from thinkloop.backends.replay import ReplayBackend as ReplayBackend
    from thinkloop.backends.scripted import ScriptedBackend as ScriptedBackend
    from thinkloop.backends.server import ManagedLlamaServer as ManagedLlamaServer
    from thinkloop.backends.server import managed_llama_server as managed_llama_server
    from thinkloop.exceptions import BackendError as BackendError
    from thinkloop.exceptions import BackendTimeout as BackendTimeout
    from thinkloop.exceptions import BackendUnavailable as BackendUnavailable
    from thinkloop.exceptions import BudgetExhausted as BudgetExhausted
    from thinkloop.exceptions import ConfigurationError as ConfigurationError
    from thinkloop.exceptions import DatasetError as DatasetError
    from thinkloop.exceptions import ExecutorError as ExecutorError
    from thinkloop.exceptions import ModelNotFound as ModelNotFound
    from thinkloop.exceptions import RateLimited as RateLimited
    from thinkloop.exceptions import ReplayMismatch as ReplayMismatch
    from thinkloop.exceptions import SandboxUnavailable as SandboxUnavailable
    from thinkloop.exceptions import StoreLocked as StoreLocked
    from thinkloop.exceptions import ThinkloopError as ThinkloopError
    from thinkloop.exceptions import Unauthorized as Unauthorized
    from thinkloop.runtime.budget import Budget as Budget
    from thinkloop.runtime.budget import Price as Price
    from thinkloop.runtime.context import RunContext as RunContext
    from thinkloop.runtime.engine import Engine as Engine
    from thinkloop.runtime.engine import Policy as Policy
    from thinkloop.runtime.graph import Node as Node
    from thinkloop.runtime.graph import ReasoningGraph as ReasoningGraph
    from thinkloop.runtime.result import Candidate as Candidate
    from thinkloop.runtime.result import Outcome as Outcome
    from thinkloop.runtime.result import Result as Result
    from thinkloop.runtime.trace import JsonlTraceSink as JsonlTraceSink
    from thinkloop.runtime.trace import Trace as Trace
    from thinkloop.runtime.trace import graph_from_events as graph_from_events
    from thinkloop.runtime.trace import load_trace as load_trace
    from thinkloop.runtime.trace import recorded_calls as recorded_calls
    from thinkloop.runtime.trace import replay as replay
    from thinkloop.runtime.verdict import Verdict as Verdict
    from thinkloop.runtime.verdict import Verifier as Verifier
    from thinkloop.strategies.auto import Auto as Auto
    from thinkloop.strategies.base import Conversation as Conversation
    from thinkloop.strategies.base import Strategy as Strategy
    from thinkloop.strategies.base import StrategyConfig as StrategyConfig
    from thinkloop.strategies.beam import DVTS as DVTS
    from thinkloop.strategies.beam import BeamSearch as BeamSearch
    from thinkloop.strategies.best_of_n import BestOfN as BestOfN
    from thinkloop.strategies.cascade import Cascade as Cascade
    from thinkloop.strategies.cot import ChainOfThought as ChainOfThought
    from thinkloop.strategies.cot import Direct as Direct
    from thinkloop.strategies.critique import CritiqueRevise as CritiqueRevise
    from thinkloop.strategies.deepconf import DeepConf as DeepConf
    from thinkloop.strategies.effort import EFFORTS as EFFORTS
    from thinkloop.strategies.effort import Effort as Effort
    from thinkloop.strategies.effort import think as think
    from thinkloop.strategies.effort import think_sync as think_sync
    from thinkloop.strategies.moa import MixtureOfAgents as MixtureOfAgents
    from thinkloop.strategies.particles import ParticleFilter as ParticleFilter
    from thinkloop.strategies.registry import build_strategy as build_strategy
    from thinkloop.strategies.self_consistency import SelfConsistency as SelfConsistency
    from thinkloop.strategies.tree_search import TreeSearch as TreeSearch
    from thinkloop.strategies.usc import UniversalSelfConsistency as UniversalSelfConsistency
    from thinkloop.types import ChatRequest as ChatRequest
    from thinkloop.types import Choice as Choice
    from thinkloop.types import Completion as Completion
    from thinkloop.types import Message as Message
    from thinkloop.types import RunUsage as RunUsage
    from thinkloop.types import TokenLogprob as TokenLogprob
    from thinkloop.types import Usage as Usage
    from thinkloop.verifiers import AllOf as AllOf
    from thinkloop.verifiers import AnswerPresent as AnswerPresent
    from thinkloop.verifiers import AnyOf as AnyOf
    from thinkloop.verifiers import FormatVerifier as FormatVerifier
    from thinkloop.verifiers import LLMJudge as LLMJudge
    from thinkloop.verifiers import MathAnswerVerifier as MathAnswerVerifier
    from thinkloop.verifiers import ProgramVerifier as ProgramVerifier
    from thinkloop.verifiers import Weighted as Weighted
    from thinkloop.verifiers import answers_equivalent as answers_equivalent
    from thinkloop.verifiers import extract_answer as extract_answer
    from thinkloop.verifiers import normalize_answer as normalize_answer

__all__, __getattr__, __dir__ = _exports_of_imports(__name__, __file__, extra=["__version__"])
