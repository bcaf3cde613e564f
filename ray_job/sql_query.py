"""`--query` must give the same rows every time it runs: each read task runs it again for its
own key range (`SELECT * FROM (query) WHERE key >= ? AND key < ?`), and a resume runs it again
later. So it must be one SELECT statement without sampling, LIMIT/OFFSET (use --limit),
random or clock functions, or row numbers over no order; anything else is refused in one line
before Ray starts. Checked on DuckDB's own parse tree (json_serialize_sql), so `';'` or
`'random()'` inside a string literal is no problem.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from .errors import ConfigError

VOLATILE_FUNCTIONS = frozenset({
    "random", "setseed", "uuid", "uuidv4", "uuidv7", "gen_random_uuid", "now", "today",
    "get_current_timestamp", "get_current_time", "current_timestamp", "current_date",
    "current_time", "current_localtimestamp", "current_localtime", "transaction_timestamp",
    "localtimestamp", "localtime", "nextval", "currval"})
# SQL's clock keywords parse as plain column references: `WHERE d < current_date`
CLOCK_KEYWORDS = frozenset({"current_timestamp", "current_date", "current_time",
                            "localtimestamp", "localtime"})
LIMITS = ("LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER")


def query_relation(query: str) -> str:
    """The query as the subquery ray-embed filters by key range: without its trailing ';',
    on lines of its own (a trailing -- comment must not swallow the ')')."""
    body = query.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return f"(\n{body}\n)"


@functools.lru_cache(maxsize=16)
def check_query(query: str) -> None:
    """ConfigError (one line) unless `query` is one deterministic SELECT statement that reads
    as a subquery."""
    statements = _parse(query)
    if len(statements) != 1:
        raise ConfigError(f"--query must be one SELECT statement; it has {len(statements)} "
                          f"(';' between them)")
    problem = next(nondeterminism(statements), None)
    if problem:
        raise ConfigError(f"--query must give the same rows on every run (each read task runs "
                          f"it for its own key range): {problem} is not allowed")
    _parse(f"SELECT * FROM {query_relation(query)}", "cannot be read as a subquery: ")


def _parse(sql: str, what: str = "") -> list:
    """DuckDB's parse tree of `sql` (SELECT statements only); ConfigError when it has none."""
    import duckdb

    with duckdb.connect() as con:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        message = tree.get("error_message") or "cannot parse it"
        if message.startswith("Only SELECT statements"):
            message = "must be one SELECT statement"
        raise ConfigError(f"--query {what}{message.splitlines()[0]}")
    return tree["statements"]


def nondeterminism(node: Any) -> Iterator[str]:
    """What in a parse tree (json_serialize_sql's) can give other rows on another run."""
    if isinstance(node, list):
        for child in node:
            yield from nondeterminism(child)
        return
    if not isinstance(node, dict):
        return
    kind, names = node.get("class"), node.get("column_names") or []
    function = str(node.get("function_name", "")).lower()
    if node.get("sample"):
        yield "sampling (USING SAMPLE / TABLESAMPLE)"
    if node.get("type") in LIMITS:
        yield "LIMIT / OFFSET (use --limit: it is applied in key order)"
    if kind == "FUNCTION" and function in VOLATILE_FUNCTIONS:
        yield f"{function}()"
    if kind == "COLUMN_REF" and len(names) == 1 and names[0].lower() in CLOCK_KEYWORDS:
        yield names[0].lower()
    if kind == "WINDOW" and node.get("type") != "WINDOW_AGGREGATE" and not node.get("orders"):
        yield f"{function}() OVER () without ORDER BY"
    for child in node.values():
        yield from nondeterminism(child)
