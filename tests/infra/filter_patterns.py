"""A small evaluator of CloudWatch Logs JSON filter patterns, for exactly the syntax the alarms use.

Covered (CloudWatch Logs User Guide, "Filter pattern syntax for metric filters", JSON log events):
``{ ... }`` around the whole pattern; selectors ``$.a.b``; ``=`` and ``!=`` against a double-quoted
string or a bare word, where ``*`` in the value matches any characters; ``NOT EXISTS``; ``&&`` and
``||`` with parentheses. Anything else is refused (``PatternError``), so a pattern that grows new
syntax fails the tests instead of being evaluated wrongly.

Two choices where this evaluator is stricter than it needs to be:
- mixing ``&&`` and ``||`` at one level without parentheses is refused (the alarms never do; the
  precedence is not something a reviewer should have to know);
- a comparison on a property the event lacks is false, for ``!=`` too (CloudWatch matches a
  comparison only when the selected property exists; ``NOT EXISTS`` is how a pattern asks for a
  missing one).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) | (?P<and>&&) | (?P<or>\|\|)
      | (?P<not_exists>NOT\s+EXISTS\b)
      | (?P<op>!=|=)
      | (?P<selector>\$(?:\.[A-Za-z0-9_]+)+)
      | "(?P<string>[^"\\]*)"
      | (?P<word>[A-Za-z0-9_.:/*-]+)
    )""",
    re.VERBOSE,
)


class PatternError(ValueError):
    """The pattern uses syntax this evaluator does not cover, or is malformed."""


def _tokens(body: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            raise PatternError(f"unsupported syntax at {body[pos : pos + 20]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _lookup(event: dict[str, Any], selector: str) -> tuple[bool, Any]:
    value: Any = event
    for part in selector.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], event: dict[str, Any]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.event = event

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise PatternError(f"expected {kind}, found {self.tokens[self.pos : self.pos + 1]}")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value

    def expression(self) -> bool:
        results = [self.term()]
        joiner: str | None = None
        while self.peek() in ("and", "or"):
            kind = self.take(self.peek() or "")
            kind = "and" if kind == "&&" else "or"
            if joiner is not None and kind != joiner:
                raise PatternError("&& and || mixed without parentheses")
            joiner = kind
            results.append(self.term())
        return all(results) if joiner == "and" else any(results)

    def term(self) -> bool:
        if self.peek() == "lparen":
            self.take("lparen")
            value = self.expression()
            self.take("rparen")
            return value
        selector = self.take("selector")
        present, actual = _lookup(self.event, selector)
        if self.peek() == "not_exists":
            self.take("not_exists")
            return not present
        op = self.take("op")
        kind = self.peek()
        if kind not in ("string", "word"):
            raise PatternError(f"{selector} {op} needs a string or a word")
        expected = self.take(kind)
        if not present or isinstance(actual, dict | list):
            return False
        text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        # fnmatch's other metacharacters ([, ?) never occur in the patterns (the tokenizer refuses
        # them in words; a test checks the strings).
        equal = fnmatch.fnmatchcase(text, expected)
        return equal if op == "=" else not equal


def matches(pattern: str, event: dict[str, Any]) -> bool:
    """Whether a CloudWatch Logs JSON filter pattern matches one JSON log event."""
    stripped = pattern.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        raise PatternError("a JSON filter pattern is enclosed in { }")
    if "?" in stripped or "[" in stripped:
        raise PatternError("? and [ ] are outside the covered syntax")
    parser = _Parser(_tokens(stripped[1:-1]), event)
    result = parser.expression()
    if parser.pos != len(parser.tokens):
        raise PatternError(f"trailing tokens {parser.tokens[parser.pos :]}")
    return result
