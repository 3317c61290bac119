//! ManageSieve (RFC 5804) with independent clients: `sieve-connect` (Perl, Debian) and
//! `sievelib` (Python, PyPI) upload, check, activate, list, download and delete scripts over
//! STARTTLS with AUTHENTICATE PLAIN; what they store is what local delivery runs.

mod common;

use common::{Postern, client_available, python, run_with_stdin, which};

fn start() -> (Postern, u16) {
    // ManageSieve listens by default; the harness gives every instance its own port.
    let mut p = Postern::start();
    let port = p.ports.managesieve;
    p.wait_port(port);
    p.add_user("me@example.test", "pw-me-123456");
    (p, port)
}

#[test]
fn sieve_connect_uploads_activates_lists_and_deletes() {
    if !client_available("sieve-connect", which("sieve-connect")) {
        return;
    }
    let (p, port) = start();
    let script = p.dir.path().join("filter.sieve");
    std::fs::write(
        &script,
        "require \"fileinto\";\nif header :contains \"Subject\" \"x\" { fileinto \"X\"; }\n",
    )
    .unwrap();
    let bad = p.dir.path().join("bad.sieve");
    std::fs::write(&bad, "keep;\nfileinto \"X\";\n").unwrap();
    let sc = |args: &[&str]| {
        let mut cmd = std::process::Command::new("sieve-connect");
        cmd.args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "me@example.test",
            "--passwordfd",
            "0",
            "--notlsverify",
            "--authmech",
            "PLAIN",
        ])
        .args(args);
        let out = run_with_stdin(&mut cmd, Some("pw-me-123456\n"));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = sc(&[
        "--upload",
        "--localsieve",
        script.to_str().unwrap(),
        "--remotesieve",
        "filter",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = sc(&[
        "--upload",
        "--localsieve",
        bad.to_str().unwrap(),
        "--remotesieve",
        "bad",
    ]);
    assert!(
        !ok && out.contains("line 2"),
        "a syntax error names the line: {out}"
    );
    let (ok, out) = sc(&["--activate", "--remotesieve", "filter"]);
    assert!(ok, "{out}");
    let (ok, out) = sc(&["--list"]);
    assert!(ok && out.contains("\"filter\" ACTIVE"), "{out}");
    let got = p.dir.path().join("got.sieve");
    let (ok, out) = sc(&[
        "--download",
        "--remotesieve",
        "filter",
        "--localsieve",
        got.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read(&script).unwrap()
    );
    assert_eq!(
        String::from_utf8_lossy(&p.cli(&["sieve", "list", "me@example.test"], None).stdout),
        "* filter\n"
    );
    let (ok, _) = sc(&["--delete", "--remotesieve", "filter"]);
    assert!(!ok, "the active script cannot be deleted");
    let (ok, out) = sc(&["--deactivate"]);
    assert!(ok, "{out}");
    let (ok, out) = sc(&["--delete", "--remotesieve", "filter"]);
    assert!(ok, "{out}");
    assert!(
        String::from_utf8_lossy(&p.cli(&["sieve", "list", "me@example.test"], None).stdout)
            .is_empty()
    );
}

#[test]
fn sievelib_round_trip() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import sievelib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !client_available("sievelib (PyPI, .ci/run installs it)", have) {
        return;
    }
    let (p, port) = start();
    let out = python(&format!(
        r#"
import ssl
from sievelib.managesieve import Client
ssl._create_default_https_context = ssl._create_unverified_context
orig = ssl.create_default_context
def unverified(*a, **k):
    c = orig(*a, **k)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
ssl.create_default_context = unverified
c = Client("127.0.0.1", {port})
assert c.connect("me@example.test", "pw-me-123456", starttls=True, authmech="PLAIN"), c.errmsg
print("CAPS", c.get_sieve_capabilities())
print("CHECK_BAD", c.checkscript("if true {{"), c.errmsg)
print("PUT", c.putscript("vac", 'require "vacation";\nvacation "away";\n'))
print("SPACE", c.havespace("vac", 100))
print("ACTIVE", c.setactive("vac"))
print("LIST", c.listscripts())
print("GET", repr(c.getscript("vac")))
print("RENAME", c.renamescript("vac", "holiday"))
print("LIST2", c.listscripts())
print("DEACT", c.setactive(""))
print("DEL", c.deletescript("holiday"))
print("LIST3", c.listscripts())
c.logout()
"#
    ));
    assert!(
        out.contains("vacation") && out.contains("fileinto"),
        "capabilities: {out}"
    );
    assert!(out.contains("CHECK_BAD False"), "{out}");
    for k in [
        "PUT True",
        "SPACE True",
        "ACTIVE True",
        "RENAME True",
        "DEACT True",
        "DEL True",
    ] {
        assert!(out.contains(k), "{k}: {out}");
    }
    assert!(out.contains("LIST ('vac', [])"), "{out}");
    assert!(
        out.contains("LIST2 ('holiday', [])"),
        "rename keeps it active: {out}"
    );
    assert!(out.contains("LIST3 (None, [])"), "{out}");
    assert!(
        out.contains("GET 'require \"vacation\";\\nvacation \"away\";\\n'"),
        "{out}"
    );
    drop(p);
}
