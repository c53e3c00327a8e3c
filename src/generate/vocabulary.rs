//! The codes the generator writes: real code values for everything a model
//! may look for, and synthetic codes for everything else.
//!
//! Real values (SNOMED CT concepts from published clusters and the eFI
//! deficit lists, register exits such as "asthma resolved"; ICD-10 codes
//! from the Hospital Frailty Risk Score, the conditions the population
//! carries, and common unrelated diagnoses) live in
//! small CSV files beside this module (`code,term,condition`), compiled in so
//! the binary needs nothing at run time. They were curated once from the
//! published tables and are kept modest: a generator needs plausible
//! examples, not complete code lists.
//!
//! Real dm+d values are few: the asthma drugs the asthma register's
//! treatment rule looks for (`vocabulary/dmd.csv`, from the QOF cluster
//! ASTTRT_COD). Most primary care events and prescriptions match no rule,
//! so their codes are synthetic: a fixed long tail of SNOMED CT-shaped and dm+d-shaped
//! identifiers (item id, namespace, partition, Verhoeff check digit), built
//! from a constant seed so that every population uses the same coding
//! "release". Their item ids lie beyond those of released concepts, so they
//! never coincide with a curated code or with a real code list.
//!
//! Every table refers to codes by index into these lists, which is also the
//! order of the Parquet dictionaries, so a code costs two bytes per event
//! until the file is written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::StringArray;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::population::{Condition, DEFICITS};

const SNOMED_CSV: &str = include_str!("vocabulary/snomed.csv");
const ICD10_CSV: &str = include_str!("vocabulary/icd10.csv");
const DMD_CSV: &str = include_str!("vocabulary/dmd.csv");

/// Synthetic SNOMED CT codes standing for everything no rule looks at.
pub(crate) const SNOMED_TAIL_LEN: usize = 20_000;
/// Synthetic dm+d codes: a formulary of a few thousand products, after the
/// few real ones a rule looks for.
pub(crate) const DMD_LEN: usize = 3_000;
/// Fixed seeds for the synthetic code lists: the vocabulary is a property of
/// the coding system, not of one generated population.
const SNOMED_TAIL_SEED: u64 = 0x5E3D_C7A1_0000_0001;
const DMD_SEED: u64 = 0x5E3D_C7A1_0000_0002;

/// Indices of the codes that express one concept.
pub(crate) type CodeGroup = Vec<u16>;

pub(crate) struct Vocabulary {
    /// SNOMED CT dictionary: curated codes, then the synthetic tail.
    pub snomed: Arc<StringArray>,
    /// Index of the first synthetic tail code in `snomed`.
    pub snomed_tail_start: u16,
    /// Register codes for each condition, in the order of `Condition::ALL`.
    pub condition_snomed: Vec<CodeGroup>,
    /// Each condition's register exit ("resolved", "in remission"), empty
    /// where its register has none.
    pub condition_resolved: Vec<CodeGroup>,
    /// eFI deficit codes, in the order of `DEFICITS`.
    pub deficit_snomed: Vec<CodeGroup>,
    pub care_home: CodeGroup,
    pub palliative_care: CodeGroup,
    /// "Palliative care no longer indicated".
    pub palliative_care_ended: CodeGroup,
    /// Mild, moderate and severe frailty.
    pub frailty: [CodeGroup; 3],
    /// dm+d dictionary: real asthma drugs, then synthetic products in order
    /// of popularity.
    pub dmd: Arc<StringArray>,
    /// Index of the first synthetic product in `dmd`.
    pub dmd_tail_start: u16,
    /// Asthma-related drugs (the QOF register's treatment rule).
    pub asthma_treatment: CodeGroup,
    /// ICD-10 codes as written in `diagnoses`.
    pub icd10: Vec<String>,
    /// Hospital codes for each condition, in the order of `Condition::ALL`.
    pub condition_icd10: Vec<CodeGroup>,
    /// Frailty-related codes (HFRS three-character codes and subdivisions).
    pub hfrs: CodeGroup,
    /// Common diagnoses that belong to no score, for anyone...
    pub other_general: CodeGroup,
    /// ...for pregnancy and childbirth...
    pub other_maternity: CodeGroup,
    /// ...and for the newborn.
    pub other_newborn: CodeGroup,
}

/// One curated vocabulary file, grouped by its `condition` column.
struct CodeTable {
    codes: Vec<String>,
    groups: HashMap<String, CodeGroup>,
}

impl CodeTable {
    fn parse(name: &str, text: &str, expand: impl Fn(&str, &str) -> Vec<String>) -> Self {
        let mut codes = Vec::new();
        let mut index: HashMap<String, u16> = HashMap::new();
        let mut groups: HashMap<String, CodeGroup> = HashMap::new();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        for record in reader.records() {
            // The file is compiled in; a malformed row is a defect caught by the tests.
            let record = record.unwrap_or_else(|e| panic!("embedded {name} is malformed: {e}"));
            let (code, condition) = (&record[0], &record[2]);
            for written in expand(code, condition) {
                let next =
                    u16::try_from(codes.len()).expect("embedded vocabulary fits u16 indices");
                let id = *index.entry(written.clone()).or_insert_with(|| {
                    codes.push(written);
                    next
                });
                groups.entry(condition.to_string()).or_default().push(id);
            }
        }
        CodeTable { codes, groups }
    }

    /// A group that may be absent (empty then).
    fn take_if_any(&mut self, group: &str) -> CodeGroup {
        self.groups.remove(group).unwrap_or_default()
    }

    fn take(&mut self, group: &str) -> CodeGroup {
        let codes = self.groups.remove(group).unwrap_or_default();
        assert!(
            !codes.is_empty(),
            "embedded vocabulary has no codes for `{group}`"
        );
        codes
    }
}

impl Vocabulary {
    pub(crate) fn load() -> Self {
        let mut snomed =
            CodeTable::parse("snomed.csv", SNOMED_CSV, |code, _| vec![code.to_string()]);
        let condition_snomed = Condition::ALL
            .iter()
            .map(|c| snomed.take(c.name()))
            .collect();
        let deficit_snomed = DEFICITS
            .iter()
            .map(|d| snomed.take(&format!("efi_{}", d.name)))
            .collect();
        let condition_resolved = Condition::ALL
            .iter()
            .map(|c| snomed.take_if_any(&format!("{}_resolved", c.name())))
            .collect();
        let care_home = snomed.take("care_home");
        let palliative_care = snomed.take("palliative_care");
        let palliative_care_ended = snomed.take("palliative_care_ended");
        let frailty = [
            snomed.take("frailty_mild"),
            snomed.take("frailty_moderate"),
            snomed.take("frailty_severe"),
        ];
        assert!(
            snomed.groups.is_empty(),
            "snomed.csv has groups nothing reads (a misspelt name?): {:?}",
            snomed.groups.keys().collect::<Vec<_>>()
        );
        let curated: HashSet<&str> = snomed.codes.iter().map(String::as_str).collect();
        let tail = synthetic_codes(SNOMED_TAIL_SEED, SNOMED_TAIL_LEN, &curated, snomed_shape);
        let snomed_tail_start =
            u16::try_from(snomed.codes.len()).expect("curated SNOMED CT codes fit u16 indices");
        assert!(
            snomed.codes.len() + tail.len() <= usize::from(u16::MAX),
            "SNOMED CT dictionary must fit u16 indices"
        );
        let snomed_values = StringArray::from_iter_values(snomed.codes.iter().chain(&tail));

        let mut real_dmd = CodeTable::parse("dmd.csv", DMD_CSV, |code, _| vec![code.to_string()]);
        let asthma_treatment = real_dmd.take("asthma_treatment");
        let real: HashSet<&str> = real_dmd.codes.iter().map(String::as_str).collect();
        let dmd_tail_start =
            u16::try_from(real_dmd.codes.len()).expect("curated dm+d codes fit u16 indices");
        let dmd: Vec<String> = real_dmd
            .codes
            .iter()
            .cloned()
            .chain(synthetic_codes(DMD_SEED, DMD_LEN, &real, dmd_shape))
            .collect();

        // HFRS codes are published as three characters; hospital coders write
        // them at the fourth character when the code has subdivisions, so each
        // is offered as written and with common subdivisions (.0, .1, .8, .9).
        let mut icd = CodeTable::parse("icd10.csv", ICD10_CSV, |code, condition| {
            if condition == "hfrs" && code.len() == 3 {
                ["", "0", "1", "8", "9"]
                    .iter()
                    .map(|s| format!("{code}{s}"))
                    .collect()
            } else {
                vec![code.to_string()]
            }
        });
        let condition_icd10 = Condition::ALL.iter().map(|c| icd.take(c.name())).collect();
        let hfrs = icd.take("hfrs");
        let other = icd.take("other");
        let codes = icd.codes;
        let starts = |prefixes: &[&str], id: &u16| {
            prefixes
                .iter()
                .any(|p| codes[usize::from(*id)].starts_with(p))
        };
        let other_maternity = other
            .iter()
            .copied()
            .filter(|id| starts(&["O"], id))
            .collect();
        let other_newborn = other
            .iter()
            .copied()
            .filter(|id| starts(&["P", "Z38"], id))
            .collect();
        let other_general = other
            .iter()
            .copied()
            .filter(|id| !starts(&["O", "P", "Z38"], id))
            .collect();

        Vocabulary {
            snomed: Arc::new(snomed_values),
            snomed_tail_start,
            condition_snomed,
            condition_resolved,
            deficit_snomed,
            care_home,
            palliative_care,
            palliative_care_ended,
            frailty,
            dmd: Arc::new(StringArray::from_iter_values(dmd)),
            dmd_tail_start,
            asthma_treatment,
            icd10: codes,
            condition_icd10,
            hfrs,
            other_general,
            other_maternity,
            other_newborn,
        }
    }
}

/// Draws an index in `0..n` with probability falling roughly as 1/(rank+1),
/// the shape of code usage in real records (a few codes everywhere, most
/// codes rare). Inverse-transform of a log-uniform variate: O(1), no tables.
pub(crate) fn popular_rank(rng: &mut Xoshiro256PlusPlus, n: usize) -> usize {
    let rank = ((n as f64 + 1.0).powf(rng.random::<f64>()) - 1.0) as usize;
    rank.min(n - 1)
}

/// Draws `len` distinct codes of one shape, skipping any in `taken`.
fn synthetic_codes(
    seed: u64,
    len: usize,
    taken: &HashSet<&str>,
    shape: fn(&mut Xoshiro256PlusPlus) -> String,
) -> Vec<String> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut seen = HashSet::with_capacity(len);
    let mut codes = Vec::with_capacity(len);
    while codes.len() < len {
        let code = shape(&mut rng);
        if !taken.contains(code.as_str()) && seen.insert(code.clone()) {
            codes.push(code);
        }
    }
    codes
}

/// A SNOMED CT concept id: mostly international short-format ids (item id,
/// partition `00`), some UK clinical extension ids (item id, namespace
/// `1000000`, partition `10`), each with its Verhoeff check digit. Item ids
/// come from ranges that no released concept uses (released international
/// items are below about 1.4 million, UK extension items below about
/// 200,000), so a synthetic code can never be mistaken for a real one by a
/// rule's code list.
fn snomed_shape(rng: &mut Xoshiro256PlusPlus) -> String {
    if rng.random_bool(0.75) {
        let item = rng.random_range(5_000_000u64..10_000_000);
        with_check_digit(format!("{item}00"))
    } else {
        let item = rng.random_range(500_000u64..1_000_000);
        with_check_digit(format!("{item}100000010"))
    }
}

/// A dm+d product id: item id in the dm+d namespace `1000001`, partition
/// `10`, Verhoeff check digit (the shape of current VMP and AMP ids), with
/// eight-digit item ids beyond those in use.
fn dmd_shape(rng: &mut Xoshiro256PlusPlus) -> String {
    let item = rng.random_range(20_000_000u64..100_000_000);
    with_check_digit(format!("{item}100000110"))
}

fn with_check_digit(mut digits: String) -> String {
    let check = verhoeff_check_digit(&digits);
    digits.push(char::from(b'0' + check));
    digits
}

// Verhoeff's dihedral-group check digit, as SNOMED CT identifiers use.
const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// Check digit to append to a string of ASCII digits.
fn verhoeff_check_digit(digits: &str) -> u8 {
    let mut c = 0u8;
    for (i, b) in digits.bytes().rev().enumerate() {
        let p = VERHOEFF_P[(i + 1) % 8][usize::from(b - b'0')];
        c = VERHOEFF_D[usize::from(c)][usize::from(p)];
    }
    VERHOEFF_INV[usize::from(c)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn verhoeff_valid(code: &str) -> bool {
        let mut c = 0u8;
        for (i, b) in code.bytes().rev().enumerate() {
            let p = VERHOEFF_P[i % 8][usize::from(b - b'0')];
            c = VERHOEFF_D[usize::from(c)][usize::from(p)];
        }
        c == 0
    }

    #[test]
    fn check_digit_matches_published_concept_ids() {
        // Heart failure, moderate frailty, palliative care.
        for code in ["84114007", "925831000000107", "103735009"] {
            assert!(verhoeff_valid(code), "{code}");
        }
        assert!(!verhoeff_valid("84114008"));
    }

    #[test]
    fn every_snomed_and_dmd_code_is_well_formed() {
        let v = Vocabulary::load();
        for code in v.snomed.iter().chain(v.dmd.iter()).flatten() {
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!((6..=18).contains(&code.len()), "{code}");
            assert!(verhoeff_valid(code), "check digit of {code}");
        }
        assert_eq!(
            v.snomed.len() - usize::from(v.snomed_tail_start),
            SNOMED_TAIL_LEN
        );
        assert_eq!(v.dmd.len() - usize::from(v.dmd_tail_start), DMD_LEN);
        let distinct: HashSet<_> = v.dmd.iter().flatten().collect();
        assert_eq!(
            distinct.len(),
            v.dmd.len(),
            "synthetic dm+d codes never repeat a real one"
        );
        let distinct: HashSet<_> = v.snomed.iter().flatten().collect();
        assert_eq!(
            distinct.len(),
            v.snomed.len(),
            "synthetic codes never repeat a real one"
        );
    }

    #[test]
    fn icd10_codes_are_clean() {
        let v = Vocabulary::load();
        for code in &v.icd10 {
            let b = code.as_bytes();
            assert!(code.len() == 3 || code.len() == 4, "{code}");
            assert!(
                b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit),
                "{code}"
            );
        }
        assert!(v.hfrs.iter().any(|&i| v.icd10[usize::from(i)] == "F00"));
        assert!(v.hfrs.iter().any(|&i| v.icd10[usize::from(i)] == "R290"));
        let groups = [&v.other_general, &v.other_maternity, &v.other_newborn];
        assert!(groups.iter().all(|g| !g.is_empty()));
        assert!(v.condition_icd10.iter().all(|g| !g.is_empty()));
    }

    #[test]
    fn popular_ranks_are_skewed_and_in_range() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let draws: Vec<usize> = (0..10_000).map(|_| popular_rank(&mut rng, 100)).collect();
        assert!(draws.iter().all(|&r| r < 100));
        let top = draws.iter().filter(|&&r| r == 0).count();
        let mid = draws.iter().filter(|&&r| r == 50).count();
        assert!(
            top > 10 * mid.max(1),
            "rank 0 drawn {top} times, rank 50 {mid}"
        );
    }
}
