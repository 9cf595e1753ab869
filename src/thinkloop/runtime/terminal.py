"""Text from programs, models and traces shown on a terminal as data, never as control.

A model's reply, a sandboxed program's output or a trace read back can hold escape sequences (``ESC ]0;...``
retitles the window, ``ESC [2J`` clears the screen, OSC 52 writes the clipboard, ``ESC ]8`` hides a link) and
other control characters (carriage return and backspace overwrite what was printed; bidirectional overrides
reorder it). :func:`inert` replaces each with a visible escape (``\\x1b``, ``\\u202e``) before it is printed.
It imports nothing of thinkloop's; it sits in the runtime beside `redact`, below everything that prints.
"""

from __future__ import annotations

import re

__all__ = ["inert"]

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-character CSI), the bidirectional
# overrides, embeddings and isolates, and the line and paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character shown as an escape; tabs and newlines are kept (also escaped
    with ``one_line``). Printable text, non-Latin scripts and emoji are unchanged."""
    return (_ONE_LINE if one_line else _CONTROL).sub(_shown, text)
