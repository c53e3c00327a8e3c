//! Measured values in the GP record (`observations`): haemoglobin, eGFR,
//! BMI, blood pressure, TSH and the scores the eFI's value rules read, with
//! the mess real extracts carry.
//!
//! Values follow the person's conditions and deficits: eGFR falls with age
//! and is below 60 in CKD; haemoglobin is low in anaemia (by sex); systolic
//! pressure is higher with hypertension; TSH is out of range in thyroid
//! disease; BMI is low with weight loss. Some people have a value that
//! would score an eFI deficit without the deficit's code (uncoded CKD and
//! anaemia are common in practice), so value rules add to the coded count.
//!
//! The mess: the same measure in other units (haemoglobin in g/dL beside
//! g/L), units in other spellings or missing, and a few impossible values
//! (a decimal point slipped), so that a rule file's units and bounds have
//! something to reject. Readings are more frequent with age and with the
//! conditions that are monitored.
//!
//! Each person's readings are drawn from a random stream seeded by their id
//! alone (as registrations are), so no other table changed when they were
//! added. Rates and distributions are illustrative, not from a published
//! table.

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::population::{Condition, DEFICITS, Health, Person, Sex};
use super::registrations::id_hash;

/// One row of `observations`; `value` NaN is a missing value.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Observation {
    pub person: u32,
    pub day: u16,
    /// Index into [`CODES`].
    pub code: u8,
    /// Index into [`UNITS`].
    pub unit: u8,
    pub value: f64,
}

/// The SNOMED CT codes written, and their terms (for the code lists of the
/// bundled models, see `models/codelists/`).
pub(crate) const CODES: [&str; 13] = [
    "1022431000000105", // Haemoglobin estimation
    "271026005",        // Hemoglobin level estimation
    "1011481000000105", // eGFR using creatinine (CKD-EPI) per 1.73 square metres
    "1020291000000106", // GFR calculated by abbreviated MDRD
    "60621009",         // Body mass index
    "72313002",         // Systolic arterial pressure
    "163030003",        // On examination - Systolic blood pressure reading
    "1022791000000101", // Serum TSH level
    "1027151000000105", // TSH level
    "391002003",        // Number of falls in last year
    "763008007",        // CHADS2 risk score
    "444297006",        // MUST score
    "391068001",        // Hip DXA scan T score
];

/// Units as extracts write them; index 0 is a missing unit.
pub(crate) const UNITS: [Option<&str>; 12] = [
    None,
    Some("g/L"),
    Some("g/dL"),
    Some("g/l"),
    Some("mL/min/1.73m2"),
    Some("mL/min/{1.73_m2}"),
    Some("kg/m2"),
    Some("mmHg"),
    Some("mm[Hg]"),
    Some("mU/L"),
    Some("mIU/L"),
    Some("score"),
];

/// A measure: its codes (with the share of readings each gets), and how
/// its unit is written (unit index, share; the canonical unit's value is
/// multiplied by the factor).
struct Spec {
    codes: &'static [(u8, f64)],
    units: &'static [(u8, f64, f64)],
    /// A count or a score: whole numbers, the same at every reading.
    whole: bool,
}

const HAEMOGLOBIN: Spec = Spec {
    codes: &[(0, 0.85), (1, 0.15)],
    units: &[
        (1, 0.80, 1.0),
        (2, 0.10, 0.1),
        (3, 0.06, 1.0),
        (0, 0.04, 1.0),
    ],
    whole: false,
};
const EGFR: Spec = Spec {
    codes: &[(2, 0.8), (3, 0.2)],
    units: &[(4, 0.75, 1.0), (5, 0.15, 1.0), (0, 0.10, 1.0)],
    whole: false,
};
const BMI: Spec = Spec {
    codes: &[(4, 1.0)],
    units: &[(6, 0.85, 1.0), (0, 0.15, 1.0)],
    whole: false,
};
const SYSTOLIC: Spec = Spec {
    codes: &[(5, 0.5), (6, 0.5)],
    units: &[(7, 0.9, 1.0), (8, 0.05, 1.0), (0, 0.05, 1.0)],
    whole: false,
};
const TSH: Spec = Spec {
    codes: &[(7, 0.7), (8, 0.3)],
    units: &[(9, 0.7, 1.0), (10, 0.2, 1.0), (0, 0.1, 1.0)],
    whole: false,
};
/// A score with one code, mostly written without a unit.
fn score(code: u8) -> Spec {
    Spec {
        codes: match code {
            9 => &[(9, 1.0)],
            10 => &[(10, 1.0)],
            11 => &[(11, 1.0)],
            _ => &[(12, 1.0)],
        },
        units: &[(0, 0.9, 1.0), (11, 0.1, 1.0)],
        whole: code != 12,
    }
}

/// One in this many values has its decimal point slipped (x10 or /10).
const SLIPPED: u32 = 400;

fn deficit(health: &Health, name: &str) -> bool {
    DEFICITS
        .iter()
        .position(|d| d.name == name)
        .is_some_and(|i| health.deficits & (1 << i) != 0)
}

/// The person's readings over the window, appended to `out`.
pub(crate) fn simulate(index: u32, person: &Person, health: &Health, out: &mut Vec<Observation>) {
    let first = out.len();
    if health.age < 18.0 {
        return;
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(id_hash(person.id, 0x0B5E));
    let normal = |rng: &mut Xoshiro256PlusPlus| -> f64 { rng.sample(StandardNormal) };
    let old = health.age >= 65.0;
    let has = |c: Condition| health.conditions.has(c);
    let female = person.sex == Sex::Female;
    let years = health.exposure_years();
    let mut emit = |rng: &mut Xoshiro256PlusPlus, spec: &Spec, per_year: f64, value: f64| {
        let n = poisson(rng, per_year * years);
        for _ in 0..n {
            let day = rng.random_range(health.first_day..=health.last_day);
            let code = pick(rng, spec.codes.iter().map(|&(c, w)| (c, w)));
            let (unit, factor) = pick(rng, spec.units.iter().map(|&(u, w, f)| ((u, f), w)));
            // Readings vary around the person's level.
            let mut v = if spec.whole {
                value.round()
            } else {
                value * (1.0 + 0.04 * normal(rng)) * factor
            };
            if rng.random_ratio(1, SLIPPED) {
                v *= if rng.random_bool(0.5) { 10.0 } else { 0.1 };
            }
            let digits = if v.abs() < 10.0 {
                100.0
            } else if v.abs() < 100.0 {
                10.0
            } else {
                1.0
            };
            out.push(Observation {
                person: index,
                day,
                code,
                unit,
                value: (v * digits).round() / digits,
            });
        }
    };

    // Haemoglobin (g/L): low in anaemia, and in some without the code.
    let anaemic = deficit(health, "anaemia") || (old && rng.random_bool(0.04));
    let hb = match (anaemic, female) {
        (true, true) => 104.0,
        (true, false) => 116.0,
        (false, true) => 133.0,
        (false, false) => 146.0,
    } + 7.0 * normal(&mut rng);
    let hb_rate = 0.25 + if old { 0.5 } else { 0.0 } + if anaemic { 1.0 } else { 0.0 };
    emit(&mut rng, &HAEMOGLOBIN, hb_rate, hb);

    // eGFR: falling with age, below 60 in CKD and in some without the code.
    let ckd = has(Condition::Ckd) || deficit(health, "chronic_kidney_disease");
    let uncoded = !ckd && old && rng.random_bool(0.05);
    let egfr = if ckd {
        45.0 + 9.0 * normal(&mut rng)
    } else if uncoded {
        54.0 + 3.0 * normal(&mut rng)
    } else {
        (105.0 - 0.6 * (health.age - 30.0).max(0.0) + 10.0 * normal(&mut rng)).max(62.0)
    }
    .clamp(6.0, 140.0);
    let monitored = ckd || has(Condition::Diabetes) || has(Condition::Hypertension);
    let egfr_rate = 0.2 + if old { 0.4 } else { 0.0 } + if monitored { 1.0 } else { 0.0 };
    emit(&mut rng, &EGFR, egfr_rate, egfr);

    // BMI: low with weight loss.
    let bmi = if deficit(health, "weight_loss_anorexia") {
        18.5 + 2.0 * normal(&mut rng)
    } else {
        27.5 + 5.0 * normal(&mut rng)
    }
    .clamp(14.0, 60.0);
    emit(&mut rng, &BMI, 0.3, bmi);

    // Systolic blood pressure (mmHg).
    let hypertensive = has(Condition::Hypertension);
    let sbp = 118.0
        + 0.4 * (health.age - 30.0).max(0.0)
        + if hypertensive { 14.0 } else { 0.0 }
        + 12.0 * normal(&mut rng);
    emit(
        &mut rng,
        &SYSTOLIC,
        0.4 + if hypertensive { 1.5 } else { 0.0 },
        sbp,
    );

    // TSH (mU/L): out of range in thyroid disease.
    let thyroid = deficit(health, "thyroid_disease");
    let tsh = if thyroid && rng.random_bool(0.6) {
        if rng.random_bool(0.7) { 7.5 } else { 0.12 }
    } else {
        1.8 * (0.35 * normal(&mut rng)).exp()
    };
    emit(&mut rng, &TSH, 0.15 + if thyroid { 1.0 } else { 0.0 }, tsh);

    // The eFI's value-rule scores, in older people.
    if old {
        let falls = deficit(health, "falls");
        if falls || health.age >= 75.0 {
            let n = if falls {
                1.0 + (2.0 * rng.random::<f64>()).floor()
            } else {
                0.0
            };
            emit(&mut rng, &score(9), 0.3, n);
        }
        if deficit(health, "atrial_fibrillation") {
            let chads2 = f64::from(rng.random_range(1..=4u8));
            emit(&mut rng, &score(10), 0.5, chads2);
        }
        if health.age >= 75.0 || person.care_home {
            let must = if deficit(health, "weight_loss_anorexia") {
                2.0
            } else {
                0.0
            };
            emit(&mut rng, &score(11), 0.3, must);
        }
        let osteoporotic = deficit(health, "osteoporosis");
        if osteoporotic || (female && rng.random_bool(0.1)) {
            let t = if osteoporotic { -2.8 } else { -1.2 } + 0.4 * normal(&mut rng);
            emit(&mut rng, &score(12), 0.3, t);
        }
    }
    // A missing value now and then (a test requested, not resulted).
    if let Some(last) = out[first..].last_mut()
        && rng.random_ratio(1, 50)
    {
        last.value = f64::NAN;
    }
}

/// A Poisson draw (Knuth's method: rates here are small).
fn poisson(rng: &mut Xoshiro256PlusPlus, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let mut product: f64 = rng.random();
    let mut n = 0;
    while product > limit && n < 100 {
        product *= rng.random::<f64>();
        n += 1;
    }
    n
}

/// One of `choices` by weight (weights summing to 1).
fn pick<T: Copy>(rng: &mut Xoshiro256PlusPlus, choices: impl Iterator<Item = (T, f64)>) -> T {
    let mut u: f64 = rng.random();
    let mut last = None;
    for (c, w) in choices {
        if u < w {
            return c;
        }
        u -= w;
        last = Some(c);
    }
    last.expect("at least one choice")
}
