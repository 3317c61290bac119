#!/usr/bin/env python3
"""Stand-in IMAP memory driver (the `memory` branch brings the real one).

Memory is read from /proc/PID/smaps_rollup, summed over the server process `--pid` and all
its descendants, or only those whose name is in `--comm` (Dovecot: imap,imap-login).

--mode idle: log in once to each account and out again (so one-time costs such as the
  password hash's buffers are paid before), measure, open `--sessions` sessions (over
  IMAPS with --tls), each LOGIN + SELECT INBOX + IDLE, measure again: PSS delta per session.
--mode big: one session: LOGIN, measure, SELECT INBOX (must hold `--messages`) and UID
  FETCH 1:* (UID FLAGS), as a client opening a mailbox does; memory while it stays open.

    python3 tests/bench/imap_mem.py --mode idle --port 993 --tls --sessions 500 --pid 1234 --json
    python3 tests/bench/imap_mem.py --mode big --port 143 --user u@example.test --messages 100000 --pid 1234 --json
"""
import argparse, asyncio, json, os, ssl, sys, time


def tree(pid):
    """pid and its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def memory_kib(pid, comms=None):
    """{'pss': KiB, 'rss': KiB, 'processes': n} over the tree of pid (filtered by name)."""
    pss = rss = n = 0
    for p in tree(pid):
        try:
            if comms:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() not in comms:
                        continue
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
            n += 1
        except OSError:
            pass  # exited meanwhile
    return {"pss": pss, "rss": rss, "processes": n}


async def open_session(a, user, select=True, idle=False):
    ctx = None
    if a.tls:
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    r, w = await asyncio.open_connection(a.host, a.port, ssl=ctx, limit=1 << 24)
    await r.readline()

    async def cmd(tag, text):
        w.write(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = await r.readline()
            if not line:
                raise RuntimeError(f"{user}: connection closed after {text!r}")
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError(f"{user}: {text!r} -> {line!r}")
                return lines
            lines.append(line)

    await cmd(b"a", b'LOGIN "%s" "%s"' % (user.encode(), a.password.encode()))
    exists = None
    if select:
        for line in await cmd(b"b", b"SELECT INBOX"):
            if line.endswith(b" EXISTS\r\n"):
                exists = int(line.split()[1])
    if idle:
        w.write(b"c IDLE\r\n")
        line = await r.readline()
        if not line.startswith(b"+"):
            raise RuntimeError(f"{user}: IDLE -> {line!r}")
    return r, w, cmd, exists


async def settle(pid, comms):
    """Wait until the figure stops moving (at most ~5 s)."""
    last = None
    for _ in range(10):
        await asyncio.sleep(0.5)
        m = memory_kib(pid, comms)
        if last and abs(m["pss"] - last["pss"]) < 64:
            return m
        last = m
    return last


async def idle(a, comms):
    users = [a.user_fmt.format(n=n) for n in range(1, a.accounts + 1)]
    for u in users:
        r, w, cmd, _ = await open_session(a, u)
        await cmd(b"z", b"LOGOUT")
        w.close()
    before = await settle(a.pid, comms)
    sem = asyncio.Semaphore(20)
    conns = []

    async def one(i):
        async with sem:
            conns.append(await open_session(a, users[i % len(users)], idle=True))

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(a.sessions)))
    opened = time.monotonic() - t0
    after = await settle(a.pid, comms)
    for _, w, _, _ in conns:
        w.close()
    return {"mode": "idle", "sessions": a.sessions, "before_kib": before, "after_kib": after,
            "pss_per_session_kib": (after["pss"] - before["pss"]) / a.sessions,
            "open_seconds": opened, "driver": "stand-in"}


async def big(a, comms):
    r, w, cmd, _ = await open_session(a, a.user, select=False)
    logged_in = await settle(a.pid, comms)
    t0 = time.monotonic()
    exists = None
    for line in await cmd(b"b", b"SELECT INBOX"):
        if line.endswith(b" EXISTS\r\n"):
            exists = int(line.split()[1])
    selected = time.monotonic() - t0
    if a.messages and exists != a.messages:
        raise RuntimeError(f"INBOX holds {exists} messages, not {a.messages}")
    await cmd(b"f", b"UID FETCH 1:* (UID FLAGS)")
    fetched = time.monotonic() - t0 - selected
    after = await settle(a.pid, comms)
    await cmd(b"z", b"LOGOUT")
    w.close()
    return {"mode": "big", "messages": exists, "logged_in_kib": logged_in, "open_kib": after,
            "rss_mib": after["rss"] / 1024, "pss_mib": after["pss"] / 1024,
            "select_seconds": selected, "fetch_seconds": fetched, "driver": "stand-in"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["idle", "big"], required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true", help="implicit TLS (IMAPS)")
    ap.add_argument("--user-fmt", default="u{n}@example.test", help="idle: account names, n = 1..accounts")
    ap.add_argument("--accounts", type=int, default=20)
    ap.add_argument("--user", default="user@example.test", help="big: the account")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--messages", type=int, default=0, help="big: messages expected in INBOX")
    ap.add_argument("--pid", type=int, required=True, help="the server's (master) process")
    ap.add_argument("--comm", default="", help="only these process names, comma-separated")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    comms = set(filter(None, a.comm.split(",")))
    res = asyncio.run(idle(a, comms) if a.mode == "idle" else big(a, comms))
    print(json.dumps(res) if a.json else json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
