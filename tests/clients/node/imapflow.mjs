// ImapFlow (the IMAP library behind many JS mail apps) against a running postern.
// Run by tests/client_imapflow.rs: `node imapflow.mjs '<json config>'`. Prints one JSON
// object on stdout with what the client saw; the Rust test checks it. Every tagged NO/BAD
// the server sends is collected in `refused` (a client that "works" through errors is a bug).
import net from 'node:net';
import { ImapFlow } from 'imapflow';

const cfg = JSON.parse(process.argv[2]);
const refused = [];
const trace = [];

// ImapFlow logs each server line at debug level with src 's' and each client line with 'c'.
const log = (level) => (entry) => {
    if (entry && (entry.src === 's' || entry.src === 'c')) {
        trace.push(`${entry.src}: ${String(entry.msg).slice(0, 300)}`);
        if (trace.length > 400) trace.shift();
    }
    if (entry && entry.src === 's' && /^[A-Za-z0-9.]+ (NO|BAD)\b/.test(entry.msg || '')) {
        refused.push(entry.msg);
    }
    if (level === 'error' || level === 'warn') {
        trace.push(`${level}: ${JSON.stringify(entry).slice(0, 300)}`);
    }
};
const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };

function client(port, secure) {
    return new ImapFlow({
        host: '127.0.0.1',
        port,
        secure,
        // Plain port: STARTTLS is required, never a silent fallback to cleartext.
        doSTARTTLS: secure ? undefined : true,
        servername: 'localhost',
        tls: { rejectUnauthorized: false },
        auth: { user: cfg.user, pass: cfg.pass },
        logger,
        disableAutoIdle: true,
        // Use QRESYNC when the server offers it (VANISHED instead of EXPUNGE).
        qresync: true,
        connectionTimeout: 10000,
        greetingTimeout: 10000,
    });
}

// A minimal SMTP client (port 25, no auth) so deliveries take the real path into the store.
function smtpSend(port, from, to, body) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        const steps = [null, `EHLO client.test`, `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'DATA',
            body.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') + '\r\n.', 'QUIT'];
        const want = [220, 250, 250, 250, 354, 250, 221];
        let i = 0;
        let buf = '';
        sock.setTimeout(15000, () => reject(new Error('smtp timeout')));
        sock.on('error', reject);
        sock.on('data', (d) => {
            buf += d.toString('latin1');
            let m;
            // Wait for the last line of a (possibly multi-line) reply: "NNN " + text.
            while ((m = buf.match(/^(\d{3}) [^\n]*\n/m))) {
                const end = buf.indexOf(m[0]) + m[0].length;
                buf = buf.slice(end);
                if (Number(m[1]) !== want[i]) {
                    sock.destroy();
                    return reject(new Error(`smtp step ${i}: ${m[0]}`));
                }
                i += 1;
                if (i === steps.length) {
                    sock.end();
                    return resolve();
                }
                sock.write(steps[i] + '\r\n');
            }
        });
    });
}

const MSG = (subject, id) => [
    'From: Sender <sender@remote.test>',
    `To: ${cfg.user}`,
    `Subject: ${subject}`,
    `Message-ID: <${id}@remote.test>`,
    'Date: Sun, 29 Nov 2026 08:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'plain body',
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>html body</p>',
    '--b1--',
    '',
].join('\r\n');

function waitFor(emitter, event, ms) {
    return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${event} event in ${ms} ms`)), ms);
        emitter.once(event, (data) => {
            clearTimeout(t);
            resolve(data);
        });
    });
}

async function main() {
    const out = {};

    // 143-style: STARTTLS, then log in, then out.
    const plain = client(cfg.imap, false);
    await plain.connect();
    out.starttls = { secure: plain.secureConnection, authenticated: plain.authenticated !== false };
    out.starttls.inbox = (await plain.status('INBOX', { messages: true })).messages;
    await plain.logout();

    // 993-style: implicit TLS. Everything else runs here.
    const c = client(cfg.imaps, true);
    await c.connect();
    out.secure = c.secureConnection;
    out.caps = [...c.capabilities.keys()].sort();
    out.enabled = [...c.enabled].sort();

    const boxes = await c.list();
    out.list = boxes.map((b) => ({ path: b.path, specialUse: b.specialUse || null })).sort((a, b) => a.path.localeCompare(b.path));

    await smtpSend(cfg.smtp, 'sender@remote.test', cfg.user, MSG('first message', 'first'));
    // Wait until the delivery landed (the SMTP reply comes after the store wrote it).
    let inbox = await c.mailboxOpen('INBOX');
    out.open = { path: inbox.path, exists: inbox.exists, uidValidity: Number(inbox.uidValidity) > 0, uidNext: inbox.uidNext };

    const msg = await c.fetchOne('*', { uid: true, flags: true, envelope: true, bodyStructure: true, source: true, size: true });
    out.fetch = {
        uid: msg.uid,
        flags: [...msg.flags].sort(),
        size: msg.size,
        subject: msg.envelope.subject,
        from: msg.envelope.from.map((a) => `${a.name} <${a.address}>`),
        to: msg.envelope.to.map((a) => a.address),
        messageId: msg.envelope.messageId,
        date: msg.envelope.date && msg.envelope.date.toISOString(),
        bodyStructure: {
            type: msg.bodyStructure.type,
            parameters: msg.bodyStructure.parameters,
            children: (msg.bodyStructure.childNodes || []).map((p) => ({ part: p.part, type: p.type, parameters: p.parameters, size: p.size, encoding: p.encoding })),
        },
        sourceHasBody: msg.source.toString().includes('<p>html body</p>'),
        sourceLen: msg.source.length,
    };
    // Downloading one part: ImapFlow uses BINARY/BODY[1] with a size-less partial read.
    const part = await c.download(String(msg.uid), '1', { uid: true });
    const chunks = [];
    for await (const ch of part.content) chunks.push(ch);
    out.part1 = Buffer.concat(chunks).toString().trim();

    // Flags: add, remove, check.
    await c.messageFlagsAdd({ uid: msg.uid }, ['\\Seen', '\\Flagged', '$Label1'], { uid: true });
    await c.messageFlagsRemove({ uid: msg.uid }, ['\\Flagged'], { uid: true });
    const after = await c.fetchOne(String(msg.uid), { flags: true }, { uid: true });
    out.flags = [...after.flags].sort();

    // MOVE to Archive (UIDPLUS gives the new UID back).
    const mv = await c.messageMove({ uid: msg.uid }, 'Archive', { uid: true });
    out.move = { destination: mv.destination, mapped: mv.uidMap ? [...mv.uidMap.entries()] : null };
    out.inboxAfterMove = c.mailbox.exists;

    // Delete from Archive: STORE \Deleted + UID EXPUNGE.
    await c.mailboxOpen('Archive');
    out.archive = { exists: c.mailbox.exists };
    const archived = await c.fetchOne('*', { uid: true, flags: true, envelope: true });
    out.archive.subject = archived.envelope.subject;
    out.archive.flags = [...archived.flags].sort();
    out.archive.deleted = await c.messageDelete({ uid: archived.uid }, { uid: true });
    out.archive.existsAfterDelete = c.mailbox.exists;

    // IDLE on INBOX; a delivery over SMTP must arrive as an "exists" event.
    await c.mailboxOpen('INBOX');
    const before = c.mailbox.exists;
    const seen = waitFor(c, 'exists', 20000);
    const idling = c.idle();
    await smtpSend(cfg.smtp, 'sender@remote.test', cfg.user, MSG('pushed while idle', 'pushed'));
    const ev = await seen;
    out.idle = { path: ev.path, count: ev.count, prevCount: ev.prevCount, before };
    // Any command ends IDLE (DONE); ImapFlow does that itself.
    const pushed = await c.fetchOne('*', { envelope: true });
    out.idle.subject = pushed.envelope.subject;
    await idling;

    // APPEND to Sent, then read it back by the UID APPENDUID returned.
    const raw = `From: ${cfg.user}\r\nTo: someone@remote.test\r\nSubject: sent copy\r\nMessage-ID: <sent-1@example.test>\r\n\r\nsent body\r\n`;
    const ap = await c.append('Sent', raw, ['\\Seen'], new Date('2026-11-29T08:00:00Z'));
    out.append = { destination: ap.destination, uid: ap.uid, uidValidity: Number(ap.uidValidity) > 0 };
    const sent = await c.mailboxOpen('Sent');
    const copy = await c.fetchOne(String(ap.uid), { source: true, flags: true, internalDate: true }, { uid: true });
    out.append.exists = sent.exists;
    out.append.same = copy.source.toString() === raw;
    out.append.flags = [...copy.flags].sort();
    out.append.internalDate = copy.internalDate.toISOString();

    // STATUS over all folders (ImapFlow's list with statusQuery uses LIST-STATUS when advertised).
    const st = await c.list({ statusQuery: { messages: true, unseen: true, uidNext: true } });
    out.status = Object.fromEntries(st.map((b) => [b.path, b.status ? { messages: b.status.messages, unseen: b.status.unseen } : null]));

    // What mail apps do besides: search, iterate a range, copy, colour flags (Apple Mail's
    // $MailFlagBit keywords), folder management with a Unicode name and a nested one.
    await c.mailboxOpen('INBOX');
    const x = {};
    x.unseen = await c.search({ seen: false }, { uid: true });
    x.bySubject = await c.search({ subject: 'pushed' }, { uid: true });
    x.byHeader = await c.search({ header: { 'message-id': '<pushed@remote.test>' } }, { uid: true });
    x.none = await c.search({ subject: 'no such thing' }, { uid: true });
    x.range = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true, headers: ['subject'], bodyParts: ['1'] })) {
        x.range.push({ uid: m.uid, subject: m.headers.toString().trim(), part1: m.bodyParts.get('1').toString().trim() });
    }
    await c.setFlagColor('1', 'blue');
    x.colour = [...(await c.fetchOne('1', { flags: true })).flags].filter((f) => f !== '\\Recent').sort();
    x.flagColor = (await c.fetchOne('1', { flags: true })).flagColor;
    const cp = await c.messageCopy('1', 'Trash');
    x.copy = { destination: cp.destination, mapped: cp.uidMap ? [...cp.uidMap.entries()] : null };
    await c.mailboxCreate(['Projects', 'Überblick']);
    await c.mailboxRename(['Projects', 'Überblick'], ['Projects', 'Übersicht']);
    await c.mailboxSubscribe(['Projects', 'Übersicht']);
    x.folders = (await c.list()).map((b) => b.path).filter((p) => p.startsWith('Projects')).sort();
    x.subscribed = (await c.list()).filter((b) => b.subscribed).map((b) => b.path).filter((p) => p.startsWith('Projects')).sort();
    await c.mailboxDelete(['Projects', 'Übersicht']);
    x.afterDelete = (await c.list()).map((b) => b.path).filter((p) => p.startsWith('Projects')).sort();
    out.extras = x;

    // Another session changes flags and expunges while this one idles: both are pushed
    // ("flags" and "expunge" events), as a phone and a desktop app on one mailbox see.
    await c.mailboxOpen('INBOX');
    const other = client(cfg.imaps, true);
    await other.connect();
    await other.mailboxOpen('INBOX');
    const flagsSeen = waitFor(c, 'flags', 20000);
    const idle2 = c.idle();
    await other.messageFlagsAdd('1', ['\\Answered']);
    const fl = await flagsSeen;
    const expungeSeen = waitFor(c, 'expunge', 20000);
    await other.messageDelete('1');
    const ex = await expungeSeen;
    out.push = { flags: { seq: fl.seq, uid: fl.uid, flags: [...fl.flags].filter((f) => f !== '\\Recent').sort() }, expunge: { seq: ex.seq ?? null, uid: ex.uid ?? null, vanished: !!ex.vanished } };
    await other.logout();
    out.push.exists = (await c.status('INBOX', { messages: true })).messages;
    await idle2;

    await c.logout();
    out.refused = refused;
    if (process.env.IMAPFLOW_TRACE) out.trace = trace;
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
    process.stdout.write(JSON.stringify({ error: String(err && err.stack || err), code: err && err.code, responseText: err && err.responseText, refused, trace }) + '\n');
    process.exit(1);
});
