//! Fuzz target: any text as an expression of the rule language, through
//! the lexer and parser, and the parsed tree through the type checker with
//! every name unknown (as `strata check` types expressions without data).
//! It must give a tree or a positioned error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match strata::rules::expr::parse(text) {
        Ok(expr) => {
            let resolve = |_: &str| None;
            let unknown = |n: &str| format!("unknown name `{n}`");
            let _ = strata::rules::check::check(&expr, &resolve, &unknown);
        }
        Err(e) => {
            // The error's span must lie inside the text.
            assert!(e.span.start <= e.span.end && e.span.start <= text.len());
        }
    }
});
