//! Code lists: CSV files in the OpenCodelists layout (a `code` column, a
//! `term`, optionally a weight or a category), and matching raw codes from
//! the data against them.
//!
//! Matching is written once here and used by the scan once per *distinct*
//! code value (per dictionary entry), so it can afford to normalise text:
//! ICD-10 codes match ignoring case, dots, spaces and dashes (`F00.1`,
//! `F001` and `f00 1` are one code); SNOMED CT and dm+d ids match exactly
//! after trimming. In prefix mode the longest listed prefix wins.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Position, Result};
use crate::rules::syntax::{self, CodingSystem, MatchMode};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub code: String,
    pub term: String,
    /// In millionths ([`WEIGHT_SCALE`]): weights are decimals in the source
    /// tables, and summing them exactly keeps a score that is exactly on a
    /// band boundary (HFRS 5.0) on it.
    pub weight: Option<i64>,
    /// Categories the code scores, sorted. A code may score several: in
    /// the eFI, diabetes-complication codes also score CKD or skin ulcer.
    pub categories: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Codelist {
    pub name: String,
    pub path: PathBuf,
    pub system: CodingSystem,
    pub match_mode: MatchMode,
    pub entries: Vec<Entry>,
    /// Category names, indexed by the ids in `Entry::categories`.
    pub categories: Vec<String>,
    /// Code -> entry; a fast hash, since the scan looks up every distinct
    /// code of every dictionary page.
    index: HashMap<String, u32, foldhash::fast::FixedState>,
    longest_code: usize,
}

/// The whitespace trimmed from around a code (and an opt-out flag): the
/// ASCII whitespace characters, which every SQL engine can trim as well,
/// so that a compiled rule file trims exactly the same.
pub const CODE_WHITESPACE: [char; 6] = [' ', '\t', '\n', '\r', '\x0B', '\x0C'];

/// A raw code without the whitespace around it.
pub fn trim_code(raw: &str) -> &str {
    raw.trim_matches(CODE_WHITESPACE)
}

/// The form a code is compared in, for a coding system.
pub fn normalise(system: CodingSystem, raw: &str) -> Cow<'_, str> {
    match system {
        // HES pads 3-character codes to 4 with an `X` filler (`R54X`).
        CodingSystem::Icd10
            if raw.len() == 4 && raw.ends_with(['X', 'x']) && raw.is_char_boundary(3) =>
        {
            normalise(system, &raw[..3])
        }
        CodingSystem::Icd10 => {
            let clean = |c: &char| c.is_ascii_alphanumeric();
            if raw.chars().all(|c| clean(&c) && !c.is_ascii_lowercase()) {
                Cow::Borrowed(raw)
            } else {
                Cow::Owned(
                    raw.chars()
                        .filter(clean)
                        .map(|c| c.to_ascii_uppercase())
                        .collect(),
                )
            }
        }
        CodingSystem::Snomed | CodingSystem::Dmd | CodingSystem::Other => {
            Cow::Borrowed(trim_code(raw))
        }
    }
}

impl Codelist {
    /// Reads the CSV named by a rule file's `[codelists.NAME]` table; its
    /// path is relative to `rule_dir`, the rule file's folder. Errors name
    /// the CSV and the line in it.
    pub fn load(name: &str, decl: &syntax::Codelist, rule_dir: &Path) -> Result<Codelist> {
        let path = rule_dir.join(decl.file.get_ref());
        let bytes = super::bundled::read(&path).map_err(|e| {
            Error::io(&path, "cannot read code list", e).with_help(format!(
                "code list `{name}` names this file; paths are relative to the rule file"
            ))
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let at = Position::of_offset(
                &String::from_utf8_lossy(&bytes[..e.valid_up_to()]),
                e.valid_up_to(),
            );
            Error::rules(&path, Some(at), "code list is not valid UTF-8")
                .with_help("save the CSV as UTF-8")
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| csv_error(&path, text, e))?
            .clone();
        let column = |wanted: &str| headers.iter().position(|h| h.trim() == wanted);
        let missing = |wanted: &str| {
            Error::rules(
                &path,
                Some(Position { line: 1, column: 1 }),
                format!(
                    "code list has no `{wanted}` column (its columns are: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            )
            .with_help(format!(
                "add the column, or name the right one in [codelists.{name}] of the rule file"
            ))
        };
        let code_col = column(&decl.code_column).ok_or_else(|| missing(&decl.code_column))?;
        let term_col = column("term");
        let weight_col = match &decl.weight_column {
            Some(w) => Some(column(w).ok_or_else(|| missing(w))?),
            None => None,
        };
        let category_col = match &decl.category_column {
            Some(c) => Some(column(c).ok_or_else(|| missing(c))?),
            None => None,
        };

        let mut list = Codelist {
            name: name.to_string(),
            path: path.clone(),
            system: decl.system,
            match_mode: decl.match_mode,
            entries: Vec::new(),
            categories: Vec::new(),
            index: HashMap::default(),
            longest_code: 0,
        };
        let mut category_ids: HashMap<String, u32> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(&path, text, e))?;
            let byte = record.position().map_or(0, |p| p.byte());
            let at = || Some(line_at(text, byte));
            let raw_code = record.get(code_col).unwrap_or("");
            let code = normalise(decl.system, raw_code).into_owned();
            if code.is_empty() {
                return Err(Error::rules(&path, at(), "empty code")
                    .with_help("remove the row or fill in its code"));
            }
            let weight = match weight_col {
                Some(c) => {
                    let text = record.get(c).unwrap_or("").trim();
                    Some(parse_weight(text).ok_or_else(|| {
                        Error::rules(
                            &path,
                            at(),
                            format!("weight `{text}` of code `{raw_code}` is not a decimal number"),
                        )
                        .with_help("write weights as plain decimals with at most 6 decimal places, e.g. 7.1")
                    })?)
                }
                None => None,
            };
            let category = match category_col {
                Some(c) => {
                    let text = record.get(c).unwrap_or("").trim();
                    if text.is_empty() {
                        return Err(Error::rules(
                            &path,
                            at(),
                            format!("code `{raw_code}` has no category"),
                        )
                        .with_help("every row needs a value in the category column"));
                    }
                    let next = category_ids.len() as u32;
                    let id = *category_ids.entry(text.to_string()).or_insert_with(|| {
                        list.categories.push(text.to_string());
                        next
                    });
                    Some(id)
                }
                None => None,
            };
            let entry = Entry {
                code: code.clone(),
                term: term_col
                    .and_then(|c| record.get(c))
                    .unwrap_or("")
                    .to_string(),
                weight,
                categories: category.into_iter().collect(),
            };
            if let Some(&existing) = list.index.get(&code) {
                // A code listed again scores another category (if it names
                // one); it may not carry another weight.
                let old = &mut list.entries[existing as usize];
                if old.weight != entry.weight {
                    return Err(Error::rules(
                        &path,
                        at(),
                        format!("code `{code}` is listed twice with different weights"),
                    )
                    .with_help("keep one weight per code"));
                }
                for c in entry.categories {
                    if let Err(i) = old.categories.binary_search(&c) {
                        old.categories.insert(i, c);
                    }
                }
                continue;
            }
            list.longest_code = list.longest_code.max(code.len());
            list.index.insert(code, list.entries.len() as u32);
            list.entries.push(entry);
        }
        if list.entries.is_empty() {
            return Err(Error::rules(&path, None, "code list has no codes")
                .with_help("a code list needs at least one row under its header"));
        }
        let odd: Vec<&str> = list
            .entries
            .iter()
            .map(|e| e.code.as_str())
            .filter(|c| !looks_like(decl.system, c))
            .collect();
        if odd.len() * 2 > list.entries.len() {
            return Err(Error::rules(
                &path,
                None,
                format!(
                    "code list `{name}` is declared {} but {} of its {} codes do not look like {} codes (e.g. `{}`)",
                    system_name(decl.system),
                    odd.len(),
                    list.entries.len(),
                    system_name(decl.system),
                    odd[0]
                ),
            )
            .with_help(format!(
                "check `system` in [codelists.{name}] of the rule file, and that this is the right file"
            )));
        }
        Ok(list)
    }

    /// The same codes, weights and categories, matched the same way.
    pub fn same_as(&self, other: &Codelist) -> bool {
        self.system == other.system
            && self.match_mode == other.match_mode
            && self.entries == other.entries
            && self.categories == other.categories
    }

    /// For a list matched exactly, its codes (normalised) and entries: a
    /// source with many lists indexes them all at once (see
    /// [`CombinedIndex`]).
    fn exact_codes(&self) -> Option<impl Iterator<Item = (&str, u32)>> {
        (self.match_mode == MatchMode::Exact).then(|| {
            self.index
                .iter()
                .map(|(code, &entry)| (code.as_str(), entry))
        })
    }

    /// The entry a raw code from the data matches, if any.
    pub fn lookup(&self, raw: &str) -> Option<u32> {
        let code = normalise(self.system, raw);
        match self.match_mode {
            MatchMode::Exact => self.index.get(code.as_ref()).copied(),
            MatchMode::Prefix => {
                let longest = self.longest_code.min(code.len());
                (1..=longest)
                    .rev()
                    .filter(|&n| code.is_char_boundary(n))
                    .find_map(|n| self.index.get(&code[..n]).copied())
            }
        }
    }
}

fn system_name(system: CodingSystem) -> &'static str {
    match system {
        CodingSystem::Snomed => "SNOMED CT",
        CodingSystem::Icd10 => "ICD-10",
        CodingSystem::Dmd => "dm+d",
        CodingSystem::Other => "other",
    }
}

/// Does a (normalised) code have the shape of its coding system? SNOMED CT
/// and dm+d ids are 6 to 18 digits; ICD-10 codes a letter then a digit, 3 to
/// 7 characters (prefixes of 1-2 characters are allowed in prefix lists).
fn looks_like(system: CodingSystem, code: &str) -> bool {
    let b = code.as_bytes();
    match system {
        CodingSystem::Snomed | CodingSystem::Dmd => {
            (6..=18).contains(&b.len()) && b.iter().all(u8::is_ascii_digit)
        }
        CodingSystem::Icd10 => {
            (1..=7).contains(&b.len())
                && b[0].is_ascii_uppercase()
                && b.get(1).is_none_or(u8::is_ascii_digit)
                && b.iter().all(u8::is_ascii_alphanumeric)
        }
        CodingSystem::Other => true,
    }
}

/// Weights are held in millionths.
pub const WEIGHT_SCALE: i64 = 1_000_000;

/// Parses a plain decimal (`7.1`, `-0.25`, `3`) into millionths, exactly;
/// `None` for anything else or more than 6 decimal places.
pub fn parse_weight(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || fraction.len() > 6
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    let units = whole.checked_mul(WEIGHT_SCALE)?.checked_add(fraction)?;
    Some(if negative { -units } else { units })
}

/// The line of the row at byte `offset` of `text`, 1-based (column 1):
/// the csv crate's own line count misses blank lines and `\r\n` line
/// ends, so a row's error named a line before it.
fn line_at(text: &str, offset: u64) -> Position {
    let bytes = text.as_bytes();
    // The crate may place a row at the line ends or blank lines before it.
    let mut end = (offset as usize).min(bytes.len());
    while end < bytes.len() && matches!(bytes[end], b'\r' | b'\n') {
        end += 1;
    }
    let newlines = bytes[..end].iter().filter(|&&b| b == b'\n');
    Position {
        line: newlines.count() + 1,
        column: 1,
    }
}

fn csv_error(path: &Path, text: &str, e: csv::Error) -> Error {
    let at = e.position().map(|p| line_at(text, p.byte()));
    Error::rules(path, at, format!("code list is not valid CSV: {e}")).with_help(
        "give every line the header's columns, and quote a field that holds a comma or a quote",
    )
}

/// Code -> (list, entry) of each list that has it.
type ListsOfCode = HashMap<String, Vec<(u32, u32)>, foldhash::fast::FixedState>;

/// Several code lists looked up at once: a code is normalised once per
/// coding system and found in one hash table for every exactly matched
/// list, instead of once per list (the core model matches each GP code
/// against over a hundred lists). Prefix lists are looked up one by one.
pub struct CombinedIndex {
    /// Per coding system: code -> (list, entry) of every exact list.
    exact: Vec<(CodingSystem, ListsOfCode)>,
    /// The lists matched by prefix.
    prefix: Vec<usize>,
}

impl CombinedIndex {
    pub fn new(lists: &[&Codelist]) -> CombinedIndex {
        let mut index = CombinedIndex {
            exact: Vec::new(),
            prefix: Vec::new(),
        };
        for (l, list) in lists.iter().enumerate() {
            let Some(codes) = list.exact_codes() else {
                index.prefix.push(l);
                continue;
            };
            let at = match index.exact.iter().position(|(s, _)| *s == list.system) {
                Some(at) => at,
                None => {
                    index.exact.push((list.system, HashMap::default()));
                    index.exact.len() - 1
                }
            };
            for (code, entry) in codes {
                index.exact[at]
                    .1
                    .entry(code.to_string())
                    .or_default()
                    .push((l as u32, entry));
            }
        }
        index
    }

    /// Calls `found(list, entry)` for each list `raw` matches an entry of
    /// (the same answers as each list's [`Codelist::lookup`]).
    pub fn lookup(&self, lists: &[&Codelist], raw: &str, mut found: impl FnMut(usize, u32)) {
        for (system, codes) in &self.exact {
            if let Some(hits) = codes.get(normalise(*system, raw).as_ref()) {
                hits.iter().for_each(|&(l, e)| found(l as usize, e));
            }
        }
        for &l in &self.prefix {
            if let Some(e) = lists[l].lookup(raw) {
                found(l, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(csv: &str, system: &str, mode: &str, extra: &str) -> Result<Codelist> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("list.csv"), csv).unwrap();
        let decl: syntax::Codelist = toml::from_str(&format!(
            "file = 'list.csv'\nsystem = '{system}'\nmatch = '{mode}'\n{extra}"
        ))
        .unwrap();
        Codelist::load("test", &decl, dir.path())
    }

    #[test]
    fn a_row_error_names_its_own_line_whatever_the_line_ends() {
        let line_of = |csv: &str| match load(csv, "icd10", "exact", "weight_column = 'points'") {
            Err(Error::Rules { at: Some(at), .. }) => at.line,
            other => panic!("{other:?}"),
        };
        // Line 3 holds the weight that is not a number.
        assert_eq!(line_of("code,points\nI50,1\nF00,x\n"), 3);
        assert_eq!(line_of("code,points\r\nI50,1\r\nF00,x\r\n"), 3);
        assert_eq!(line_of("code,points\n\nI50,1\n\nF00,x\n"), 5);
        assert_eq!(line_of("code,points\r\n\r\nI50,1\r\nF00,x\r\n"), 4);
        // A row with the wrong number of fields, after a blank line.
        assert_eq!(line_of("code,points\nI50,1\n\nF00,1,extra\n"), 4);
    }

    #[test]
    fn icd10_prefix_ignores_case_dots_and_spaces() {
        let list = load(
            "code,term\nF00,Dementia\nI50,HF\nI501,LVF\n",
            "icd10",
            "prefix",
            "",
        )
        .unwrap();
        for raw in ["F00.1", "F001", "f00", " f00 1", "F00X", "f00x"] {
            assert_eq!(list.lookup(raw), Some(0), "{raw}");
        }
        assert_eq!(list.lookup("I509"), Some(1));
        // The longest listed prefix wins.
        assert_eq!(list.lookup("I501"), Some(2));
        assert_eq!(list.lookup("F0"), None);
        assert_eq!(list.lookup("G30"), None);
    }

    #[test]
    fn one_index_of_many_lists_answers_as_each_list() {
        let lists = [
            load(
                "code,term\n22298006,MI\n195080001,AF\n",
                "snomed",
                "exact",
                "",
            )
            .unwrap(),
            load("code,term\n195080001,AF\n", "snomed", "exact", "").unwrap(),
            load("code,term\nF00,Dementia\nI50,HF\n", "icd10", "prefix", "").unwrap(),
            load("code,term\nI50,HF\nR54,Frailty\n", "icd10", "exact", "").unwrap(),
        ];
        let lists: Vec<&Codelist> = lists.iter().collect();
        let index = CombinedIndex::new(&lists);
        let raws = [
            "22298006",
            " 195080001 ",
            "I50",
            "i50",
            "I509",
            "R54X",
            "r54",
            "F00.1",
            "999",
            "",
        ];
        for raw in raws {
            let mut found = vec![None; lists.len()];
            index.lookup(&lists, raw, |l, e| found[l] = Some(e));
            let each: Vec<Option<u32>> = lists.iter().map(|l| l.lookup(raw)).collect();
            assert_eq!(found, each, "{raw:?}");
        }
        // Not vacuous: some codes are in several lists, of both kinds.
        let mut hits = 0;
        index.lookup(&lists, "I50", |_, _| hits += 1);
        assert_eq!(hits, 2);
    }

    #[test]
    fn snomed_is_exact_after_trim() {
        let list = load(
            "\u{feff}code,term\r\n84114007,Heart failure\r\n",
            "snomed",
            "exact",
            "",
        )
        .unwrap();
        assert_eq!(list.lookup("84114007"), Some(0));
        assert_eq!(list.lookup(" 84114007 "), Some(0));
        assert_eq!(list.lookup("8411400"), None);
        assert_eq!(list.lookup("841140071"), None);
    }

    #[test]
    fn weights_are_exact_decimals() {
        assert_eq!(parse_weight("7.1"), Some(7_100_000));
        assert_eq!(parse_weight("0.1"), Some(100_000));
        assert_eq!(parse_weight("-0.25"), Some(-250_000));
        assert_eq!(parse_weight("3"), Some(3_000_000));
        assert_eq!(parse_weight(".5"), Some(500_000));
        assert_eq!(parse_weight("1.0000001"), None);
        for bad in ["", ".", "1e3", "x", "1.2.3", "--1"] {
            assert_eq!(parse_weight(bad), None, "{bad}");
        }
        // 0.1 added 50 times is exactly 5 in millionths, unlike in f64.
        let sum: i64 = (0..50).map(|_| parse_weight("0.1").unwrap()).sum();
        assert_eq!(sum, 5 * WEIGHT_SCALE);
    }

    #[test]
    fn a_list_of_the_wrong_coding_system_is_refused() {
        let e = load(
            "code,term\n84114007,HF\n195967001,Asthma\n",
            "icd10",
            "prefix",
            "",
        )
        .unwrap_err();
        assert!(e.to_string().contains("declared ICD-10 but 2 of its 2 codes do not look like ICD-10 codes (e.g. `84114007`)"), "{e}");
        let e = load("code,term\nI50,HF\nJ45,Asthma\n", "snomed", "exact", "").unwrap_err();
        assert!(e.to_string().contains("declared SNOMED CT"), "{e}");
        // A stray odd code is tolerated.
        assert!(
            load(
                "code,term\nI50,HF\nJ45,Asthma\n8411,x\n",
                "icd10",
                "prefix",
                ""
            )
            .is_ok()
        );
    }

    #[test]
    fn a_code_may_score_several_categories_but_not_two_weights() {
        let list = load(
            "code,term,deficit\n100100,Diabetic kidney disease,diabetes\n100100,Diabetic kidney disease,ckd\n200200,CKD 3,ckd\n100100,again,diabetes\n",
            "snomed",
            "exact",
            "category_column = 'deficit'",
        )
        .unwrap();
        assert_eq!(list.entries.len(), 2);
        assert_eq!(list.entries[0].categories, vec![0, 1]);
        assert_eq!(list.categories, vec!["diabetes", "ckd"]);
    }

    #[test]
    fn weights_and_categories() {
        let list = load(
            "code,term,points,deficit\nA,a,1.5,falls\nB,b,2,falls\nC,c,0.1,anaemia\n",
            "other",
            "exact",
            "weight_column = 'points'\ncategory_column = 'deficit'",
        )
        .unwrap();
        assert_eq!(list.entries[0].weight, Some(1_500_000));
        assert_eq!(list.entries[1].weight, Some(2_000_000));
        assert_eq!(list.categories, vec!["falls", "anaemia"]);
        assert_eq!(list.entries[2].categories, vec![1]);
    }

    #[test]
    fn conflicting_duplicates_and_missing_columns_are_errors() {
        let e = load(
            "code,term,w\nA,a,1\nA,a,2\n",
            "other",
            "exact",
            "weight_column = 'w'",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(":3:1: code `A` is listed twice"),
            "{e}"
        );
        let e = load("id,term\nA,a\n", "other", "exact", "").unwrap_err();
        assert!(
            e.to_string()
                .contains("no `code` column (its columns are: id, term)"),
            "{e}"
        );
        let e = load(
            "code,term,w\nA,a,x\n",
            "other",
            "exact",
            "weight_column = 'w'",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a decimal number"), "{e}");
    }
}
