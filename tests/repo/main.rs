//! Checks of the repository itself: the CI and deploy workflows are valid
//! YAML and run nothing but `make` targets that exist (so CI never does
//! something `make test` does not), and they deploy as documented; and the
//! layout keeps its rules: key prefixes spelled only by the data model,
//! thin Lambda mains, a health function that links no route crate, every
//! crate of ours known to the log filter, and no file that refers outside
//! the repository.

use std::collections::BTreeSet;

use serde_norway::Value;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn workflow(name: &str) -> Value {
    serde_norway::from_str(&repo_file(&format!(".github/workflows/{name}")))
        .unwrap_or_else(|err| panic!("{name} is not valid YAML: {err}"))
}

/// The targets the Makefile declares phony.
fn make_targets() -> BTreeSet<String> {
    repo_file("Makefile")
        .lines()
        .filter_map(|line| line.strip_prefix(".PHONY:"))
        .flat_map(|targets| targets.split_whitespace().map(str::to_owned))
        .collect()
}

/// Every `run:` of every job: (job, command).
fn runs(workflow: &Value) -> Vec<(String, String)> {
    let jobs = workflow["jobs"].as_mapping().expect("jobs");
    jobs.iter()
        .flat_map(|(job, spec)| {
            let job = job.as_str().unwrap().to_owned();
            spec["steps"]
                .as_sequence()
                .expect("steps")
                .iter()
                .filter_map(|step| step.get("run").and_then(Value::as_str))
                .map(move |run| (job.clone(), run.to_owned()))
        })
        .collect()
}

#[test]
fn workflows_run_only_make_targets_and_toolchain_setup() {
    let targets = make_targets();
    assert!(targets.contains("test") && targets.contains("deploy"));
    for name in ["ci.yml", "deploy.yml"] {
        for (job, run) in runs(&workflow(name)) {
            for line in run.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if line.starts_with("rustup ") {
                    continue;
                }
                let target = line
                    .strip_prefix("make ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_else(|| panic!("{name} job {job} runs {line:?}, not a make target"));
                assert!(
                    targets.contains(target),
                    "{name} job {job}: no make target {target}"
                );
            }
        }
    }
}

#[test]
fn ci_runs_make_test_on_every_push_and_pull_request() {
    let ci = workflow("ci.yml");
    let on = &ci["on"];
    assert!(
        on.get("push").is_some() && on.get("pull_request").is_some(),
        "{on:?}"
    );
    assert_eq!(runs(&ci), vec![
        ("test".to_owned(), "rustup toolchain install stable --profile minimal --component rustfmt,clippy\nrustup default stable\n".to_owned()),
        ("test".to_owned(), "make test".to_owned()),
    ]);
}

#[test]
fn deploys_go_dev_on_main_and_staging_then_prod_on_tags_with_oidc() {
    let deploy = workflow("deploy.yml");
    assert!(
        deploy["permissions"].get("id-token").is_none(),
        "the test job must not be able to assume a role"
    );
    let jobs = &deploy["jobs"];
    for (env, condition, needs) in [
        ("dev", "github.ref == 'refs/heads/main'", "test"),
        ("staging", "startsWith(github.ref, 'refs/tags/v')", "test"),
        ("prod", "startsWith(github.ref, 'refs/tags/v')", "staging"),
    ] {
        let job = &jobs[env];
        assert_eq!(
            job["environment"].as_str(),
            Some(env),
            "{env} needs its GitHub environment (approval)"
        );
        assert_eq!(job["if"].as_str(), Some(condition), "{env}");
        assert_eq!(job["needs"].as_str(), Some(needs), "{env}");
        assert_eq!(
            job["permissions"]["id-token"].as_str(),
            Some("write"),
            "{env} needs an OIDC token"
        );
        let steps = job["steps"].as_sequence().unwrap();
        let oidc = steps
            .iter()
            .find(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials"))
            })
            .unwrap_or_else(|| panic!("{env} assumes no role"));
        assert_eq!(
            oidc["with"]["role-to-assume"].as_str(),
            Some("${{ vars.AWS_DEPLOY_ROLE_ARN }}")
        );
        assert!(
            runs(&deploy).contains(&(
                env.to_owned(),
                format!("make deploy ENV={env} CONFIRM_CHANGESET=0")
            )),
            "{env} does not deploy itself"
        );
    }
}

/// Every file under `dir` (relative to the workspace root) ending in `.rs`.
fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
    files_with(dir, &["rs"])
}

/// Every file under `dir` whose extension is one of `extensions`, leaving
/// out installed packages.
fn files_with(dir: &str, extensions: &[&str]) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            path.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| extensions.contains(&ext))
        })
        .collect()
}

/// Every file under `dir` (relative to the workspace root), leaving out
/// installed packages.
fn files_under(dir: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![std::path::PathBuf::from(format!(
        "{}/../{dir}",
        env!("CARGO_MANIFEST_DIR")
    ))];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            if path.ends_with("node_modules") {
                continue;
            }
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else {
            found.push(path);
        }
    }
    found
}

/// The quoted upper-case words ending in `#` in `text` (double or single
/// quotes, for the YAML and Python files too): key prefixes.
fn key_prefix_literals(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (start, quote) in text.match_indices(['"', '\'']) {
        let word: Vec<u8> = bytes[start + 1..]
            .iter()
            .copied()
            .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
            .collect();
        if !word.is_empty() && bytes.get(start + 1 + word.len()) == Some(&b'#') {
            found.push(format!("{quote}{}#", String::from_utf8(word).unwrap()));
        }
    }
    found
}

#[test]
fn the_finder_of_key_prefixes_finds_them() {
    assert_eq!(key_prefix_literals(r#"format!("USER#{id}")"#), ["\"USER#"]);
    assert_eq!(
        key_prefix_literals(r#""RATE_X#" "W#""#),
        ["\"RATE_X#", "\"W#"]
    );
    assert_eq!(key_prefix_literals("pk = 'ROOM#' + room"), ["'ROOM#"]);
    assert!(key_prefix_literals(r##"r#"{"a":1}"# "User#" "#x" 'static"##).is_empty());
}

#[test]
fn key_prefixes_are_spelled_only_by_the_data_model() {
    let mut offenders = Vec::new();
    // Code and scripts of every kind; the docs may draw the layout.
    let kinds = ["rs", "py", "sh", "mjs", "yaml", "yml", "toml"];
    for dir in ["functions", "infra", "tests", "shared/platform", ".github"] {
        for path in files_with(dir, &kinds) {
            let text = std::fs::read_to_string(&path).unwrap();
            // This file names prefixes only to test the finder.
            if path.ends_with("tests/repo/main.rs") {
                continue;
            }
            for literal in key_prefix_literals(&text) {
                offenders.push(format!("{}: {literal}", path.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "key prefixes outside shared/model: {offenders:#?}"
    );
}

#[test]
fn every_lambda_main_is_thin() {
    let mains: Vec<_> = rust_files("functions")
        .into_iter()
        .filter(|path| path.ends_with("src/main.rs"))
        .collect();
    assert_eq!(mains.len(), 8, "{mains:?}");
    for path in mains {
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 15, "{} has {lines} lines", path.display());
    }
}

#[test]
fn every_crate_of_the_workspace_may_log_below_info() {
    // Any crate missing from the list would be held to the dependencies'
    // cap: its debug lines silently gone.
    let mut manifests: Vec<String> = files_with("functions", &["toml"])
        .into_iter()
        .map(|path| path.display().to_string())
        .collect();
    assert_eq!(manifests.len(), 8, "{manifests:?}");
    for crate_dir in ["shared/model", "shared/platform", "infra"] {
        manifests.push(format!(
            "{}/../{crate_dir}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ));
    }
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        let name = text
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{manifest} names no package"));
        assert!(
            platform::telemetry::OWN_CRATES.contains(&name.replace('-', "_").as_str()),
            "{name} ({manifest}) is not in platform::telemetry::OWN_CRATES"
        );
    }
}

#[test]
fn health_links_no_route_crate() {
    let manifest = repo_file("functions/health/Cargo.toml");
    let manifest: toml_like::Manifest = toml_like::parse(&manifest);
    for route_crate in [
        "auth",
        "users",
        "posts",
        "uploads",
        "notifications",
        "websocket",
        "stream",
    ] {
        assert!(
            !manifest.dependencies.contains(route_crate),
            "health depends on {route_crate}"
        );
    }
}

/// Just enough of a Cargo manifest: the names under `[dependencies]`.
mod toml_like {
    use std::collections::BTreeSet;

    pub struct Manifest {
        pub dependencies: BTreeSet<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let mut section = "";
        let mut dependencies = BTreeSet::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[dependencies]"
                && let Some((name, _)) = line.split_once('=')
            {
                dependencies.insert(name.trim().split('.').next().unwrap().to_owned());
            }
        }
        Manifest { dependencies }
    }
}

#[test]
fn nothing_refers_outside_the_repository() {
    let mut offenders = Vec::new();
    for dir in [
        "functions",
        "infra",
        "tests",
        "shared",
        "docs",
        ".github",
        ".ci",
    ] {
        for path in files_under(dir) {
            if let Ok(text) = std::fs::read_to_string(&path)
                && !path.ends_with("tests/repo/main.rs")
                && text.contains(concat!("..", "/shared"))
            {
                offenders.push(path.display().to_string());
            }
        }
    }
    for file in ["README.md", "Makefile", "template.yaml", "Cargo.toml"] {
        if repo_file(file).contains(concat!("..", "/shared")) {
            offenders.push(file.to_owned());
        }
    }
    assert!(
        offenders.is_empty(),
        "refer outside the repository: {offenders:?}"
    );
}
