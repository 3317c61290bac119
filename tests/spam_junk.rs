//! The per-user junk filter trained by the user's own IMAP actions: mail arrives over port
//! 25 (smtplib), the user moves the spam into Junk with imaplib's UID MOVE and marks ham
//! with `$NotJunk`; then new mail of each kind arrives and must land in Junk / the INBOX.
//! `postern spam stats` and `postern spam train` are checked on the same instance.
//!
//! The messages come from a small generator in Python: ham is about meetings, releases and
//! family plans from two correspondents; spam about pills, prizes and loans from random
//! domains, half of it HTML. Each message mixes its class's words with common words.

mod common;
use common::*;

use std::time::{Duration, Instant};

const USER: &str = "user@example.test";
const PASS: &str = "secret-pass-123";

const GENERATOR: &str = r#"
import random, smtplib
COMMON = "the and that have for not with you this but from they will one all would there their what about which when make can like time just know take people into year your good some could them see other than then now look only come over think also back after use two how our work first well way even new want because any these give day most today please thanks here week next".split()
HAM = "meeting agenda minutes project review patch branch deploy dinner weekend kids school birthday flight hotel itinerary draft slides quarterly budget colleague lunch thursday tuesday attached notes feedback release compiler tests garden recipe".split()
SPAM = "viagra cialis pharmacy pills lottery winner claim prize bitcoin crypto investment guaranteed loan credit approved urgent unsubscribe limited exclusive discount cheap replica watches beneficiary inheritance million transfer casino bonus miracle cash".split()
def words(rng, n, own, share):
    return " ".join(rng.choice(own) if rng.random() < share else rng.choice(COMMON) for _ in range(n))
def ham(rng, i):
    who = rng.choice(["alice@work.example", "bob@family.example"])
    return ("From: %s\r\nTo: USER\r\nSubject: ham-%d %s\r\nMessage-ID: <h%d-%d@x>\r\n\r\n%s\r\n"
            % (who, i, words(rng, 4, HAM, 0.5), i, rng.randint(0, 1 << 30), words(rng, 80, HAM, 0.25)))
def spam(rng, i):
    dom = "x%d.example" % rng.randint(0, 99999)
    body = words(rng, 60, SPAM, 0.3)
    if i % 2:
        return ("From: promo@%s\r\nTo: USER\r\nSubject: spam-%d %s\r\nMessage-ID: <s%d@%s>\r\n"
                "Content-Type: text/html\r\n\r\n<html><p>%s</p><a href=\"http://%s/c\">go</a></html>\r\n"
                % (dom, i, words(rng, 4, SPAM, 0.5), i, dom, body, dom))
    return ("From: promo@%s\r\nTo: USER\r\nSubject: spam-%d %s\r\nMessage-ID: <s%d@%s>\r\n\r\n%s\r\n"
            % (dom, i, words(rng, 4, SPAM, 0.5), i, dom, body))
def send(port, msgs):
    s = smtplib.SMTP('127.0.0.1', port, timeout=60)
    for m in msgs:
        s.sendmail('sender@elsewhere.test', ['USER'], m.encode())
    s.quit()
"#;

fn generator() -> String {
    GENERATOR.replace("USER", USER)
}

fn stats(p: &Postern) -> String {
    let out = p.cli(&["spam", "stats", USER], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_stats(p: &Postern, want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(p);
        if want.iter().all(|w| s.contains(w)) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn subjects(msgs: &[Vec<u8>]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| {
            let t = String::from_utf8_lossy(m).into_owned();
            t.split("\r\n")
                .find(|l| l.starts_with("Subject: "))
                .map(|l| {
                    l["Subject: ".len()..]
                        .split(' ')
                        .next()
                        .unwrap()
                        .to_string()
                })
        })
        .collect()
}

#[test]
fn imap_moves_train_the_filter_and_new_mail_follows() {
    let p = Postern::start_with(Setup {
        extra: "[inbound]\nverify = false\n[spam]\njunk_min_ham = 8\njunk_min_spam = 8\n".into(),
        ..Setup::default()
    });
    p.add_user(USER, PASS);

    // 1. Ten ham and ten spam arrive; the filter is untrained, so all go to the INBOX.
    python(&format!(
        "{}\nrng = random.Random(1)\nsend({}, [ham(rng, i) for i in range(10)] + [spam(rng, i) for i in range(10)])\n",
        generator(),
        p.ports.smtp
    ));
    assert_eq!(
        p.wait_messages(USER, "", 20, Duration::from_secs(20)).len(),
        20
    );
    assert!(stats(&p).contains("filter: learning"), "{}", stats(&p));

    // 2. The user moves the spam into Junk and marks the ham $NotJunk; one ham message takes
    // a detour through Junk and back (trained as spam, then reclassified as ham).
    let out = python(&format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def ok(r):
    assert r[0] == 'OK', r
    return r[1]
c = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(c.login('{USER}', '{PASS}'))
ok(c.select('INBOX'))
print('permanentflags', c.untagged_responses.get('PERMANENTFLAGS'))
spam = ok(c.uid('SEARCH', 'SUBJECT', 'spam-'))[0].split()
ham = ok(c.uid('SEARCH', 'SUBJECT', 'ham-'))[0].split()
assert len(spam) == 10 and len(ham) == 10, (spam, ham)
ok(c.uid('MOVE', b','.join(spam), 'Junk'))
ok(c.uid('STORE', b','.join(ham[1:]), '+FLAGS', '($NotJunk)'))
ok(c.uid('MOVE', ham[0], 'Junk'))
ok(c.select('Junk'))
back = ok(c.uid('SEARCH', 'SUBJECT', 'ham-'))[0].split()
assert len(back) == 1, back
ok(c.uid('MOVE', back[0], 'INBOX'))
c.logout()
"#,
        imaps = p.ports.imaps,
    ));
    assert!(
        out.contains("$Junk") && out.contains("$NotJunk"),
        "PERMANENTFLAGS must offer $Junk/$NotJunk: {out}"
    );
    let s = wait_stats(&p, &["trained ham: 10", "trained spam: 10"]);
    assert!(s.contains("trained ham: 10"), "{s}\n{}", p.log());
    assert!(s.contains("trained spam: 10"), "{s}");
    assert!(s.contains("filter: active"), "{s}");

    // 3. New mail of both kinds (another seed) lands where the user's training says.
    python(&format!(
        "{}\nrng = random.Random(99)\nsend({}, [ham(rng, 100 + i) for i in range(5)] + [spam(rng, 100 + i) for i in range(5)])\n",
        generator(),
        p.ports.smtp
    ));
    let junk = p.wait_messages(USER, "Junk", 15, Duration::from_secs(20));
    let inbox = p.messages(USER, "");
    let (junk_s, inbox_s) = (subjects(&junk), subjects(&inbox));
    for i in 100..105 {
        assert!(
            junk_s.contains(&format!("spam-{i}")),
            "spam-{i} not in Junk: {junk_s:?}"
        );
        assert!(
            inbox_s.contains(&format!("ham-{i}")),
            "ham-{i} not in INBOX: {inbox_s:?}"
        );
    }
    let new_spam = junk
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("Subject: spam-100 "))
        .unwrap();
    let text = String::from_utf8_lossy(new_spam);
    let header = text
        .split("\r\n")
        .find(|l| l.starts_with("X-Postern-Spam: "))
        .expect("X-Postern-Spam header");
    assert!(header.contains("junk-filter score=0.9"), "{header}");
    assert!(header.contains("tokens="), "{header}");

    // 4. Bulk training from a Maildir through the CLI counts only what is new.
    let out = p.cli(
        &[
            "spam",
            "train",
            USER,
            "--spam",
            &path_str(&p.maildir(USER).join(".Junk")),
        ],
        None,
    );
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{o} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The 10 trained spam are already known; the ham that went back to the INBOX is not
    // in Junk any more; the 5 new spam delivered into Junk are new.
    assert!(
        o.contains("15 messages as spam: 5 new, 0 reclassified, 10 already trained"),
        "{o}"
    );
}
