"""How the generated outcomes follow risk, beside the published gradients
the generator is tuned to: for people aged 65 to 95 on an as-of date, the
risk of death and of an emergency admission in the next year by eFI
category, as a hazard ratio against the fit, adjusted for age (5-year
bands) and sex, from a complementary log-log binomial model of the
one-year outcome (under proportional hazards its coefficients are the
log hazard ratios a Cox model estimates; a risk ratio would understate
them where risks are high); beside them the hazard ratios Clegg et al.
2016 report (Age Ageing 45:353, abstract: one-year mortality and
hospitalisation, adjusted). Plain Python; DuckDB only reads the files.

A one-year yes/no outcome cannot be censored at death or leaving, as
Clegg's Cox model is: someone who dies before being admitted counts as
not admitted, so for admissions among the frailest (a third of whom die
in the year) the ratio estimated here leans below the hazard ratio.

Usage: outcome_gradients.py DATA EVALUATION_DIR
  DATA: the data folder the evaluation ran on (for birth dates and sex)
  EVALUATION_DIR: `strata evaluate ... --score efi --outcome death_365d
  --outcome emergency_admission_365d --suppression none`
Prints one table per as-of date; exits 1 if an input is missing.
"""

import math
import sys
from pathlib import Path

import duckdb

# Clegg et al. 2016, abstract: one-year adjusted hazard ratios against fit.
PUBLISHED = {
    "death_365d": {"mild": 1.92, "moderate": 3.10, "severe": 4.52},
    "emergency_admission_365d": {"mild": 1.93, "moderate": 3.04, "severe": 4.73},
}

CATEGORIES = ["fit", "mild", "moderate", "severe"]


def category(efi):
    """eFI categories on whole deficit counts (of 36): fit 0-4, mild 5-8,
    moderate 9-12, severe 13+."""
    deficits = round(efi * 36)
    return "fit" if deficits <= 4 else "mild" if deficits <= 8 else "moderate" if deficits <= 12 else "severe"


def solve(a, b):
    """Solves a x = b (a square, positive definite) by Gaussian elimination
    with partial pivoting; also returns the inverse of a."""
    n = len(a)
    m = [row[:] + [b[i]] + [1.0 if j == i else 0.0 for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        pivot = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[pivot] = m[pivot], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    return [m[i][n] / m[i][i] for i in range(n)], [[m[i][n + 1 + j] / m[i][i] for j in range(n)] for i in range(n)]


def cloglog_hazard_ratios(cells, levels):
    """A binomial model with the complementary log-log link, fitted by
    iteratively reweighted least squares to cells of (stratum, category,
    events, people): log(-log(1 - risk)) = stratum + category. Under
    proportional hazards over the year, exp(category coefficient) is the
    hazard ratio against the first category, as a Cox model's. Returns
    {category: (ratio, low, high)} with Wald 95% intervals."""
    strata = sorted({c[0] for c in cells})
    present = {c[1] for c in cells if c[3] > 0}
    missing = [c for c in levels if c not in present]
    if missing:
        sys.exit(f"outcome_gradients: no one in category {', '.join(missing)}: no ratio can be estimated")
    columns = len(strata) + len(levels) - 1

    def row(stratum, category):
        x = [0.0] * columns
        x[strata.index(stratum)] = 1.0
        if category != levels[0]:
            x[len(strata) + levels.index(category) - 1] = 1.0
        return x

    rows = [(row(s, c), e, n) for s, c, e, n in cells if n > 0]

    def risk(x, beta):
        # Kept where the link's derivative is representable (a stratum
        # with no events drifts towards minus infinity).
        eta = min(max(sum(a * b for a, b in zip(x, beta)), -30.0), 2.0)
        return eta, min(max(1.0 - math.exp(-math.exp(eta)), 1e-12), 1.0 - 1e-12)

    def deviance(beta):
        return -sum(e * math.log(risk(x, beta)[1]) + (n - e) * math.log(1.0 - risk(x, beta)[1]) for x, e, n in rows)

    beta = [0.0] * columns
    beta[: len(strata)] = [-2.0] * len(strata)
    for _ in range(100):
        xtwx = [[0.0] * columns for _ in range(columns)]
        xtwz = [0.0] * columns
        for x, events, n in rows:
            eta, mu = risk(x, beta)
            d = math.exp(eta - math.exp(eta))
            w = n * d * d / (mu * (1.0 - mu))
            z = eta + (events / n - mu) / d
            for i in range(columns):
                if x[i]:
                    xtwz[i] += w * z
                    for j in range(columns):
                        if x[j]:
                            xtwx[i][j] += w
        new, inverse = solve(xtwx, xtwz)
        # Newton's step, halved while it makes the fit worse.
        step, before = 1.0, deviance(beta)
        while step > 1e-6:
            trial = [b + step * (n - b) for b, n in zip(beta, new)]
            if deviance(trial) <= before + 1e-12:
                break
            step /= 2
        change = max(abs(a - b) for a, b in zip(trial, beta))
        beta = trial
        if change < 1e-10:
            break
    else:
        print("outcome_gradients: the model did not converge in 100 steps", file=sys.stderr)
    out = {}
    for k, category in enumerate(levels[1:]):
        i = len(strata) + k
        b, se = beta[i], math.sqrt(inverse[i][i])
        out[category] = (math.exp(b), math.exp(b - 1.959964 * se), math.exp(b + 1.959964 * se))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data, folder = Path(sys.argv[1]), Path(sys.argv[2])
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT p.as_of, p.efi, s.sex,
               date_diff('year', s.birth_date, p.as_of)
                 - CASE WHEN strftime(s.birth_date, '%m%d') > strftime(p.as_of, '%m%d') THEN 1 ELSE 0 END AS age,
               p.outcome_death_365d, p.outcome_emergency_admission_365d
        FROM read_parquet('{folder / 'predictions.parquet'}') p
        JOIN read_parquet('{data / 'patients.parquet'}') s USING (person_id)
        WHERE p.efi IS NOT NULL
        ORDER BY p.as_of
        """
    ).fetchall()
    for as_of in sorted({r[0] for r in rows}):
        people = [r for r in rows if r[0] == as_of and 65 <= r[3] <= 95 and r[2] in ("F", "M")]
        print(f"\nas of {as_of}: {len(people)} people aged 65 to 95")
        print(f"{'outcome':<26}{'category':<10}{'people':>8}{'with it':>9}{'risk':>8}   {'hazard ratio (95% CI), age and sex adjusted':<40}{'Clegg 2016':>12}")
        for o, outcome in ((4, "death_365d"), (5, "emergency_admission_365d")):
            counts = {}
            for r in people:
                cell = counts.setdefault(((r[3] // 5, r[2]), category(r[1])), [0, 0])
                cell[0] += bool(r[o])
                cell[1] += 1
            ratios = cloglog_hazard_ratios([(s, c, e, n) for (s, c), (e, n) in counts.items()], CATEGORIES)
            for cat in CATEGORIES:
                events = sum(e for (s, c), (e, n) in counts.items() if c == cat)
                n = sum(n for (s, c), (e, n) in counts.items() if c == cat)
                hr = "1 (reference)" if cat == "fit" else "{:.2f} ({:.2f} to {:.2f})".format(*ratios[cat])
                published = PUBLISHED[outcome].get(cat, 1)
                risk = f"{events / n:.3f}" if n else "-"
                print(f"{outcome:<26}{cat:<10}{n:>8}{events:>9}{risk:>8}   {hr:<40}{published:>12}")

if __name__ == "__main__":
    main()
