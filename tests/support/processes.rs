//! Finds live processes running a given executable, via /proc (Linux).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pids of processes whose executable (`/proc/PID/exe`) is `bin_path` (symlinks resolved).
///
/// Tests in one binary run in parallel: to look only at one workspace's processes use
/// [`running_provider_processes_with_env`] with the workspace's marker variable.
pub fn running_provider_processes(bin_path: &Path) -> Vec<u32> {
    let target = canonical(bin_path);
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Fails for zombies and processes that exited meanwhile: those are not running.
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        let exe = exe.to_string_lossy();
        let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
        if Path::new(exe) == target {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Like [`running_provider_processes`], keeping processes whose environment has `key=value`.
pub fn running_provider_processes_with_env(bin_path: &Path, key: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{key}={value}");
    running_provider_processes(bin_path)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == wanted.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Polls `list` until it returns nothing or `timeout` passes; returns the last result.
pub fn wait_until_none(timeout: Duration, list: impl Fn() -> Vec<u32>) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = list();
        if pids.is_empty() || Instant::now() >= deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
