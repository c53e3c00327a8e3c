"""Are two output folders the same, file by file and byte by byte, apart
from what differs between any two runs of one binary (and the version of
the parquet crate)?

Those are: run times (the manifest's and summary's `timings_seconds`, the
report's "time:" rows), the output folder's own path, the workbooks'
creation time (docProps/core.xml inside each .xlsx), and the parquet
crate's version that each Parquet file's footer names as its writer (so
that a build on a newer crate can be checked against one on the old).
Everything else must be byte-identical: every Parquet file, every CSV,
every workbook sheet, the report and the manifest otherwise.

Usage: same_outputs.py A B
Prints each difference and exits 1 when there is any.
"""

import json
import re
import sys
import zipfile
from pathlib import Path


def normal_json(path, folder):
    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if k != "timings_seconds"}
        if isinstance(value, list):
            return [drop(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(folder), "OUT")
        return value

    return json.dumps(drop(json.loads(path.read_text())), sort_keys=True).encode()


def normal_html(path, folder):
    text = path.read_text().replace(str(folder), "OUT")
    return re.sub(r"<tr><td>time: [^<]*</td><td>[^<]*</td></tr>", "", text).encode()


def normal_xlsx(path, _folder):
    with zipfile.ZipFile(path) as z:
        return b"".join(
            name.encode() + b"\0" + z.read(name)
            for name in sorted(z.namelist())
            if name != "docProps/core.xml"
        )


def normal_parquet(path, _folder):
    return re.sub(rb"parquet-rs version [0-9]+\.[0-9]+\.[0-9]+", b"parquet-rs", path.read_bytes())


def content(path, folder):
    readers = {
        ".json": normal_json,
        ".html": normal_html,
        ".xlsx": normal_xlsx,
        ".parquet": normal_parquet,
    }
    reader = readers.get(path.suffix)
    return reader(path, folder) if reader else path.read_bytes()


def main():
    a, b = (Path(p).resolve() for p in sys.argv[1:3])
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    differ = [f"only in {a}: {f}" for f in sorted(files_a - files_b)]
    differ += [f"only in {b}: {f}" for f in sorted(files_b - files_a)]
    for f in sorted(files_a & files_b):
        if content(a / f, a) != content(b / f, b):
            differ.append(f"differs: {f}")
    for line in differ:
        print(line)
    print(f"{len(files_a & files_b)} files compared, {len(differ)} differences")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
