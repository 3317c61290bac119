#!/usr/bin/env python3
"""Stand-in IMAP memory driver: the `memory` branch brings the real one; this one takes the
subset of its command line that tests/bench/bench.py uses (`--server external`, a running
server) and prints the same JSON fields.

Memory comes from /proc/PID/smaps_rollup (Pss, Rss), summed over the server process `--pid`
and all its descendants, in KiB.

--mode idle: --warmup sessions LOGIN + SELECT INBOX + IDLE and close (so one-time costs such
  as the password hash are paid), the base is measured, then --sessions sessions (IMAPS
  with --tls) each LOGIN + SELECT INBOX (+ FETCH 1:* (FLAGS UID) with --messages) + IDLE.
  JSON: mode, sessions, pss_base_kib, pss_kib, pss_delta_per_session_kib, rss_base_kib, rss_kib
--mode big: the base, then one session: LOGIN, SELECT INBOX (must hold --messages), FETCH
  1:* (FLAGS UID), as a client opening a mailbox does; memory while it stays open.
  JSON: mode, messages, rss_base_kib, pss_base_kib, rss_kib, pss_kib, select_s, fetch_s

    imap_mem.py --mode idle --server external --port 993 --tls --user u@example.test --pid 1234
    imap_mem.py --mode big --server external --port 143 --user u@example.test --messages 100000 --pid 1234
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


def memory_kib(pid):
    """{'pss': KiB, 'rss': KiB, 'processes': n} over the tree of pid."""
    pss = rss = n = 0
    for p in tree(pid):
        try:
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


async def open_session(a, select=True, fetch=False, idle=False):
    ctx = None
    if a.tls:
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    r, w = await asyncio.open_connection(a.host, a.port, ssl=ctx, limit=1 << 24)
    await r.readline()
    n = [0]

    async def cmd(text):
        n[0] += 1
        tag = b"m%d" % n[0]
        w.write(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = await r.readline()
            if not line:
                raise RuntimeError(f"connection closed after {text!r}")
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError(f"{text!r} -> {line!r}")
                return lines
            lines.append(line)

    await cmd(b'LOGIN "%s" "%s"' % (a.user.encode(), a.password.encode()))
    if select:
        await cmd(b"SELECT INBOX")
    if fetch:
        await cmd(b"FETCH 1:* (FLAGS UID)")
    if idle:
        w.write(b"i IDLE\r\n")
        line = await r.readline()
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE -> {line!r}")
    return w, cmd


async def settle(pid, wait=1.0):
    """The figure once it stops moving (at most ~10 s)."""
    last = None
    for _ in range(10):
        await asyncio.sleep(wait)
        m = memory_kib(pid)
        if last and abs(m["pss"] - last["pss"]) < 64:
            return m
        last = m
    return last


async def idle(a):
    sem = asyncio.Semaphore(20)

    async def one():
        async with sem:
            return await open_session(a, fetch=a.messages > 0, idle=True)

    for w, _ in await asyncio.gather(*(one() for _ in range(a.warmup))):
        w.close()
    base = await settle(a.pid)
    t0 = time.monotonic()
    conns = await asyncio.gather(*(one() for _ in range(a.sessions)))
    opened = time.monotonic() - t0
    now = await settle(a.pid, 2.0)
    for w, _ in conns:
        w.close()
    n = a.sessions
    return {"mode": "idle", "sessions": n, "pss_base_kib": base["pss"], "pss_kib": now["pss"],
            "pss_delta_per_session_kib": round((now["pss"] - base["pss"]) / n, 1),
            "rss_base_kib": base["rss"], "rss_kib": now["rss"], "open_s": round(opened, 3), "driver": "stand-in"}


async def big(a):
    base = await settle(a.pid, 0.5)
    w, cmd = await open_session(a, select=False)
    t0 = time.monotonic()
    exists = [l for l in await cmd(b"SELECT INBOX") if l.endswith(b" EXISTS\r\n")]
    t_select = time.monotonic() - t0
    if a.messages and exists != [b"* %d EXISTS\r\n" % a.messages]:
        raise RuntimeError(f"INBOX: {exists}, not {a.messages} messages")
    t0 = time.monotonic()
    await cmd(b"FETCH 1:* (FLAGS UID)")
    t_fetch = time.monotonic() - t0
    now = await settle(a.pid)
    await cmd(b"LOGOUT")
    w.close()
    return {"mode": "big", "messages": a.messages, "rss_base_kib": base["rss"], "pss_base_kib": base["pss"],
            "rss_kib": now["rss"], "pss_kib": now["pss"], "select_s": round(t_select, 3),
            "fetch_s": round(t_fetch, 3), "driver": "stand-in"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["idle", "big"], required=True)
    ap.add_argument("--server", choices=["external"], default="external", help="only a running server here")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", dest="tls", action="store_true", default=None, help="IMAPS (default for idle)")
    ap.add_argument("--no-tls", dest="tls", action="store_false")
    ap.add_argument("--user", default="user@example.test")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--messages", type=int, default=None, help="big: messages in INBOX; idle: FETCH 1:* first")
    ap.add_argument("--pid", type=int, required=True, help="the server's (master) process")
    a = ap.parse_args()
    if a.tls is None:
        a.tls = a.mode == "idle"
    if a.messages is None:
        a.messages = 100000 if a.mode == "big" else 0
    print(json.dumps(asyncio.run(idle(a) if a.mode == "idle" else big(a)), indent=1))


if __name__ == "__main__":
    sys.exit(main())
