//! Differential test of the Sieve interpreter against Dovecot Pigeonhole's `sieve-test`
//! (Debian `dovecot-sieve`): every script of tests/sieve/corpus runs on every message there,
//! through `postern sieve test` and through `sieve-test`, and the normalised action sets
//! must agree — stores (mailbox + flags, explicit or implicit keep alike), redirects,
//! discard, reject, vacation yes/no, and "the script failed". Known, explained differences
//! are listed in `EXPECTED_DIFFERENCES`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BIN, client_available, which};

const ENVELOPE_FROM: &str = "sender@remote.example";
const ENVELOPE_TO: &str = "me+tag@example.com";

/// (script, action only Pigeonhole takes, why): on any message, that one action may appear
/// on Pigeonhole's side alone; everything else must still agree. Add a line with the reason
/// rather than weakening the comparison.
const EXPECTED_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "header_matches_wild",
    "store Q",
    "Pigeonhole 0.5.19 lets a pattern that starts with '?', a literal, then '*' match \
     values whose next characters are not that literal (\"?b*\" matches \"xyz\", \"??nch*\" \
     matches \"[dev] Weekly report\"). RFC 5228 §2.7.1: '?' is exactly one character and \
     the rest must match literally; postern follows the RFC. header_matches_strict runs the \
     same script without that pattern and agrees.",
)];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sieve/corpus")
}

fn files(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn flags_norm(flags: &str) -> String {
    let mut f: Vec<String> = flags
        .split_whitespace()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    f.sort();
    f.dedup();
    f.join(" ")
}

fn store(mailbox: &str, flags: &str) -> String {
    let f = flags_norm(flags);
    if f.is_empty() {
        format!("store {mailbox}")
    } else {
        format!("store {mailbox} flags={f}")
    }
}

/// Reads one "…" string of postern's output starting at `s[0] == '"'`; returns it and the rest.
fn unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => match it.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, c)) => out.push(c),
                None => break,
            },
            '"' => return (out, &s[i + 1..]),
            c => out.push(c),
        }
    }
    (out, "")
}

fn postern_actions(script: &Path, msg: &Path) -> BTreeSet<String> {
    let out = Command::new(BIN)
        .args(["sieve", "test"])
        .arg(script)
        .arg(msg)
        .args([
            "--envelope-from",
            ENVELOPE_FROM,
            "--envelope-to",
            ENVELOPE_TO,
        ])
        .env("POSTERN_LOG", "off")
        .output()
        .unwrap();
    let mut set = BTreeSet::new();
    if !out.status.success() {
        set.insert("compile-error".to_string());
        return set;
    }
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let line = line.trim_end_matches(" # implicit");
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut flags = String::new();
        let mut rest = rest;
        let mut last = String::new();
        // Tags and strings in order: ":flags" "…", ":copy", ":create", then the argument.
        while !rest.is_empty() {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(":flags ") {
                let (f, r) = unquote(r);
                flags = f;
                rest = r;
            } else if rest.starts_with('"') {
                let (s, r) = unquote(rest);
                last = s;
                rest = r;
            } else {
                rest = rest.split_once(' ').map_or("", |(_, r)| r);
            }
        }
        set.insert(match word {
            "keep" => store("INBOX", &flags),
            "fileinto" => store(&last, &flags),
            "redirect" => format!("redirect {last}"),
            "vacation" => "vacation".into(),
            "reject" | "ereject" => "reject".into(),
            "discard" => "discard".into(),
            "error:" => {
                set.clear();
                set.insert("error".into());
                return set;
            }
            other => panic!("unexpected postern output line {other:?}"),
        });
    }
    set
}

fn pigeonhole_actions(dir: &Path, script: &Path, msg: &Path) -> BTreeSet<String> {
    let mut cmd = if unsafe { libc_geteuid() } == 0 {
        // sieve-test refuses to run as root ("Mail access not allowed for root").
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "sieve-test"]);
        c
    } else {
        Command::new("sieve-test")
    };
    let out = cmd
        .arg("-c")
        .arg(dir.join("dc.conf"))
        .args(["-f", ENVELOPE_FROM, "-r", ENVELOPE_TO])
        .arg(script)
        .arg(msg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut set = BTreeSet::new();
    if stderr.contains("failed to compile sieve script") {
        set.insert("compile-error".to_string());
        return set;
    }
    if stderr.contains("final result: failed") {
        set.insert("error".to_string());
        return set;
    }
    assert!(
        out.status.success(),
        "sieve-test failed:\n{stdout}\n{stderr}"
    );
    let mut pending: Option<(String, String)> = None;
    let flush = |p: &mut Option<(String, String)>, set: &mut BTreeSet<String>| {
        if let Some((m, f)) = p.take() {
            set.insert(store(&m, &f));
        }
    };
    let mut in_message = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t == "START MESSAGE" {
            in_message = true;
            continue;
        }
        if t == "END MESSAGE" {
            in_message = false;
            continue;
        }
        if in_message {
            continue;
        }
        if let Some(f) = t.strip_prefix("+ add IMAP flags: ") {
            if let Some((_, flags)) = pending.as_mut() {
                flags.push(' ');
                flags.push_str(f);
            }
            continue;
        }
        if t.starts_with('+') || t.starts_with("=>") {
            continue;
        }
        let Some(a) = t.strip_prefix("* ") else {
            continue;
        };
        flush(&mut pending, &mut set);
        if let Some(m) = a.strip_prefix("store message in folder: ") {
            pending = Some((m.to_string(), String::new()));
        } else if let Some(r) = a.strip_prefix("redirect message to: ") {
            set.insert(format!(
                "redirect {}",
                r.trim_start_matches('<').trim_end_matches('>')
            ));
        } else if a.starts_with("send vacation message") {
            set.insert("vacation".into());
        } else if a.starts_with("reject message") {
            set.insert("reject".into());
        } else if a == "discard" {
            set.insert("discard".into());
        } else {
            panic!("unknown sieve-test action line {a:?}\n{stdout}");
        }
    }
    flush(&mut pending, &mut set);
    set
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn corpus_agrees_with_pigeonhole() {
    if !client_available("sieve-test (Debian dovecot-sieve)", which("sieve-test")) {
        return;
    }
    let scripts = files("sieve");
    let messages = files("eml");
    assert!(scripts.len() >= 40, "corpus has {} scripts", scripts.len());
    // A directory `nobody` can read and write (sieve-test saves compiled binaries beside
    // the script), holding copies of the corpus and a config of its own.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(
        dir.join("dc.conf"),
        format!(
            "mail_uid = nobody\nmail_gid = nogroup\nmail_location = maildir:{}/mail\nprotocols =\n\
             first_valid_uid = 1\nfirst_valid_gid = 1\nlog_path = /dev/stderr\n\
             plugin {{\n  sieve_extensions = +vacation-seconds\n}}\n",
            dir.display()
        ),
    )
    .unwrap();
    let copy = |p: &Path| {
        let to = dir.join(p.file_name().unwrap());
        std::fs::copy(p, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o666)).unwrap();
        to
    };
    let messages: Vec<PathBuf> = messages.iter().map(|m| copy(m)).collect();
    let mut failures = Vec::new();
    let mut compared = 0;
    // Every kind of outcome must show up on Pigeonhole's side somewhere in the corpus, or
    // the output parsing above has silently stopped seeing it.
    let mut kinds = BTreeSet::new();
    for s in &scripts {
        let s = copy(s);
        let sname = s.file_stem().unwrap().to_string_lossy().into_owned();
        for m in &messages {
            let mname = m.file_stem().unwrap().to_string_lossy().into_owned();
            let ours = postern_actions(&s, m);
            let mut theirs = pigeonhole_actions(dir, &s, m);
            compared += 1;
            for a in &theirs {
                let kind = if a.contains(" flags=") {
                    "flags"
                } else {
                    a.split(' ').next().unwrap()
                };
                kinds.insert(kind.to_string());
            }
            for (es, action, _) in EXPECTED_DIFFERENCES {
                if *es == sname && !ours.contains(*action) && theirs.remove(*action) {
                    // The rest of the outcome must agree; an emptied store set means INBOX.
                    if !theirs
                        .iter()
                        .any(|a| a.starts_with("store ") || a == "discard")
                    {
                        theirs.insert("store INBOX".into());
                    }
                }
            }
            if ours != theirs {
                failures.push(format!(
                    "{sname} × {mname}:\n  postern:    {ours:?}\n  pigeonhole: {theirs:?}"
                ));
            }
        }
    }
    eprintln!("compared {compared} script×message pairs");
    let want = [
        "store",
        "flags",
        "redirect",
        "vacation",
        "reject",
        "discard",
        "error",
        "compile-error",
    ];
    for k in want {
        assert!(
            kinds.contains(k),
            "no Pigeonhole outcome of kind {k} (saw {kinds:?})"
        );
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
