//! `strata explain`: the derivation of one person's results, in plain words,
//! to answer a modeller's "why is this person (not) on the list?".
//!
//! The events shown are recorded by the real scan as it counts them (see
//! [`crate::engine::scan::Trace`]), so the explanation cannot drift from
//! what a run computes.

use std::fmt::Write;

use arrow_array::ArrayRef;
use arrow_cast::display::{ArrayFormatter, FormatOptions};

use crate::dates;
use crate::engine::cohorts::Presence;
use crate::engine::plan::{AGE_SLOT, SEX_SLOT};
use crate::engine::{Explained, Results};
use crate::rules::{FeatureKind, Located};

fn value(array: &ArrayRef, row: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    ArrayFormatter::try_new(array.as_ref(), &options)
        .map(|f| f.value(row).to_string())
        .unwrap_or_else(|_| "?".to_string())
}

pub fn render(results: &Results, explained: &Explained) -> String {
    let plan = &results.plan;
    let model = plan.model;
    let row = explained.row;
    let population = &plan.population;
    let mut s = String::new();
    let death = population.column("date_of_death");
    let birth = population.column("birth_date");
    let presence = presence(birth, death, row, plan.as_of);
    let status = match presence {
        Presence::Alive if !results.alive.value(row) => {
            "not registered with a practice on the as-of date: not in the population then"
                .to_string()
        }
        Presence::Alive => "alive".to_string(),
        Presence::Died => format!("died {}", value(death, row)),
        Presence::NotYetBorn => format!(
            "born {}, after the as-of date: not in the population then",
            value(birth, row)
        ),
    };
    let _ = writeln!(
        s,
        "Person {}, practice {}, PCN {}, as of {}: age {}, sex {}, {status}.",
        value(population.column("person_id"), row),
        value(population.column("practice_code"), row),
        value(population.column("pcn_code"), row),
        plan.as_of,
        value(&results.slots[AGE_SLOT], row),
        value(&results.slots[SEX_SLOT], row),
    );

    let _ = writeln!(s, "\nFeatures");
    for (i, feature) in model.features.iter().enumerate() {
        let _ = write!(s, "  {} = {}", feature.name, value(results.feature(i), row));
        if !feature.description.is_empty() {
            let _ = write!(s, "  ({})", feature.description);
        }
        let _ = writeln!(s);
        match &feature.kind {
            FeatureKind::Aggregate {
                source,
                aggregate,
                codelist,
                filter,
                column,
                ..
            } => {
                let after = plan
                    .sources
                    .iter()
                    .flat_map(|p| &p.aggregates)
                    .find(|a| a.fills().any(|f| f.feature == i))
                    .and_then(|a| a.after);
                let window = match after.and_then(|d| dates::from_day(d + 1)) {
                    Some(first) => format!("from {first} to {}", plan.as_of),
                    None => format!("up to {}", plan.as_of),
                };
                let mut how = format!(
                    "{} of `{}` events {window}",
                    aggregate.name(),
                    model.sources[*source].name
                );
                if let Some(c) = codelist {
                    let _ = write!(how, ", code in `{}`", model.codelists[*c].name);
                }
                if let Some(f) = filter {
                    let _ = write!(how, ", where {}", f.text);
                }
                if let Some(c) = column {
                    let _ = write!(how, ", of column `{c}`");
                }
                let _ = writeln!(s, "      {how}:");
                let events: Vec<_> = explained.events.iter().filter(|e| e.feature == i).collect();
                if events.is_empty() {
                    let _ = writeln!(s, "        no such events");
                }
                for e in events {
                    let date =
                        dates::from_day(e.day).map_or_else(|| e.day.to_string(), |d| d.to_string());
                    // One entry per code-list entry, even if several of the
                    // event's codes matched it (F00.1 and F001 are both F00):
                    // the engine sorts and dedups them.
                    let codes: Vec<String> = e
                        .codes
                        .iter()
                        .map(|&(list, item)| {
                            let entry = &model.codelists[list].entries[item as usize];
                            if entry.term.is_empty() {
                                entry.code.clone()
                            } else {
                                format!("{} {}", entry.code, entry.term)
                            }
                        })
                        .collect();
                    let _ = writeln!(
                        s,
                        "        {date}{}",
                        if codes.is_empty() {
                            String::new()
                        } else {
                            format!("  {}", codes.join("; "))
                        }
                    );
                }
            }
            FeatureKind::Derived(located) => {
                let _ = writeln!(
                    s,
                    "      computed from: {}{}",
                    located.text,
                    params_used(model, &[located])
                );
            }
            FeatureKind::Segments { segments, default } => {
                let _ = writeln!(
                    s,
                    "      the first segment whose condition holds, in this order:"
                );
                for segment in segments {
                    let about = segment
                        .description
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "        {}{about}: when {}{}",
                        segment.name,
                        segment.condition.text,
                        params_used(model, &[&segment.condition])
                    );
                }
                let _ = writeln!(s, "        otherwise {default}");
            }
        }
    }

    let _ = writeln!(s, "\nCohorts");
    for (cohort, result) in model.cohorts.iter().zip(&results.cohorts) {
        let verdict = if result.flags.value(row) {
            format!("IN (rank {} in their PCN)", result.ranks().value(row))
        } else if presence == Presence::Died {
            "not in: died on or before the as-of date".to_string()
        } else if presence == Presence::NotYetBorn {
            "not in: born after the as-of date".to_string()
        } else if !results.alive.value(row) {
            "not in: not registered with a practice on the as-of date".to_string()
        } else {
            "not in".to_string()
        };
        let _ = writeln!(s, "  {}: {verdict}", cohort.name);
        let _ = writeln!(
            s,
            "      when {}{}",
            cohort.condition.text,
            params_used(model, &[&cohort.condition])
        );
    }
    s
}

/// ", where hiu_threshold = 5, ..." for the parameters the expressions use.
fn params_used(model: &crate::rules::Model, located: &[&Located]) -> String {
    // Words of the text as written: band boundaries name parameters too.
    let used = model.params_named_in(located.iter().map(|l| l.text.as_str()));
    if used.is_empty() {
        String::new()
    } else {
        format!("  (with {})", used.join(", "))
    }
}

/// Whether the person was in the population on `as_of`, and if not, why.
fn presence(birth: &ArrayRef, death: &ArrayRef, row: usize, as_of: chrono::NaiveDate) -> Presence {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let day = |column: &ArrayRef| {
        let days = column.as_primitive::<arrow_array::types::Date32Type>();
        (!days.is_null(row)).then(|| days.value(row))
    };
    Presence::on(day(birth), day(death), crate::dates::to_day(as_of))
}
