//! Listener abuse (issue 12, "Also in scope"): slow clients, connection limits, stalled TLS
//! handshakes and oversized HTTP request heads, on every listener of the real binary.
//!
//! Abusers connect from 127.0.0.2 (a bound source address; loopback only), the legitimate
//! client from 127.0.0.1, so the per-IP limit tells them apart.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Postern, Setup};

const ABUSER: [u8; 4] = [127, 0, 0, 2];

/// A TCP connection from `src` to 127.0.0.1:`port`.
fn connect_from(src: [u8; 4], port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind((IpAddr::from(src), 0).into()).unwrap();
        sock.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Everything the server sends until it closes (or 20 s pass).
fn read_until_closed(s: &mut TcpStream) -> (String, bool) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&all).into_owned(), true),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&all).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&all).into_owned(), false),
        }
    }
}

/// The first line the server sends.
fn first_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b) {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// A legitimate client over implicit TLS (an independent client: openssl s_client).
fn tls_session(port: u16, input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-crlf", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn plain_session(port: u16, input: &str) -> String {
    let mut s = connect_from([127, 0, 0, 1], port);
    s.write_all(input.as_bytes()).unwrap();
    read_until_closed(&mut s).0
}

fn start(extra: &str) -> Postern {
    Postern::start_with(Setup {
        extra: extra.into(),
        ..Setup::default()
    })
}

/// The first bytes of a TLS ClientHello record header, and then nothing more.
const PARTIAL_HELLO: &[u8] = &[0x16, 0x03, 0x01];

#[test]
fn slowloris_from_one_ip_does_not_lock_out_others() {
    let p = start("[limits]\nmax_connections_per_ip = 6\n");
    let ports = &p.ports;
    // Six trickling clients from one address take its whole share, spread over every
    // listener: half-sent commands in the clear, half-sent handshakes on the TLS ports.
    let mut slow = vec![
        (connect_from(ABUSER, ports.smtp), &b"E"[..]),
        (connect_from(ABUSER, ports.submission), b"E"),
        (connect_from(ABUSER, ports.submissions), PARTIAL_HELLO),
        (connect_from(ABUSER, ports.imap), b"a"),
        (connect_from(ABUSER, ports.imaps), PARTIAL_HELLO),
        (connect_from(ABUSER, ports.http), b"G"),
    ];
    for (s, first) in &mut slow {
        s.write_all(first).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    // One more byte each, as a slowloris would every few seconds.
    for (s, first) in &mut slow {
        let _ = s.write_all(&first[..1]);
    }
    // The same address gets each protocol's refusal, everywhere (one limiter for all).
    let mut c = connect_from(ABUSER, ports.smtp);
    let r = first_line(&mut c);
    assert!(r.starts_with("421 4.7.0"), "smtp: {r}");
    let mut c = connect_from(ABUSER, ports.submission);
    let r = first_line(&mut c);
    assert!(r.starts_with("421 4.7.0"), "submission: {r}");
    let mut c = connect_from(ABUSER, ports.imap);
    let r = first_line(&mut c);
    assert!(r.starts_with("* BYE"), "imap: {r}");
    let mut c = connect_from(ABUSER, ports.pop3);
    let r = first_line(&mut c);
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "pop3: {r}");
    let mut c = connect_from(ABUSER, ports.http);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = first_line(&mut c);
    assert!(r.starts_with("HTTP/1.1 503"), "http: {r}");
    // Implicit TLS ports just close a refused connection.
    for port in [ports.submissions, ports.imaps, ports.pop3s] {
        let mut c = connect_from(ABUSER, port);
        let _ = c.write_all(PARTIAL_HELLO);
        let (got, closed) = read_until_closed(&mut c);
        assert!(closed && got.is_empty(), "port {port}: {got:?}");
    }
    // A legitimate client from another address is served on every listener meanwhile.
    let r = plain_session(ports.smtp, "QUIT\r\n");
    assert!(r.starts_with("220 ") && r.contains("221 "), "smtp: {r}");
    let r = plain_session(ports.submission, "QUIT\r\n");
    assert!(
        r.starts_with("220 ") && r.contains("221 "),
        "submission: {r}"
    );
    let r = plain_session(ports.imap, "a LOGOUT\r\n");
    assert!(r.starts_with("* OK") && r.contains("a OK"), "imap: {r}");
    let r = plain_session(
        ports.http,
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "http: {r}");
    let r = tls_session(ports.submissions, "QUIT\n");
    assert!(r.contains("220 ") && r.contains("221 "), "submissions: {r}");
    let r = tls_session(ports.imaps, "a LOGOUT\n");
    assert!(r.contains("* OK") && r.contains("a OK"), "imaps: {r}");
    // The slow clients were held, not served: every one is still open.
    for (s, _) in &mut slow {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 512];
        let open = match s.read(&mut b) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        };
        assert!(open, "a slow client was dropped before its deadline");
    }
}

#[test]
fn stalled_tls_handshakes_are_dropped_at_the_deadline() {
    let p = start("[limits]\ntls_handshake_timeout_secs = 1\n");
    let ports = &p.ports;
    let t0 = Instant::now();
    // Implicit TLS: a handshake that starts and stalls.
    let mut a = connect_from(ABUSER, ports.submissions);
    a.write_all(PARTIAL_HELLO).unwrap();
    let mut b = connect_from(ABUSER, ports.imaps);
    b.write_all(PARTIAL_HELLO).unwrap();
    // STARTTLS, then nothing.
    let mut c = connect_from(ABUSER, ports.submission);
    assert!(first_line(&mut c).starts_with("220 "));
    c.write_all(b"EHLO x\r\nSTARTTLS\r\n").unwrap();
    let mut d = connect_from(ABUSER, ports.imap);
    assert!(first_line(&mut d).starts_with("* OK"));
    d.write_all(b"a STARTTLS\r\n").unwrap();
    for (name, s) in [
        ("465", &mut a),
        ("993", &mut b),
        ("587", &mut c),
        ("143", &mut d),
    ] {
        let (got, closed) = read_until_closed(s);
        assert!(
            closed,
            "{name}: still open after {:?}: {got:?}",
            t0.elapsed()
        );
    }
    assert!(
        p.wait_log("handshake timeout", Duration::from_secs(5)),
        "{}",
        p.log()
    );
}

#[test]
fn trickled_commands_run_out_of_time() {
    // Each byte arrives well within the per-read wait, but the command never completes: the
    // deadline is per command, so the connection is closed anyway.
    let p = start("[limits]\nsmtp_command_timeout_secs = 2\nimap_preauth_timeout_secs = 2\n");
    for (port, greeting, bye) in [
        (p.ports.smtp, "220 ", "421 "),
        (p.ports.imap, "* OK", "* BYE"),
    ] {
        let mut s = connect_from(ABUSER, port);
        assert!(first_line(&mut s).starts_with(greeting));
        assert_trickle_cut(&mut s, port, bye);
    }
}

/// Send one byte every 250 ms for up to 8 s; the server must close the connection with `bye`
/// meanwhile.
fn assert_trickle_cut(s: &mut TcpStream, port: u16, bye: &str) {
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut closed = false;
    for b in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP".iter().cycle() {
        if t0.elapsed() > Duration::from_secs(8) {
            break;
        }
        let _ = s.write_all(&[*b]);
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    let got = String::from_utf8_lossy(&got);
    assert!(closed, "port {port}: still open while trickling: {got:?}");
    assert!(got.contains(bye), "port {port}: {got:?}");
}

#[test]
fn trickled_message_body_runs_out_of_time() {
    // RFC 5321 allows the DATA timeout between blocks; a body arriving a byte at a time gets
    // no more than that in total.
    let p = start("[limits]\nsmtp_data_timeout_secs = 2\n");
    p.add_user("bob@example.test", "bob-pw");
    let mut s = connect_from(ABUSER, p.ports.smtp);
    assert!(first_line(&mut s).starts_with("220 "));
    s.write_all(b"HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        .unwrap();
    for want in ["250 ", "250 ", "250 ", "354 "] {
        let l = first_line(&mut s);
        assert!(l.starts_with(want), "{l}");
    }
    assert_trickle_cut(&mut s, p.ports.smtp, "421 ");
}

#[test]
fn oversized_http_heads_are_refused() {
    let p = start("");
    // One huge header field: the head is over the buffer limit.
    let mut s = connect_from([127, 0, 0, 1], p.ports.http);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(big.as_bytes());
    let r = first_line(&mut s);
    assert!(r.starts_with("HTTP/1.1 431"), "{r:?}");
    // Many small header lines: over the count limit.
    let mut s = connect_from([127, 0, 0, 1], p.ports.http);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    let _ = s.write_all(many.as_bytes());
    let r = first_line(&mut s);
    assert!(r.starts_with("HTTP/1.1 431"), "{r:?}");
    // The server is still fine.
    let r = plain_session(
        p.ports.http,
        "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn trickled_commands_after_tls_run_out_of_time() {
    // The same per-command deadline holds inside TLS (465 and 993): a client (Python's ssl, an
    // independent TLS stack) trickles one byte every 250 ms and must be cut off with the
    // protocol's goodbye within a few seconds.
    let p = start("[limits]\nsmtp_command_timeout_secs = 2\nimap_preauth_timeout_secs = 2\n");
    for (port, bye) in [(p.ports.submissions, "421 "), (p.ports.imaps, "* BYE")] {
        let out = common::python(&format!(
            r#"
import socket, ssl, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})), server_hostname="mail.example.test")
s.settimeout(0.25)
got = b""
closed = False
t0 = time.time()
while time.time() - t0 < 8:
    try:
        s.send(b"N")
    except OSError:
        closed = True
        break
    try:
        d = s.recv(4096)
        if not d:
            closed = True
            break
        got += d
    except socket.timeout:
        pass
    except OSError:
        closed = True
        break
print("closed" if closed else "open")
print(got.decode(errors="replace"))
"#
        ));
        assert!(out.starts_with("closed"), "port {port}: {out}");
        assert!(out.contains(bye), "port {port}: {out}");
    }
}
