"""DynamoDB's expression grammar: the tokenizer, the syntax tree and a recursive-descent parser.

Written by hand because no maintained Python library parses *and evaluates* this grammar with
DynamoDB's semantics (boto3 only builds expressions; moto's parser is internal to moto).
Parsed expressions are cached by text, and placeholders are resolved at evaluation, so one
parse serves every request.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ExpressionError

RESERVED = frozenset(
    """
ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE ARE
ARRAY AS ASC ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH AUTHORIZATION
AUTHORIZE AUTO AVG BACK BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY BIT BLOB BLOCK
BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE CALL CALLED CALLING CAPACITY CASCADE CASCADED CASE CAST
CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER CLUSTERED CLUSTERING CLUSTERS COALESCE
COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT COMMIT COMPACT COMPILE COMPRESS
CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY CONSISTENT CONSTRAINT CONSTRAINTS CONSTRUCTOR
CONSUMED CONTINUE CONVERT COPY CORRESPONDING COUNT COUNTER CREATE CROSS CUBE CURRENT CURSOR CYCLE
DATA DATABASE DATE DATETIME DAY DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEFINE
DEFINED DEFINITION DELETE DELIMITED DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH DETERMINISTIC
DIAGNOSTICS DIRECTORIES DISABLE DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE DROP DUMP
DURATION DYNAMIC EACH ELEMENT ELSE ELSEIF EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE ESCAPED EVAL
EVALUATE EXCEEDED EXCEPT EXCEPTION EXCEPTIONS EXCLUSIVE EXEC EXECUTE EXISTS EXIT EXPLAIN EXPLODE
EXPORT EXPRESSION EXTENDED EXTERNAL EXTRACT FAIL FALSE FAMILY FETCH FIELDS FILE FILTER FILTERING
FINAL FINISH FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT FORWARD FOUND FREE FROM FULL
FUNCTION FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER GROUP GROUPING HANDLER
HASH HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE IMMEDIATE IMPORT IN INCLUDING
INCLUSIVE INCREMENT INCREMENTAL INDEX INDEXED INDEXES INDICATOR INFINITE INITIALLY INLINE INNER
INNTER INOUT INPUT INSENSITIVE INSERT INSTEAD INT INTEGER INTERSECT INTERVAL INTO INVALIDATE IS
ISOLATION ITEM ITEMS ITERATE JOIN KEY KEYS LAG LANGUAGE LARGE LAST LATERAL LEAD LEADING LEAVE LEFT
LENGTH LESS LEVEL LIKE LIMIT LIMITED LINES LIST LOAD LOCAL LOCALTIME LOCALTIMESTAMP LOCATION
LOCATOR LOCK LOCKS LOG LOGED LONG LOOP LOWER MAP MATCH MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD
METRICS MIN MINUS MINUTE MISSING MOD MODE MODIFIES MODIFY MODULE MONTH MULTI MULTISET NAME NAMES
NATIONAL NATURAL NCHAR NCLOB NEW NEXT NO NONE NOT NULL NULLIF NUMBER NUMERIC OBJECT OF OFFLINE
OFFSET OLD ON ONLINE ONLY OPAQUE OPEN OPERATOR OPTION OR ORDER ORDINALITY OTHER OTHERS OUT OUTER
OUTPUT OVER OVERLAPS OVERRIDE OWNER PAD PARALLEL PARAMETER PARAMETERS PARTIAL PARTITION
PARTITIONED PARTITIONS PATH PERCENT PERCENTILE PERMISSION PERMISSIONS PIPE PIPELINED PLAN POOL
POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVATE PRIVILEGES PROCEDURE PROCESSED PROJECT
PROJECTION PROPERTY PROVISIONING PUBLIC PUT QUERY QUIT QUORUM RAISE RANDOM RANGE RANK RAW READ
READS REAL REBUILD RECORD RECURSIVE REDUCE REF REFERENCE REFERENCES REFERENCING REGEXP REGION
REINDEX RELATIVE RELEASE REMAINDER RENAME REPEAT REPLACE REQUEST RESET RESIGNAL RESOURCE RESPONSE
RESTORE RESTRICT RESULT RETURN RETURNING RETURNS REVERSE REVOKE RIGHT ROLE ROLES ROLLBACK ROLLUP
ROUTINE ROW ROWS RULE RULES SAMPLE SATISFIES SAVE SAVEPOINT SCAN SCHEMA SCOPE SCROLL SEARCH
SECOND SECTION SEGMENT SEGMENTS SELECT SELF SEMI SENSITIVE SEPARATE SEQUENCE SERIALIZABLE SESSION
SET SETS SHARD SHARE SHARED SHORT SHOW SIGNAL SIMILAR SIZE SKEWED SMALLINT SNAPSHOT SOME SOURCE
SPACE SPACES SPARSE SPECIFIC SPECIFICTYPE SPLIT SQL SQLCODE SQLERROR SQLEXCEPTION SQLSTATE
SQLWARNING START STATE STATIC STATUS STORAGE STORE STORED STREAM STRING STRUCT STYLE SUB
SUBMULTISET SUBPARTITION SUBSTRING SUBTYPE SUM SUPER SYMMETRIC SYNONYM SYSTEM TABLE TABLESAMPLE
TEMP TEMPORARY TERMINATED TEXT THAN THEN THROUGHPUT TIME TIMESTAMP TIMEZONE TINYINT TO TOKEN
TOTAL TOUCH TRAILING TRANSACTION TRANSFORM TRANSLATE TRANSLATION TREAT TRIGGER TRIM TRUE TRUNCATE
TTL TUPLE TYPE UNDER UNDO UNION UNIQUE UNIT UNKNOWN UNLOGGED UNNEST UNPROCESSED UNSIGNED UNTIL
UPDATE UPPER URL USAGE USE USER USERS USING UUID VACUUM VALUE VALUED VALUES VARCHAR VARIABLE
VARIANCE VARINT VARYING VIEW VIEWS VIRTUAL VOID WAIT WHEN WHENEVER WHERE WHILE WINDOW WITH WITHIN
WITHOUT WORK WRAPPED WRITE YEAR ZONE
""".split()
)

_TOKEN = re.compile(
    r"\s*(?:(?P<cmp><>|<=|>=|=|<|>)|(?P<punct>[(),.\[\]+\-])|(?P<name>#[A-Za-z0-9_]+)"
    r"|(?P<value>:[A-Za-z0-9_]+)|(?P<num>\d+)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}
_COND_FUNCS = {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"}
MAX_EXPRESSION_BYTES = 4096  # DynamoDB's limit for any expression string
MAX_NESTING = 64  # parentheses and NOT; deeper than any real condition, far below Python's stack


@dataclass(frozen=True)
class Tok:
    kind: str  # cmp punct name value num ident kw end
    text: str
    pos: int


def tokenize(expr: str, what: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    n = len(expr)
    while pos < n:
        if expr[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ExpressionError(
                f"Invalid {what}: Syntax error; token: {expr[pos]!r}, "
                f"near: {expr[max(0, pos - 5) : pos + 5]!r}",
                expr,
                pos,
            )
        kind = m.lastgroup or ""
        text = m.group(kind)
        start = m.start(kind)
        if kind == "ident" and text.upper() in _KEYWORDS:
            kind, text = "kw", text.upper()
        toks.append(Tok(kind, text, start))
        pos = m.end()
    toks.append(Tok("end", "", n))
    return toks


# -- AST
@dataclass(frozen=True)
class Path:
    parts: tuple[Any, ...]  # str (attribute name or #placeholder) | int (list index)
    pos: int


@dataclass(frozen=True)
class Val:
    name: str
    pos: int


@dataclass(frozen=True)
class Size:
    arg: Any  # Path, or a Val / Size, which evaluation validates
    pos: int


@dataclass(frozen=True)
class Func:
    name: str
    args: tuple[Any, ...]
    pos: int


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Between:
    x: Any
    lo: Any
    hi: Any


@dataclass(frozen=True)
class In:
    x: Any
    options: tuple[Any, ...]


@dataclass(frozen=True)
class Bool:
    op: str  # AND OR NOT
    args: tuple[Any, ...]  # AND and OR hold a whole chain, so a long chain is not a deep tree


@dataclass(frozen=True)
class Arith:
    op: str
    left: Any
    right: Any


class Parser:
    def __init__(self, expr: str, what: str) -> None:
        if not isinstance(expr, str) or not expr.strip():
            raise ExpressionError(f"Invalid {what}: The expression can not be empty;", expr or "", 0)
        try:
            size = len(expr.encode("utf-8"))
        except UnicodeEncodeError as e:
            raise ExpressionError(
                f"Invalid {what}: The expression is not valid Unicode (a lone surrogate at "
                f"position {e.start}); expressions are UTF-8 text",
                expr.encode("utf-8", "replace").decode("utf-8"),
                e.start,
            ) from None
        if size > MAX_EXPRESSION_BYTES:
            raise ExpressionError(
                f"Invalid {what}: Expression size has exceeded the maximum allowed size; {size} bytes > 4 KB"
            )
        self.depth = 0
        self.expr = expr
        self.what = what
        self.toks = tokenize(expr, what)
        self.i = 0
        self.names: set[str] = set()
        self.values: set[str] = set()
        self.parenthesized: Any = None  # the node the last "( ... )" held

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def error(self, tok: Tok | None = None, why: str = "Syntax error") -> ExpressionError:
        tok = tok or self.tok
        shown = tok.text or "<EOF>"
        near = self.expr[max(0, tok.pos - 10) : tok.pos + len(tok.text) + 10].strip()
        return ExpressionError(
            f'Invalid {self.what}: {why}; token: "{shown}", near: "{near}"', self.expr, tok.pos
        )

    def take(self, kind: str, text: str | None = None) -> Tok:
        t = self.tok
        if t.kind != kind or (text is not None and t.text != text):
            raise self.error()
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> Tok | None:
        t = self.tok
        if t.kind == kind and (text is None or t.text == text):
            self.i += 1
            return t
        return None

    def done(self) -> None:
        if self.tok.kind != "end":
            raise self.error()

    # -- operands
    def path(self) -> Path:
        start = self.tok
        parts: list[Any] = [self._path_name()]
        while True:
            if self.accept("punct", "."):
                parts.append(self._path_name())
            elif self.accept("punct", "["):
                num = self.take("num")
                parts.append(int(num.text))
                self.take("punct", "]")
            else:
                return Path(tuple(parts), start.pos)

    def _path_name(self) -> str:
        t = self.tok
        if t.kind == "name":
            self.i += 1
            self.names.add(t.text)
            return t.text
        if t.kind == "ident":
            if t.text.upper() in RESERVED:
                raise ExpressionError(
                    f"Invalid {self.what}: Attribute name is a reserved keyword; reserved keyword: {t.text}",
                    self.expr,
                    t.pos,
                )
            self.i += 1
            return t.text
        raise self.error()

    def operand(self) -> Any:
        t = self.tok
        if t.kind == "value":
            self.i += 1
            self.values.add(t.text)
            return Val(t.text, t.pos)
        if t.kind == "ident" and t.text == "size" and self.toks[self.i + 1].text == "(":
            self.i += 2
            arg = self.operand()
            self.take("punct", ")")
            if isinstance(arg, Size):  # a size is a number, which has none
                raise self.error(
                    t,
                    "Incorrect operand type for operator or function; "
                    "operator or function: size, operand type: N",
                )
            return Size(arg, t.pos)
        if t.kind in ("ident", "name"):
            return self.path()
        raise self.error()

    # -- conditions
    def condition(self) -> Any:
        terms = [self.conj()]
        while self.accept("kw", "OR"):
            terms.append(self.conj())
        return terms[0] if len(terms) == 1 else Bool("OR", tuple(terms))

    def conj(self) -> Any:
        terms = [self.neg()]
        while self.accept("kw", "AND"):
            terms.append(self.neg())
        return terms[0] if len(terms) == 1 else Bool("AND", tuple(terms))

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(why=f"The expression is nested more than {MAX_NESTING} levels deep")

    def neg(self) -> Any:
        if self.tok.kind == "kw" and self.tok.text == "NOT":
            self._deeper()
            self.i += 1
            node = Bool("NOT", (self.neg(),))
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Any:
        t = self.tok
        if t.kind == "punct" and t.text == "(":
            self._deeper()
            self.i += 1
            inner = self.condition()
            if inner is self.parenthesized:  # "((a = b))": DynamoDB refuses the second pair
                raise self.error(t, "The expression has redundant parentheses")
            self.take("punct", ")")
            self.depth -= 1
            self.parenthesized = inner
            return inner
        if t.kind == "ident" and self.toks[self.i + 1].text == "(" and t.text in _COND_FUNCS:
            return self.function()
        if t.kind == "ident" and self.toks[self.i + 1].text == "(" and t.text != "size":
            raise self.error(t, f"Invalid function name; function: {t.text}")
        left = self.operand()
        if self.accept("kw", "BETWEEN"):
            lo = self.operand()
            self.take("kw", "AND")
            return Between(left, lo, self.operand())
        if self.accept("kw", "IN"):
            self.take("punct", "(")
            opts = [self.operand()]
            while self.accept("punct", ","):
                opts.append(self.operand())
            self.take("punct", ")")
            if len(opts) > 100:
                raise self.error(t, "The IN operator takes at most 100 operands")
            return In(left, tuple(opts))
        op = self.tok
        if op.kind != "cmp":
            raise self.error()
        self.i += 1
        return Cmp(op.text, left, self.operand())

    def function(self) -> Func:
        """DynamoDB parses any operands and then checks each function's own rules: a path
        where the function reads an attribute, a value where it takes a constant."""
        t = self.take("ident")
        self.take("punct", "(")
        args: list[Any] = [self.operand()]
        while self.accept("punct", ","):
            args.append(self.operand())
        self.take("punct", ")")
        want = 1 if t.text in ("attribute_exists", "attribute_not_exists") else 2
        if len(args) != want:
            raise self.error(
                t,
                f"Incorrect number of operands for operator or function; "
                f"operator or function: {t.text}, number of operands: {len(args)}",
            )
        if want == 1 and not isinstance(args[0], Path):
            raise self.error(
                t, f"Operator or function requires a document path; operator or function: {t.text}"
            )
        if t.text == "attribute_type" and not isinstance(args[1], Val):
            raise self.error(
                t,
                "Incorrect operand type for operator or function; operator or function: "
                "attribute_type; the type must be a value placeholder (e.g. :type)",
            )
        if (
            t.text == "contains"
            and isinstance(args[0], Path)
            and args[0].parts == getattr(args[1], "parts", None)
        ):
            raise self.error(
                t,
                "The first and second operands of the function are the same attribute; "
                "operator or function: contains",
            )
        return Func(t.text, tuple(args), t.pos)

    # -- updates
    def update(self) -> dict[str, list[Any]]:
        clauses: dict[str, list[Any]] = {}
        while self.tok.kind != "end":
            kw = self.tok
            if kw.kind != "kw" or kw.text not in ("SET", "REMOVE", "ADD", "DELETE"):
                raise self.error()
            self.i += 1
            if kw.text in clauses:
                raise self.error(kw, f'The "{kw.text}" section can only be used once in an update expression')
            actions = [self._action(kw.text)]
            while self.accept("punct", ","):
                actions.append(self._action(kw.text))
            clauses[kw.text] = actions
        if not clauses:
            raise self.error()
        return clauses

    def _action(self, kind: str) -> Any:
        p = self.path()
        if kind == "REMOVE":
            return (p,)
        if kind == "SET":
            self.take("cmp", "=")
            return (p, self._set_value())
        return (p, self.operand())

    def _set_value(self) -> Any:
        left = self._set_term()
        t = self.tok
        if t.kind == "punct" and t.text in "+-":
            self.i += 1
            return Arith(t.text, left, self._set_term())
        return left

    def _set_term(self) -> Any:
        t = self.tok
        if t.kind == "ident" and self.toks[self.i + 1].text == "(":
            if t.text not in ("if_not_exists", "list_append"):
                raise self.error(t, f"Invalid function name; function: {t.text}")
            self.i += 2
            a = self._set_term()
            self.take("punct", ",")
            b = self._set_term()
            self.take("punct", ")")
            if t.text == "if_not_exists" and not isinstance(a, Path):
                raise self.error(
                    t, "Operator or function requires a document path; operator or function: if_not_exists"
                )
            if t.text == "list_append" and any(
                isinstance(x, Func) and x.name == "list_append" for x in (a, b)
            ):
                raise self.error(
                    t,
                    "The function is not allowed to be used this way in an expression; function: list_append",
                )
            return Func(t.text, (a, b), t.pos)
        return self.operand()


@functools.lru_cache(maxsize=4096)
def parse_condition(
    expr: str, what: str = "ConditionExpression"
) -> tuple[Any, frozenset[str], frozenset[str]]:
    p = Parser(expr, what)
    tree = p.condition()
    p.done()
    return tree, frozenset(p.names), frozenset(p.values)


@functools.lru_cache(maxsize=4096)
def parse_update(expr: str) -> tuple[dict[str, list[Any]], frozenset[str], frozenset[str]]:
    p = Parser(expr, "UpdateExpression")
    tree = p.update()
    return tree, frozenset(p.names), frozenset(p.values)


@functools.lru_cache(maxsize=1024)
def parse_projection_paths(expr: str) -> tuple[tuple[Path, ...], frozenset[str]]:
    p = Parser(expr, "ProjectionExpression")
    paths = [p.path()]
    while p.accept("punct", ","):
        paths.append(p.path())
    p.done()
    return tuple(paths), frozenset(p.names)


def used_placeholders(expr: str | None, kind: str) -> tuple[frozenset[str], frozenset[str]]:
    if not expr:
        return frozenset(), frozenset()
    if kind == "update":
        _, n, v = parse_update(expr)
    elif kind == "projection":
        _, n = parse_projection_paths(expr)
        v = frozenset()
    else:
        _, n, v = parse_condition(expr)
    return n, v
