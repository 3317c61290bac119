//! ACME renewal information (RFC 9773) with a scripted CA: a stored certificate that is far
//! from a third of its lifetime is renewed early because the CA's suggested window has
//! begun, and the new order names the certificate it replaces. The scripted CA answers the
//! directory, nonces and renewal info, then refuses the order, so the test also sees the
//! failure path keep the stored certificate. (Pebble 2.4 in Debian has no ARI endpoint.)

mod acme_support;
mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acme_support::*;
use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD as B64;
use common::*;

const FAKE_CA: &str = r#"
import json, ssl, sys, base64, datetime
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base = f"https://127.0.0.1:{port}"
now = datetime.datetime.now(datetime.timezone.utc)
window = {"start": (now - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "end": (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
def record(kind, value):
    with open(out, "a") as f:
        f.write(json.dumps({"kind": kind, "value": value}) + "\n")
class H(BaseHTTPRequestHandler):
    def send(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Replay-Nonce", "nonce" + str(id(self)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def do_HEAD(self):
        self.send(200)
    def do_GET(self):
        if self.path == "/dir":
            self.send(200, json.dumps({"newNonce": base + "/nonce", "newAccount": base + "/acct",
                "newOrder": base + "/order", "renewalInfo": base + "/ari"}).encode())
        elif self.path.startswith("/ari/"):
            record("ari", self.path[len("/ari/"):])
            self.send(200, json.dumps({"suggestedWindow": window}).encode(), extra=[("Retry-After", "3600")])
        else:
            self.send(200)
    def do_POST(self):
        jws = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        p = jws["payload"]
        record("post " + self.path, json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) if p else None)
        self.send(403, json.dumps({"type": "urn:ietf:params:acme:error:unauthorized",
            "detail": "the scripted CA issues nothing"}).encode(), "application/problem+json")
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn renewal_info_window_triggers_an_early_renewal_that_names_the_replaced_certificate() {
    let mut p = Postern::start();
    let ca_dir = tempfile::tempdir().unwrap();
    make_api_cert(ca_dir.path());
    let port = free_port();
    let record = ca_dir.path().join("record.jsonl");
    let _ca = Killed(
        Command::new("python3")
            .args(["-c", FAKE_CA, &port.to_string()])
            .arg(ca_dir.path().join("api-cert.pem"))
            .arg(ca_dir.path().join("api-key.pem"))
            .arg(&record)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "scripted CA did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let directory = format!("https://127.0.0.1:{port}/dir");

    // A stored certificate from "this CA" (with an Authority Key Identifier, as ARI needs)
    // valid for centuries, so only the renewal window can make it due; and a stored account.
    let tls_dir = p.data_dir().join("tls");
    let issuer_key = rcgen::KeyPair::generate().unwrap();
    let mut issuer_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    issuer_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(issuer_params, issuer_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mail.example.test".to_string()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rcgen::SerialNumber::from(vec![0x1a, 0x2b, 0x3c, 0x4d]));
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(tls_dir.join("acme-cert.pem"), cert.pem()).unwrap();
    std::fs::write(tls_dir.join("acme-key.pem"), key.serialize_pem()).unwrap();
    let account_key = rcgen::KeyPair::generate().unwrap();
    let account = serde_json::json!({
        "directory": directory,
        "credentials": {
            "id": format!("https://127.0.0.1:{port}/acct/1"),
            "key_pkcs8": B64.encode(account_key.serialize_der()),
            "directory": directory,
        }
    });
    std::fs::write(tls_dir.join("acme-account.json"), account.to_string()).unwrap();

    // The certificate identifier RFC 9773 §4.1 defines: base64url(AKI keyIdentifier) "."
    // base64url(serial).
    let (_, x) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
    let aki = x
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    let id = format!(
        "{}.{}",
        B64.encode(aki),
        B64.encode(x.tbs_certificate.raw_serial())
    );
    let stored_serial = x.raw_serial_as_string();

    let https = free_port();
    respawn_with_tls(
        &mut p,
        https,
        &format!(
            "[tls]\nsource = \"acme\"\nacme_directory = \"{directory}\"\nacme_ca_file = \"{}\"\n\
             acme_extra_names = []\nacme_challenge = \"tls-alpn-01\"",
            ca_dir.path().join("ca.pem").display()
        ),
    );
    assert!(p.log().contains("serving the stored ACME certificate"));
    assert!(
        p.wait_log("not obtained", Duration::from_secs(30)),
        "{}",
        p.log()
    );
    let log = p.log();
    assert!(log.contains("ACME renewal info: window"), "{log}");
    assert!(
        log.contains("(inside the CA's renewal window (ARI))"),
        "{log}"
    );
    let failed = log.lines().find(|l| l.contains("not obtained")).unwrap();
    assert!(
        failed.contains("the scripted CA issues nothing"),
        "{failed}"
    );
    assert!(failed.contains("keeping the current one"), "{failed}");
    assert!(
        !log.contains("registered account"),
        "the stored account is reused: {log}"
    );

    let records: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "ari" && r["value"] == id),
        "{records:?}"
    );
    let order = records
        .iter()
        .find(|r| r["kind"] == "post /order")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(order["value"]["replaces"], id, "{order}");
    assert_eq!(
        order["value"]["identifiers"][0]["value"], "mail.example.test",
        "{order}"
    );
    assert_eq!(serving(https).serial, stored_serial);
}
