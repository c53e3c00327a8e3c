//! Command-line arguments (parsed by clap) and the commands they run.
//!
//! Arguments are turned into validated settings first (paths, dates, thread
//! counts), then handed to the library; nothing here knows how a cohort is
//! computed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use strata::commands::{self, diff, explain, init, progress};
use strata::error::{Error, Result};
use strata::{dates, engine, generate, input, output, rules};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Risk stratification for Population Health Management"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Print only warnings and errors; no progress bars, no summary.
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a model over a data folder and write cohort lists.
    Run(RunArgs),
    /// Write a synthetic population in the data contract.
    Generate(GenerateArgs),
    /// Run the assurance tests written inside rule files.
    Test(TestArgs),
    /// Check rule files without running them.
    Check(CheckArgs),
    /// Show how one person's features and cohorts were derived.
    Explain(ExplainArgs),
    /// Print the JSON Schema of rule files, for editors.
    Schema,
    /// Compare two runs' outputs: who entered and left each cohort.
    Diff(DiffArgs),
    /// List the bundled models (run one with --rules NAME).
    Models,
    /// Write an editable copy of the bundled models into a new folder.
    Init(InitArgs),
    /// Write every output of `run` (lists, workbooks, report, manifest) from
    /// a per-person table computed elsewhere, e.g. by `compile`'s SQL.
    Publish(PublishArgs),
    /// Back-test cohorts and scores: run as of past dates and compare with
    /// what happened next (the rule files' [outcomes]).
    Evaluate(EvaluateArgs),
    /// Compile rule files to one SQL script (Spark SQL or DuckDB) that
    /// computes the per-person table of `run` on a SQL engine.
    Compile(CompileArgs),
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// Rule files (or bundled model names), as for `run`; they must define
    /// the outcomes named.
    #[arg(long, required = true)]
    pub rules: Vec<PathBuf>,
    /// Folder of input Parquet tables, with events after the as-of dates.
    #[arg(long, default_value = "sample-data")]
    pub data: PathBuf,
    /// A date to predict from, YYYY-MM-DD (repeatable); or give a series
    /// with --from, --to and --every.
    #[arg(long = "as-of", required_unless_present = "from")]
    pub as_of: Vec<String>,
    /// The first date of a series of as-of dates, YYYY-MM-DD.
    #[arg(long, requires_all = ["to", "every"])]
    pub from: Option<String>,
    /// The last day a series of as-of dates may reach, YYYY-MM-DD.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// The step of a series of as-of dates: "3 months", "1 year", "28 days".
    #[arg(long, requires = "from")]
    pub every: Option<String>,
    /// An outcome of the rule files to evaluate against (repeatable).
    #[arg(long = "outcome", required = true)]
    pub outcomes: Vec<String>,
    /// A numeric feature to evaluate as a score (repeatable), besides those
    /// the rule files mark with `evaluate = "score"`; every cohort is
    /// evaluated.
    #[arg(long = "score")]
    pub scores: Vec<String>,
    /// A feature that is a probability (0 to 1), evaluated as a score and
    /// for calibration by decile and the Brier score (repeatable), besides
    /// those the rule files mark with `evaluate = "probability"`.
    #[arg(long = "probability")]
    pub probabilities: Vec<String>,
    /// Override a parameter, as for `run`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// A second rule set to compare on the same people, dates and outcomes
    /// (repeatable, as --rules); with only --compare-set, the same rules.
    #[arg(long = "compare")]
    pub compare: Vec<PathBuf>,
    /// A parameter of the compared rule set, e.g. --compare-set
    /// hiu_threshold=4 (repeatable).
    #[arg(long = "compare-set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub compare_set: Vec<(String, String)>,
    /// Folder to create for predictions.parquet, evaluation.json and
    /// evaluation.html.
    #[arg(long, default_value = "evaluation")]
    pub out: PathBuf,
    /// Small-number suppression of the counts: hes (default), ehrql or none.
    #[arg(long, default_value = "hes", value_parser = parse_suppression)]
    pub suppression: strata::suppress::Suppression,
    /// Roughly how much memory one scan's per-person state may take, e.g.
    /// 8GiB or 512MiB: dates beyond it are split over several scans, each
    /// reading every table again. Each date's evaluated people are held
    /// besides while the date is worked out (with --compare, until the
    /// second rule set's scan is done).
    #[arg(long, default_value = "4GiB", value_parser = parse_size)]
    pub scan_memory: usize,
}

#[derive(Args)]
pub struct PublishArgs {
    /// The per-person table (a Parquet file or folder of part files) that
    /// the SQL compiled from the same rule files wrote: the columns of
    /// patients.parquet. Only the population table is read from --data.
    #[arg(long)]
    pub patients_table: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args)]
pub struct CompileArgs {
    /// Rule files (or bundled model names), as for `run --rules`.
    #[arg(required = true)]
    pub rules: Vec<PathBuf>,
    /// The SQL dialect: spark or duckdb.
    #[arg(long, value_parser = parse_target)]
    pub target: strata::sql::Target,
    /// A folder of Parquet tables with the columns and types the script
    /// will read: the extract itself or a sample of it (only the files'
    /// footers are read, and the as-of date when --as-of is not given).
    #[arg(long, default_value = "sample-data")]
    pub data: PathBuf,
    /// Reference date, YYYY-MM-DD (default: the latest event date in --data).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Override a parameter, as for `run`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// What the script reads for a table, e.g. --table
    /// patients=catalog.phm.patients (repeatable); tables not named are
    /// read from the Parquet files of --data.
    #[arg(long = "table", value_name = "NAME=TABLE", value_parser = parse_setting)]
    pub tables: Vec<(String, String)>,
    /// Why the outputs are made, as for `run`: decides who is left out.
    #[arg(long, value_parser = parse_purpose)]
    pub purpose: Option<rules::Purpose>,
    /// Write the script to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct InitArgs {
    /// Folder to create (it must not exist, or be empty).
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct DiffArgs {
    /// The earlier run's output folder.
    pub previous: PathBuf,
    /// The later run's output folder.
    pub new: PathBuf,
    /// Folder for the comparison (replaced whole, atomically).
    #[arg(long, default_value = "diff")]
    pub out: PathBuf,
    /// Compare runs made with different rule files.
    #[arg(long)]
    pub allow_different_rules: bool,
    /// Small-number suppression of the counts printed and in summary.csv:
    /// hes, ehrql or none.
    #[arg(long, default_value = "hes", value_parser = parse_suppression)]
    pub suppression: strata::suppress::Suppression,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The person's id, as in the population table.
    #[arg(long)]
    pub person: String,
    /// Rule file(s), as for `run`.
    #[arg(long, default_value = "core")]
    pub rules: Vec<PathBuf>,
    /// Folder of input Parquet tables.
    #[arg(long, default_value = "sample-data")]
    pub data: PathBuf,
    /// Reference date, YYYY-MM-DD (default: the latest activity date in the data).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Override a parameter, as for `run`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// Why the outputs are made, as for `run`: a person that purpose keeps
    /// off the lists is not explained either.
    #[arg(long, value_parser = parse_purpose)]
    pub purpose: Option<rules::Purpose>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Rule files (or bundled model names) to check.
    #[arg(required = true)]
    pub rules: Vec<PathBuf>,
    /// Also check this data folder as a run reads it before its scan: the
    /// tables, columns and types, the population, the registrations and
    /// PCN names.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --data: the run's as-of date, YYYY-MM-DD (default, as for
    /// `run`: the latest activity date in the data).
    #[arg(long, requires = "data")]
    pub as_of: Option<String>,
}

#[derive(Args)]
pub struct TestArgs {
    /// Rule files (or bundled model names) whose [[tests]] to run.
    #[arg(required = true)]
    pub rules: Vec<PathBuf>,
    /// Keep each test run's data folder under DIR/N/ (with run.json: its
    /// as-of date and --set values), to check another engine on it.
    #[arg(long, value_name = "DIR")]
    pub keep_data: Option<PathBuf>,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of registered persons.
    #[arg(long)]
    pub patients: usize,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created; an earlier generator output there is replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Last day of the three years of activity, YYYY-MM-DD.
    #[arg(long, default_value = generate::DEFAULT_END_DATE)]
    pub end_date: String,
}

#[derive(Args)]
pub struct RunArgs {
    /// A bundled model's name (`strata models` lists them) or a rule file's
    /// path; repeat to run several models together. Default: the bundled
    /// core model.
    #[arg(long, default_value = "core")]
    pub rules: Vec<PathBuf>,
    /// Folder of input Parquet tables (the default is the synthetic sample
    /// in a clone of the repository).
    #[arg(long, default_value = "sample-data")]
    pub data: PathBuf,
    /// Output folder (replaced whole, atomically).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Reference date, YYYY-MM-DD (default for `run`: the latest activity
    /// date in the data; `publish` needs it given).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Override a parameter of the rule file, e.g. --set hiu_threshold=3 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// Small-number suppression of aggregate counts (default: the rule
    /// file's `[output] suppression`, else hes): hes, ehrql or none.
    #[arg(long, value_parser = parse_suppression)]
    pub suppression: Option<strata::suppress::Suppression>,
    /// Why the outputs are made (default: the rule file's `[output] purpose`,
    /// else direct_care): direct_care leaves people with a type 1 opt-out
    /// out of every output, and keeps people with a National Data Opt-out
    /// on the lists but out of the counts and the report; secondary_use
    /// leaves both out of every output.
    #[arg(long, value_parser = parse_purpose)]
    pub purpose: Option<rules::Purpose>,
    /// Print a machine-readable summary (summary.json) on stdout instead of
    /// the table.
    #[arg(long)]
    pub json: bool,
    /// An earlier run's output folder: lists get a `new` column marking
    /// people who were not on that PCN's list of the cohort then.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// Exit with 1 when any input row was skipped (null ids or dates, dates
    /// before 1900, unknown or duplicated persons, unusable measured
    /// values, registrations no date can use) or value read as unknown (a
    /// birth date before 1900); the output is still written.
    #[arg(long)]
    pub strict: bool,
}

/// Exit code of assurance tests that ran and failed.
const TESTS_FAILED: u8 = 1;
/// Exit code of a run that completed but skipped rows, under `--strict`.
const STRICT_REJECTED: u8 = 1;
/// Exit code of user errors, including those `check` reports itself.
pub const USER_ERROR: u8 = 2;
/// Exit code of internal errors (bugs in strata).
pub const INTERNAL_ERROR: u8 = 3;

/// Runs the command and says how it ended; `Err` for an error that stopped it.
pub fn run(cli: &Cli) -> Result<ExitCode> {
    let threads = setup_threads(cli.threads)?;
    match &cli.command {
        Command::Run(args) => run_model(args, threads, cli.quiet, None),
        Command::Publish(args) => {
            run_model(&args.run, threads, cli.quiet, Some(&args.patients_table))
        }
        Command::Generate(args) => run_generate(args, cli.quiet).map(|_| ExitCode::SUCCESS),
        Command::Test(args) => run_tests(args),
        Command::Check(args) => Ok(run_check(args)),
        Command::Explain(args) => run_explain(args).map(|_| ExitCode::SUCCESS),
        Command::Diff(args) => run_diff(args, cli.quiet).map(|_| ExitCode::SUCCESS),
        Command::Schema => {
            print_stdout(&rules::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Models => run_models().map(|_| ExitCode::SUCCESS),
        Command::Init(args) => run_init(args, cli.quiet).map(|_| ExitCode::SUCCESS),
        Command::Compile(args) => run_compile(args, cli.quiet).map(|_| ExitCode::SUCCESS),
        Command::Evaluate(args) => {
            #[cfg(target_os = "linux")]
            crate::memory::keep_freed_memory();
            run_evaluate(args, cli.quiet).map(|_| ExitCode::SUCCESS)
        }
    }
}

/// What every command that runs a model needs, validated once from its
/// arguments (the `--rules` resolved and read with `--set` and `--purpose`,
/// the as-of date parsed), before any work starts: the arguments clap
/// parsed are the low level, these the high.
struct Settings {
    model: rules::Model,
    as_of: Option<chrono::NaiveDate>,
}

impl Settings {
    fn new(
        rules: &[PathBuf],
        set: &[(String, String)],
        purpose: Option<rules::Purpose>,
        as_of: &Option<String>,
    ) -> Result<Settings> {
        Settings::set_by(rules, (set, "--set"), purpose, as_of)
    }

    /// [`Settings::new`] with the parameters given by `flag`, which errors
    /// name (`--compare-set` for `evaluate`'s compared rule set).
    fn set_by(
        rules: &[PathBuf],
        (set, flag): (&[(String, String)], &str),
        purpose: Option<rules::Purpose>,
        as_of: &Option<String>,
    ) -> Result<Settings> {
        let as_of = match as_of {
            Some(text) => Some(parse_date_arg("--as-of", text)?),
            None => None,
        };
        if let Some(d) = as_of {
            warn_if_after_today(d);
        }
        // The last would win without a word.
        let twice = set
            .iter()
            .enumerate()
            .find(|(i, (name, _))| set[..*i].iter().any(|(n, _)| n == name));
        if let Some((_, (name, _))) = twice {
            return Err(Error::usage(format!("{flag} `{name}` is given twice"))
                .with_help("give each parameter once"));
        }
        let mut model = rules::load_all_set_by(&rule_paths(rules)?, set, flag)?;
        model.purpose_set = purpose;
        Ok(Settings { model, as_of })
    }
}

/// What each `--rules` argument names: a bundled model (a bare name such as
/// `core`) or a rule file (a path). A bare name that is neither is refused
/// with the bundled names.
fn rule_paths(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    args.iter()
        .map(|arg| {
            if let Some(path) = rules::bundled::model_path(arg) {
                return Ok(path);
            }
            match rules::bundled::bare_name(arg) {
                Some(name) if !arg.is_file() => Err(Error::usage(format!(
                    "no bundled model is called `{name}`{}",
                    rules::did_you_mean(name, rules::bundled::names().into_iter())
                ))
                .with_help(format!(
                    "bundled models: {}; a rule file is named by its path (e.g. ./{name}.toml)",
                    rules::bundled::names().join(", ")
                ))),
                _ => Ok(arg.clone()),
            }
        })
        .collect()
}

/// `strata models`: each bundled model with its title, version and source.
fn run_models() -> Result<()> {
    let mut text = String::from(
        "Bundled models (run one with --rules NAME; `strata init DIR` writes an editable copy):\n",
    );
    for name in rules::bundled::names() {
        let path = rules::bundled::model_path(std::path::Path::new(name))
            .ok_or_else(|| Error::Internal(format!("bundled model {name} has no file")))?;
        let model = rules::load(&path)?;
        let m = &model.meta;
        text.push_str(&format!(
            "\n  {name} ({})\n    {}\n    source: {}\n",
            m.version.as_deref().unwrap_or("no version"),
            m.title,
            m.source
        ));
    }
    print_stdout(&text);
    Ok(())
}

/// `strata init DIR`: the bundled models as files to edit and keep under
/// version control, with the schema line for editors and a README.
fn run_init(args: &InitArgs, quiet: bool) -> Result<()> {
    let written = init::write_copy(&args.dir)?;
    if !quiet {
        print_stdout(&format!(
            "Wrote {written} files into {dir}: the bundled models, their code lists, README.md and rule-file.schema.json.\n\
             Try: strata test {dir}/core.toml, then strata run --rules {dir}/core.toml --data DATA\n",
            dir = args.dir.display()
        ));
    }
    Ok(())
}

fn run_explain(args: &ExplainArgs) -> Result<()> {
    let Settings { model, as_of } =
        Settings::new(&args.rules, &args.set, args.purpose, &args.as_of)?;
    let quiet = progress::Terminal::new(true);
    let (results, explained) =
        engine::run_traced(&model, &args.data, as_of, &quiet, Some(&args.person))?;
    let explained =
        explained.ok_or_else(|| Error::Internal("explain ran without a trace".into()))?;
    // No more of a person than a list would hold: someone a list withholds
    // for their opt-out (a type 1 opt-out under direct care; either under
    // the other purposes) is not explained either.
    if results.opt_outs.withheld_from_lists.value(explained.row) {
        return Err(Error::usage(format!(
            "person `{}` is not explained: the `{}` purpose keeps them off every list, and strata explain shows no more of a person than a list would",
            args.person,
            results.opt_outs.purpose.name()
        ))
        .with_help("explain another person (who is kept off the lists, and why, is in docs/rules.md under [output])"));
    }
    print_stdout(&explain::render(&results, &explained));
    Ok(())
}

/// Checks every file, reporting every error and warning found, rather than
/// stopping at the first file with a problem. An error already shown for
/// an earlier file (one in the data, which every file reads) is not shown
/// again: the file is named and pointed to it.
fn run_check(args: &CheckArgs) -> ExitCode {
    let mut worst = 0;
    let mut shown: Vec<String> = Vec::new();
    let paths = match rule_paths(&args.rules) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", e.render());
            return ExitCode::from(USER_ERROR);
        }
    };
    let as_of = match args.as_of.as_deref().map(|d| parse_date_arg("--as-of", d)) {
        Some(Err(e)) => {
            eprintln!("{}", e.render());
            return ExitCode::from(USER_ERROR);
        }
        Some(Ok(d)) => {
            warn_if_after_today(d);
            Some(d)
        }
        None => None,
    };
    for path in &paths {
        let checked = rules::load(path).and_then(|model| {
            input::unshadowed(&model)?;
            match &args.data {
                Some(data) => {
                    // What a run reads before its scan, as it reads it.
                    let plan = engine::plan::plan(&model, data, as_of)?;
                    engine::registrations::check(data, &plan.population)?;
                    input::pcns::names(data)?;
                }
                None => rules::typing::check_types(&model)?,
            }
            Ok(rules::unused(&model))
        });
        match checked {
            Ok(warnings) => {
                for w in &warnings {
                    eprintln!("{}", w.render_as("warning"));
                }
                print_stdout(&format!(
                    "{}: ok ({} warnings)\n",
                    path.display(),
                    warnings.len()
                ));
            }
            Err(e) => {
                let text = e.render();
                if shown.contains(&text) {
                    eprintln!("{}: the same error as above", path.display());
                } else {
                    eprintln!("{text}");
                    shown.push(text);
                }
                worst = worst.max(if e.is_user_error() {
                    USER_ERROR
                } else {
                    INTERNAL_ERROR
                });
            }
        }
    }
    ExitCode::from(worst)
}

fn run_tests(args: &TestArgs) -> Result<ExitCode> {
    let (mut passed, mut failed) = (0, 0);
    let mut report = String::new();
    for path in &rule_paths(&args.rules)? {
        let model = rules::load(path)?;
        let outcomes = commands::test::run_keeping(&model, args.keep_data.as_deref())?;
        for outcome in &outcomes {
            if outcome.failures.is_empty() {
                passed += 1;
            } else {
                failed += 1;
                report.push_str(&format!("FAILED {}: {}\n", path.display(), outcome.name));
                for f in &outcome.failures {
                    report.push_str(&format!("    {f}\n"));
                }
            }
        }
        let bad = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
        report.push_str(&format!(
            "{}: {} tests, {} failed\n",
            path.display(),
            outcomes.len(),
            bad
        ));
    }
    report.push_str(&format!("{passed} passed, {failed} failed\n"));
    print_stdout(&report);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(TESTS_FAILED)
    })
}

/// The most worker threads `--threads` starts.
const MAX_THREADS: usize = 1024;

fn setup_threads(requested: Option<usize>) -> Result<usize> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("worker {i}"));
    if let Some(n) = requested {
        // Far more threads than cores only thrash: 100,000 had a 2-core
        // machine at a load of 760 for ten minutes.
        if n == 0 || n > MAX_THREADS {
            return Err(Error::usage(format!(
                "--threads must be from 1 to {MAX_THREADS}, not {n}"
            ))
            .with_help("leave --threads out to use every core"));
        }
        builder = builder.num_threads(n);
    }
    builder
        .build_global()
        .map_err(|e| Error::Internal(format!("starting the thread pool: {e}")))?;
    Ok(rayon::current_num_threads())
}

fn parse_suppression(text: &str) -> std::result::Result<strata::suppress::Suppression, String> {
    strata::suppress::Suppression::parse(text)
        .ok_or_else(|| format!("`{text}` is not a suppression method: write hes, ehrql or none"))
}

/// A size in bytes from a number and a unit: B, KiB, MiB, GiB or TiB
/// (powers of 1024), or KB, MB, GB or TB (powers of 1000), in any case,
/// with or without a space; a fraction allowed (1.5GiB).
fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let refuse = || {
        format!(
            "`{text}` is not a size: write a number and a unit (B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB), e.g. 8GiB or 512MiB"
        )
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(refuse)?;
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| refuse())?;
    let unit: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kib" => 1024f64,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(refuse()),
    };
    let bytes = number * unit;
    if bytes < 1.0 {
        return Err(format!(
            "`{text}` is no memory for a scan: give more, e.g. 8GiB"
        ));
    }
    if bytes >= usize::MAX as f64 {
        return Err(format!(
            "`{text}` is more than this machine can address: give less, e.g. 8GiB"
        ));
    }
    Ok(bytes as usize)
}

fn parse_target(text: &str) -> std::result::Result<strata::sql::Target, String> {
    strata::sql::Target::parse(text).ok_or_else(|| "expected spark or duckdb".to_string())
}

/// The dates `from`, `from + every`, `from + 2 every`, ... up to `to`,
/// each counted from `from`: the same day of the month, or the month's
/// last day where it is shorter (from 31 January by one month: 29 February
/// in a leap year, then 31 March).
fn date_series(
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    every: &str,
) -> Result<Vec<chrono::NaiveDate>> {
    let bad = || {
        Error::usage(format!("--every {every:?} is not a step"))
            .with_help("write a number and a unit: \"3 months\", \"1 year\", \"28 days\"")
    };
    let (n, unit) = every.trim().split_once(' ').ok_or_else(bad)?;
    let n: u32 = n.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?;
    let unit = unit.trim().trim_end_matches('s');
    let step = |k: u32| -> Option<chrono::NaiveDate> {
        let k = k.checked_mul(n)?;
        match unit {
            "day" => from.checked_add_days(chrono::Days::new(u64::from(k))),
            "month" => from.checked_add_months(chrono::Months::new(k)),
            "year" => from.checked_add_months(chrono::Months::new(k.checked_mul(12)?)),
            _ => None,
        }
    };
    if step(1).is_none() {
        return Err(bad());
    }
    if to < from {
        return Err(Error::usage(format!("--to {to} is before --from {from}"))
            .with_help("give the earlier date with --from"));
    }
    let dates: Vec<chrono::NaiveDate> = (0..).map_while(|k| step(k).filter(|d| *d <= to)).collect();
    if dates.len() > 120 {
        return Err(Error::usage(format!(
            "--from {from} --to {to} --every {every} makes {} as-of dates",
            dates.len()
        ))
        .with_help("evaluate at most 120 dates at once: take a longer step"));
    }
    Ok(dates)
}

/// `strata evaluate`: cohorts and scores against what happened next.
fn run_evaluate(args: &EvaluateArgs, quiet: bool) -> Result<()> {
    let Settings { model, .. } = Settings::new(&args.rules, &args.set, None, &None)?;
    let compare = if args.compare.is_empty() && args.compare_set.is_empty() {
        None
    } else {
        let rules = if args.compare.is_empty() {
            &args.rules
        } else {
            &args.compare
        };
        Some(Settings::set_by(rules, (&args.compare_set, "--compare-set"), None, &None)?.model)
    };
    let mut dates = args
        .as_of
        .iter()
        .map(|d| parse_date_arg("--as-of", d))
        .collect::<Result<Vec<_>>>()?;
    if let (Some(from), Some(to), Some(every)) = (&args.from, &args.to, &args.every) {
        dates.extend(date_series(
            parse_date_arg("--from", from)?,
            parse_date_arg("--to", to)?,
            every,
        )?);
    }
    // Scores: those asked for, then those the rule files mark.
    let marked = |as_what: strata::rules::EvaluateAs| {
        model
            .features
            .iter()
            .filter(move |f| f.evaluate == Some(as_what))
            .map(|f| f.name.clone())
    };
    let mut probabilities = args.probabilities.clone();
    probabilities.extend(marked(strata::rules::EvaluateAs::Probability));
    let mut scores: Vec<String> = args.scores.clone();
    scores.extend(marked(strata::rules::EvaluateAs::Score));
    scores.extend(probabilities.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    scores.retain(|s| seen.insert(s.clone()));
    probabilities.sort();
    probabilities.dedup();
    let request = commands::evaluate::Request {
        data: &args.data,
        dates,
        outcomes: args.outcomes.clone(),
        scores,
        probabilities,
        suppression: args.suppression,
        compare: compare.as_ref(),
        scan_memory: args.scan_memory,
    };
    let terminal = progress::Terminal::new(quiet);
    let evaluation = commands::evaluate::run(&model, &request, &args.out, &terminal)?;
    if !quiet {
        print_stdout(&commands::evaluate::render(&evaluation, &args.out));
    }
    Ok(())
}

/// `strata compile`: the rule files as one SQL script.
fn run_compile(args: &CompileArgs, quiet: bool) -> Result<()> {
    let Settings { model, as_of } =
        Settings::new(&args.rules, &args.set, args.purpose, &args.as_of)?;
    let options = strata::sql::Options {
        target: args.target,
        as_of,
        tables: args.tables.clone(),
    };
    let compiled = strata::sql::compile(&model, &args.data, &options)?;
    match &args.out {
        Some(path) => {
            // Written beside, then renamed: a failed write never leaves half
            // a script where a good one stood.
            let partial = path.with_extension("sql.partial");
            std::fs::write(&partial, &compiled.sql)
                .and_then(|_| std::fs::rename(&partial, path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&partial);
                    Error::io(path, "cannot write the script", e)
                })?;
            if !quiet {
                eprintln!(
                    "Wrote {} ({} as of {}{}).",
                    path.display(),
                    args.target.name(),
                    compiled.as_of,
                    if compiled.as_of_inferred {
                        ", the latest event date in --data"
                    } else {
                        ""
                    }
                );
            }
        }
        None => print_stdout(&compiled.sql),
    }
    Ok(())
}

fn parse_purpose(text: &str) -> std::result::Result<rules::Purpose, String> {
    rules::Purpose::parse(text)
        .ok_or_else(|| format!("`{text}` is not a purpose: write direct_care or secondary_use"))
}

fn parse_setting(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

/// An `--as-of` after today is allowed (a test of what a list would be),
/// but is more often a mistyped year: every age and window moves with it.
fn warn_if_after_today(as_of: chrono::NaiveDate) {
    let today = chrono::Local::now().date_naive();
    if as_of > today + chrono::Days::new(1) {
        tracing::warn!(
            "--as-of {as_of} is after today ({today}): ages and windows are as of that date, though nothing after today is recorded yet; check the year"
        );
    }
}

/// A date given on the command line: YYYY-MM-DD, its year from 1900 (the
/// first day an event may have; chrono alone also takes `-2025-01-01`,
/// `+10000-01-01` and `0001-01-01`, on which no one is alive).
fn parse_date_arg(flag: &str, text: &str) -> Result<chrono::NaiveDate> {
    let plain = text.trim().len() == 10 && text.trim().as_bytes()[0].is_ascii_digit();
    plain
        .then(|| dates::parse_date(text))
        .flatten()
        .filter(|d| chrono::Datelike::year(d) >= 1900)
        .ok_or_else(|| {
            Error::usage(format!("{flag} `{text}` is not a date from 1900 on"))
                .with_help("write it as YYYY-MM-DD, e.g. 2025-03-31")
        })
}

fn run_generate(args: &GenerateArgs, quiet: bool) -> Result<()> {
    if args.patients == 0 {
        // Its tables would have no rows, which every command refuses.
        return Err(Error::usage("--patients must be at least 1")
            .with_help("give the number of registered persons to make, e.g. --patients 10000"));
    }
    let options = generate::GenerateOptions {
        patients: args.patients,
        seed: args.seed,
        out: args.out.clone(),
        end_date: parse_date_arg("--end-date", &args.end_date)?,
    };
    let started = std::time::Instant::now();
    let summary = generate::generate(&options)?;
    if !quiet {
        let mut text = format!(
            "Generated {} persons (seed {}) in {:.1} s into {}\n",
            args.patients,
            args.seed,
            started.elapsed().as_secs_f64(),
            args.out.display()
        );
        for (table, rows) in &summary.tables {
            text.push_str(&format!("  {table:16} {rows:>12} rows\n"));
        }
        print_stdout(&text);
    }
    Ok(())
}

/// `strata run`, or with `published` (`strata publish`), the same outputs
/// from a per-person table computed elsewhere.
fn run_model(
    args: &RunArgs,
    threads: usize,
    quiet: bool,
    published: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let Settings { model, as_of } =
        Settings::new(&args.rules, &args.set, args.purpose, &args.as_of)?;
    if published.is_some() && as_of.is_none() {
        return Err(Error::usage(
            "strata publish needs --as-of: the per-person table does not say which date it was computed for",
        )
        .with_help("give the --as-of date the table was compiled for (the script's first lines say it)"));
    }
    output::publish::check_target(&args.out, output::publish::Kind::Run)?;
    // Held until the run ends: no second run writes this folder meanwhile.
    let _lock = output::publish::Lock::acquire(&args.out)?;
    // Read before the run: it may be the folder this run replaces.
    let previous = args
        .previous
        .as_deref()
        .map(output::previous::SavedRun::open)
        .transpose()?;
    let purpose = model.purpose().0;
    if let Some(previous) = &previous
        && previous.purpose() != purpose.name()
    {
        return Err(Error::usage(format!(
            "--previous {} was made for {}, this run for {}: people with an opt-out would be marked new",
            previous.dir.display(),
            previous.purpose(),
            purpose.name()
        ))
        .with_help("give a previous run made for the same purpose"));
    }
    // Read before the run, so that a bad table stops it at once, not after
    // the scan.
    let (pcn_names, pcns) = input::pcns::names(&args.data)?;
    let files: Vec<String> = model
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    tracing::info!(model = %model.meta.name, rules = %files.join(", "), data = %args.data.display(), threads, "starting run");
    let terminal = progress::Terminal::new(quiet);
    // `patients.parquet`, encoded as the run makes each column.
    let patients = output::patients::Table::new(&model);
    let results = match (published, as_of) {
        (Some(table), Some(as_of)) => engine::published::results(&model, &args.data, table, as_of)?,
        _ => engine::run_into(&model, &args.data, as_of, &terminal, &patients)?,
    };
    if results.plan.as_of_inferred {
        tracing::info!(as_of = %results.plan.as_of, "as-of date taken from the latest activity in the data");
    }
    for (stage, took) in &results.timings {
        tracing::info!(stage, seconds = took.as_secs_f64(), "stage done");
    }
    let info = output::RunInfo {
        data: &args.data,
        threads,
        pcn_names,
        pcns,
        suppression: args
            .suppression
            .or(model.suppression.map(|(s, _)| s))
            .unwrap_or_default(),
        run_date: chrono::Local::now().date_naive(),
        previous,
        progress: &terminal,
    };
    let manifest = output::write(&results, &args.out, &info, patients)?;
    // The process ends next and its memory goes back whole: freeing the
    // results piece by piece first took a core about 60 ms at 5M persons.
    std::mem::forget(results);
    if args.json {
        print_stdout(&(manifest.summary_json(&args.out) + "\n"));
    } else if !quiet {
        print_stdout(&commands::run::render(&manifest, &args.out));
    }
    let skipped = manifest.skipped_rows();
    let unknown = manifest.values_read_as_unknown();
    if args.strict && skipped + unknown > 0 {
        let what = match (skipped, unknown) {
            (0, _) => format!("{unknown} input values were read as unknown (see `read_as_unknown`"),
            (_, 0) => format!("{skipped} input rows were skipped (see `rejected`"),
            _ => format!(
                "{skipped} input rows were skipped and {unknown} values read as unknown (see `rejected` and `read_as_unknown`"
            ),
        };
        eprintln!(
            "error: {what} in {}) for problems in the data; --strict makes that a failure\n  help: fix the rows, or run without --strict to accept them",
            args.out.join("manifest.json").display()
        );
        return Ok(ExitCode::from(STRICT_REJECTED));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_diff(args: &DiffArgs, quiet: bool) -> Result<()> {
    let old = output::previous::SavedRun::open(&args.previous)?;
    let new = output::previous::SavedRun::open(&args.new)?;
    let diff = diff::compare(&old, &new, args.allow_different_rules)?;
    // A --out that cannot be replaced is told as such, not as a folder
    // another run holds.
    output::publish::check_target(&args.out, output::publish::Kind::Diff)?;
    let _lock = output::publish::Lock::acquire(&args.out)?;
    diff.write(&old, &new, &args.out, args.suppression)?;
    if !quiet {
        print_stdout(&diff.render(&old, &new, args.suppression));
    }
    Ok(())
}

/// Prints to stdout; a closed pipe (`strata run | head`) is not an error.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_read_in_either_kind_of_unit() {
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5gib"), Ok(3 << 29));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("8GB"), Ok(8_000_000_000));
        assert_eq!(parse_size("250mb"), Ok(250_000_000));
        assert_eq!(parse_size(" 3 kB "), Ok(3000));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn a_size_without_a_known_unit_or_of_nothing_is_refused() {
        for text in [
            "8",
            "8G",
            "GiB",
            "eight GiB",
            "8 bytes",
            "1.2.3GiB",
            "",
            "-1GiB",
        ] {
            let refused = parse_size(text).unwrap_err();
            assert!(refused.contains("e.g. 8GiB"), "{text}: {refused}");
        }
        for text in ["0GiB", "0.5B"] {
            let refused = parse_size(text).unwrap_err();
            assert!(refused.contains("no memory"), "{text}: {refused}");
        }
        let refused = parse_size("99999999999TiB").unwrap_err();
        assert!(refused.contains("more than this machine"), "{refused}");
    }
}
