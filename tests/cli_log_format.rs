//! `[log] format` (issue 20): "json" writes one JSON object a line for log shippers (parsed
//! here by Python's json module), the default stays human-readable text (what the fail2ban
//! filter in contrib/ reads), and an unknown format is refused at config load.

mod common;
use common::*;

use std::process::Command;

#[test]
fn json_format_writes_one_object_per_line() {
    let p = Postern::start_with(Setup {
        extra: "[log]\nformat = \"json\"\n".into(),
        ..Setup::default()
    });
    let log = p.log();
    let started = log
        .lines()
        .find(|l| l.contains("postern started"))
        .unwrap_or_else(|| panic!("{log}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.jsonl");
    std::fs::write(&file, &log).unwrap();
    let out = python(&format!(
        r#"
import json
lines = open({file:?}).read().splitlines()
assert lines, "empty log"
for line in lines:
    o = json.loads(line)
    assert isinstance(o, dict), line
    for key in ("timestamp", "level", "message"):
        assert key in o, (key, line)
started = [json.loads(l) for l in lines if "postern started" in l]
assert started and started[0]["level"] == "INFO", started
print("ok", len(lines))
"#,
        file = path_str(&file)
    ));
    assert!(out.starts_with("ok "), "{out}\nline: {started}");
}

#[test]
fn text_is_the_default_format() {
    let p = Postern::start();
    let log = p.log();
    let started = log
        .lines()
        .find(|l| l.contains("postern started"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!started.trim_start().starts_with('{'), "{started}");
    assert!(started.contains(" INFO "), "{started}");
}

#[test]
fn an_unknown_log_format_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(
        &cfg,
        format!(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"{}\"\n[log]\nformat = \"xml\"\n",
            path_str(&dir.path().join("data"))
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with format = \"xml\": {err}"
    );
    assert!(err.contains("xml") && err.contains("json"), "{err}");
    assert!(!dir.path().join("data").exists(), "data_dir created: {err}");
}
