#!/usr/bin/env bash
# Renders OUT/report.html in headless Chromium, checks that every chart came
# out, and saves a screenshot for people to look at (docs/report.png).
#
# Usage: tests/report/render.sh [OUT]   (default: runs the default model on
# sample-data into a temporary folder). Installs Debian's chromium package
# with apt-get when it is missing and this runs as root.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y chromium >/dev/null
    else
        echo "chromium is not installed: apt-get install chromium (as root)" >&2
        exit 2
    fi
fi

out="${1:-}"
if [ -z "$out" ]; then
    out="$(mktemp -d)/out"
    cargo run --quiet --release -- run --out "$out" --quiet
fi
report="$out/report.html"
chrome=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars)

# The DOM after rendering: every SVG the file holds must be there, closed.
dom="$("${chrome[@]}" --dump-dom "file://$(realpath "$report")" 2>/dev/null)"
want=$(grep -o '<svg' "$report" | wc -l)
got=$(grep -o '<svg' <<<"$dom" | wc -l)
closed=$(grep -o '</svg>' <<<"$dom" | wc -l)
if [ "$want" -eq 0 ] || [ "$got" -ne "$want" ] || [ "$closed" -ne "$want" ]; then
    echo "report.html: $want charts in the file, $got rendered, $closed closed" >&2
    exit 1
fi
for section in "Cohort sizes by PCN" "Age and sex" "Score distributions" "Inequalities" "Overlaps between cohorts" "Run"; do
    grep -q "<h2>$section</h2>" <<<"$dom" || { echo "report.html: no '$section' section" >&2; exit 1; }
done
echo "report.html renders in Chromium: $got charts, every section present"

"${chrome[@]}" --window-size=1000,2400 --screenshot="$PWD/docs/report.png" "file://$(realpath "$report")" 2>/dev/null
echo "screenshot: docs/report.png"
