//! dnsmasq as a test DNS server on a free loopback port, serving only the given records
//! (NXDOMAIN for any other name under .test and in-addr.arpa). Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestDns {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl TestDns {
    /// `records` are dnsmasq config lines (host-record=, txt-record=, server=/zone/ip#port …).
    pub fn start(records: &str) -> TestDns {
        // free_port() checks TCP and UDP, but another process may take it meanwhile.
        for _ in 0..5 {
            if let Some(dns) = Self::try_start(records, super::free_port()) {
                return dns;
            }
        }
        panic!("dnsmasq did not start");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn try_start(records: &str, port: u16) -> Option<TestDns> {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(
            &conf,
            format!(
                "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n\
                 local=/test/\nlocal=/in-addr.arpa/\n{records}\n"
            ),
        )
        .unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let child = Command::new("dnsmasq")
            .arg("-k")
            .arg("-C")
            .arg(&conf)
            .arg("--pid-file=")
            .arg(format!("--user={user}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)");
        let mut dns = TestDns {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(dns.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dns)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
