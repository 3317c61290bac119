//! Delta Chat (PyPI deltachat-rpc-server + deltachat-rpc-client, the Rust core behind the
//! Delta Chat apps) against the real binary: two accounts configured with explicit servers on
//! loopback exchange messages both ways through postern's submission and IMAP: text, a
//! 200 KiB file, a read receipt.
//! The script is tests/clients/deltachat_pair.py; `tests/setup-peers.sh` installs the packages.
mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

const A: &str = "anna@example.test";
const B: &str = "bert@example.test";
const PASS_A: &str = "annas delta password";
const PASS_B: &str = "berts delta password";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/deltachat_pair.py")
}

#[test]
fn deltachat_pair() {
    if !peers::deltachat().available() {
        return;
    }
    let p = Postern::start();
    p.add_user(A, PASS_A);
    p.add_user(B, PASS_B);
    let cfg = json!({
        "a": A, "a_pass": PASS_A, "b": B, "b_pass": PASS_B,
        "imap": p.ports.imap, "imaps": p.ports.imaps,
        "submission": p.ports.submission, "submissions": p.ports.submissions,
    });
    let out = Command::new("python3")
        .arg(script())
        .arg(cfg.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "delta chat script failed:\n{stdout}\n{stderr}"
    );
    let v: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{stdout}\n{stderr}"));
    let show = serde_json::to_string_pretty(&v).unwrap();
    println!("{show}");
    // Both accounts configured (IMAP and SMTP login, folder scan) against postern.
    assert_eq!(v["configured"], json!([true, true]), "{show}");
    // A -> B and B -> A, end-to-end encrypted, through submission and IMAP IDLE.
    assert_eq!(
        v["b_got"],
        json!({"text": "hello from A over postern", "from": A}),
        "{show}"
    );
    assert_eq!(
        v["a_got"],
        json!({"text": "hello back from B", "from": B}),
        "{show}"
    );
    // A 200 KiB file (pre-message, then the full message downloaded on demand), intact.
    assert_eq!(
        v["a_got_file"],
        json!({"text": "the report", "name": "report.bin", "same": true}),
        "{show}"
    );
    // 26 = delivered (SMTP accepted it), 28 = B's read receipt came back over IMAP.
    assert_eq!(v["a_sent_state"], 26, "{show}");
    assert_eq!(v["a_sent_state_after_mdn"], 28, "{show}");
    // The core reported no trouble, and postern refused no command.
    assert_eq!(v["warnings"], json!([]), "{show}");
    assert_eq!(v["errors"], json!([]), "{show}");
    assert!(!p.log().contains("imap reply:"), "{}", p.log());
    // Delta Chat deletes what it downloaded (UID STORE \Deleted, then CLOSE): both
    // inboxes end empty, the expunge worked.
    assert_eq!(p.messages(A, "").len(), 0, "{show}");
    assert_eq!(p.messages(B, "").len(), 0, "{show}");
}
