//! Three years of activity for one person: A&E attendances, inpatient
//! admissions with ICD-10 diagnoses, GP coded events and prescriptions.
//!
//! Rates are per person-year of exposure (from birth or the window's start
//! to death or its end), so nobody has activity before birth or after death.
//! Unplanned care shares one person-level propensity drawn from a gamma
//! distribution with a small shape: that is what makes A&E use heavy-tailed
//! (gamma-Poisson) and puts frequent attenders, emergency admissions and
//! poor health in the same people, as in life. A per-year modulation lets
//! people move in and out of frequent use from one year to the next. Deaths
//! bring a burst of activity in the months before them.
//!
//! Events are appended to the chunk's lists unordered; ordering by date
//! happens once for the whole population when the tables are written.

use arrow_array::Array;
use rand::RngExt;
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::population::{
    Condition, Health, Person, Sex, UnitGamma, Window, interpolate, pick_weighted,
};
use super::vocabulary::{CodeGroup, Vocabulary, popular_rank};

/// One A&E attendance.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attendance {
    pub person: u32,
    pub day: u16,
}

/// One coded GP event or prescription: a dictionary index and a day.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CodedEvent {
    pub person: u32,
    pub code: u16,
    pub day: u16,
}

/// Most diagnoses an admission carries here (HES allows 20; 10 is plenty).
pub(crate) const MAX_DIAGNOSES: usize = 10;

/// One inpatient admission.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Admission {
    pub person: u32,
    pub admitted: u16,
    /// `None` while still in hospital at the end of the window.
    pub discharged: Option<u16>,
    pub emergency: bool,
    pub n_diagnoses: u8,
    /// ICD-10 vocabulary indices, primary first.
    pub diagnoses: [u16; MAX_DIAGNOSES],
}

/// A chunk's events, in generation order.
#[derive(Default)]
pub(crate) struct Events {
    pub attendances: Vec<Attendance>,
    pub admissions: Vec<Admission>,
    pub gp: Vec<CodedEvent>,
    pub prescriptions: Vec<CodedEvent>,
}

/// A&E attendances per person-year by age, before deprivation, morbidity
/// and the person's own propensity (net of those that lead to admission).
const AE_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.35),
    (4.0, 0.21),
    (8.0, 0.135),
    (14.0, 0.19),
    (18.0, 0.315),
    (25.0, 0.295),
    (35.0, 0.225),
    (50.0, 0.18),
    (65.0, 0.167),
    (75.0, 0.182),
    (85.0, 0.25),
    (95.0, 0.3),
];

/// Emergency admissions per person-year by age.
const EMERGENCY_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.054),
    (5.0, 0.018),
    (15.0, 0.027),
    (30.0, 0.027),
    (50.0, 0.036),
    (65.0, 0.054),
    (75.0, 0.09),
    (85.0, 0.162),
    (95.0, 0.225),
];

/// Elective admissions (including day cases) per person-year by age.
const ELECTIVE_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.02),
    (15.0, 0.03),
    (30.0, 0.06),
    (50.0, 0.1),
    (65.0, 0.18),
    (75.0, 0.22),
    (85.0, 0.16),
    (95.0, 0.08),
];

/// Background GP coded events per person-year by age, for women and men.
const GP_BY_AGE_FEMALE: &[(f64, f64)] = &[
    (0.0, 8.4),
    (5.0, 4.2),
    (15.0, 6.3),
    (25.0, 9.8),
    (45.0, 9.8),
    (65.0, 12.6),
    (75.0, 16.8),
    (85.0, 21.0),
    (95.0, 22.4),
];
const GP_BY_AGE_MALE: &[(f64, f64)] = &[
    (0.0, 8.4),
    (5.0, 4.2),
    (15.0, 3.5),
    (25.0, 4.2),
    (45.0, 6.3),
    (65.0, 10.5),
    (75.0, 14.0),
    (85.0, 18.2),
    (95.0, 19.6),
];

/// Regular (repeat) medicines by age, before morbidity.
const REPEATS_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.05),
    (15.0, 0.1),
    (30.0, 0.25),
    (45.0, 0.5),
    (55.0, 0.9),
    (65.0, 1.6),
    (75.0, 2.5),
    (85.0, 3.2),
];

/// Acute (one-off) prescriptions per person-year by age.
const ACUTE_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.7),
    (5.0, 0.4),
    (20.0, 0.5),
    (60.0, 0.7),
    (80.0, 1.0),
];

/// Share of diagnoses that are frailty-related (HFRS) codes, by age.
const HFRS_SHARE_BY_AGE: &[(f64, f64)] = &[
    (0.0, 0.03),
    (50.0, 0.07),
    (65.0, 0.18),
    (75.0, 0.28),
    (85.0, 0.38),
    (95.0, 0.45),
];

/// Conditions that raise unplanned care beyond their share of the
/// condition count (log effects).
const UNPLANNED_LOG_EFFECTS: [(Condition, f64); 3] = [
    (Condition::SevereMentalIllness, 0.6),
    (Condition::LearningDisability, 0.3),
    (Condition::PersistentPain, 0.3),
];

/// Emergency admissions that arrive through A&E (the rest come via GP or
/// other routes) and so also appear as an attendance on the same day.
const EMERGENCY_VIA_AE: f64 = 0.75;

/// Fixed distributions, built once per chunk.
pub(crate) struct Activity<'a> {
    vocabulary: &'a Vocabulary,
    window: Window,
    /// Person-level propensity for unplanned care: heavy-tailed.
    unplanned: UnitGamma,
    /// Year-to-year change in a person's unplanned care.
    yearly: UnitGamma,
    /// Person-level GP contact propensity.
    consulting: UnitGamma,
    /// Person-level tendency to be prescribed regular medicines.
    prescribing: UnitGamma,
}

impl<'a> Activity<'a> {
    pub(crate) fn new(vocabulary: &'a Vocabulary, window: Window) -> Self {
        Activity {
            vocabulary,
            window,
            unplanned: UnitGamma::new(0.6),
            yearly: UnitGamma::new(2.5),
            consulting: UnitGamma::new(2.0),
            prescribing: UnitGamma::new(3.0),
        }
    }

    /// Appends person `index`'s activity to `out`.
    pub(crate) fn simulate(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        index: u32,
        person: &Person,
        health: &Health,
        out: &mut Events,
    ) {
        let ctx = PersonContext {
            index,
            person,
            health,
            window: self.window,
        };
        let n_conditions = f64::from(health.conditions.count());
        let n_deficits = f64::from(health.deficit_count());
        let propensity = self.unplanned.sample(rng);
        // Unplanned care follows deprivation, multimorbidity, frailty and
        // the vulnerabilities that drive frequent attendance.
        let specific: f64 = UNPLANNED_LOG_EFFECTS
            .iter()
            .filter(|(c, _)| health.conditions.has(*c))
            .map(|(_, effect)| effect)
            .sum();
        let care_home = if person.care_home { 0.3 } else { 0.0 };
        let vulnerability = (0.45 * health.deprivation
            + 0.18 * n_conditions
            + 0.03 * n_deficits
            + specific
            + care_home)
            .exp();

        // A person's unplanned care rises and falls from year to year, A&E
        // and emergency admissions together (a bad year brings both).
        let modulation: [f64; 3] = std::array::from_fn(|_| self.yearly.sample(rng));
        self.admissions(rng, &ctx, propensity, vulnerability, &modulation, out);
        self.attendances(rng, &ctx, propensity * vulnerability, &modulation, out);
        self.gp_events(rng, &ctx, n_conditions, n_deficits, out);
        self.prescriptions(rng, &ctx, n_conditions, n_deficits, out);
    }

    /// The person's days in each of the three years counted back from the
    /// window's end (the third takes the rest of the window), as
    /// (year, first day, last day, length in years).
    fn years_lived(&self, ctx: &PersonContext) -> Vec<(usize, u16, u16, f64)> {
        let days = i32::from(self.window.days);
        (0..3)
            .filter_map(|year| {
                let hi = days - 1 - 365 * year as i32;
                let lo = if year == 2 { 0 } else { hi - 364 };
                let lo = lo.max(i32::from(ctx.health.first_day));
                let hi = hi.min(i32::from(ctx.health.last_day));
                (lo <= hi).then(|| (year, lo as u16, hi as u16, f64::from(hi - lo + 1) / 365.25))
            })
            .collect()
    }

    fn attendances(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        ctx: &PersonContext,
        risk: f64,
        modulation: &[f64; 3],
        out: &mut Events,
    ) {
        let rate = interpolate(AE_BY_AGE, ctx.health.age) * risk;
        for (year, lo, hi, years) in self.years_lived(ctx) {
            let n = poisson(rng, rate * modulation[year] * years);
            for _ in 0..n {
                let day = rng.random_range(lo..=hi);
                out.attendances.push(Attendance {
                    person: ctx.index,
                    day,
                });
            }
        }
        if ctx.person.death.is_some() {
            // Attendances in the last three months of life.
            for _ in 0..poisson(rng, 0.6) {
                let day = ctx.before_death(rng, 90);
                out.attendances.push(Attendance {
                    person: ctx.index,
                    day,
                });
            }
        }
    }

    fn admissions(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        ctx: &PersonContext,
        propensity: f64,
        vulnerability: f64,
        modulation: &[f64; 3],
        out: &mut Events,
    ) {
        let health = ctx.health;
        let years = health.exposure_years();
        let frailty = (0.075 * f64::from(health.deficit_count())).exp();
        let emergency_rate = interpolate(EMERGENCY_BY_AGE, health.age)
            * vulnerability
            * frailty
            * propensity.powf(0.8)
            * if ctx.person.care_home { 1.5 } else { 1.0 };
        // Cancer treatment brings day cases and planned stays.
        let cancer = if health.conditions.has(Condition::Cancer) {
            4.0
        } else {
            1.0
        };
        let elective_rate = interpolate(ELECTIVE_BY_AGE, health.age)
            * (0.15 * f64::from(health.conditions.count())).exp()
            * cancer;

        // (day, emergency) in date order, then laid end to end so that stays
        // never overlap.
        let mut planned: Vec<(u16, bool)> = Vec::new();
        for (year, lo, hi, years) in self.years_lived(ctx) {
            for _ in 0..poisson(rng, emergency_rate * modulation[year] * years) {
                planned.push((rng.random_range(lo..=hi), true));
            }
        }
        for _ in 0..poisson(rng, elective_rate * years) {
            planned.push((ctx.any_day(rng), false));
        }
        let dies_in_hospital = ctx.person.death.is_some() && rng.random_bool(0.45);
        if ctx.person.death.is_some() {
            for _ in 0..poisson(rng, 0.8) {
                planned.push((ctx.before_death(rng, 120), true));
            }
        }
        planned.sort_unstable();

        let mut free_from = health.first_day;
        for (day, emergency) in planned {
            let admitted = day.max(free_from);
            if admitted > health.last_day {
                break;
            }
            let stay = length_of_stay(rng, health.age, emergency);
            let discharged = ctx.leave(admitted, stay);
            out.admissions
                .push(self.admission(rng, ctx, admitted, discharged, emergency));
            if emergency && rng.random_bool(EMERGENCY_VIA_AE) {
                out.attendances.push(Attendance {
                    person: ctx.index,
                    day: admitted,
                });
            }
            match discharged {
                Some(d) if d < health.last_day => free_from = d + 1,
                _ => return,
            }
        }
        if let (true, Some(death)) = (dies_in_hospital, ctx.person.death) {
            // The final stay ends in death.
            let stay = length_of_stay(rng, health.age, true);
            let admitted = death.saturating_sub(stay).max(free_from);
            out.admissions
                .push(self.admission(rng, ctx, admitted, Some(death), true));
            if rng.random_bool(EMERGENCY_VIA_AE) {
                out.attendances.push(Attendance {
                    person: ctx.index,
                    day: admitted,
                });
            }
        }
    }

    fn admission(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        ctx: &PersonContext,
        admitted: u16,
        discharged: Option<u16>,
        emergency: bool,
    ) -> Admission {
        let v = self.vocabulary;
        let health = ctx.health;
        let age = health.age;
        let extra = 0.4 * f64::from(health.conditions.count()) + 0.07 * (age - 40.0).max(0.0);
        let mean = if emergency {
            0.6 + extra
        } else {
            0.3 + 0.6 * extra
        };
        let n = 1 + poisson(rng, mean);
        let n = (n as usize).min(MAX_DIAGNOSES);
        let mut hfrs_share =
            interpolate(HFRS_SHARE_BY_AGE, age) * (1.0 + 0.04 * f64::from(health.deficit_count()));
        if !emergency {
            hfrs_share *= 0.5;
        }
        let hfrs_share = hfrs_share.min(0.7);

        let mut diagnoses = [0u16; MAX_DIAGNOSES];
        let mut count = 0;
        // A few tries per slot: a repeated code is redrawn, not written twice.
        for slot in 0..n {
            for _ in 0..3 {
                let code = if slot == 0 {
                    self.primary_diagnosis(rng, ctx, emergency, hfrs_share)
                } else if rng.random_bool(0.35) && health.conditions.count() > 0 {
                    condition_code(rng, health, &v.condition_icd10)
                } else if rng.random_bool(hfrs_share) {
                    pick(rng, &v.hfrs)
                } else {
                    pick_popular(rng, &v.other_general)
                };
                if !diagnoses[..count].contains(&code) {
                    diagnoses[count] = code;
                    count += 1;
                    break;
                }
            }
        }
        Admission {
            person: ctx.index,
            admitted,
            discharged,
            emergency,
            n_diagnoses: count as u8,
            diagnoses,
        }
    }

    fn primary_diagnosis(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        ctx: &PersonContext,
        emergency: bool,
        hfrs_share: f64,
    ) -> u16 {
        let v = self.vocabulary;
        let health = ctx.health;
        if health.age < 1.0 && rng.random_bool(0.4) {
            return pick_popular(rng, &v.other_newborn);
        }
        let childbearing = ctx.person.sex == Sex::Female && (16.0..46.0).contains(&health.age);
        if childbearing && rng.random_bool(if emergency { 0.15 } else { 0.3 }) {
            return pick_popular(rng, &v.other_maternity);
        }
        if !emergency && health.conditions.has(Condition::Cancer) && rng.random_bool(0.6) {
            return pick(rng, &v.condition_icd10[Condition::Cancer as usize]);
        }
        if emergency && health.conditions.count() > 0 && rng.random_bool(0.3) {
            return condition_code(rng, health, &v.condition_icd10);
        }
        if rng.random_bool(hfrs_share) {
            return pick(rng, &v.hfrs);
        }
        pick_popular(rng, &v.other_general)
    }

    fn gp_events(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        ctx: &PersonContext,
        n_conditions: f64,
        n_deficits: f64,
        out: &mut Events,
    ) {
        let v = self.vocabulary;
        let health = ctx.health;
        // `within`: the span of days before death (or the window's end) the
        // event falls in; `None` for any day of exposure.
        let mut record = |rng: &mut Xoshiro256PlusPlus, code: u16, within: Option<u16>| {
            let day = match within {
                None => ctx.any_day(rng),
                Some(span) => ctx.before_death(rng, span),
            };
            let day = ctx.weekday(rng, day);
            out.gp.push(CodedEvent {
                person: ctx.index,
                code,
                day,
            });
        };
        let by_age = if ctx.person.sex == Sex::Male {
            GP_BY_AGE_MALE
        } else {
            GP_BY_AGE_FEMALE
        };
        let rate = interpolate(by_age, health.age)
            * (1.0 + 0.12 * n_conditions + 0.03 * n_deficits)
            * self.consulting.sample(rng);
        // Most events are routine codes no rule looks at.
        let tail = usize::from(v.snomed_tail_start);
        let tail_len = v.snomed.len() - tail;
        let mut background = poisson(rng, rate * health.exposure_years());
        if ctx.person.death.is_some() {
            background += poisson(rng, 6.0);
        }
        for _ in 0..background {
            let code = (tail + popular_rank(rng, tail_len)) as u16;
            record(rng, code, None);
        }

        // Registers: each condition coded at diagnosis or review. Some are
        // later coded resolved (or in remission); when that code is the
        // latest, the person has left the register.
        for c in health.conditions.iter() {
            let codes = &v.condition_snomed[c as usize];
            for _ in 0..1 + poisson(rng, 1.2) {
                let code = pick(rng, codes);
                record(rng, code, None);
            }
            let resolved = &v.condition_resolved[c as usize];
            if !resolved.is_empty() && rng.random_bool(resolved_share(c)) {
                let code = pick(rng, resolved);
                record(rng, code, None);
            }
        }
        for (i, codes) in v.deficit_snomed.iter().enumerate() {
            if health.deficits & (1 << i) != 0 {
                for _ in 0..1 + poisson(rng, 0.4) {
                    let code = pick(rng, codes);
                    record(rng, code, None);
                }
            }
        }
        if ctx.person.care_home && rng.random_bool(0.9) {
            for _ in 0..1 + poisson(rng, 1.5) {
                let code = pick(rng, &v.care_home);
                record(rng, code, None);
            }
        }
        // A frailty category is coded for some older people after an eFI
        // review, in line with their deficits.
        let deficits = health.deficit_count();
        if health.age >= 65.0 && deficits >= 5 {
            let (level, p) = match deficits {
                5..=8 => (0, 0.3),
                9..=12 => (1, 0.45),
                _ => (2, 0.6),
            };
            if rng.random_bool(p) {
                for _ in 0..1 + poisson(rng, 0.3) {
                    let code = pick(rng, &v.frailty[level]);
                    record(rng, code, None);
                }
            }
        }
        // Palliative care: mostly in the last year of life, more often where
        // the decline was foreseeable (advanced illness or great age); for
        // people who live on, mainly with advanced illness.
        let advanced = [
            Condition::Cancer,
            Condition::HeartFailure,
            Condition::Copd,
            Condition::Dementia,
        ]
        .iter()
        .any(|&c| health.conditions.has(c));
        let palliative = if ctx.person.death.is_some() {
            if advanced || health.age >= 85.0 {
                0.6
            } else {
                0.25
            }
        } else if advanced && health.age >= 60.0 {
            0.06
        } else {
            0.0003
        };
        if rng.random_bool(palliative) {
            for _ in 0..1 + poisson(rng, 1.5) {
                let code = pick(rng, &v.palliative_care);
                record(rng, code, Some(300));
            }
            // Some who live on are later judged no longer in need of it.
            if ctx.person.death.is_none() && rng.random_bool(0.2) {
                let code = pick(rng, &v.palliative_care_ended);
                record(rng, code, Some(150));
            }
        }
    }

    fn prescriptions(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        ctx: &PersonContext,
        n_conditions: f64,
        n_deficits: f64,
        out: &mut Events,
    ) {
        let v = self.vocabulary;
        let health = ctx.health;
        // Random products come from the synthetic formulary; the real
        // drugs at its head are issued for the conditions they treat.
        let tail = usize::from(v.dmd_tail_start);
        let n_codes = v.dmd.len() - tail;
        let repeats = interpolate(REPEATS_BY_AGE, health.age)
            * (1.0 + 0.35 * n_conditions + 0.04 * n_deficits)
            * self.prescribing.sample(rng);
        let mut held: Vec<u16> = Vec::new();
        for _ in 0..poisson(rng, repeats) {
            // Distinct regular medicines; a clash is simply redrawn.
            let Some(code) = (0..4)
                .map(|_| (tail + popular_rank(rng, n_codes)) as u16)
                .find(|c| !held.contains(c))
            else {
                continue;
            };
            held.push(code);
            issue_repeats(rng, ctx, code, out);
        }
        // Most people with asthma have an inhaler issued every few months.
        if health.conditions.has(Condition::Asthma) && rng.random_bool(0.85) {
            let code = pick(rng, &v.asthma_treatment);
            issue_repeats(rng, ctx, code, out);
        }
        let acute = interpolate(ACUTE_BY_AGE, health.age) * health.exposure_years();
        for _ in 0..poisson(rng, acute) {
            let code = (tail + popular_rank(rng, n_codes)) as u16;
            let day = ctx.any_day(rng);
            let day = ctx.weekday(rng, day);
            out.prescriptions.push(CodedEvent {
                person: ctx.index,
                code,
                day,
            });
        }
    }
}

/// Share of people with a condition who have an exit code ("resolved", or
/// for severe mental illness "in remission") recorded, at any age. The exit
/// falls on a random day of the record, so only when it comes after the
/// last register code (about half the time) does the person leave the
/// register. Conditions with no exit in the vocabulary get none.
fn resolved_share(c: Condition) -> f64 {
    match c {
        Condition::Asthma => 0.15,
        Condition::SevereMentalIllness => 0.1,
        Condition::Hypertension => 0.03,
        Condition::Diabetes => 0.02,
        _ => 0.0,
    }
}

/// A repeat prescription: issued every 1, 2 or 3 months, from before the
/// window or from a start during it, sometimes stopped.
fn issue_repeats(rng: &mut Xoshiro256PlusPlus, ctx: &PersonContext, code: u16, out: &mut Events) {
    let (lo, hi) = (ctx.health.first_day, ctx.health.last_day);
    let interval = [28u16, 56, 84][pick_weighted(rng, &[0.2, 0.5, 0.3])];
    let mut day = if rng.random_bool(0.8) {
        lo.saturating_add(rng.random_range(0..interval))
    } else {
        rng.random_range(lo..=hi)
    };
    let stop = if rng.random_bool(0.1) {
        rng.random_range(day.min(hi)..=hi)
    } else {
        hi
    };
    while day <= stop {
        let issued = ctx.weekday(rng, day);
        out.prescriptions.push(CodedEvent {
            person: ctx.index,
            code,
            day: issued,
        });
        let jitter = rng.random_range(0..7u16);
        day = day.saturating_add(interval - 3 + jitter);
    }
}

/// The person an event belongs to, and the days they can have events on.
struct PersonContext<'a> {
    index: u32,
    person: &'a Person,
    health: &'a Health,
    window: Window,
}

impl PersonContext<'_> {
    fn any_day(&self, rng: &mut Xoshiro256PlusPlus) -> u16 {
        rng.random_range(self.health.first_day..=self.health.last_day)
    }

    /// A day in the `span` days up to and including death (or the end of
    /// exposure), never before exposure starts.
    fn before_death(&self, rng: &mut Xoshiro256PlusPlus, span: u16) -> u16 {
        let last = self.health.last_day;
        let first = last.saturating_sub(span).max(self.health.first_day);
        rng.random_range(first..=last)
    }

    /// Discharge day for a stay of `stay` nights from `admitted`: the death
    /// day if the person died first, `None` if still in hospital at the end.
    fn leave(&self, admitted: u16, stay: u16) -> Option<u16> {
        let discharged = admitted.saturating_add(stay);
        match self.person.death {
            Some(death) if discharged >= death => Some(death),
            _ if discharged >= self.window.days => None,
            _ => Some(discharged),
        }
    }

    /// Practices code on weekdays: most weekend days move to the nearest
    /// weekday within exposure.
    fn weekday(&self, rng: &mut Xoshiro256PlusPlus, day: u16) -> u16 {
        // 1970-01-01 was a Thursday: +3 makes Monday 0.
        let weekday = (self.window.start + i32::from(day) + 3).rem_euclid(7);
        if weekday < 5 || !rng.random_bool(0.9) {
            return day;
        }
        let (lo, hi) = (self.health.first_day, self.health.last_day);
        let (near, far) = if weekday == 5 {
            (day.checked_sub(1), day.checked_add(2))
        } else {
            (day.checked_add(1), day.checked_sub(2))
        };
        [near, far]
            .into_iter()
            .flatten()
            .find(|d| (lo..=hi).contains(d))
            .unwrap_or(day)
    }
}

/// Nights in hospital: day cases for most electives, longer stays with age
/// for emergencies (log-normal).
fn length_of_stay(rng: &mut Xoshiro256PlusPlus, age: f64, emergency: bool) -> u16 {
    let median = if emergency {
        if rng.random_bool(0.2) {
            return 0;
        }
        interpolate(&[(0.0, 1.0), (50.0, 2.0), (70.0, 4.0), (85.0, 7.0)], age)
    } else {
        if rng.random_bool(0.7) {
            return 0;
        }
        2.5
    };
    let z: f64 = rng.sample(StandardNormal);
    (median * z.exp()).round().min(365.0) as u16
}

/// A random code for one of the person's conditions.
fn condition_code(rng: &mut Xoshiro256PlusPlus, health: &Health, groups: &[CodeGroup]) -> u16 {
    let n = health.conditions.count() as usize;
    let c = health
        .conditions
        .iter()
        .nth(rng.random_range(0..n))
        .unwrap_or(Condition::Hypertension);
    pick(rng, &groups[c as usize])
}

fn pick(rng: &mut Xoshiro256PlusPlus, group: &[u16]) -> u16 {
    group[rng.random_range(0..group.len())]
}

fn pick_popular(rng: &mut Xoshiro256PlusPlus, group: &[u16]) -> u16 {
    group[popular_rank(rng, group.len())]
}

/// Poisson variate: multiplication of uniforms for the small means that
/// dominate here (no set-up cost per call), rand_distr's sampler otherwise.
fn poisson(rng: &mut Xoshiro256PlusPlus, mean: f64) -> u32 {
    if mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    if mean > 30.0 {
        return match rand_distr::Poisson::new(mean) {
            Ok(d) => rand_distr::Distribution::sample(&d, rng) as u32,
            Err(_) => 0,
        };
    }
    let limit = (-mean).exp();
    let mut product = rng.random::<f64>();
    let mut k = 0;
    while product > limit {
        k += 1;
        product *= rng.random::<f64>();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::super::population::DEFICITS;
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn poisson_has_the_requested_mean() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        for mean in [0.2, 3.0, 50.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| u64::from(poisson(&mut rng, mean))).sum();
            let observed = total as f64 / n as f64;
            assert!(
                (observed - mean).abs() < 0.05 * mean + 0.02,
                "mean {mean}: got {observed}"
            );
        }
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }

    #[test]
    fn deficit_and_condition_counts_agree_with_vocabulary() {
        let v = Vocabulary::load();
        assert_eq!(v.deficit_snomed.len(), DEFICITS.len());
        assert_eq!(v.condition_snomed.len(), Condition::ALL.len());
    }
}
