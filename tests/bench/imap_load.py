#!/usr/bin/env python3
"""Concurrent IMAP load driver (issue 15, row "IMAP, 10 concurrent clients on 20 accounts").

    python3 tests/bench/imap_load.py --host 127.0.0.1 --port 1143 \
        --user-fmt 'u{n}@example.test' --password pw \
        [--tls] [--accounts 20] [--clients 10] [--seconds 20] [--seed 1] [--fill 200] [--json] \
        [--around 'perf stat -e instructions -p PID']

Stdlib only (asyncio, plain TCP, LOGIN), so it runs against postern and Dovecot alike. The
accounts must exist (`u0@…` … `u19@…` with the default --user-fmt: `{n}` is 0-based); the
server must allow LOGIN without TLS on this port (or give --tls for IMAPS).

What it does:
  1. Setup (not timed): every client opens one session per account it serves and logs in
     once. Client c serves accounts c, c+N, c+2N… (all M accounts are used; with more clients
     than accounts, clients share accounts). Sessions stay logged in for the whole run. Each
     account gets the folders `Sent` and `Trash` if missing (CREATE; an existing one is fine)
     and its INBOX is topped up to --fill small messages by APPEND.
  2. Timed (--seconds): each client loops, picking one of its sessions and one operation
     from a fixed-seed weighted mix (client c uses random.Random(seed * 1000 + c)):
        select        SELECT INBOX
        fetch_flags   FETCH a..b FLAGS                     (up to 20 messages)
        fetch_headers FETCH a..b BODY.PEEK[HEADER.FIELDS (From Subject Date)]  (up to 10)
        fetch_body    FETCH n BODY.PEEK[]                  (one small message)
        store_add     STORE n +FLAGS (\\Seen \\Flagged)   (1-3 messages)
        store_remove  STORE n -FLAGS (\\Seen \\Flagged)   (1-3 messages)
        expunge       STORE n +FLAGS (\\Deleted), then EXPUNGE (counted as 2 ops)
        append        APPEND INBOX (a ~1 KiB message; about as often as expunge, so the
                      mailbox keeps its size)
        list          LIST "" "*"
        status        STATUS INBOX|Sent|Trash (MESSAGES UIDNEXT UNSEEN)
     Sequence numbers come from the session's own EXISTS/EXPUNGE responses. Each command
     is one op when its tagged reply arrives; NO and BAD replies are counted per operation.
     --around CMD runs a shell command for exactly the timed phase (started just before it,
     sent SIGINT just after) and reports its output: `perf stat -e instructions -p PID`
     or `strace -c -f -p PID` give counts per op without setup and logins.
  3. Prints the totals: with --json one JSON object on stdout, otherwise a short table.

JSON fields (stable; tests/bench/bench.py reads them): ops, seconds, ops_per_s, no, bad,
errors (connection failures), clients, accounts, seed, per_op {name: {ops, no, bad,
p50_ms, p99_ms}}, setup_seconds, messages_appended_in_setup, around (output of --around, or
null).

Exit status 0 when the run completed (NO/BAD are reported, not fatal), 1 on setup failure.
"""
import argparse
import asyncio
import json
import random
import re
import ssl
import sys
import time

OPS = [
    ("select", 8),
    ("fetch_flags", 16),
    ("fetch_headers", 14),
    ("fetch_body", 10),
    ("store_add", 13),
    ("store_remove", 13),
    ("expunge", 5),
    ("append", 5),
    ("list", 8),
    ("status", 8),
]

EXISTS = re.compile(rb"^\* (\d+) EXISTS")
EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE")
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()


def message(rng, n):
    """A small RFC 5322 message (~1 KiB), deterministic for a given rng state."""
    subj = " ".join(rng.choice(WORDS) for _ in range(4))
    body = "\r\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(12))
    day = 1 + n % 28
    return (f"From: Sender {n % 7} <sender{n % 7}@remote.test>\r\n"
            f"To: someone@example.test\r\n"
            f"Subject: {subj} #{n}\r\n"
            f"Date: Mon, {day:02d} Jun 2025 10:{n % 60:02d}:00 +0000\r\n"
            f"Message-ID: <{n}.{rng.randrange(1 << 30)}@remote.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            f"\r\n{body}\r\n").encode()


class Conn:
    """One IMAP session: sends tagged commands, reads until the tagged reply."""

    def __init__(self, reader, writer, account):
        self.r, self.w, self.account = reader, writer, account
        self.tag = 0
        self.exists = 0
        self.literal_plus = False

    @classmethod
    async def open(cls, host, port, account, tls=False):
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        r, w = await asyncio.open_connection(host, port, ssl=ctx, limit=1 << 22)
        c = cls(r, w, account)
        greeting = await r.readline()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"greeting: {greeting!r}")
        return c

    async def _line(self):
        """One response line with its literals inlined (as bytes)."""
        line = await self.r.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        out = line
        while True:
            m = LITERAL.search(line)
            if not m:
                return out
            out += await self.r.readexactly(int(m.group(1)))
            line = await self.r.readline()
            out += line

    def _untagged(self, line):
        m = EXISTS.match(line)
        if m:
            self.exists = int(m.group(1))
            return
        m = EXPUNGE.match(line)
        if m and self.exists > 0:
            self.exists -= 1

    async def _tagged(self, tag):
        while True:
            line = await self._line()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:].split(b" ", 1)[0]
            self._untagged(line)

    async def cmd(self, text, literal=None):
        """Run one command; returns b'OK', b'NO' or b'BAD'. `literal` is appended as the
        command's final literal (APPEND)."""
        self.tag += 1
        tag = b"t%d" % self.tag
        if literal is None:
            self.w.write(tag + b" " + text + b"\r\n")
        elif self.literal_plus:
            self.w.write(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.w.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            await self.w.drain()
            while True:
                line = await self._line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    return line[len(tag) + 1:].split(b" ", 1)[0]
                self._untagged(line)
            self.w.write(literal + b"\r\n")
        await self.w.drain()
        return await self._tagged(tag)

    async def login(self, user, password):
        q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        st = await self.cmd(f"LOGIN {q(user)} {q(password)}".encode())
        if st != b"OK":
            raise RuntimeError(f"LOGIN {user}: {st.decode()}")
        self.tag += 1
        tag = b"t%d" % self.tag
        self.w.write(tag + b" CAPABILITY\r\n")
        await self.w.drain()
        while True:
            line = await self._line()
            if line.startswith(b"* CAPABILITY"):
                self.literal_plus = b" LITERAL+" in line.upper()
            if line.startswith(tag + b" "):
                break


class Stats:
    def __init__(self):
        self.ops = {name: 0 for name, _ in OPS}
        self.no = {name: 0 for name, _ in OPS}
        self.bad = {name: 0 for name, _ in OPS}
        self.lat = {name: [] for name, _ in OPS}
        self.errors = 0

    def count(self, name, status, seconds):
        self.ops[name] += 1
        self.lat[name].append(seconds)
        if status == b"NO":
            self.no[name] += 1
        elif status != b"OK":
            self.bad[name] += 1


def pick_range(rng, exists, width):
    if exists == 0:
        return None
    a = rng.randint(1, exists)
    b = min(exists, a + rng.randint(0, width - 1))
    return b"%d:%d" % (a, b) if b > a else b"%d" % a


async def one_op(c, name, rng, stats, counter):
    """Run operation `name` on session `c`, counting each command it sends."""
    async def run(text, literal=None, label=name):
        t0 = time.perf_counter()
        st = await c.cmd(text, literal)
        stats.count(label, st, time.perf_counter() - t0)
        return st

    if name == "select" or (c.exists == 0 and name.startswith(("fetch", "store", "expunge"))):
        await run(b"SELECT INBOX", label="select")
    elif name == "fetch_flags":
        await run(b"FETCH " + pick_range(rng, c.exists, 20) + b" (FLAGS)")
    elif name == "fetch_headers":
        await run(b"FETCH " + pick_range(rng, c.exists, 10)
                  + b" (BODY.PEEK[HEADER.FIELDS (From Subject Date)])")
    elif name == "fetch_body":
        await run(b"FETCH %d (BODY.PEEK[])" % rng.randint(1, c.exists))
    elif name in ("store_add", "store_remove"):
        sign = b"+" if name == "store_add" else b"-"
        await run(b"STORE " + pick_range(rng, c.exists, 3) + b" " + sign
                  + b"FLAGS (\\Seen \\Flagged)")
    elif name == "expunge":
        await run(b"STORE %d +FLAGS (\\Deleted)" % rng.randint(1, c.exists))
        await run(b"EXPUNGE")
    elif name == "append":
        counter[0] += 1
        await run(b"APPEND INBOX (\\Seen)", message(rng, counter[0]))
    elif name == "list":
        await run(b'LIST "" "*"')
    elif name == "status":
        box = rng.choice((b"INBOX", b"Sent", b"Trash"))
        await run(b"STATUS " + box + b" (MESSAGES UIDNEXT UNSEEN)")


async def client(cid, conns, args, stats, deadline, counter):
    rng = random.Random(args.seed * 1000 + cid)
    names = [n for n, _ in OPS]
    weights = [w for _, w in OPS]
    try:
        while time.monotonic() < deadline:
            c = rng.choice(conns)
            await one_op(c, rng.choices(names, weights)[0], rng, stats, counter)
    except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
        stats.errors += 1
        print(f"client {cid}: {e}", file=sys.stderr)


async def setup_account(args, n, conns, counter):
    """Folders and --fill messages for account n, through its first session."""
    c = conns[0]
    for box in (b"Sent", b"Trash"):
        await c.cmd(b"CREATE " + box)  # NO when it exists: fine
    st = await c.cmd(b"SELECT INBOX")
    if st != b"OK":
        raise RuntimeError(f"SELECT INBOX for account {n}: {st.decode()}")
    rng = random.Random(args.seed * 7919 + n)
    added = 0
    while c.exists < args.fill:
        counter[0] += 1
        st = await c.cmd(b"APPEND INBOX", message(rng, counter[0]))
        if st != b"OK":
            raise RuntimeError(f"APPEND for account {n}: {st.decode()}")
        added += 1
        await c.cmd(b"NOOP")
    for other in conns:
        await other.cmd(b"SELECT INBOX")
    return added


async def main_async(args):
    # Client c serves accounts c, c+N, …; with more clients than accounts, account c % M.
    plan = {c: ([a for a in range(args.accounts) if a % args.clients == c]
                or [c % args.accounts]) for c in range(args.clients)}
    t0 = time.monotonic()
    sessions = {}
    by_account = {}

    async def login(c, a):
        conn = await Conn.open(args.host, args.port, a, args.tls)
        await conn.login(args.user_fmt.format(n=a), args.password)
        by_account.setdefault(a, []).append(conn)
        return conn

    for c, accounts in plan.items():
        sessions[c] = await asyncio.gather(*(login(c, a) for a in accounts))
    counter = [10_000_000 + args.seed * 100_000]
    added = await asyncio.gather(*(setup_account(args, a, by_account[a], [counter[0] + a * 10_000])
                                   for a in sorted(by_account)))
    setup = time.monotonic() - t0

    around = None
    if args.around:
        around = await asyncio.create_subprocess_shell(
            args.around, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        await asyncio.sleep(1.0)  # let perf/strace attach before the clock starts
    stats = Stats()
    start = time.monotonic()
    deadline = start + args.seconds
    await asyncio.gather(*(client(c, sessions[c], args, stats, deadline,
                                  [counter[0] + 1_000_000 * (c + 1)]) for c in plan))
    elapsed = time.monotonic() - start
    around_out = None
    if around is not None:
        import os, signal
        try:
            os.killpg(around.pid, signal.SIGINT)  # the shell and the tool it runs
        except ProcessLookupError:
            pass
        out, _ = await around.communicate()
        around_out = out.decode(errors="replace")

    for conns in sessions.values():
        for conn in conns:
            try:
                conn.w.write(b"z LOGOUT\r\n")
                await conn.w.drain()
                conn.w.close()
            except OSError:
                pass

    def pct(xs, p):
        if not xs:
            return None
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 3)

    total = sum(stats.ops.values())
    return {
        "host": args.host, "port": args.port,
        "clients": args.clients, "accounts": args.accounts, "seed": args.seed,
        "seconds": round(elapsed, 3),
        "ops": total,
        "ops_per_s": round(total / elapsed, 1) if elapsed > 0 else 0.0,
        "no": sum(stats.no.values()), "bad": sum(stats.bad.values()), "errors": stats.errors,
        "per_op": {n: {"ops": stats.ops[n], "no": stats.no[n], "bad": stats.bad[n],
                       "p50_ms": pct(stats.lat[n], 0.5), "p99_ms": pct(stats.lat[n], 0.99)}
                   for n, _ in OPS},
        "setup_seconds": round(setup, 3),
        "messages_appended_in_setup": sum(added),
        "around": around_out,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true", help="implicit TLS (IMAPS), certificate not checked")
    ap.add_argument("--user-fmt", default="u{n}@example.test",
                    help="account name pattern, {n} = 0 … accounts-1")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fill", type=int, default=200,
                    help="top each INBOX up to this many messages before timing (0: none)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--around", help="shell command run during the timed phase only "
                    "(SIGINT at its end), e.g. 'perf stat -e instructions -p PID'")
    args = ap.parse_args()
    if args.accounts < 1 or args.clients < 1:
        ap.error("--accounts and --clients must be at least 1")
    try:
        res = asyncio.run(main_async(args))
    except (RuntimeError, OSError, ConnectionError, asyncio.IncompleteReadError) as e:
        print(f"imap_load: setup failed: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['ops']} ops in {res['seconds']} s = {res['ops_per_s']} ops/s "
              f"(NO {res['no']}, BAD {res['bad']}, errors {res['errors']})")
        for n, v in res["per_op"].items():
            print(f"  {n:14} {v['ops']:7} ops  NO {v['no']:4}  BAD {v['bad']:4}  "
                  f"p50 {v['p50_ms']} ms  p99 {v['p99_ms']} ms")
        if res["around"]:
            print(res["around"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
