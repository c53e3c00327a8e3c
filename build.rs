//! Rebuilds strata when a bundled model or code list changes: `models/` is
//! compiled into the binary, and on stable Rust the embedding macro cannot
//! tell Cargo which files it read.

fn main() {
    println!("cargo:rerun-if-changed=models");
}
