//! The examples are part of the documentation and must work: every `.tf` file
//! under `examples/` is `terraform fmt`-clean, and every example directory passes
//! `terraform init` + `terraform validate` against the provider under test,
//! using the real Terraform CLI from `tools/` (`bash scripts/install-tools.sh`).

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::terraform::Workspace;
use support::tools;

const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-aienv");

/// Example directories that need providers other than aienv, which `terraform init`
/// cannot install offline. They are still checked by `terraform fmt`.
const NOT_VALIDATED_OFFLINE: &[(&str, &str)] = &[
    (
        "with-hashicorp-aws",
        "needs registry.terraform.io/hashicorp/aws",
    ),
    (
        "with-hashicorp-google",
        "needs registry.terraform.io/hashicorp/google",
    ),
];

/// Directories that must be among the validated ones: the Registry examples the
/// docs are generated from, and the quickstart the demo applies.
const MUST_VALIDATE: &[&str] = &[
    "provider",
    "resources/aienv_gpu_workstation",
    "data-sources/aienv_gpu_offerings",
    "quickstart",
];

/// Added to an example that does not say where `aienv` comes from (resource and
/// data source snippets don't), as a user's configuration would.
const REQUIRED_PROVIDERS: &str = r#"terraform {
  required_providers {
    aienv = {
      source = "aienv/aienv"
    }
  }
}
"#;

fn examples_dir() -> PathBuf {
    tools::repo_root().join("examples")
}

/// Every `.tf` file under `dir`, skipping hidden directories (`.terraform/`).
fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            tf_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "tf") {
            out.push(path);
        }
    }
}

fn all_tf_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    tf_files(&examples_dir(), &mut files);
    assert!(
        !files.is_empty(),
        "no .tf files under {}",
        examples_dir().display()
    );
    files
}

/// Example directories (those holding `.tf` files), relative to `examples/`.
fn example_dirs() -> BTreeSet<String> {
    let root = examples_dir();
    all_tf_files()
        .iter()
        .filter_map(|f| {
            f.parent()?
                .strip_prefix(&root)
                .ok()
                .map(|d| d.to_string_lossy().into_owned())
        })
        .collect()
}

fn rel(path: &Path) -> String {
    path.strip_prefix(tools::repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `terraform fmt -` on the file's text: what the file would be once formatted.
fn terraform_fmt(text: &str) -> Result<String, String> {
    let mut child = Command::new(tools::terraform_bin())
        .args(["fmt", "-no-color", "-"])
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn terraform: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    stdin
        .write_all(text.as_bytes())
        .map_err(|e| format!("write to terraform fmt: {e}"))?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for terraform fmt: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn every_example_is_terraform_fmt_clean() {
    let mut problems = Vec::new();
    for file in all_tf_files() {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match terraform_fmt(&text) {
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                let line = text
                    .lines()
                    .zip(formatted.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(text.lines().count().min(formatted.lines().count()));
                problems.push(format!(
                    "{} is not formatted (first difference at line {})",
                    rel(&file),
                    line + 1
                ));
            }
            Err(e) => problems.push(format!("{} does not parse:\n{e}", rel(&file))),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nFormat them with: tools/bin/terraform fmt -recursive examples",
        problems.join("\n")
    );
}

/// Copies the example's files into the workspace; adds `required_providers` when the
/// example leaves it out.
fn stage(ws: &Workspace, dir: &Path) {
    let mut declares_source = false;
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        declares_source |= text.contains("required_providers");
        ws.write_file(&entry.file_name().to_string_lossy(), &text);
    }
    if !declares_source {
        ws.write_file("zz_required_providers_test.tf", REQUIRED_PROVIDERS);
    }
}

#[test]
fn every_example_validates_with_the_provider_under_test() {
    let dirs = example_dirs();
    for (skipped, why) in NOT_VALIDATED_OFFLINE {
        assert!(
            dirs.contains(*skipped),
            "examples/{skipped} is listed as not validated offline ({why}) but does not exist: update the list"
        );
    }
    for must in MUST_VALIDATE {
        assert!(
            dirs.contains(*must),
            "examples/{must} is missing; found {dirs:?}"
        );
    }
    let mut problems = Vec::new();
    let mut validated = Vec::new();
    for dir in &dirs {
        if NOT_VALIDATED_OFFLINE.iter().any(|(d, _)| d == dir) {
            continue;
        }
        let ws = Workspace::new(Path::new(PROVIDER_BIN));
        stage(&ws, &examples_dir().join(dir));
        let init = ws.init();
        if !init.success {
            problems.push(format!("examples/{dir}: {init:?}"));
            continue;
        }
        let validate = ws.run(&["validate", "-no-color"]);
        if validate.success {
            validated.push(dir.clone());
        } else {
            problems.push(format!("examples/{dir}: {validate:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    eprintln!("validated: {validated:?}");
}

/// The validate check above is only worth something if `terraform validate`
/// reaches the provider: a configuration the provider rejects must fail it.
#[test]
fn validate_reaches_the_provider() {
    let ws = Workspace::new(Path::new(PROVIDER_BIN));
    ws.write_main(&format!(
        "{REQUIRED_PROVIDERS}\nresource \"aienv_gpu_workstation\" \"bad\" {{\n  name = \"Not_Valid\"\n  gpu  = \"T4\"\n}}\n"
    ));
    ws.init().expect_ok();
    let out = ws.run(&["validate", "-no-color"]).expect_err();
    assert!(out.combined().contains("Invalid name"), "{out:?}");
}
