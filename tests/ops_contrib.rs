//! What ships beside the binary: the systemd unit, the fail2ban filter and jail, the example
//! config and the zone template — each checked by the tool that will read it.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every key of `v` as a dotted path.
fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                keys(v, &path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[test]
fn example_config_lists_every_key_with_its_default() {
    use postern::config::Config;
    let text = read("contrib/postern.example.toml");
    // It parses (unknown keys would be refused, naming them).
    let example = Config::parse(&text, Path::new("contrib/postern.example.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Every key the parser knows appears in the file …
    let defaults = Config::parse(
        &format!(
            "domain = {:?}\nhostname = {:?}\ndata_dir = {:?}\n",
            example.domain,
            example.hostname,
            example.data_dir.display().to_string()
        ),
        Path::new("defaults.toml"),
    )
    .unwrap();
    let want = toml::Value::try_from(&defaults).unwrap();
    let written: toml::Value = toml::from_str(&text).unwrap();
    let (mut known, mut listed) = (vec![], vec![]);
    keys(&want, "", &mut known);
    keys(&written, "", &mut listed);
    known.sort();
    listed.sort();
    assert_eq!(
        known, listed,
        "contrib/postern.example.toml must list exactly the config keys"
    );
    // … with the default value, so the file documents what postern does when a key is absent.
    assert_eq!(
        toml::Value::try_from(&example).unwrap(),
        want,
        "a value in contrib/postern.example.toml differs from the default"
    );
    // And each key line carries a comment, or a comment precedes it.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains(" = ") && !l.trim_start().starts_with('#') {
            let commented =
                l.contains('#') || (i > 0 && lines[i - 1].trim_start().starts_with('#'));
            assert!(commented, "no comment for: {l}");
        }
    }
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = read("systemd/postern.service");
    for directive in [
        "User=postern",
        "ExecStart=/usr/local/bin/postern serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/postern",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "LimitNOFILE=",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "missing {directive}"
        );
    }
    peers::systemd_analyze().essential();
    // systemd-analyze insists that ExecStart's binary exists; point it at the one just built
    // unless it is installed where the unit expects it. Everything else is verified as shipped.
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("postern.service");
    let installed = Path::new("/usr/local/bin/postern").exists();
    let text = if installed {
        unit.clone()
    } else {
        unit.replace("/usr/local/bin/postern", BIN)
    };
    std::fs::write(&unit_path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        !stderr.contains("postern.service:"),
        "systemd-analyze complained about the unit:\n{stderr}"
    );
}

/// Lines postern logged for failed logins: real ones from SMTP AUTH (465) and IMAP LOGIN (993)
/// with wrong passwords. Until those listeners exist (they log "not built yet"), a line in the
/// exact format the tracing subscriber writes stands in for each missing one.
fn failed_login_lines() -> Vec<String> {
    let p = Postern::start();
    p.add_user("bob@example.test", "right-password");
    let _ = run_with_stdin(
        Command::new("python3").arg("-"),
        Some(&format!(
            r#"
import ssl, smtplib, imaplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    s = smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx, timeout=20)
    try: s.login("bob@example.test", "wrong")
    except smtplib.SMTPAuthenticationError: pass
except Exception as e: print("smtp:", e)
try:
    m = imaplib.IMAP4_SSL("127.0.0.1", {imaps}, ssl_context=ctx, timeout=20)
    try: m.login("bob@example.test", "wrong")
    except imaplib.IMAP4.error: pass
except Exception as e: print("imap:", e)
"#,
            subs = p.ports.submissions,
            imaps = p.ports.imaps
        )),
    );
    let mut lines = vec![];
    for (service, stub) in [
        ("smtp", "SMTP Submissions listener is not built yet"),
        ("imap", "IMAP"),
    ] {
        let needle = format!("auth failed: service={service}");
        let built = !p
            .log()
            .lines()
            .any(|l| l.contains(stub) && l.contains("not built yet"));
        if built {
            p.wait_log(&needle, std::time::Duration::from_secs(10));
        }
        let log = p.log();
        let real: Vec<String> = log
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect();
        if !real.is_empty() {
            lines.extend(real);
            continue;
        }
        assert!(
            !built,
            "a failed {service} login was not logged as `auth failed: service={service} ip=… user=…`:\n{log}"
        );
        // The subscriber's format: RFC 3339 UTC time, two spaces, level, message.
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        lines.push(format!(
            "{now}  WARN auth failed: service={service} ip=127.0.0.1 user=bob@example.test"
        ));
    }
    lines
}

#[test]
fn fail2ban_filter_matches_failed_logins() {
    if !peers::fail2ban_regex().available() {
        return;
    }
    let lines = failed_login_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postern.log");
    let mut text = lines.join("\n");
    // Lines that must not match: a successful login, and a forged address in the user name.
    text.push_str("\n2026-01-01T00:00:00.000000Z  INFO auth ok: service=imap ip=192.0.2.1 user=bob@example.test");
    text.push_str("\n2026-01-01T00:00:00.000000Z  INFO login: user=x auth failed: service=smtp ip=192.0.2.66 user=y\n");
    std::fs::write(&log, &text).unwrap();
    let filter = Path::new(ROOT).join("contrib/fail2ban/filter.d/postern.conf");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(&log)
        .arg(&filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ips: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        ips.len(),
        lines.len(),
        "every failed login matches, nothing else: {ips:?}\n{text}"
    );
    assert!(
        ips.iter()
            .all(|ip| ip == "127.0.0.1" || ip == "::ffff:127.0.0.1"),
        "{ips:?}"
    );
}

#[test]
fn fail2ban_jail_loads_with_the_filter() {
    if !peers::fail2ban_client().available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path();
    let status = Command::new("cp")
        .arg("-r")
        .arg("/etc/fail2ban/.")
        .arg(etc)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(
        Path::new(ROOT).join("contrib/fail2ban/filter.d/postern.conf"),
        etc.join("filter.d/postern.conf"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(ROOT).join("contrib/fail2ban/jail.d/postern.local"),
        etc.join("jail.d/postern.local"),
    )
    .unwrap();
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(etc)
        .arg("-d")
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dump.contains("['add', 'postern', 'systemd']"), "{dump}");
    assert!(dump.contains("auth failed: service="), "{dump}");
}

#[test]
fn zone_template_parses_and_has_every_record_postern_dns_prints() {
    if !peers::dnspython().available() {
        return;
    }
    let zone = Path::new(ROOT).join("contrib/zone.example.txt");
    let out = python(&format!(
        r#"
import dns.zone, dns.rdatatype as T
z = dns.zone.from_text(open({zone:?}).read(), relativize=False)  # checks SOA and NS too
have = {{(n.to_text(), T.to_text(rs.rdtype)) for n, node in z.nodes.items() for rs in node.rdatasets}}
want = {{("example.com.", "MX"), ("mail.example.com.", "A"), ("mail.example.com.", "AAAA"),
        ("example.com.", "TXT"), ("mail.example.com.", "TXT"), ("postern._domainkey.example.com.", "TXT"),
        ("_dmarc.example.com.", "TXT"), ("_mta-sts.example.com.", "TXT"), ("mta-sts.example.com.", "CNAME"),
        ("_smtp._tls.example.com.", "TXT"), ("_submissions._tcp.example.com.", "SRV"),
        ("_submission._tcp.example.com.", "SRV"), ("_imaps._tcp.example.com.", "SRV"),
        ("_imap._tcp.example.com.", "SRV"), ("autoconfig.example.com.", "CNAME")}}
missing = want - have
assert not missing, missing
print("ok")
"#,
        zone = path_str(&zone)
    ));
    assert_eq!(out.trim(), "ok");
}
