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
        let out = ok(&["--engine", engine, "write", &csv, &ds, "--partition-by", "day", "--json"]);
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
        let out = ok(&["read", &ds, "--filter", "day = '2025-01-01' AND amount > 5", "--format", "json", "--engine", engine]);
        let rows: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("row")).collect();
        assert_eq!(rows.len(), 1, "{engine}: {out}");
        assert_eq!(rows[0]["id"], 1);
        assert_eq!(rows[0]["day"], "2025-01-01");

        let out = ok(&["read", &ds, "--columns", "amount,id", "--format", "csv", "--limit", "2", "--filter", "id >= 2"]);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("amount,id"));
        assert_eq!(lines.count(), 2);

        let out = ok(&["--json", "stats", &ds, "--partition-filter", "day=2025-01-01"]);
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
    ok(&["write", &csv, &ds, "--max-rows-per-file", "3", "--compression", "zstd:3"]);
    let out_file = dir.path().join("out.parquet").display().to_string();
    ok(&["read", &ds, "--format", "parquet", "--output", &out_file]);
    // The parquet output is a valid source in turn.
    let ds2 = dir.path().join("ds2").display().to_string();
    let out = ok(&["write", &out_file, &ds2, "--json"]);
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["total_rows"], 4);
    let out = ok(&["write", &csv, &ds, "--mode", "overwrite", "--json", "--basename-template", "data_{}.parquet"]);
    let report: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["mode"], "overwrite");
    let out = ok(&["--json", "stats", &ds]);
    let stats: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(stats["total_rows"], 4);
    assert!(stats["files"].as_array().expect("files").iter().all(|f| f["path"].as_str().unwrap_or("").starts_with("data_")));
}

#[test]
fn json_sources_and_explicit_format() {
    let dir = tempfile::tempdir().expect("dir");
    let src = dir.path().join("events.txt");
    std::fs::write(&src, "{\"id\": 1, \"kind\": \"a\"}\n{\"id\": 2, \"kind\": null}\n").expect("write");
    let ds = dir.path().join("ds").display().to_string();
    let out = ok(&["write", src.to_str().expect("path"), &ds, "--source-format", "json", "--json"]);
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
    assert!(fails(&["stats", &ds, "--partition-filter", "day=2099-01-01"]).contains("day=2099-01-01"));
    assert!(fails(&["--storage-option", "novalue", "stats", &ds]).contains("novalue"));
    let out = fsk(&["--engine", "spark", "stats", &ds]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spark"));
}
