#!/usr/bin/env python3
"""Per-message costs of postern's SMTP paths that do not depend on the machine's load:
system calls and fsyncs (strace -f -c) and CPU time (perf stat task-clock: this VM has no
hardware counters for instructions), each the difference
between a run with N messages and a run with none (so start-up and shutdown cancel out).

Usage (as root, prerequisites as for bench.py: postfix's smtp-source/smtp-sink, dnsmasq,
strace, perf):
    python3 tests/bench/smtp_counts.py --bin target/debug/postern --row inbound  [--messages 500]
    python3 tests/bench/smtp_counts.py --bin target/debug/postern --row outbound [--messages 500]

Rows:
- inbound: smtp-source -> port 25 -> Maildir, 10 sessions, with `[inbound] verify = true`
  against dnsmasq on loopback serving SPF (HELO and MAIL FROM), DMARC, PTR and its forward
  confirmation (iprev) for the client, answering at once. `--ttl` sets the records' TTL
  (dnsmasq's default is 0: every message is looked up again).
- outbound: smtp-source -> port 25 -> alias forward -> queue -> smtp-sink as remote.test's
  MX (through dnsmasq), as bench.py's outbound row.
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers as bench  # noqa: E402  (free_port, wait_port, Sink)


def count_files(d):
    return sum(len(os.listdir(os.path.join(d, s))) for s in ("new", "cur") if os.path.isdir(os.path.join(d, s)))


class Dns:
    def __init__(self, tmp, ttl):
        d = os.path.join(tmp, "dns"); os.makedirs(d, exist_ok=True)
        self.port = bench.free_port()
        conf = os.path.join(d, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write(f"port={self.port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
                    f"local=/test/\nlocal=/127.in-addr.arpa/\npid-file={d}/pid\nlocal-ttl={ttl}\n"
                    f"log-queries\nlog-facility={d}/queries.log\n"
                    "mx-host=remote.test,mx.remote.test,10\nhost-record=mx.remote.test,127.0.0.1\n"
                    "host-record=client.remote.test,127.0.0.1\n"
                    "ptr-record=1.0.0.127.in-addr.arpa,client.remote.test\n"
                    'txt-record=remote.test,"v=spf1 ip4:127.0.0.1 -all"\n'
                    'txt-record=client.remote.test,"v=spf1 ip4:127.0.0.1 -all"\n'
                    'txt-record=_dmarc.remote.test,"v=DMARC1; p=none"\n')
        self.proc = subprocess.Popen(["dnsmasq", "-k", "-C", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        bench.wait_port(self.port)
        self.log = os.path.join(d, "queries.log")

    def queries(self):
        """DNS queries answered so far."""
        try:
            with open(self.log) as f:
                return sum(1 for line in f if " query[" in line)
        except OSError:
            return 0

    def stop(self):
        self.proc.kill(); self.proc.wait()


def server(tmp, binary, row, dns_port, sink_port):
    d = tempfile.mkdtemp(dir=tmp)
    os.makedirs(os.path.join(d, "data"))
    smtp, imap = bench.free_port(), bench.free_port()
    cfg = os.path.join(d, "postern.toml")
    verify = "true" if row == "inbound" else "false"
    with open(cfg, "w") as f:
        f.write(f'domain = "example.test"\nhostname = "mail.example.test"\ndata_dir = "{d}/data"\n'
                f'[listen]\nsmtp = ["127.0.0.1:{smtp}"]\nsubmission = []\nsubmissions = []\n'
                f'imap = ["127.0.0.1:{imap}"]\nimaps = []\nhttp = []\nmanagesieve = []\n[tls]\nsource = "self-signed"\n'
                f'[inbound]\nverify = {verify}\n[limits]\nmax_connections_per_ip = 1000\n'
                f'max_messages_per_connection = 100000\n[dns]\nnameservers = ["127.0.0.1:{dns_port}"]\n'
                f'[outbound]\nport = {sink_port}\n')
    run = lambda *a: subprocess.run([binary, "--config", cfg, *a], input=b"pw\n", check=True, capture_output=True)
    run("user", "add", "user@example.test", "--password-stdin", "--allow-short-password")
    run("alias", "add", "fwd@example.test", "friend@remote.test")
    return cfg, smtp, os.path.join(d, "data", "mail", "example.test", "user")


def one_run(tmp, binary, row, n, wrap, dns, ttl):
    sink = bench.Sink(tmp)
    try:
        cfg, port, maildir = server(tmp, binary, row, dns.port, sink.port)
        proc = subprocess.Popen([*wrap, binary, "--config", cfg, "serve"], stderr=subprocess.DEVNULL,
                                env=dict(os.environ, POSTERN_LOG="warn"))
        try:
            bench.wait_port(port)
            time.sleep(1)
            elapsed = 0.0
            if n:
                t0 = time.time()
                rcpt = "user@example.test" if row == "inbound" else "fwd@example.test"
                subprocess.run(["smtp-source", "-m", str(n), "-s", "10", "-l", "1024", "-M", "client.remote.test",
                                "-f", "sender@remote.test", "-t", rcpt, f"127.0.0.1:{port}"], check=True)
                end = time.time() + 600
                done = (lambda: count_files(maildir) >= n) if row == "inbound" else (lambda: sink.count() >= n)
                while not done():
                    if time.time() > end:
                        raise RuntimeError("messages never arrived")
                    time.sleep(0.01)
                elapsed = time.time() - t0
                time.sleep(0.5)
        finally:
            pids = [proc.pid]
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    pids = [int(x) for x in f.read().split()] or pids
            except OSError:
                pass
            for pid in pids:
                os.kill(pid, 15)
            proc.wait(120)
    finally:
        sink.stop()
    return elapsed


def fsync_ceiling(tmp, n=2000, threads=10):
    """The raw fsync ceiling (files/s): `threads` writers, each file 1 KiB written to tmp/,
    fsynced, renamed into new/, and new/ fsynced, as a Maildir delivery does at best."""
    import threading
    d = tempfile.mkdtemp(dir=tmp)
    os.makedirs(os.path.join(d, "tmp")); os.makedirs(os.path.join(d, "new"))
    data = b"x" * 1024
    def work(t):
        dfd = os.open(os.path.join(d, "new"), os.O_RDONLY)
        for i in range(n // threads):
            src = os.path.join(d, "tmp", f"{t}.{i}")
            fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data); os.fsync(fd); os.close(fd)
            os.rename(src, os.path.join(d, "new", f"{t}.{i}"))
            os.fsync(dfd)
        os.close(dfd)
    t0 = time.time()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    rate = (n // threads * threads) / (time.time() - t0)
    shutil.rmtree(d, ignore_errors=True)
    return rate


def strace_counts(path):
    calls = {}
    with open(path) as f:
        for line in f:
            cols = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(cols) >= 5 and cols[-1].isidentifier() and cols[-1] != "total" and cols[3].isdigit():
                calls[cols[-1]] = int(cols[3])
    return calls


def perf_counts(path):
    out = {}
    with open(path) as f:
        for line in f:
            cols = line.strip().split(",")
            if len(cols) > 2 and cols[0].replace(".", "").isdigit():
                out[cols[2]] = float(cols[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--row", choices=["inbound", "outbound"], required=True)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--ttl", type=int, default=0)
    ap.add_argument("--rate", action="store_true",
                    help="also time the messages untraced, between two fsync-ceiling runs")
    ap.add_argument("--perf-record", metavar="FILE",
                    help="only record a CPU profile of the server (perf record -g, dwarf stacks) into FILE")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = bench.bench_dir("postern-counts-")
    dns = Dns(tmp, args.ttl)
    res, queries = {}, {}
    if args.perf_record:
        try:
            one_run(tmp, binary, args.row, args.messages,
                    ("perf", "record", "-o", os.path.abspath(args.perf_record), "-F", "499", "-e", "cpu-clock",
                     "-g", "--call-graph", "dwarf,16384", "--"), dns, args.ttl)
        finally:
            dns.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"profile in {args.perf_record}: perf report -i {args.perf_record} --no-children")
        return
    try:
        for n in (0, args.messages):
            st = os.path.join(tmp, f"strace-{n}.txt")
            q0 = dns.queries()
            one_run(tmp, binary, args.row, n, ("strace", "-f", "-c", "-o", st), dns, args.ttl)
            queries[n] = dns.queries() - q0
            pf = os.path.join(tmp, f"perf-{n}.txt")
            one_run(tmp, binary, args.row, n, ("perf", "stat", "-x,", "-o", pf, "-e", "task-clock", "--"),
                    dns, args.ttl)
            res[n] = (strace_counts(st), perf_counts(pf))
        if args.rate:
            c1 = fsync_ceiling(tmp)
            rate = args.messages / one_run(tmp, binary, args.row, args.messages, (), dns, args.ttl)
            c2 = fsync_ceiling(tmp)
    finally:
        dns.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.messages
    (s0, p0), (s1, p1) = res[0], res[n]
    per = lambda a, b: (b - a) / n
    total = per(sum(s0.values()), sum(s1.values()))
    fs = per(s0.get("fsync", 0) + s0.get("fdatasync", 0), s1.get("fsync", 0) + s1.get("fdatasync", 0))
    print(f"{args.row}: {n} messages, binary {args.bin}")
    print(f"  syscalls/msg {total:.1f}   fsync+fdatasync/msg {fs:.2f}   DNS queries/msg "
          f"{(queries[n] - queries[0]) / n:.2f} (dnsmasq log)")
    top = sorted(((per(s0.get(k, 0), v), k) for k, v in s1.items()), reverse=True)[:12]
    print("  top syscalls/msg: " + ", ".join(f"{k} {v:.1f}" for v, k in top))
    # Instructions would be the load-proof figure, but this VM exposes no hardware counters
    # (perf: <not supported>); CPU time is the next best (no waiting counted, but cache and
    # frequency effects of other load are).
    if args.rate:
        ceiling = (c1 + c2) / 2
        print(f"  rate {rate:.0f} msg/s (first connection to last message stored/at the sink); fsync ceiling {c1:.0f} / {c2:.0f} files/s "
              f"before/after: {100 * rate / ceiling:.0f} % of it")
    if "task-clock" in p1:
        print(f"  CPU time/msg {per(p0.get('task-clock', 0), p1['task-clock']):.3f} ms (perf stat task-clock)")


if __name__ == "__main__":
    main()
