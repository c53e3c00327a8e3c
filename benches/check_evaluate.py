"""Independent check of `strata evaluate`: every figure of evaluation.json
recomputed from predictions.parquet in plain Python (DuckDB only reads the
file), by other algorithms than strata's: AUROC by counting, for each person
with the outcome, the people without it scored lower (binary search, ties
half), and DeLong's variance from those counts; lists and top fractions by
counting; Wilson intervals as the roots of their quadratic; shares of a
whole outcome's events from the outcome counts. Agrees to 1e-9 or exits 1.

Usage: check_evaluate.py EVALUATION_DIR (made with --suppression none)
"""

import bisect
import json
import math
import sys
from pathlib import Path

import duckdb

TOLERANCE = 1e-9


def wilson(x, n):
    """The 95% Wilson interval of x / n: the proportions p with
    (x/n - p)^2 = z^2 p (1 - p) / n, the roots of a quadratic in p."""
    z2, phat = 1.959964 ** 2, x / n
    a, b, c = 1 + z2 / n, -(2 * phat + z2 / n), phat * phat
    root = math.sqrt(max(0.0, b * b - 4 * a * c))
    return [max(0.0, (-b - root) / (2 * a)), min(1.0, (-b + root) / (2 * a))]


def list_figures(on_list, happened):
    n = len(happened)
    events = sum(happened)
    size = sum(on_list)
    caught = sum(1 for m, h in zip(on_list, happened) if m and h)
    negatives = n - events
    ppv = caught / size if size else None
    prevalence = events / n if n else None
    return {
        "on_list": str(size),
        "with_outcome": str(caught),
        "ppv": ppv,
        "ppv_95ci": wilson(caught, size) if size else None,
        "sensitivity": caught / events if events else None,
        "sensitivity_95ci": wilson(caught, events) if events else None,
        "specificity": (negatives - (size - caught)) / negatives if negatives else None,
        "lift": ppv / prevalence if ppv is not None and prevalence else None,
    }


def components(scores, happened):
    pos = [s for s, h in zip(scores, happened) if h]
    neg = [s for s, h in zip(scores, happened) if not h]
    neg_sorted, pos_sorted = sorted(neg), sorted(pos)
    v10 = [(bisect.bisect_left(neg_sorted, x) + 0.5 * (bisect.bisect_right(neg_sorted, x) - bisect.bisect_left(neg_sorted, x))) / len(neg) for x in pos]
    v01 = [(len(pos) - bisect.bisect_right(pos_sorted, y) + 0.5 * (bisect.bisect_right(pos_sorted, y) - bisect.bisect_left(pos_sorted, y))) / len(pos) for y in neg]
    return v10, v01


def cov(x, y):
    if len(x) < 2:
        return 0.0
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / (len(x) - 1)


def auroc(scores, happened):
    pos = [s for s, h in zip(scores, happened) if s is not None and h]
    neg = [s for s, h in zip(scores, happened) if s is not None and not h]
    if not pos or not neg:
        return None, None
    neg_sorted, pos_sorted = sorted(neg), sorted(pos)
    v10 = []
    for x in pos:
        lower = bisect.bisect_left(neg_sorted, x)
        equal = bisect.bisect_right(neg_sorted, x) - lower
        v10.append((lower + 0.5 * equal) / len(neg))
    v01 = []
    for y in neg:
        higher = len(pos) - bisect.bisect_right(pos_sorted, y)
        equal = bisect.bisect_right(pos_sorted, y) - bisect.bisect_left(pos_sorted, y)
        v01.append((higher + 0.5 * equal) / len(pos))
    auc = sum(v10) / len(pos)

    def var(v):
        if len(v) < 2:
            return 0.0
        mean = sum(v) / len(v)
        return sum((x - mean) ** 2 for x in v) / (len(v) - 1)

    se = math.sqrt(var(v10) / len(pos) + var(v01) / len(neg))
    return auc, se


def average_precision(scores, happened):
    """Precision at each distinct score, weighted by the recall it adds:
    counted with binary search over the sorted scores, not by walking them."""
    pos = sorted(s for s, h in zip(scores, happened) if s is not None and h)
    every = sorted(s for s in scores if s is not None)
    if not pos:
        return None
    ap, previous_recall = 0.0, 0.0
    for t in sorted(set(every), reverse=True):
        caught = len(pos) - bisect.bisect_left(pos, t)
        taken = len(every) - bisect.bisect_left(every, t)
        recall = caught / len(pos)
        ap += (recall - previous_recall) * (caught / taken)
        previous_recall = recall
    return ap


def close(a, b):
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(close, a, b))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def main():
    folder = Path(sys.argv[1])
    evaluation = json.loads((folder / "evaluation.json").read_text())
    con = duckdb.connect()
    rel = con.execute(f"SELECT * FROM read_parquet('{folder / 'predictions.parquet'}') ORDER BY as_of, person_id")
    names = [d[0] for d in rel.description]
    rows = rel.fetchall()
    problems, compared = [], 0

    def check(where, ours, theirs):
        nonlocal compared
        compared += 1
        if not close(ours, theirs):
            problems.append(f"{where}: strata {theirs!r}, recomputed {ours!r}")

    for f in evaluation["figures"]:
        day = f["as_of"]
        these = [r for r in rows if str(r[names.index("as_of")]) == day]
        happened = [r[names.index("outcome_" + f["outcome"])] for r in these]
        at = f"{day} {f['outcome']}"
        check(f"{at} people", str(len(these)), f["people"])
        check(f"{at} prevalence", sum(happened) / len(happened), f["prevalence"])
        count_column = f"outcome_{f['outcome']}_count"
        for c in f["cohorts"]:
            flags = [r[names.index(c["cohort"])] for r in these]
            mine = list_figures(flags, happened)
            for key, value in mine.items():
                check(f"{at} cohort {c['cohort']} {key}", value, c["as_list"][key])
            if count_column in names:
                values = [r[names.index(count_column)] for r in these]
                on, total = sum(v for v, m in zip(values, flags) if m), sum(values)
                check(f"{at} cohort {c['cohort']} events on list", str(on), c["events"]["on_list"])
                check(f"{at} cohort {c['cohort']} events", str(total), c["events"]["all"])
                check(f"{at} cohort {c['cohort']} events share", on / total if total else None, c["events"]["share"])
            else:
                check(f"{at} cohort {c['cohort']} no events", None, c["events"])
        for s in f["scores"]:
            scores = [r[names.index(s["score"])] for r in these]
            auc, se = auroc(scores, happened)
            check(f"{at} score {s['score']} auroc", auc, s["auroc"])
            if auc is not None:
                low, high = max(0.0, auc - 1.959964 * se), min(1.0, auc + 1.959964 * se)
                check(f"{at} score {s['score']} ci low", low, s["auroc_95ci"][0])
                check(f"{at} score {s['score']} ci high", high, s["auroc_95ci"][1])
            check(f"{at} score {s['score']} auprc", average_precision(scores, happened), s["auprc"])
            if "calibration" in s:
                pairs = sorted(((v, h) for v, h in zip(scores, happened) if v is not None), key=lambda p: p[0])
                n = len(pairs)
                for d in range(10):
                    rows_d = [pairs[i] for i in range(n) if i * 10 // n == d]
                    got = s["calibration"]["deciles"][d]
                    check(f"{at} {s['score']} decile {d + 1} people", str(len(rows_d)), got["people"])
                    mean = sum(p for p, _ in rows_d) / len(rows_d) if rows_d else None
                    check(f"{at} {s['score']} decile {d + 1} predicted", mean, got["mean_predicted"])
                    observed = sum(1 for _, h in rows_d if h) / len(rows_d) if rows_d else None
                    check(f"{at} {s['score']} decile {d + 1} observed", observed, got["observed"])
                brier = sum((p - (1.0 if h else 0.0)) ** 2 for p, h in pairs) / n
                check(f"{at} {s['score']} brier", brier, s["calibration"]["brier"])
            # Highest first, ties by person order (ascending person_id).
            scored = [i for i, v in enumerate(scores) if v is not None]
            scored.sort(key=lambda i: (-scores[i], i))
            pcn = [r[names.index("pcn")] for r in these]
            per_pcn = {}
            for i in scored:
                per_pcn.setdefault(pcn[i], []).append(i)
            chosen = {i for members in per_pcn.values() for i in members[: s["top_per_pcn"]["per_pcn"]]}
            mine = list_figures([i in chosen for i in range(len(these))], happened)
            for key, value in mine.items():
                check(f"{at} score {s['score']} top per PCN {key}", value, s["top_per_pcn"]["as_list"][key])
            # Each PCN's list among its own people, in PCN code order.
            names_pcn = sorted({p for p in pcn if p is not None})
            assert [p["pcn"] for p in s["top_per_pcn"]["pcns"]] == names_pcn, "the PCNs listed"
            for got in s["top_per_pcn"]["pcns"]:
                members = [i for i in range(len(these)) if pcn[i] == got["pcn"]]
                mine = list_figures([i in chosen for i in members], [happened[i] for i in members])
                for key, value in mine.items():
                    check(f"{at} score {s['score']} top 50 in {got['pcn']} {key}", value, got["as_list"][key])
            for top in s["top"]:
                k = min(len(scored), math.ceil(top["top"] * len(scored)))
                chosen = set(scored[:k])
                mine = list_figures([i in chosen for i in range(len(these))], happened)
                for key, value in mine.items():
                    check(f"{at} score {s['score']} top {top['top']} {key}", value, top["as_list"][key])
        comparison = f.get("comparison")
        for c in (comparison or {}).get("cohorts", []):
            a = [r[names.index(c["cohort"])] for r in these]
            b = [r[names.index("compare_" + c["cohort"])] for r in these]
            where = f"{at} compare {c['cohort']}"
            check(f"{where} only first", str(sum(1 for x, y in zip(a, b) if x and not y)), c["only_first"])
            check(f"{where} only second", str(sum(1 for x, y in zip(a, b) if y and not x)), c["only_second"])
            check(f"{where} both", str(sum(1 for x, y in zip(a, b) if x and y)), c["both"])
            fa, fb = list_figures(a, happened), list_figures(b, happened)
            for key in fa:
                check(f"{where} first {key}", fa[key], c["first"][key])
                check(f"{where} second {key}", fb[key], c["second"][key])
            m = sum(happened)
            x = sum(1 for i in range(len(a)) if happened[i] and a[i] and not b[i])
            y = sum(1 for i in range(len(a)) if happened[i] and b[i] and not a[i])
            if c["sensitivity"] is not None:
                d = (y - x) / m
                se = math.sqrt(max(0.0, (x + y) - (y - x) ** 2 / m)) / m
                check(f"{where} sensitivity difference", d, c["sensitivity"]["difference"])
                check(f"{where} sensitivity ci low", d - 1.959964 * se, c["sensitivity"]["ci95"][0])
            if c["ppv"] is not None:
                na, nb = sum(a), sum(b)
                pa, pb = fa["ppv"], fb["ppv"]
                se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
                check(f"{where} ppv difference", pb - pa, c["ppv"]["difference"])
                check(f"{where} ppv ci high", pb - pa + 1.959964 * se, c["ppv"]["ci95"][1])
        for sc in (comparison or {}).get("scores", []):
            a = [r[names.index(sc["score"])] for r in these]
            b = [r[names.index("compare_" + sc["score"])] for r in these]
            both = [i for i in range(len(a)) if a[i] is not None and b[i] is not None]
            h = [happened[i] for i in both]
            if sc["difference"] is None or not any(h) or all(h):
                continue
            a10, a01 = components([a[i] for i in both], h)
            b10, b01 = components([b[i] for i in both], h)
            auc_a, auc_b = sum(a10) / len(a10), sum(b10) / len(b10)
            var = (cov(a10, a10) + cov(b10, b10) - 2 * cov(a10, b10)) / len(a10) + (
                cov(a01, a01) + cov(b01, b01) - 2 * cov(a01, b01)) / len(a01)
            se = math.sqrt(max(0.0, var))
            where = f"{at} compare score {sc['score']}"
            check(f"{where} first", auc_a, sc["auroc_first"])
            check(f"{where} second", auc_b, sc["auroc_second"])
            check(f"{where} difference ci low", auc_b - auc_a - 1.959964 * se, sc["ci95"][0])
        for grouping, figures in f["groups"].items():
            column = names.index(grouping)
            no_group = sum(1 for r in these if r[column] is None)
            check(f"{at} {grouping} people in no group", str(no_group), figures["people_in_no_group"])
            for g in figures["groups"]:
                rows_g = [i for i, r in enumerate(these) if r[column] == g["group"]]
                h = [happened[i] for i in rows_g]
                where = f"{at} {grouping} {g['group']}"
                check(f"{where} people", str(len(rows_g)), g["people"])
                for c in g["cohorts"]:
                    flags = [these[i][names.index(c["cohort"])] for i in rows_g]
                    mine = list_figures(flags, h)
                    for key in ("on_list", "ppv", "ppv_95ci", "sensitivity", "sensitivity_95ci"):
                        check(f"{where} cohort {c['cohort']} {key}", mine[key], c[key])
                for sc in g["scores"]:
                    scores = [these[i][names.index(sc["score"])] for i in rows_g]
                    auc, se = auroc(scores, h)
                    check(f"{where} score {sc['score']} auroc", auc, sc["auroc"])
                    if auc is not None:
                        ci = [max(0.0, auc - 1.959964 * se), min(1.0, auc + 1.959964 * se)]
                        check(f"{where} score {sc['score']} auroc ci", ci, sc["auroc_95ci"])
        share = f.get("share_of_whole")
        if share is not None:
            part = [r[names.index(f"outcome_{f['outcome']}_count")] for r in these]
            whole = [r[names.index(f"outcome_{share['of']}_count")] for r in these]

            def share_of(keep):
                p = sum(x or 0 for x, k in zip(part, keep) if k)
                w = sum(x or 0 for x, k in zip(whole, keep) if k)
                people = sum(1 for k in keep if k)
                return {"events": str(w), "of_which_part": str(p), "share": p / w if w else None,
                        "part_per_100_people": 100 * p / people if people else None}

            for key, value in share_of([True] * len(these)).items():
                check(f"{at} share of {share['of']} population {key}", value, share["population"][key])
            for c in share["cohorts"]:
                flags = [r[names.index(c["cohort"])] for r in these]
                for side, keep in (("on_list", flags), ("off_list", [not x for x in flags])):
                    for key, value in share_of(keep).items():
                        check(f"{at} share {c['cohort']} {side} {key}", value, c[side][key])
    for b in evaluation["between_dates"]:
        before = {r[names.index("person_id")]: r for r in rows if str(r[names.index("as_of")]) == b["from"]}
        after = [r for r in rows if str(r[names.index("as_of")]) == b["to"]]
        for c in b["cohorts"]:
            col = names.index(c["cohort"])
            was = [r[names.index("person_id")] in before and before[r[names.index("person_id")]][col] for r in after]
            now = [r[col] for r in after]
            listed_before = sum(1 for r in before.values() if r[col])
            stayed = sum(1 for w, n in zip(was, now) if w and n)
            where = f"{b['from']} -> {b['to']} {c['cohort']}"
            check(f"{where} on earlier list", str(listed_before), c["on_earlier_list"])
            check(f"{where} stayed", str(stayed), c["stayed"])
            check(f"{where} joined", str(sum(1 for w, n in zip(was, now) if n and not w)), c["joined"])
            check(f"{where} still listed", stayed / listed_before if listed_before else None, c["still_listed"])
            remained = sum(1 for w in was if w)
            check(f"{where} left the population", str(listed_before - remained), c["left_the_population"])
            check(f"{where} came off the list", str(remained - stayed), c["came_off_the_list"])
            check(f"{where} still listed of those remaining", stayed / remained if remained else None,
                  c["still_listed_of_those_still_in_population"])
            for o in c["outcomes"]:
                h = [r[names.index("outcome_" + o["outcome"])] for r in after]
                already = list_figures([n and w for n, w in zip(now, was)], h)["ppv"]
                new = list_figures([n and not w for n, w in zip(now, was)], h)["ppv"]
                check(f"{where} {o['outcome']} ppv already listed", already, o["ppv_already_listed"])
                check(f"{where} {o['outcome']} ppv newly listed", new, o["ppv_newly_listed"])
    for p in problems[:20]:
        print(p)
    if problems:
        print(f"check_evaluate: FAILED: {len(problems)} of {compared} figures differ", file=sys.stderr)
        sys.exit(1)
    print(f"check_evaluate: all {compared} figures of {len(evaluation['figures'])} dates x outcomes agree to {TOLERANCE}")


if __name__ == "__main__":
    main()
