//! The `fsk` binary end to end, on every engine.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn fsk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fsk"))
        .args(args)
        .env("FSK_LOG", "error")
        .output()
        .expect("run fsk")
}

fn ok(args: &[&str]) -> String {
    let out = fsk(args);
    assert!(
        out.status.success(),
        "fsk {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn fails(args: &[&str]) -> String {
    let out = fsk(args);
    assert!(!out.status.success(), "fsk {args:?} should fail");
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.starts_with("error:"), "stderr: {stderr}");
    stderr
}

fn sample_csv(dir: &Path) -> String {
    let path = dir.join("sales.csv");
    std::fs::write(
        &path,
        "id,day,amount,note\n1,2025-01-01,10.5,a\n2,2025-01-01,3.25,\n3,2025-01-02,7.0,c\n4,2025-01-03,1.0,d\n",
    )
    .expect("csv");
    path.display().to_string()
}

const ENGINES: [&str; 3] = ["arrow", "duckdb", "datafusion"];

#[test]
fn write_read_stats_on_every_engine() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().expect("dir");
        let csv = sample_csv(dir.path());
        let ds = dir.path().join("ds").display().to_string();
        let out = ok(&[
            "--engine",
            engine,
            "write",
            &csv,
            &ds,
            "--partition-by",
            "day",
            "--json",
        ]);
        let report: Value = serde_json::from_str(out.trim()).expect("json report");
        assert_eq!(report["total_rows"], 4, "{engine}");
        assert_eq!(report["mode"], "append");
        assert_eq!(report["engine"], engine);
        let files = report["files"].as_array().expect("files");
        assert_eq!(files.len(), 3);
        for file in files {
            let path = file["path"].as_str().expect("path");
            assert!(path.starts_with("day=2025-01-0"), "{path}");
            assert!(file["row_count"].as_u64().is_some() && file["size_bytes"].as_u64().is_some());
        }

        // Global flags after the subcommand too.
        let out = ok(&[
            "read",
            &ds,
            "--filter",
            "day = '2025-01-01' AND amount > 5",
            "--format",
            "json",
            "--engine",
            engine,
        ]);
        let rows: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("row"))
            .collect();
        assert_eq!(rows.len(), 1, "{engine}: {out}");
        assert_eq!(rows[0]["id"], 1);
        assert_eq!(rows[0]["day"], "2025-01-01");

        let out = ok(&[
            "read",
            &ds,
            "--columns",
            "amount,id",
            "--format",
            "csv",
            "--limit",
            "2",
            "--filter",
            "id >= 2",
        ]);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("amount,id"));
        assert_eq!(lines.count(), 2);

        let out = ok(&[
            "--json",
            "stats",
            &ds,
            "--partition-filter",
            "day=2025-01-01",
        ]);
        let stats: Value = serde_json::from_str(out.trim()).expect("stats json");
        assert_eq!(stats["total_rows"], 2);
        assert_eq!(stats["files"].as_array().expect("files").len(), 1);
        assert!(stats["files"][0]["num_rows"].is_u64() && stats["total_bytes"].is_u64());

        let table = ok(&["read", &ds, "--engine", engine]);
        assert!(table.contains("4 row(s)"), "{table}");
    }
}

#[test]
fn parquet_output_and_overwrite() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let ds = dir.path().join("ds").display().to_string();
    ok(&[
        "write",
        &csv,
        &ds,
        "--max-rows-per-file",
        "3",
        "--compression",
        "zstd:3",
    ]);
    let out_file = dir.path().join("out.parquet").display().to_string();
    ok(&["read", &ds, "--format", "parquet", "--output", &out_file]);
    // The parquet output is a valid source in turn.
    let ds2 = dir.path().join("ds2").display().to_string();
    let out = ok(&["write", &out_file, &ds2, "--json"]);
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["total_rows"], 4);
    let out = ok(&[
        "write",
        &csv,
        &ds,
        "--mode",
        "overwrite",
        "--json",
        "--basename-template",
        "data_{}.parquet",
    ]);
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["mode"], "overwrite");
    let out = ok(&["--json", "stats", &ds]);
    let stats: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(stats["total_rows"], 4);
    assert!(
        stats["files"]
            .as_array()
            .expect("files")
            .iter()
            .all(|f| f["path"].as_str().unwrap_or("").starts_with("data_"))
    );
}

#[test]
fn json_sources_and_explicit_format() {
    let dir = tempfile::tempdir().expect("dir");
    let src = dir.path().join("events.txt");
    std::fs::write(
        &src,
        "{\"id\": 1, \"kind\": \"a\"}\n{\"id\": 2, \"kind\": null}\n",
    )
    .expect("write");
    let ds = dir.path().join("ds").display().to_string();
    let out = ok(&[
        "write",
        src.to_str().expect("path"),
        &ds,
        "--source-format",
        "json",
        "--json",
    ]);
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["total_rows"], 2);
    let out = ok(&["read", &ds, "--filter", "kind IS NULL", "--format", "json"]);
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn errors_name_the_culprit() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let ds = dir.path().join("ds").display().to_string();
    let missing = dir.path().join("nope").display().to_string();
    assert!(fails(&["read", &missing]).contains("nope"));
    assert!(fails(&["stats", &missing]).contains("nope"));
    assert!(fails(&["write", &csv, &ds, "--mode", "replace"]).contains("replace"));
    assert!(fails(&["write", &csv, &ds, "--compression", "lzo"]).contains("lzo"));
    assert!(fails(&["write", &csv, &ds, "--max-rows-per-file", "0"]).contains("max_rows_per_file"));
    assert!(fails(&["write", &csv, &ds, "--row-group-size", "-5"]).contains("-5"));
    assert!(fails(&["write", &csv, &ds, "--partition-by", "region"]).contains("region"));
    assert!(fails(&["write", &csv, &ds, "--basename-template", "x.parquet"]).contains("x.parquet"));
    assert!(!Path::new(&ds).join("part").exists());
    ok(&["write", &csv, &ds]);
    assert!(fails(&["read", &ds, "--columns", "id,bogus"]).contains("bogus"));
    assert!(fails(&["read", &ds, "--filter", "id = "]).contains("id ="));
    assert!(fails(&["read", &ds, "--format", "parquet"]).contains("--output"));
    assert!(
        fails(&["stats", &ds, "--partition-filter", "day=2099-01-01"]).contains("day=2099-01-01")
    );
    assert!(fails(&["--storage-option", "novalue", "stats", &ds]).contains("novalue"));
    let out = fsk(&["--engine", "spark", "stats", &ds]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spark"));
}

fn csv_rows(dir: &Path, name: &str, ids: std::ops::Range<i64>, tag: &str) -> String {
    let path = dir.join(name);
    let mut text = String::from("id,day,amount,note\n");
    for id in ids {
        text.push_str(&format!("{id},2025-01-0{},{}.5,{tag}\n", 1 + id % 3, id));
    }
    std::fs::write(&path, text).expect("csv");
    path.display().to_string()
}

fn dataset_rows(ds: &str) -> Vec<String> {
    let out = ok(&["read", ds, "--format", "csv"]);
    let mut rows: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn merge_and_write_strategy_on_every_engine() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().expect("dir");
        let ds = dir.path().join("ds").display().to_string();
        let base = csv_rows(dir.path(), "base.csv", 0..30, "old");
        ok(&[
            "write",
            &base,
            &ds,
            "--partition-by",
            "day",
            "--max-rows-per-file",
            "4",
        ]);
        let change = csv_rows(dir.path(), "change.csv", 28..33, "new");
        let dry = ok(&[
            "--engine",
            engine,
            "--json",
            "merge",
            &change,
            &ds,
            "--key",
            "id",
            "--strategy",
            "upsert",
            "--dry-run",
        ]);
        let dry: Value = serde_json::from_str(dry.trim()).expect("json");
        assert_eq!(dry["dry_run"], true);
        let out = ok(&[
            "merge",
            &change,
            &ds,
            "--key",
            "id",
            "--strategy",
            "upsert",
            "--json",
            "--engine",
            engine,
        ]);
        let report: Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(report["engine"], engine);
        assert_eq!(report["updated"], 2, "{report}");
        assert_eq!(report["inserted"], 3);
        assert_eq!(report["total"], 33);
        for key in ["inserted", "updated", "deleted", "total"] {
            assert_eq!(dry[key], report[key], "dry run and real run agree on {key}");
        }
        let count = |r: &Value, k: &str| r[k].as_array().map(|a| a.len()).unwrap_or(usize::MAX);
        assert_eq!(
            count(&dry, "rewritten_files"),
            count(&report, "rewritten_files")
        );
        assert_eq!(
            count(&dry, "preserved_files"),
            count(&report, "preserved_files")
        );
        // write --strategy delegates to merge; --mode append only with insert.
        let more = csv_rows(dir.path(), "more.csv", 32..35, "newer");
        let err = fails(&[
            "write",
            &more,
            &ds,
            "--strategy",
            "upsert",
            "--key",
            "id",
            "--mode",
            "append",
        ]);
        assert!(err.contains("append") && err.contains("upsert"), "{err}");
        let out = fsk(&[
            "write",
            &more,
            &ds,
            "--strategy",
            "insert",
            "--key",
            "id",
            "--mode",
            "overwrite",
            "--json",
        ]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("warning:"));
        let report: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(report["inserted"], 2);
        assert_eq!(dataset_rows(&ds).len(), 35);
        assert!(
            fails(&[
                "merge",
                &change,
                &ds,
                "--key",
                "id",
                "--strategy",
                "merge_all"
            ])
            .contains("merge_all")
        );
        assert!(
            fails(&[
                "merge",
                &change,
                &ds,
                "--key",
                "nope",
                "--strategy",
                "upsert"
            ])
            .contains("nope")
        );
        assert!(
            fails(&[
                "merge",
                &change,
                &ds,
                "--key",
                "id",
                "--strategy",
                "full_merge",
                "--rewrite-mode",
                "incremental"
            ])
            .contains("incremental")
        );
    }
}

/// A tiny deterministic generator for kill delays (no dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Runs `fsk ARGS` 50 times on fresh datasets made by `seed`, killing it with SIGKILL after a
/// seeded random delay of up to 1.5 times its typical duration, then runs `fsk recover` and
/// hands the dataset to `check`. Asserts no staging is left and that some runs were killed.
fn kill_and_recover(
    dir: &Path,
    what: &str,
    seed: &dyn Fn(&str),
    args: &dyn Fn(&str) -> Vec<String>,
    check: &dyn Fn(usize, &str),
) {
    let reference = dir.join(format!("{what}-reference")).display().to_string();
    seed(&reference);
    let started = std::time::Instant::now();
    let reference_args = args(&reference);
    ok(&reference_args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let typical = started.elapsed().as_micros().max(1000) as u64;
    let mut rng = Lcg(20261122);
    let runs = 50;
    let (mut killed, mut finished) = (0, 0);
    for run in 0..runs {
        let ds = dir.join(format!("{what}-{run}")).display().to_string();
        seed(&ds);
        let delay = rng.next() % (typical + typical / 2);
        let mut child = Command::new(env!("CARGO_BIN_EXE_fsk"))
            .args(args(&ds))
            .env("FSK_LOG", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_micros(delay));
        match child.try_wait().expect("wait") {
            Some(_) => finished += 1,
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                killed += 1;
            }
        }
        let out = ok(&["recover", &ds, "--json"]);
        let report: Value = serde_json::from_str(out.trim()).expect("recover json");
        assert!(report["rolled_forward"].is_array() && report["rolled_back"].is_array());
        check(run, &ds);
        // Nothing of fsk's own is left: no staging, journal, lease or interrupted upload.
        let leftovers = fsk_leftovers(&ds);
        assert!(
            leftovers.is_empty(),
            "{what} run {run}: leftovers {leftovers:?}"
        );
    }
    assert!(
        killed > 0,
        "no {what} was killed mid-way ({finished} finished)"
    );
    eprintln!("{killed} of {runs} {what} runs killed mid-way, {finished} finished before the kill");
}

fn parquet_files(ds: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(ds)
        .expect("dataset folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect()
}

#[test]
fn sigkill_at_random_moments_then_recover_gives_before_or_after() {
    let dir = tempfile::tempdir().expect("dir");
    let base = csv_rows(dir.path(), "base.csv", 0..400, "old");
    let change = csv_rows(dir.path(), "change.csv", 350..450, "new");
    let seed = |ds: &str| {
        ok(&["write", &base, ds, "--max-rows-per-file", "25"]);
    };

    // Merge: the rows are exactly the before or the after state.
    let probe = dir.path().join("probe").display().to_string();
    seed(&probe);
    let before = dataset_rows(&probe);
    let merge = |ds: &str| -> Vec<String> {
        [
            "merge",
            &change,
            ds,
            "--key",
            "id",
            "--strategy",
            "upsert",
            "--max-rows-per-file",
            "25",
        ]
        .map(String::from)
        .to_vec()
    };
    ok(&merge(&probe).iter().map(String::as_str).collect::<Vec<_>>());
    let after = dataset_rows(&probe);
    assert_ne!(before, after);
    kill_and_recover(dir.path(), "merge", &seed, &merge, &|run, ds| {
        let rows = dataset_rows(ds);
        assert!(
            rows == before || rows == after,
            "merge run {run}: a mixed state"
        );
    });

    // Compact: the rows never change; the files are exactly the 16 originals or exactly
    // one new file.
    let compact = |ds: &str| -> Vec<String> { ["compact", ds].map(String::from).to_vec() };
    kill_and_recover(dir.path(), "compact", &seed, &compact, &|run, ds| {
        assert_eq!(dataset_rows(ds), before, "compact run {run}: rows changed");
        let files = parquet_files(ds);
        let originals = files.len() == 16;
        let compacted = files.len() == 1;
        assert!(
            originals || compacted,
            "compact run {run}: a mixed file set {files:?}"
        );
    });
}

#[test]
fn concurrent_writers_each_apply_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let ds = dir.path().join("ds").display().to_string();
    let base = csv_rows(dir.path(), "base.csv", 0..100, "old");
    ok(&["write", &base, &ds, "--max-rows-per-file", "20"]);
    let changes: Vec<String> = (0..4)
        .map(|w| {
            csv_rows(
                dir.path(),
                &format!("w{w}.csv"),
                (w * 30)..(w * 30 + 30),
                &format!("w{w}"),
            )
        })
        .collect();
    let children: Vec<_> = changes
        .iter()
        .map(|change| {
            Command::new(env!("CARGO_BIN_EXE_fsk"))
                .args([
                    "merge",
                    change,
                    &ds,
                    "--key",
                    "id",
                    "--strategy",
                    "upsert",
                    "--wait",
                    "60",
                ])
                .env("FSK_LOG", "off")
                .output_async()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success() || stderr.contains("conflict"),
            "{stderr}"
        );
        assert!(
            out.status.success(),
            "with --wait every writer gets its turn: {stderr}"
        );
    }
    let rows = dataset_rows(&ds);
    assert_eq!(rows.len(), 120, "every key exactly once");
    for w in 0..4 {
        let tagged = rows
            .iter()
            .filter(|r| r.ends_with(&format!(",w{w}")))
            .count();
        assert_eq!(tagged, 30, "writer {w}'s change applied exactly once");
    }
    // Without --wait a second writer gets a typed conflict while another process holds the
    // OS lock on the dataset folder (here, this test process); the holder is named from the
    // lease information file.
    let folder = std::fs::File::open(&ds).expect("dataset folder");
    folder.try_lock().expect("lock");
    let info = Path::new(&ds).join("_fsk").join("lease.json");
    std::fs::create_dir_all(info.parent().expect("parent")).expect("dir");
    std::fs::write(
        &info,
        r#"{"format_version":1,"owner":"other:1","operation":"merge","txn":"t","ttl_ms":60000,"acquired_at_ms":0}"#,
    )
    .expect("lease info");
    let err = fails(&[
        "merge",
        &changes[0],
        &ds,
        "--key",
        "id",
        "--strategy",
        "upsert",
    ]);
    assert!(err.contains("conflict") && err.contains("other:1"), "{err}");
    drop(folder);
    std::fs::remove_file(&info).expect("unlock");
    // The kernel released the lock with the file: the next writer goes ahead.
    ok(&[
        "merge",
        &changes[0],
        &ds,
        "--key",
        "id",
        "--strategy",
        "upsert",
    ]);
}

trait SpawnOutput {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnOutput for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    }
}

/// Every command on a live S3 server, on every engine. `cargo xtask test` starts the server
/// and sets `FSK_TEST_S3`; without it this test cannot run and says so.
#[test]
fn every_command_on_s3() {
    let Some(bucket) = std::env::var("FSK_TEST_S3").ok().filter(|b| !b.is_empty()) else {
        eprintln!("FSK_TEST_S3 is not set: no live S3 run here (cargo xtask test sets it)");
        return;
    };
    let bucket = bucket.trim_end_matches('/');
    let dir = tempfile::tempdir().expect("dir");
    let old = csv_rows(dir.path(), "old.csv", 0..30, "old");
    let new = csv_rows(dir.path(), "new.csv", 25..35, "new");
    for engine in ENGINES {
        let ds = format!("{bucket}/cli-{}-{engine}/sales", std::process::id());
        let e = ["--engine", engine];
        let out = ok(&[
            &e[..],
            &["write", &old, &ds, "--partition-by", "day", "--json"],
        ]
        .concat());
        let report: Value = serde_json::from_str(out.trim()).expect("write json");
        assert_eq!(report["total_rows"], 30, "{engine}");
        let out = ok(&[
            &e[..],
            &["read", &ds, "--filter", "id < 5", "--format", "csv"],
        ]
        .concat());
        assert_eq!(out.lines().count(), 6, "{engine}: header + 5 rows\n{out}");
        let out = ok(&[&e[..], &["stats", &ds, "--json"]].concat());
        let stats: Value = serde_json::from_str(out.trim()).expect("stats json");
        assert_eq!(stats["total_rows"], 30, "{engine}");
        let out = ok(&[
            &e[..],
            &[
                "merge",
                &new,
                &ds,
                "--key",
                "id",
                "--strategy",
                "upsert",
                "--json",
            ],
        ]
        .concat());
        let merge: Value = serde_json::from_str(out.trim()).expect("merge json");
        assert_eq!(
            (merge["inserted"].as_u64(), merge["updated"].as_u64()),
            (Some(5), Some(5)),
            "{engine}: {merge}"
        );
        let out = ok(&[&e[..], &["compact", &ds, "--json"]].concat());
        let compacted: Value = serde_json::from_str(out.trim()).expect("compact json");
        assert!(
            compacted["files_after"].as_u64() < compacted["files_before"].as_u64(),
            "{engine}: {compacted}"
        );
        let rows = dataset_rows(&ds);
        assert_eq!(rows.len(), 35, "{engine}");
        assert_eq!(
            rows.iter().filter(|r| r.contains(",new")).count(),
            10,
            "{rows:?}"
        );
        let out = ok(&["recover", &ds, "--json"]);
        let recovered: Value = serde_json::from_str(out.trim()).expect("recover json");
        assert_eq!(recovered["rolled_forward"], serde_json::json!([]));
        assert_eq!(recovered["rolled_back"], serde_json::json!([]));
    }

    // The endpoint as an explicit option instead of the environment.
    let endpoint = std::env::var("AWS_ENDPOINT").expect("AWS_ENDPOINT with FSK_TEST_S3");
    let ds = format!("{bucket}/cli-{}-options/sales", std::process::id());
    let option = format!("aws_endpoint={endpoint}");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fsk"))
            .args(args)
            .env("FSK_LOG", "error")
            .env_remove("AWS_ENDPOINT")
            .output()
            .expect("run fsk")
    };
    let out = run(&["write", &old, &ds, "--storage-option", &option, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["stats", &ds, "--storage-option", &option, "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats json");
    assert_eq!(stats["total_rows"], 30);
    // An unknown option is a typed error naming it.
    let out = run(&["stats", &ds, "--storage-option", "aws_no_such=1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aws_no_such"));
}

#[test]
fn compact_on_every_engine() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().expect("dir");
        let ds = dir.path().join("ds").display().to_string();
        for part in 0..4 {
            let csv = csv_rows(
                dir.path(),
                &format!("p{part}.csv"),
                part * 10..part * 10 + 10,
                "v",
            );
            ok(&[
                "--engine",
                engine,
                "write",
                &csv,
                &ds,
                "--partition-by",
                "day",
            ]);
        }
        let before = dataset_rows(&ds);
        let out = ok(&["--engine", engine, "compact", &ds, "--dry-run", "--json"]);
        let plan: Value = serde_json::from_str(out.trim()).expect("dry-run json");
        assert_eq!(plan["dry_run"], true);
        assert_eq!(plan["files_before"], 12, "{engine}: {plan}");
        assert_eq!(plan["files_after"], 3);
        assert_eq!(parquet_count(&ds), 12, "{engine}: a dry run writes nothing");

        let out = ok(&[
            "--engine",
            engine,
            "compact",
            &ds,
            "--target-file-size",
            "64MB",
            "--json",
        ]);
        let report: Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(report["engine"], engine);
        assert_eq!(report["groups"].as_array().expect("groups").len(), 3);
        assert_eq!(report["rows_rewritten"], 40);
        assert_eq!(report["target_file_size"], 64u64 << 20);
        assert_eq!(parquet_count(&ds), 3);
        assert_eq!(dataset_rows(&ds), before, "{engine}: the same rows");

        let out = ok(&["--engine", engine, "compact", &ds]);
        assert!(out.contains("3 file(s) -> 3 file(s)"), "{out}");
    }
    let err = fails(&["compact", "/nonexistent/fsk-ds"]);
    assert!(err.contains("/nonexistent/fsk-ds"), "{err}");
    let err = fails(&["compact", "/tmp", "--target-file-size", "lots"]);
    assert!(err.contains("lots"), "{err}");
}

fn parquet_count(ds: &str) -> usize {
    walk(Path::new(ds))
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && !p.components().any(|c| c.as_os_str() == "_fsk")
        })
        .count()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The failpoints, in protocol order.
const FAILPOINTS: [&str; 6] = fsk_core::commit::failpoints::ALL;

/// Every object under `ds/_fsk/` (on disk, including interrupted uploads, or on the store).
fn fsk_leftovers(ds: &str) -> Vec<String> {
    if !ds.contains("://") {
        let fsk = Path::new(ds).join("_fsk");
        return if fsk.exists() {
            walk(&fsk)
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .into_iter()
                .chain(std::iter::once(format!("{} exists", fsk.display())))
                .collect()
        } else {
            Vec::new()
        };
    }
    use futures::TryStreamExt;
    let location = fsk::Location::parse(ds).expect("location");
    let prefix = location.child("_fsk");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            location
                .store()
                .list(Some(&prefix))
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>()
                .await
                .expect("list")
        })
}

fn crashing(args: &[&str], point: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fsk"))
        .args(args)
        .env("FSK_LOG", "off")
        .env("FSK_CRASH_AT", point)
        .output()
        .expect("run fsk")
}

/// The crash matrix: a process death (abort, no destructors, no flush: as SIGKILL) at every
/// failpoint of write (overwrite), merge (upsert) and compact, on every engine, on local
/// disk and (with `FSK_TEST_S3`) on S3; then a second death inside `fsk recover` where
/// recovery publishes; then `fsk recover`. The rows are always exactly the state before or
/// after, the file set is never a mix, and `_fsk/` is empty.
#[test]
fn crash_matrix_at_every_failpoint_then_recover() {
    let dir = tempfile::tempdir().expect("dir");
    let base = csv_rows(dir.path(), "base.csv", 0..60, "old");
    let change = csv_rows(dir.path(), "change.csv", 50..70, "new");
    let mut roots = vec![dir.path().display().to_string()];
    match std::env::var("FSK_TEST_S3").ok().filter(|b| !b.is_empty()) {
        Some(bucket) => roots.push(format!(
            "{}/crash-{}",
            bucket.trim_end_matches('/'),
            std::process::id()
        )),
        None => eprintln!("FSK_TEST_S3 is not set: the crash matrix runs on local disk only"),
    }
    let ops: [(&str, Vec<&str>); 3] = [
        (
            "overwrite",
            vec![
                "write",
                &change,
                "DS",
                "--mode",
                "overwrite",
                "--max-rows-per-file",
                "5",
            ],
        ),
        (
            "upsert",
            vec![
                "merge",
                &change,
                "DS",
                "--key",
                "id",
                "--strategy",
                "upsert",
            ],
        ),
        ("compact", vec!["compact", "DS"]),
    ];
    let mut crashes = 0;
    for root in &roots {
        for engine in ENGINES {
            for (name, template) in &ops {
                let args_for = |ds: &str| -> Vec<String> {
                    let mut args = vec!["--engine".to_string(), engine.to_string()];
                    args.extend(template.iter().map(|a| {
                        if *a == "DS" {
                            ds.to_string()
                        } else {
                            a.to_string()
                        }
                    }));
                    args
                };
                let seed = |ds: &str| ok(&["write", &base, ds, "--max-rows-per-file", "20"]);
                let probe = format!("{root}/{engine}-{name}-probe");
                seed(&probe);
                let before = dataset_rows(&probe);
                ok(&args_for(&probe)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>());
                let after = dataset_rows(&probe);
                let after_count = stats_paths(&probe).len();
                for point in FAILPOINTS {
                    let ds = format!("{root}/{engine}-{name}-{point}");
                    seed(&ds);
                    let before_files = stats_paths(&ds);
                    let args = args_for(&ds);
                    let out = crashing(&args.iter().map(String::as_str).collect::<Vec<_>>(), point);
                    assert!(
                        out.status.code().is_none(),
                        "{engine} {name} {point}: the process should die at the failpoint: {:?} {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                    crashes += 1;
                    let journaled = !matches!(point, "write.close_file" | "commit.before_journal");
                    // On an object store the dead writer's lease would be taken over only
                    // after a minute of watching it; this test knows the holder is dead.
                    let recover: Vec<&str> = if ds.contains("://") {
                        vec!["recover", &ds, "--break-lease"]
                    } else {
                        vec!["recover", &ds]
                    };
                    if journaled && point != "commit.after_journal" {
                        // Die again inside recovery, where it publishes or removes.
                        let out = crashing(&recover, point);
                        assert!(
                            out.status.code().is_none() || out.status.success(),
                            "{engine} {name} {point}: recover {:?} {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    ok(&recover);
                    let rows = dataset_rows(&ds);
                    let files = stats_paths(&ds);
                    if journaled {
                        assert_eq!(rows, after, "{engine} {name} {point}: rolled forward");
                        assert_eq!(
                            files.len(),
                            after_count,
                            "{engine} {name} {point}: {files:?}"
                        );
                    } else {
                        assert_eq!(rows, before, "{engine} {name} {point}: rolled back");
                        assert_eq!(files, before_files, "{engine} {name} {point}: same files");
                    }
                    let leftovers = fsk_leftovers(&ds);
                    assert!(
                        leftovers.is_empty(),
                        "{engine} {name} {point}: {leftovers:?}"
                    );
                }
            }
        }
    }
    eprintln!("crash matrix: {crashes} crashes, each recovered to before or after");
}

/// The data files of a dataset, as `fsk stats --json` lists them.
fn stats_paths(ds: &str) -> Vec<String> {
    let out = ok(&["stats", ds, "--json"]);
    let report: Value = serde_json::from_str(out.trim()).expect("stats json");
    report["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect()
}

#[test]
fn json_output_keeps_nulls_and_exit_codes_are_typed() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let ds = dir.path().join("ds").display().to_string();
    ok(&["write", &csv, &ds]);
    let out = ok(&["read", &ds, "--format", "json", "--filter", "id = 2"]);
    let row: Value = serde_json::from_str(out.trim()).expect("json row");
    let object = row.as_object().expect("object");
    assert!(
        object.contains_key("note"),
        "the null column is kept: {out}"
    );
    assert_eq!(object["note"], Value::Null);
    assert_eq!(object.len(), 4, "every column: {out}");

    // Usage errors exit with 2, as clap's do; recover on a missing path is one.
    let missing = dir.path().join("missing").display().to_string();
    let out = fsk(&["recover", &missing]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    assert!(!Path::new(&missing).exists(), "nothing created");
    let out = fsk(&["read", &missing]);
    assert_eq!(out.status.code(), Some(2));
    for wait in ["-1", "1e19", "NaN", "inf", "604801"] {
        let out = fsk(&["recover", &ds, &format!("--wait={wait}")]);
        assert_eq!(out.status.code(), Some(2), "--wait {wait}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid wait"), "--wait {wait}: {stderr}");
    }
    // A corrupt file is not the user's command: exit 1, naming the file.
    std::fs::write(Path::new(&ds).join("bad.parquet"), b"PAR1 not really PAR1").expect("bad");
    let out = fsk(&["read", &ds]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.parquet"));
}

#[cfg(unix)]
#[test]
fn symlinks_are_never_followed_out_of_the_dataset() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let outside = dir.path().join("outside");
    ok(&["write", &csv, &outside.display().to_string()]);
    let outside_files = walk(&outside);
    assert_eq!(outside_files.len(), 1);
    let ds = dir.path().join("ds");
    ok(&["write", &csv, &ds.display().to_string()]);
    std::os::unix::fs::symlink(&outside, ds.join("linked")).expect("dir link");
    std::os::unix::fs::symlink(&outside_files[0], ds.join("linked-file.parquet"))
        .expect("file link");
    let ds = ds.display().to_string();
    let stats = stats_paths(&ds);
    assert_eq!(stats.len(), 1, "links are not data: {stats:?}");
    assert_eq!(dataset_rows(&ds).len(), 4);
    ok(&["write", &csv, &ds, "--mode", "overwrite"]);
    assert_eq!(
        walk(&outside),
        outside_files,
        "the linked folder is untouched"
    );
    assert!(outside_files[0].exists());
    assert_eq!(dataset_rows(&outside.display().to_string()).len(), 4);
}

/// A failure after the commit point is not a failure of the operation: the report says
/// `committed` with `cleanup_pending`, the exit code is 3 (a retry would add the rows twice),
/// and `fsk recover` finishes it.
#[test]
fn committed_with_cleanup_pending_exits_3() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let ds = dir.path().join("ds").display().to_string();
    ok(&["write", &csv, &ds]);
    let out = Command::new(env!("CARGO_BIN_EXE_fsk"))
        .args(["write", &csv, &ds, "--json"])
        .env("FSK_LOG", "off")
        .env("FSK_FAIL_AT", "commit.during_publish")
        .output()
        .expect("run fsk");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("committed; cleanup pending") && stderr.contains("fsk recover"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["committed"], true);
    assert!(
        report["cleanup_pending"]
            .as_str()
            .is_some_and(|m| m.contains("failpoint")),
        "{report}"
    );
    let err = fails(&["read", &ds]);
    assert!(err.contains("unfinished transaction"), "{err}");
    let out = ok(&["recover", &ds, "--json"]);
    let recovered: Value = serde_json::from_str(out.trim()).expect("recover json");
    assert_eq!(
        recovered["rolled_forward"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(dataset_rows(&ds).len(), 8, "both writes, each once");
    let clean: Value =
        serde_json::from_str(ok(&["write", &csv, &ds, "--json"]).trim()).expect("json");
    assert_eq!(
        (
            clean["committed"].as_bool(),
            clean["cleanup_pending"].is_null()
        ),
        (Some(true), true)
    );
}

/// `--memory-limit` and `--spill-dir` reach the engine's key match: a merge under a small
/// limit gives the same rows on every engine, the report names the engine that matched keys,
/// and bad values are usage errors naming the flag.
#[test]
fn memory_limit_and_spill_dir_reach_the_key_match() {
    let dir = tempfile::tempdir().expect("dir");
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).expect("spill dir");
    let spill = spill.display().to_string();
    let base = csv_rows(dir.path(), "base.csv", 0..300, "old");
    let change = csv_rows(dir.path(), "change.csv", 250..400, "new");
    let mut results = Vec::new();
    for engine in ENGINES {
        let ds = dir.path().join(engine).display().to_string();
        ok(&["write", &base, &ds, "--max-rows-per-file", "50"]);
        let out = ok(&[
            "--engine",
            engine,
            "--memory-limit",
            "48MiB",
            "--spill-dir",
            &spill,
            "--json",
            "merge",
            &change,
            &ds,
            "--key",
            "id",
            "--strategy",
            "upsert",
        ]);
        let report: Value = serde_json::from_str(out.trim()).expect("json");
        let matcher = if engine == "arrow" {
            "arrow-rs"
        } else {
            engine
        };
        assert_eq!(
            report["execution"]["key_match"], matcher,
            "{engine}: {report}"
        );
        assert_eq!(report["updated"], 50, "{engine}: {report}");
        assert_eq!(report["inserted"], 100, "{engine}: {report}");
        results.push(dataset_rows(&ds));
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "same rows on every engine"
    );
    assert_eq!(results[0].len(), 400);
    let ds = dir.path().join("arrow").display().to_string();
    let err = fails(&[
        "--memory-limit",
        "0",
        "merge",
        &change,
        &ds,
        "--key",
        "id",
        "--strategy",
        "upsert",
    ]);
    assert!(err.contains("memory-limit"), "{err}");
    let missing = dir.path().join("nowhere").display().to_string();
    let err = fails(&[
        "--spill-dir",
        &missing,
        "merge",
        &change,
        &ds,
        "--key",
        "id",
        "--strategy",
        "upsert",
    ]);
    assert!(
        err.contains("spill-dir") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn sql_on_both_sql_engines_with_tables_params_and_formats() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let ds = dir.path().join("sales").display().to_string();
    ok(&["write", &csv, &ds, "--partition-by", "day"]);
    let query = "SELECT day, CAST(count(*) AS BIGINT) AS n, sum(amount) AS total FROM sales \
                 WHERE amount > ? GROUP BY day ORDER BY day";
    let mut outputs = Vec::new();
    for engine in ["duckdb", "datafusion"] {
        let table = format!("sales={ds}");
        let csv_out = ok(&[
            "--engine", engine, "sql", query, "--table", &table, "--param", "2", "--format", "csv",
        ]);
        assert_eq!(
            csv_out, "day,n,total\n2025-01-01,2,13.75\n2025-01-02,1,7.0\n",
            "{engine}"
        );
        outputs.push(csv_out);
        // One dataset and no --table: it is table `t`.
        let json = ok(&[
            "--engine",
            engine,
            "sql",
            &ds,
            "SELECT id FROM t WHERE note = ? ORDER BY id",
            "--param",
            "STR:c",
            "--format",
            "json",
        ]);
        assert_eq!(json.trim(), r#"{"id":3}"#, "{engine}");
        let err = fails(&["--engine", engine, "sql", &ds, "SELECT nope FROM t"]);
        assert!(err.contains("unknown column"), "{engine}: {err}");
        let out = fsk(&["--engine", engine, "sql", &ds, "SELEC 1"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{engine}: a syntax error is a usage error"
        );
    }
    assert_eq!(outputs[0], outputs[1]);
    // Without --engine, sql runs on DuckDB (the first SQL engine built in).
    let out = ok(&[
        "sql",
        &ds,
        "SELECT CAST(count(*) AS BIGINT) AS n FROM t",
        "--format",
        "csv",
    ]);
    assert_eq!(out, "n\n4\n");
    // The arrow engine has no SQL: a typed error.
    let err = fails(&["--engine", "arrow", "sql", &ds, "SELECT 1"]);
    assert!(err.contains("not supported by the arrow engine"), "{err}");
}

#[test]
fn dedup_and_compact_by_rows_on_every_engine() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().expect("dir");
        let csv = sample_csv(dir.path());
        let ds = dir.path().join("ds").display().to_string();
        // The same four rows twice: every row has a duplicate.
        ok(&["--engine", engine, "write", &csv, &ds]);
        ok(&["--engine", engine, "write", &csv, &ds]);
        let report: Value = serde_json::from_str(&ok(&[
            "--engine",
            engine,
            "dedup",
            &ds,
            "--key",
            "id",
            "--dry-run",
            "--json",
        ]))
        .expect("json");
        assert_eq!(report["removed_rows"], 4, "{engine}: {report}");
        assert_eq!(report["dry_run"], true);
        let report: Value = serde_json::from_str(&ok(&[
            "--engine", engine, "dedup", &ds, "--key", "id", "--json",
        ]))
        .expect("json");
        assert_eq!(report["after_row_count"], 4, "{engine}: {report}");
        assert_eq!(report["engine"], engine);
        assert_eq!(dataset_rows(&ds).len(), 4);
        let err = fails(&["--engine", engine, "dedup", &ds, "--key", "nope"]);
        assert!(err.contains("nope"), "{err}");

        // Rows 1..=4 in one file: --target-rows 1 splits it into four files.
        let report: Value = serde_json::from_str(&ok(&[
            "--engine",
            engine,
            "compact",
            &ds,
            "--target-rows",
            "1",
            "--json",
        ]))
        .expect("json");
        assert_eq!(report["after_file_count"], 4, "{engine}: {report}");
        assert_eq!(parquet_count(&ds), 4);
        let out = fsk(&["--engine", engine, "compact", &ds, "--target-rows", "0"]);
        assert_eq!(out.status.code(), Some(2), "{engine}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("target-rows"));
        assert_eq!(dataset_rows(&ds).len(), 4);
    }
}

#[test]
fn optimize_on_every_engine() {
    for engine in ENGINES {
        let dir = tempfile::tempdir().expect("dir");
        let csv = sample_csv(dir.path());
        let ds = dir.path().join("ds").display().to_string();
        ok(&["--engine", engine, "write", &csv, &ds]);
        ok(&["--engine", engine, "write", &csv, &ds]);
        let report: Value = serde_json::from_str(&ok(&[
            "--engine",
            engine,
            "optimize",
            &ds,
            "--zorder",
            "amount,day",
            "--target-rows",
            "3",
            "--dedup-key",
            "id",
            "--json",
        ]))
        .expect("json");
        assert_eq!(report["engine"], engine, "{report}");
        assert_eq!(report["compacted_file_count"], 2, "{engine}: {report}");
        assert_eq!(report["deduplicated_rows"], 4, "{engine}: {report}");
        assert_eq!(
            report["zorder_columns"],
            serde_json::json!(["amount", "day"])
        );
        assert_eq!(report["curve"], "zorder");
        let sorter = if engine == "arrow" {
            "arrow-rs"
        } else {
            engine
        };
        assert_eq!(report["execution"]["sort"], sorter, "{report}");
        for key in [
            "before_file_count",
            "after_file_count",
            "before_total_bytes",
            "after_total_bytes",
            "rewritten_bytes",
            "compression_codec",
            "dry_run",
            "planned_groups",
            "zorder_quality_before",
            "zorder_quality_after",
        ] {
            assert!(report.get(key).is_some(), "{engine}: {key} in {report}");
        }
        assert_eq!(dataset_rows(&ds).len(), 4);
        assert_eq!(parquet_count(&ds), 2, "four rows, at most three per file");
        // The same request again: a no-op.
        let again: Value = serde_json::from_str(&ok(&[
            "--engine",
            engine,
            "optimize",
            &ds,
            "--zorder",
            "amount,day",
            "--target-rows",
            "3",
            "--dedup-key",
            "id",
            "--json",
        ]))
        .expect("json");
        assert_eq!(again["compacted_file_count"], 0, "{engine}: {again}");
        assert_eq!(again["committed"], false);
        let err = fails(&["--engine", engine, "optimize", &ds, "--zorder", "nope"]);
        assert!(err.contains("nope") && err.contains("amount"), "{err}");
        let out = fsk(&[
            "--engine", engine, "optimize", &ds, "--zorder", "id", "--curve", "peano",
        ]);
        assert_eq!(out.status.code(), Some(2), "{engine}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("curve"));
        let out = fsk(&[
            "--engine",
            engine,
            "optimize",
            &ds,
            "--zorder",
            "id",
            "--target-rows",
            "-1",
        ]);
        assert_eq!(out.status.code(), Some(2), "{engine}");
        assert_eq!(dataset_rows(&ds).len(), 4);
    }
}

#[test]
fn repeated_partition_filters_match_any() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = sample_csv(dir.path());
    let ds = dir.path().join("ds").display().to_string();
    for _ in 0..2 {
        ok(&["write", &csv, &ds, "--partition-by", "day"]);
    }
    for command in ["optimize", "compact", "dedup"] {
        let mut args = vec![command, ds.as_str()];
        if command == "optimize" {
            args.extend(["--zorder", "amount"]);
        }
        args.extend([
            "--partition-filter",
            "day=2025-01-01",
            "--partition-filter",
            "day=2025-01-03",
            "--dry-run",
            "--json",
        ]);
        let report: Value = serde_json::from_str(&ok(&args)).expect("json");
        // Two folders of the three, two files each.
        assert_eq!(report["before_file_count"], 4, "{command}: {report}");
    }
}

#[test]
fn progress_is_shown_as_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let ds = dir.path().join("ds").display().to_string();
    for part in 0..3 {
        let csv = csv_rows(
            dir.path(),
            &format!("p{part}.csv"),
            part * 10..part * 10 + 10,
            "v",
        );
        // Off a terminal, auto shows nothing.
        let out = fsk(&["write", &csv, &ds]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).is_empty(),
            "auto off a terminal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Always, off a terminal: plain lines naming each phase with its total.
    let out = fsk(&["--progress", "always", "compact", &ds]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let rewrite = lines
        .iter()
        .find(|l| l.starts_with("fsk: rewrite: "))
        .unwrap_or_else(|| panic!("a rewrite line: {stderr}"));
    assert!(rewrite.contains("B"), "a byte total: {rewrite}");
    for phase in ["plan", "rewrite", "commit"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("fsk: {phase} done"))),
            "{phase} ends: {stderr}"
        );
    }
    // The ended rewrite counted exactly its total.
    let total = rewrite.trim_start_matches("fsk: rewrite: ");
    let done = lines
        .iter()
        .find_map(|l| l.strip_prefix("fsk: rewrite done: "))
        .expect("rewrite done");
    assert!(done.starts_with(total), "{done} vs {total}");
    // --quiet and --progress never win over always; stdout stays the report.
    for quiet in [
        vec!["--quiet", "--progress", "always"],
        vec!["--progress", "never"],
    ] {
        let mut args = quiet.clone();
        let csv = csv_rows(dir.path(), "m.csv", 0..5, "m");
        args.extend(["merge", csv.as_str(), ds.as_str()]);
        args.extend(["--key", "id", "--strategy", "upsert", "--json"]);
        let out = fsk(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
        assert_eq!(report["updated"], 5);
    }
    let err = fails(&["--progress", "sometimes", "stats", &ds]);
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn merge_source_spill_is_chosen_and_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let seed = csv_rows(dir.path(), "seed.csv", 0..40, "old");
    let change = csv_rows(dir.path(), "change.csv", 30..60, "new");
    let upsert = |ds: &str, spill: &str| -> Vec<String> {
        [
            "merge",
            &change,
            ds,
            "--key",
            "id",
            "--strategy",
            "upsert",
            "--source-spill",
            spill,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let run = |args: &[String], succeed: bool| -> String {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if succeed { ok(&args) } else { fails(&args) }
    };
    let mut results = Vec::new();
    for spill in ["never", "always"] {
        let ds = dir.path().join(format!("ds-{spill}")).display().to_string();
        ok(&["write", &seed, &ds, "--partition-by", "day"]);
        let mut args = vec!["--json".to_string()];
        args.extend(upsert(&ds, spill));
        let report: Value = serde_json::from_str(&run(&args, true)).expect("json report");
        assert_eq!(report["inserted"], 20, "{report}");
        assert_eq!(report["updated"], 10, "{report}");
        let spilled = report["source_spilled_bytes"]
            .as_u64()
            .expect("spilled bytes");
        assert_eq!(spilled > 0, spill == "always", "{report}");
        assert_eq!(
            report["execution"]["sort"].as_str(),
            (spill == "always").then_some("arrow-rs"),
            "{report}"
        );
        results.push(dataset_rows(&ds));
    }
    assert_eq!(results[0], results[1], "the same rows either way");
    // The human report says it, and a bad value is a typed error naming the flag.
    let ds = dir.path().join("ds-text").display().to_string();
    ok(&["write", &seed, &ds]);
    let text = run(&upsert(&ds, "always"), true);
    assert!(
        text.contains("source: sorted by arrow-rs and spilled"),
        "{text}"
    );
    let err = run(&upsert(&ds, "maybe"), false);
    assert!(
        err.contains("source_spill") && err.contains("auto, always, never"),
        "{err}"
    );
    let err = fails(&["write", &change, &ds, "--source-spill", "always"]);
    assert!(err.contains("--source-spill"), "{err}");
}
