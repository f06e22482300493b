"""The ``search_runs`` filter and order-by grammar: text in, a small typed AST out.

The grammar is MLflow's (``metrics.acc > 0.9 and params.model = 'rf'``) plus ``or`` and
parentheses, ``and`` binding tighter. Parsing is separate from SQL so the syntax can be
tested without a database and every mistake is reported with the column it starts at.

::

    filter     := or_expr | ""
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := term ("and" term)*
    term       := "(" or_expr ")" | comparison
    comparison := entity "." key operator value
    order_item := entity "." key ["asc" | "desc"]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from mloop.errors import FilterSyntaxError

Entity: TypeAlias = Literal["metrics", "params", "tags", "attributes"]
Value: TypeAlias = "int | float | str | tuple[str, ...] | None"

ENTITY_ALIASES: dict[str, Entity] = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
STRING_ATTRIBUTES = frozenset(
    {"run_id", "run_name", "status", "user_id", "experiment_id", "parent_run_id", "lifecycle_stage"}
)
ATTRIBUTES = NUMERIC_ATTRIBUTES | STRING_ATTRIBUTES
NULLABLE_ATTRIBUTES = frozenset({"end_time", "run_name", "user_id", "parent_run_id"})

NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")
MAX_DEPTH = 50


@dataclass(frozen=True, slots=True)
class Comparison:
    """``entity.key op value``; ``column`` (1-based, where it starts) is not part of equality."""

    entity: Entity
    key: str
    op: str
    value: Value
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node: TypeAlias = "Comparison | And | Or"


@dataclass(frozen=True, slots=True)
class OrderKey:
    entity: Entity
    key: str
    ascending: bool = True


# -- tokens ----------------------------------------------------------------------------------

_TokenKind = Literal["word", "string", "quoted_key", "number", "op", "punct", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _TokenKind
    text: str  # the source text, for messages
    value: str  # the decoded value (strings unescaped, words as written)
    column: int  # 1-based
    end: int  # 0-based offset just past the token


_WORD = re.compile(r"[A-Za-z_][\w./-]*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_OPS = ("<=", ">=", "!=", "=", "<", ">")
_QUOTE_NAMES = {"'": "string", '"': "string", "`": "backtick-quoted key"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "(),":
            tokens.append(_Token("punct", ch, ch, i + 1, i + 1))
            i += 1
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, op, i + 1, i + len(op)))
            i += len(op)
            continue
        if ch in "'\"`":
            value, end = _read_quoted(text, i)
            kind: _TokenKind = "quoted_key" if ch == "`" else "string"
            tokens.append(_Token(kind, text[i:end], value, i + 1, end))
            i = end
            continue
        number = _NUMBER.match(text, i)
        if number and (ch.isdigit() or ch in "+-."):
            end = number.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                bad = re.compile(r"[\w.+-]*").match(text, i)
                assert bad is not None
                raise FilterSyntaxError(
                    f"malformed number {bad.group()!r}", text=text, column=i + 1
                )
            tokens.append(_Token("number", number.group(), number.group(), i + 1, end))
            i = end
            continue
        word = _WORD.match(text, i)
        if word:
            tokens.append(_Token("word", word.group(), word.group(), i + 1, word.end()))
            i = word.end()
            continue
        raise FilterSyntaxError(f"unexpected character {ch!r}", text=text, column=i + 1)
    tokens.append(_Token("end", "end of filter", "", n + 1, n))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Decode a quoted string or key starting at ``start``; return (value, end offset).

    A backslash escapes the quote character and itself; any other backslash stays as
    written so LIKE patterns keep their ``\\%`` and ``\\_`` escapes. A doubled quote
    (SQL style, ``'it''s'``) also stands for one quote.
    """
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterSyntaxError(
        f"unterminated {_QUOTE_NAMES[quote]}: add the closing {quote}",
        text=text,
        column=start + 1,
    )


def _describe(token: _Token) -> str:
    return "end of filter" if token.kind == "end" else repr(token.text)


# -- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def error(self, message: str, token: _Token) -> FilterSyntaxError:
        return FilterSyntaxError(message, text=self.text, column=token.column)

    def is_keyword(self, token: _Token, *words: str) -> bool:
        return token.kind == "word" and token.value.upper() in words

    # grammar

    def parse_filter(self) -> Node:
        node = self.or_expr()
        token = self.peek
        if token.kind != "end":
            if token.text == ")":
                raise self.error("unbalanced parenthesis: ')' without a matching '('", token)
            raise self.error(
                f"expected 'and', 'or' or end of filter, found {_describe(token)}", token
            )
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_keyword(self.peek, "OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.term()]
        while self.is_keyword(self.peek, "AND"):
            self.advance()
            items.append(self.term())
        return items[0] if len(items) == 1 else And(tuple(items))

    def term(self) -> Node:
        token = self.peek
        if token.text == "(" and token.kind == "punct":
            self.advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"parentheses nested deeper than {MAX_DEPTH} levels", token)
            node = self.or_expr()
            close = self.peek
            if not (close.kind == "punct" and close.text == ")"):
                if close.kind == "end":
                    raise self.error("unbalanced parenthesis: '(' is never closed", token)
                raise self.error(f"expected ')' or 'and'/'or', found {_describe(close)}", close)
            self.advance()
            self.depth -= 1
            return node
        return self.comparison()

    def identifier(self, what: str) -> tuple[Entity, str, _Token]:
        """``entity.key`` with the key bare, in backticks or in double quotes."""
        token = self.advance()
        if token.kind != "word":
            raise self.error(
                f"expected {what} such as metrics.acc or params.model, found {_describe(token)}",
                token,
            )
        if self.is_keyword(token, "AND", "OR", "NOT", "IN", "IS", "LIKE", "ILIKE", "NULL"):
            raise self.error(
                f"expected {what} such as metrics.acc or params.model, "
                f"found keyword {token.text!r}",
                token,
            )
        prefix, dot, key = token.value.partition(".")
        entity = ENTITY_ALIASES.get(prefix.lower())
        if not dot:
            if prefix.lower() in ENTITY_ALIASES:
                raise self.error(f"expected '.' and a key after {prefix!r}", self.peek)
            hint = (
                f"attributes.{prefix}"
                if prefix.lower() in ATTRIBUTES
                else f"metrics.{prefix}, params.{prefix} or tags.{prefix}"
            )
            raise self.error(
                f"identifier {prefix!r} needs an entity prefix: did you mean {hint}?", token
            )
        if entity is None:
            raise self.error(
                f"unknown entity {prefix!r}: use metrics., params., tags. or attributes.",
                token,
            )
        if not key:
            quoted = self.peek
            if quoted.kind in ("quoted_key", "string") and quoted.column == token.end + 1:
                if quoted.kind == "string" and quoted.text[0] != '"':
                    raise self.error(
                        "quote a key with backticks or double quotes, not single quotes", quoted
                    )
                self.advance()
                key = quoted.value
                if not key:
                    raise self.error("empty key", quoted)
            else:
                raise self.error(
                    f"expected a key after {token.text!r} (quote it with backticks if it "
                    f"contains spaces), found {_describe(quoted)}",
                    quoted,
                )
        if entity == "attributes":
            name = key.lower()
            if name not in ATTRIBUTES:
                raise self.error(
                    f"unknown attribute {key!r}; valid attributes: {', '.join(sorted(ATTRIBUTES))}",
                    token,
                )
            key = name
        return entity, key, token

    def operator(self, label: str) -> tuple[str, _Token]:
        token = self.advance()
        if token.kind == "op":
            return token.value, token
        if token.kind == "word":
            word = token.value.upper()
            if word in ("LIKE", "ILIKE", "IN"):
                return word, token
            if word == "NOT":
                nxt = self.advance()
                if self.is_keyword(nxt, "IN"):
                    return "NOT IN", token
                raise self.error(f"expected 'in' after 'not', found {_describe(nxt)}", nxt)
            if word == "IS":
                nxt = self.advance()
                if self.is_keyword(nxt, "NOT"):
                    nxt = self.advance()
                    if self.is_keyword(nxt, "NULL"):
                        return "IS NOT NULL", token
                elif self.is_keyword(nxt, "NULL"):
                    return "IS NULL", token
                raise self.error(
                    f"expected 'null' or 'not null' after 'is', found {_describe(nxt)}", nxt
                )
        raise self.error(
            f"expected a comparison operator after {label}, found {_describe(token)}", token
        )

    def comparison(self) -> Comparison:
        entity, key, start = self.identifier("an identifier")
        label = f"{entity}.{key}"
        op, op_token = self.operator(label)
        numeric = entity == "metrics" or (entity == "attributes" and key in NUMERIC_ATTRIBUTES)
        if op in NULL_OPS:
            nullable = entity in ("params", "tags") or (
                entity == "attributes" and key in NULLABLE_ATTRIBUTES
            )
            if not nullable:
                raise self.error(
                    f"{op} is not supported for {label}; it applies to params, tags and the "
                    f"attributes {', '.join(sorted(NULLABLE_ATTRIBUTES))}",
                    op_token,
                )
            return Comparison(entity, key, op, None, start.column)
        allowed = NUMERIC_OPS if numeric else STRING_OPS
        if op not in allowed:
            kind = "numbers" if numeric else "strings"
            extra = " (params are strings, as in MLflow)" if entity == "params" else ""
            raise self.error(
                f"operator {op_token.text!r} is not supported for {label}{extra}: "
                f"{label} compares as {kind} with {', '.join(allowed)}",
                op_token,
            )
        value: Value
        if op in ("IN", "NOT IN"):
            value = self.string_list(label)
        elif numeric:
            value = self.number(label, op)
        else:
            value = self.string(label, op)
        return Comparison(entity, key, op, value, start.column)

    def number(self, label: str, op: str) -> int | float:
        token = self.advance()
        if token.kind != "number":
            found = "a string" if token.kind == "string" else _describe(token)
            raise self.error(f"expected a number after {label} {op}, found {found}", token)
        if _INTEGER.fullmatch(token.value):
            return int(token.value)
        number = float(token.value)
        if not math.isfinite(number):
            raise self.error(f"number {token.text} is out of range", token)
        return number

    def string(self, label: str, op: str) -> str:
        token = self.advance()
        if token.kind != "string":
            found = _describe(token)
            if token.kind == "number":
                found = f"unquoted {token.text}; {label} compares as a string, so quote it"
            raise self.error(f"expected a quoted string after {label} {op}, found {found}", token)
        return token.value

    def string_list(self, label: str) -> tuple[str, ...]:
        token = self.advance()
        if not (token.kind == "punct" and token.text == "("):
            raise self.error(
                f"expected '(' and a list of quoted strings after {label} IN, "
                f"found {_describe(token)}",
                token,
            )
        values = [self.string(label, "IN")]
        while True:
            token = self.advance()
            if token.kind == "punct" and token.text == ")":
                return tuple(values)
            if not (token.kind == "punct" and token.text == ","):
                raise self.error(
                    f"expected ',' or ')' in the IN list, found {_describe(token)}", token
                )
            values.append(self.string(label, "IN"))


def parse_filter(text: str) -> Node | None:
    """Parse a filter; ``None`` for an empty or blank one (it matches every run)."""
    if not text or text.isspace():
        return None
    return _Parser(text).parse_filter()


def parse_order_by(items: Iterable[str]) -> list[OrderKey]:
    """Parse ``["metrics.acc DESC", "params.model", ...]``; errors point into the item."""
    keys: list[OrderKey] = []
    for item in items:
        parser = _Parser(item)
        if parser.peek.kind == "end":
            raise parser.error("empty order_by item; expected e.g. 'metrics.acc DESC'", parser.peek)
        entity, key, _ = parser.identifier("an order_by key")
        ascending = True
        token = parser.peek
        if parser.is_keyword(token, "ASC", "DESC"):
            ascending = token.value.upper() == "ASC"
            parser.advance()
            token = parser.peek
        if token.kind != "end":
            raise parser.error(
                f"expected ASC, DESC or end of item, found {_describe(token)}", token
            )
        keys.append(OrderKey(entity, key, ascending))
    return keys
