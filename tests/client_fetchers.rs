//! Mail fetchers and synchronisers from Debian against the real binary over implicit TLS
//! (port 993 style) that verify postern's self-signed certificate: offlineimap3 (two-way
//! Maildir sync) and fetchmail (download and delete). `tests/setup-peers.sh` installs both.
mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const USER: &str = "erin@example.test";
const PASS: &str = "erins fetch password";

fn setup() -> Postern {
    let p = Postern::start();
    p.add_user(USER, PASS);
    p
}

/// Deliver over SMTP port 25 (the real path into the store).
fn deliver(p: &Postern, subject: &str) {
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220"));
    for (cmd, want) in [
        ("EHLO client.test\r\n".to_string(), "250"),
        ("MAIL FROM:<x@remote.test>\r\n".into(), "250"),
        (format!("RCPT TO:<{USER}>\r\n"), "250"),
        ("DATA\r\n".into(), "354"),
        (
            format!(
                "From: x@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n.\r\n"
            ),
            "250",
        ),
    ] {
        c.send(&cmd);
        let r = c.reply();
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()));
        }
    }
    out.sort();
    out
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run client");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn offlineimap_two_way_sync() {
    if !peers::offlineimap().available() {
        return;
    }
    let p = setup();
    deliver(&p, "first");
    deliver(&p, "second");
    let d = p.dir.path();
    let local = d.join("local");
    let rc = d.join("offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\naccounts = t\nmetadata = {meta}\nui = basic\n\n\
             [Account t]\nlocalrepository = L\nremoterepository = R\n\n\
             [Repository L]\ntype = Maildir\nlocalfolders = {local}\n\n\
             [Repository R]\ntype = IMAP\nremotehost = localhost\nremoteport = {port}\n\
             remoteuser = {USER}\nremotepass = {PASS}\nssl = yes\nsslcacertfile = {cert}\n",
            meta = d.join("meta").display(),
            local = local.display(),
            port = p.ports.imaps,
            cert = p.self_signed_cert().display(),
        ),
    )
    .unwrap();
    let sync = || run(Command::new("offlineimap").arg("-c").arg(&rc).arg("-o"));
    let log1 = sync();
    let inbox = local.join("INBOX");
    assert_eq!(files(&inbox).len(), 2, "{log1}");
    for f in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(local.join(f).join("cur").is_dir(), "{f} synced: {log1}");
    }
    // Local changes: read one (S flag), delete the other, file a new one into Archive.
    let names = files(&inbox);
    let path_of = |n: &str| {
        ["new", "cur"]
            .iter()
            .map(|s| inbox.join(s).join(n))
            .find(|p| p.exists())
            .unwrap()
    };
    let first = path_of(&names[0]);
    let base = names[0].split(":2,").next().unwrap().to_string();
    std::fs::rename(&first, inbox.join("cur").join(format!("{base}:2,S"))).unwrap();
    std::fs::remove_file(path_of(&names[1])).unwrap();
    std::fs::write(
        local.join("Archive/new/1700000000.local1.host"),
        "From: erin@example.test\r\nSubject: filed locally\r\n\r\nx\r\n",
    )
    .unwrap();
    let log2 = sync();
    // On the server: one INBOX message, \Seen (":2,S" in its Maildir name); Archive has the
    // upload.
    let server_inbox = files(&p.maildir(USER));
    assert_eq!(server_inbox.len(), 1, "{server_inbox:?}\n{log2}");
    assert!(server_inbox[0].ends_with(":2,S"), "{server_inbox:?}");
    let archive = p.messages(USER, "Archive");
    assert_eq!(archive.len(), 1, "{log2}");
    assert!(String::from_utf8_lossy(&archive[0]).contains("Subject: filed locally"));
    // A third run finds nothing to do and changes nothing.
    let log3 = sync();
    assert_eq!(files(&p.maildir(USER)), server_inbox, "{log3}");
    assert_eq!(files(&local.join("Archive")).len(), 1, "{log3}");
    for log in [&log1, &log2, &log3] {
        assert!(
            !log.contains("ERROR") && !log.contains("WARNING"),
            "offlineimap complained:\n{log}"
        );
    }
    assert!(!p.log().contains("imap reply:"), "{}", p.log());
}

#[test]
fn fetchmail_downloads_unseen_then_all() {
    if !peers::fetchmail().available() {
        return;
    }
    let p = setup();
    deliver(&p, "old news");
    // Read on the server already (fetchmail fetches unseen mail only by default).
    let inbox = p.maildir(USER);
    for f in files(&inbox) {
        let from = ["new", "cur"]
            .iter()
            .map(|s| inbox.join(s).join(&f))
            .find(|x| x.exists())
            .unwrap();
        std::fs::rename(
            from,
            inbox
                .join("cur")
                .join(format!("{}:2,S", f.split(':').next().unwrap())),
        )
        .unwrap();
    }
    deliver(&p, "fresh news");
    let d = p.dir.path();
    let out = d.join("fetched");
    let rc = d.join("fetchmailrc");
    let write_rc = |extra: &str| {
        std::fs::write(
            &rc,
            format!(
                "set no syslog\n\
                 poll localhost service {port} protocol IMAP auth password timeout 20\n\
                 user \"{USER}\" password \"{PASS}\" is root here\n\
                 ssl sslcertck sslcertfile \"{cert}\" {extra}\n\
                 mda \"/bin/sh -c 'cat >> {out}'\"\n",
                port = p.ports.imaps,
                cert = p.self_signed_cert().display(),
                out = out.display(),
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let fetch = || {
        run(Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .arg("--pidfile")
            .arg(d.join("fetchmail.pid"))
            .arg("-v")
            .env("FETCHMAILHOME", d))
    };
    // 1: only the unseen message, then it is deleted on the server (STORE \Deleted, EXPUNGE).
    write_rc("");
    let log1 = fetch();
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(got.matches("Subject: ").count(), 1, "{got}\n{log1}");
    assert!(got.contains("Subject: fresh news"), "{got}\n{log1}");
    let left = p.wait_messages(USER, "", 1, Duration::from_secs(1));
    assert_eq!(left.len(), 1, "{log1}");
    assert!(String::from_utf8_lossy(&left[0]).contains("Subject: old news"));
    // 2: everything, kept on the server.
    write_rc("fetchall keep");
    let log2 = fetch();
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got.matches("Subject: ").count(), 2, "{got}\n{log2}");
    assert!(got.contains("Subject: old news"), "{got}");
    assert_eq!(p.messages(USER, "").len(), 1, "{log2}");
    assert!(
        !p.log().contains("imap reply:"),
        "{}\n{log1}\n{log2}",
        p.log()
    );
}
