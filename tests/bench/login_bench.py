#!/usr/bin/env python3
"""Login cost (issue 12 item 3): server RSS and login rate over IMAPS LOGIN+LOGOUT.

    python3 tests/bench/login_bench.py [--bin target/debug/postern] [--n 1000] [--parallel 20]

Phases, on one fresh server:
  1. idle RSS after start;
  2. N sequential LOGIN+LOGOUT of one account (new TLS connection each): time and RSS;
  3. N LOGIN+LOGOUT from `parallel` threads, each thread its own account (so `parallel`
     accounts verify at once the first time): time and RSS;
  4. N sequential LOGIN+LOGOUT of one account on plain IMAP (143, no TLS handshake), the
     login's own cost with less around it.
Prints one Markdown table row per figure. Figures only; nothing is asserted.
"""
import argparse, os, signal, socket, ssl, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close(); return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE


def login_logout(port, user, pw, tls=True):
    s = socket.create_connection(("127.0.0.1", port), 30)
    if tls:
        s = CTX.wrap_socket(s, server_hostname="mail")
    f = s.makefile("rb")
    f.readline()
    s.sendall(f'a LOGIN "{user}" "{pw}"\r\n'.encode())
    while True:
        l = f.readline()
        if l.startswith(b"a "):
            break
    if not l.startswith(b"a OK"):
        raise RuntimeError(f"login failed: {l!r}")
    s.sendall(b"b LOGOUT\r\n")
    while True:
        l = f.readline()
        if not l or l.startswith(b"b "):
            break
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "postern"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="login-bench-")
    imaps, imap, smtp = free_port(), free_port(), free_port()
    cfg = os.path.join(tmp, "postern.toml")
    with open(cfg, "w") as f:
        f.write(f'domain = "example.test"\nhostname = "mail.example.test"\ndata_dir = "{tmp}/data"\n'
                f'[listen]\nsmtp = ["127.0.0.1:{smtp}"]\nsubmission = []\nsubmissions = []\n'
                f'imap = ["127.0.0.1:{imap}"]\nimaps = ["127.0.0.1:{imaps}"]\nhttp = []\nmanagesieve = []\n[tls]\nsource = "self-signed"\n'
                f'[imap]\nallow_plaintext_auth = true\n[limits]\nmax_connections_per_ip = 1000\n')
    users = ["user@example.test"] + [f"u{i}@example.test" for i in range(a.parallel)]
    for u in users:
        subprocess.run([a.bin, "--config", cfg, "user", "add", u, "--password-stdin"],
                       input=b"pw\n", check=True, capture_output=True)
    proc = subprocess.Popen([a.bin, "--config", cfg, "serve"], stderr=subprocess.DEVNULL,
                            env=dict(os.environ, POSTERN_LOG="warn"))
    try:
        wait_port(imaps); wait_port(smtp)
        time.sleep(1)
        idle = rss_mib(proc.pid)
        t0 = time.time()
        for _ in range(a.n):
            login_logout(imaps, "user@example.test", "pw")
        seq = time.time() - t0
        after_seq = rss_mib(proc.pid)
        per = a.n // a.parallel
        errors = []

        def worker(i):
            try:
                for _ in range(per):
                    login_logout(imaps, f"u{i}@example.test", "pw")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.parallel)]
        t0 = time.time()
        for t in threads: t.start()
        for t in threads: t.join()
        par = time.time() - t0
        after_par = rss_mib(proc.pid)
        t0 = time.time()
        for _ in range(a.n):
            login_logout(imap, "user@example.test", "pw", tls=False)
        plain = time.time() - t0
        if errors:
            print("errors:", errors[:3], file=sys.stderr)
        print("| measure | value |\n|---|---:|")
        print(f"| RSS idle (MiB) | {idle:.1f} |")
        print(f"| {a.n} sequential LOGIN+LOGOUT, one account (s) | {seq:.2f} |")
        print(f"| logins/s, one account repeated | {a.n / seq:.1f} |")
        print(f"| RSS after the sequential logins (MiB) | {after_seq:.1f} |")
        print(f"| {per * a.parallel} LOGIN+LOGOUT in {a.parallel} threads, one account each (s) | {par:.2f} |")
        print(f"| RSS after the parallel logins (MiB) | {after_par:.1f} |")
        print(f"| RSS growth over idle (MiB) | {max(after_seq, after_par) - idle:.1f} |")
        print(f"| {a.n} sequential LOGIN+LOGOUT, one account, plain IMAP (s) | {plain:.2f} |")
        print(f"| logins/s, one account repeated, plain IMAP | {a.n / plain:.1f} |")
    finally:
        proc.send_signal(signal.SIGTERM); proc.wait(60)


if __name__ == "__main__":
    main()
