"""The SQL sandbox: user queries run in a separate DuckDB process that may only read.

DuckDB's own guidance for untrusted SQL is to run it in a separate process with application-level
timeouts: inside one process some work cannot be interrupted or capped (a two-gigabyte
``repeat(...)`` is one uninterruptible allocation that ``memory_limit`` does not count). So a
query runs in a worker process (``python -m eventlake.resources.sql_sandbox``) with an address
space limit, and the parent kills the worker when the query outlives its timeout; the next
query starts a fresh worker.

Inside the worker, three locks stack up:

* **Only reads reach the engine.** Each statement is parsed by DuckDB (``extract_statements``,
  then ``json_serialize_sql``, which serialises SELECT statements only); ``EXPLAIN [ANALYZE]``
  is accepted only around a statement that passes the same check, and the worker executes the
  exact text it checked. Every table function in the parsed tree must be on an allow-list of
  readers and generators: functions that change the instance (``enable_logging``,
  ``checkpoint``), run SQL from a string (``query``) or scan memory (``arrow_scan``) are refused.
* **Only the lake is reachable.** ``allowed_directories`` names the lake folder, then
  ``enable_external_access=false`` and ``lock_configuration=true``; spilling is off
  (``temp_directory=''``), so DuckDB adds no working folder of its own to the allowed ones.
  Extensions neither install nor load, secrets are not read from disk.
* **Nothing outlives a query.** A query runs on its own cursor; its catalog views are temporary
  and go with the cursor, and the checks above keep anything else from being created.

The worker's answers are read as JSON and Arrow IPC only, never unpickled, so a worker that a
query managed to subvert still cannot run code in the parent.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import EventlakeError

# Table functions a read-only query may call: readers of the lake, generators, and
# introspection of the query's own (empty, temporary) catalog.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "repeat",
        "repeat_row",
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "read_csv",
        "read_csv_auto",
        "sniff_csv",
        "read_json",
        "read_json_auto",
        "read_ndjson",
        "read_ndjson_auto",
        "read_json_objects",
        "read_json_objects_auto",
        "read_ndjson_objects",
        "read_text",
        "read_blob",
        "glob",
        "json_each",
        "json_tree",
        "duckdb_columns",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_types",
        "duckdb_functions",
        "duckdb_schemas",
        "duckdb_databases",
        "duckdb_keywords",
        "pragma_table_info",
        "pragma_show",
        "pragma_version",
        "histogram",
        "histogram_values",
        "summary",
    }
)

_FRAME = struct.Struct(">Q")


class Refused(EventlakeError):
    """The statement is not a read the sandbox runs."""


class LimitReached(EventlakeError):
    """The query needed more memory than the sandbox allows."""


# -- the guard (runs in the worker; importable for tests)


def _walk(node: Any, table_functions: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            table_functions.add(str(fn.get("function_name", "")).lower())
        for value in node.values():
            _walk(value, table_functions)
    elif isinstance(node, list):
        for value in node:
            _walk(value, table_functions)


def _check_select(con: Any, text: str) -> None:
    raw = con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0]
    tree = json.loads(raw)
    if tree.get("error"):
        raise Refused(f"only SELECT queries are allowed here: {tree.get('error_message')}")
    if len(tree.get("statements", ())) != 1:
        raise Refused("each statement must be exactly one SELECT")
    functions: set[str] = set()
    _walk(tree, functions)
    bad = sorted(functions - ALLOWED_TABLE_FUNCTIONS)
    if bad:
        raise Refused(
            f"table function {bad[0]}() is not allowed in read-only queries; "
            f"allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}"
        )


def _explained(con: Any, text: str) -> str:
    """``EXPLAIN [ANALYZE] <select>``, rebuilt from the parts that passed the check, so what runs
    is what was checked. Options (``EXPLAIN (FORMAT json)``) and nesting are refused."""
    import duckdb

    tokens = duckdb.tokenize(text)
    words = [(pos, kind) for pos, kind in tokens if kind != duckdb.token_type.comment]
    if not words or text[words[0][0] :].split(None, 1)[0].upper() != "EXPLAIN":
        raise Refused("only SELECT queries are allowed here, not EXPLAIN in this form")
    prefix = "EXPLAIN "
    rest_at = words[1][0] if len(words) > 1 else len(text)
    if len(words) > 1 and text[rest_at:].split(None, 1)[0].upper() in ("ANALYZE", "ANALYSE"):
        prefix = "EXPLAIN ANALYZE "
        rest_at = words[2][0] if len(words) > 2 else len(text)
    inner = text[rest_at:]
    try:
        inner_statements = duckdb.extract_statements(inner)
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as e:
        raise Refused(f"only SELECT queries are allowed here; EXPLAIN takes no options here: {e}") from None
    if len(inner_statements) != 1 or inner_statements[0].type != duckdb.StatementType.SELECT:
        kind = inner_statements[0].type.name if len(inner_statements) == 1 else "several statements"
        raise Refused(f"only SELECT queries are allowed here, not EXPLAIN of {kind}")
    _check_select(con, inner)
    return prefix + inner


_CHECKER: Any = None


def _checker() -> Any:
    """A DuckDB instance that only parses: starting one costs more than checking a query."""
    global _CHECKER
    if _CHECKER is None:
        import duckdb

        _CHECKER = duckdb.connect(config={"enable_external_access": False})
        _CHECKER.execute("SET lock_configuration=true")
    return _CHECKER


def checked_statements(query: str) -> list[str]:
    """The statements of ``query`` as they will run, each one a read; raises :class:`Refused`."""
    import duckdb

    statements = duckdb.extract_statements(query)  # a syntax error is the query's error
    if not statements:
        raise Refused("empty query")
    out = []
    checker = _checker().cursor()
    try:
        for st in statements:
            if st.type == duckdb.StatementType.SELECT:
                _check_select(checker, st.query)
                out.append(st.query)
            elif st.type == duckdb.StatementType.EXPLAIN:
                out.append(_explained(checker, st.query))
            else:
                raise Refused(
                    f"only SELECT queries are allowed here, not {st.type.name}; "
                    "use app.sql(query, readonly=False) from trusted code to change the warehouse"
                )
    finally:
        checker.close()
    return out


# -- the worker process


def _lock(con: Any, roots: list[str]) -> None:
    dirs = ", ".join("'" + r.replace("'", "''") + "'" for r in roots)
    con.execute(f"SET allowed_directories=[{dirs}]")
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")


def _config(memory_mb: int, threads: int) -> dict[str, Any]:
    config: dict[str, Any] = {"threads": threads} if threads > 0 else {}
    return config | {
        "memory_limit": f"{memory_mb}MB",
        "temp_directory": "",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_persistent_secrets": False,
        "python_enable_replacements": False,
        # A lake object rewritten within a second keeps its size and mtime: never serve a copy.
        "enable_external_file_cache": False,
    }


class _Worker:
    def __init__(self, memory_mb: int, threads: int) -> None:
        self.memory_mb = memory_mb
        self.threads = threads
        self._bases: dict[tuple[str, ...], Any] = {}

    def _base(self, roots: list[str]) -> Any:
        import duckdb

        key = tuple(roots)
        base = self._bases.get(key)
        if base is None:
            if len(self._bases) >= 4:
                self._bases.pop(next(iter(self._bases))).close()
            base = duckdb.connect(config=_config(self.memory_mb, self.threads))
            _lock(base, roots)
            self._bases[key] = base
        return base

    def run(self, request: dict[str, Any]) -> Any:
        import duckdb
        import pyarrow as pa

        statements = checked_statements(request["query"])
        roots: list[str] = request["roots"]
        warehouse = request.get("warehouse")
        if warehouse or not request.get("cache", True):
            # A warehouse file, or a lake staged for this one query: an instance of its own.
            config = _config(self.memory_mb, self.threads)
            con = duckdb.connect(warehouse or ":memory:", read_only=bool(warehouse), config=config)
            _lock(con, roots)
            for sql in request["setup"]:
                con.execute(sql)
        else:
            con = self._base(roots).cursor()
            for sql in request["setup"]:
                con.execute(sql)
        try:
            for sql in statements[:-1]:
                con.execute(sql).fetchall()  # reads: run for their errors, results dropped
            rel = con.sql(statements[-1])
            table = rel.to_arrow_table() if rel is not None else pa.table({})
        finally:
            con.close()
        return table


def _write(out: Any, header: dict[str, Any], payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    out.write(_FRAME.pack(len(data)) + data + _FRAME.pack(len(payload)) + payload)
    out.flush()


def _read_frame(stream: Any) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (n,) = _FRAME.unpack(head)
    return bytes(stream.read(n))


def _serve(memory_mb: int, threads: int, address_space_mb: int) -> None:
    import resource

    # The protocol owns the original stdout; anything DuckDB or a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if address_space_mb > 0:
        limit = address_space_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import duckdb
    import pyarrow as pa

    worker = _Worker(memory_mb, threads)
    stdin = sys.stdin.buffer
    _write(out, {"ok": True, "ready": True})
    while True:
        frame = _read_frame(stdin)
        if frame is None:
            return
        try:
            table = worker.run(json.loads(frame))
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            _write(out, {"ok": True}, sink.getvalue().to_pybytes())
        except Refused as e:
            _write(out, {"ok": False, "kind": "refused", "message": str(e)})
        except (duckdb.OutOfMemoryException, MemoryError) as e:
            _write(out, {"ok": False, "kind": "memory", "message": str(e)[:500]})
        except duckdb.Error as e:
            _write(out, {"ok": False, "kind": "query", "message": str(e)})
        except Exception as e:  # a result Arrow cannot carry, say: the query's error, not a crash
            _write(out, {"ok": False, "kind": "query", "message": f"{type(e).__name__}: {e}"})


# -- the parent's side


class SandboxError(EventlakeError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _worker_env() -> dict[str, str]:
    """The worker needs to import eventlake and nothing of the parent's secrets."""
    # Absolute, since the worker starts in "/".
    env = {"PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in sys.path if p)}
    for name in ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    chunks = []
    while n > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class Sandbox:
    """A pool of worker processes with one memory cap; idle workers are kept for reuse."""

    def __init__(self, memory_mb: int, threads: int) -> None:
        self.memory_mb = memory_mb
        self.threads = threads
        self._idle: list[_Process] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _start(self) -> _Process:
        # DuckDB and Python map their libraries and thread stacks beyond the buffer memory
        # that memory_limit governs; the address-space cap leaves room for them.
        address_space = self.memory_mb * 2 + 2048
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventlake.resources.sql_sandbox",
                str(self.memory_mb),
                str(self.threads),
                str(address_space),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_worker_env(),
            close_fds=True,
            # Workers outlive the directory they were started from (idle ones are reused by
            # later apps); a worker whose working directory was deleted died on its next query.
            cwd="/",
        )
        process = _Process(proc)
        assert proc.stdout is not None
        try:
            # Starting Python and DuckDB is not the query's time: wait for the worker's hello.
            fd = proc.stdout.fileno()
            deadline = time.monotonic() + 120
            for _ in range(2):
                (n,) = _FRAME.unpack(_read_exact(fd, _FRAME.size, deadline))
                _read_exact(fd, n, deadline)
        except (TimeoutError, EOFError, OSError):
            process.kill()
            raise SandboxError("start", "the SQL sandbox process did not start") from None
        return process

    def run(self, request: dict[str, Any], timeout_s: float) -> Any:
        """The query's result as an Arrow table; raises :class:`SandboxError`."""
        import pyarrow as pa

        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = self._start()
        assert worker.proc.stdin is not None and worker.proc.stdout is not None
        data = json.dumps(request).encode()
        deadline = time.monotonic() + timeout_s
        try:
            worker.proc.stdin.write(_FRAME.pack(len(data)) + data)
            worker.proc.stdin.flush()
            fd = worker.proc.stdout.fileno()
            (n,) = _FRAME.unpack(_read_exact(fd, _FRAME.size, deadline))
            header = json.loads(_read_exact(fd, n, deadline))
            (n,) = _FRAME.unpack(_read_exact(fd, _FRAME.size, deadline))
            payload = _read_exact(fd, n, deadline)
        except TimeoutError:
            worker.kill()
            raise SandboxError("timeout", "") from None
        except (EOFError, BrokenPipeError, OSError):
            worker.kill()
            status = worker.proc.returncode
            raise SandboxError("died", f"the sandbox process ended, status {status}") from None
        except BaseException:
            worker.kill()
            raise
        with self._lock:
            keep = len(self._idle) < 4
            if keep:
                self._idle.append(worker)
        if not keep:
            worker.close()
        if not header.get("ok"):
            raise SandboxError(str(header.get("kind")), str(header.get("message")))
        return pa.ipc.open_stream(payload).read_all()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if os.getpid() != self._pid:
            return  # a forked child must not touch its parent's workers
        for w in idle:
            w.close()


_SANDBOXES: dict[tuple[int, int], Sandbox] = {}
_SANDBOXES_LOCK = threading.Lock()


def sandbox(memory_mb: int, threads: int) -> Sandbox:
    """The process's pool for this cap, shared by every engine (workers hold no app state)."""
    key = (memory_mb, threads)
    with _SANDBOXES_LOCK:
        box = _SANDBOXES.get(key)
        if box is None or box._pid != os.getpid():
            box = _SANDBOXES[key] = Sandbox(memory_mb, threads)
        return box


@atexit.register
def _close_all() -> None:
    with _SANDBOXES_LOCK:
        boxes = list(_SANDBOXES.values())
        _SANDBOXES.clear()
    for box in boxes:
        box.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
