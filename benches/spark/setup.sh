#!/usr/bin/env bash
# Makes the PySpark environment of the Spark SQL harness: a venv at
# benches/spark/.venv with pyspark (and its py4j) at the pinned versions.
# The venv is made whole or not at all: it is built in .venv.tmp and moved
# into place only when complete; if .venv already has the pinned pyspark,
# nothing is done. Prints the venv's python on success.
#
# Usage: benches/spark/setup.sh
# Needs python3 with venv and pip, PyPI (pyspark is a ~317 MB download) and
# Java 17 (or 8/11) on PATH or in JAVA_HOME to run Spark afterwards. Then:
#   benches/spark/.venv/bin/python benches/spark/run_sql.py OUT_ROOT NAME=SQL_FILE...
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
pyspark_version="3.5.3"
py4j_version="0.10.9.7" # the py4j that pyspark 3.5.3 requires, pinned too

cd "$(dirname "$0")"
venv=.venv
py="$venv/bin/python"
if ! "$py" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$pyspark_version')" 2>/dev/null; then
    echo "setup.sh: installing pyspark==$pyspark_version into benches/spark/$venv" >&2
    rm -rf "$venv" "$venv.tmp"
    python3 -m venv "$venv.tmp"
    "$venv.tmp/bin/python" -m pip install --quiet --disable-pip-version-check \
        "pyspark==$pyspark_version" "py4j==$py4j_version"
    mv "$venv.tmp" "$venv"
fi
if ! command -v java >/dev/null && [ -z "${JAVA_HOME:-}" ]; then
    echo "setup.sh: warning: no java on PATH and no JAVA_HOME; Spark needs Java 8, 11 or 17" >&2
fi
echo "$(pwd)/$py"
