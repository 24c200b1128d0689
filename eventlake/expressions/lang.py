"""DynamoDB's expression language: condition/filter, update, key condition and projection.

Written by hand because no maintained Python library parses *and evaluates* this grammar with
DynamoDB's semantics (boto3 only builds expressions; moto's parser is internal to moto). The
parser is a small recursive descent over a tokenizer; parsed expressions are cached by text,
and placeholders are resolved at evaluation so one parse serves every request.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..errors import ExpressionError, ValidationError
from .values import _CTX, TYPES, normalize, type_name

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
MISSING: Any = object()
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
    path: Path


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
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Arith:
    op: str
    left: Any
    right: Any


class Parser:
    def __init__(self, expr: str, what: str) -> None:
        if not isinstance(expr, str) or not expr.strip():
            raise ExpressionError(f"Invalid {what}: The expression can not be empty;", expr or "", 0)
        if len(expr.encode("utf-8")) > MAX_EXPRESSION_BYTES:
            raise ExpressionError(
                f"Invalid {what}: Expression size has exceeded the maximum allowed size; "
                f"{len(expr.encode('utf-8'))} bytes > 4 KB"
            )
        self.depth = 0
        self.expr = expr
        self.what = what
        self.toks = tokenize(expr, what)
        self.i = 0
        self.names: set[str] = set()
        self.values: set[str] = set()

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
            p = self.path()
            self.take("punct", ")")
            return Size(p)
        if t.kind in ("ident", "name"):
            return self.path()
        raise self.error()

    # -- conditions
    def condition(self) -> Any:
        left = self.conj()
        while self.accept("kw", "OR"):
            left = Bool("OR", (left, self.conj()))
        return left

    def conj(self) -> Any:
        left = self.neg()
        while self.accept("kw", "AND"):
            left = Bool("AND", (left, self.neg()))
        return left

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
            self.take("punct", ")")
            self.depth -= 1
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
        t = self.take("ident")
        self.take("punct", "(")
        args: list[Any] = [self.path()]
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
            a = self.path() if t.text == "if_not_exists" else self._set_term()
            self.take("punct", ",")
            b = self._set_term()
            self.take("punct", ")")
            return Func(t.text, (a, b), t.pos)
        return self.operand()


@functools.lru_cache(maxsize=4096)
def _parse_condition(
    expr: str, what: str = "ConditionExpression"
) -> tuple[Any, frozenset[str], frozenset[str]]:
    p = Parser(expr, what)
    tree = p.condition()
    p.done()
    return tree, frozenset(p.names), frozenset(p.values)


@functools.lru_cache(maxsize=4096)
def _parse_update(expr: str) -> tuple[dict[str, list[Any]], frozenset[str], frozenset[str]]:
    p = Parser(expr, "UpdateExpression")
    tree = p.update()
    return tree, frozenset(p.names), frozenset(p.values)


@functools.lru_cache(maxsize=1024)
def _parse_projection(expr: str) -> tuple[tuple[Path, ...], frozenset[str]]:
    p = Parser(expr, "ProjectionExpression")
    paths = [p.path()]
    while p.accept("punct", ","):
        paths.append(p.path())
    p.done()
    return tuple(paths), frozenset(p.names)


def placeholders(expr: str | None, kind: str) -> tuple[frozenset[str], frozenset[str]]:
    if not expr:
        return frozenset(), frozenset()
    if kind == "update":
        _, n, v = _parse_update(expr)
    elif kind == "projection":
        _, n = _parse_projection(expr)
        v = frozenset()
    else:
        _, n, v = _parse_condition(expr)
    return n, v


# -- evaluation
class Env:
    __slots__ = ("expr", "names", "values")

    def __init__(self, expr: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.expr = expr
        self.names = names or {}
        self.values = values or {}

    def name(self, part: str, pos: int) -> str:
        if part.startswith("#"):
            if part not in self.names:
                raise ExpressionError(
                    f"An expression attribute name used in the document path is not defined; "
                    f"attribute name: {part}",
                    self.expr,
                    pos,
                )
            return self.names[part]
        return part

    def value(self, v: Val) -> Any:
        if v.name not in self.values:
            raise ExpressionError(
                f"An expression attribute value used in expression is not defined; attribute value: {v.name}",
                self.expr,
                v.pos,
            )
        return normalize(self.values[v.name], v.name)

    def resolve(self, item: dict[str, Any] | None, path: Path) -> Any:
        cur: Any = item if item is not None else MISSING
        for part in path.parts:
            if cur is MISSING:
                return MISSING
            if isinstance(part, int):
                cur = cur[part] if isinstance(cur, list) and part < len(cur) else MISSING
            else:
                key = self.name(part, path.pos)
                cur = cur.get(key, MISSING) if isinstance(cur, dict) else MISSING
        return cur

    def operand(self, item: dict[str, Any] | None, node: Any) -> Any:
        if isinstance(node, Val):
            return self.value(node)
        if isinstance(node, Path):
            return self.resolve(item, node)
        if isinstance(node, Size):
            v = self.resolve(item, node.path)
            if v is MISSING or isinstance(v, (bool, Decimal)) or v is None:
                return MISSING
            return Decimal(len(v))
        raise AssertionError(node)


def _comparable(a: Any, b: Any) -> bool:
    ta, tb = type_name(a), type_name(b)
    return ta == tb and ta in ("S", "N", "B")


def _key(v: Any) -> Any:
    return v.encode("utf-8") if isinstance(v, str) else v


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return op == "<>"
    if op == "=":
        return type_name(a) == type_name(b) and a == b
    if op == "<>":
        return not (type_name(a) == type_name(b) and a == b)
    if not _comparable(a, b):
        return False
    ka, kb = _key(a), _key(b)
    return {"<": ka < kb, "<=": ka <= kb, ">": ka > kb, ">=": ka >= kb}[op]


def _eval(env: Env, item: dict[str, Any] | None, node: Any) -> bool:
    if isinstance(node, Bool):
        if node.op == "AND":
            return _eval(env, item, node.args[0]) and _eval(env, item, node.args[1])
        if node.op == "OR":
            return _eval(env, item, node.args[0]) or _eval(env, item, node.args[1])
        return not _eval(env, item, node.args[0])
    if isinstance(node, Cmp):
        return _compare(node.op, env.operand(item, node.left), env.operand(item, node.right))
    if isinstance(node, Between):
        x, lo, hi = (env.operand(item, n) for n in (node.x, node.lo, node.hi))
        if MISSING in (x, lo, hi) or not (_comparable(x, lo) and _comparable(x, hi)):
            return False
        if _key(lo) > _key(hi):
            raise ExpressionError(
                "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be "
                f"greater than or equal to lower bound; lower operand: {lo}, upper operand: {hi}",
                env.expr,
                0,
            )
        return _key(lo) <= _key(x) <= _key(hi)
    if isinstance(node, In):
        x = env.operand(item, node.x)
        return x is not MISSING and any(_compare("=", x, env.operand(item, o)) for o in node.options)
    if isinstance(node, Func):
        target = env.resolve(item, node.args[0])
        if node.name == "attribute_exists":
            return target is not MISSING
        if node.name == "attribute_not_exists":
            return target is MISSING
        arg = env.operand(item, node.args[1])
        if node.name == "attribute_type":
            if not isinstance(arg, str) or arg not in TYPES:
                raise ExpressionError(
                    f"Invalid ConditionExpression: Invalid attribute type name found; type: {arg}, "
                    f"valid types: {{{', '.join(TYPES)}}}",
                    env.expr,
                    node.pos,
                )
            return target is not MISSING and type_name(target) == arg
        if target is MISSING or arg is MISSING:
            return False
        if node.name == "begins_with":
            same = (isinstance(target, str) and isinstance(arg, str)) or (
                isinstance(target, bytes) and isinstance(arg, bytes)
            )
            return same and target.startswith(arg)
        # contains
        if isinstance(target, str):
            return isinstance(arg, str) and arg in target
        if isinstance(target, (set, frozenset)):
            return arg in target
        if isinstance(target, list):
            return any(_compare("=", x, arg) for x in target)
        if isinstance(target, bytes):
            return isinstance(arg, bytes) and arg in target
        return False
    raise AssertionError(node)


def check_condition(
    expression: str,
    item: dict[str, Any] | None,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    what: str = "ConditionExpression",
) -> bool:
    """Evaluate a condition or filter expression against an item (``None``: no item)."""
    return _compiled(expression, what)(item, names, values)


def evaluate_condition(
    expression: str,
    item: dict[str, Any] | None,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    what: str = "ConditionExpression",
) -> bool:
    """The reference evaluator: a walk of the parsed tree. :func:`check_condition` runs the
    same semantics compiled into closures; the tests hold the two to the same answers."""
    tree, _, _ = _parse_condition(expression, what)
    return _eval(Env(expression, names, values), item, tree)


@functools.lru_cache(maxsize=4096)
def condition_on_missing(expression: str, what: str = "ConditionExpression") -> bool | None:
    """The condition's value for a missing item when it is fixed by the expression alone, else
    None. A put asks on every call whether the condition holds for a missing item (then it
    inserts first); for ``attribute_not_exists(id) OR ...`` the answer needs no evaluation.
    Only parts that touch no placeholder value are decided here, in the reference's order
    of evaluation, so an invalid value raises exactly when the reference would."""
    tree, _, _ = _parse_condition(expression, what)
    return _on_missing(tree)


def _on_missing(node: Any) -> bool | None:
    if isinstance(node, Func) and node.name in ("attribute_exists", "attribute_not_exists"):
        return node.name == "attribute_not_exists"
    if isinstance(node, Cmp) and isinstance(node.left, Path) and isinstance(node.right, Path):
        return node.op == "<>"  # a missing attribute equals nothing
    if isinstance(node, Bool):
        first = _on_missing(node.args[0])
        if node.op == "NOT":
            return None if first is None else not first
        if first is None:
            return None
        if (node.op == "OR" and first) or (node.op == "AND" and not first):
            return first  # the second operand is never evaluated
        return _on_missing(node.args[1])
    return None


# -- compiled conditions
# A condition is evaluated once per conditional write and once per item a filter reads, so
# its tree is turned into nested closures once: the walk above dispatched on node types with
# a chain of isinstance checks at every node of every evaluation. Each closure takes
# ``(item, env)``; the Env is only made when a placeholder must be looked up.
Compiled = Any


@functools.lru_cache(maxsize=4096)
def _compiled(expression: str, what: str) -> Callable[[Any, Any, Any], bool]:
    tree, _, _ = _parse_condition(expression, what)
    test = _compile_bool(tree)

    def run(item: dict[str, Any] | None, names: dict[str, str] | None, values: dict[str, Any] | None) -> bool:
        return test(item, _Lazy(expression, names, values))

    return run


class _Lazy:
    """The placeholders of one evaluation, resolved as they are needed."""

    __slots__ = ("expr", "names", "values")

    def __init__(self, expr: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.expr = expr
        self.names = names
        self.values = values

    def env(self) -> Env:
        return Env(self.expr, self.names, self.values)


def _compile_operand(node: Any) -> Callable[[Any, _Lazy], Any]:
    if isinstance(node, Val):
        name = node.name

        def value(item: Any, lz: _Lazy) -> Any:
            values = lz.values
            if values is not None and name in values:
                return normalize(values[name], name)
            return lz.env().value(node)  # raises: not defined

        return value
    if isinstance(node, Path):
        return _compile_path(node)
    if isinstance(node, Size):
        path = _compile_path(node.path)

        def size(item: Any, lz: _Lazy) -> Any:
            v = path(item, lz)
            if v is MISSING or isinstance(v, (bool, Decimal)) or v is None:
                return MISSING
            return Decimal(len(v))

        return size
    raise AssertionError(node)


def _compile_path(path: Path) -> Callable[[Any, _Lazy], Any]:
    parts = path.parts
    if len(parts) == 1 and isinstance(parts[0], str) and not parts[0].startswith("#"):
        attr = parts[0]

        def top(item: Any, lz: _Lazy) -> Any:
            return MISSING if item is None else item.get(attr, MISSING)

        return top

    def nested(item: Any, lz: _Lazy) -> Any:
        return lz.env().resolve(item, path)

    return nested


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compile_compare(op: str, left: Any, right: Any) -> Callable[[Any, _Lazy], bool]:
    lf, rf = _compile_operand(left), _compile_operand(right)
    if op in _ORDER:
        order = _ORDER[op]

        def ordered(item: Any, lz: _Lazy) -> bool:
            a, b = lf(item, lz), rf(item, lz)
            t = type(a)
            if t is type(b) and (t is Decimal or t is str):
                # UTF-8 preserves code point order, so str order is DynamoDB's byte order.
                return order(a, b)
            return _compare(op, a, b)

        return ordered
    if op == "=":

        def equal(item: Any, lz: _Lazy) -> bool:
            a, b = lf(item, lz), rf(item, lz)
            t = type(a)
            if t is type(b) and (t is Decimal or t is str):
                return a == b
            return _compare(op, a, b)

        return equal

    def other(item: Any, lz: _Lazy) -> bool:
        return _compare(op, lf(item, lz), rf(item, lz))

    return other


def _compile_bool(node: Any) -> Callable[[Any, _Lazy], bool]:
    if isinstance(node, Bool):
        parts = [_compile_bool(a) for a in node.args]
        if node.op == "AND":
            a_, b_ = parts
            return lambda item, lz: a_(item, lz) and b_(item, lz)
        if node.op == "OR":
            a_, b_ = parts
            return lambda item, lz: a_(item, lz) or b_(item, lz)
        (inner,) = parts
        return lambda item, lz: not inner(item, lz)
    if isinstance(node, Cmp):
        return _compile_compare(node.op, node.left, node.right)
    if isinstance(node, Func) and node.name in ("attribute_exists", "attribute_not_exists"):
        target = _compile_path(node.args[0])
        if node.name == "attribute_exists":
            return lambda item, lz: target(item, lz) is not MISSING
        return lambda item, lz: target(item, lz) is MISSING
    # The rarer forms evaluate their node with the reference walk, which raises the same
    # errors at the same moment.
    return lambda item, lz: _eval(lz.env(), item, node)


# -- updates
def _path_key(env: Env, p: Path) -> tuple[Any, ...]:
    return tuple(x if isinstance(x, int) else env.name(x, p.pos) for x in p.parts)


def _update_value(env: Env, item: dict[str, Any], node: Any) -> Any:
    if isinstance(node, Arith):
        a, b = _update_value(env, item, node.left), _update_value(env, item, node.right)
        if not isinstance(a, Decimal) or not isinstance(b, Decimal) or isinstance(a, bool):
            raise ValidationError(
                "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                f"operator: {node.op}, operand type: {type_name(a) if a is not MISSING else 'missing'}"
            )
        return normalize(_CTX.add(a, b) if node.op == "+" else _CTX.subtract(a, b))
    if isinstance(node, Func):
        if node.name == "if_not_exists":
            cur = env.resolve(item, node.args[0])
            return cur if cur is not MISSING else _update_value(env, item, node.args[1])
        a, b = _update_value(env, item, node.args[0]), _update_value(env, item, node.args[1])
        if not isinstance(a, list) or not isinstance(b, list):
            raise ValidationError(
                "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                "operator or function: list_append, operand type: "
                f"{type_name(a) if a is not MISSING else 'missing'}"
            )
        return a + b
    v = env.operand(item, node)
    if v is MISSING:
        raise ValidationError(
            "The provided expression refers to an attribute that does not exist in the item"
        )
    return v


def _container(item: dict[str, Any], key: tuple[Any, ...], expr: str) -> Any:
    cur: Any = item
    for part in key[:-1]:
        nxt = (
            cur[part]
            if isinstance(cur, list) and isinstance(part, int) and part < len(cur)
            else (cur.get(part) if isinstance(cur, dict) and isinstance(part, str) else None)
        )
        if not isinstance(nxt, (dict, list)):
            raise ValidationError("The document path provided in the update expression is invalid for update")
        cur = nxt
    last = key[-1]
    if (isinstance(last, int) and not isinstance(cur, list)) or (
        isinstance(last, str) and not isinstance(cur, dict)
    ):
        raise ValidationError("The document path provided in the update expression is invalid for update")
    return cur


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, set):
        return set(v)
    return v


def apply_update(
    expression: str,
    item: dict[str, Any],
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    key_attributes: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Apply an update expression; returns a new item and never mutates the input. Every
    right-hand side is evaluated against the item as it was before the update, as DynamoDB does."""
    clauses, _, _ = _parse_update(expression)
    env = Env(expression, names, values)
    planned: list[tuple[str, tuple[Any, ...], Any]] = []
    for kind, actions in clauses.items():
        for action in actions:
            p = action[0]
            key = _path_key(env, p)
            if key[0] in key_attributes:
                raise ValidationError(f"Cannot update attribute {key[0]}. This attribute is part of the key")
            if kind == "SET":
                planned.append(("SET", key, _update_value(env, item, action[1])))
            elif kind == "REMOVE":
                planned.append(("REMOVE", key, None))
            else:
                planned.append((kind, key, env.operand(item, action[1])))
    keys = [k for _, k, _ in planned]
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            n = min(len(a), len(b))
            if a[:n] == b[:n]:
                raise ValidationError(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove "
                    f"or rewrite one of these paths; path one: {_show(a)}, path two: {_show(b)}"
                )
    new = _copy(item)
    removals: list[tuple[Any, ...]] = []
    for kind, key, value in planned:
        if kind == "REMOVE":
            removals.append(key)
            continue
        cont = _container(new, key, expression)
        last = key[-1]
        cur = (
            (cont[last] if last < len(cont) else MISSING)
            if isinstance(last, int)
            else cont.get(last, MISSING)
        )
        if kind == "SET":
            if isinstance(last, int) and last >= len(cont):
                cont.append(value)
            else:
                cont[last] = value
        elif kind == "ADD":
            if isinstance(value, Decimal) and not isinstance(value, bool):
                if cur is MISSING:
                    result: Any = value
                elif isinstance(cur, Decimal) and not isinstance(cur, bool):
                    result = normalize(_CTX.add(cur, value))
                else:
                    raise ValidationError(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                        f"operator: ADD, operand type: {type_name(cur)}"
                    )
            elif isinstance(value, set):
                if cur is MISSING:
                    result = set(value)
                elif isinstance(cur, set) and type_name(cur) == type_name(value):
                    result = cur | value
                else:
                    raise ValidationError("An operand in the update expression has an incorrect data type")
            else:
                raise ValidationError(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                    f"operator: ADD, operand type: {type_name(value)}"
                )
            _assign(cont, last, result)
        else:  # DELETE
            if not isinstance(value, set):
                raise ValidationError(
                    "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                    f"operator: DELETE, operand type: {type_name(value)}"
                )
            if cur is MISSING:
                continue
            if not isinstance(cur, set) or type_name(cur) != type_name(value):
                raise ValidationError("An operand in the update expression has an incorrect data type")
            rest = cur - value
            if rest:
                _assign(cont, last, rest)
            else:
                del cont[last]
    # List elements go last to first, so earlier indexes stay valid.
    for key in sorted(removals, key=lambda k: [(-x if isinstance(x, int) else 0) for x in k]):
        try:
            cont = _container(new, key, expression)
        except ValidationError:
            continue
        last = key[-1]
        if isinstance(last, int):
            if last < len(cont):
                del cont[last]
        else:
            cont.pop(last, None)
    return new


def _assign(cont: Any, last: Any, value: Any) -> None:
    if isinstance(last, int) and last >= len(cont):
        cont.append(value)
    else:
        cont[last] = value


def _show(key: tuple[Any, ...]) -> str:
    out = ""
    for k in key:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out or f"[{', '.join(str(k) for k in key)}]"


# -- key conditions
@dataclass(frozen=True)
class KeyCondition:
    partition_value: Any
    sort_op: str | None = None
    sort_args: tuple[Any, ...] = ()

    def matches_sort(self, value: Any) -> bool:
        if self.sort_op is None:
            return True
        if value is None:
            return False
        if self.sort_op == "BETWEEN":
            lo, hi = self.sort_args
            return _comparable(value, lo) and _key(lo) <= _key(value) <= _key(hi)
        if self.sort_op == "begins_with":
            (prefix,) = self.sort_args
            if isinstance(value, str) and isinstance(prefix, str):
                return value.startswith(prefix)
            return isinstance(value, bytes) and isinstance(prefix, bytes) and value.startswith(prefix)
        return _compare(self.sort_op, value, self.sort_args[0])


def parse_key_condition(
    expression: str,
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    partition_key: str,
    sort_key: str | None,
) -> KeyCondition:
    tree, _, _ = _parse_condition(expression, "KeyConditionExpression")
    env = Env(expression, names, values)
    parts = [tree.args[0], tree.args[1]] if isinstance(tree, Bool) and tree.op == "AND" else [tree]
    if any(isinstance(p, Bool) for p in parts):
        raise ValidationError(
            "Invalid KeyConditionExpression: only AND of a partition key condition "
            "and one sort key condition is allowed"
        )
    pk_value: Any = MISSING
    sort: KeyCondition | None = None
    for node in parts:
        if isinstance(node, Func) and node.name == "begins_with":
            attr = _path_key(env, node.args[0])
            if attr != (sort_key,):
                raise ValidationError(f"Query key condition not supported: begins_with on {attr[0]}")
            sort = KeyCondition(None, "begins_with", (env.operand(None, node.args[1]),))
            continue
        if isinstance(node, Between):
            attr = _path_key(env, node.x)
            if attr != (sort_key,):
                raise ValidationError(f"Query key condition not supported: BETWEEN on {attr[0]}")
            sort = KeyCondition(None, "BETWEEN", (env.operand(None, node.lo), env.operand(None, node.hi)))
            continue
        if not isinstance(node, Cmp) or not isinstance(node.left, Path) or not isinstance(node.right, Val):
            raise ValidationError(
                "Invalid KeyConditionExpression: use key = :value, key < :value, ..., BETWEEN or begins_with"
            )
        attr = _path_key(env, node.left)
        if attr == (partition_key,):
            if node.op != "=":
                raise ValidationError("Query key condition not supported: the partition key needs '='")
            pk_value = env.value(node.right)
        elif attr == (sort_key,):
            if node.op == "<>":
                raise ValidationError("Query key condition not supported: '<>' on the sort key")
            sort = KeyCondition(None, node.op, (env.value(node.right),))
        else:
            raise ValidationError(
                f"Query condition missed key schema element: {partition_key}"
                if attr[0] != sort_key
                else f"unknown key attribute {attr[0]}"
            )
    if pk_value is MISSING:
        raise ValidationError(f"Query condition missed key schema element: {partition_key}")
    if sort is None:
        return KeyCondition(pk_value)
    return KeyCondition(pk_value, sort.sort_op, sort.sort_args)


# -- projections
def parse_projection(expression: str, names: dict[str, str] | None) -> list[tuple[Any, ...]]:
    paths, _ = _parse_projection(expression)
    env = Env(expression, names, None)
    return [_path_key(env, p) for p in paths]


def project(item: dict[str, Any], paths: list[tuple[Any, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in paths:
        src: Any = item
        ok = True
        for part in key:
            if isinstance(part, int):
                ok = isinstance(src, list) and part < len(src)
                src = src[part] if ok else None
            else:
                ok = isinstance(src, dict) and part in src
                src = src[part] if ok else None
            if not ok:
                break
        if not ok:
            continue
        dst: Any = out
        for i, part in enumerate(key):
            last = i == len(key) - 1
            nxt_container: Any = [] if (not last and isinstance(key[i + 1], int)) else {}
            if isinstance(dst, list):
                if last:
                    dst.append(src)
                else:
                    dst.append(nxt_container)
                    dst = dst[-1]
            elif last:
                dst[part] = _copy(src)
            else:
                dst = dst.setdefault(part, nxt_container)
    return out


def validate_placeholders(
    expressions: list[str | None],
    names: dict[str, str] | None,
    values: dict[str, Any] | None,
    kinds: list[str] | None = None,
) -> None:
    """DynamoDB refuses unused and undefined placeholders across all expressions of a request."""
    _expression_types(expressions)
    if names is not None and type(names) is not dict and not isinstance(names, dict):
        raise ValidationError("names must be a dict of #placeholder -> attribute name")
    if values is not None and type(values) is not dict and not isinstance(values, dict):
        raise ValidationError("values must be a dict of :placeholder -> value")
    # A request repeats the same expressions and placeholder names call after call: remember
    # the combinations that passed, as given (sorting them was most of the cost).
    key = (
        tuple(expressions),
        tuple(kinds) if kinds else None,
        tuple(names) if names else None,
        tuple(values) if values else None,
    )
    if key in _VALID:
        return
    _validate_placeholders(
        key[0],
        key[1],
        tuple(sorted(names or ())),
        tuple(sorted(values or ())),
    )
    if len(_VALID) >= 4096:
        _VALID.clear()
    _VALID.add(key)


_VALID: set[tuple[Any, ...]] = set()


def validate_condition_placeholders(
    condition: str | None, names: dict[str, str] | None, values: dict[str, Any] | None
) -> None:
    """:func:`validate_placeholders` for a request with one condition (a put or a delete),
    which asks it on every call: the combination seen before is one set lookup."""
    if condition is not None and type(condition) is not str:
        _expression_types([condition])
    if (names is not None and type(names) is not dict) or (values is not None and type(values) is not dict):
        validate_placeholders([condition], names, values)  # the checks with their errors
        return
    key = (condition, tuple(names) if names else None, tuple(values) if values else None)
    if key not in _VALID_ONE:
        validate_placeholders([condition], names, values)
        if len(_VALID_ONE) >= 4096:
            _VALID_ONE.clear()
        _VALID_ONE.add(key)


_VALID_ONE: set[tuple[Any, ...]] = set()


def _expression_types(expressions: list[Any]) -> None:
    for e in expressions:
        if e is not None and not isinstance(e, str):
            raise ValidationError(
                f'an expression must be a string (e.g. "attribute_not_exists(id)"), got '
                f"{type(e).__name__} {e!r:.60}"
            )


@functools.lru_cache(maxsize=4096)
def _validate_placeholders(
    expressions: tuple[str | None, ...],
    kinds: tuple[str, ...] | None,
    names: tuple[str, ...],
    values: tuple[str, ...],
) -> None:
    used_n: set[str] = set()
    used_v: set[str] = set()
    for i, e in enumerate(expressions):
        if not e:
            continue
        kind = kinds[i] if kinds else ("update" if _looks_like_update(e) else "condition")
        n, v = placeholders(e, kind)
        used_n |= n
        used_v |= v
    unused_v = sorted(set(values) - used_v)
    if unused_v:
        raise ValidationError(
            "Value provided in ExpressionAttributeValues unused in expressions: "
            f"keys: {{{', '.join(unused_v)}}}"
        )
    unused_n = sorted(set(names) - used_n)
    if unused_n:
        raise ValidationError(
            "Value provided in ExpressionAttributeNames unused in expressions: "
            f"keys: {{{', '.join(unused_n)}}}"
        )
    missing_v = sorted(used_v - set(values))
    if missing_v:
        raise ExpressionError(
            "An expression attribute value used in expression is not defined; "
            f"attribute value: {missing_v[0]}"
        )
    missing_n = sorted(used_n - set(names))
    if missing_n:
        raise ExpressionError(
            "An expression attribute name used in the document path is not defined; "
            f"attribute name: {missing_n[0]}"
        )


def _looks_like_update(e: str) -> bool:
    head = e.lstrip().split(None, 1)[0].upper() if e.strip() else ""
    return head in ("SET", "REMOVE", "ADD", "DELETE")
