"""Named API keys, each with an allowance of tokens per period, kept in one sqlite file.

An operator who lends the server to several people gives each a key (``thinkloop serve --keys FILE --add-key
NAME --key-tokens N --key-period day`` prints it once; only its SHA-256 is stored). A request with a named key
*reserves* its worst case (the token budgets of its runs, clamped to what is left) before it runs and settles
to what it really used after, as the runtime's budget does: a key never spends past its allowance, and a
crash between the two leaves the reservation counted (never a free request). The file is the shared store:
a restart keeps every count, and ``--workers`` processes share it (each reservation is one ``BEGIN
IMMEDIATE`` transaction, so two processes cannot both take the last tokens).

sqlite's calls are short local writes made on the event loop (no thread): milliseconds per request.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from thinkloop.serve.errors import ApiError

PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}

_SCHEMA = """
create table if not exists keys (
    name text primary key,
    digest text not null unique,
    tokens integer,            -- allowance per period; null: no allowance (the per-request ceiling still holds)
    period real not null,      -- seconds
    created real not null
);
create table if not exists spent (
    name text not null references keys(name) on delete cascade,
    period_start real not null,
    tokens integer not null default 0,
    primary key (name, period_start)
);
"""


@dataclass
class Hold:
    """Tokens held for one request (settled when it ends)."""

    name: str
    period_start: float
    tokens: int
    """What was held: the request's runs may spend this much between them."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The key file: names, digests, allowances and what each key spent per period."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma foreign_keys=on")
        self._db.executescript(_SCHEMA)
        self._names: dict[str, str] = {}

    def close(self) -> None:
        self._db.close()

    # --- the operator's side ------------------------------------------------------------------------------
    def add(self, name: str, *, tokens: int | None, period: float) -> str:
        """A new key for ``name``; returns it (the only time it is shown)."""
        key = "tlk-" + secrets.token_urlsafe(24)
        try:
            self._db.execute(
                "insert into keys values (?, ?, ?, ?, ?)", (name, _digest(key), tokens, period, time.time())
            )
        except sqlite3.IntegrityError:
            raise ValueError(f"a key named {name!r} exists already") from None
        return key

    def remove(self, name: str) -> bool:
        return self._db.execute("delete from keys where name = ?", (name,)).rowcount > 0

    def rows(self) -> list[tuple[str, int | None, float, int]]:
        """Each key's name, allowance, period and tokens spent in its current period."""
        now = time.time()
        out = []
        for name, tokens, period in self._db.execute("select name, tokens, period from keys order by name"):
            start = now - now % period
            row = self._db.execute(
                "select tokens from spent where name = ? and period_start = ?", (name, start)
            ).fetchone()
            out.append((name, tokens, period, row[0] if row else 0))
        return out

    # --- the server's side --------------------------------------------------------------------------------
    def name_of(self, key: str) -> str | None:
        """The key's name, or ``None`` for a key that is not in the file (looked up by digest)."""
        digest = _digest(key)
        name = self._names.get(digest)
        if name is None:
            row = self._db.execute("select name from keys where digest = ?", (digest,)).fetchone()
            if row is None:
                return None
            name = self._names[digest] = row[0]
        return name

    def reserve(self, name: str, wanted: int) -> Hold:
        """Hold up to ``wanted`` tokens of the key's allowance; a 429 when nothing is left (with when it renews)."""
        db = self._db
        db.execute("begin immediate")
        try:
            row = db.execute("select tokens, period from keys where name = ?", (name,)).fetchone()
            if row is None:  # removed while the server runs
                raise ApiError(401, "incorrect API key", code="invalid_api_key")
            allowance, period = row
            now = time.time()
            start = now - now % period
            if allowance is None:
                db.execute("commit")
                return Hold(name, start, wanted)
            spent = db.execute("select tokens from spent where name = ? and period_start = ?", (name, start)).fetchone()
            left = allowance - (spent[0] if spent else 0)
            if left < 1:
                renew = start + period - now
                raise ApiError(
                    429,
                    f"key {name!r} has spent its allowance of {allowance} tokens per "
                    f"{_period_name(period)}; it renews in {renew:.0f} s",
                    code="allowance_spent",
                    retry_after=renew,
                )
            held = min(wanted, left) if wanted > 0 else left
            db.execute(
                "insert into spent values (?, ?, ?) on conflict(name, period_start) "
                "do update set tokens = tokens + excluded.tokens",
                (name, start, held),
            )
            db.execute("commit")
            return Hold(name, start, held)
        except BaseException:
            if db.in_transaction:
                db.execute("rollback")
            raise

    def settle(self, hold: Hold, used: int | None) -> None:
        """Replace a hold by what the request used (``None``: unknown, the hold stays spent)."""
        if used is None or used >= hold.tokens:
            return
        self._db.execute(
            "update spent set tokens = max(0, tokens - ?) where name = ? and period_start = ?",
            (hold.tokens - used, hold.name, hold.period_start),
        )
        hold.tokens = used

    def spent(self, name: str) -> int:
        """Tokens the key spent in its current period."""
        for row_name, _, _, spent in self.rows():
            if row_name == name:
                return spent
        return 0


def _period_name(seconds: float) -> str:
    for name, length in PERIODS.items():
        if length == seconds:
            return name
    return f"{seconds:g} s"
