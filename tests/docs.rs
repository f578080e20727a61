//! The Registry docs under `docs/` are generated from the live schemas and the
//! example files; this test renders them again and fails when the committed
//! files differ. `AIENV_UPDATE_DOCS=1 cargo test --test docs` rewrites them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use aienv::docs;
use aienv::provider::{provider_schema, AienvProvider};
use aienv::tfplugin::PluginProvider;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Every resource and data source needs its example (tfplugindocs layout: \
             examples/provider/provider.tf, examples/resources/<type>/resource.tf [+ import.sh], \
             examples/data-sources/<type>/data-source.tf).",
            path.display()
        )
    })
}

fn read_optional(rel: &str) -> Option<String> {
    std::fs::read_to_string(repo_root().join(rel)).ok()
}

/// Every page: (path under the repository, rendered text).
fn rendered_pages() -> Vec<(String, String)> {
    let provider = AienvProvider::new();
    let mut pages = vec![(
        "docs/index.md".to_string(),
        docs::provider_doc(&provider_schema(), &read("examples/provider/provider.tf")),
    )];
    for (type_name, schema) in provider.resource_schemas() {
        let dir = format!("examples/resources/{type_name}");
        let example = read(&format!("{dir}/resource.tf"));
        let import = read_optional(&format!("{dir}/import.sh"));
        pages.push((
            format!("docs/resources/{}", docs::page_file_name(type_name)),
            docs::resource_doc(type_name, &schema, &example, import.as_deref()),
        ));
    }
    for (type_name, schema) in provider.data_source_schemas() {
        let example = read(&format!("examples/data-sources/{type_name}/data-source.tf"));
        pages.push((
            format!("docs/data-sources/{}", docs::page_file_name(type_name)),
            docs::data_source_doc(type_name, &schema, &example),
        ));
    }
    pages
}

fn update_requested() -> bool {
    std::env::var("AIENV_UPDATE_DOCS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The first differing line, with a little context, for the failure message.
fn diff_hint(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(a.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let show = |lines: &[&str]| -> String {
        lines
            .iter()
            .enumerate()
            .skip(first.saturating_sub(1))
            .take(4)
            .map(|(i, l)| format!("    {:>4} | {l}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "  first difference at line {}:\n  committed:\n{}\n  generated:\n{}",
        first + 1,
        if e.len() > first {
            show(&e)
        } else {
            "    (file ends)".into()
        },
        if a.len() > first {
            show(&a)
        } else {
            "    (page ends)".into()
        },
    )
}

/// Markdown files under `docs/<sub>` that no schema produces any more.
fn stale_pages(expected: &BTreeSet<String>) -> Vec<String> {
    let mut stale = Vec::new();
    for sub in ["resources", "data-sources"] {
        let dir = repo_root().join("docs").join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("docs/{sub}/{name}");
            if name.ends_with(".md") && !expected.contains(&rel) {
                stale.push(rel);
            }
        }
    }
    stale.sort();
    stale
}

#[test]
fn committed_docs_match_the_schemas() {
    let pages = rendered_pages();
    let root = repo_root();
    if update_requested() {
        for (rel, text) in &pages {
            let path = root.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            }
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                eprintln!("rewrote {rel}");
            }
        }
    }
    let mut problems = Vec::new();
    for (rel, text) in &pages {
        match std::fs::read_to_string(root.join(rel)) {
            Ok(committed) if committed == *text => {}
            Ok(committed) => problems.push(format!(
                "{rel} is out of date\n{}",
                diff_hint(&committed, text)
            )),
            Err(e) => problems.push(format!("{rel} is missing ({e})")),
        }
    }
    let expected: BTreeSet<String> = pages.iter().map(|(rel, _)| rel.clone()).collect();
    for rel in stale_pages(&expected) {
        problems.push(format!(
            "{rel} documents no resource or data source of the provider: delete it"
        ));
    }
    assert!(
        problems.is_empty(),
        "The docs under docs/ are generated from the schemas and examples/ and differ:\n\n{}\n\n\
         Regenerate them with:\n\n    {}\n\nthen review and commit the result.",
        problems.join("\n\n"),
        docs::UPDATE_COMMAND
    );
}

#[test]
fn every_page_has_the_registry_layout() {
    for (rel, text) in rendered_pages() {
        assert!(text.starts_with("---\n"), "{rel}: no front matter");
        for needle in [
            "page_title: ",
            "subcategory: \"\"",
            "description: |-",
            "## Example Usage",
            "```terraform\n",
            "## Schema",
        ] {
            assert!(text.contains(needle), "{rel}: no {needle:?}");
        }
        if rel.starts_with("docs/resources/") {
            assert!(text.contains("## Import\n"), "{rel}: no import section");
        }
        // Nothing in a description may break the list it is an item of.
        for line in text.lines().filter(|l| l.starts_with("- `")) {
            assert!(line.contains("` ("), "{rel}: malformed item {line:?}");
        }
    }
}

#[test]
fn workstation_page_states_defaults_and_replacements() {
    let pages = rendered_pages();
    let (_, page) = pages
        .iter()
        .find(|(rel, _)| rel == "docs/resources/gpu_workstation.md")
        .unwrap_or_else(|| {
            panic!(
                "no workstation page among {:?}",
                pages.iter().map(|p| &p.0).collect::<Vec<_>>()
            )
        });
    for line in [
        "- `gpu` (String) ",
        "- `name` (String) ",
        "- `image` (String) ",
        "Defaults to `pytorch`. Changing this forces a new resource.",
        "- `firewall_id` (String) ",
        "terraform import aienv_gpu_workstation.dev aws/us-east-1/i-0123456789abcdef0",
        "terraform import aienv_gpu_workstation.dev gcp/my-project/us-central1-a/dev-box",
    ] {
        assert!(page.contains(line), "missing {line:?} in\n{page}");
    }
    // Section order: Required, Optional, Read-Only.
    let at = |s: &str| page.find(s).unwrap_or(usize::MAX);
    assert!(at("### Required") < at("### Optional") && at("### Optional") < at("### Read-Only"));
}

/// The provider page explains every cloud that has a backend: where its
/// credentials come from and how it fits next to that cloud's official provider.
#[test]
fn provider_page_covers_aws_and_google_cloud() {
    let pages = rendered_pages();
    let (_, page) = pages
        .iter()
        .find(|(rel, _)| rel == "docs/index.md")
        .unwrap_or_else(|| panic!("no provider page"));
    for needle in [
        "**AWS**",
        "AWS_PROFILE",
        "## Using it with the hashicorp/aws provider",
        "**Google Cloud**",
        "GOOGLE_CREDENTIALS",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_PROJECT",
        "## Using it with the hashicorp/google provider",
        "google_compute_subnetwork",
        "  gcp {\n",
    ] {
        assert!(page.contains(needle), "missing {needle:?} in\n{page}");
    }
    assert!(
        !page.contains("creates workstations on AWS (EC2);"),
        "the provider page still says AWS only:\n{page}"
    );
}
