//! The synthetic city and its people: places (PCNs, practices, LSOAs with
//! deprivation deciles) and persons (age, sex, residence, long-term
//! conditions, frailty deficits, care home residence, death).
//!
//! Everything a person does later follows from what is drawn here, in one
//! pass and in a fixed order, so that the relations that matter for risk
//! stratification hold the way they do in life: conditions rise with age and
//! deprivation and cluster in the same people (a shared latent morbidity),
//! frailty deficits accumulate with age and multimorbidity, care home
//! residence follows age, dementia and frailty, and death follows all of
//! these. The figures are round numbers in the range of published English
//! statistics (ONS mid-year estimates for a university city, QOF register
//! prevalences, national life tables), chosen to look right rather than to
//! reproduce any one source.

use rand::RngExt;
use rand_distr::{Distribution, Gamma, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The 3-year window of activity, as day offsets from its first day.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// First day of the window, in days since 1970-01-01 (Arrow `Date32`).
    pub start: i32,
    /// Number of days in the window; the last day is the extract's end date.
    pub days: u16,
}

impl Window {
    /// The three years ending on (and including) `end`.
    pub(crate) fn ending(end: chrono::NaiveDate) -> Option<Self> {
        let first = end
            .checked_sub_months(chrono::Months::new(36))?
            .succ_opt()?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
        let start = i32::try_from((first - epoch).num_days()).ok()?;
        let days = u16::try_from((end - first).num_days() + 1).ok()?;
        Some(Window { start, days })
    }

    pub(crate) fn end(&self) -> i32 {
        self.start + i32::from(self.days) - 1
    }
}

/// A Primary Care Network: its practices and the kind of area it serves.
pub(crate) struct PcnSpec {
    pub code: &'static str,
    pub name: &'static str,
    /// Relative number of LSOAs (population) it covers.
    share: f64,
    /// Shift of its LSOAs' deprivation: positive = more deprived than the city.
    deprivation: f64,
    /// Practice codes with relative list sizes.
    practices: &'static [(&'static str, f64)],
}

/// Southampton's seven PCNs. Codes are made up but shaped like ODS codes;
/// deprivation shifts follow the broad east/centre vs north/west pattern.
pub(crate) const PCNS: [PcnSpec; 7] = [
    PcnSpec {
        code: "U47158",
        name: "Bitterne",
        share: 1.0,
        deprivation: 0.45,
        practices: &[
            ("J82001", 1.2),
            ("J82022", 0.8),
            ("J82073", 1.0),
            ("J82105", 0.6),
            ("J82139", 0.9),
        ],
    },
    PcnSpec {
        code: "U61392",
        name: "Living Well",
        share: 1.0,
        deprivation: 0.35,
        practices: &[
            ("J82018", 1.1),
            ("J82056", 0.9),
            ("J82090", 0.7),
            ("J82617", 0.6),
        ],
    },
    PcnSpec {
        code: "U20637",
        name: "Woolston & Chartwell",
        share: 0.75,
        deprivation: 0.55,
        practices: &[("J82041", 1.0), ("J82064", 0.8), ("J82132", 0.5)],
    },
    PcnSpec {
        code: "U85016",
        name: "TOFS/St Peters",
        share: 0.85,
        deprivation: 0.25,
        practices: &[
            ("J82009", 1.3),
            ("J82028", 0.7),
            ("J82080", 0.9),
            ("J82213", 0.5),
        ],
    },
    PcnSpec {
        code: "U39724",
        name: "Central",
        share: 1.3,
        deprivation: 0.1,
        practices: &[
            ("J82014", 1.4),
            ("J82035", 1.0),
            ("J82067", 0.8),
            ("J82111", 0.6),
            ("J82154", 0.5),
            ("J82670", 0.4),
        ],
    },
    PcnSpec {
        code: "U52869",
        name: "North",
        share: 1.05,
        deprivation: -0.5,
        practices: &[
            ("J82005", 1.2),
            ("J82047", 1.0),
            ("J82099", 0.7),
            ("J82183", 0.6),
        ],
    },
    PcnSpec {
        code: "U73401",
        name: "West",
        share: 0.95,
        deprivation: -0.2,
        practices: &[
            ("J82026", 1.1),
            ("J82052", 0.9),
            ("J82086", 0.8),
            ("J82128", 0.5),
        ],
    },
];

/// Persons per LSOA, as in the census geography.
const PERSONS_PER_LSOA: usize = 1_600;

/// City-wide shares of LSOAs by national IMD decile (1 = most deprived):
/// a city skewed towards the deprived end.
const IMD_DECILE_SHARES: [f64; 10] = [0.17, 0.15, 0.13, 0.11, 0.10, 0.09, 0.08, 0.07, 0.06, 0.04];

pub(crate) struct Practice {
    pub code: &'static str,
    pub pcn: usize,
}

pub(crate) struct Lsoa {
    pub code: String,
    pub pcn: usize,
    pub imd_decile: i8,
}

/// The places every person is drawn into.
pub(crate) struct City {
    pub practices: Vec<Practice>,
    pub lsoas: Vec<Lsoa>,
    /// For each PCN, its practices' indices and cumulative list-size weights.
    practice_choice: Vec<Vec<(u16, f64)>>,
    /// Key of the pseudonymous person ids.
    id_key: u64,
}

impl City {
    /// Lays out LSOAs for `patients` persons; `rng` is the population's own
    /// stream (never a chunk's), so places do not depend on chunking.
    pub(crate) fn new(patients: usize, rng: &mut Xoshiro256PlusPlus) -> Self {
        let mut practices = Vec::new();
        let mut practice_choice = Vec::new();
        for (pcn, spec) in PCNS.iter().enumerate() {
            let total: f64 = spec.practices.iter().map(|p| p.1).sum();
            let mut cumulative = 0.0;
            let mut choice = Vec::new();
            for &(code, weight) in spec.practices {
                cumulative += weight / total;
                let index = u16::try_from(practices.len()).expect("a few dozen practices");
                choice.push((index, cumulative));
                practices.push(Practice { code, pcn });
            }
            practice_choice.push(choice);
        }

        // At least one LSOA per PCN so that every PCN has residents.
        let n_lsoas = patients.div_ceil(PERSONS_PER_LSOA).max(PCNS.len());
        let total_share: f64 = PCNS.iter().map(|p| p.share).sum();
        let mut lsoas = Vec::with_capacity(n_lsoas);
        for i in 0..n_lsoas {
            // Contiguous runs of LSOAs per PCN, in proportion to PCN size.
            let position = (i as f64 + 0.5) / n_lsoas as f64 * total_share;
            let mut cumulative = 0.0;
            let mut pcn = PCNS.len() - 1;
            for (p, spec) in PCNS.iter().enumerate() {
                cumulative += spec.share;
                if position < cumulative {
                    pcn = p;
                    break;
                }
            }
            let imd_decile = draw_imd_decile(rng, PCNS[pcn].deprivation);
            lsoas.push(Lsoa {
                code: format!("E01{:06}", 17_000 + i),
                pcn,
                imd_decile,
            });
        }
        City {
            practices,
            lsoas,
            practice_choice,
            id_key: rng.random::<u64>(),
        }
    }

    /// The pseudonymous id of person `index`: distinct for distinct indices,
    /// positive, and unrelated to generation order.
    pub(crate) fn person_id(&self, index: u32) -> i64 {
        pseudonym(u64::from(index), self.id_key)
    }
}

fn draw_imd_decile(rng: &mut Xoshiro256PlusPlus, shift: f64) -> i8 {
    let weights = IMD_DECILE_SHARES
        .iter()
        .enumerate()
        .map(|(d, w)| w * (shift * 1.2 * deprivation_score(d as i8 + 1)).exp());
    let total: f64 = weights.clone().sum();
    let mut u = rng.random::<f64>() * total;
    for (d, w) in weights.enumerate() {
        if u < w {
            return d as i8 + 1;
        }
        u -= w;
    }
    10
}

/// IMD decile as a score from +1 (most deprived) to -1 (least deprived).
pub(crate) fn deprivation_score(decile: i8) -> f64 {
    (5.5 - f64::from(decile)) / 4.5
}

/// A bijection on 62-bit integers keyed by `key`, shifted to be positive.
/// Odd multipliers and xor-shifts are invertible modulo 2^62, so distinct
/// indices can never share an id.
fn pseudonym(index: u64, key: u64) -> i64 {
    const MASK: u64 = (1 << 62) - 1;
    let mut x = (index ^ key) & MASK;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & MASK;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & MASK;
    x ^= x >> 32;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB) & MASK;
    x ^= x >> 29;
    (x + 1) as i64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Sex {
    #[default]
    Female,
    Male,
    Unknown,
}

impl Sex {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Sex::Female => "F",
            Sex::Male => "M",
            Sex::Unknown => "U",
        }
    }
}

/// One row of `patients`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Person {
    pub id: i64,
    /// Days since 1970-01-01.
    pub birth: i32,
    pub sex: Sex,
    pub practice: u16,
    pub lsoa: u32,
    pub care_home: bool,
    /// Day offset of death within the window.
    pub death: Option<u16>,
}

/// What activity generation needs to know about a person beyond `Person`.
pub(crate) struct Health {
    /// Age in years on the window's last day (as if alive).
    pub age: f64,
    /// +1 most deprived .. -1 least deprived.
    pub deprivation: f64,
    pub conditions: ConditionSet,
    /// Bit i set: eFI deficit `DEFICITS[i]` present.
    pub deficits: u64,
    /// Days of the window the person was alive for: `first_day..=last_day`.
    pub first_day: u16,
    pub last_day: u16,
}

impl Health {
    pub(crate) fn deficit_count(&self) -> u32 {
        self.deficits.count_ones()
    }

    pub(crate) fn exposure_years(&self) -> f64 {
        f64::from(self.last_day - self.first_day + 1) / 365.25
    }
}

/// Long-term conditions a person can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    Hypertension,
    Diabetes,
    Asthma,
    Copd,
    HeartFailure,
    Ckd,
    Dementia,
    Cancer,
    LearningDisability,
    SevereMentalIllness,
    PersistentPain,
}

impl Condition {
    pub(crate) const ALL: [Condition; 11] = [
        Condition::Hypertension,
        Condition::Diabetes,
        Condition::Asthma,
        Condition::Copd,
        Condition::HeartFailure,
        Condition::Ckd,
        Condition::Dementia,
        Condition::Cancer,
        Condition::LearningDisability,
        Condition::SevereMentalIllness,
        Condition::PersistentPain,
    ];

    /// Name of the condition's group in the ICD-10 and SNOMED CT
    /// vocabularies.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Condition::Hypertension => "hypertension",
            Condition::Diabetes => "diabetes",
            Condition::Asthma => "asthma",
            Condition::Copd => "copd",
            Condition::HeartFailure => "heart_failure",
            Condition::Ckd => "ckd",
            Condition::Dementia => "dementia",
            Condition::Cancer => "cancer",
            Condition::LearningDisability => "learning_disability",
            Condition::SevereMentalIllness => "severe_mental_illness",
            Condition::PersistentPain => "persistent_pain",
        }
    }

    fn spec(self) -> &'static ConditionSpec {
        &CONDITION_SPECS[self as usize]
    }
}

/// How common a condition is: prevalence by age (interpolated between
/// knots), and relative risks for deprivation (per unit of score), for men,
/// and for the shared morbidity latent (its loading).
struct ConditionSpec {
    prevalence: &'static [(f64, f64)],
    deprivation: f64,
    male: f64,
    morbidity: f64,
}

/// Indexed by `Condition as usize`.
const CONDITION_SPECS: [ConditionSpec; 11] = [
    // Hypertension
    ConditionSpec {
        prevalence: &[
            (25.0, 0.0),
            (35.0, 0.02),
            (45.0, 0.07),
            (55.0, 0.17),
            (65.0, 0.3),
            (75.0, 0.45),
            (90.0, 0.55),
        ],
        deprivation: 0.15,
        male: 1.1,
        morbidity: 0.5,
    },
    // Diabetes
    ConditionSpec {
        prevalence: &[
            (10.0, 0.002),
            (30.0, 0.01),
            (45.0, 0.05),
            (60.0, 0.11),
            (75.0, 0.16),
            (90.0, 0.12),
        ],
        deprivation: 0.35,
        male: 1.3,
        morbidity: 0.6,
    },
    // Asthma
    ConditionSpec {
        prevalence: &[
            (0.0, 0.0),
            (4.0, 0.04),
            (12.0, 0.09),
            (25.0, 0.07),
            (60.0, 0.07),
            (90.0, 0.05),
        ],
        deprivation: 0.15,
        male: 1.0,
        morbidity: 0.3,
    },
    // COPD
    ConditionSpec {
        prevalence: &[
            (35.0, 0.0),
            (45.0, 0.008),
            (55.0, 0.025),
            (65.0, 0.05),
            (75.0, 0.08),
            (90.0, 0.08),
        ],
        deprivation: 0.6,
        male: 1.1,
        morbidity: 0.6,
    },
    // Heart failure
    ConditionSpec {
        prevalence: &[
            (30.0, 0.0),
            (45.0, 0.002),
            (55.0, 0.006),
            (65.0, 0.015),
            (75.0, 0.04),
            (85.0, 0.09),
            (95.0, 0.13),
        ],
        deprivation: 0.3,
        male: 1.4,
        morbidity: 0.7,
    },
    // CKD stage 3-5
    ConditionSpec {
        prevalence: &[
            (30.0, 0.0),
            (45.0, 0.005),
            (55.0, 0.02),
            (65.0, 0.06),
            (75.0, 0.14),
            (85.0, 0.26),
            (95.0, 0.35),
        ],
        deprivation: 0.2,
        male: 0.9,
        morbidity: 0.6,
    },
    // Dementia
    ConditionSpec {
        prevalence: &[
            (55.0, 0.0),
            (65.0, 0.006),
            (75.0, 0.03),
            (85.0, 0.11),
            (95.0, 0.26),
        ],
        deprivation: 0.2,
        male: 0.85,
        morbidity: 0.4,
    },
    // Cancer (on the register: diagnosed in the last few years or under treatment)
    ConditionSpec {
        prevalence: &[
            (15.0, 0.001),
            (30.0, 0.005),
            (45.0, 0.016),
            (60.0, 0.045),
            (75.0, 0.1),
            (90.0, 0.13),
        ],
        deprivation: 0.05,
        male: 1.05,
        morbidity: 0.3,
    },
    // Learning disability
    ConditionSpec {
        prevalence: &[
            (0.0, 0.002),
            (10.0, 0.006),
            (30.0, 0.006),
            (60.0, 0.004),
            (80.0, 0.001),
        ],
        deprivation: 0.3,
        male: 1.5,
        morbidity: 0.1,
    },
    // Severe mental illness
    ConditionSpec {
        prevalence: &[
            (15.0, 0.0),
            (20.0, 0.005),
            (30.0, 0.011),
            (60.0, 0.012),
            (85.0, 0.007),
        ],
        deprivation: 0.8,
        male: 1.1,
        morbidity: 0.4,
    },
    // Persistent pain (a recorded chronic pain diagnosis)
    ConditionSpec {
        prevalence: &[
            (15.0, 0.0),
            (25.0, 0.015),
            (45.0, 0.045),
            (65.0, 0.07),
            (85.0, 0.08),
        ],
        deprivation: 0.5,
        male: 0.75,
        morbidity: 0.5,
    },
];

/// Set of conditions, one bit per `Condition`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConditionSet(u16);

impl ConditionSet {
    pub(crate) fn has(self, c: Condition) -> bool {
        self.0 & (1 << c as u16) != 0
    }

    fn insert(&mut self, c: Condition) {
        self.0 |= 1 << c as u16;
    }

    pub(crate) fn count(self) -> u32 {
        self.0.count_ones()
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Condition> {
        Condition::ALL.into_iter().filter(move |&c| self.has(c))
    }
}

/// One of the 35 coded eFI deficits (the 36th, polypharmacy, comes from
/// prescriptions). `typical_75` is the chance of the deficit at frailty
/// intensity 1, that of a typical 75-year-old; `drivers` are conditions that
/// always bring the deficit with them.
pub(crate) struct DeficitSpec {
    pub name: &'static str,
    typical_75: f64,
    drivers: &'static [Condition],
}

const fn deficit(
    name: &'static str,
    typical_75: f64,
    drivers: &'static [Condition],
) -> DeficitSpec {
    DeficitSpec {
        name,
        typical_75,
        drivers,
    }
}

pub(crate) const DEFICITS: [DeficitSpec; 35] = [
    deficit("activity_limitation", 0.06, &[]),
    deficit("anaemia", 0.14, &[]),
    deficit("arthritis", 0.4, &[]),
    deficit("atrial_fibrillation", 0.1, &[]),
    deficit("cerebrovascular_disease", 0.08, &[]),
    deficit("chronic_kidney_disease", 0.0, &[Condition::Ckd]),
    deficit("diabetes", 0.0, &[Condition::Diabetes]),
    deficit("dizziness", 0.15, &[]),
    deficit("dyspnoea", 0.12, &[]),
    deficit("falls", 0.14, &[]),
    deficit("foot_problems", 0.1, &[]),
    deficit("fragility_fracture", 0.07, &[]),
    deficit("hearing_impairment", 0.2, &[]),
    deficit("heart_failure", 0.0, &[Condition::HeartFailure]),
    deficit("heart_valve_disease", 0.05, &[]),
    deficit("housebound", 0.05, &[]),
    deficit("hypertension", 0.0, &[Condition::Hypertension]),
    deficit("hypotension_syncope", 0.07, &[]),
    deficit("ischaemic_heart_disease", 0.13, &[]),
    deficit("memory_cognitive_problems", 0.06, &[Condition::Dementia]),
    deficit("mobility_transfer_problems", 0.06, &[]),
    deficit("osteoporosis", 0.1, &[]),
    deficit("parkinsonism_tremor", 0.04, &[]),
    deficit("peptic_ulcer", 0.1, &[]),
    deficit("peripheral_vascular_disease", 0.05, &[]),
    deficit("requirement_for_care", 0.05, &[]),
    deficit(
        "respiratory_disease",
        0.03,
        &[Condition::Copd, Condition::Asthma],
    ),
    deficit("skin_ulcer", 0.06, &[]),
    deficit("sleep_disturbance", 0.15, &[]),
    deficit("social_vulnerability", 0.08, &[]),
    deficit("thyroid_disease", 0.12, &[]),
    deficit("urinary_incontinence", 0.12, &[]),
    deficit("urinary_system_disease", 0.12, &[]),
    deficit("visual_impairment", 0.15, &[]),
    deficit("weight_loss_anorexia", 0.05, &[]),
];

/// Share of the population in each 5-year age band from 0-4 to 100-104: a
/// university city (many 18-29s) with a smaller older population than
/// England as a whole.
const AGE_BAND_SHARES: [f64; 21] = [
    5.6, 5.4, 5.2, 7.0, 12.0, 8.8, 7.8, 6.8, 6.0, 5.6, 5.8, 5.6, 4.9, 3.9, 3.6, 2.7, 1.9, 1.2, 0.6,
    0.18, 0.03,
];

/// Share of men by age: women outlive men.
const MALE_SHARE: &[(f64, f64)] = &[
    (0.0, 0.51),
    (55.0, 0.5),
    (70.0, 0.47),
    (80.0, 0.43),
    (90.0, 0.32),
    (100.0, 0.2),
];

/// Persons recorded with sex unknown or indeterminate.
const UNKNOWN_SEX_SHARE: f64 = 0.0002;

/// Annual risk of death by age (England & Wales life tables, rounded).
const MORTALITY: &[(f64, f64)] = &[
    (0.0, 0.0035),
    (1.0, 0.0002),
    (5.0, 0.0001),
    (15.0, 0.0002),
    (25.0, 0.0005),
    (35.0, 0.0009),
    (45.0, 0.002),
    (55.0, 0.0045),
    (65.0, 0.01),
    (75.0, 0.026),
    (85.0, 0.075),
    (90.0, 0.13),
    (95.0, 0.22),
    (100.0, 0.35),
];

/// Log relative risks of death for conditions that shorten life.
const DEATH_LOG_RELATIVE_RISK: [(Condition, f64); 7] = [
    (Condition::HeartFailure, 0.7),
    (Condition::Cancer, 1.1),
    (Condition::Dementia, 0.8),
    (Condition::Copd, 0.6),
    (Condition::Ckd, 0.3),
    (Condition::LearningDisability, 0.6),
    (Condition::SevereMentalIllness, 0.6),
];

/// The soft cap on a person's total log relative risk of death, and the
/// divisor that brings deaths back to about the life-table level.
const DEATH_LOG_RISK_CAP: f64 = 1.6;
const DEATH_DIVISOR: f64 = 1.15;

/// Frailty intensity by age: deficits accumulate slowly through middle age
/// and fast after 70.
const FRAILTY_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.01),
    (20.0, 0.04),
    (40.0, 0.12),
    (55.0, 0.3),
    (65.0, 0.68),
    (75.0, 1.0),
    (85.0, 1.35),
    (95.0, 1.7),
];

/// Chance of living in a care home by age, before dementia and frailty.
const CARE_HOME_BY_AGE: &[(f64, f64)] = &[
    (17.0, 0.0),
    (18.0, 0.0004),
    (64.0, 0.0004),
    (65.0, 0.0025),
    (75.0, 0.0065),
    (80.0, 0.015),
    (85.0, 0.032),
    (90.0, 0.06),
    (95.0, 0.1),
    (100.0, 0.14),
];

/// Linear interpolation in a table of (x, y) knots, flat beyond the ends.
pub(crate) fn interpolate(knots: &[(f64, f64)], x: f64) -> f64 {
    let (first, last) = (knots[0], knots[knots.len() - 1]);
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    let i = knots.partition_point(|k| k.0 <= x);
    let (a, b) = (knots[i - 1], knots[i]);
    a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
}

/// Gamma variates with mean 1, for person-level heterogeneity.
pub(crate) struct UnitGamma(Gamma<f64>);

impl UnitGamma {
    /// `shape` must be a positive constant; small shapes give heavy tails.
    pub(crate) fn new(shape: f64) -> Self {
        UnitGamma(Gamma::new(shape, 1.0 / shape).expect("gamma shape is a positive constant"))
    }

    pub(crate) fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> f64 {
        self.0.sample(rng)
    }
}

/// Draws one person (and what activity needs to know about them).
pub(crate) struct PersonDraw<'a> {
    pub city: &'a City,
    pub window: Window,
    frailty_spread: UnitGamma,
}

impl<'a> PersonDraw<'a> {
    pub(crate) fn new(city: &'a City, window: Window) -> Self {
        PersonDraw {
            city,
            window,
            frailty_spread: UnitGamma::new(7.0),
        }
    }

    pub(crate) fn draw(&self, rng: &mut Xoshiro256PlusPlus, index: u32) -> (Person, Health) {
        let city = self.city;
        let window = self.window;

        // Age on the window's last day, uniform within a 5-year band.
        let band = pick_weighted(rng, &AGE_BAND_SHARES);
        let age_days = ((band as f64 + rng.random::<f64>()) * 5.0 * 365.25) as i32;
        let birth = window.end() - age_days;
        let age = f64::from(age_days) / 365.25;

        let sex = if rng.random_bool(UNKNOWN_SEX_SHARE) {
            Sex::Unknown
        } else if rng.random_bool(interpolate(MALE_SHARE, age)) {
            Sex::Male
        } else {
            Sex::Female
        };

        let lsoa = rng.random_range(0..city.lsoas.len());
        let place = &city.lsoas[lsoa];
        let u = rng.random::<f64>();
        let choice = &city.practice_choice[place.pcn];
        let practice = choice
            .iter()
            .find(|p| u < p.1)
            .unwrap_or(&choice[choice.len() - 1])
            .0;
        let deprivation = deprivation_score(place.imd_decile);

        // A shared morbidity latent makes conditions cluster in the same
        // people (multimorbidity), beyond what age and deprivation explain.
        let morbidity: f64 = rng.sample(StandardNormal);
        let conditions = draw_conditions(rng, age, sex, deprivation, morbidity);

        // Deficits accumulate with age, deprivation, multimorbidity and an
        // individual frailty propensity.
        let intensity = interpolate(FRAILTY_BY_AGE, age)
            * (0.3 * deprivation).exp()
            * (0.4 * morbidity - 0.08).exp()
            * (1.0 + 0.1 * f64::from(conditions.count()))
            * self.frailty_spread.sample(rng);
        let mut deficits = 0u64;
        for (i, d) in DEFICITS.iter().enumerate() {
            let driven = d.drivers.iter().any(|&c| conditions.has(c));
            let hazard = -(1.0 - d.typical_75).ln();
            if driven || rng.random_bool(1.0 - (-intensity * hazard).exp()) {
                deficits |= 1 << i;
            }
        }
        let n_deficits = f64::from(deficits.count_ones());

        let mut care_home_p =
            interpolate(CARE_HOME_BY_AGE, age) * (0.08 * (n_deficits - 5.0)).exp();
        if conditions.has(Condition::Dementia) {
            care_home_p *= 4.0;
        }
        if conditions.has(Condition::LearningDisability) {
            care_home_p *= 8.0;
        }
        let care_home = rng.random_bool(care_home_p.min(0.9));

        // Exposure starts at birth for those born during the window.
        let first_day = u16::try_from((birth - window.start).max(0))
            .expect("birth is on or before the window's last day");
        let mut last_day = window.days - 1;
        let log_risk = DEATH_LOG_RELATIVE_RISK
            .iter()
            .filter(|(c, _)| conditions.has(*c))
            .map(|(_, b)| b)
            .sum::<f64>()
            + 0.06 * n_deficits
            + if care_home { 0.7 } else { 0.0 }
            + 0.25 * deprivation;
        // Risks combine less than multiplicatively at the top: the total
        // is soft-capped, so that one-year mortality by eFI category rises
        // from fit to severe as Clegg et al. 2016 report (hazard ratios
        // 1.92, 3.10, 4.52; benches/outcome_gradients.py measures it).
        let log_risk = DEATH_LOG_RISK_CAP * (log_risk / DEATH_LOG_RISK_CAP).tanh();
        // The relative risks raise the average; the divisor brings deaths
        // back to about the life-table level overall.
        let hazard = interpolate(MORTALITY, (age - 1.5).max(0.0)) * log_risk.exp() / DEATH_DIVISOR;
        let years = f64::from(last_day - first_day + 1) / 365.25;
        let death = if rng.random_bool(1.0 - (-hazard * years).exp()) {
            let day = rng.random_range(first_day..=last_day);
            last_day = day;
            Some(day)
        } else {
            None
        };

        let person = Person {
            id: city.person_id(index),
            birth,
            sex,
            practice,
            lsoa: u32::try_from(lsoa).expect("LSOA count fits u32"),
            care_home,
            death,
        };
        let health = Health {
            age,
            deprivation,
            conditions,
            deficits,
            first_day,
            last_day,
        };
        (person, health)
    }
}

fn draw_conditions(
    rng: &mut Xoshiro256PlusPlus,
    age: f64,
    sex: Sex,
    deprivation: f64,
    morbidity: f64,
) -> ConditionSet {
    let mut conditions = ConditionSet::default();
    for c in Condition::ALL {
        let spec = c.spec();
        let loading = spec.morbidity;
        // The latent's term has mean 1, so it spreads risk without raising it.
        let mut p = interpolate(spec.prevalence, age)
            * (spec.deprivation * deprivation).exp()
            * (loading * morbidity - loading * loading / 2.0).exp();
        if sex == Sex::Male {
            p *= spec.male;
        }
        if rng.random_bool(p.min(0.95)) {
            conditions.insert(c);
        }
    }
    conditions
}

/// Index drawn with probability proportional to `weights`.
pub(crate) fn pick_weighted(rng: &mut Xoshiro256PlusPlus, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn pseudonyms_are_distinct_and_positive() {
        let ids: HashSet<i64> = (0..200_000).map(|i| pseudonym(i, 0xDEAD_BEEF)).collect();
        assert_eq!(ids.len(), 200_000);
        assert!(ids.iter().all(|&id| id > 0));
    }

    #[test]
    fn window_covers_three_years_ending_on_the_end_date() {
        let end = chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let w = Window::ending(end).unwrap();
        assert_eq!(w.days, 1096); // 2023-04-01 ..= 2026-03-31, with 29 Feb 2024
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(i64::from(w.end()), (end - epoch).num_days());
    }

    #[test]
    fn every_pcn_gets_lsoas_even_for_a_tiny_population() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let city = City::new(10, &mut rng);
        let pcns: HashSet<usize> = city.lsoas.iter().map(|l| l.pcn).collect();
        assert_eq!(pcns.len(), PCNS.len());
    }

    #[test]
    fn interpolation_is_flat_outside_and_linear_inside() {
        let k = [(10.0, 1.0), (20.0, 3.0)];
        assert_eq!(interpolate(&k, 0.0), 1.0);
        assert_eq!(interpolate(&k, 15.0), 2.0);
        assert_eq!(interpolate(&k, 99.0), 3.0);
    }
}
