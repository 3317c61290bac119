//! A DNSSEC-validating resolver for DANE tests: unbound serving auth-zones (signed with
//! `ldns-signzone`) and validating them with the zone's DS as trust anchor.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

const WAIT: Duration = Duration::from_secs(40);

/// unbound on 127.0.0.1:port with the given auth-zones; `anchor` is a DS trust-anchor file.
pub struct Unbound {
    child: Child,
    pub port: u16,
}

impl Unbound {
    pub fn start(dir: &Path, zones: &[(&str, &Path)], anchor: &Path) -> Unbound {
        let port = free_port();
        let mut conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  chroot: \"\"\n\
             username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n\
             use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  do-ip6: no\n\
             module-config: \"validator iterator\"\n  trust-anchor-file: \"{a}\"\n\
             do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n",
            d = dir.display(),
            a = anchor.display()
        );
        for (name, file) in zones {
            conf.push_str(&format!(
                "auth-zone:\n  name: \"{name}\"\n  zonefile: \"{}\"\n  for-upstream: yes\n\
                 for-downstream: no\n  fallback-enabled: no\n",
                file.display()
            ));
        }
        let path = dir.join("unbound.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unbound");
        let mut u = Unbound { child, port };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = u.child.try_wait().unwrap() {
                panic!("unbound exited: {s}");
            }
            assert!(Instant::now() < deadline, "unbound did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        u
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sh_out(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn dig_flags(port: u16, name: &str, rtype: &str) -> String {
    sh_out(
        Path::new("/"),
        &format!("dig +adflag @127.0.0.1 -p {port} {name} {rtype} | grep 'flags:'"),
    )
}
