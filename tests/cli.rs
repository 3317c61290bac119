//! The CLI against the real binary: init, config errors, user and alias management.

mod common;
use common::*;

#[test]
fn user_add_list_passwd_del_round_trip() {
    let p = Postern::start();
    p.add_user("alice@example.test", "first-pw");
    let out = p.cli(&["user", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "alice@example.test"
    );
    // Duplicate refused with a one-line error and non-zero exit.
    let dup = p.cli(
        &["user", "add", "alice@example.test", "--password-stdin"],
        Some("x-long-enough-pw\n"),
    );
    assert!(!dup.status.success());
    assert_eq!(
        String::from_utf8_lossy(&dup.stderr).trim().lines().count(),
        1
    );
    let out = p.cli(
        &["user", "passwd", "alice@example.test", "--password-stdin"],
        Some("second-password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users = std::fs::read_to_string(p.data_dir().join("accounts/users.toml")).unwrap();
    assert!(users.contains("$argon2id$"), "{users}");
    assert!(!users.contains("second-password"));
    // The role aliases point at alice: deleting her needs --force (and --yes without a terminal).
    let out = p.cli(
        &["user", "del", "alice@example.test", "--yes", "--force"],
        None,
    );
    assert!(out.status.success());
    let out = p.cli(&["user", "list"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    let out = p.cli(&["user", "del", "alice@example.test", "--yes"], None);
    assert!(!out.status.success());
}

#[test]
fn alias_add_list_del() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    p.add_alias("info@example.test", &["bob@example.test"]);
    p.add_alias("@example.test", &["bob@example.test"]);
    let out = String::from_utf8(p.cli(&["alias", "list"], None).stdout).unwrap();
    assert!(
        out.contains("info@example.test -> bob@example.test"),
        "{out}"
    );
    assert!(out.contains("@example.test -> bob@example.test"), "{out}");
    // The first user was given the role addresses every domain needs (RFC 5321 §4.5.1).
    assert!(
        out.contains("postmaster@example.test -> bob@example.test"),
        "{out}"
    );
    assert!(
        out.contains("abuse@example.test -> bob@example.test"),
        "{out}"
    );
    assert!(
        p.cli(&["alias", "del", "info@example.test"], None)
            .status
            .success()
    );
    let out = String::from_utf8(p.cli(&["alias", "list"], None).stdout).unwrap();
    assert!(!out.contains("info@"), "{out}");
}

#[test]
fn malformed_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"/tmp/x\"\n[limits]\nmax_mesage_size = 10\n").unwrap();
    let out = run_with_stdin(
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("serve"),
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_mesage_size"), "{err}");
    assert!(err.contains(&cfg.display().to_string()), "{err}");

    std::fs::write(&cfg, "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"/tmp/x\"\n[listen]\nsmtp = [\"not-an-address\"]\n").unwrap();
    let out = run_with_stdin(
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("serve"),
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("smtp"), "{err}");
}

#[test]
fn init_writes_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("etc/postern.toml");
    let data = dir.path().join("data");
    let init = |c: &std::path::Path| {
        run_with_stdin(
            std::process::Command::new(BIN)
                .arg("--config")
                .arg(c)
                .args([
                    "init",
                    "--domain",
                    "example.org",
                    "--hostname",
                    "mail.example.org",
                    "--data-dir",
                ])
                .arg(&data),
            None,
        )
    };
    let out = init(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("domain = \"example.org\""));
    assert!(text.contains('#'), "config is commented");
    let out = init(&cfg);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // POSTERN_CONFIG is honoured.
    let out = run_with_stdin(
        std::process::Command::new(BIN)
            .env("POSTERN_CONFIG", &cfg)
            .args(["user", "list"]),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
