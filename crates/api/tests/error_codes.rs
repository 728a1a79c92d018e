//! API.md §4 lists the codes a client may branch on: every code the source can put in a
//! problem's `errors[].code` must be there (or, for a bulk job's rows, in bulk-registration.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literal at the start of `text` (after white space), if any.
fn literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    rest.split('"').next()
}

/// The text after the first argument of a call whose argument list `text` starts inside.
fn after_first_argument(text: &str) -> &str {
    let mut depth = 0_i32;
    let mut in_string = false;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match c {
            '"' if previous != '\\' => in_string = !in_string,
            '(' | '[' | '{' if !in_string => depth += 1,
            ')' | ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => return &text[i + 1..],
            _ => {}
        }
        previous = c;
    }
    ""
}

/// Codes given as the second argument of `FieldError::new`, and the 409s' constraint codes.
fn codes_in(source: &str) -> Vec<String> {
    // Test modules build errors of their own.
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut codes = Vec::new();
    for (at, _) in source.match_indices("FieldError::new(") {
        let args = &source[at + "FieldError::new(".len()..];
        if let Some(code) = literal(after_first_argument(args)) {
            codes.push(code.to_owned());
        }
    }
    for marker in ["constraint: ", "coded_conflict("] {
        for (at, _) in source.match_indices(marker) {
            if let Some(code) = literal(&source[at + marker.len()..]) {
                codes.push(code.to_owned());
            }
        }
    }
    codes
}

#[test]
fn every_error_code_is_in_the_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let docs = ["docs/API.md", "docs/bulk-registration.md"]
        .map(|d| std::fs::read_to_string(root.join(d)).unwrap())
        .join("\n");
    let mut files = Vec::new();
    for krate in ["domain", "adapters", "api"] {
        sources(&root.join("crates").join(krate).join("src"), &mut files);
    }
    let mut found = 0;
    let mut missing = Vec::new();
    for file in &files {
        for code in codes_in(&std::fs::read_to_string(file).unwrap()) {
            found += 1;
            // Storage's name for a constraint answered as `duplicate_reference` (problem.rs).
            let internal = code == "duplicate_payment_reference";
            if !internal && !docs.contains(&format!("`{code}`")) {
                missing.push(format!("{code} ({})", file.display()));
            }
        }
    }
    assert!(
        found > 100,
        "the scan found only {found} codes: has the source's form changed?"
    );
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "codes missing from API.md §4: {missing:#?}");
}
