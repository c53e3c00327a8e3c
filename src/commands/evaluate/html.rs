//! `evaluation.html`: the evaluation for people, drawn from
//! `evaluation.json` alone (so the page shows nothing the file does not
//! hold, suppression included): per date and outcome, each cohort as a
//! list, each score's ROC and precision-recall curves with its AUROC and
//! AUPRC, the figures by group with the largest gap in words, the
//! comparison with a second rule set, and lists followed between dates.
//! Self-contained SVG, no scripts, like the run's report.

use std::fmt::Write as _;

use serde_json::Value;

use crate::output::report::{STYLE, esc};

/// Colours of the scores' curves, in order.
const COLOURS: [&str; 6] = [
    "#1f6fb4", "#d9711c", "#2e8b57", "#b03a48", "#6a4c93", "#777777",
];

pub fn render(evaluation: &Value) -> String {
    let mut html = String::new();
    let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
    let _ = writeln!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Evaluation of {model}</title><style>{STYLE}</style></head><body>\n\
         <h1>Evaluation of {model}</h1>\n<p class=\"facts\">Who is evaluated: {population}. \
         Counts: {method}; a ratio is left out where a count it is made from is hidden.{compared}</p>",
        model = text(&evaluation["model"]),
        population = text(&evaluation["population"]),
        method = text(&evaluation["suppression"]),
        compared = evaluation["compared_with"]
            .as_str()
            .map(|c| format!(" Compared with {}.", esc(c)))
            .unwrap_or_default(),
    );
    history(&mut html, &evaluation["history"]);
    for f in evaluation["figures"].as_array().into_iter().flatten() {
        figure(&mut html, f);
    }
    let between = evaluation["between_dates"].as_array();
    if between.is_some_and(|b| !b.is_empty()) {
        html.push_str("<h2>Lists from one date to the next</h2>\n<p>Of each earlier list, how many are still on the later one; and, for what happened after the later date, the PPV of those already listed against those newly listed.</p>\n");
        for b in between.into_iter().flatten() {
            let _ = writeln!(
                html,
                "<h3>{} to {}</h3>\n<table><tr><th>cohort</th><th>earlier list</th><th>stayed</th><th>left (no longer in the population / came off the list)</th><th>joined</th><th>still listed (of those still in the population)</th><th>PPV already listed / newly listed</th></tr>",
                text(&b["from"]),
                text(&b["to"])
            );
            for c in b["cohorts"].as_array().into_iter().flatten() {
                let ppvs: Vec<String> = c["outcomes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| {
                        format!(
                            "{}: {} / {}",
                            text(&o["outcome"]),
                            share(&o["ppv_already_listed"]),
                            share(&o["ppv_newly_listed"])
                        )
                    })
                    .collect();
                let _ = writeln!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({} / {})</td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
                    text(&c["cohort"]),
                    text(&c["on_earlier_list"]),
                    text(&c["stayed"]),
                    text(&c["left"]),
                    text(&c["left_the_population"]),
                    text(&c["came_off_the_list"]),
                    text(&c["joined"]),
                    share(&c["still_listed"]),
                    share(&c["still_listed_of_those_still_in_population"]),
                    ppvs.join("; ")
                );
            }
            html.push_str("</table>\n");
        }
    }
    html.push_str("</body></html>\n");
    html
}

/// Each table's first event, and each date's windows that reach back
/// before it (their features' values lower for want of data).
fn history(html: &mut String, history: &Value) {
    let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
    let tables: Vec<String> = history["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| match t["first_event"].as_str() {
            Some(d) => format!("{} from {}", text(&t["table"]), esc(d)),
            None => format!("{} (no events)", text(&t["table"])),
        })
        .collect();
    if tables.is_empty() {
        return;
    }
    let _ = writeln!(
        html,
        "<p class=\"facts\">History in the data: {}. A feature with no window start (ever coded) reads what there is.</p>",
        tables.join("; ")
    );
    for d in history["dates"].as_array().into_iter().flatten() {
        let cut: Vec<String> = d["windows_cut_short"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} (from {}; {} from {})",
                    text(&c["feature"]),
                    text(&c["window_from"]),
                    text(&c["source"]),
                    text(&c["data_from"])
                )
            })
            .collect();
        if !cut.is_empty() {
            let _ = writeln!(
                html,
                "<p><strong>As of {}, windows reach back before the data:</strong> {}. Their values, and the lists made from them, are lower for want of data.</p>",
                text(&d["as_of"]),
                cut.join("; ")
            );
        }
    }
}

/// A ratio as a percentage with one decimal; `-` where hidden.
fn share(v: &Value) -> String {
    v.as_f64()
        .map_or("-".to_string(), |x| format!("{:.1}%", 100.0 * x))
}

/// A ratio as a percentage with its 95% confidence interval.
fn share_ci(v: &Value, ci: &Value) -> String {
    match (v.as_f64(), ci[0].as_f64(), ci[1].as_f64()) {
        (Some(_), Some(_), Some(_)) => {
            format!("{} ({} to {})", share(v), share(&ci[0]), share(&ci[1]))
        }
        _ => share(v),
    }
}

/// A number to three decimals with its 95% confidence interval.
fn auroc_ci(v: &Value, ci: &Value) -> String {
    match (v.as_f64(), ci[0].as_f64(), ci[1].as_f64()) {
        (Some(_), Some(_), Some(_)) => {
            format!("{} ({} to {})", auroc(v), auroc(&ci[0]), auroc(&ci[1]))
        }
        _ => auroc(v),
    }
}

/// A number to three decimals; `-` where hidden.
fn number(v: &Value) -> String {
    v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"))
}

/// An AUROC or AUPRC (or a difference of two, or an interval's end) to
/// two decimals, as they are reported and as suppression rounds them: a
/// third would read as precision the figure does not have.
pub(super) fn auroc(v: &Value) -> String {
    v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"))
}

fn figure(html: &mut String, f: &Value) {
    let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
    let id = format!(
        "{}-{}",
        f["as_of"].as_str().unwrap_or(""),
        f["outcome"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        html,
        "<h2>As of {}: {}</h2>\n<p>{} people, {} with the outcome (prevalence {}).</p>",
        text(&f["as_of"]),
        text(&f["outcome"]),
        text(&f["people"]),
        text(&f["with_outcome"]),
        share(&f["prevalence"])
    );
    html.push_str("<h3>Cohorts as lists</h3>\n<table><tr><th>cohort</th><th>on list</th><th>with outcome</th><th>PPV (95% CI)</th><th>sensitivity (95% CI)</th><th>specificity</th><th>lift</th></tr>\n");
    for c in f["cohorts"].as_array().into_iter().flatten() {
        list_row(html, &text(&c["cohort"]), &c["as_list"]);
    }
    html.push_str("</table>\n");
    events_on_lists(html, f);
    let scores = f["scores"].as_array().cloned().unwrap_or_default();
    if !scores.is_empty() {
        html.push_str("<h3>Scores</h3>\n<table><tr><th>score</th><th>scored</th><th>AUROC (95% CI)</th><th>AUPRC</th></tr>\n");
        for s in &scores {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&s["score"]),
                text(&s["scored"]),
                auroc_ci(&s["auroc"], &s["auroc_95ci"]),
                auroc(&s["auprc"])
            );
        }
        html.push_str("</table>\n<h3>Scores' top lists</h3>\n<table><tr><th>list</th><th>on list</th><th>with outcome</th><th>PPV (95% CI)</th><th>sensitivity (95% CI)</th><th>specificity</th><th>lift</th></tr>\n");
        for s in &scores {
            for t in s["top"].as_array().into_iter().flatten() {
                let label = format!(
                    "{}: top {}%",
                    text(&s["score"]),
                    t["top"].as_f64().unwrap_or(0.0) * 100.0
                );
                list_row(html, &label, &t["as_list"]);
            }
            let label = format!(
                "{}: first {} of each PCN",
                text(&s["score"]),
                s["top_per_pcn"]["per_pcn"]
            );
            list_row(html, &label, &s["top_per_pcn"]["as_list"]);
            for p in s["top_per_pcn"]["pcns"].as_array().into_iter().flatten() {
                let label = format!("&nbsp;&nbsp;in {}", text(&p["pcn"]));
                list_row(html, &label, &p["as_list"]);
            }
        }
        html.push_str("</table>\n");
        let _ = writeln!(
            html,
            "<section class=\"chart\" id=\"curves-{}\">{}{}{}</section>",
            esc(&id),
            curve_chart(
                &scores,
                "roc",
                "ROC: people with the outcome found (true positive rate) against people without it listed (false positive rate)",
                "false positive rate",
                "true positive rate",
                true
            ),
            curve_chart(
                &scores,
                "precision_recall",
                "Precision (PPV) against recall (sensitivity), down each score's ranking",
                "recall",
                "precision",
                false
            ),
            legend(&scores)
        );
    }
    for sc in &scores {
        let Some(deciles) = sc["calibration"]["deciles"].as_array() else {
            continue;
        };
        let _ = writeln!(
            html,
            "<h3>Calibration of {}</h3>\n<p>Brier score {} (the mean squared difference between the probability and what happened; 0 is perfect).</p>\n<table><tr><th>decile</th><th>people</th><th>mean predicted</th><th>observed</th></tr>",
            text(&sc["score"]),
            number(&sc["calibration"]["brier"])
        );
        for d in deciles {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                d["decile"],
                text(&d["people"]),
                share(&d["mean_predicted"]),
                share(&d["observed"])
            );
        }
        html.push_str("</table>\n");
    }
    share_of_whole(html, f);
    groups(html, f);
    comparison(html, f);
}

/// An outcome that is a count (admissions, bed days): how much of it each
/// list's people had.
fn events_on_lists(html: &mut String, f: &Value) {
    let cohorts = f["cohorts"].as_array().cloned().unwrap_or_default();
    if cohorts.iter().all(|c| c["events"].is_null()) {
        return;
    }
    let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
    let _ = writeln!(
        html,
        "<h3>How much of {} each list's people had</h3>\n<table><tr><th>cohort</th><th>on the list</th><th>of all</th><th>share</th></tr>",
        text(&f["outcome"])
    );
    for c in &cohorts {
        let e = &c["events"];
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&c["cohort"]),
            text(&e["on_list"]),
            text(&e["all"]),
            share(&e["share"])
        );
    }
    html.push_str("</table>\n");
}

/// An outcome that is part of another: each list's share of the whole's
/// events beside the population's.
fn share_of_whole(html: &mut String, f: &Value) {
    let w = &f["share_of_whole"];
    let Some(of) = w["of"].as_str() else {
        return;
    };
    let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
    let _ = writeln!(
        html,
        "<h3>Share of {} that were {}</h3>\n<p>In the population: {} of {} ({}). A list whose share is higher picks people whose admissions are more often of a kind that care outside hospital can prevent.</p>\n<table><tr><th>cohort</th><th>on the list</th><th>share</th><th>per 100 listed</th><th>off the list</th><th>share</th></tr>",
        esc(of),
        text(&f["outcome"]),
        text(&w["population"]["of_which_part"]),
        text(&w["population"]["events"]),
        share(&w["population"]["share"])
    );
    for c in w["cohorts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td></tr>",
            text(&c["cohort"]),
            text(&c["on_list"]["of_which_part"]),
            text(&c["on_list"]["events"]),
            share(&c["on_list"]["share"]),
            c["on_list"]["part_per_100_people"]
                .as_f64()
                .map_or("-".to_string(), |x| format!("{x:.1}")),
            text(&c["off_list"]["of_which_part"]),
            text(&c["off_list"]["events"]),
            share(&c["off_list"]["share"])
        );
    }
    html.push_str("</table>\n");
}

fn list_row(html: &mut String, label: &str, l: &Value) {
    let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
    let _ = writeln!(
        html,
        "<tr><td>{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        text(&l["on_list"]),
        text(&l["with_outcome"]),
        share_ci(&l["ppv"], &l["ppv_95ci"]),
        share_ci(&l["sensitivity"], &l["sensitivity_95ci"]),
        share(&l["specificity"]),
        l["lift"]
            .as_f64()
            .map_or("-".to_string(), |x| format!("{x:.1}x"))
    );
}

/// One chart of every score's curve `key` ([x, y] points in 0..1).
fn curve_chart(
    scores: &[Value],
    key: &str,
    title: &str,
    x: &str,
    y: &str,
    diagonal: bool,
) -> String {
    let (w, h, m) = (320.0, 300.0, 40.0);
    let px = |v: f64| m + v * (w - m - 10.0);
    let py = |v: f64| h - m - v * (h - m - 10.0);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">",
        esc(title)
    );
    let _ = write!(
        svg,
        "<rect x=\"{m}\" y=\"10\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        w - m - 10.0,
        h - m - 10.0
    );
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t}</text>",
            px(t),
            h - m + 14.0,
            m - 4.0,
            py(t) + 4.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"12\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 12 {})\">{}</text>",
        px(0.5),
        h - 8.0,
        esc(x),
        py(0.5),
        py(0.5),
        esc(y)
    );
    if diagonal {
        let _ = write!(
            svg,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>",
            px(0.0),
            py(0.0),
            px(1.0),
            py(1.0)
        );
    }
    for (i, s) in scores.iter().enumerate() {
        let Some(points) = s[key].as_array() else {
            continue;
        };
        let path: Vec<String> = points
            .iter()
            .filter_map(|p| {
                Some(format!(
                    "{:.1},{:.1}",
                    px(p[0].as_f64()?),
                    py(p[1].as_f64()?)
                ))
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"><title>{}</title></polyline>",
            path.join(" "),
            COLOURS[i % COLOURS.len()],
            esc(s["score"].as_str().unwrap_or(""))
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn legend(scores: &[Value]) -> String {
    let items: Vec<String> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "<span style=\"color:{}\">&#9632;</span> {}",
                COLOURS[i % COLOURS.len()],
                esc(s["score"].as_str().unwrap_or(""))
            )
        })
        .collect();
    format!("<p>{}</p>", items.join(" &nbsp; "))
}

/// The figures by group, and each breakdown's largest gap in words.
fn groups(html: &mut String, f: &Value) {
    let Some(groupings) = f["groups"].as_object() else {
        return;
    };
    html.push_str("<h3>By group</h3>\n");
    for (grouping, g) in groupings {
        let name = grouping.replace('_', " ");
        if let Some(gap) = g["largest_gap"].as_object() {
            let _ = writeln!(
                html,
                "<p>By {}, the largest gap is in {}: {} between group {} (highest) and group {} (lowest).</p>",
                esc(&name),
                esc(gap["figure"].as_str().unwrap_or("")),
                // A gap between AUROCs is one to their 2 decimals.
                if gap["figure"]
                    .as_str()
                    .is_some_and(|f| f.ends_with(" auroc"))
                {
                    auroc(&gap["gap"])
                } else {
                    number(&gap["gap"])
                },
                esc(gap["highest"].as_str().unwrap_or("")),
                esc(gap["lowest"].as_str().unwrap_or(""))
            );
        }
        let rows = g["groups"].as_array().cloned().unwrap_or_default();
        let Some(first) = rows.first() else { continue };
        let mut header = format!(
            "<table><tr><th>{}</th><th>people</th><th>prevalence</th>",
            esc(&name)
        );
        for c in first["cohorts"].as_array().into_iter().flatten() {
            let _ = write!(
                header,
                "<th>{} PPV (95% CI)</th>",
                esc(c["cohort"].as_str().unwrap_or(""))
            );
        }
        for s in first["scores"].as_array().into_iter().flatten() {
            let _ = write!(
                header,
                "<th>{} AUROC (95% CI)</th>",
                esc(s["score"].as_str().unwrap_or(""))
            );
        }
        html.push_str(&header);
        html.push_str("</tr>\n");
        for r in &rows {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td>",
                esc(r["group"].as_str().unwrap_or("")),
                esc(r["people"].as_str().unwrap_or("")),
                share(&r["prevalence"])
            );
            for c in r["cohorts"].as_array().into_iter().flatten() {
                let _ = write!(html, "<td>{}</td>", share_ci(&c["ppv"], &c["ppv_95ci"]));
            }
            for s in r["scores"].as_array().into_iter().flatten() {
                let _ = write!(html, "<td>{}</td>", auroc_ci(&s["auroc"], &s["auroc_95ci"]));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
        if let Some(n) = g["people_in_no_group"].as_str().filter(|&n| n != "0") {
            let _ = writeln!(
                html,
                "<p>People of no known {} (in no row above): {}.</p>",
                esc(&name),
                esc(n)
            );
        }
    }
}

/// The second rule set beside the first.
fn comparison(html: &mut String, f: &Value) {
    let c = &f["comparison"];
    if c.is_null() {
        return;
    }
    let difference = |v: &Value| {
        if v.is_null() {
            return "-".to_string();
        }
        format!(
            "{:+.1} points ({:+.1} to {:+.1})",
            100.0 * v["difference"].as_f64().unwrap_or(0.0),
            100.0 * v["ci95"][0].as_f64().unwrap_or(0.0),
            100.0 * v["ci95"][1].as_f64().unwrap_or(0.0)
        )
    };
    html.push_str("<h3>Compared with the second rule set</h3>\n<table><tr><th>cohort</th><th>on list: first, second</th><th>first only / second only / both</th><th>PPV: first, second, difference</th><th>sensitivity: first, second, difference</th></tr>\n");
    for x in c["cohorts"].as_array().into_iter().flatten() {
        let text = |v: &Value| v.as_str().map(esc).unwrap_or_default();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}, {}</td><td>{} / {} / {}</td><td>{}, {}, {}</td><td>{}, {}, {}</td></tr>",
            text(&x["cohort"]),
            text(&x["first"]["on_list"]),
            text(&x["second"]["on_list"]),
            text(&x["only_first"]),
            text(&x["only_second"]),
            text(&x["both"]),
            share(&x["first"]["ppv"]),
            share(&x["second"]["ppv"]),
            difference(&x["ppv"]),
            share(&x["first"]["sensitivity"]),
            share(&x["second"]["sensitivity"]),
            difference(&x["sensitivity"])
        );
    }
    html.push_str("</table>\n");
    let scores = c["scores"].as_array().cloned().unwrap_or_default();
    if !scores.is_empty() {
        html.push_str("<table><tr><th>score</th><th>AUROC first</th><th>AUROC second</th><th>difference (95% CI)</th></tr>\n");
        for s in &scores {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({} to {})</td></tr>",
                esc(s["score"].as_str().unwrap_or("")),
                auroc(&s["auroc_first"]),
                auroc(&s["auroc_second"]),
                auroc(&s["difference"]),
                auroc(&s["ci95"][0]),
                auroc(&s["ci95"][1])
            );
        }
        html.push_str("</table>\n");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{auroc, number};

    #[test]
    fn aurocs_show_two_decimals_other_figures_three() {
        assert_eq!(auroc(&json!(0.65)), "0.65");
        assert_eq!(auroc(&json!(0.6543)), "0.65");
        assert_eq!(auroc(&json!(null)), "-");
        assert_eq!(number(&json!(0.65)), "0.650");
        assert_eq!(number(&json!(0.6543)), "0.654");
    }
}
