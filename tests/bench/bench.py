#!/usr/bin/env python3
"""Side-by-side benchmark: postern vs Postfix (SMTP ingest into Maildir) and vs Dovecot (IMAP
on a large Maildir INBOX), in one run on the same machine.

Usage (as root, after `cargo build --release`):
    python3 tests/bench/bench.py [--messages 2000] [--mailbox 100000] [--out BENCHMARKS.md]
    python3 tests/bench/bench.py --rows outbound [--outbound 1000] [--bin target/debug/postern] [--strace]

Rows: `ingest` (SMTP into Maildir), `imap` (large INBOX), `outbound` (accepted, queued and
relayed to a remote smtp-sink: a postern alias forwarding to a remote address, whose MX is
resolved through dnsmasq, against Postfix with `relayhost`). `--strace` runs postern under
`strace -f -c` for the outbound row and reports fsyncs per message (slower: figures only).

It installs nothing; `tests/setup-peers.sh` installs the prerequisites: postfix (smtp-source), dovecot-imapd.
Everything binds 127.0.0.1 only and lives in a temporary directory.
"""
import argparse, imaplib, os, random, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTERN = os.path.join(ROOT, "target", "release", "postern")


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


def rss_kb(pid):
    """Resident memory of a process and its children (kB)."""
    total = 0
    try:
        out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
        total += sum(int(x) for x in out)
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def count_files(d):
    n = 0
    for sub in ("new", "cur"):
        p = os.path.join(d, sub)
        if os.path.isdir(p):
            n += len(os.listdir(p))
    return n


def timed_ingest(port, n, sessions, size, maildir):
    """Seconds from the first connection until all n messages are files in the Maildir
    (Postfix answers 250 once queued and delivers after; postern delivers before its 250)."""
    t0 = time.time()
    subprocess.run(["smtp-source", "-m", str(n), "-s", str(sessions), "-l", str(size), "-f", "sender@remote.test",
                    "-t", "user@example.test", f"127.0.0.1:{port}"], check=True)
    wait_count(maildir, n)
    return time.time() - t0


def wait_count(d, n, timeout=600):
    t0 = time.time()
    while count_files(d) < n:
        if time.time() - t0 > timeout:
            raise RuntimeError(f"only {count_files(d)}/{n} messages in {d}")
        time.sleep(0.05)


# ---------------------------------------------------------------- postern
class Postern:
    def __init__(self, tmp, extra="", name="postern"):
        self.dir = os.path.join(tmp, name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.smtp, self.imap = free_port(), free_port()
        self.cfg = os.path.join(self.dir, "postern.toml")
        with open(self.cfg, "w") as f:
            f.write(f'domain = "example.test"\nhostname = "mail.example.test"\ndata_dir = "{self.dir}/data"\n'
                    f'[listen]\nsmtp = ["127.0.0.1:{self.smtp}"]\nsubmission = []\nsubmissions = []\n'
                    f'imap = ["127.0.0.1:{self.imap}"]\nimaps = []\nhttp = []\nmanagesieve = []\n[tls]\nsource = "self-signed"\n'
                    f'[inbound]\nverify = false\n[imap]\nallow_plaintext_auth = true\n[limits]\nmax_connections_per_ip = 1000\nmax_messages_per_connection = 100000\n{extra}')
        subprocess.run([POSTERN, "--config", self.cfg, "user", "add", "user@example.test", "--password-stdin",
                        "--allow-short-password"],
                       input=b"pw\n", check=True, capture_output=True)
        self.maildir = os.path.join(self.dir, "data", "mail", "example.test", "user")
        self.proc = None

    def start(self, wrap=(), log="warn", stderr=subprocess.DEVNULL):
        self.proc = subprocess.Popen([*wrap, POSTERN, "--config", self.cfg, "serve"], stderr=stderr,
                                     env=dict(os.environ, POSTERN_LOG=log))
        wait_port(self.smtp); wait_port(self.imap)

    def stop(self):
        if self.proc:
            # Under a wrapper (strace), the server is its child: signal the server itself.
            pids = [self.proc.pid]
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    pids = [int(x) for x in f.read().split()] or pids
            except OSError:
                pass
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
            self.proc.wait(60); self.proc = None


# ---------------------------------------------------------------- Postfix
class Postfix:
    def __init__(self, tmp, extra="", name="postfix"):
        self.dir = os.path.join(tmp, name)
        etc, q, data, mail = (os.path.join(self.dir, x) for x in ("etc", "queue", "data", "mail"))
        for d in (etc, q, data, mail):
            os.makedirs(d)
        shutil.chown(data, "postfix"); shutil.chown(mail, "nobody", "nogroup")
        self.port = free_port()
        self.maildir = os.path.join(mail, "user")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {q}
data_directory = {data}
maillog_file = {self.dir}/maillog
maillog_file_prefixes = {self.dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.postfix.test
mydestination =
smtpd_recipient_restrictions = reject_unauth_destination
virtual_mailbox_domains = example.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = inline:{{ {{user@example.test=user/}} }}
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_client_connection_count_limit = 1000
default_process_limit = 100
{extra}""")
        with open("/etc/postfix/master.cf") as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            cols = line.split()
            if cols and cols[0] == "smtp" and len(cols) > 1 and cols[1] == "inet":
                out.append(f"127.0.0.1:{self.port} inet n - n - - smtpd")
                continue
            if len(cols) >= 8 and not line.startswith((" ", "\t", "#")) and cols[4] in ("y", "-"):
                cols[4] = "n"
                line = " ".join(cols)
            out.append(line)
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        self.etc = etc

    def start(self):
        subprocess.run(["postfix", "-c", self.etc, "start"], check=True, capture_output=True)
        wait_port(self.port)

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)


# ---------------------------------------------------------------- Dovecot
class Dovecot:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "dovecot")
        os.makedirs(os.path.join(self.dir, "run"))
        self.port = free_port()
        home = os.path.join(self.dir, "home", "user")
        os.makedirs(home)
        self.maildir = os.path.join(home, "Maildir")
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write("user@example.test:{PLAIN}pw\n")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-keyout", f"{self.dir}/key.pem", "-out", f"{self.dir}/cert.pem"], check=True, capture_output=True)
        # Dovecot refuses uid 0 for mail access: the mail belongs to nobody.
        uid, gid, user = 65534, 65534, "nobody"
        with open(os.path.join(self.dir, "dovecot.conf"), "w") as f:
            f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {self.dir}/run
log_path = {self.dir}/dovecot.log
ssl = yes
ssl_cert = <{self.dir}/cert.pem
ssl_key = <{self.dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
first_valid_uid = 0
default_login_user = nobody
default_internal_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.dir}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")

    def start(self):
        subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(self.dir, "home")], check=True)
        subprocess.run(["dovecot", "-c", f"{self.dir}/dovecot.conf"], check=True)
        wait_port(self.port)

    def pid(self):
        with open(f"{self.dir}/run/master.pid") as f:
            return int(f.read().strip())

    def stop(self):
        try:
            os.kill(self.pid(), signal.SIGTERM)
        except OSError:
            pass
        time.sleep(1)


# ---------------------------------------------------------------- outbound
class Sink:
    """Postfix's smtp-sink as the remote MX, dumping one file per message."""
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sink-%d" % free_port())
        os.makedirs(self.dir); os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", self.dir + "/msg.", f"127.0.0.1:{self.port}", "256"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def count(self):
        return len(os.listdir(self.dir))

    def stop(self):
        self.proc.kill(); self.proc.wait()


class Dnsmasq:
    """MX of remote.test -> 127.0.0.1 (postern resolves MX hosts; Postfix uses relayhost)."""
    def __init__(self, tmp):
        d = os.path.join(tmp, "dns-%d" % free_port()); os.makedirs(d)
        self.port = free_port()
        conf = os.path.join(d, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write(f"port={self.port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nlocal=/test/\n"
                    f"pid-file={d}/pid\nmx-host=remote.test,mx.remote.test,10\nhost-record=mx.remote.test,127.0.0.1\n")
        self.proc = subprocess.Popen(["dnsmasq", "-k", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.proc.kill(); self.proc.wait()


def timed_outbound(port, n, sessions, sink):
    """Seconds from the first connection until all n messages reached the remote sink."""
    t0 = time.time()
    subprocess.run(["smtp-source", "-m", str(n), "-s", str(sessions), "-l", "1024", "-f", "sender@remote.test",
                    "-t", "fwd@example.test", f"127.0.0.1:{port}"], check=True)
    end = t0 + 600
    while sink.count() < n:
        if time.time() > end:
            raise RuntimeError(f"only {sink.count()}/{n} messages at the sink")
        time.sleep(0.05)
    return time.time() - t0


def outbound_rows(tmp, n, sessions, strace):
    """Postfix relayhost vs postern alias forward, alternating: Postfix, postern."""
    rows, notes = [], []
    sink = Sink(tmp)
    try:
        pf = Postfix(tmp, name="postfix-out", extra=f"relayhost = [127.0.0.1]:{sink.port}\n"
                     "virtual_alias_maps = inline:{ {fwd@example.test=friend@remote.test} }\n")
        pf.start()
        try:
            t_pf = timed_outbound(pf.port, n, sessions, sink)
        finally:
            pf.stop()
    finally:
        sink.stop()
    sink, dns = Sink(tmp), Dnsmasq(tmp)
    try:
        pt = Postern(tmp, name="postern-out", extra=f"[dns]\nnameservers = [\"127.0.0.1:{dns.port}\"]\n"
                     f"[outbound]\nport = {sink.port}\n")
        subprocess.run([POSTERN, "--config", pt.cfg, "alias", "add", "fwd@example.test", "friend@remote.test"],
                       check=True, capture_output=True)
        trace = os.path.join(pt.dir, "strace.txt")
        log = open(os.path.join(pt.dir, "serve.log"), "w")
        wrap = ("strace", "-f", "-c", "-o", trace, "-e", "trace=fsync,fdatasync") if strace else ()
        pt.start(wrap=wrap, log="info", stderr=log)
        try:
            t_pt = timed_outbound(pt.smtp, n, sessions, sink)
        finally:
            pt.stop(); log.close()
        with open(os.path.join(pt.dir, "serve.log")) as f:
            tx = [l for l in f if "outbound transaction" in l]
        fresh = sum(1 for l in tx if "reused=true" not in l)
        notes.append(f"postern: {len(tx)} outbound transactions, {fresh} on new connections "
                     f"({fresh / n:.3f} connections per message)")
        if strace:
            fsyncs = 0
            with open(trace) as f:
                for line in f:
                    cols = line.split()
                    if cols and cols[-1] in ("fsync", "fdatasync") and cols[-2].isdigit():
                        fsyncs += int(cols[-2] if len(cols) == 5 else cols[3])
            notes.append(f"postern: {fsyncs} fsync/fdatasync calls, {fsyncs / n:.2f} per message (strace -f -c)")
    finally:
        sink.stop(); dns.stop()
    rows.append((f"Outbound drain, {n} x 1 KiB over {sessions} sessions to a remote smtp-sink (s)", t_pt, t_pf, "Postfix"))
    rows.append(("Outbound drain rate (msg/s)", n / t_pt, n / t_pf, "Postfix"))
    return rows, notes


# ---------------------------------------------------------------- workloads
def make_maildir(dst, n):
    """n plain messages of ~1-3 KiB in dst/cur with a few flags, deterministic."""
    rnd = random.Random(42)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(dst, sub), exist_ok=True)
    base = 1700000000
    for i in range(n):
        body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * rnd.randint(15, 50)) + "\r\n"
        msg = (f"From: Sender {i} <s{i}@remote.test>\r\nTo: user@example.test\r\nSubject: message {i}\r\n"
               f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{i}@remote.test>\r\n\r\n{body}").encode()
        flags = "S" if i % 3 else ""
        name = f"{base + i}.M{i}P1.bench,S={len(msg)}:2,{flags}"
        p = os.path.join(dst, "cur", name)
        with open(p, "wb") as f:
            f.write(msg)
        os.utime(p, (base + i, base + i))


def imap_timings(port, expect):
    """Seconds for: LOGIN+SELECT, UID FETCH 1:* (UID FLAGS), a second SELECT+FETCH on a new connection."""
    out = {}
    for round_ in ("first", "second"):
        c = imaplib.IMAP4("127.0.0.1", port)
        c.login("user@example.test", "pw")
        t0 = time.time()
        typ, data = c.select("INBOX", readonly=True)
        out[f"select_{round_}"] = time.time() - t0
        assert typ == "OK" and int(data[0]) == expect, (typ, data)
        t0 = time.time()
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
        out[f"fetch_{round_}"] = time.time() - t0
        assert typ == "OK" and len(data) >= expect, (typ, len(data))
        c.logout()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000, help="SMTP messages to ingest")
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--mailbox", type=int, default=100000, help="messages in the IMAP INBOX")
    ap.add_argument("--out", default=None, help="append results (markdown) to this file")
    ap.add_argument("--rows", default="ingest,imap,outbound", help="comma-separated: ingest, imap, outbound")
    ap.add_argument("--outbound", type=int, default=1000, help="messages relayed in the outbound row")
    ap.add_argument("--bin", default=None, help="postern binary (default target/release/postern)")
    ap.add_argument("--strace", action="store_true", help="count postern's fsyncs in the outbound row")
    args = ap.parse_args()
    global POSTERN
    if args.bin:
        POSTERN = os.path.abspath(args.bin)
    want = set(args.rows.split(","))
    if not os.path.exists(POSTERN):
        sys.exit("build first: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="postern-bench-")
    os.chmod(tmp, 0o755)
    rows, notes = [], []
    try:
        if "outbound" in want:
            r, nt = outbound_rows(tmp, args.outbound, args.sessions, args.strace)
            rows += r; notes += nt
    finally:
        if want <= {"outbound"}:
            shutil.rmtree(tmp, ignore_errors=True)
    if want & {"ingest", "imap"}:
        rows += ingest_and_imap(args, tmp, want)
    report(args, rows, notes)


def ingest_and_imap(args, tmp, want):
    """The ingest and IMAP rows (run together: the IMAP row reuses the ingest's server)."""
    rows = []
    try:
        # --- SMTP ingest: smtp-source → server → fsynced Maildir file
        pf = Postfix(tmp); pf.start()
        try:
            t_pf = timed_ingest(pf.port, args.messages, args.sessions, 1024, pf.maildir)
        finally:
            pf.stop()
        pt = Postern(tmp); pt.start()
        try:
            t_pt = timed_ingest(pt.smtp, args.messages, args.sessions, 1024, pt.maildir)
            rss_pt_smtp = rss_kb(pt.proc.pid)
        finally:
            pt.stop()
        rows.append(("SMTP ingest, %d x 1 KiB over %d sessions (s)" % (args.messages, args.sessions), t_pt, t_pf, "Postfix"))
        rows.append(("SMTP ingest rate (msg/s)", args.messages / t_pt, args.messages / t_pf, "Postfix"))

        # --- IMAP on a large INBOX
        src = os.path.join(tmp, "seed")
        make_maildir(src, args.mailbox)
        shutil.rmtree(pt.maildir, ignore_errors=True)
        shutil.copytree(src, pt.maildir)
        for (name, _) in [("Sent", 0), ("Drafts", 0), ("Trash", 0), ("Junk", 0), ("Archive", 0)]:
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(pt.maildir, "." + name, sub), exist_ok=True)
        pt.start()
        try:
            t_imap_pt = imap_timings(pt.imap, args.mailbox)
            rss_pt = rss_kb(pt.proc.pid)
        finally:
            pt.stop()
        dv = Dovecot(tmp)
        shutil.copytree(src, dv.maildir)
        dv.start()
        try:
            t_imap_dv = imap_timings(dv.port, args.mailbox)
            rss_dv = rss_kb(dv.pid())
        finally:
            dv.stop()
        for k, label in [("select_first", "SELECT INBOX, first open (s)"), ("fetch_first", "UID FETCH 1:* (UID FLAGS), first (s)"),
                         ("select_second", "SELECT INBOX, second open (s)"), ("fetch_second", "UID FETCH 1:* (UID FLAGS), second (s)")]:
            rows.append((f"{label}, {args.mailbox} messages", t_imap_pt[k], t_imap_dv[k], "Dovecot"))
        rows.append(("Server RSS after IMAP run (MiB)", rss_pt / 1024, rss_dv / 1024, "Dovecot"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def report(args, rows, notes):
    lines = ["| measure | postern | baseline | baseline is |", "|---|---:|---:|---|"]
    for (what, a, b, who) in rows:
        lines.append(f"| {what} | {a:.3f} | {b:.3f} | {who} |")
    table = "\n".join(lines + [""] + [f"- {n}" for n in notes])
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
