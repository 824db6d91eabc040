//! Project automation: `cargo xtask ci | test | lint | deny | bench`.
//!
//! `ci` is what `.ci/run` calls and what a new machine runs: formatting, clippy with
//! warnings as errors, then every test of the workspace. It needs nothing but cargo.

use std::process::{Command, ExitCode};
use std::time::Instant;

fn cargo(args: &[&str]) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!("xtask: cargo {} took {:.0} s", args[0], started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

fn lint() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
}

fn test() -> Result<(), String> {
    cargo(&["test", "--workspace", "--all-targets", "--no-fail-fast"])?;
    cargo(&["test", "--workspace", "--doc"])
}

fn usage() -> String {
    "usage: cargo xtask <ci|test|lint>\n  ci    lint, then every test (what .ci/run runs)\n  test  every test\n  lint  rustfmt check and clippy -D warnings"
        .to_string()
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let started = Instant::now();
    let result = match task.as_str() {
        "ci" => lint().and_then(|()| test()),
        "test" => test(),
        "lint" => lint(),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => {
            eprintln!("xtask {task}: ok in {:.0} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
