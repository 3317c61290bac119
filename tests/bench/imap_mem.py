#!/usr/bin/env python3
"""IMAP server memory (issue 15): idle IMAPS sessions in IDLE, and a large INBOX held open.
Standard library only. Prints one JSON object on stdout (progress goes to stderr).

Modes
  --mode idle --sessions 500
      Opens N sessions (IMAPS unless --no-tls), each LOGIN, SELECT INBOX, IDLE (waits for
      "+ idling"), and reports the server's PSS growth per session. Logins are excluded:
      a warm-up first opens --warmup sessions the same way (one account, so the server's
      auth cache is warm and Argon2 has run) and closes them; the base is taken after that.
      With --messages M the INBOX holds M messages and each session runs FETCH 1:* (FLAGS UID)
      before its IDLE (a client syncing first). With --append-kib K each session first
      APPENDs a K KiB message (what a large command leaves behind in an idle session).
      JSON: {"mode","server","sessions","pss_base_kib","pss_kib","pss_delta_per_session_kib",
             "rss_base_kib","rss_kib","rss_delta_per_session_kib","threads",
             "idle_cpu_percent" (the server's CPU over 10 s with every session idling)}
  --mode big --messages 100000
      Writes a Maildir INBOX of N small messages straight into cur/ (names as Maildir
      deliveries make them, a third unflagged, the rest \\Seen), then one session LOGIN,
      SELECT INBOX, FETCH 1:* (FLAGS UID), and reports the server's RSS/PSS while that
      session stays selected; the base is taken after one earlier login and logout (so
      the growth leaves out what a first login costs: Argon2 keeps 19 MiB in postern).
      JSON: {"mode","server","messages","rss_base_kib","pss_base_kib","rss_kib","pss_kib",
             "rss_growth_kib","pss_growth_kib","rss_anon_kib","rss_file_kib","select_s","fetch_s"}

Which server
  --server postern   (default) start target/release/postern (or --bin) on loopback with a
                     temporary data dir and one account; stopped at the end.
  --server dovecot   start a private Dovecot (dovecot-imapd, see tests/setup-peers.sh) the same
                     way; memory is summed over its master process and all descendants.
  --server external  use a running server: --host --port [--tls] --user --password --pid
                     (for big: --maildir is the account's INBOX Maildir to fill).
Memory figures come from /proc/PID/smaps_rollup (Pss, Rss) summed over the process tree, in KiB.

Examples
  python3 tests/bench/imap_mem.py --mode idle --sessions 500
  python3 tests/bench/imap_mem.py --mode idle --sessions 500 --server dovecot
  python3 tests/bench/imap_mem.py --mode big --messages 100000 --server both
"""
import argparse, json, os, random, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import bench_dir, free_port, run_dir, wait_port, write_dovecot_conf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER, PASSWORD = "user@example.test", "bench-password-1"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- memory from /proc
def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    """User + system CPU seconds so far, summed over the process tree."""
    tot = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            tot += int(v[11]) + int(v[12])
        except (OSError, IndexError, ValueError):
            pass
    return tot / os.sysconf("SC_CLK_TCK")


def rollup(pid):
    """{'Rss','Pss','Anonymous',...} in KiB, summed over the process tree; plus RssFile,
    RssAnon from status and the thread count."""
    tot = {"Rss": 0, "Pss": 0, "Anonymous": 0, "RssFile": 0, "RssAnon": 0, "Threads": 0}
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("Rss", "Pss", "Anonymous"):
                        tot[k] += int(v.split()[0])
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("RssFile", "RssAnon", "Threads"):
                        tot[k] += int(v.split()[0])
        except OSError:
            pass
    return tot


def settle(pid, secs=1.0, tries=30):
    """Memory once it stops moving (by less than 1 %)."""
    last = rollup(pid)
    for _ in range(tries):
        time.sleep(secs)
        now = rollup(pid)
        if abs(now["Pss"] - last["Pss"]) <= max(256, last["Pss"] // 100):
            return now
        last = now
    return last


# ---------------------------------------------------------------- IMAP client bits
class Conn:
    def __init__(self, host, port, tls):
        s = socket.create_connection((host, port), 30)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        self.s, self.buf, self.n = s, b"", 0
        self.line()  # greeting

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError(f"connection closed; had {self.buf[:200]!r}")
            self.buf += d
        l, _, self.buf = self.buf.partition(b"\r\n")
        return l

    def cmd(self, text, until=None):
        """Send a tagged command; return the untagged lines and the tagged reply."""
        self.n += 1
        tag = b"t%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            l = self.line()
            if until and l.startswith(until):
                return lines, l
            if l.startswith(tag + b" "):
                if not l.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text}: {l!r}")
                return lines, l
            lines.append(l)

    def login_select_idle(self, user, password, fetch=False, append_kib=0):
        self.cmd(f'LOGIN "{user}" "{password}"')
        if append_kib:
            body = b"Subject: bulk\r\n\r\n" + (b"x" * 76 + b"\r\n") * (append_kib * 1024 // 78)
            self.n += 1
            tag = b"t%d" % self.n
            self.s.sendall(tag + b" APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
            while not (l := self.line()).startswith(tag + b" "):
                pass
            if not l.startswith(tag + b" OK"):
                raise RuntimeError(f"APPEND: {l!r}")
        self.cmd("SELECT INBOX")
        if fetch:
            self.cmd("FETCH 1:* (FLAGS UID)")
        self.cmd("IDLE", until=b"+")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---------------------------------------------------------------- servers
class Postern:
    name = "postern"

    def __init__(self, tmp, binary, tls):
        self.dir = run_dir(tmp, "postern")
        os.makedirs(os.path.join(self.dir, "data"))
        self.port, self.tls = free_port(), tls
        cfg = os.path.join(self.dir, "postern.toml")
        listen = f'imaps = ["127.0.0.1:{self.port}"]\nimap = []' if tls else \
                 f'imap = ["127.0.0.1:{self.port}"]\nimaps = []'
        with open(cfg, "w") as f:
            f.write(f'domain = "example.test"\nhostname = "mail.example.test"\ndata_dir = "{self.dir}/data"\n'
                    f'[listen]\nsmtp = []\nsubmission = []\nsubmissions = []\n{listen}\nhttp = []\n'
                    f'[tls]\nsource = "self-signed"\n[inbound]\nverify = false\n'
                    f'[imap]\nallow_plaintext_auth = true\n'
                    f'[limits]\nmax_connections = 5000\nmax_connections_per_ip = 5000\n')
        self.cmd = [binary, "--config", cfg]
        subprocess.run(self.cmd + ["user", "add", USER, "--password-stdin"], input=(PASSWORD + "\n").encode(),
                       check=True, capture_output=True)
        self.maildir = os.path.join(self.dir, "data", "mail", "example.test", "user")
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.proc = subprocess.Popen(self.cmd + ["serve"], stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, POSTERN_LOG="warn"))
        wait_port(self.port)
        self.pid = self.proc.pid

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Dovecot:
    name = "dovecot"

    def __init__(self, tmp, tls):
        self.dir = run_dir(tmp, "dovecot")
        os.makedirs(os.path.join(self.dir, "run"))
        self.port, self.tls = free_port(), tls
        home = os.path.join(self.dir, "home", "user")
        os.makedirs(home)
        self.maildir = os.path.join(home, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub))
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", f"{self.dir}/key.pem", "-out", f"{self.dir}/cert.pem"],
                       check=True, capture_output=True)
        imap_port, imaps_port = (0, self.port) if tls else (self.port, 0)
        write_dovecot_conf(self.dir, f"{self.dir}/home", imap_port, imaps_port, tls)
        self.pid = None

    def start(self):
        subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(self.dir, "home")], check=True)
        subprocess.run(["dovecot", "-c", f"{self.dir}/dovecot.conf"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 30
        while self.pid is None:
            try:
                with open(f"{self.dir}/run/master.pid") as f:
                    self.pid = int(f.read().strip())
            except (OSError, ValueError):
                if time.time() > end:
                    raise
                time.sleep(0.1)
        wait_port(self.port)

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except OSError:
                pass
            end = time.time() + 60
            while os.path.exists(f"/proc/{self.pid}") and time.time() < end:
                time.sleep(0.2)
            self.pid = None


class External:
    name = "external"

    def __init__(self, args):
        self.port, self.tls, self.pid, self.maildir = args.port, args.tls, args.pid, args.maildir

    def start(self):
        pass

    def stop(self):
        pass


# ---------------------------------------------------------------- workloads
def make_maildir(dst, n, seed=42):
    """n small messages (~0.5-1.5 KiB) straight into dst/cur, as a Maildir delivery names
    them (`secs.MusecPpidQn.host,S=size:2,flags`); two thirds \\Seen."""
    rnd = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(dst, sub), exist_ok=True)
    base = 1700000000
    cur = os.path.join(dst, "cur")
    for i in range(n):
        body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * rnd.randint(5, 25)) + "\r\n"
        msg = (f"From: Sender {i} <s{i}@remote.test>\r\nTo: {USER}\r\nSubject: message {i}\r\n"
               f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{i}@remote.test>\r\n\r\n{body}").encode()
        flags = "S" if i % 3 else ""
        name = f"{base + i}.M{i % 1000000:06d}P4242Q{i}.mail.example.test,S={len(msg)}:2,{flags}"
        p = os.path.join(cur, name)
        with open(p, "wb") as f:
            f.write(msg)
        os.utime(p, (base + i, base + i))


def run_idle(srv, args):
    host = args.host
    warm = []
    for _ in range(args.warmup):
        c = Conn(host, srv.port, srv.tls)
        c.login_select_idle(args.user, args.password, args.messages > 0, args.append_kib)
        warm.append(c)
    for c in warm:
        c.s.sendall(b"DONE\r\n")
        c.close()
    base = settle(srv.pid)
    log(f"{srv.name}: base after {args.warmup} warm-up sessions: PSS {base['Pss']} KiB, RSS {base['Rss']} KiB")
    conns = []
    t0 = time.time()
    for i in range(args.sessions):
        c = Conn(host, srv.port, srv.tls)
        c.login_select_idle(args.user, args.password, args.messages > 0, args.append_kib)
        conns.append(c)
        if (i + 1) % 100 == 0:
            log(f"  {i + 1} sessions idling ({time.time() - t0:.1f} s)")
    now = settle(srv.pid, 2.0)
    n = args.sessions
    # What the idling sessions cost in CPU while nothing happens (polling for changes made
    # by other programs, timers).
    c0 = cpu_seconds(srv.pid)
    time.sleep(10)
    idle_cpu = (cpu_seconds(srv.pid) - c0) / 10
    res = {"mode": "idle", "server": srv.name, "tls": srv.tls, "sessions": n, "messages": args.messages,
           "append_kib": args.append_kib,
           "pss_base_kib": base["Pss"], "pss_kib": now["Pss"],
           "pss_delta_per_session_kib": round((now["Pss"] - base["Pss"]) / n, 1),
           "rss_base_kib": base["Rss"], "rss_kib": now["Rss"],
           "rss_delta_per_session_kib": round((now["Rss"] - base["Rss"]) / n, 1),
           "anon_delta_per_session_kib": round((now["Anonymous"] - base["Anonymous"]) / n, 1),
           "threads": now["Threads"], "idle_cpu_percent": round(100 * idle_cpu, 2)}
    for c in conns:
        c.close()
    return res


def run_big(srv, args, fill):
    if fill:
        fill()
    # One login first (Argon2's memory, and the auth cache), so the base leaves it out.
    w = Conn(args.host, srv.port, srv.tls)
    w.cmd(f'LOGIN "{args.user}" "{args.password}"')
    w.cmd("LOGOUT")
    w.close()
    base = settle(srv.pid, 0.5)
    c = Conn(args.host, srv.port, srv.tls)
    c.cmd(f'LOGIN "{args.user}" "{args.password}"')
    t0 = time.time()
    lines, _ = c.cmd("SELECT INBOX")
    t_select = time.time() - t0
    exists = [l for l in lines if l.endswith(b" EXISTS")]
    t0 = time.time()
    lines, _ = c.cmd("FETCH 1:* (FLAGS UID)")
    t_fetch = time.time() - t0
    if len(lines) < args.messages:
        raise RuntimeError(f"FETCH gave {len(lines)} lines for {args.messages} messages ({exists})")
    now = settle(srv.pid)
    res = {"mode": "big", "server": srv.name, "tls": srv.tls, "messages": args.messages,
           "rss_base_kib": base["Rss"], "pss_base_kib": base["Pss"],
           "rss_kib": now["Rss"], "pss_kib": now["Pss"],
           "rss_growth_kib": now["Rss"] - base["Rss"], "pss_growth_kib": now["Pss"] - base["Pss"],
           "rss_anon_kib": now["RssAnon"], "rss_file_kib": now["RssFile"],
           "select_s": round(t_select, 3), "fetch_s": round(t_fetch, 3), "threads": now["Threads"]}
    c.cmd("LOGOUT")
    c.close()
    return res


def one(kind, args, tmp, seed_dir):
    if kind == "postern":
        srv = Postern(tmp, args.bin, args.tls)
    elif kind == "dovecot":
        srv = Dovecot(tmp, args.tls)
    else:
        srv = External(args)
    fill = None
    if args.messages and srv.maildir:
        def fill():
            dst = srv.maildir
            log(f"{srv.name}: filling {dst} with {args.messages} messages")
            shutil.rmtree(os.path.join(dst, "cur"), ignore_errors=True)
            shutil.copytree(os.path.join(seed_dir, "cur"), os.path.join(dst, "cur"))
            for sub in ("new", "tmp"):
                os.makedirs(os.path.join(dst, sub), exist_ok=True)
            if kind == "dovecot":
                subprocess.run(["chown", "-R", "nobody:nogroup", dst], check=True)
    if kind != "external" and fill:
        # Filled before the start: a Maildir is not meant to be built under a running server.
        fill()
        fill = None
    try:
        srv.start()
        if args.mode == "idle":
            return run_idle(srv, args)
        return run_big(srv, args, fill)
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["idle", "big"], required=True)
    ap.add_argument("--server", choices=["postern", "dovecot", "both", "external"], default="postern")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "postern"))
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=20, help="idle: sessions opened and closed before the base")
    ap.add_argument("--messages", type=int, default=None,
                    help="big: messages in INBOX (100000); idle: messages in INBOX (0), each session "
                         "then runs FETCH 1:* (FLAGS UID) before its IDLE, as a client syncing first")
    ap.add_argument("--append-kib", type=int, default=0,
                    help="idle: each session first APPENDs a message of this size (a client that "
                         "sent a large command before it went idle)")
    ap.add_argument("--tls", dest="tls", action="store_true", default=None, help="IMAPS (default for idle)")
    ap.add_argument("--no-tls", dest="tls", action="store_false")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--user", default=USER)
    ap.add_argument("--password", default=PASSWORD)
    ap.add_argument("--pid", type=int, help="external: the server's (master) process")
    ap.add_argument("--maildir", help="external, big: the account's INBOX Maildir to fill")
    args = ap.parse_args()
    if args.messages is None:
        args.messages = 100000 if args.mode == "big" else 0
    if args.tls is None:
        args.tls = args.mode == "idle"
    if args.server == "external" and not (args.port and args.pid):
        ap.error("--server external needs --port and --pid")
    if args.server in ("postern", "both") and not os.path.exists(args.bin):
        sys.exit(f"no {args.bin}: cargo build --release (or --bin target/debug/postern)")
    kinds = ["postern", "dovecot"] if args.server == "both" else [args.server]
    # Each server's directory in a block group of its own (see servers.bench_dir).
    tmp = bench_dir("postern-imapmem-")
    try:
        seed = None
        if args.messages and (args.server != "external" or args.maildir):
            seed = run_dir(tmp, "seed")
            t0 = time.time()
            make_maildir(seed, args.messages)
            log(f"built {args.messages} messages in {time.time() - t0:.1f} s")
        results = [one(k, args, tmp, seed) for k in kinds]
        if args.server == "external" and args.mode == "big" and not args.maildir:
            log("note: --maildir not given, the external server's INBOX was used as it is")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results[0] if len(results) == 1 else results, indent=1))


if __name__ == "__main__":
    main()
