"""Runs compiled Spark SQL scripts in one local SparkSession and writes each
script's result (that of its last statement) as Parquet.

Usage: run_sql.py OUT_ROOT NAME=SQL_FILE [NAME=SQL_FILE ...]

Each SQL_FILE is split into statements at every `;` that lies outside string
literals ('...' and "..." with Spark's backslash escapes), backquoted
identifiers and comments (-- to end of line, /* ... */); empty statements
are skipped. All statements run in order with spark.sql, in a session of
their own (spark.newSession(): same JVM and SparkContext, but the settings
of a script's `SET key=value;` lines and its temporary views do not reach
later scripts). The last statement's result is written, coalesced to one
Parquet file (part-00000-*.parquet, beside Spark's _SUCCESS), to
OUT_ROOT/NAME/, whole or not at all: it is written to OUT_ROOT/.NAME.tmp and
then moved into place, replacing what was there; a failed script leaves no
OUT_ROOT/NAME. Prints the session start time and each script's wall time.
Exits 1, with the first lines of Spark's message, at the first statement
that fails (later scripts are not run); 2 on bad arguments.

Session: master local[2], driver memory 3g, spark.sql.session.timeZone=UTC,
spark.sql.shuffle.partitions=4, no UI, log level WARN, default (non-ANSI)
SQL semantics; Parquet timestamps are written as TIMESTAMP_MICROS (not
Spark's default INT96) and dates/timestamps without calendar rebasing.
Run it with the venv made by benches/spark/setup.sh.
"""

import os
import shutil
import sys
import time

MESSAGE_LINES = 12  # how much of a Spark error to show


def split_statements(sql):
    """The statements of a script: split at `;` outside strings, backquoted
    identifiers and comments. Statements are returned stripped; those that
    are empty (or only comments) are dropped."""
    statements = []
    start = 0
    i = 0
    n = len(sql)
    meaningful = False  # has this statement anything besides space/comments?
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            # A Spark string literal: ends at the same quote, \ escapes the
            # next character. ('it''s' is two adjacent literals to Spark,
            # which it concatenates: this scanner sees them the same way.)
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
            i += 1
            meaningful = True
        elif c == "`":
            # A backquoted identifier: `` inside stands for one backquote.
            i += 1
            while i < n:
                if sql[i] == "`":
                    if i + 1 < n and sql[i + 1] == "`":
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            meaningful = True
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            # Spark's block comments nest.
            depth = 0
            while i < n:
                if sql.startswith("/*", i):
                    depth += 1
                    i += 2
                elif sql.startswith("*/", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    i += 1
        elif c == ";":
            if meaningful:
                statements.append(sql[start:i].strip())
            i += 1
            start = i
            meaningful = False
        else:
            if not c.isspace():
                meaningful = True
            i += 1
    if meaningful:
        statements.append(sql[start:].strip())
    return statements


def first_lines(error):
    """Spark's message for an error, cut to its first lines. For a Java
    exception (a failed job, raise_error, ...) it is the chain of causes,
    outermost first, each without its stack trace, so the root cause shows."""
    java = getattr(error, "java_exception", None)
    if java is not None:
        causes = []
        while java is not None and len(causes) < 8:
            causes.append(java.toString().strip().splitlines()[0])
            java = java.getCause()
        text = "\n".join(causes[:1] + [f"caused by {c}" for c in causes[1:]])
    else:
        text = str(error).strip() or repr(error)
    lines = text.splitlines()
    shown = "\n".join(lines[:MESSAGE_LINES])
    if len(lines) > MESSAGE_LINES:
        shown += f"\n... ({len(lines) - MESSAGE_LINES} more lines)"
    return f"{type(error).__name__}: {shown}"


def parse_args(argv):
    if len(argv) < 3:
        sys.exit("usage: run_sql.py OUT_ROOT NAME=SQL_FILE [NAME=SQL_FILE ...]")
    out_root = os.path.abspath(argv[1])
    jobs = []
    for arg in argv[2:]:
        name, sep, path = arg.partition("=")
        if not sep or not name or not path or "/" in name or name in (".", ".."):
            print(f"run_sql.py: expected NAME=SQL_FILE, got {arg!r}", file=sys.stderr)
            sys.exit(2)
        if not os.path.isfile(path):
            print(f"run_sql.py: no SQL file {path!r}", file=sys.stderr)
            sys.exit(2)
        with open(path, encoding="utf-8") as f:
            statements = split_statements(f.read())
        if not statements:
            print(f"run_sql.py: {path}: no statements", file=sys.stderr)
            sys.exit(2)
        jobs.append((name, path, statements))
    return out_root, jobs


def main(argv):
    out_root, jobs = parse_args(argv)
    started = time.perf_counter()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no hostname warning
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("strata-run-sql")
        .config("spark.driver.memory", "3g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.parquet.datetimeRebaseModeInWrite", "CORRECTED")
        .config("spark.sql.parquet.int96RebaseModeInWrite", "CORRECTED")
        .config("spark.sql.parquet.datetimeRebaseModeInRead", "CORRECTED")
        .config("spark.sql.parquet.int96RebaseModeInRead", "CORRECTED")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    print(f"spark {spark.version}: session started in {time.perf_counter() - started:.2f}s", flush=True)

    failed = False
    try:
        for name, path, statements in jobs:
            t0 = time.perf_counter()
            target = os.path.join(out_root, name)
            partial = os.path.join(out_root, f".{name}.tmp")
            try:
                session = spark.newSession()
                result = None
                for statement in statements:
                    result = session.sql(statement)
                # Written beside the target and moved into place when
                # complete, so OUT_ROOT/NAME is whole or absent.
                result.coalesce(1).write.mode("overwrite").parquet(partial)
                shutil.rmtree(target, ignore_errors=True)
                os.rename(partial, target)
            except Exception as error:  # Spark's errors, all kinds
                shutil.rmtree(partial, ignore_errors=True)
                shutil.rmtree(target, ignore_errors=True)
                print(f"run_sql.py: {name} ({path}) failed:\n{first_lines(error)}", file=sys.stderr, flush=True)
                failed = True
                break
            print(f"{name}: {time.perf_counter() - t0:.2f}s ({len(statements)} statements) -> {target}", flush=True)
    finally:
        spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
