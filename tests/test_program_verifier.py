"""The program verifier runs model-written Python in a sandbox and judges by how it ends.

These are the verifier's everyday behaviours and its friendly explanations (the audit hook's reasons for a
loop, a memory bomb, a socket, a write outside the scratch folder); a correct program is accepted and the
scratch folder is gone afterwards in every case. The kernel boundary itself, with the hook switched off, is
tested in ``test_sandbox_escapes.py`` and ``test_sandbox_battery.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from sandbox_harness import marked_processes
from thinkloop import SandboxUnavailable
from thinkloop.backends.scripted import ScriptedBackend
from thinkloop.runtime.result import Candidate
from thinkloop.strategies.cot import ChainOfThought
from thinkloop.verifiers import ProgramVerifier, Verdict, extract_program, sandbox_unavailable_reason

pytestmark = pytest.mark.anyio

# TEST-NET-1 (RFC 5737): reserved for documentation, routed nowhere, so even a broken guard reaches no one.
UNROUTABLE = "192.0.2.1"


def reply(code: str, answer: str | None = None) -> Candidate:
    text = f"Here is my program:\n```python\n{code}\n```\n" + (f"Answer: {answer}" if answer else "")
    return Candidate(text=text, answer=answer)


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "sandboxes"
    root.mkdir()
    return root


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host folder outside the scratch folder and outside /tmp (which the sandbox replaces by its own)."""
    folder = Path(tempfile.mkdtemp(prefix="thinkloop-outside-", dir="/var/tmp"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
async def guarded() -> bool:
    """Whether this machine can sandbox; without it the hook and limits are tested unguarded (never where the
    sandbox is required: CI sets THINKLOOP_REQUIRE_SANDBOX=1)."""
    reason = await sandbox_unavailable_reason()
    if reason is not None and os.environ.get("THINKLOOP_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"the sandbox is required here (THINKLOOP_REQUIRE_SANDBOX=1): {reason}")
    return reason is None


@pytest.fixture
async def sandboxed(guarded: bool) -> bool:
    """For tests of the sandbox itself: they need it, so they are deselected where it cannot run."""
    if not guarded:
        pytest.xfail("no sandbox on this machine (bubblewrap or user namespaces missing)")
    return guarded


def verifier(scratch_root: Path, guarded: bool, **options: object) -> ProgramVerifier:
    options.setdefault("allow_unguarded", not guarded)
    return ProgramVerifier(scratch_root=scratch_root, **options)  # type: ignore[arg-type]


async def check(v: ProgramVerifier, code: str, answer: str | None = None) -> Verdict:
    verdict = await v.verify("q", reply(code, answer))
    assert v.scratch_root is not None
    assert os.listdir(v.scratch_root) == [], "the scratch directory must be removed"
    return verdict


# --- the five cases of the issue -------------------------------------------------------------------------


async def test_a_correct_program_is_accepted(scratch_root: Path, guarded: bool) -> None:
    code = (
        "import os, tempfile\n"
        "here = os.getcwd()\n"
        "assert os.environ['HOME'] == here, (os.environ['HOME'], here)\n"
        "with open('notes.txt', 'w') as f:\n"
        "    f.write('scratch is writable')\n"
        "with tempfile.NamedTemporaryFile('w') as f:\n"
        "    f.write('so is the temporary folder')\n"
        "print(sum(range(1, 101)))\n"
    )
    verdict = await check(verifier(scratch_root, guarded, match_answer=True), code, answer="5050")
    assert verdict.accepted and verdict.score == 1.0
    assert verdict.feedback is not None and "5050" in verdict.feedback


@pytest.mark.parametrize(
    "code",
    [
        "import tempfile, os\nwith tempfile.TemporaryDirectory() as d:\n    os.makedirs(os.path.join(d, 'a', 'b'))\n"
        "    open(os.path.join(d, 'a', 'x'), 'w').write('1')",
        "import asyncio\nasync def f():\n    return 5\nassert asyncio.run(f()) == 5",
        "import threading\nt = threading.Thread(target=print, args=('hi',))\nt.start()\nt.join()",
        "import sys\nopen('/dev/null', 'w').write('x')\nprint('warning', file=sys.stderr)",
        "from fractions import Fraction\nimport sympy\nassert sympy.sqrt(8) == 2 * sympy.sqrt(2)",
    ],
    ids=["tempdir", "asyncio", "threads", "devnull", "sympy"],
)
async def test_ordinary_programs_are_not_mistaken_for_escapes(scratch_root: Path, guarded: bool, code: str) -> None:
    verdict = await check(verifier(scratch_root, guarded), code)
    assert verdict.accepted, verdict.feedback


async def test_an_infinite_loop_is_killed_by_the_timeout(scratch_root: Path, guarded: bool) -> None:
    verdict = await check(verifier(scratch_root, guarded, timeout=1, cpu_seconds=600), "while True:\n    pass")
    assert not verdict.accepted
    assert verdict.feedback is not None and verdict.feedback.startswith("The program timed out after 1s")


@pytest.mark.parametrize(
    "bomb", ["x = bytearray(1 << 36)", "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))"]
)
async def test_a_memory_bomb_is_rejected(scratch_root: Path, guarded: bool, bomb: str) -> None:
    verdict = await check(verifier(scratch_root, guarded, memory_mb=256, timeout=60), bomb)
    assert not verdict.accepted
    assert verdict.feedback is not None and "ran out of memory" in verdict.feedback


@pytest.mark.parametrize("host", ["127.0.0.1", UNROUTABLE])
async def test_a_socket_connection_attempt_is_rejected(scratch_root: Path, guarded: bool, host: str) -> None:
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, 80), timeout=2)\n"
        "except OSError as exc:\n"
        "    print('the program swallowed', exc)\n"
    )
    verdict = await check(verifier(scratch_root, guarded), code)
    assert not verdict.accepted
    assert verdict.feedback is not None
    assert "attempted a forbidden operation" in verdict.feedback and "socket." in verdict.feedback


@pytest.mark.parametrize(
    "write",
    [
        "open(TARGET, 'w').write('escaped')",
        "import os\nos.close(os.open(TARGET, os.O_WRONLY | os.O_CREAT))",
        "import pathlib\npathlib.Path(TARGET).write_text('escaped')",
        # A symlink in the scratch directory that points outside it.
        "import os\nos.symlink(TARGET, 'link')\nopen('link', 'w').write('escaped')",
        # A relative path that climbs out.
        "import os\nopen(os.path.relpath(TARGET), 'w').write('escaped')",
        # A directory descriptor from outside, then a relative name under it.
        "import os\nfd = os.open(os.path.dirname(TARGET), os.O_RDONLY)\n"
        "os.open(os.path.basename(TARGET), os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
        "import shutil\nshutil.copyfile('/dev/null', TARGET)",
    ],
    ids=["open", "os.open", "pathlib", "symlink", "relative", "dir_fd", "shutil"],
)
async def test_writing_outside_the_scratch_directory_is_rejected(
    scratch_root: Path, guarded: bool, outside: Path, write: str
) -> None:
    target = outside / "outside" / "escaped.txt"
    target.parent.mkdir()
    verdict = await check(verifier(scratch_root, guarded), f"TARGET = {str(target)!r}\n{write}")
    assert not verdict.accepted and verdict.feedback is not None
    # The hook explains; in the sandbox a folder it cannot see at all may fail first, as not found.
    invisible = guarded and "FileNotFoundError" in verdict.feedback
    assert "attempted a forbidden operation" in verdict.feedback or invisible, verdict.feedback
    assert not target.exists()


# --- more escapes and failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.remove(VICTIM)",
        "import os\nos.rename(VICTIM, 'mine')",
        "import shutil\nshutil.rmtree(os.path.dirname(VICTIM))",
        "import os\nos.chmod(VICTIM, 0o777)",
    ],
    ids=["remove", "rename", "rmtree", "chmod"],
)
async def test_changing_files_outside_the_scratch_directory_is_rejected(
    scratch_root: Path, guarded: bool, outside: Path, code: str
) -> None:
    victim = outside / "keep" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    verdict = await check(verifier(scratch_root, guarded), f"import os\nVICTIM = {str(victim)!r}\n{code}")
    assert not verdict.accepted and "forbidden operation" in (verdict.feedback or "")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import os\nos.fork()",
        "import ctypes\nctypes.CDLL(None).system(b'true')",
        # Signal 0 to itself: harmless even if the guard failed, but still a kill() call.
        "import os\nos.kill(os.getpid(), 0)",
    ],
    ids=["subprocess", "os.system", "fork", "ctypes", "kill"],
)
async def test_starting_processes_and_native_calls_are_rejected(scratch_root: Path, guarded: bool, code: str) -> None:
    verdict = await check(verifier(scratch_root, guarded), code)
    assert not verdict.accepted and "forbidden operation" in (verdict.feedback or "")


async def test_the_cpu_limit_stops_a_busy_program(scratch_root: Path, guarded: bool) -> None:
    verdict = await check(verifier(scratch_root, guarded, timeout=120, cpu_seconds=1), "while True:\n    pass")
    assert not verdict.accepted
    assert verdict.feedback is not None and "CPU time limit" in verdict.feedback


async def test_a_crash_is_rejected_with_its_traceback(scratch_root: Path, guarded: bool) -> None:
    verdict = await check(verifier(scratch_root, guarded), "def f(x):\n    return 1 / x\n\nf(0)")
    assert not verdict.accepted
    assert verdict.feedback is not None
    assert verdict.feedback.startswith("The program crashed (exit status 1).")
    assert "ZeroDivisionError: division by zero" in verdict.feedback
    assert 'File "program.py", line 2, in f' in verdict.feedback


async def test_a_syntax_error_is_rejected(scratch_root: Path, guarded: bool) -> None:
    verdict = await check(verifier(scratch_root, guarded), "def broken(:\n    pass")
    assert not verdict.accepted and "SyntaxError" in (verdict.feedback or "")


async def test_the_printed_answer_must_match_when_asked(scratch_root: Path, guarded: bool) -> None:
    v = verifier(scratch_root, guarded, match_answer=True)
    wrong = await check(v, "print(41)", answer="42")
    assert not wrong.accepted
    assert wrong.feedback is not None and wrong.feedback.startswith("The program printed '41', not the stated answer")
    expected = verifier(scratch_root, guarded, expected="3/4")
    assert (await check(expected, "print(0.75)")).accepted
    assert not (await check(expected, "print('nothing')")).accepted


async def test_the_program_can_be_built_from_the_candidate(scratch_root: Path, guarded: bool) -> None:
    """A harness of the user's: check the candidate's answer with a test program."""

    def harness(question: str, candidate: Candidate) -> str:
        return f"answer = {candidate.answer}\nassert answer * 3 == 21, answer"

    v = verifier(scratch_root, guarded, program=harness)
    assert (await v.verify("q", Candidate(text="Answer: 7", answer="7"))).accepted
    assert not (await v.verify("q", Candidate(text="Answer: 8", answer="8"))).accepted


async def test_an_empty_program_is_rejected(scratch_root: Path, guarded: bool) -> None:
    verdict = await verifier(scratch_root, guarded).verify("q", Candidate(text="```python\n\n```"))
    assert not verdict.accepted and "no program" in (verdict.feedback or "")


async def test_cancelling_a_verification_kills_the_program_and_removes_its_scratch(
    scratch_root: Path, guarded: bool
) -> None:
    v = verifier(scratch_root, guarded, timeout=120)
    with anyio.move_on_after(1.0) as scope:
        await v.verify("q", reply("import time\ntime.sleep(60)"))
    assert scope.cancelled_caught
    assert os.listdir(scratch_root) == []
    assert not marked_processes(str(scratch_root))


async def test_it_verifies_inside_a_run(scratch_root: Path, guarded: bool) -> None:
    backend = ScriptedBackend(["```python\nprint(1/0)\n```\nAnswer: 1", "```python\nprint(6 * 7)\n```\nAnswer: 42"])
    v = verifier(scratch_root, guarded, match_answer=True)
    result = await ChainOfThought(max_rounds=2).run("q", backend=backend, verifier=v)
    assert result.answer == "42" and result.stop_reason == "accepted"
    # The crash's traceback went back to the model as feedback.
    assert "ZeroDivisionError" in backend.requests[1].messages[-1].content


# --- isolation ----------------------------------------------------------------------------------------


async def test_without_a_sandbox_it_refuses_to_run_unguarded(scratch_root: Path) -> None:
    nowhere = "/nonexistent/bwrap"
    strict = ProgramVerifier(bwrap=nowhere, scratch_root=scratch_root)
    missing = r"bubblewrap \('/nonexistent/bwrap'\) is not installed.*allow_unguarded=True"
    with pytest.raises(SandboxUnavailable, match=missing):
        await strict.verify("q", reply("print(1)"))
    assert os.listdir(scratch_root) == []
    opted_in = ProgramVerifier(bwrap=nowhere, allow_unguarded=True, scratch_root=scratch_root)
    verdict = await check(opted_in, "print(1)")
    assert verdict.accepted
    assert verdict.feedback is not None and "ran WITHOUT the sandbox" in verdict.feedback
    # The audit hook still explains the common mistakes when there is no sandbox.
    denied = await check(opted_in, f"import socket\nsocket.create_connection(({UNROUTABLE!r}, 80), timeout=1)")
    assert not denied.accepted and "ran WITHOUT the sandbox" in (denied.feedback or "")


async def test_a_kernel_that_refuses_user_namespaces_is_named_in_the_error(scratch_root: Path, tmp_path: Path) -> None:
    refusing = tmp_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    refusing.chmod(0o755)
    strict = ProgramVerifier(bwrap=str(refusing), scratch_root=scratch_root)
    expected = "cannot create the namespaces here (bwrap: No permissions to create a new namespace)"
    with pytest.raises(SandboxUnavailable, match=re.escape(expected)):
        await strict.verify("q", reply("print(1)"))
    assert os.listdir(scratch_root) == []


async def test_a_sandbox_that_fails_to_start_is_an_error_not_a_verdict(
    scratch_root: Path, sandboxed: bool, tmp_path: Path
) -> None:
    """Infrastructure errors are failures, never wrong answers: nothing of the program ran."""
    guarded = sandboxed
    failing = tmp_path / "bwrap"  # passes the probe, then fails to set up as bubblewrap can (a mount refused)
    failing.write_text(
        '#!/bin/sh\ncase " $* " in *" --ro-bind / / "*) exec bwrap "$@";; esac\n'
        "echo 'bwrap: Failed to mount tmpfs: Operation not permitted' >&2\nexit 1\n"
    )
    failing.chmod(0o755)
    broken = verifier(scratch_root, guarded, bwrap=str(failing))
    expected = "could not start the program (exit status 1, sandboxed): bwrap: Failed to mount tmpfs"
    with pytest.raises(SandboxUnavailable, match=re.escape(expected)):
        await broken.verify("q", reply("print(1)"))
    assert os.listdir(scratch_root) == []


async def test_an_interpreter_that_cannot_run_is_a_configuration_error(scratch_root: Path, sandboxed: bool) -> None:
    """(The interpreter's folders are looked up for the sandbox's read-only view, so this needs the sandbox.)"""
    guarded = sandboxed
    from thinkloop import ConfigurationError

    missing = verifier(scratch_root, guarded, python="/nonexistent/python3")
    with pytest.raises(ConfigurationError, match=re.escape("cannot run the interpreter '/nonexistent/python3'")):
        await missing.verify("q", reply("print(1)"))
    assert os.listdir(scratch_root) == []


def test_extract_program() -> None:
    text = "Plan.\n```python\nx = 1\n```\nThen:\n```py\nprint(x)\n```\n```text\nnot code\n```"
    assert extract_program(text) == "x = 1\n\nprint(x)\n"
    assert extract_program("```\nprint(2)\n```") == "print(2)\n"
    assert extract_program("print(3)") == "print(3)"


def test_bad_limits_are_configuration_errors() -> None:
    from thinkloop import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"timeout must be positive \(got 0\)"):
        ProgramVerifier(timeout=0)
