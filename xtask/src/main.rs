//! Project automation: `cargo xtask ci | test | lint | deny | bench`.
//!
//! `ci` is what `.ci/run` calls and what a new machine runs: formatting, clippy with
//! warnings as errors, then every test of the workspace, with a live S3 server (moto, installed
//! into a venv outside the clone on first use) so the conformance suite also runs on S3. It
//! needs cargo and python3.

mod s3;
mod venv;

use std::process::{Command, ExitCode};
use std::time::Instant;

fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with_env(args, &[])
}

fn cargo_with_env(args: &[&str], env: &[(&str, String)]) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // `cargo run` gives this process xtask's package variables; build scripts (ring,
    // libduckdb-sys through cc) rerun when those differ, which would recompile DuckDB. Drop
    // them so the inner cargo sees the same environment as a direct invocation.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key.as_str(),
                "CARGO_BIN_NAME"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            command.env_remove(key);
        }
    }
    let status = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!(
        "xtask: cargo {} took {:.0} s",
        args[0],
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

fn lint() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
}

fn test() -> Result<(), String> {
    // Build first, without the server's environment, then start the server only for the run.
    cargo(&["test", "--workspace", "--all-targets", "--no-run"])?;
    let server = s3::S3Server::start(&std::env::temp_dir().join("fsk-s3-logs"))?;
    let env = server.env();
    cargo_with_env(
        &["test", "--workspace", "--all-targets", "--no-fail-fast"],
        &env,
    )?;
    drop(server);
    cargo(&["test", "--workspace", "--doc"])
}

/// Baselines for the benchmarks, pinned so figures compare across runs.
const BENCH_REQUIREMENTS: &[&str] = &[
    "duckdb==2.0.0",
    "deltalake==1.6.6",
    "pyarrow==26.0.1",
    "numpy==2.4.6",
    "polars==2.1.0",
];

/// `cargo xtask bench [--rows N] [--files N] [--only B2,B3] [--no-delta] [--engines arrow,duckdb]`:
/// builds the release `fsk` with the engines asked for (arrow by default), prepares the baselines' venv and runs `xtask/bench/bench.py`.
fn bench(extra: &[String]) -> Result<(), String> {
    // The engines asked for (`--engines arrow,duckdb`) are the features built.
    let engines = extra
        .iter()
        .position(|a| a == "--engines")
        .and_then(|i| extra.get(i + 1))
        .map_or("arrow".to_string(), Clone::clone);
    let mut features = vec!["arrow".to_string()];
    for engine in engines.split(',') {
        match engine {
            "arrow" => {}
            "duckdb" | "datafusion" => features.push(engine.to_string()),
            other => return Err(format!("unknown engine {other:?} in --engines")),
        }
    }
    cargo(&[
        "build",
        "--release",
        "-p",
        "fsk-cli",
        "--no-default-features",
        "--features",
        &features.join(","),
    ])?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let fsk = std::path::Path::new(&target).join("release/fsk");
    let venv = venv::ensure("FSK_BENCH_VENV", "fsk-bench-venv", BENCH_REQUIREMENTS)?;
    let home = std::env::var("HOME").map_err(|_| "HOME is not set")?;
    let work =
        std::env::var("FSK_BENCH_DIR").unwrap_or_else(|_| format!("{home}/.cache/fsk-bench"));
    let out_dir = std::path::Path::new(&target).join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join("bench.json");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/bench.py");
    venv::run(
        Command::new(venv::python(&venv))
            .arg(script)
            .arg("--fsk")
            .arg(&fsk)
            .args(["--work", &work])
            .arg("--out")
            .arg(&out)
            .args(extra),
    )
}

fn usage() -> String {
    "usage: cargo xtask <ci|test|lint|bench>\n  ci    lint, then every test (what .ci/run runs)\n  test  every test, with a live S3 server (moto) for the S3 conformance runs\n  lint  rustfmt check and clippy -D warnings\n  bench the benchmark workloads (WORKLOADS.md) against DuckDB, Polars and delta-rs: [--rows N] [--files N] [--only B1,B2] [--no-delta] [--engines arrow,duckdb,datafusion]"
        .to_string()
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let started = Instant::now();
    let result = match task.as_str() {
        "ci" => lint().and_then(|()| test()),
        "test" => test(),
        "lint" => lint(),
        "bench" => bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => {
            eprintln!(
                "xtask {task}: ok in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
