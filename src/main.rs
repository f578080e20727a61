//! Entry point: everything testable lives in the library.

fn main() -> std::process::ExitCode {
    aienv::run_plugin(std::env::args().skip(1).collect())
}
