//! The HTTP listeners against the real binary, read with independent clients (Python urllib,
//! xml.etree, a raw socket): autoconfig, MTA-STS over HTTP and HTTPS, HTTP-01 route, /metrics,
//! and the request limits.

mod common;
use common::*;

/// Start postern, then restart it with an HTTPS and a metrics listener added to [listen]
/// (the harness writes [listen] itself).
fn start_with_https_and_metrics() -> (Postern, u16, u16) {
    let mut p = Postern::start_with(Setup {
        // SPF/DKIM/DMARC lookups go to the harness's loopback DNS (NXDOMAIN for all).
        extra: "[http]\nmta_sts_mode = \"enforce\"\nmta_sts_max_age = 86400\n".into(),
        ..Setup::default()
    });
    p.stop();
    let (https, metrics) = (free_port(), free_port());
    let text = std::fs::read_to_string(&p.config).unwrap().replacen(
        "[listen]\n",
        &format!(
            "[listen]\nhttps = [\"127.0.0.1:{https}\"]\nmetrics = [\"127.0.0.1:{metrics}\"]\n"
        ),
        1,
    );
    std::fs::write(&p.config, text).unwrap();
    p.spawn();
    p.wait_port(https);
    p.wait_port(metrics);
    (p, https, metrics)
}

/// Python prelude: `get(url)` returns (status, content-type, body) without raising on 4xx.
const PY_GET: &str = r#"
import ssl, urllib.request, urllib.error
ctx = ssl.create_default_context(cafile=CAFILE)
ctx.check_hostname = False
def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()
"#;

fn py(p: &Postern, body: &str) -> String {
    python(&format!(
        "CAFILE = {:?}\n{PY_GET}\n{body}",
        path_str(&p.self_signed_cert())
    ))
}

#[test]
fn autoconfig_names_the_configured_ports_on_both_paths() {
    let (p, https, _) = start_with_https_and_metrics();
    let out = py(
        &p,
        &format!(
            r#"
import xml.etree.ElementTree as ET
for base in ["http://127.0.0.1:{http}", "https://127.0.0.1:{https}"]:
    for path in ["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"]:
        st, ct, body = get(base + path + "?emailaddress=joe%40example.test")
        assert st == 200, (path, st)
        assert "xml" in ct, ct
        root = ET.fromstring(body)
        assert root.tag == "clientConfig" and root.get("version") == "1.1"
        prov = root.find("emailProvider")
        assert prov.find("domain").text == "example.test"
        servers = [(s.tag, s.get("type"), s.find("hostname").text, int(s.find("port").text),
                    s.find("socketType").text, s.find("username").text)
                   for s in prov if s.tag in ("incomingServer", "outgoingServer")]
        want = [("incomingServer", "imap", "mail.example.test", {imaps}, "SSL", "joe@example.test"),
                ("incomingServer", "imap", "mail.example.test", {imap}, "STARTTLS", "joe@example.test"),
                ("outgoingServer", "smtp", "mail.example.test", {subs}, "SSL", "joe@example.test"),
                ("outgoingServer", "smtp", "mail.example.test", {sub}, "STARTTLS", "joe@example.test")]
        assert servers == want, servers
st, ct, body = get("http://127.0.0.1:{http}/mail/config-v1.1.xml")
assert "<username>%EMAILADDRESS%</username>" in body, body
print("ok")
"#,
            http = p.ports.http,
            imaps = p.ports.imaps,
            imap = p.ports.imap,
            subs = p.ports.submissions,
            sub = p.ports.submission,
        ),
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn mta_sts_policy_served_over_https_and_http() {
    let (p, https, _) = start_with_https_and_metrics();
    let out = py(
        &p,
        &format!(
            r#"
for url in ["https://127.0.0.1:{https}/.well-known/mta-sts.txt", "http://127.0.0.1:{http}/.well-known/mta-sts.txt"]:
    st, ct, body = get(url)
    assert st == 200 and ct.startswith("text/plain"), (st, ct)
    # RFC 8461 §3.2: key: value lines separated by CRLF or LF
    fields = {{}}
    for line in body.replace("\r\n", "\n").strip("\n").split("\n"):
        k, v = line.split(": ", 1)
        fields.setdefault(k, []).append(v)
    assert fields == {{"version": ["STSv1"], "mode": ["enforce"], "mx": ["mail.example.test"], "max_age": ["86400"]}}, fields
print("ok")
"#,
            http = p.ports.http,
        ),
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn metrics_listener_serves_prometheus_text_only() {
    let (p, _, metrics) = start_with_https_and_metrics();
    // Make an HTTP connection and deliver one message over port 25: the metrics must count
    // them (the SMTP server increments the shared counters).
    p.add_user("bob@example.test", "pw");
    let _ = py(
        &p,
        &format!(
            r#"
get('http://127.0.0.1:{http}/mail/config-v1.1.xml')
import smtplib
with smtplib.SMTP("127.0.0.1", {smtp}, timeout=20) as s:
    s.sendmail("alice@remote.test", ["bob@example.test"], "From: alice@remote.test\r\nTo: bob@example.test\r\nSubject: m\r\n\r\nhi\r\n")
# One failed login on 465: the metrics count it as an auth failure.
with smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx, timeout=30) as s:
    try:
        s.login("bob@example.test", "wrong")
    except smtplib.SMTPAuthenticationError:
        pass
"#,
            subs = p.ports.submissions,
            http = p.ports.http,
            smtp = p.ports.smtp
        ),
    );
    assert_eq!(
        p.wait_messages(
            "bob@example.test",
            "",
            1,
            std::time::Duration::from_secs(30)
        )
        .len(),
        1
    );
    let out = py(
        &p,
        &format!(
            r##"
import re, time
st, ct, body = get("http://127.0.0.1:{metrics}/metrics")
assert st == 200 and ct.startswith("text/plain"), (st, ct)
samples = {{}}
for line in body.splitlines():
    if line.startswith("#"):
        assert re.match(r"^# (HELP|TYPE) postern_[a-z0-9_]+ .+$", line), line
        continue
    m = re.match(r'^(postern_[a-z0-9_]+)(\{{[a-z_]+="[a-z0-9_.-]+"\}})? (-?[0-9]+)$', line)
    assert m, line
    samples[m.group(1) + (m.group(2) or "")] = int(m.group(3))
for name in ["postern_messages_received_total", "postern_messages_sent_total",
             "postern_messages_bounced_total", "postern_queue_size",
             "postern_smtp_connections_total", "postern_imap_connections_total",
             "postern_auth_failures_total", "postern_certificate_expiry_timestamp_seconds"]:
    assert name in samples, (name, body)
assert samples["postern_http_connections_total"] >= 1, body
assert samples["postern_smtp_connections_total"] >= 1, body
assert samples["postern_messages_received_total"] >= 1, body
# The inbound verdict counters (SPF/DKIM/DMARC of the message on port 25) are on the page too.
assert sum(v for k, v in samples.items() if k.startswith("postern_inbound_dmarc_total{{")) >= 1, body
assert samples["postern_auth_failures_total"] >= 1, body
assert samples["postern_certificate_expiry_timestamp_seconds"] > time.time(), body
# tls.source = "self-signed": flagged per name, and no ACME failures.
assert samples['postern_tls_self_signed{{name="mail.example.test"}}'] == 1, body
assert samples["postern_acme_failures_total"] == 0, body
st, _, _ = get("http://127.0.0.1:{metrics}/mail/config-v1.1.xml")
assert st == 404, st
st, _, _ = get("http://127.0.0.1:{http}/metrics")
assert st == 404, st
print("ok")
"##,
            http = p.ports.http,
        ),
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn acme_challenge_route_and_request_limits() {
    let p = Postern::start();
    let out = py(
        &p,
        &format!(
            r#"
st, _, _ = get("http://127.0.0.1:{http}/.well-known/acme-challenge/no-such-token")
assert st == 404, st
st, _, _ = get("http://127.0.0.1:{http}/.well-known/mta-sts.txt", method="POST")
assert st == 405, st
st, _, _ = get("http://127.0.0.1:{http}/nothing-here")
assert st == 404, st
print("ok")
"#,
            http = p.ports.http
        ),
    );
    assert_eq!(out.trim(), "ok");
    // An oversized request head is refused (431) instead of buffered without bound.
    let mut raw = Raw::connect(p.ports.http);
    raw.send("GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: x\r\n");
    let big = format!("X-Big: {}\r\n", "a".repeat(8000));
    for _ in 0..4 {
        raw.send(&big);
    }
    raw.send("\r\n");
    let status = raw.line();
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
}

#[test]
fn connection_limit_and_header_timeout() {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nmax_connections_per_ip = 2\n".into(),
        ..Setup::default()
    });
    // Two idle connections take both slots for 127.0.0.1 …
    let mut a = Raw::connect(p.ports.http);
    let _b = Raw::connect(p.ports.http);
    std::thread::sleep(std::time::Duration::from_millis(200));
    // … so a third is answered 503 and closed.
    let mut c = Raw::connect(p.ports.http);
    let refused = c.rest();
    assert!(
        refused.starts_with("HTTP/1.1 503"),
        "a connection over the limit must be refused: {refused:?}"
    );
    // An idle connection that never sends a request head is closed by the server (header
    // timeout), which frees its slot.
    assert!(
        closed_by_server(&mut a),
        "an idle connection must be closed"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut d = Raw::connect(p.ports.http);
        d.send("GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = d.rest();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no slot freed: {answer:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// True when the server closes the connection (EOF) without sending anything — not a timeout.
fn closed_by_server(r: &mut Raw) -> bool {
    use std::io::Read;
    r.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .unwrap();
    let mut buf = [0u8; 1];
    match r.stream.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Issue 20, item 12: while ACME fails, /metrics says so (failure counter, last failure time,
/// `postern_tls_self_signed 1`) and does not export the stand-in's far-off expiry as the
/// certificate's expiry, so an expiry alert cannot be silenced by it.
#[test]
fn metrics_show_acme_failures_and_the_self_signed_stand_in() {
    let closed = free_port();
    let mut p = Postern::start_with(Setup {
        tls: Some(format!(
            "[tls]\nsource = \"acme\"\nacme_directory = \"https://127.0.0.1:{closed}/dir\"\nacme_extra_names = []\n"
        )),
        ..Setup::default()
    });
    p.stop();
    let metrics = free_port();
    let text = std::fs::read_to_string(&p.config).unwrap().replacen(
        "[listen]\n",
        &format!("[listen]\nmetrics = [\"127.0.0.1:{metrics}\"]\n"),
        1,
    );
    std::fs::write(&p.config, text).unwrap();
    p.spawn();
    p.wait_port(metrics);
    assert!(
        p.wait_log(
            "cannot use the ACME directory",
            std::time::Duration::from_secs(30)
        ),
        "{}",
        p.log()
    );
    let out = py(
        &p,
        &format!(
            r##"
import re, time
st, ct, body = get("http://127.0.0.1:{metrics}/metrics")
assert st == 200, st
samples = {{}}
for line in body.splitlines():
    if not line.startswith("#"):
        k, v = line.rsplit(" ", 1)
        samples[k] = int(v)
assert samples["postern_acme_failures_total"] >= 1, body
assert time.time() - 300 < samples["postern_acme_last_failure_timestamp_seconds"] <= time.time() + 1, body
assert samples['postern_tls_self_signed{{name="mail.example.test"}}'] == 1, body
assert "postern_certificate_expiry_timestamp_seconds" not in body, body
print("ok")
"##
        ),
    );
    assert_eq!(out.trim(), "ok");
}
