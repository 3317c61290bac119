//! The operator CLI refuses mistakes instead of absorbing them: each test makes one mistake a
//! new user makes and checks the words they see (issue 20).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const PW: &str = "a long enough password\n";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `postern --config CFG ARGS…` run in `cwd`.
fn cli_in(cwd: &Path, cfg: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_with_stdin(
        Command::new(BIN)
            .current_dir(cwd)
            .arg("--config")
            .arg(cfg)
            .args(args),
        stdin,
    )
}

/// A config (no server) for example.test whose data_dir is `data_dir` as written.
fn config(dir: &Path, data_dir: &str) -> PathBuf {
    let cfg = dir.join("postern.toml");
    std::fs::write(
        &cfg,
        format!("domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"{data_dir}\"\n"),
    )
    .unwrap();
    cfg
}

fn fails_with(o: &Output, needle: &str) {
    assert!(!o.status.success(), "succeeded: {}", stdout(o));
    let e = stderr(o);
    assert!(e.contains(needle), "expected {needle:?} in:\n{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line:\n{e}");
}

#[test]
fn init_writes_an_absolute_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_in(
        dir.path(),
        Path::new("etc/postern.toml"),
        &[
            "init",
            "--domain",
            "example.test",
            "--hostname",
            "mail.example.test",
            "--data-dir",
            "./data",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("etc/postern.toml")).unwrap();
    let want = format!("data_dir = \"{}/./data\"", dir.path().display());
    let want_clean = format!("data_dir = \"{}/data\"", dir.path().display());
    assert!(text.contains(&want) || text.contains(&want_clean), "{text}");
}

#[test]
fn a_relative_data_dir_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("data")).unwrap();
    let cfg = config(&etc, "data");
    // Run from another directory: the data goes beside the config, not into the cwd.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = cli_in(
        elsewhere.path(),
        &cfg,
        &["user", "add", "ann@example.test", "--password-stdin"],
        Some(PW),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(etc.join("data/accounts/users.toml").exists());
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    let out = cli_in(Path::new("/"), &cfg, &["user", "list"], None);
    assert_eq!(stdout(&out).trim(), "ann@example.test");
}

#[test]
fn read_only_commands_create_nothing_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "/nonexistent/postern-data");
    for args in [
        &["user", "list"][..],
        &["alias", "list"],
        &["dns"],
        &["check"],
    ] {
        let out = cli_in(dir.path(), &cfg, args, None);
        fails_with(&out, "data_dir /nonexistent/postern-data (from ");
        fails_with(&out, "does not exist: wrong --config or data_dir?");
    }
    // data_dir there but empty: no accounts, no DKIM key, and none is made.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let cfg = config(dir.path(), &data.display().to_string());
    let out = cli_in(dir.path(), &cfg, &["user", "list"], None);
    fails_with(&out, "has no accounts: wrong --config or data_dir?");
    let out = cli_in(dir.path(), &cfg, &["dns"], None);
    fails_with(&out, "has no DKIM key");
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn dns_fails_when_it_cannot_read_the_dkim_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("dkim")).unwrap();
    std::fs::write(data.join("dkim/rsa.pem"), "not a PEM key\n").unwrap();
    let cfg = config(dir.path(), &data.display().to_string());
    let out = cli_in(dir.path(), &cfg, &["dns"], None);
    fails_with(
        &out,
        &format!(
            "the records above lack DKIM: cannot read DKIM key {}/dkim/rsa.pem",
            data.display()
        ),
    );
    assert!(stdout(&out).contains(" IN MX "), "{}", stdout(&out));
}

#[test]
fn init_wants_a_fully_qualified_hostname() {
    let dir = tempfile::tempdir().unwrap();
    for (host, needle) in [
        ("192.0.2.1", "--hostname 192.0.2.1 is an IP address"),
        (
            "mail",
            "--hostname mail is not fully qualified; give the whole name, e.g. mail.example.test",
        ),
    ] {
        let out = cli_in(
            dir.path(),
            &dir.path().join("p.toml"),
            &["init", "--domain", "example.test", "--hostname", host],
            None,
        );
        fails_with(&out, needle);
        assert!(!dir.path().join("p.toml").exists());
    }
}

#[test]
fn alias_targets_must_exist_and_never_loop() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    let out = p.cli(
        &["alias", "add", "info@example.test", "nobody@example.test"],
        None,
    );
    fails_with(
        &out,
        "target nobody@example.test does not exist (no user or alias of that name)",
    );
    let out = p.cli(&["alias", "add", "a@example.test", "a@example.test"], None);
    fails_with(&out, "target a@example.test does not exist");
    p.add_alias("a1@example.test", &["bob@example.test"]);
    p.add_alias("a2@example.test", &["a1@example.test"]);
    let out = p.cli(
        &["alias", "add", "a1@example.test", "a2@example.test"],
        None,
    );
    fails_with(
        &out,
        "that would make a loop: a1@example.test → a2@example.test → a1@example.test",
    );
    // Outside targets and +tags of users are fine; the whole normalised list is printed.
    let out = p.cli(
        &[
            "alias",
            "add",
            "a1@example.test",
            "Bob+Lists@Example.TEST",
            "x@elsewhere.example",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "a1@example.test -> bob@example.test, bob+lists@example.test, x@elsewhere.example"
    );
}

#[test]
fn user_and_alias_clashes_say_what_exists() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    p.add_alias("info@example.test", &["bob@example.test"]);
    let out = p.cli(
        &["user", "add", "info@example.test", "--password-stdin"],
        Some(PW),
    );
    fails_with(
        &out,
        "info@example.test is an alias (→ bob@example.test); remove it first with `postern alias del info@example.test`",
    );
    let out = p.cli(
        &["alias", "add", "bob@example.test", "x@elsewhere.example"],
        None,
    );
    fails_with(
        &out,
        "bob@example.test is a user; an alias cannot have the same address (delete the user with `postern user del bob@example.test` first",
    );
}

#[test]
fn user_del_confirms_and_names_the_aliases_left_dangling() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    let out = p.cli(&["user", "del", "bob@example.test"], None);
    fails_with(
        &out,
        "aliases point at bob@example.test: abuse@example.test, postmaster@example.test;",
    );
    let out = p.cli(&["user", "del", "bob@example.test", "--force"], None);
    fails_with(&out, "no terminal to ask on; pass --yes");
    let out = p.cli(
        &["user", "del", "bob@example.test", "--force", "--yes"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deleted bob@example.test (its 0 messages stay in "),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out)
            .contains("warning: alias postmaster@example.test still points at bob@example.test"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rcpt_to_a_dangling_alias_is_logged_naming_it() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    p.add_alias("info@example.test", &["bob@example.test"]);
    let out = p.cli(
        &["user", "del", "bob@example.test", "--force", "--yes"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut c = Raw::connect(p.ports.smtp);
    c.reply();
    c.send("EHLO client.example\r\n");
    c.reply();
    c.send("MAIL FROM:<x@remote.example>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("RCPT TO:<info@example.test>\r\n");
    assert!(c.reply().starts_with("550"));
    assert!(
        p.wait_log(
            "alias info@example.test reaches nobody",
            Duration::from_secs(10)
        ),
        "{}",
        p.log()
    );
}

#[test]
fn removing_postmaster_is_warned_about() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    let out = p.cli(&["alias", "del", "postmaster@example.test"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("warning: postmaster@example.test now reaches nobody; every mail domain must accept it (RFC 5321 §4.5.1)"),
        "{e}"
    );
    assert!(
        e.contains("the DMARC and TLS reports this domain's DNS records ask for go to it"),
        "{e}"
    );
    // abuse@ still reaches bob: no word about it.
    assert!(!e.contains("abuse@"), "{e}");
    let out = p.cli(&["alias", "del", "abuse@example.test"], None);
    let e = stderr(&out);
    assert!(
        e.contains("warning: abuse@example.test now reaches nobody; every mail domain must accept it (RFC 2142), and complaints about mail from this domain go to it"),
        "{e}"
    );
}

#[test]
fn readding_an_address_does_not_silently_inherit_its_mail() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    let new = p.maildir("bob@example.test").join("new");
    std::fs::write(new.join("1.test:2,"), "Subject: old\r\n\r\nold mail\r\n").unwrap();
    let out = p.cli(
        &["user", "del", "bob@example.test", "--force", "--yes"],
        None,
    );
    assert!(
        stdout(&out).contains("its 1 messages stay in"),
        "{}",
        stdout(&out)
    );
    let out = p.cli(
        &["user", "add", "bob@example.test", "--password-stdin"],
        Some(PW),
    );
    fails_with(
        &out,
        "a mailbox with 1 messages is left from an earlier bob@example.test",
    );
    fails_with(&out, "pass --reuse-mailbox to give it to the new user");
    let out = p.cli(
        &[
            "user",
            "add",
            "bob@example.test",
            "--password-stdin",
            "--reuse-mailbox",
        ],
        Some(PW),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("gets the existing mailbox with 1 messages"));
}

#[test]
fn weak_and_multi_line_passwords_are_refused() {
    let p = Postern::start();
    let add = |stdin: &str| {
        p.cli(
            &["user", "add", "carol@example.test", "--password-stdin"],
            Some(stdin),
        )
    };
    fails_with(
        &add("a\n"),
        "password too short (1 characters): use at least 12, or --generate",
    );
    fails_with(&add("\n"), "empty password refused");
    fails_with(
        &add("a long enough password\nand a second line\n"),
        "--password-stdin got several lines; give exactly one line",
    );
    let out = p.cli(&["user", "list"], None);
    assert!(!stdout(&out).contains("carol"), "nothing was added");
    let out = p.cli(&["user", "add", "carol@example.test", "--generate"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let pw = text
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("the generated password is printed");
    assert!(pw.len() >= 16, "{pw}");
    let out = p.cli(
        &["user", "passwd", "carol@example.test", "--password-stdin"],
        Some("short\n"),
    );
    fails_with(&out, "password too short");
}

#[test]
fn checks_come_before_the_password_prompt() {
    let p = Postern::start();
    p.add_user("bob@example.test", "pw");
    // No --password-stdin and no terminal: the reason to refuse must be the real one, not
    // "no terminal to ask for the password".
    for (args, needle) in [
        (
            &["user", "add", "bob@example.test"][..],
            "user bob@example.test already exists",
        ),
        (&["user", "add", "eve"], "\"eve\" is not a mail address"),
        (
            &["user", "add", "x@other.example"],
            "x@other.example is not in the domain example.test",
        ),
        (
            &["user", "passwd", "nobody@example.test"],
            "user nobody@example.test does not exist",
        ),
    ] {
        let out = p.cli(args, None);
        fails_with(&out, needle);
    }
}

#[test]
fn a_user_address_must_be_one_a_client_can_log_in_with() {
    let p = Postern::start();
    let out = p.cli(&["user", "add", "Jörg@example.test", "--generate"], None);
    fails_with(
        &out,
        "jörg@example.test cannot be a user: the part before @ must be ASCII, as a login name",
    );
    let out = p.cli(&["user", "list"], None);
    assert!(!stdout(&out).contains("rg@"), "nothing was added");
    // Such an address may still receive mail as an alias of an ASCII user.
    p.add_user("joerg@example.test", "pw");
    p.add_alias("jörg@example.test", &["joerg@example.test"]);
    let out = p.cli(&["user", "add", "\"q\"@example.test", "--generate"], None);
    fails_with(&out, "uses a source route, quoting or relay syntax");
    let out = p.cli(&["user", "add", "a;b@example.test", "--generate"], None);
    fails_with(
        &out,
        "a;b@example.test cannot be a user: a client could not log in with it (it holds a space, quote, bracket or one of",
    );
}

#[test]
fn errors_say_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_in(
        dir.path(),
        &dir.path().join("missing.toml"),
        &["user", "list"],
        None,
    );
    let e = stderr(&out);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    let p = Postern::start();
    let out = p.cli(&["user", "add", "eve", "--generate"], None);
    let e = stderr(&out);
    assert_eq!(e.matches("is not a mail address").count(), 1, "{e}");
}

#[test]
fn a_second_server_on_one_data_dir_is_refused() {
    let p = Postern::start();
    let out = p.cli(&["serve"], None);
    fails_with(&out, "another postern (pid ");
    fails_with(&out, "one server per data_dir");
}

#[test]
fn help_describes_every_argument_and_version_names_the_commit() {
    let help = |args: &[&str]| {
        let o = run_with_stdin(Command::new(BIN).args(args), None);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let h = help(&["user", "add", "-h"]);
    assert!(
        h.contains("<ADDRESS>  The user's mail address, also its login name"),
        "{h}"
    );
    assert!(
        h.lines().any(|l| l.contains("--password-stdin")
            && l.contains("Read the password from stdin: exactly one line")),
        "{h}"
    );
    assert!(h.contains("--generate"), "{h}");
    let h = help(&["alias", "add", "-h"]);
    assert!(h.contains("<TARGETS>...  Where its mail goes"), "{h}");
    let h = help(&["queue", "retry", "-h"]);
    assert!(
        h.lines()
            .any(|l| l.contains("--all") && l.contains("Retry every queued message")),
        "{h}"
    );
    let h = help(&["sendmail", "--help"]);
    assert!(h.contains("sendmail"), "{h}");
    let v = help(&["--version"]);
    assert!(
        v.starts_with("postern ") && (v.contains("(commit ") || v.contains("(unknown commit)")),
        "{v}"
    );
}

#[test]
fn dev_refuses_a_config_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli_in(
        dir.path(),
        Path::new("my.toml"),
        &["dev", "--data-dir", "devdata"],
        None,
    );
    fails_with(
        &out,
        "`postern dev` uses its own config (DATA_DIR/postern.toml) and ignores --config",
    );
    assert!(!dir.path().join("devdata").exists());
    // Given after the subcommand too; and `dev --help` does not offer it.
    let out = run_with_stdin(
        Command::new(BIN).current_dir(dir.path()).args([
            "dev",
            "--data-dir",
            "devdata",
            "--config",
            "my.toml",
        ]),
        None,
    );
    fails_with(&out, "`postern dev` uses its own config");
    assert!(!dir.path().join("devdata").exists());
    let out = run_with_stdin(Command::new(BIN).args(["dev", "--help"]), None);
    let h = stdout(&out);
    assert!(
        !h.lines().any(|l| l.trim_start().starts_with("--config")),
        "{h}"
    );
    // Item 14: dev does not hold outbound mail, and says so plainly.
    assert!(
        h.contains("Mail to any other address is NOT held: it is queued and really sent to that domain's MX on port 25"),
        "{h}"
    );
}

#[test]
fn check_says_once_that_the_resolver_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("dkim")).unwrap();
    std::fs::write(data.join("dkim/rsa.pem"), "not read by this test").unwrap();
    let cfg = dir.path().join("postern.toml");
    // Nothing listens on the discard port: the resolver never answers.
    std::fs::write(
        &cfg,
        format!(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"{}\"\n[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout_secs = 1\n",
            data.display()
        ),
    )
    .unwrap();
    let out = cli_in(dir.path(), &cfg, &["check"], None);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("FAILED  resolver: 127.0.0.1:9 did not answer"),
        "{text}"
    );
    assert_eq!(text.matches("FAILED").count(), 1, "{text}");
    assert!(!text.contains("publish"), "{text}");
}

#[test]
fn check_names_a_missing_cert_file_and_never_advises_what_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("dkim")).unwrap();
    std::fs::write(data.join("dkim/rsa.pem"), "not read by this test").unwrap();
    let cfg = dir.path().join("postern.toml");
    let cert = dir.path().join("missing-cert.pem");
    std::fs::write(
        &cfg,
        format!(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"{}\"\n\
             [dns]\nnameservers = [\"{}\"]\ntimeout_secs = 1\n\
             [tls]\nsource = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}/key.pem\"\n",
            data.display(),
            nx_dns(),
            cert.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = cli_in(dir.path(), &cfg, &["check", "--dns-only"], None);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains(&format!("tls.cert_file {} does not exist", cert.display())),
        "{text}"
    );
    assert!(!text.contains("tls.source = \"files\""), "{text}");
}

#[test]
fn an_older_binary_refuses_a_newer_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("postern-format"), "99\n").unwrap();
    let cfg = config(dir.path(), &data.display().to_string());
    let out = cli_in(dir.path(), &cfg, &["serve"], None);
    fails_with(
        &out,
        "was written by a newer postern (data format 99); this postern",
    );
    fails_with(&out, "knows format 1 at most");
}
