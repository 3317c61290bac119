//! ImapFlow (npm `imapflow`, the IMAP library behind many JS mail apps) against the real
//! binary: STARTTLS and implicit TLS, SPECIAL-USE list, envelope/bodystructure/source of an
//! SMTP delivery, flags, MOVE, delete, IDLE push, APPEND, search, COPY, colour flags,
//! folder management, flag and expunge pushes from a second session. The node script is
//! tests/clients/node/imapflow.mjs; `tests/setup-peers.sh` runs `npm ci` there.
mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

const USER: &str = "dana@example.test";
const PASS: &str = "danas imapflow password";

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node")
}

#[test]
fn imapflow_client() {
    if !peers::imapflow(&node_dir()).available() {
        return;
    }
    let p = Postern::start();
    p.add_user(USER, PASS);
    let cfg = json!({
        "user": USER, "pass": PASS,
        "imap": p.ports.imap, "imaps": p.ports.imaps, "smtp": p.ports.smtp,
    });
    let out = Command::new("node")
        .current_dir(node_dir())
        .arg("imapflow.mjs")
        .arg(cfg.to_string())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON from the script ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "imapflow script failed:\n{}",
        serde_json::to_string_pretty(&v).unwrap()
    );
    let show = serde_json::to_string_pretty(&v).unwrap();
    println!("{show}");
    // No command of the whole run was answered NO or BAD (as the client saw it and as the
    // server logged it).
    assert_eq!(v["refused"], json!([]), "{show}");
    assert!(!p.log().contains("imap reply:"), "{}", p.log());
    // Both connection styles ended up encrypted and logged in.
    assert_eq!(
        v["starttls"],
        json!({"secure": true, "authenticated": true, "inbox": 0}),
        "{show}"
    );
    assert_eq!(v["secure"], json!(true), "{show}");
    for cap in [
        "IDLE",
        "MOVE",
        "UIDPLUS",
        "SPECIAL-USE",
        "LIST-STATUS",
        "BINARY",
    ] {
        assert!(
            v["caps"].as_array().unwrap().contains(&json!(cap)),
            "{cap}: {show}"
        );
    }
    let folder = |path: &str, use_: &str| json!({"path": path, "specialUse": use_});
    assert_eq!(
        v["list"],
        json!([
            folder("Archive", "\\Archive"),
            folder("Drafts", "\\Drafts"),
            folder("INBOX", "\\Inbox"),
            folder("Junk", "\\Junk"),
            folder("Sent", "\\Sent"),
            folder("Trash", "\\Trash"),
        ]),
        "{show}"
    );
    assert_eq!(
        v["open"],
        json!({"path": "INBOX", "exists": 1, "uidValidity": true, "uidNext": 2}),
        "{show}"
    );
    // Envelope and body structure as ImapFlow parsed them from the SMTP delivery.
    let f = &v["fetch"];
    assert_eq!(f["uid"], 1, "{show}");
    assert_eq!(f["subject"], "first message", "{show}");
    assert_eq!(f["from"], json!(["Sender <sender@remote.test>"]), "{show}");
    assert_eq!(f["to"], json!([USER]), "{show}");
    assert_eq!(f["messageId"], "<first@remote.test>", "{show}");
    assert_eq!(f["date"], "2026-11-29T08:00:00.000Z", "{show}");
    assert!(
        !f["flags"].as_array().unwrap().contains(&json!("\\Seen")),
        "{show}"
    );
    assert_eq!(
        f["bodyStructure"],
        json!({
            "type": "multipart/alternative",
            "parameters": {"boundary": "b1"},
            "children": [
                {"part": "1", "type": "text/plain", "parameters": {"charset": "utf-8"}, "size": 10, "encoding": "7bit"},
                {"part": "2", "type": "text/html", "parameters": {"charset": "utf-8"}, "size": 16, "encoding": "7bit"},
            ],
        }),
        "{show}"
    );
    // The source is the stored message (with the Received/auth headers postern prepends).
    assert_eq!(f["sourceHasBody"], true, "{show}");
    assert_eq!(f["size"], f["sourceLen"], "{show}");
    assert_eq!(v["part1"], "plain body", "{show}");
    // Flags: +(\Seen \Flagged $Label1) then -(\Flagged).
    let flags: Vec<&str> = v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .filter(|x| *x != "\\Recent")
        .collect();
    assert_eq!(flags, ["$Label1", "\\Seen"], "{show}");
    // MOVE with COPYUID, then the message (with its flags) is in Archive and gone from INBOX.
    assert_eq!(
        v["move"],
        json!({"destination": "Archive", "mapped": [[1, 1]]}),
        "{show}"
    );
    assert_eq!(v["inboxAfterMove"], 0, "{show}");
    let a = &v["archive"];
    assert_eq!(a["exists"], 1, "{show}");
    assert_eq!(a["subject"], "first message", "{show}");
    assert!(
        a["flags"].as_array().unwrap().contains(&json!("$Label1")),
        "{show}"
    );
    assert_eq!(a["deleted"], true, "{show}");
    assert_eq!(a["existsAfterDelete"], 0, "{show}");
    // IDLE: the second SMTP delivery was pushed as EXISTS.
    assert_eq!(
        v["idle"],
        json!({"path": "INBOX", "count": 1, "prevCount": 0, "before": 0, "subject": "pushed while idle"}),
        "{show}"
    );
    // APPEND to Sent: APPENDUID, same bytes back, flags and internal date kept.
    let ap = &v["append"];
    assert_eq!(ap["destination"], "Sent", "{show}");
    assert_eq!(ap["uid"], 1, "{show}");
    assert_eq!(ap["uidValidity"], true, "{show}");
    assert_eq!(ap["exists"], 1, "{show}");
    assert_eq!(ap["same"], true, "{show}");
    assert!(
        ap["flags"].as_array().unwrap().contains(&json!("\\Seen")),
        "{show}"
    );
    assert_eq!(ap["internalDate"], "2026-11-29T08:00:00.000Z", "{show}");
    // LIST-STATUS over every folder.
    let st = |m: u32, u: u32| json!({"messages": m, "unseen": u});
    assert_eq!(
        v["status"],
        json!({
            "INBOX": st(1, 1), "Archive": st(0, 0), "Drafts": st(0, 0),
            "Junk": st(0, 0), "Sent": st(1, 0), "Trash": st(0, 0),
        }),
        "{show}"
    );
    // Search, range fetch, Apple Mail colour flags, COPY with COPYUID, folder management
    // with modified UTF-7 names (ImapFlow encodes and decodes them).
    assert_eq!(
        v["extras"],
        json!({
            "unseen": [2], "bySubject": [2], "byHeader": [2], "none": [],
            "range": [{"uid": 2, "subject": "Subject: pushed while idle", "part1": "plain body"}],
            "colour": ["$MailFlagBit2", "\\Flagged"], "flagColor": "blue",
            "copy": {"destination": "Trash", "mapped": [[2, 1]]},
            "folders": ["Projects", "Projects.Übersicht"],
            "subscribed": ["Projects.Übersicht"],
            "afterDelete": ["Projects"],
        }),
        "{show}"
    );
    // Pushed to an idling session: another session's STORE and its EXPUNGE (as VANISHED
    // with the UID once QRESYNC is enabled, RFC 7162 §3.2.10).
    let qresync = v["enabled"].as_array().unwrap().contains(&json!("QRESYNC"));
    let expunge = if qresync {
        json!({"seq": null, "uid": 2, "vanished": true})
    } else {
        json!({"seq": 1, "uid": null, "vanished": false})
    };
    assert_eq!(
        v["push"],
        json!({
            "flags": {"seq": 1, "uid": 2, "flags": ["$MailFlagBit2", "\\Answered", "\\Flagged"]},
            "expunge": expunge,
            "exists": 0,
        }),
        "{show}"
    );
    // The same on disk: Sent holds the appended copy, Archive is empty again.
    assert_eq!(p.messages(USER, "Sent").len(), 1);
    assert_eq!(p.messages(USER, "Archive").len(), 0);
    assert_eq!(p.messages(USER, "Trash").len(), 1);
    assert_eq!(p.messages(USER, "").len(), 0);
}
