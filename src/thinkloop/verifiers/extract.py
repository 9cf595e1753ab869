"""Answer extraction shared by every strategy and verifier (placeholder, replaced by the full module)."""

from __future__ import annotations

import re

_ANSWER = re.compile(r"answer\s*(?:is|:)\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_answer(text: str) -> str | None:
    match = _ANSWER.findall(text)
    if match:
        return match[-1].strip().rstrip(".")
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def normalize_answer(answer: str) -> str:
    return answer.strip()
