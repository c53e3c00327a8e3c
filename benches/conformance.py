"""Conformance of the SQL backend: the same rule files through strata's
native engine and through `strata compile` on a SQL engine must give the
same per-person table, column by column, person by person.

Two kinds of data:

- every assurance test of every rule file named (bundled models, golden
  rule files): `strata test --keep-data` keeps each test run's tiny data
  folder, built to sit on each model's boundaries; each is run natively
  (`strata run`) and compiled and run on the SQL engine;
- optionally a generated population already run natively (`--generated
  DATA OUT AS_OF RULES...`, OUT written with `--suppression none`): the
  rule files are compiled and run on DATA and compared with
  OUT/patients.parquet; then the SQL's table is given to `strata publish`,
  whose every output must equal OUT's (apart from timings, the inputs it
  read, and the workbooks' creation times).

Equal means: the same column names in the same order, the same kind of
type (integer, number, text, true/false, date), the same persons in the
same order, and every value the same (floats within 1e-12 relative), nulls
included.

Usage:
  conformance.py --engine duckdb|spark --strata BIN --work DIR RULES... \
      [--generated DATA OUT AS_OF RULES...]
Exits 1 when any case differs, naming the case, column and person.
"""

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path


def kind(type_name):
    """The family of a SQL or Parquet type name (DuckDB names a Parquet
    column of Arrow's null type "NULL", in quotes)."""
    t = type_name.upper().strip('"')
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "INT", "LONG", "SHORT", "BYTE") or t.startswith(("INT", "UINT", "UBIGINT", "USMALLINT", "UTINYINT")):
        return "integer"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "number"
    if t in ("VARCHAR", "STRING") or t.startswith("VARCHAR"):
        return "text"
    if t in ("BOOLEAN", "BOOL"):
        return "true/false"
    if t == "DATE":
        return "date"
    if t == "NULL" or t == "VOID":
        return "null"
    return t.lower()


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


def compare(case, native, compiled):
    """native, compiled: (columns [(name, kind)], rows). Returns problems."""
    problems = []
    (ncols, nrows), (ccols, crows) = native, compiled
    names_n = [c for c, _ in ncols]
    names_c = [c for c, _ in ccols]
    if names_n != names_c:
        return [f"{case}: columns differ:\n  strata: {names_n}\n  sql:    {names_c}"]
    for (name, kn), (_, kc) in zip(ncols, ccols):
        # An all-null column has no type to compare in SQL.
        if kn != kc and "null" not in (kn, kc):
            problems.append(f"{case}: column `{name}` is {kn} natively, {kc} in SQL")
    if len(nrows) != len(crows):
        problems.append(f"{case}: {len(nrows)} persons natively, {len(crows)} in SQL")
    shown = 0
    for rn, rc in zip(nrows, crows):
        for i, name in enumerate(names_n):
            if not same(rn[i], rc[i]):
                if shown < 10:
                    problems.append(
                        f"{case}: person {rn[0]!r}: `{name}` is {rn[i]!r} natively, {rc[i]!r} in SQL"
                    )
                shown += 1
    if shown > 10:
        problems.append(f"{case}: ... {shown - 10} more differing values")
    return problems


class DuckDb:
    name = "duckdb"

    def __init__(self):
        import duckdb

        self.duckdb = duckdb

    def query(self, sql):
        con = self.duckdb.connect()
        statements = [s for s in sql.split(";\n") if s.strip() and not all(
            line.startswith("--") or not line.strip() for line in s.splitlines())]
        for s in statements[:-1]:
            con.execute(s)
        rel = con.execute(statements[-1])
        cols = [(d[0], kind(str(d[1]))) for d in rel.description]
        return cols, rel.fetchall()

    def write(self, sql, path):
        """Runs the script and writes its result as Parquet at `path`."""
        con = self.duckdb.connect()
        statements = [s for s in sql.split(";\n") if s.strip()]
        for s in statements[:-1]:
            con.execute(s)
        con.execute(f"COPY ({statements[-1].rstrip().rstrip(';')}) TO '{path}' (FORMAT parquet)")
        return path

    def parquet(self, path):
        con = self.duckdb.connect()
        rel = con.execute(f"SELECT * FROM read_parquet('{path}')")
        cols = [(d[0], kind(str(d[1]))) for d in rel.description]
        return cols, rel.fetchall()


class Spark:
    name = "spark"

    def __init__(self):
        from pyspark.sql import SparkSession

        self.spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "3g")
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")

    @staticmethod
    def spark_kind(dtype):
        return kind(dtype.simpleString().split("(")[0])

    def query(self, sql):
        statements = [s for s in sql.split(";\n") if s.strip() and not all(
            line.startswith("--") or not line.strip() for line in s.splitlines())]
        for s in statements[:-1]:
            self.spark.sql(s)
        df = self.spark.sql(statements[-1])
        cols = [(f.name, self.spark_kind(f.dataType)) for f in df.schema.fields]
        rows = [tuple(r) for r in df.collect()]
        return cols, rows

    def write(self, sql, path):
        """Runs the script and writes its result as a folder of Parquet parts."""
        statements = [s for s in sql.split(";\n") if s.strip()]
        for s in statements[:-1]:
            self.spark.sql(s)
        folder = path.with_suffix("")
        self.spark.sql(statements[-1].rstrip().rstrip(";")).write.mode("overwrite").parquet(str(folder))
        return folder

    def parquet(self, path):
        df = self.spark.read.parquet(str(path))
        cols = [(f.name, self.spark_kind(f.dataType)) for f in df.schema.fields]
        return cols, [tuple(r) for r in df.orderBy("person_id").collect()]


# What a published output may differ in from a run's: when and how long it
# took, what it read (the event tables, or the per-person table instead),
# and so the rejected-row counts (and the report's rows skipped) of tables
# it did not read.
FACTS = re.compile(r"<tr><td>(time: |input |rows skipped: )[^<]*</td><td>[^<]*</td></tr>")
VARYING = {"timings_seconds", "inputs", "computed_elsewhere", "rejected", "rejected_rows", "outputs"}


def without_varying(value):
    if isinstance(value, dict):
        return {k: without_varying(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [without_varying(v) for v in value]
    return value


def xlsx_members(path):
    with zipfile.ZipFile(path) as z:
        # docProps/core.xml holds the time the workbook was written.
        return {n: z.read(n) for n in z.namelist() if n != "docProps/core.xml"}


def compare_outputs(case, ran, published):
    """Every file of `strata run`'s output against `strata publish`'s."""
    # Rejected rows are of event tables a publish does not read.
    files = lambda d: sorted(
        str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.relative_to(d).parts[0] != "rejects"
    )
    a, b = files(ran), files(published)
    if a != b:
        return [f"{case}: publish wrote {sorted(set(b) ^ set(a))} where run did not, or the reverse"]
    problems = []
    for name in a:
        x, y = ran / name, published / name
        if name.endswith(".json"):
            same_file = without_varying(json.loads(x.read_text())) == without_varying(json.loads(y.read_text()))
        elif name.endswith(".html"):
            same_file = FACTS.sub("", x.read_text()) == FACTS.sub("", y.read_text())
        elif name.endswith(".xlsx"):
            same_file = xlsx_members(x) == xlsx_members(y)
        else:
            same_file = x.read_bytes() == y.read_bytes()
        if not same_file:
            problems.append(f"{case}: publish's {name} differs from run's")
    return problems


def run(cmd, case):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case}: {' '.join(map(str, cmd))} failed:\n{done.stderr.strip()}")
    return done


def rules_arg(rules):
    # A bundled model is named by its bare name.
    return rules[len("bundled:/"):-len(".toml")] if rules.startswith("bundled:/") else rules


def check_case(engine, strata, case, rules, case_dir, as_of, sets, work):
    """One kept test run: its data, and the engine's table from `strata test`."""
    set_args = [a for s in sets for a in ("--set", s)]
    script = work / "case.sql"
    run([strata, "--quiet", "compile", "--target", engine.name, *rules, *set_args,
         "--data", case_dir / "data", "--as-of", as_of, "--out", script], case)
    native = engine.parquet(case_dir / "patients.parquet")
    compiled = engine.query(script.read_text())
    return compare(case, native, compiled)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["duckdb", "spark"], required=True)
    parser.add_argument("--strata", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("rules", nargs="*")
    parser.add_argument("--generated", nargs="+", metavar="ARG", action="append", default=[],
                        help="DATA OUT AS_OF RULES...: a population already run natively (repeatable)")
    args = parser.parse_args()
    engine = DuckDb() if args.engine == "duckdb" else Spark()
    strata = str(Path(args.strata).resolve())
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    problems, cases = [], 0
    started = time.time()
    for rules in args.rules:
        keep = work / "tests" / Path(rules).stem
        run([strata, "test", rules, "--keep-data", keep], rules)
        kept = sorted(keep.iterdir(), key=lambda p: int(p.name)) if keep.exists() else []
        for case_dir in kept:
            spec = json.loads((case_dir / "run.json").read_text())
            case = f"{Path(rules).name} test run {case_dir.name} (as of {spec['as_of']}" + (
                f", --set {' '.join(spec['set'])})" if spec["set"] else ")")
            try:
                problems += check_case(engine, strata, case, [rules_arg(spec["rules"])],
                                       case_dir, spec["as_of"], spec["set"], work)
            except RuntimeError as e:
                problems.append(str(e))
            cases += 1
    for generated in args.generated:
        data, out, as_of, *rules = generated
        case = f"generated population {data} ({' + '.join(Path(r).stem for r in rules)})"
        script = work / f"generated-{cases}.sql"
        try:
            t = time.time()
            run([strata, "--quiet", "compile", "--target", engine.name, *rules,
                 "--data", data, "--as-of", as_of, "--out", script], case)
            native = engine.parquet(Path(out) / "patients.parquet")
            t = time.time()
            compiled = engine.query(script.read_text())
            print(f"{case}: the compiled script ran in {time.time() - t:.1f} s on {engine.name}")
            problems += compare(case, native, compiled)
            # The same table, computed by SQL, published: every output of
            # `strata run` again.
            table = engine.write(script.read_text(), work / f"computed-{cases}.parquet")
            published = work / f"published-{cases}"
            rule_args = [a for r in rules for a in ("--rules", r)]
            run([strata, "publish", *rule_args, "--patients-table", table, "--data", data,
                 "--as-of", as_of, "--out", published, "--quiet", "--suppression", "none"], case)
            problems += compare_outputs(case + ", strata publish", Path(out), published)
        except RuntimeError as e:
            problems.append(str(e))
        cases += 1
    for p in problems:
        print(p)
    if problems:
        print(f"conformance ({engine.name}): FAILED: {len(problems)} differences in {cases} cases", file=sys.stderr)
        sys.exit(1)
    print(f"conformance ({engine.name}): {cases} cases, every column of every person identical "
          f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
