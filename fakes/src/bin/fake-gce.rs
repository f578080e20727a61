//! `fake-gce [--port N]`: serves the fake Compute Engine API on 127.0.0.1
//! until killed, after printing `FAKE_GCE_ENDPOINT=http://127.0.0.1:PORT`.
//!
//! `FAKE_GCE_OPERATION_POLLS=N` sets how many polls an operation takes to
//! finish (default 2).

use std::io::Write;

use aienv_fakes::gce::{parse_port, FakeGce};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match parse_port(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fake-gce: {e}\nusage: fake-gce [--port N]");
            std::process::exit(2);
        }
    };
    let fake = match FakeGce::start_on_port(port) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-gce: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(v) = std::env::var("FAKE_GCE_OPERATION_POLLS") {
        match v.trim().parse::<u32>() {
            Ok(n) => fake.set_operation_polls(n),
            Err(_) => {
                eprintln!("fake-gce: FAKE_GCE_OPERATION_POLLS must be a number, got {v:?}");
                std::process::exit(2);
            }
        }
    }
    println!("FAKE_GCE_ENDPOINT={}", fake.endpoint());
    let _ = std::io::stdout().flush();
    // The server runs on its own thread; this one only keeps the process up.
    loop {
        std::thread::park();
    }
}
