//! Where the project and its test tools live.

use std::path::{Path, PathBuf};

/// The repository root (the crate's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tools folder: `$AIENV_TOOLS_DIR` if set (relative paths are taken from the
/// repository root), else `<repo>/tools`, as used by `scripts/install-tools.sh`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("AIENV_TOOLS_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("tools"),
    }
}

/// The Terraform v1.0.3 CLI, `tools/bin/terraform`. Panics if it is missing.
pub fn terraform_bin() -> PathBuf {
    require(
        tools_dir().join("bin").join("terraform"),
        "terraform v1.0.3",
    )
}

/// moto's server entry point, `tools/moto-venv/bin/moto_server`. Panics if it is missing.
pub fn moto_server_bin() -> PathBuf {
    require(
        tools_dir()
            .join("moto-venv")
            .join("bin")
            .join("moto_server"),
        "moto_server (moto[ec2,server]==5.2.5)",
    )
}

/// The Python interpreter of the moto venv. Panics if it is missing.
pub fn moto_python_bin() -> PathBuf {
    let server = moto_server_bin();
    require(server.with_file_name("python"), "the moto venv's python")
}

/// The AMI list loaded into moto through `MOTO_AMIS_PATH`.
pub fn moto_amis_fixture() -> PathBuf {
    require(
        repo_root()
            .join("tests")
            .join("fixtures")
            .join("moto-amis.json"),
        "the moto AMI fixture",
    )
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    if is_file(&path) {
        return path;
    }
    panic!(
        "{what} not found at {}: run `bash scripts/install-tools.sh` in {} first",
        path.display(),
        repo_root().display()
    );
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}
