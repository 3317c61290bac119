#!/usr/bin/env python3
"""Joins imaptest's test mboxes (DIR/*.mbox) into one mbox for its stress mode.

imaptest tracks each message by its Message-ID and reports an error when two messages with the
same Message-ID differ, so every message gets a fresh unique Message-ID here.
Usage: mkmbox.py IMAPTEST_TESTS_DIR OUT.mbox
"""
import glob
import re
import sys

out = []
n = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.mbox")):
    for part in re.split(rb"(?m)^(?=From )", open(f, "rb").read()):
        if not part.startswith(b"From "):
            continue
        nl = part.index(b"\n")
        from_line, msg = part[: nl + 1], part[nl + 1 :]
        m = re.search(rb"\r?\n\r?\n", msg)
        hdr, body = (msg[: m.start()], msg[m.start() :]) if m else (msg, b"\n")
        hdr = re.sub(rb"(?im)^message-id:.*(\r?\n[ \t].*)*\r?\n?", b"", hdr + b"\n")
        n += 1
        hdr = b"Message-ID: <stress%d@imaptest>\n" % n + hdr.rstrip(b"\r\n")
        if not body.endswith(b"\n"):
            body += b"\n"
        out.append(from_line + hdr + body + b"\n")
open(sys.argv[2], "wb").write(b"".join(out))
