//! Issue 12 against the real binary: SMTP smuggling (every `CR`/`LF`/dot variant, on port 25
//! and on 587, pipelined in one write and split across packets, with DATA and with BDAT),
//! lone CR/LF in the header section, the HELO argument, and oversized command lines.
//!
//! A Python raw client drives the sockets (its own TLS for STARTTLS on 587), so the bytes on
//! the wire are exactly the ones written here.

mod common;

use std::time::Duration;

use common::{Postern, python};

const T: Duration = Duration::from_secs(20);

fn start() -> Postern {
    let p = Postern::start();
    p.add_user("alice@example.test", "alice-pw");
    p.add_user("bob@example.test", "bob-pw");
    p
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How the client opens the session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Port {
    /// Port 25, no TLS, no AUTH.
    Mx,
    /// Port 587: STARTTLS, AUTH PLAIN as alice.
    Submission,
    /// Port 587: STARTTLS only.
    SubmissionNoAuth,
}

/// Open a session on `port`, send the commands of `prelude` one by one (each reply read),
/// then write `pieces` (one write each, 50 ms apart when `split`), and return every reply
/// that follows until the server closes: one string per reply, continuation lines joined.
fn session(
    p: &Postern,
    port: Port,
    helo: &str,
    prelude: &[&str],
    pieces: &[Vec<u8>],
    split: bool,
) -> (Vec<String>, Vec<String>) {
    let (num, tls, auth) = match port {
        Port::Mx => (p.ports.smtp, false, false),
        Port::Submission => (p.ports.submission, true, true),
        Port::SubmissionNoAuth => (p.ports.submission, true, false),
    };
    let prelude: Vec<String> = prelude.iter().map(|c| format!("{c:?}")).collect();
    let pieces: Vec<String> = pieces.iter().map(|x| format!("{:?}", hex(x))).collect();
    let out = python(&format!(
        r#"
import socket, ssl, time, base64
s = socket.create_connection(("127.0.0.1", {num}), timeout=15)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline()
        if not l:
            break
        lines.append(l.decode("latin-1").rstrip("\r\n"))
        if len(l) < 4 or l[3:4] != b"-":
            break
    return "|".join(lines)
def cmd(c):
    s.sendall(c.encode() + b"\r\n")
    return reply()
assert reply().startswith("220")
r = cmd("EHLO " + {helo:?})
print("PRE", r.replace("\n", " "))
if {tls}:
    assert cmd("STARTTLS").startswith("220")
    ctx = ssl._create_unverified_context()
    s = ctx.wrap_socket(s, server_hostname="mail.example.test")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    assert cmd("EHLO laptop.example").startswith("250")
if {auth}:
    tok = base64.b64encode(b"\0alice@example.test\0alice-pw").decode()
    assert cmd("AUTH PLAIN " + tok).startswith("235")
for c in [{prelude}]:
    print("PRE", cmd(c))
for i, piece in enumerate([{pieces}]):
    if {split} and i > 0:
        time.sleep(0.05)
    s.sendall(bytes.fromhex(piece))
if not [{pieces}]:
    s.sendall(b"QUIT\r\n")
while True:
    try:
        r = reply()
    except (socket.timeout, ConnectionError, ssl.SSLError):
        break
    if not r:
        break
    print("R", r)
"#,
        tls = if tls { "True" } else { "False" },
        auth = if auth { "True" } else { "False" },
        split = if split { "True" } else { "False" },
        prelude = prelude.join(", "),
        pieces = pieces.join(", "),
    ));
    let mut pre = Vec::new();
    let mut after = Vec::new();
    for l in out.lines() {
        if let Some(r) = l.strip_prefix("PRE ") {
            pre.push(r.to_string());
        } else if let Some(r) = l.strip_prefix("R ") {
            after.push(r.to_string());
        }
    }
    (pre, after)
}

/// The smuggling shapes of issue 12 (and the bare-CR forms).
const VARIANTS: [&[u8]; 8] = [
    b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\r", b"\r.\n", b"\n.\r",
];

/// The message with a smuggled second transaction after the variant, cut into pieces: one
/// write (`split` false) or the variant alone in its own packets.
fn smuggling_pieces(variant: &[u8], sender: &str, split: bool) -> Vec<Vec<u8>> {
    let head = b"From: alice@example.test\r\nSubject: first\r\n\r\nfirst body".to_vec();
    let tail = format!(
        "MAIL FROM:<{sender}>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\nQUIT\r\n"
    )
    .into_bytes();
    if split {
        let mut v = vec![head];
        v.extend(variant.iter().map(|b| vec![*b]));
        v.push(tail);
        v
    } else {
        let mut all = head;
        all.extend_from_slice(variant);
        all.extend_from_slice(&tail);
        vec![all]
    }
}

fn no_second_transaction(after: &[String], first: &str, what: &str) {
    assert_eq!(
        after.len(),
        2,
        "{what}: a second transaction ran: {after:?}"
    );
    assert!(after[0].starts_with(first), "{what}: {after:?}");
    assert!(after[1].starts_with("221"), "{what}: {after:?}");
}

#[test]
fn smuggling_on_port_25_is_refused_and_runs_nothing() {
    let p = start();
    for split in [false, true] {
        for v in VARIANTS {
            let what = format!("port 25 {v:?} split={split}");
            let (pre, after) = session(
                &p,
                Port::Mx,
                "client.example",
                &[
                    "MAIL FROM:<sender@remote.example>",
                    "RCPT TO:<bob@example.test>",
                    "DATA",
                ],
                &smuggling_pieces(v, "spoof@example.test", split),
                split,
            );
            assert!(pre[3].starts_with("354"), "{what}: {pre:?}");
            // Postfix 3.9 smtpd_forbid_bare_newline: the message is refused after the dot.
            no_second_transaction(&after, "550 5.5.2", &what);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.messages("bob@example.test", "").is_empty(), "stored");
    assert!(p.messages("bob@example.test", "Junk").is_empty(), "stored");
}

#[test]
fn smuggling_on_submission_is_content_of_one_message() {
    let p = start();
    let mut n = 0;
    for split in [false, true] {
        for v in VARIANTS {
            let what = format!("port 587 {v:?} split={split}");
            let (pre, after) = session(
                &p,
                Port::Submission,
                "laptop.example",
                &[
                    "MAIL FROM:<alice@example.test>",
                    "RCPT TO:<bob@example.test>",
                    "DATA",
                ],
                &smuggling_pieces(v, "alice@example.test", split),
                split,
            );
            assert!(pre[3].starts_with("354"), "{what}: {pre:?}");
            // Normalised: one message holding the would-be commands as text.
            no_second_transaction(&after, "250", &what);
            n += 1;
            let got = p.wait_messages("bob@example.test", "", n, T);
            assert_eq!(got.len(), n, "{what}");
        }
    }
    for m in p.messages("bob@example.test", "") {
        let t = String::from_utf8_lossy(&m).into_owned();
        assert!(t.contains("Subject: first"), "{t}");
        assert!(t.contains("MAIL FROM:<alice@example.test>\r\n"), "{t}");
        // Stored canonical: no bare CR or LF anywhere.
        assert!(!t.replace("\r\n", "").contains(['\r', '\n']), "{t:?}");
    }
}

/// BDAT: the chunk content follows the DATA rules; a pipelined second transaction after
/// the last chunk is a new transaction only because it is outside the chunk (RFC 3030).
#[test]
fn bdat_content_with_bare_line_ends() {
    let p = start();
    let mut n = 0;
    for v in VARIANTS {
        let mut body = b"From: alice@example.test\r\nSubject: b\r\n\r\nline".to_vec();
        body.extend_from_slice(v);
        body.extend_from_slice(b"MAIL FROM:<x@remote.example>\r\n");
        let mut chunk = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
        chunk.extend_from_slice(&body);
        chunk.extend_from_slice(b"QUIT\r\n");
        let (_, after) = session(
            &p,
            Port::Mx,
            "client.example",
            &[
                "MAIL FROM:<sender@remote.example>",
                "RCPT TO:<bob@example.test>",
            ],
            &[chunk.clone()],
            false,
        );
        no_second_transaction(&after, "550 5.5.2", &format!("BDAT port 25 {v:?}"));
        let (_, after) = session(
            &p,
            Port::Submission,
            "laptop.example",
            &[
                "MAIL FROM:<alice@example.test>",
                "RCPT TO:<bob@example.test>",
            ],
            &[chunk],
            false,
        );
        no_second_transaction(&after, "250", &format!("BDAT 587 {v:?}"));
        n += 1;
        let got = p.wait_messages("bob@example.test", "", n, T);
        assert_eq!(got.len(), n, "{v:?}");
    }
    for m in p.messages("bob@example.test", "") {
        let t = String::from_utf8_lossy(&m).into_owned();
        assert!(t.contains("MAIL FROM:<x@remote.example>\r\n"), "{t:?}");
        assert!(!t.replace("\r\n", "").contains(['\r', '\n']), "{t:?}");
    }
}

/// Issue 12 item 5: `From: bob\rX-A: alice` is refused on both ports before any policy runs.
#[test]
fn lone_cr_or_lf_in_the_header_section_is_refused() {
    let p = start();
    for bad in [
        &b"From: bob@example.test\rX-A: alice@example.test\r\nSubject: h\r\n\r\nbody\r\n.\r\nQUIT\r\n"[..],
        b"From: alice@example.test\nFrom: bob@example.test\r\nSubject: h\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    ] {
        for port in [Port::Mx, Port::Submission] {
            let (pre, after) = session(
                &p,
                port,
                "client.example",
                &[
                    "MAIL FROM:<alice@example.test>",
                    "RCPT TO:<bob@example.test>",
                    "DATA",
                ],
                &[bad.to_vec()],
                false,
            );
            assert!(pre[3].starts_with("354"), "{pre:?}");
            no_second_transaction(&after, "550 5.6.0", "header bare CR/LF");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.messages("bob@example.test", "").is_empty());
}

/// Issue 12 item 8: the EHLO argument must be a domain or an address literal.
#[test]
fn helo_argument_is_validated() {
    let p = start();
    for bad in [
        "x([10.0.0.1])by",
        "a;b",
        "caf\u{e9}.example",
        "-x.example",
        "[10.0.0.300]",
    ] {
        let (pre, _) = session(&p, Port::Mx, bad, &["QUIT"], &[], false);
        assert!(pre[0].starts_with("501 5.5.4"), "{bad}: {pre:?}");
    }
    for good in [
        "mx_1.example.",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "localhost",
    ] {
        let (pre, _) = session(&p, Port::Mx, good, &["QUIT"], &[], false);
        assert!(pre[0].starts_with("250"), "{good}: {pre:?}");
    }
    // The refused name never reaches a Received field: mail still needs a valid EHLO.
    let (pre, _) = session(
        &p,
        Port::Mx,
        "x([10.0.0.1])by",
        &["MAIL FROM:<a@remote.example>"],
        &[],
        false,
    );
    assert!(pre[1].starts_with("503"), "{pre:?}");
}

/// Issue 12 "oversized input": long command lines and AUTH lines get a precise error and the
/// session stays in sync.
#[test]
fn oversized_command_and_auth_lines() {
    let p = start();
    let long = format!("NOOP {}", "x".repeat(600));
    let huge = format!("NOOP {}", "y".repeat(100_000));
    let (pre, _) = session(
        &p,
        Port::Mx,
        "client.example",
        &[&long, &huge, "NOOP"],
        &[],
        false,
    );
    assert!(pre[1].starts_with("500 5.5.2"), "{pre:?}");
    assert!(pre[2].starts_with("500 5.5.2"), "{pre:?}");
    assert!(pre[3].starts_with("250"), "{pre:?}");
    // AUTH: a continuation line over 12288 octets (RFC 4954 §4) ends the exchange with
    // 500 5.5.6, an initial response over it is a line too long; the session goes on.
    let blob = "QUFB".repeat(5000);
    let initial = format!("AUTH PLAIN {blob}");
    let (pre, _) = session(
        &p,
        Port::SubmissionNoAuth,
        "laptop.example",
        &["AUTH PLAIN", &blob, &initial, "NOOP"],
        &[],
        false,
    );
    assert!(pre[1].starts_with("334"), "{pre:?}");
    assert!(pre[2].starts_with("500 5.5.6"), "{pre:?}");
    assert!(pre[3].starts_with("500 5.5.2"), "{pre:?}");
    assert!(pre[4].starts_with("250"), "{pre:?}");
}
