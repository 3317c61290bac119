#!/usr/bin/env python3
"""Memory under large messages in flight (issue 12 item 2): the server's RSS while N
connections are each in the middle of a big SMTP DATA (port 25) or IMAP APPEND literal.

Usage (from the repository, after `cargo build --bins`):
    python3 tests/bench/mem_bench.py [--bin target/debug/postern] [--conns 20] [--mib 40]
                                     [--mode smtp|imap|both] [--complete]

For each mode it starts a fresh server on loopback (temporary data dir), opens --conns
connections, starts a --mib MiB message on each and sends half of it, waits until the server
has read what was sent (its RSS stops moving), and prints the RSS (VmRSS, and the anonymous
and file-backed parts, from /proc/PID/status) at idle and mid-transfer. With --complete the
messages are then finished and the RSS after the last reply is printed too (only sensible for
a build that spools: the old one needs several times conns x mib of heap for that).
The goal is: mid-transfer RSS minus the RSS before the transfers <= 64 MiB for 20 x 40 MiB
(for IMAP the base is taken after the 20 LOGINs, whose Argon2 memory is issue 12 item 3).
"""
import argparse, os, shutil, socket, subprocess, sys, tempfile, time

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


def mem(pid):
    """(VmRSS, RssAnon, RssFile) of pid in MiB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0), vals.get("RssAnon", 0), vals.get("RssFile", 0)


def top_mappings(pid, n=8):
    """The n mappings with the most anonymous resident memory (diagnosis: heap, arenas,
    thread stacks), as (kB, size kB, name)."""
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = [0, (hi - lo) // 1024, parts[5] if len(parts) > 5 else "[anon]"]
                maps.append(cur)
            elif parts[0] == "Anonymous:" and cur is not None:
                cur[0] = int(parts[1])
    maps.sort(reverse=True)
    return maps[:n]


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def settle(pid, secs=1.5):
    """RSS once it has stopped growing (the server has read what the kernel buffered)."""
    last = mem(pid)
    while True:
        time.sleep(secs)
        now = mem(pid)
        if abs(now[0] - last[0]) < 1:
            return now
        last = now


def body_chunk(size):
    """`size` octets of 76-column text lines (CRLF), like a base64 attachment."""
    line = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0" + b"\r\n")
    n = size // len(line)
    return line * n + b"x" * (size - n * len(line) - 2) + b"\r\n"


class Server:
    def __init__(self, binary, mib):
        self.dir = tempfile.mkdtemp(prefix="postern-mem-")
        self.smtp, self.imap = free_port(), free_port()
        cfg = os.path.join(self.dir, "postern.toml")
        with open(cfg, "w") as f:
            f.write(f"""domain = "example.test"
hostname = "mail.example.test"
data_dir = "{self.dir}/data"
[listen]
smtp = ["127.0.0.1:{self.smtp}"]
submission = ["127.0.0.1:{free_port()}"]
submissions = ["127.0.0.1:{free_port()}"]
imap = ["127.0.0.1:{self.imap}"]
imaps = ["127.0.0.1:{free_port()}"]
http = ["127.0.0.1:{free_port()}"]
managesieve = []
[tls]
source = "self-signed"
[imap]
allow_plaintext_auth = true
[inbound]
verify = false
[limits]
max_message_size = {(mib + 8) << 20}
imap_max_literal = {(mib + 8) << 20}
max_connections_per_ip = 100
""")
        subprocess.run([binary, "--config", cfg, "user", "add", "user@example.test", "--password-stdin"],
                       input=b"secret-pass\n", check=True, capture_output=True)
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen([binary, "--config", cfg, "serve"], stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, POSTERN_LOG="warn"))
        wait_port(self.smtp); wait_port(self.imap)
        time.sleep(0.5)

    def spool_files(self):
        d = os.path.join(self.dir, "data", "spool", "tmp")
        return len(os.listdir(d)) if os.path.isdir(d) else 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def recv_reply(s, prefix=None):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed; got {data!r}")
        data += chunk
        lines = data.split(b"\r\n")
        for l in lines[:-1]:
            if prefix is None and len(l) >= 4 and l[3:4] == b" ":
                return data
            if prefix is not None and l.startswith(prefix):
                return data


def smtp_start(port):
    s = socket.create_connection(("127.0.0.1", port))
    recv_reply(s)
    for cmd in (b"EHLO bench.test", b"MAIL FROM:<a@remote.test>", b"RCPT TO:<user@example.test>", b"DATA"):
        s.sendall(cmd + b"\r\n")
        r = recv_reply(s)
        if not r[:1] in (b"2", b"3"):
            raise RuntimeError(f"{cmd!r}: {r!r}")
    s.sendall(b"Subject: big\r\nFrom: a@remote.test\r\nTo: user@example.test\r\n\r\n")
    return s


def imap_login(port):
    s = socket.create_connection(("127.0.0.1", port))
    recv_reply(s, b"* OK")
    s.sendall(b"a LOGIN user@example.test secret-pass\r\n")
    r = recv_reply(s, b"a ")
    if b"a OK" not in r:
        raise RuntimeError(f"LOGIN: {r!r}")
    return s


def imap_append(s, size):
    s.sendall(b"b APPEND INBOX {%d}\r\n" % size)
    recv_reply(s, b"+")


def run(mode, args):
    srv = Server(args.bin, args.mib)
    pid = srv.proc.pid
    size = args.mib << 20
    half = body_chunk(size // 2)
    try:
        idle = settle(pid, 0.5)
        socks = []
        base = idle
        if mode == "smtp":
            for i in range(args.conns):
                socks.append(smtp_start(srv.smtp))
        else:
            # Each LOGIN runs Argon2id (19 MiB, on a blocking thread whose malloc arena keeps
            # it: issue 12 item 3). Log in first and take the RSS after the logins as the base,
            # so the figure is what the APPENDs add.
            socks = [imap_login(srv.imap) for _ in range(args.conns)]
            base = settle(pid, 0.5)
            for s in socks:
                imap_append(s, size)
        for s in socks:
            s.sendall(half)
        mid = settle(pid)
        files = srv.spool_files()
        logins = f", after {args.conns} logins {base[0]:.1f} MiB" if mode == "imap" else ""
        print(f"{mode}: {args.conns} x {args.mib} MiB, half sent: idle RSS {idle[0]:.1f} MiB{logins}, "
              f"mid-transfer RSS {mid[0]:.1f} MiB (anon {mid[1]:.1f}, file {mid[2]:.1f}), "
              f"added by the transfers {mid[0] - base[0]:.1f} MiB; spool files {files}", flush=True)
        if args.smaps:
            print(f"  threads {threads(pid)}; largest anonymous mappings (resident kB, size kB):")
            for kb, size, name in top_mappings(pid):
                print(f"    {kb:8d} {size:9d} {name}")
        result = {"idle": idle, "mid": mid}
        if args.complete:
            peak = mid
            rest_len = size - len(half)
            rest = body_chunk(rest_len)
            for s in socks:
                s.sendall(rest)
                s.sendall(b".\r\n" if mode == "smtp" else b"\r\n")
            for s in socks:
                r = recv_reply(s, None if mode == "smtp" else b"b ")
                ok = r.startswith(b"250") if mode == "smtp" else b"b OK" in r
                if not ok:
                    print(f"  reply: {r[:200]!r}")
                peak = max(peak, mem(pid))
            after = settle(pid, 0.5)
            print(f"{mode}: after all replies RSS {after[0]:.1f} MiB (anon {after[1]:.1f}, file {after[2]:.1f}); "
                  f"highest seen while finishing {peak[0]:.1f}; spool files {srv.spool_files()}", flush=True)
            result["after"] = after
        for s in socks:
            s.close()
        return result
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "postern"))
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--mib", type=int, default=40)
    ap.add_argument("--mode", choices=["smtp", "imap", "both"], default="both")
    ap.add_argument("--complete", action="store_true")
    ap.add_argument("--smaps", action="store_true", help="print the largest anonymous mappings")
    args = ap.parse_args()
    modes = ["smtp", "imap"] if args.mode == "both" else [args.mode]
    for m in modes:
        run(m, args)


if __name__ == "__main__":
    sys.exit(main())
