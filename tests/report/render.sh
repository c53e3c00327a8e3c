#!/usr/bin/env bash
# Renders OUT/report.html (or, with PAGE=evaluation.html, an evaluation's
# page) in headless Chromium and checks that it renders: no console errors,
# every section present, and every chart laid out on the page with
# something drawn in it; then saves a screenshot for people to look at.
#
# Usage: tests/report/render.sh [OUT]
#   OUT: a run's output folder (default: runs the default model on
#   sample-data into a temporary folder, with the debug build; for the
#   evaluation page, evaluates it against next year's emergency admissions).
#   SCREENSHOT=PATH: where the screenshot goes (default docs/report.png, or
#   a temporary file for the evaluation page).
# Installs Debian's chromium package with apt-get when it is missing and
# this runs as root. CI (.ci/run) runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium is not installed: apt-get install chromium (as root)" >&2
        exit 2
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
page="${PAGE:-report.html}"
out="${1:-}"
case "$page" in
report.html)
    sections=("Cohort sizes by PCN" "Age and sex" "Score distributions" "Inequalities" "Overlaps between cohorts" "Run")
    default_screenshot="$PWD/docs/report.png"
    ;;
evaluation.html)
    sections=("Cohorts as lists" "Scores" "Scores' top lists" "Calibration of efi" "By group" "Compared with the second rule set" "Lists from one date to the next")
    default_screenshot="$work/evaluation.png"
    ;;
*)
    echo "PAGE must be report.html or evaluation.html" >&2
    exit 2
    ;;
esac
if [ -z "$out" ]; then
    out="$work/out"
    if [ "$page" = report.html ]; then
        cargo run --quiet -- run --out "$out" --quiet
    else
        cargo run --quiet -- evaluate --rules core --rules outcomes --as-of 2024-03-31 \
            --as-of 2025-03-31 --outcome emergency_admission_365d --probability efi --score hfrs \
            --compare-set hiu_threshold=4 --out "$out" --quiet
    fi
fi
report="$out/$page"
screenshot="${SCREENSHOT:-$default_screenshot}"
# No network, no first-run or background work, a profile of its own.
chrome=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-quic
    --no-first-run --disable-background-networking --disable-component-update
    --disable-sync "--user-data-dir=$work/profile")

# The report has no scripts of its own; a copy with probe.js appended
# measures each chart as laid out.
probe="$work/probe.html"
python3 - "$report" tests/report/probe.js "$probe" <<'PY'
import sys
report, script, probe = sys.argv[1:4]
html = open(report, encoding="utf-8").read()
js = open(script, encoding="utf-8").read()
open(probe, "w", encoding="utf-8").write(
    html.replace("</body>", f'<pre id="probe"></pre><script>{js}</script></body>', 1)
)
PY
grep -q 'id="probe"' "$probe" || { echo "$page has no </body>" >&2; exit 1; }

"${chrome[@]}" --enable-logging=stderr --v=0 --dump-dom "file://$probe" >"$work/dom.html" 2>"$work/chromium.log"
if grep -E 'CONSOLE|Uncaught' "$work/chromium.log" >&2; then
    echo "$page: console errors while rendering (above)" >&2
    exit 1
fi
for section in "${sections[@]}"; do
    grep -q "<h[23]>$section</h[23]>" "$work/dom.html" || { echo "$page: no '$section' section" >&2; exit 1; }
done
measured="$(sed -n '/<pre id="probe">/,/<\/pre>/p' "$work/dom.html" | sed 's/<[^>]*>//g')"
want=$(grep -o '<svg' "$report" | wc -l)
charts=$(grep -c '^chart ' <<<"$measured" || true)
if [ "$want" -eq 0 ] || [ "$charts" -ne "$want" ]; then
    echo "$page: $want charts in the file, $charts rendered" >&2
    exit 1
fi
empty=$(awk '$1 == "chart" && ($3 < 10 || $4 < 10 || $5 < 1)' <<<"$measured")
if [ -n "$empty" ]; then
    echo "$page: charts with no size or nothing drawn (id width height shapes):" >&2
    echo "$empty" >&2
    exit 1
fi
echo "$page renders in Chromium: $charts charts laid out and drawn, every section present, no console errors"

height=$(awk '$1 == "height" {print $2 + 0}' <<<"$measured")
height=$(( height > 4000 ? 4000 : height ))
mkdir -p "$(dirname "$screenshot")"
"${chrome[@]}" "--window-size=1000,$height" "--screenshot=$screenshot" "file://$(realpath "$report")" 2>/dev/null
echo "screenshot ($height px tall): $screenshot"
