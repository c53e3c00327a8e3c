//! `OUT/report.html`: one self-contained page for a BI lead: cohort sizes
//! by PCN, an age/sex pyramid per cohort, the distribution of every banded
//! score with its band boundaries, each cohort's prevalence by deprivation
//! quintile (with the most/least deprived ratio in words), overlaps between
//! cohorts, and the run's facts.
//!
//! Charts are SVG written here: no scripts, fonts or anything fetched, so
//! the file opens offline, prints, and can be mailed. Every count of people
//! is suppressed; percentages and ratios come from the counts as shown and
//! are left out where a count they use, or the rest of its whole, is
//! hidden; a histogram's axis ends on round numbers, not on a score.

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef};

use super::manifest::Manifest;
use super::suppress::Suppression;
use crate::engine::Results;
use crate::engine::eval;
use crate::engine::plan::{AGE_SLOT, FIRST_ATTRIBUTE_SLOT, SEX_SLOT};

/// The population attribute the inequality section reads.
const IMD_DECILE: &str = "imd_decile";

pub fn render(results: &Results, manifest: &Manifest) -> String {
    let s = manifest.suppression;
    let model = results.plan.model;
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}: strata report</title><style>{STYLE}</style></head><body>\n\
         <h1>{title}</h1>\n<p class=\"facts\">Data as of {as_of}; {alive} people alive and registered \
         and counted (the run's purpose, {purpose}, leaves {withheld} people with an opt-out out of every count \
         here). Counts: {method}.</p>",
        title = esc(&model.meta.title),
        as_of = results.plan.as_of,
        alive = manifest.counts.alive,
        purpose = esc(&manifest.opt_outs.purpose.replace('_', " ")),
        withheld = esc(&manifest.opt_outs.withheld_from_counts),
        method = esc(s.method()),
    );

    html.push_str("<h2>Cohort sizes by PCN</h2>\n");
    for cohort in &manifest.exact.cohorts {
        let rows: Vec<Bar> = cohort
            .by_pcn
            .iter()
            .map(|(pcn, n)| Bar::count(pcn_label(manifest, pcn), *n, s))
            .collect();
        let _ = writeln!(
            html,
            "<section class=\"chart\" id=\"sizes-{}\"><h3>{}</h3>{}</section>",
            esc(&cohort.name),
            esc(&cohort.title),
            bars(&rows)
        );
    }

    // The sections below read every person (a few passes over 5M at a
    // whole ICS's size): worked out side by side.
    let ((by_age, by_score), (by_deprivation, overlapping)) = rayon::join(
        || rayon::join(|| pyramids(results, s), || score_distributions(results, s)),
        || rayon::join(|| inequalities(results, s), || overlaps(results, s)),
    );
    for section in [by_age, by_score, by_deprivation, overlapping] {
        html.push_str(&section);
    }
    html.push_str(&run_facts(manifest));
    html.push_str("</body></html>\n");
    html
}

/// An age/sex pyramid of each cohort's members.
fn pyramids(results: &Results, s: Suppression) -> String {
    let model = results.plan.model;
    let mut html = String::new();
    html.push_str("<h2>Age and sex</h2>\n");
    let age = results.slots[AGE_SLOT].as_primitive::<Int64Type>();
    let sex = results.slots[SEX_SLOT].as_string::<i32>();
    for (cohort, result) in model.cohorts.iter().zip(&results.cohorts) {
        let mut bands = [[0u64; 2]; 19];
        for &m in result
            .members
            .iter()
            .filter(|&&m| results.counted(m as usize))
        {
            let m = m as usize;
            if age.is_null(m) {
                continue;
            }
            let band = (age.value(m).max(0) as usize / 5).min(18);
            match sex.is_valid(m).then(|| sex.value(m)) {
                Some("M") => bands[band][0] += 1,
                Some("F") => bands[band][1] += 1,
                _ => {}
            }
        }
        let _ = writeln!(
            html,
            "<section class=\"chart\" id=\"pyramid-{}\"><h3>{}</h3>{}</section>",
            esc(&cohort.name),
            esc(&cohort.title),
            pyramid(&bands, s)
        );
    }

    html
}

/// The distribution of every banded score, with its band boundaries.
fn score_distributions(results: &Results, s: Suppression) -> String {
    let model = results.plan.model;
    let mut html = String::new();
    let banded: Vec<_> = model
        .features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.banding.as_ref().map(|b| (i, f, b)))
        .collect();
    if !banded.is_empty() {
        html.push_str("<h2>Score distributions</h2>\n");
    }
    for (_, feature, banding) in banded {
        let persons = results.alive.len();
        // The features the score reads, each through `Results::feature`:
        // one a run let go (`super::features_read` missing it) fails
        // loudly here, where an evaluation over its slot would fail and
        // drop the chart unseen.
        for (name, _) in banding.score.expr.names() {
            if let Some(i) = model.feature_index(name) {
                results.feature(i);
            }
        }
        let Ok(typed) = results.plan.person_expression(&banding.score) else {
            continue;
        };
        let Ok(values) = eval::evaluate_parallel(&typed, &results.slots, persons) else {
            continue;
        };
        // Most people score 0 on most scores: drawn, that bar would flatten
        // the rest, so it is counted in words instead.
        // Read in place, the zeros only counted: a copy of every
        // person's score (and of the zeros) held over 100 MB at 5M.
        let value = number_at(&values);
        let mut zeros = 0u64;
        let mut scores: Vec<f64> = Vec::new();
        for v in (0..persons)
            .filter(|&i| results.counted(i))
            .filter_map(value)
        {
            if v == 0.0 {
                zeros += 1;
            } else {
                scores.push(v);
            }
        }
        let _ = writeln!(
            html,
            "<section class=\"chart\" id=\"scores-{}\"><h3>{} ({})</h3>{}<p>People alive scoring above 0: {}; scoring 0 (not drawn): {}.</p></section>",
            esc(&feature.name),
            esc(if feature.description.is_empty() {
                &feature.name
            } else {
                &feature.description
            }),
            esc(&banding.score.text),
            histogram(&scores, &banding.boundaries, &banding.names, s),
            s.count(scores.len() as u64),
            s.count(zeros),
        );
    }

    html
}

pub(crate) const STYLE: &str = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}\
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}h3{font-size:1rem;margin:1rem 0 .3rem}\
svg text{font-size:11px;fill:#222}.facts{color:#555}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}\
@media print{section{break-inside:avoid}}";

pub(crate) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pcn_label(manifest: &Manifest, code: &str) -> String {
    match manifest.pcn_names.get(code) {
        Some(name) => format!("{name} ({code})"),
        None => code.to_string(),
    }
}

/// One bar: its label, its length (`None` where hidden) and what it says.
struct Bar {
    label: String,
    value: Option<f64>,
    shown: String,
}

impl Bar {
    fn count(label: String, n: u64, s: Suppression) -> Bar {
        let shown = s.count(n);
        Bar {
            label,
            value: (!s.hides(n)).then(|| shown.parse().unwrap_or(n as f64)),
            shown,
        }
    }
}

/// Horizontal bars, one per row.
fn bars(rows: &[Bar]) -> String {
    let (label_w, bar_w, row_h) = (220.0, 420.0, 18.0);
    let max = rows
        .iter()
        .filter_map(|r| r.value)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let height = row_h * rows.len() as f64 + 4.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{}\" height=\"{height}\">",
        label_w + bar_w + 60.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let w = r.value.map_or(0.0, |v| bar_w * v / max);
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{label_w}\" y=\"{ry}\" width=\"{w:.1}\" height=\"{h}\" fill=\"#4477aa\"/>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{shown}</text>",
            x = label_w - 6.0,
            ty = y + 13.0,
            label = esc(&r.label),
            ry = y + 3.0,
            h = row_h - 5.0,
            vx = label_w + w + 4.0,
            shown = esc(&r.shown),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Five-year age bands (90+ last), men to the left, women to the right.
fn pyramid(bands: &[[u64; 2]; 19], s: Suppression) -> String {
    let (half, label_w, row_h) = (220.0, 50.0, 13.0);
    let shown =
        |n: u64| -> Option<f64> { (!s.hides(n)).then(|| s.count(n).parse().unwrap_or(0.0)) };
    let max = bands
        .iter()
        .flat_map(|b| b.iter().filter_map(|&n| shown(n)))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let height = row_h * 19.0 + 20.0;
    let width = 2.0 * half + label_w + 80.0;
    let mid = half + 40.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\">\
         <text x=\"{mx:.1}\" y=\"11\" text-anchor=\"end\">men</text><text x=\"{fx:.1}\" y=\"11\">women</text>",
        mx = mid - 6.0,
        fx = mid + label_w + 6.0,
    );
    for (i, band) in bands.iter().enumerate().rev() {
        let y = 16.0 + (18 - i) as f64 * row_h;
        let label = if i == 18 {
            "90+".to_string()
        } else {
            format!("{}-{}", i * 5, i * 5 + 4)
        };
        let (m, f) = (band[0], band[1]);
        let (mw, fw) = (
            shown(m).map_or(0.0, |v| half * v / max),
            shown(f).map_or(0.0, |v| half * v / max),
        );
        let _ = write!(
            svg,
            "<rect x=\"{mx:.1}\" y=\"{y}\" width=\"{mw:.1}\" height=\"{h}\" fill=\"#4477aa\"><title>men {label}: {ms}</title></rect>\
             <text x=\"{lx:.1}\" y=\"{ty}\" text-anchor=\"middle\">{label}</text>\
             <rect x=\"{fx:.1}\" y=\"{y}\" width=\"{fw:.1}\" height=\"{h}\" fill=\"#cc6677\"><title>women {label}: {fs}</title></rect>",
            mx = mid - mw,
            h = row_h - 2.0,
            lx = mid + label_w / 2.0,
            ty = y + 10.0,
            fx = mid + label_w,
            ms = s.count(m),
            fs = s.count(f),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Round numbers at or beyond `lowest` and `highest` (`lowest <
/// highest`): multiples of a step of 1, 2 or 5 times a power of ten, about
/// a tenth of the range, so that no one's score is an end of the axis.
fn axis_ends(lowest: f64, highest: f64) -> (f64, f64) {
    let rough = (highest - lowest) / 10.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = power
        * match rough / power {
            m if m <= 1.0 => 1.0,
            m if m <= 2.0 => 2.0,
            m if m <= 5.0 => 5.0,
            _ => 10.0,
        };
    (
        (lowest / step).floor() * step,
        (highest / step).ceil() * step,
    )
}

/// Each row's number in a numeric array (`None` where null, or where the
/// array is not numeric), read in place.
fn number_at(values: &ArrayRef) -> impl Fn(usize) -> Option<f64> + '_ {
    let floats = values.as_primitive_opt::<Float64Type>();
    let ints = values.as_primitive_opt::<Int64Type>();
    move |row| match (floats, ints) {
        (Some(f), _) => f.is_valid(row).then(|| f.value(row)),
        (_, Some(i)) => i.is_valid(row).then(|| i.value(row) as f64),
        _ => None,
    }
}

/// Twenty bins from 0 (or below the lowest score) to beyond the highest,
/// each count suppressed, with the band boundaries drawn and named. The
/// axis ends on round numbers ([`axis_ends`]): ended at the highest score,
/// it gave one person's score away (an HFRS of 144.7 over a bin of `*`).
fn histogram(scores: &[f64], boundaries: &[f64], names: &[String], s: Suppression) -> String {
    let (w, h, left, bottom) = (600.0, 160.0, 40.0, 30.0);
    let lowest = scores.iter().copied().fold(0.0f64, f64::min);
    let highest = scores
        .iter()
        .copied()
        .chain(boundaries.iter().copied())
        .fold(lowest + 1.0, f64::max);
    let (lo, hi) = axis_ends(lowest, highest);
    let bins = 20usize;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for &v in scores {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let heights: Vec<Option<f64>> = counts
        .iter()
        .map(|&n| (!s.hides(n)).then(|| s.count(n).parse().unwrap_or(0.0)))
        .collect();
    let max = heights
        .iter()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1.0);
    let x = |v: f64| left + w * (v - lo) / (hi - lo);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{}\" height=\"{}\">",
        left + w + 20.0,
        h + bottom + 20.0
    );
    for (i, (&n, hgt)) in counts.iter().zip(&heights).enumerate() {
        let bh = hgt.map_or(0.0, |v| h * v / max);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4477aa\"><title>{:.2} to {:.2}: {}</title></rect>",
            x(lo + i as f64 * width) + 1.0,
            20.0 + h - bh,
            w / bins as f64 - 2.0,
            lo + i as f64 * width,
            lo + (i + 1) as f64 * width,
            s.count(n),
        );
    }
    for (i, &b) in boundaries.iter().enumerate() {
        let _ = write!(
            svg,
            "<line class=\"boundary\" x1=\"{bx:.1}\" x2=\"{bx:.1}\" y1=\"14\" y2=\"{y2}\" stroke=\"#cc3311\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{tx:.1}\" y=\"12\">{b} ({lower} | {upper})</text>",
            bx = x(b),
            y2 = 20.0 + h,
            tx = x(b) + 3.0,
            lower = esc(&names[i]),
            upper = esc(&names[i + 1]),
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{left}\" x2=\"{r}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#222\"/>\
         <text x=\"{left}\" y=\"{ty}\">{lo}</text><text x=\"{r}\" y=\"{ty}\" text-anchor=\"end\">{hi:.1}</text></svg>",
        r = left + w,
        y = 20.0 + h,
        ty = 20.0 + h + 14.0,
    );
    svg
}

/// Each cohort's prevalence by IMD quintile (1 = most deprived 20%), with
/// the ratio of the most to the least deprived in words.
fn inequalities(results: &Results, s: Suppression) -> String {
    let plan = &results.plan;
    let mut html = String::from("<h2>Inequalities</h2>\n");
    let Some(i) = plan.attributes.iter().position(|a| a == IMD_DECILE) else {
        html.push_str(
            "<p>No `imd_decile` population attribute in the rule files, so no deprivation breakdown.</p>\n",
        );
        return html;
    };
    let stored = &results.slots[FIRST_ATTRIBUTE_SLOT + i];
    // Deciles stored as text (off the contract) are read as the numbers
    // they hold, as `strata evaluate` reads them; other text is no decile.
    let cast;
    let decile = if stored.data_type().is_numeric() || stored.data_type().is_null() {
        stored
    } else {
        tracing::warn!(
            "`imd_decile` is stored as {} where the data contract asks for a number: read as the numbers it holds, text that is no number as no decile; store the deciles as integers",
            stored.data_type()
        );
        let _ = writeln!(
            html,
            "<p><code>imd_decile</code> is stored as {}, not as a number (see the data contract): read as the numbers it holds.</p>",
            esc(&stored.data_type().to_string())
        );
        cast = arrow_cast::cast(stored, &arrow_schema::DataType::Float64).unwrap_or_else(|_| {
            arrow_array::new_null_array(&arrow_schema::DataType::Float64, stored.len())
        });
        &cast
    };
    let decile = number_at(decile);
    let quintile = |row: usize| decile(row).and_then(quintile_of);
    let mut alive = [0u64; 5];
    // People whose decile is there but is no decile (0, 11, 2.5, or text
    // that is no number): left out of every quintile, not put in the
    // nearest one, and counted here.
    let mut not_deciles = 0u64;
    for row in 0..results.alive.len() {
        if !results.counted(row) {
            continue;
        }
        match (decile(row), quintile(row)) {
            (_, Some(q)) => alive[q] += 1,
            (Some(_), None) => not_deciles += 1,
            (None, None) if stored.is_valid(row) => not_deciles += 1,
            (None, None) => {}
        }
    }
    if not_deciles > 0 {
        tracing::warn!(
            "{} people's `imd_decile` is not a whole number from 1 to 10: the report leaves them out of its deprivation breakdown; check the extract's deciles",
            s.count(not_deciles)
        );
        let _ = writeln!(
            html,
            "<p>People whose <code>imd_decile</code> is not a whole number from 1 to 10, left out of these figures: {}.</p>",
            s.count(not_deciles)
        );
    }
    for (cohort, result) in plan.model.cohorts.iter().zip(&results.cohorts) {
        let mut members = [0u64; 5];
        for &m in result
            .members
            .iter()
            .filter(|&&m| results.counted(m as usize))
        {
            if let Some(q) = quintile(m as usize) {
                members[q] += 1;
            }
        }
        let rows: Vec<Bar> = (0..5)
            .map(|q| {
                let label = match q {
                    0 => "Q1 (most deprived 20%)".to_string(),
                    4 => "Q5 (least deprived 20%)".to_string(),
                    _ => format!("Q{}", q + 1),
                };
                // Drawn, as written, from the counts as shown.
                let share = s.share(members[q], alive[q]);
                Bar {
                    label,
                    value: share.map(|r| 100.0 * r),
                    shown: s
                        .percent(members[q], alive[q])
                        .unwrap_or_else(|| "*".to_string()),
                }
            })
            .collect();
        let ratio = ratio_sentence(&members, &alive, s);
        let _ = writeln!(
            html,
            "<section class=\"chart\" id=\"imd-{}\"><h3>{}: % of people alive, by IMD quintile</h3>{}<p class=\"ratio\">{}</p></section>",
            esc(&cohort.name),
            esc(&cohort.title),
            bars(&rows),
            esc(&ratio)
        );
    }
    html
}

/// The IMD quintile (0 = most deprived 20%) of a decile, if it is one: a
/// whole number from 1 to 10 (`strata evaluate`'s groups read it too).
pub fn quintile_of(decile: f64) -> Option<usize> {
    (decile.fract() == 0.0 && (1.0..=10.0).contains(&decile)).then(|| (decile as usize - 1) / 2)
}

/// The most/least deprived ratio as strategy documents write it, from
/// the counts as shown, unless a count it uses is hidden.
fn ratio_sentence(members: &[u64; 5], alive: &[u64; 5], s: Suppression) -> String {
    match (s.share(members[0], alive[0]), s.share(members[4], alive[4])) {
        (Some(most), Some(least)) if most > 0.0 && least > 0.0 => {
            let r = most / least;
            if r >= 1.0 {
                format!("{r:.1}x higher in the most deprived 20% than in the least deprived 20%.")
            } else {
                format!(
                    "{:.1}x higher in the least deprived 20% than in the most deprived 20%.",
                    1.0 / r
                )
            }
        }
        _ => "Too few people to compare the most and least deprived 20%.".to_string(),
    }
}

/// How many people are in several cohorts, and each pair's overlap.
fn overlaps(results: &Results, s: Suppression) -> String {
    let cohorts = &results.plan.model.cohorts;
    let mut html = String::from("<h2>Overlaps between cohorts</h2>\n");
    let flags: Vec<_> = results.cohorts.iter().map(|c| &c.flags).collect();
    let n = cohorts.len();
    let mut in_k = vec![0u64; n + 1];
    let mut pairs = vec![0u64; n * n];
    let mut member_of: Vec<usize> = Vec::with_capacity(n);
    // Only those counted and in some cohort are shown: found a word of
    // persons at a time, most people being in none.
    let in_some = flags.iter().fold(
        arrow_buffer::BooleanBuffer::new_unset(results.alive.len()),
        |some, f| &some | f.values(),
    );
    for row in (&in_some & &results.counted).set_indices() {
        member_of.clear();
        member_of.extend((0..n).filter(|&c| flags[c].value(row)));
        in_k[member_of.len()] += 1;
        for &a in &member_of {
            for &b in &member_of {
                pairs[a * n + b] += 1;
            }
        }
    }
    let rows: Vec<Bar> = (1..in_k.len())
        .map(|k| {
            Bar::count(
                format!("in {k} cohort{}", if k == 1 { "" } else { "s" }),
                in_k[k],
                s,
            )
        })
        .collect();
    let _ = writeln!(
        html,
        "<section class=\"chart\" id=\"overlap-counts\">{}</section>",
        bars(&rows)
    );
    html.push_str("<table id=\"overlap-pairs\"><tr><th></th>");
    for c in cohorts {
        let _ = write!(html, "<th>{}</th>", esc(&c.name));
    }
    html.push_str("</tr>\n");
    for (a, ca) in cohorts.iter().enumerate() {
        let _ = write!(html, "<tr><th>{}</th>", esc(&ca.name));
        for b in 0..n {
            let _ = write!(html, "<td>{}</td>", s.count(pairs[a * n + b]));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    html
}

fn run_facts(manifest: &Manifest) -> String {
    let mut html = String::from("<h2>Run</h2>\n<table id=\"run-facts\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(html, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    };
    row("strata", manifest.strata_version.to_string());
    let o = &manifest.opt_outs;
    row(
        "purpose",
        format!("{} (from {}): {}", o.purpose, o.purpose_from, o.rule),
    );
    row(
        "opt-outs",
        format!(
            "type 1 flag {}, National Data Opt-out flag {}; left out of the lists: {}, of the counts: {}",
            if o.type1_column { "present" } else { "absent" },
            if o.national_data_opt_out_column {
                "present"
            } else {
                "absent"
            },
            o.withheld_from_lists,
            o.withheld_from_counts
        ),
    );
    row(
        "as-of date",
        format!(
            "{}{}",
            manifest.as_of,
            if manifest.as_of_inferred {
                " (latest activity in the data)"
            } else {
                ""
            }
        ),
    );
    for f in &manifest.model.files {
        row(
            "rule file",
            format!("{} (SHA-256 {})", f.path, &f.sha256[..12]),
        );
    }
    for input in &manifest.inputs {
        let rows: u64 = input.files.iter().map(|f| f.rows).sum();
        row(
            &format!("input {}", input.table),
            format!("{rows} rows in {} file(s)", input.files.len()),
        );
    }
    for a in &manifest.absent_optional_tables {
        row(
            &format!("input {}", a.table),
            format!(
                "absent (optional): the features of source `{}` are unknown",
                a.source
            ),
        );
    }
    for (table, reasons) in &manifest.rejected {
        for (reason, n) in reasons {
            if *n == 0 {
                continue;
            }
            if super::manifest::skipped_for_a_problem(table, reason) {
                row(&format!("rows skipped: {table}"), format!("{n} ({reason})"));
            } else {
                row(
                    &format!("rows not used: {table}"),
                    format!("{n} ({reason}, expected: not a problem in the data)"),
                );
            }
        }
    }
    // People (a row each), so suppressed as counts of people are.
    for (table, reasons) in &manifest.read_as_unknown {
        for (reason, n) in reasons.iter().filter(|(_, n)| **n > 0) {
            row(
                &format!("values read as unknown: {table}"),
                format!("{} ({reason})", manifest.suppression.count(*n)),
            );
        }
    }
    for (stage, secs) in &manifest.timings_seconds {
        row(&format!("time: {stage}"), format!("{secs:.2} s"));
    }
    html.push_str("</table>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram's axis ends on round numbers, not on anyone's score.
    #[test]
    fn a_histogram_axis_ends_on_round_numbers() {
        assert_eq!(axis_ends(0.0, 144.7), (0.0, 160.0));
        assert_eq!(axis_ends(0.0, 1.0), (0.0, 1.0));
        assert_eq!(axis_ends(-3.2, 10.0), (-4.0, 10.0));
        let svg = histogram(&[1.0, 2.5, 144.7], &[5.0, 15.0], &names(), Suppression::Hes);
        assert!(!svg.contains("144.7"), "{svg}");
        assert!(svg.contains(">160.0<"), "{svg}");
    }

    fn names() -> Vec<String> {
        ["low", "middle", "high"].map(String::from).to_vec()
    }

    #[test]
    fn only_whole_deciles_from_1_to_10_have_a_quintile() {
        assert_eq!(quintile_of(1.0), Some(0));
        assert_eq!(quintile_of(2.0), Some(0));
        assert_eq!(quintile_of(3.0), Some(1));
        assert_eq!(quintile_of(9.0), Some(4));
        assert_eq!(quintile_of(10.0), Some(4));
        for not_a_decile in [0.0, 11.0, 2.5, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(quintile_of(not_a_decile), None, "{not_a_decile}");
        }
    }

    #[test]
    fn the_deprivation_ratio_in_words() {
        let alive = [1000, 900, 800, 700, 2000];
        let s = Suppression::Hes;
        assert_eq!(
            ratio_sentence(&[100, 0, 0, 0, 100], &alive, s),
            "2.0x higher in the most deprived 20% than in the least deprived 20%."
        );
        assert_eq!(
            ratio_sentence(&[10, 0, 0, 0, 60], &alive, s),
            "3.0x higher in the least deprived 20% than in the most deprived 20%."
        );
        // 5 people in the least deprived quintile: hidden, so no ratio.
        assert!(ratio_sentence(&[100, 0, 0, 0, 5], &alive, s).starts_with("Too few"));
        assert!(ratio_sentence(&[100, 0, 0, 0, 5], &alive, Suppression::None).starts_with("40.0x"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("A&E <b>"), "A&amp;E &lt;b&gt;");
    }
}
