#!/usr/bin/env python3
"""Side by side: postern against Postfix 3.7 (SMTP) and Dovecot 2.3 (IMAP), every row of
issue 15's table, on the same machine in one run, alternating postern and the baseline
(A B A B …, `--rounds` of each) and reporting the medians.

Rows (`--rows`, default all):
  fsync     the raw fsync ceiling: 10 threads, each write 1 KiB + fsync + rename + directory
            fsync, in msg/s (always measured with `inbound`, between its rounds)
  inbound   smtp-source, N x 1 KiB over 10 sessions, DKIM-signed mail from sender.test whose
            SPF, DKIM key, DMARC policy and PTR/A records dnsmasq serves: postern with its
            SPF/DKIM/DMARC/iprev checks on against Postfix delivering to a virtual Maildir
  outbound  smtp-source to an alias forwarding to friend@remote.test, whose MX (dnsmasq) is
            Postfix's smtp-sink, against Postfix with the same alias and `relayhost`
  imap      tests/bench/imap_load.py: 10 clients on 20 accounts, mixed operations, logins
            excluded, against Dovecot with PLAIN passwords
  idle      tests/bench/imap_mem.py --mode idle: PSS per IMAPS session in IDLE
  big       tests/bench/imap_mem.py --mode big: RSS with a large INBOX open

Usage (as root, after `cargo build --release`; prints the table and writes it into
BENCHMARKS.md under "All rows", replacing the previous one):
    python3 tests/bench/bench.py
    python3 tests/bench/bench.py --quick --bin target/debug/postern      # 2-minute smoke run, no write
    python3 tests/bench/bench.py --rows outbound --outbound 300 --strace   # + fsyncs per message
    python3 tests/bench/bench.py --self-test

It installs nothing (`tests/setup-peers.sh` does): it stops at once naming a missing peer.
Everything binds 127.0.0.1 and lives in one temporary directory, removed on exit with every
server started, Ctrl-C included.
"""
import argparse, base64, json, os, resource, shlex, shutil, signal, subprocess, sys, tempfile, time
import threading
from statistics import median

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers as S  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ALL_ROWS = ["fsync", "inbound", "outbound", "imap", "idle", "big"]
FOLDERS = ("Sent", "Drafts", "Trash", "Junk", "Archive")


T0 = time.monotonic()


def log(msg):
    print(f"bench: {time.monotonic() - T0:6.1f} s: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- results and the table
class Row:
    """One line of the table: every run of postern and of the baseline, and the goal."""
    def __init__(self, short, measure, unit, baseline_name, goal="—", checks=()):
        self.short, self.measure, self.unit, self.baseline_name, self.goal = short, measure, unit, baseline_name, goal
        self.checks = list(checks)  # fn(postern, baseline) -> (ok, detail)
        self.postern, self.baseline = [], []

    def medians(self):
        return (median(self.postern) if self.postern else None, median(self.baseline) if self.baseline else None)

    def cells(self):
        pt, base = self.medians()
        ratio = f"{pt / base:.2f}×" if pt is not None and base else "—"
        if not self.checks or pt is None or base is None:
            met = "—"
        else:
            res = [c(pt, base) for c in self.checks]
            met = ("yes" if all(ok for ok, _ in res) else "no") + " (" + ", ".join(d for _, d in res) + ")"
        pt_s = f"{fmt(pt)} {self.unit}" if pt is not None else "—"
        base_s = f"{self.baseline_name} {fmt(base)} {self.unit}".strip() if base is not None else "—"
        return [self.measure, pt_s, base_s, ratio, self.goal, met]

    def runs_note(self):
        parts = []
        if self.postern:
            parts.append("postern " + ", ".join(fmt(x) for x in self.postern))
        if self.baseline:
            parts.append(f"{self.baseline_name or 'baseline'} " + ", ".join(fmt(x) for x in self.baseline))
        return f"{self.short}, every run ({self.unit}): " + "; ".join(parts)


def fmt(x):
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio_at_least(k):
    return lambda pt, base: (pt / base >= k, f"{pt / base:.2f}× vs ≥ {k:g}×")


def ratio_at_most(k):
    return lambda pt, base: (pt / base <= k, f"{pt / base:.2f}× vs ≤ {k:g}×")


def value_at_most(limit, unit):
    return lambda pt, base: (pt <= limit, f"{fmt(pt)} vs ≤ {limit:g} {unit}")


def table(rows):
    out = ["| measure | postern | baseline | ratio | goal | met? |", "|---|---:|---:|---:|---|---|"]
    out += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(out)


def replace_section(text, section, heading_prefix="## All rows"):
    """`section` in place of the one whose heading starts with `heading_prefix` (up to the next
    `## ` heading), or before the first `## ` section when there is none."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith(heading_prefix)), None)
    if start is None:
        start = end = next((i for i, l in enumerate(lines) if l.startswith("## ")), len(lines))
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    new = section.rstrip("\n").splitlines() + [""]
    return "\n".join(lines[:start] + new + lines[end:]) + "\n"


# ---------------------------------------------------------------- environment
def check_peers(args, rows):
    missing = []
    have = lambda c: shutil.which(c, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    need = []
    if rows & {"inbound", "outbound"}:
        need += [("postfix", "postfix"), ("smtp-source", "postfix (smtp-source)"), ("dnsmasq", "dnsmasq-base")]
    if "outbound" in rows:
        need += [("smtp-sink", "postfix (smtp-sink)")]
    if rows & {"imap", "idle", "big"}:
        need += [("dovecot", "dovecot-imapd"), ("openssl", "openssl")]
    if "inbound" in rows:
        need += [("openssl", "openssl")]
        try:
            import dkim  # noqa: F401
        except ImportError:
            missing.append("dkimpy (PyPI dkimpy, the DKIM signer of the inbound messages)")
    if args.strace:
        need += [("strace", "strace")]
    for cmd, pkg in need:
        if not have(cmd) and not any(cmd in m for m in missing):
            missing.append(f"{cmd} (Debian package {pkg})")
    if missing:
        sys.exit("bench: missing peer(s): " + "; ".join(missing) + ". tests/setup-peers.sh installs them.")
    if os.geteuid() != 0:
        sys.exit("bench: run as root (Postfix and Dovecot start as root and drop to postfix/nobody)")
    if not os.path.exists(S.postern_bin()):
        sys.exit(f"bench: no {S.postern_bin()}: cargo build --release (or --bin target/debug/postern)")


def git(*a):
    r = subprocess.run(["git", "-C", S.ROOT, *a], capture_output=True, text=True)
    return r.stdout.strip()


def build_kind(path):
    p = os.path.realpath(path)
    return "release" if "/release/" in p else "debug" if "/debug/" in p else f"unknown ({path})"


def versions():
    pf = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True).stdout.strip()
    dv = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.split(" ")[0].strip()
    return pf or "?", dv or "?"


def fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------- fsync ceiling
def fsync_ceiling(dirpath, n, threads=10, size=1024):
    """msg/s of n durable 1 KiB files from `threads` threads: write, fsync, rename tmp/ → new/,
    fsync new/ (what a Maildir delivery that answers 250 only when durable must do)."""
    S.maildir_tree(dirpath)
    data = os.urandom(size)

    def worker(t):
        for i in range(t, n, threads):
            tmp, dst = f"{dirpath}/tmp/{i}", f"{dirpath}/new/{i}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data); os.fsync(fd); os.close(fd)
            os.rename(tmp, dst)
            dfd = os.open(f"{dirpath}/new", os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd); os.close(dfd)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    settle()
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rate = n / (time.monotonic() - t0)
    return rate


# ---------------------------------------------------------------- DNS world and DKIM
def dkim_key(tmp):
    pem = os.path.join(tmp, "dkim.pem")
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", pem, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER", "-in", pem], check=True,
                         capture_output=True).stdout
    return pem, base64.b64encode(der).decode()


def dns_records(public_b64):
    """sender.test: SPF allows 127.0.0.1, DKIM key `sel`, DMARC p=reject, HELO name
    mail.sender.test with A and the PTR of 127.0.0.1; remote.test: MX → 127.0.0.1."""
    return (S.txt_record("sender.test", "v=spf1 ip4:127.0.0.1 -all")
            + S.txt_record("mail.sender.test", "v=spf1 ip4:127.0.0.1 -all")
            + S.txt_record("sel._domainkey.sender.test", f"v=DKIM1; k=rsa; p={public_b64}")
            + S.txt_record("_dmarc.sender.test", "v=DMARC1; p=reject")
            + "host-record=mail.sender.test,127.0.0.1\nptr-record=1.0.0.127.in-addr.arpa,mail.sender.test\n"
            + "mx-host=remote.test,mx.remote.test,10\naddress=/mx.remote.test/127.0.0.1\n")


def signed_message(tmp, pem):
    """A ~1 KiB message from sender.test, DKIM-signed, LF line ends (smtp-source -F sends each
    line with CRLF)."""
    import dkim
    body = "".join(f"Line {i:02d} of the benchmark message: lorem ipsum dolor sit amet.\r\n" for i in range(15))
    msg = ("From: Sender <sender@sender.test>\r\nTo: user@example.test\r\nSubject: benchmark\r\n"
           "Date: Sun, 6 Dec 2026 12:00:00 +0000\r\nMessage-ID: <bench@sender.test>\r\n\r\n" + body).encode()
    with open(pem, "rb") as f:
        sig = dkim.sign(msg, b"sel", b"sender.test", f.read(), canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    path = os.path.join(tmp, "signed.eml")
    with open(path, "wb") as f:
        f.write((sig + msg).replace(b"\r\n", b"\n"))
    return path


# ---------------------------------------------------------------- SMTP rows
def settle():
    """Before a timed run: write back what earlier runs left dirty (`sync`), so that their
    writeback does not land in this run's time, whichever side ran before."""
    os.sync()
    time.sleep(0.5)


def cpu_jiffies():
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


class CpuUse:
    """The whole machine's CPU while a run's clock runs: is the run bound by the CPU (both
    cores busy) or by waiting (fsync, round trips)? Counts every process: server, client
    (smtp-source), dnsmasq, kernel threads."""
    def __init__(self):
        self.postern, self.baseline = [], []

    @staticmethod
    def start():
        return cpu_jiffies()

    @staticmethod
    def since(t0, n):
        b0, a0 = t0
        b1, a1 = cpu_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        return (b1 - b0) / max(1, a1 - a0), (b1 - b0) / hz / n * 1000

    def note(self, what, base):
        f = lambda runs: ", ".join(f"{100 * b:.0f} %" for b, _ in runs)
        ms = lambda runs: median([m for _, m in runs])
        return (f"{what}: the machine's CPU while the clock ran (all processes, {os.cpu_count()} cores = 100 %): "
                f"postern runs {f(self.postern)} ({ms(self.postern):.2f} ms of CPU per message, median), "
                f"{base} runs {f(self.baseline)} ({ms(self.baseline):.2f} ms)")


def count_files(d):
    return sum(len(os.listdir(os.path.join(d, s))) for s in ("new", "cur") if os.path.isdir(os.path.join(d, s)))


def wait_until(what, cond, timeout=600):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def smtp_source(port, n, sessions, sender, rcpt, helo=None, msg_file=None):
    cmd = ["smtp-source", "-m", str(n), "-s", str(sessions), "-f", sender, "-t", rcpt]
    cmd += ["-M", helo] if helo else []
    cmd += ["-F", msg_file] if msg_file else ["-l", "1024"]
    subprocess.run(cmd + [f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)


def inbound_rows(ctx):
    a = ctx.args
    ceiling = Row("fsync ceiling", f"raw fsync ceiling: {a.sessions} threads, write 1 KiB + fsync + rename + dir fsync "
                  f"(no server)", "msg/s", "disk")
    rows = [ceiling]
    if "inbound" not in ctx.rows:
        for i in range(a.rounds):
            ceiling.baseline.append(fsync_ceiling(S.run_dir(ctx.tmp, f"fsync-{i}"), a.messages, a.sessions))
            log(f"fsync ceiling {i + 1}/{a.rounds}: {fmt(ceiling.baseline[-1])} msg/s")
        return rows, []
    inbound = Row("inbound", f"inbound SMTP → Maildir, {a.messages} × 1 KiB, {a.sessions} sessions, postern with "
                  "SPF/DKIM/DMARC/iprev on (dnsmasq on loopback)", "msg/s", "Postfix",
                  "≥ 2× and ≥ 50 % of the fsync ceiling",
                  [ratio_at_least(2),
                   lambda pt, base: (pt >= 0.5 * median(ceiling.baseline),
                                     f"{100 * pt / median(ceiling.baseline):.0f} % of ceiling vs ≥ 50 %")])
    rows.append(inbound)
    send = dict(sender="sender@sender.test", rcpt="user@example.test", helo="mail.sender.test", msg_file=ctx.signed)
    cpu = CpuUse()
    for i in range(a.rounds):
        ceiling.baseline.append(fsync_ceiling(S.run_dir(ctx.tmp, f"fsync-{i}"), a.messages, a.sessions))
        pt = S.Postern(ctx.tmp, name=f"postern-in-{i}", verify=True, dns_port=ctx.dns.port)
        pt.start()
        settle()
        t0, c0 = time.monotonic(), cpu.start()
        smtp_source(pt.smtp, a.messages, a.sessions, **send)
        wait_until("postern's deliveries", lambda: count_files(pt.maildir()) >= a.messages)
        inbound.postern.append(a.messages / (time.monotonic() - t0))
        cpu.postern.append(cpu.since(c0, a.messages))
        pt.stop()
        if i == 0:
            ctx.notes.append("postern's verdicts on the inbound messages: " + check_verdicts(pt.maildir()))
        pf = S.Postfix(ctx.tmp, name=f"postfix-in-{i}")
        pf.start()
        settle()
        t0, c0 = time.monotonic(), cpu.start()
        smtp_source(pf.port, a.messages, a.sessions, **send)
        # Postfix answers 250 once queued and delivers after: the clock runs until the files.
        wait_until("Postfix's deliveries", lambda: count_files(pf.maildir) >= a.messages)
        inbound.baseline.append(a.messages / (time.monotonic() - t0))
        cpu.baseline.append(cpu.since(c0, a.messages))
        pf.stop()
        log(f"inbound {i + 1}/{a.rounds}: fsync ceiling {fmt(ceiling.baseline[-1])}, postern "
            f"{fmt(inbound.postern[-1])}, Postfix {fmt(inbound.baseline[-1])} msg/s")
    notes = ["inbound: the clock runs from smtp-source's start until every message is a file in the "
             "Maildir (postern delivers before its 250, Postfix after); the same DKIM-signed message "
             "(`smtp-source -F`, HELO mail.sender.test, MAIL FROM sender@sender.test). Postfix 3.7 as "
             "configured checks no SPF, DKIM or DMARC (it has none built in); its smtpd does the "
             "client's reverse and forward name lookup (iprev-like, through the system resolver, not "
             "dnsmasq) and reject_unauth_destination.", cpu.note("inbound", "Postfix")]
    return rows, notes


def check_verdicts(maildir):
    """The Authentication-Results of one delivered message: all four checks must pass, or the
    row would time the failure paths."""
    d = os.path.join(maildir, "new")
    name = sorted(os.listdir(d))[0]
    with open(os.path.join(d, name), "rb") as f:
        head = f.read().split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    want = ["spf=pass", "dkim=pass", "dmarc=pass", "iprev=pass"]
    missing = [w for w in want if w not in head]
    if missing:
        raise RuntimeError(f"inbound: the checks did not all pass ({missing} missing):\n{head}")
    return ", ".join(want)


def outbound_rows(ctx):
    a = ctx.args
    n = a.outbound
    row = Row("outbound", f"outbound drain: {n} × 1 KiB over {a.sessions} sessions, accepted, queued, relayed to a "
              "remote MX (smtp-sink): an alias forwarding to a remote address vs Postfix with relayhost",
              "msg/s", "Postfix", "≥ 2×", [ratio_at_least(2)])
    notes, cpu = [], CpuUse()
    for i in range(a.rounds):
        sink = S.Sink(ctx.tmp)
        pt = S.Postern(ctx.tmp, name=f"postern-out-{i}", dns_port=ctx.dns.port, extra=f"[outbound]\nport = {sink.port}\n")
        pt.cli("alias", "add", "fwd@example.test", "friend@remote.test")
        trace = os.path.join(pt.dir, "strace.txt")
        wrap = ("strace", "-f", "-c", "-o", trace, "-e", "trace=fsync,fdatasync") if a.strace else ()
        pt.start(wrap=wrap)
        settle()
        t0, c0 = time.monotonic(), cpu.start()
        smtp_source(pt.smtp, n, a.sessions, "sender@remote.test", "fwd@example.test")
        wait_until("the sink (postern)", lambda: sink.count() >= n)
        row.postern.append(n / (time.monotonic() - t0))
        cpu.postern.append(cpu.since(c0, n))
        pt.stop(); sink.stop()
        if i == 0:
            notes += outbound_counts(pt, n, trace if a.strace else None)
        sink = S.Sink(ctx.tmp)
        pf = S.Postfix(ctx.tmp, name=f"postfix-out-{i}", extra=f"relayhost = [127.0.0.1]:{sink.port}\n"
                       "virtual_alias_maps = inline:{ {fwd@example.test=friend@remote.test} }\n")
        pf.start()
        settle()
        t0, c0 = time.monotonic(), cpu.start()
        smtp_source(pf.port, n, a.sessions, "sender@remote.test", "fwd@example.test")
        wait_until("the sink (Postfix)", lambda: sink.count() >= n)
        row.baseline.append(n / (time.monotonic() - t0))
        cpu.baseline.append(cpu.since(c0, n))
        pf.stop(); sink.stop()
        log(f"outbound {i + 1}/{a.rounds}: postern {fmt(row.postern[-1])}, Postfix {fmt(row.baseline[-1])} msg/s")
    notes.append("outbound: the clock runs from smtp-source's start until the sink holds every message; "
                 "postern resolves remote.test's MX through dnsmasq, Postfix relays to [127.0.0.1]:sink; "
                 "inbound checks off on both sides.")
    notes.append(cpu.note("outbound", "Postfix"))
    return [row], notes


def outbound_counts(pt, n, trace):
    with open(os.path.join(pt.dir, "serve.log")) as f:
        tx = [l for l in f if "outbound transaction" in l]
    fresh = sum(1 for l in tx if "reused=true" not in l)
    out = [f"outbound, postern (first round): {len(tx)} transactions, {fresh} on new connections "
           f"({fresh / n:.3f} connections per message)"]
    if trace:
        fsyncs = 0
        with open(trace) as f:
            for line in f:
                cols = line.split()
                if cols and cols[-1] in ("fsync", "fdatasync") and cols[-2].isdigit():
                    fsyncs += int(cols[-2] if len(cols) == 5 else cols[3])
        out.append(f"outbound, postern under strace: {fsyncs} fsync/fdatasync calls, {fsyncs / n:.2f} per "
                   "message (its times are slowed by strace)")
    return out


# ---------------------------------------------------------------- IMAP rows
def make_maildir(dst, n, seed=42):
    """n plain messages of ~1-3 KiB in dst/cur, a third unseen, deterministic; empty folders."""
    rnd = random_gen(seed)
    S.maildir_tree(dst, FOLDERS)
    base = 1700000000
    for i in range(n):
        body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * rnd.randint(15, 50)) + "\r\n"
        msg = (f"From: Sender {i} <s{i}@remote.test>\r\nTo: user@example.test\r\nSubject: message {i}\r\n"
               f"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{i}@remote.test>\r\n\r\n{body}").encode()
        name = f"{base + i}.M{i}P1.bench,S={len(msg)}:2,{'S' if i % 3 else ''}"
        p = os.path.join(dst, "cur", name)
        with open(p, "wb") as f:
            f.write(msg)
        os.utime(p, (base + i, base + i))


def random_gen(seed):
    import random
    return random.Random(seed)


def link_copy(src, dst):
    """A copy sharing the message files (Maildir files never change, only their names)."""
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "-al", src, dst], check=True)


def seed(ctx, key, n):
    path = os.path.join(ctx.tmp, f"seed-{key}")
    if not os.path.exists(path):
        t0 = time.monotonic()
        make_maildir(path, n)
        log(f"made a {n}-message Maildir in {time.monotonic() - t0:.1f} s")
    return path


def imap_servers(ctx, i, users, maildir_seed):
    """A postern and a Dovecot, each with `users` whose Maildirs are copies of the seed."""
    pt = S.Postern(ctx.tmp, name=f"postern-imap-{i}", users=users)
    dv = S.Dovecot(ctx.tmp, name=f"dovecot-{i}", users=users)
    for u in users:
        link_copy(maildir_seed, pt.maildir(u))
        link_copy(maildir_seed, dv.maildir(u))
    return pt, dv


def driver(name, *args):
    """Run tests/bench/NAME and return the JSON object it prints."""
    r = subprocess.run([sys.executable, os.path.join(HERE, name), *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{name} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    try:
        return json.loads(r.stdout)
    except ValueError:
        return json.loads(r.stdout.strip().splitlines()[-1])


def pick(d, *keys):
    for k in keys:
        if k in d:
            return d[k]
    raise KeyError(f"none of {keys} in {d}")


def imap_rows(ctx):
    a = ctx.args
    accounts = 20
    users = [f"u{n}" for n in range(accounts)]  # imap_load.py's {n} is 0-based
    src = seed(ctx, "imap", a.imap_messages)
    row = Row("imap", f"IMAP, {a.imap_clients} concurrent clients on {accounts} accounts ({a.imap_messages} messages "
              "each), mixed SELECT/FETCH/STORE/EXPUNGE/APPEND/LIST/STATUS, sessions kept logged in",
              "ops/s", "Dovecot", "≥ 1.5×", [ratio_at_least(1.5)])
    runs = []
    for i in range(a.rounds):
        pt, dv = imap_servers(ctx, i, users, src)
        for srv, series, port in ((pt, row.postern, lambda: pt.imap), (dv, row.baseline, lambda: dv.port)):
            srv.start()
            res = driver("imap_load.py", "--host", "127.0.0.1", "--port", port(), "--user-fmt", "u{n}@example.test",
                         "--password", S.PASSWORD, "--accounts", accounts, "--clients", a.imap_clients,
                         "--seconds", a.imap_seconds, "--seed", 1, "--json")
            srv.stop()
            rate = res.get("ops_per_s") or pick(res, "ops") / pick(res, "seconds")
            series.append(rate)
            runs.append(res)
        log(f"imap {i + 1}/{a.rounds}: postern {fmt(row.postern[-1])}, Dovecot {fmt(row.baseline[-1])} ops/s")
    drv = " (stand-in)" if runs[0].get("driver") == "stand-in" else ""
    notes = [f"imap: plain IMAP on loopback, {a.imap_seconds} s per run, the same seed; driver "
             f"tests/bench/imap_load.py{drv}; Dovecot in its default process model with PLAIN "
             "passwords, postern with Argon2id: logins happen before the clock starts."]
    return [row], notes


def idle_rows(ctx):
    a = ctx.args
    src = seed(ctx, "imap", a.imap_messages)
    row = Row("idle", f"memory per idle IMAPS session in IDLE ({a.idle_sessions} sessions, INBOX of "
              f"{a.imap_messages}, PSS delta)", "KiB", "Dovecot", "≤ 50 KiB (≤ 1/10 of Dovecot)",
              [value_at_most(50, "KiB")])
    notes = []
    for i in range(a.rounds):
        pt, dv = imap_servers(ctx, f"idle-{i}", ["user"], src)
        for srv, series, port, pid in ((pt, row.postern, lambda: pt.imaps, lambda: pt.pid()),
                                       (dv, row.baseline, lambda: dv.imaps, lambda: dv.pid())):
            srv.start()
            log(f"idle: {type(srv).__name__} started")
            res = driver("imap_mem.py", "--mode", "idle", "--server", "external", "--host", "127.0.0.1",
                         "--port", port(), "--tls", "--user", "user@example.test", "--password", S.PASSWORD,
                         "--pid", pid(), "--sessions", a.idle_sessions, "--warmup", 20, "--messages", a.imap_messages)
            srv.stop()
            series.append(pick(res, "pss_delta_per_session_kib"))
            ctx.mem_driver = res.get("driver", "")
        inotify = dv.log_count("notify")
        if inotify and not notes:
            notes.append(f"idle: Dovecot logged {inotify} inotify warnings (per-user instance limit): "
                         "some of its sessions poll instead")
        log(f"idle {i + 1}/{a.rounds}: postern {fmt(row.postern[-1])}, Dovecot {fmt(row.baseline[-1])} KiB/session")
    notes.append("idle: tests/bench/imap_mem.py --mode idle; PSS from /proc/PID/smaps_rollup summed over the "
                 "server's processes (postern: one; Dovecot: master and descendants, of which its imap and "
                 "imap-login processes grow: default high-security mode, one imap-login per TLS connection), "
                 "measured after 20 warm-up sessions were opened and closed (so logins and the kept password-"
                 "hash buffer are in the base); each session: LOGIN, SELECT INBOX, FETCH 1:* (FLAGS UID), IDLE.")
    return [row], notes


def big_rows(ctx):
    a = ctx.args
    src = seed(ctx, "big", a.mailbox)
    row = Row("big", f"RSS with a {a.mailbox:,}-message INBOX open (SELECT + FETCH 1:* (FLAGS UID), session open)",
              "MiB", "Dovecot", "≤ Dovecot", [ratio_at_most(1)])
    extra = []
    for i in range(a.rounds):
        pt, dv = imap_servers(ctx, f"big-{i}", ["user"], src)
        for srv, series, port, pid in ((pt, row.postern, lambda: pt.imap, lambda: pt.pid()),
                                       (dv, row.baseline, lambda: dv.port, lambda: dv.pid())):
            srv.start()
            log(f"big: {type(srv).__name__} started")
            res = driver("imap_mem.py", "--mode", "big", "--server", "external", "--host", "127.0.0.1",
                         "--port", port(), "--no-tls", "--user", "user@example.test", "--password", S.PASSWORD,
                         "--messages", a.mailbox, "--pid", pid())
            srv.stop()
            series.append(pick(res, "rss_kib") / 1024)
            ctx.mem_driver = res.get("driver", "")
            extra.append((srv is pt, res))
        log(f"big {i + 1}/{a.rounds}: postern {fmt(row.postern[-1])}, Dovecot {fmt(row.baseline[-1])} MiB")
    notes = []
    for is_pt, who in ((True, "postern"), (False, "Dovecot")):
        rs = [r for p, r in extra if p == is_pt]
        if all(k in r for r in rs for k in ("rss_base_kib", "pss_kib", "select_s", "fetch_s")):
            notes.append(f"big, {who}: RSS before the login {fmt(median(r['rss_base_kib'] for r in rs) / 1024)} MiB; "
                         f"with the INBOX open: PSS {fmt(median(r['pss_kib'] for r in rs) / 1024)} MiB; first SELECT "
                         f"{median(r['select_s'] for r in rs):.3f} s, FETCH 1:* (FLAGS UID) "
                         f"{median(r['fetch_s'] for r in rs):.3f} s (medians)")
    notes.append("big: tests/bench/imap_mem.py --mode big; RSS summed over the server's processes (postern: one; Dovecot: master, config, log, "
                 "anvil, auth, stats, imap-login, imap), a fresh copy of the same Maildir per run, so each "
                 "run is a first open (postern writes its UID list, Dovecot its index).")
    return [row], notes


# ---------------------------------------------------------------- main
class Ctx:
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default=",".join(ALL_ROWS), help="comma-separated, of: " + ", ".join(ALL_ROWS))
    ap.add_argument("--quick", action="store_true", help="a ~2-minute smoke run with small counts")
    ap.add_argument("--rounds", type=int, help="runs of each side per row (default 3; --quick 1)")
    ap.add_argument("--messages", type=int, help="inbound messages (default 2000)")
    ap.add_argument("--sessions", type=int, default=10, help="SMTP sessions / fsync threads")
    ap.add_argument("--outbound", type=int, help="outbound messages (default 1000)")
    ap.add_argument("--imap-clients", type=int, default=10)
    ap.add_argument("--imap-seconds", type=float, help="per IMAP load run (default 20)")
    ap.add_argument("--imap-messages", type=int, default=200, help="INBOX size per account (imap, idle rows)")
    ap.add_argument("--idle-sessions", type=int, help="default 500")
    ap.add_argument("--mailbox", type=int, help="messages in the big INBOX (default 100000)")
    ap.add_argument("--bin", default=None, help="postern binary (default target/release/postern)")
    ap.add_argument("--strace", action="store_true", help="count postern's fsyncs in the outbound row")
    ap.add_argument("--tmp", default=None, help="where the temporary directory goes (a real disk, not tmpfs)")
    ap.add_argument("--out", default=None, help="markdown file to write into (default BENCHMARKS.md for a "
                    "full run of every row; none with --quick or a subset of --rows)")
    ap.add_argument("--no-write", action="store_true", help="only print")
    ap.add_argument("--self-test", action="store_true", help="check the table and median code, run nothing")
    a = ap.parse_args(argv)
    quick = a.quick
    for k, full, q in (("rounds", 3, 1), ("messages", 2000, 300), ("outbound", 1000, 200), ("imap_seconds", 20, 5),
                       ("idle_sessions", 500, 100), ("mailbox", 100000, 5000)):
        if getattr(a, k) is None:
            setattr(a, k, q if quick else full)
    return a


def main(argv):
    a = parse_args(argv)
    if a.self_test:
        return self_test()
    rows = set(a.rows.split(","))
    unknown = rows - set(ALL_ROWS)
    if unknown:
        sys.exit(f"bench: unknown rows {sorted(unknown)}; known: {', '.join(ALL_ROWS)}")
    if a.bin:
        S.POSTERN[0] = os.path.abspath(a.bin)
    check_peers(a, rows)
    out = a.out
    if out is None and not a.quick and rows == set(ALL_ROWS):
        out = os.path.join(S.ROOT, "BENCHMARKS.md")
    if a.no_write:
        out = None
    # Children inherit: 500 sessions need more descriptors than the usual 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ctx = Ctx()
    ctx.args, ctx.rows, ctx.notes = a, rows, []
    ctx.tmp = S.bench_dir("postern-bench-", a.tmp)
    started, load0, t_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg(), time.monotonic()
    results = []
    try:
        if fs_type(ctx.tmp) in ("tmpfs", "ramfs"):
            ctx.notes.append(f"WARNING: {ctx.tmp} is on {fs_type(ctx.tmp)}: fsync costs nothing there")
        if rows & {"inbound", "outbound"}:
            pem, pub = dkim_key(ctx.tmp)
            ctx.signed = signed_message(ctx.tmp, pem)
            ctx.dns = S.Dnsmasq(ctx.tmp, dns_records(pub))
        for name, fn in (("fsync", inbound_rows), ("outbound", outbound_rows), ("imap", imap_rows),
                         ("idle", idle_rows), ("big", big_rows)):
            if name in rows or (name == "fsync" and "inbound" in rows):
                r, n = fn(ctx)
                results += r; ctx.notes += n
    finally:
        S.stop_all()
        # Every run's directory stays until here: deleting thousands of files between runs
        # would leave inodes that ext4 without a journal skips one by one for the next 60-360 s
        # wherever the next run's directory lands (see servers.bench_dir). The same holds for
        # the next bench: give it ~6 minutes after this one.
        log("removing the temporary directory")
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        log("removed")
    load1 = os.getloadavg()
    if getattr(ctx, "mem_driver", None) == "stand-in":
        ctx.notes.append("memory rows: tests/bench/imap_mem.py was the stand-in driver")
    text = section(a, argv, rows, results, ctx.notes, started, load0, load1, time.monotonic() - t_start)
    print(text)
    if out:
        with open(out) as f:
            old = f.read()
        prefix = "## All rows" if rows == set(ALL_ROWS) else "## Rows " + ",".join(sorted(rows)) + " ("
        with open(out, "w") as f:
            f.write(replace_section(old, text, prefix))
        log(f"written into {out}")


def section(a, argv, rows, results, notes, started, load0, load1, seconds):
    commit = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"):
        commit += " + uncommitted changes"
    pf, dv = versions()
    which = "All rows" if rows == set(ALL_ROWS) else "Rows " + ",".join(sorted(rows))
    cmd = " ".join(["python3 tests/bench/bench.py"] + [shlex.quote(x) for x in argv])
    la = lambda l: " / ".join(f"{x:.2f}" for x in l)
    lines = [f"## {which} ({started}, commit {commit}, {build_kind(S.postern_bin())} build)", "",
             "```sh", cmd, "```", "",
             f"Machine: {os.cpu_count()} cores (nproc), load average (1/5/15 min) {la(load0)} at the start and "
             f"{la(load1)} at the end; Postfix {pf}, Dovecot {dv}; {a.rounds} run(s) of each side per row, "
             f"alternating postern and the baseline, medians shown; {seconds / 60:.1f} minutes in all.", "",
             table(results), ""]
    lines += [f"- {n}" for n in notes]
    lines += [f"- {r.runs_note()}" for r in results]
    return "\n".join(lines) + "\n"


def self_test():
    assert median([3, 1, 2]) == 2 and median([1, 2]) == 1.5
    assert fmt(1234.4) == "1,234" and fmt(12.34) == "12.3" and fmt(1.234) == "1.23" and fmt(None) == "—"
    r = Row("m", "m", "msg/s", "Postfix", "≥ 2×", [ratio_at_least(2)])
    r.postern, r.baseline = [300, 100, 200], [100, 50, 150]
    assert r.medians() == (200, 100)
    assert r.cells() == ["m", "200 msg/s", "Postfix 100 msg/s", "2.00×", "≥ 2×", "yes (2.00× vs ≥ 2×)"], r.cells()
    r.postern = [150]
    assert r.cells()[5].startswith("no (1.50×"), r.cells()
    m = Row("mem", "mem", "KiB", "Dovecot", "≤ 50 KiB", [value_at_most(50, "KiB")])
    m.postern, m.baseline = [40, 45], [600]
    assert m.cells()[3] == "0.07×" and m.cells()[5] == "yes (42.5 vs ≤ 50 KiB)", m.cells()
    e = Row("empty", "empty", "x", "")
    assert e.cells()[1:] == ["—", "—", "—", "—", "—"], e.cells()
    t = table([r]).splitlines()
    assert len(t) == 3 and t[0].count("|") == 7 and t[2].count("|") == 7, t
    doc = "# B\n\nintro\n\n## All rows (old)\n\nold table\n\n## Other\n\nkept\n"
    new = replace_section(doc, "## All rows (new)\n\nnew table\n")
    assert new == "# B\n\nintro\n\n## All rows (new)\n\nnew table\n\n## Other\n\nkept\n", new
    assert replace_section("# B\n\nintro\n\n## Other\n", "## All rows (x)\n") == \
        "# B\n\nintro\n\n## All rows (x)\n\n## Other\n"
    assert replace_section("# B\n", "## All rows (x)\n") == "# B\n## All rows (x)\n\n"
    a = parse_args(["--quick"])
    assert (a.rounds, a.messages, a.mailbox) == (1, 300, 5000)
    a = parse_args([])
    assert (a.rounds, a.messages, a.idle_sessions, a.mailbox) == (3, 2000, 500, 100000)
    print("self-test: ok")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; servers stopped, temporary directory removed")
