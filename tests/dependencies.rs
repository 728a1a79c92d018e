//! The dependency policy of deny.toml, held without cargo-deny: every package in Cargo.lock comes
//! from an allowed registry, and every dependency built for the service's targets carries a
//! licence expression the allowed licences satisfy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use spdx::{Expression, Licensee, ParseMode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read_toml(name: &str) -> toml::Value {
    let text = std::fs::read_to_string(root().join(name)).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{name} does not read: {e}"))
}

fn strings(value: Option<&toml::Value>) -> Vec<String> {
    value
        .and_then(toml::Value::as_array)
        .map(|items| items.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn policy(section: &str, key: &str) -> Vec<String> {
    let deny = read_toml("deny.toml");
    strings(deny.get(section).and_then(|s| s.get(key)))
}

/// `name vX.Y.Z` and the licence expression of each package outside the workspace that the
/// workspace builds for deny.toml's targets (normal, build and dev dependencies).
fn licences() -> Vec<(String, String)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command.current_dir(root()).args([
        "tree",
        "--workspace",
        "--locked",
        "--edges",
        "normal,build,dev",
        "--prefix",
        "none",
        "--format",
        "{p}\t{l}",
    ]);
    for target in policy("graph", "targets") {
        command.args(["--target", &target]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = BTreeSet::new();
    // Each workspace member's tree is set apart by an empty line.
    for line in String::from_utf8(out.stdout).unwrap().lines().filter(|l| !l.is_empty()) {
        // A package shown before ends in ` (*)`; a workspace member names its directory.
        let line = line.strip_suffix(" (*)").unwrap_or(line);
        let (package, licence) = line.split_once('\t').unwrap_or((line, ""));
        if package.contains(" (/") {
            continue;
        }
        let package = package.strip_suffix(" (proc-macro)").unwrap_or(package);
        seen.insert((package.to_owned(), licence.trim().to_owned()));
    }
    seen.into_iter().collect()
}

#[test]
fn every_dependency_carries_an_allowed_licence() {
    let allowed: Vec<Licensee> = policy("licenses", "allow")
        .iter()
        .map(|id| Licensee::parse(id).unwrap_or_else(|e| panic!("deny.toml allows {id}: {e}")))
        .collect();
    assert!(!allowed.is_empty(), "deny.toml allows no licence");
    let packages = licences();
    // The service has some hundreds of dependencies: far fewer means the listing was misread.
    assert!(packages.len() > 100, "only {} packages listed", packages.len());
    let refused: Vec<String> = packages
        .iter()
        .filter(|(_, licence)| {
            // crates.io's older manifests write `MIT/Apache-2.0`: the lax mode reads `/` as OR.
            Expression::parse_mode(licence, ParseMode::LAX)
                .map(|expression| !expression.evaluate(|req| allowed.iter().any(|l| l.satisfies(req))))
                .unwrap_or(true)
        })
        .map(|(package, licence)| format!("{package}: {licence:?}"))
        .collect();
    assert!(
        refused.is_empty(),
        "licences deny.toml does not allow (or none given):\n{}",
        refused.join("\n")
    );
}

#[test]
fn every_package_comes_from_an_allowed_registry() {
    let registries = policy("sources", "allow-registry");
    let git = policy("sources", "allow-git");
    let lock = read_toml("Cargo.lock");
    let packages = lock.get("package").and_then(toml::Value::as_array).unwrap();
    let mut from_registry = 0;
    let mut refused = Vec::new();
    for package in packages {
        // The workspace's own crates have no source.
        let Some(source) = package.get("source").and_then(toml::Value::as_str) else {
            continue;
        };
        let allowed = match source.split_once('+') {
            Some(("registry", url)) => registries.iter().any(|r| r == url),
            Some(("git", url)) => git.iter().any(|g| url.starts_with(g.as_str())),
            _ => false,
        };
        if allowed {
            from_registry += 1;
        } else {
            refused.push(format!(
                "{} {}: {source}",
                package["name"].as_str().unwrap(),
                package["version"].as_str().unwrap()
            ));
        }
    }
    assert!(
        refused.is_empty(),
        "sources deny.toml does not allow:\n{}",
        refused.join("\n")
    );
    assert!(from_registry > 100, "only {from_registry} packages read");
}
