#!/usr/bin/env python3
"""Stand-in IMAP load driver (the `perfimap` branch brings the real one, same CLI).

N clients, each holding logged-in sessions on its share of the accounts (account n goes to
client n % clients; `{n}` in --user-fmt is 0-based, as in the real driver), run a mixed workload for a fixed time, one command at a time per client:
SELECT, FETCH (flags + envelope, or header fields), STORE, APPEND, EXPUNGE, LIST, STATUS.
Logins happen before the clock starts. Prints the operation count and rate.

    python3 tests/bench/imap_load.py --host 127.0.0.1 --port 143 --user-fmt 'u{n}@example.test' \
        --password pw --accounts 20 --clients 10 --seconds 20 --seed 1 --json

The accounts u0..u(N-1) need an INBOX (bench.py seeds 200 messages) and a `Trash` folder.
JSON fields as the real driver's: ops, seconds, ops_per_s, per_op {name: {ops}}.
"""
import argparse, asyncio, json, random, re, ssl, sys, time

EXISTS = re.compile(rb"^\* (\d+) EXISTS")
EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE")
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
MESSAGE = (b"From: Load <load@remote.test>\r\nTo: someone@example.test\r\nSubject: load test\r\n"
           b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%d@load.test>\r\n\r\n" + b"x" * 900 + b"\r\n")


class ImapError(Exception):
    pass


class Session:
    def __init__(self, reader, writer):
        self.r, self.w, self.n, self.exists = reader, writer, 0, 0

    @classmethod
    async def open(cls, host, port, tls):
        ctx = None
        if tls:
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        r, w = await asyncio.open_connection(host, port, ssl=ctx, limit=1 << 20)
        s = cls(r, w)
        await r.readline()  # greeting
        return s

    async def cmd(self, text, literal=None):
        self.n += 1
        tag = b"L%d" % self.n
        self.w.write(tag + b" " + text + b"\r\n")
        if literal is not None:
            line = await self.r.readline()
            if not line.startswith(b"+"):
                raise ImapError(line)
            self.w.write(literal + b"\r\n")
        while True:
            line = await self.r.readline()
            if not line:
                raise ImapError(b"connection closed after " + text)
            m = LITERAL.search(line)
            if m:
                await self.r.readexactly(int(m.group(1)))
                continue  # the rest of the response line follows
            if line.startswith(tag + b" "):
                if line[len(tag) + 1:].startswith(b"OK"):
                    return
                raise ImapError(text + b" -> " + line)
            m = EXISTS.match(line)
            if m:
                self.exists = int(m.group(1))
            elif EXPUNGE.match(line):
                self.exists -= 1


async def one_op(s, rnd, stats):
    op = rnd.choices(["fetch", "fetchhdr", "store", "append", "expunge", "select", "list", "status"],
                     [25, 15, 15, 10, 5, 10, 10, 10])[0]
    n = max(s.exists, 1)
    lo = rnd.randint(1, n)
    if op == "fetch":
        await s.cmd(b"FETCH %d:%d (FLAGS ENVELOPE RFC822.SIZE)" % (lo, min(n, lo + 9)))
    elif op == "fetchhdr":
        await s.cmd(b"FETCH %d (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])" % lo)
    elif op == "store":
        await s.cmd(b"STORE %d %sFLAGS (\\Seen)" % (lo, rnd.choice([b"+", b"-"])))
    elif op == "append":
        msg = MESSAGE % rnd.randint(0, 1 << 30)
        await s.cmd(b"APPEND INBOX {%d}" % len(msg), msg)  # the server tells the new EXISTS
    elif op == "expunge":
        if s.exists > 1:
            await s.cmd(b"STORE %d +FLAGS.SILENT (\\Deleted)" % s.exists)
        await s.cmd(b"EXPUNGE")
    elif op == "select":
        await s.cmd(b"SELECT INBOX")
    elif op == "list":
        await s.cmd(b'LIST "" "*"')
    else:
        await s.cmd(b"STATUS Trash (MESSAGES UNSEEN UIDNEXT)")
    stats[op] = stats.get(op, 0) + 1


async def client(sessions, rnd, end, stats):
    while time.monotonic() < end:
        await one_op(rnd.choice(sessions), rnd, stats)


async def run(a):
    sessions = {}
    for n in range(a.accounts):
        s = await Session.open(a.host, a.port, a.tls)
        await s.cmd(b'LOGIN "%s" "%s"' % (a.user_fmt.format(n=n).encode(), a.password.encode()))
        await s.cmd(b"SELECT INBOX")
        sessions.setdefault(n % a.clients, []).append(s)
    stats = {}
    t0 = time.monotonic()
    end = t0 + a.seconds
    rnd = random.Random(a.seed)
    await asyncio.gather(*(client(ss, random.Random(rnd.random()), end, stats) for ss in sessions.values()))
    elapsed = time.monotonic() - t0
    for ss in sessions.values():
        for s in ss:
            s.w.close()
    ops = sum(stats.values())
    return {"ops": ops, "seconds": elapsed, "ops_per_s": ops / elapsed,
            "per_op": {k: {"ops": v} for k, v in stats.items()},
            "clients": len(sessions), "accounts": a.accounts, "driver": "stand-in"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true", help="implicit TLS (IMAPS)")
    ap.add_argument("--user-fmt", default="u{n}@example.test")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = asyncio.run(run(a))
    print(json.dumps(res) if a.json else f"{res['ops']} ops in {res['seconds']:.1f} s: {res['ops_per_s']:.0f} ops/s")


if __name__ == "__main__":
    sys.exit(main())
