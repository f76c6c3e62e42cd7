//! Checks of the repository's own tooling: the CI and deploy workflows are
//! valid YAML and run nothing but `make` targets that exist (so CI never does
//! something `make test` does not), and they deploy as documented.

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
