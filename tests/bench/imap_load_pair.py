#!/usr/bin/env python3
"""postern and Dovecot side by side under tests/bench/imap_load.py (issue 15, IMAP row).

    python3 tests/bench/imap_load_pair.py [--bin target/release/postern] [--rounds 2]
        [--seconds 20] [--accounts 20] [--clients 10] [--count cpu|strace|none]
        [--only postern|dovecot]

As root (Dovecot drops to `nobody` for mail access). Makes M accounts on each server
(postern: `postern user add … --password-stdin`; Dovecot: a passwd-file with the PLAIN scheme,
so no password hashing is compared; logins are outside the timing anyway), fills each INBOX
with 200 small messages (the driver's --fill), then runs the driver against each server in
turn, `--rounds` times, alternating. `--count cpu` (alias `instructions`) wraps each timed phase in
`perf stat -e task-clock,instructions` on the server's processes (postern: its pid;
Dovecot: its imap processes; instructions only where the CPU exposes counters, task-clock
CPU time everywhere) and `--count strace` in `strace -c -f` (postern only), and prints them per op:
counts that do not depend on how loaded the machine is. Prints one JSON line per run.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import bench_dir, free_port, run_dir, wait_port, write_dovecot_conf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.path.join(HERE, "imap_load.py")


class Postern:
    def __init__(self, tmp, binary, accounts):
        self.bin = binary
        self.dir = run_dir(tmp, "postern")
        os.makedirs(os.path.join(self.dir, "data"))
        self.smtp, self.port = free_port(), free_port()
        self.cfg = os.path.join(self.dir, "postern.toml")
        with open(self.cfg, "w") as f:
            f.write(f'domain = "example.test"\nhostname = "mail.example.test"\ndata_dir = "{self.dir}/data"\n'
                    f'[listen]\nsmtp = ["127.0.0.1:{self.smtp}"]\nsubmission = []\nsubmissions = []\n'
                    f'imap = ["127.0.0.1:{self.port}"]\nimaps = []\nhttp = []\n[tls]\nsource = "self-signed"\n'
                    f'[inbound]\nverify = false\n[imap]\nallow_plaintext_auth = true\n'
                    f'[limits]\nmax_connections_per_ip = 1000\n')
        for n in range(accounts):
            subprocess.run([binary, "--config", self.cfg, "user", "add", f"u{n}@example.test",
                            "--password-stdin", "--allow-short-password"],
                           input=b"pw\n", check=True, capture_output=True)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.bin, "--config", self.cfg, "serve"], stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, POSTERN_LOG="warn"))
        wait_port(self.port)

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self.proc = None


class Dovecot:
    def __init__(self, tmp, accounts):
        self.dir = run_dir(tmp, "dovecot")
        os.makedirs(os.path.join(self.dir, "run"))
        os.makedirs(os.path.join(self.dir, "home"))
        self.port = free_port()
        with open(os.path.join(self.dir, "users"), "w") as f:
            for n in range(accounts):
                f.write(f"u{n}@example.test:{{PLAIN}}pw\n")
        write_dovecot_conf(self.dir, f"{self.dir}/home", self.port, 0, tls=False)
        subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(self.dir, "home")], check=True)

    def start(self):
        subprocess.run(["dovecot", "-c", f"{self.dir}/dovecot.conf"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        for _ in range(100):
            if os.path.exists(f"{self.dir}/run/master.pid"):
                break
            time.sleep(0.1)

    def master(self):
        with open(f"{self.dir}/run/master.pid") as f:
            return int(f.read().strip())

    def stop(self):
        try:
            os.kill(self.master(), signal.SIGTERM)
        except OSError:
            pass
        time.sleep(1)


def around_cmd(kind, server):
    if kind in ("cpu", "instructions"):
        if isinstance(server, Dovecot):
            # The imap processes of this Dovecot (children of its master), found once the
            # sessions are logged in, i.e. when the timed phase starts.
            return f"perf stat -e task-clock,instructions -p $(pgrep -d, -P {server.master()} imap)"
        return f"perf stat -e task-clock,instructions -p {server.proc.pid}"
    if kind == "strace" and isinstance(server, Postern):
        return f"strace -c -f -p {server.proc.pid}"
    return None


def per_op(res):
    """Counts per op parsed from the --around output."""
    out = res.get("around") or ""
    ops = max(res["ops"], 1)
    m = re.search(r"([\d,.]+)\s+instructions", out)
    extra = {}
    t = re.search(r"([\d,.]+)\s+msec\s+task-clock", out)
    if t:
        extra["cpu_us_per_op"] = round(float(t.group(1).replace(",", "")) * 1000 / ops, 1)
    if m:  # "<not supported>" on VMs without hardware counters
        extra["instructions_per_op"] = round(int(m.group(1).replace(",", "").replace(".", "")) / ops)
    for call in ("fsync", "fdatasync", "rename", "openat", "getdents64", "statx", "futex"):
        m = re.search(rf"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?{call}\s*$", out, re.M)
        if m:
            extra[f"{call}_per_op"] = round(int(m.group(1)) / ops, 3)
    m = re.search(r"^\s*100\.00\s+[\d.]+\s+\d+\s+(\d+)", out, re.M)
    if m:
        extra["syscalls_per_op"] = round(int(m.group(1)) / ops, 2)
    return extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "postern"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--count", choices=("cpu", "instructions", "strace", "none"), default="none")
    ap.add_argument("--only", choices=("postern", "dovecot"))
    ap.add_argument("--around", help="postern only: a command for the timed phase, {pid} = the "
                    "server's pid (e.g. 'perf record -g -o /tmp/p.data -p {pid}')")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    # Each server's directory in a block group of its own (see servers.bench_dir).
    tmp = bench_dir("imap-load-")
    servers = []
    if args.only != "dovecot":
        servers.append(("postern", Postern(tmp, args.bin, args.accounts)))
    if args.only != "postern":
        servers.append(("dovecot", Dovecot(tmp, args.accounts)))
    try:
        for _, s in servers:
            s.start()
        for r in range(args.rounds):
            for name, s in servers:
                cmd = [sys.executable, DRIVER, "--port", str(s.port), "--accounts", str(args.accounts),
                       "--clients", str(args.clients), "--seconds", str(args.seconds), "--seed", str(r + 1),
                       "--json"]
                around = around_cmd(args.count, s)
                if args.around and name == "postern":
                    around = args.around.format(pid=s.proc.pid)
                if around:
                    cmd += ["--around", around]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{name}: driver failed: {out.stderr}", file=sys.stderr)
                    continue
                res = json.loads(out.stdout)
                row = {"server": name, "round": r + 1, "ops_per_s": res["ops_per_s"], "ops": res["ops"],
                       "no": res["no"], "bad": res["bad"], "errors": res["errors"], **per_op(res)}
                print(json.dumps(row), flush=True)
                if os.environ.get("IMAP_LOAD_VERBOSE"):
                    print(json.dumps(res, indent=1), file=sys.stderr)
    finally:
        for _, s in servers:
            s.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
