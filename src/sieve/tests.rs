//! Unit tests of the Sieve parser and interpreter, plus a bounded randomized mutation test.

use super::*;

const MSG: &[u8] = b"From: \"Ann\" <ann+news@example.org>\r\n\
To: me@example.com, Bob <bob@example.net>\r\n\
Subject: Weekly report\r\n\
List-Id: <dev.lists.example.org>\r\n\
X-Spam-Score: 7\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello, the numbers are in.\r\n";

fn outcome(script: &str) -> Outcome {
    outcome_on(script, MSG)
}

fn outcome_on(script: &str, msg: &[u8]) -> Outcome {
    let s = compile(script, &Limits::default()).unwrap_or_else(|e| panic!("{script}: {e}"));
    let env = Envelope {
        from: "ann+news@example.org".into(),
        to: "me+sieve@example.com".into(),
    };
    let exists = |m: &str| m == "INBOX" || m == "Lists";
    let ctx = interp::Context {
        envelope: &env,
        mailbox_exists: &exists,
        now: 1_796_572_800,
    };
    run(&s, &MessageView::new(msg), &ctx, &Limits::default())
}

fn fileinto(m: &str) -> Action {
    Action::FileInto {
        mailbox: m.into(),
        flags: vec![],
        create: false,
        copy: false,
    }
}
fn keep() -> Action {
    Action::Keep { flags: vec![] }
}

#[test]
fn implicit_keep_and_cancel() {
    let o = outcome("");
    assert_eq!(o.actions, vec![keep()]);
    assert!(o.implicit_keep);
    let o = outcome("discard;");
    assert_eq!(o.actions, vec![Action::Discard]);
    assert!(!o.implicit_keep);
    let o = outcome("require \"fileinto\"; fileinto \"A\"; fileinto \"A\"; keep; keep;");
    assert_eq!(o.actions, vec![fileinto("A"), keep()]);
    assert!(!o.implicit_keep);
    let o = outcome("require [\"fileinto\", \"copy\"]; fileinto :copy \"A\";");
    assert!(o.implicit_keep);
    assert_eq!(o.actions.len(), 2);
}

#[test]
fn header_address_envelope() {
    let s = r#"require ["fileinto", "envelope", "subaddress"];
        if header :contains "list-id" "dev.lists" { fileinto "Lists"; }
        if address :domain :is "from" "EXAMPLE.org" { fileinto "D"; }
        if address :localpart :is "to" "bob" { fileinto "L"; }
        if address :detail "from" "news" { fileinto "Detail"; }
        if envelope :user "to" "me" { fileinto "User"; }
        if envelope :detail "to" "sieve" { fileinto "EnvDetail"; }
        if address :all :comparator "i;octet" :is "from" "ANN+news@example.org" { fileinto "No"; }
        if exists ["subject", "x-spam-score"] { fileinto "Exists"; }
        if not exists "x-nope" { fileinto "NotExists"; }
        if size :over 100 { fileinto "Big"; }
        if size :under 100 { fileinto "Small"; }"#;
    let o = outcome(s);
    let boxes: Vec<_> = o
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::FileInto { mailbox, .. } => Some(mailbox.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        boxes,
        [
            "Lists",
            "D",
            "L",
            "Detail",
            "User",
            "EnvDetail",
            "Exists",
            "NotExists",
            "Big"
        ]
    );
}

#[test]
fn control_flow_and_stop() {
    let s = r#"require "fileinto";
        if false { fileinto "A"; } elsif anyof (false, header :is "subject" "weekly REPORT") { fileinto "B"; } else { fileinto "C"; }
        if allof (true, false) { fileinto "D"; } else { fileinto "E"; stop; }
        fileinto "F";"#;
    assert_eq!(outcome(s).actions, vec![fileinto("B"), fileinto("E")]);
}

#[test]
fn variables_and_relational() {
    let s = r#"require ["fileinto", "variables", "relational", "comparator-i;ascii-numeric"];
        if header :matches "subject" "* report" { set :lower :upperfirst "kind" "${1}"; }
        set "n" "${kind}";
        fileinto "Reports/${n}";
        if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "Junk"; }
        if header :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "OneTo"; }
        if address :count "eq" :comparator "i;ascii-numeric" "to" "2" { fileinto "TwoAddr"; }
        set :length "len" "héllo"; if string :is "${len}" "5" { fileinto "Len"; }
        set :quotewildcard "q" "a*b"; if string :is "${q}" "a\\*b" { fileinto "Quoted"; }
        if string :is "${undefined}" "" { fileinto "Empty"; }"#;
    let o = outcome(s);
    let boxes: Vec<_> = o
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::FileInto { mailbox, .. } => Some(mailbox.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        boxes,
        [
            "Reports/Weekly",
            "Junk",
            "OneTo",
            "TwoAddr",
            "Len",
            "Quoted",
            "Empty"
        ]
    );
}

#[test]
fn imap4flags() {
    let s = r#"require ["imap4flags", "fileinto"];
        setflag "\\Seen"; addflag ["$Work", "\\seen"]; removeflag "\\SEEN";
        if hasflag :is "$work" { fileinto :flags "\\Flagged a b" "F"; }
        fileinto "G";"#;
    let o = outcome(s);
    assert_eq!(
        o.actions,
        vec![
            Action::FileInto {
                mailbox: "F".into(),
                flags: vec!["\\Flagged".into(), "a".into(), "b".into()],
                create: false,
                copy: false
            },
            Action::FileInto {
                mailbox: "G".into(),
                flags: vec!["$Work".into()],
                create: false,
                copy: false
            },
        ]
    );
    // The implicit keep carries the final internal flags.
    let o = outcome("require \"imap4flags\"; addflag \"\\\\Seen\";");
    assert_eq!(
        o.actions,
        vec![Action::Keep {
            flags: vec!["\\Seen".into()]
        }]
    );
}

#[test]
fn redirect_reject_vacation_body_mailbox() {
    let o = outcome("redirect \"a@b.example\"; redirect \"A@b.example\";");
    assert_eq!(
        o.actions,
        vec![Action::Redirect {
            addr: "a@b.example".into(),
            copy: false
        }]
    );
    let o = outcome("require \"reject\"; reject \"go away\";");
    assert_eq!(
        o.actions,
        vec![Action::Reject {
            reason: "go away".into(),
            extended: false
        }]
    );
    let o = outcome("require [\"reject\", \"fileinto\"]; fileinto \"A\"; reject \"no\";");
    assert_eq!(o.actions, vec![keep()]);
    assert!(o.errors[0].contains("reject conflicts"), "{:?}", o.errors);
    let o = outcome("require \"vacation\"; vacation :days 3 :subject \"Away\" \"I am away\";");
    let Action::Vacation(v) = &o.actions[0] else {
        panic!()
    };
    assert_eq!((v.period, v.subject.as_deref()), (3 * 86400, Some("Away")));
    assert!(o.implicit_keep);
    let o = outcome("require \"vacation\"; vacation \"a\"; vacation \"b\";");
    assert_eq!(o.errors.len(), 1);
    let o = outcome(
        "require [\"body\", \"fileinto\"]; if body :contains \"numbers\" { fileinto \"B\"; } if body :raw :contains \"NUMBERS ARE\" { fileinto \"R\"; } if body :content \"image\" :contains \"\" { fileinto \"No\"; }",
    );
    assert_eq!(o.actions, vec![fileinto("B"), fileinto("R")]);
    let o = outcome(
        "require [\"mailbox\", \"fileinto\"]; if mailboxexists \"Lists\" { fileinto :create \"X\"; } if mailboxexists [\"Lists\", \"Nope\"] { discard; }",
    );
    assert_eq!(
        o.actions,
        vec![Action::FileInto {
            mailbox: "X".into(),
            flags: vec![],
            create: true,
            copy: false
        }]
    );
}

#[test]
fn limits_fail_to_keep() {
    let many: String = (0..10)
        .map(|i| format!("redirect \"u{i}@x.example\";"))
        .collect();
    let o = outcome(&many);
    assert_eq!(o.actions, vec![keep()]);
    assert!(o.errors[0].contains("redirects"), "{:?}", o.errors);
    let many: String = "require \"fileinto\";".to_string()
        + &(0..40)
            .map(|i| format!("fileinto \"F{i}\";"))
            .collect::<String>();
    assert_eq!(outcome(&many).actions, vec![keep()]);
    let deep = "if true {".repeat(100) + &"}".repeat(100);
    assert!(compile(&deep, &Limits::default()).is_err());
    let deep = format!("if {}true{} {{}}", "not ".repeat(100), "");
    assert!(compile(&deep, &Limits::default()).is_err());
    let big = "#".repeat(70_000);
    assert!(compile(&big, &Limits::default()).is_err());
}

#[test]
fn compile_errors_name_the_line() {
    let cases = [
        ("keep;\nfoo;", 2, "unknown command"),
        ("keep;\n\nfileinto \"x\";", 3, "require \"fileinto\""),
        ("require \"nope\";", 1, "unknown Sieve extension"),
        ("keep;\nrequire \"fileinto\";", 2, "before any other"),
        (
            "if true {\nkeep;\n",
            2,
            "missing '}' to close the block of 'if' on line 1",
        ),
        ("keep", 1, "missing ';'"),
        ("\"unterminated", 1, "unterminated"),
        ("if header :is \"a\" {}", 1, "two string lists"),
        ("else { keep; }", 1, "without a preceding if"),
        ("redirect \"not an address\";", 1, "not valid"),
        (
            "if header :comparator \"i;ascii-numeric\" :contains \"a\" \"b\" {}",
            1,
            "comparator",
        ),
    ];
    for (src, line, text) in cases {
        let e = compile(src, &Limits::default()).expect_err(src);
        assert_eq!(e.line, line, "{src}: {e}");
        assert!(e.message.contains(text), "{src}: {e}");
    }
}

#[test]
fn multiline_strings_and_comments() {
    let s = "require \"vacation\"; # comment\n/* block\ncomment */ vacation text:\nline one\n..dot\n.\n;";
    let o = outcome(s);
    let Action::Vacation(v) = &o.actions[0] else {
        panic!("{o:?}")
    };
    assert_eq!(v.reason, "line one\r\n.dot\r\n");
}

/// Small deterministic PRNG so the test is reproducible without a dev-dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates valid scripts (byte flips, deletions, duplications of slices, token splices) and
/// checks that compile and run never panic and stay bounded.
#[test]
fn randomized_mutations_never_panic() {
    let seeds = [
        include_str!("../../tests/sieve/corpus/fileinto_list.sieve"),
        "require [\"fileinto\",\"variables\",\"imap4flags\",\"relational\",\"comparator-i;ascii-numeric\",\"body\",\"vacation\",\"reject\",\"copy\",\"mailbox\",\"subaddress\",\"envelope\"];\nif header :matches \"subject\" \"*w?ek*\" { set :upper \"a\" \"${1}${2}\"; fileinto :create :flags \"\\\\Seen ${a}\" \"X/${a}\"; }\nelsif anyof(body :text :contains \"x\", envelope :detail \"to\" \"t\", not size :over 1K) { redirect :copy \"a@b.c\"; vacation :days 2 :addresses [\"a@b\"] text:\nhi\n.\n; }\nelse { addflag \"x\"; if hasflag :count \"gt\" :comparator \"i;ascii-numeric\" \"0\" { reject \"no\"; } }\n",
    ];
    let tokens = [
        "if",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ",",
        ";",
        "\"",
        ":is",
        ":matches",
        "${",
        "}",
        "*",
        "?",
        "\\",
        "text:\n",
        "\n.\n",
        "not",
        "anyof",
        "allof",
        "stop",
        "keep",
        "1G",
        "99999999999999999999",
        "/*",
        "*/",
        "#",
        "\u{e9}",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let limits = Limits::default();
    let env = Envelope {
        from: "".into(),
        to: "me@example.com".into(),
    };
    let exists = |_: &str| true;
    let ctx = interp::Context {
        envelope: &env,
        mailbox_exists: &exists,
        now: 1_796_572_800,
    };
    let msg = MessageView::new(MSG);
    let mut compiled = 0;
    for round in 0..3000 {
        let mut s: Vec<u8> = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let len = s.len().max(1);
            match rng.below(4) {
                0 if !s.is_empty() => {
                    let i = rng.below(s.len());
                    s[i] = rng.next() as u8;
                }
                1 if !s.is_empty() => {
                    let i = rng.below(s.len());
                    let n = rng.below(8).min(s.len() - i);
                    s.drain(i..i + n);
                }
                2 => {
                    let i = rng.below(len).min(s.len());
                    let n = rng.below(40).min(s.len() - i);
                    let piece = s[i..i + n].to_vec();
                    let at = rng.below(len).min(s.len());
                    s.splice(at..at, piece);
                }
                _ => {
                    let t = tokens[rng.below(tokens.len())].as_bytes();
                    let at = rng.below(len).min(s.len());
                    s.splice(at..at, t.iter().copied());
                }
            }
        }
        if let Ok(script) = compile_bytes(&s, &limits) {
            compiled += 1;
            let o = run(&script, &msg, &ctx, &limits);
            assert!(o.actions.len() <= limits.max_actions + 1);
            assert!(!o.actions.is_empty() || !o.implicit_keep);
        }
    }
    // The mutations must leave some scripts valid, or the interpreter half is not exercised.
    assert!(compiled > 100, "only {compiled} mutated scripts compiled");
}

#[test]
fn date_and_currentdate() {
    // Context::now is 2026-12-06 16:00:00 UTC (a Sunday).
    let msg = b"Date: Sat, 5 Dec 2026 23:30:00 -0500\r\nSubject: x\r\n\r\nb";
    let s = r#"require ["date", "relational", "fileinto", "variables"];
        if currentdate :value "ge" "date" "2026-12-01" { fileinto "After1st"; }
        if currentdate :value "lt" "date" "2026-12-06" { fileinto "Never"; }
        if currentdate :zone "+0900" :is "date" "2026-12-07" { fileinto "Tokyo"; }
        if currentdate :is "weekday" "0" { fileinto "Sunday"; }
        if date :is "date" "date" "2026-12-06" { fileinto "HeaderUTC"; }
        if date :originalzone :is "date" "date" "2026-12-05" { fileinto "HeaderOrig"; }
        if date :originalzone :matches "Date" "zone" "*" { fileinto "Z${1}"; }"#;
    let boxes: Vec<String> = outcome_on(s, msg)
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::FileInto { mailbox, .. } => Some(mailbox.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        boxes,
        [
            "After1st",
            "Tokyo",
            "Sunday",
            "HeaderUTC",
            "HeaderOrig",
            "Z-0500"
        ]
    );
    assert!(
        compile(
            "require \"date\"; if currentdate :is \"fortnight\" \"1\" {}",
            &Limits::default()
        )
        .is_err()
    );
}

#[test]
fn index_picks_one_occurrence() {
    let msg = b"Received: from b; Sun, 6 Dec 2026 10:00:00 +0000\r\n\
Received: from a; Sat, 5 Dec 2026 10:00:00 +0000\r\n\
X-Tag: one\r\nX-Tag: two\r\nX-Tag: three\r\nTo: a@x.org\r\nTo: b@y.org\r\n\r\nb";
    let s = r#"require ["index", "date", "fileinto"];
        if header :index 2 "X-Tag" "two" { fileinto "A"; }
        if header :index 2 "X-Tag" "one" { fileinto "Never1"; }
        if header :last :index 1 "X-Tag" "three" { fileinto "B"; }
        if header :index 4 "X-Tag" "one" { fileinto "Never2"; }
        if address :index 2 :domain "To" "y.org" { fileinto "C"; }
        if address :index 1 :last :domain "To" "x.org" { fileinto "Never3"; }
        if date :index 1 :last :zone "+0000" "received" "date" "2026-12-05" { fileinto "D"; }
        if date "received" "date" "2026-12-06" { fileinto "E"; }"#;
    let boxes: Vec<String> = outcome_on(s, msg)
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::FileInto { mailbox, .. } => Some(mailbox.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(boxes, ["A", "B", "C", "D", "E"]);
    for bad in [
        // :last needs :index; :index counts from 1; both need the extension.
        r#"require "index"; if header :last "X" "y" {}"#,
        r#"require "index"; if header :index 0 "X" "y" {}"#,
        r#"if header :index 1 "X" "y" {}"#,
        r#"require "index"; if exists :index 1 "X" {}"#,
    ] {
        assert!(compile(bad, &Limits::default()).is_err(), "{bad}");
    }
}

#[test]
fn encoded_character_only_when_required() {
    let msg = b"Subject: caf\xc3\xa9 @ noon\r\n\r\nb";
    let with = r#"require ["encoded-character", "fileinto"];
        if header :contains "Subject" "caf${hex:c3 a9} ${unicode:40}" { fileinto "Yes"; }"#;
    assert_eq!(outcome_on(with, msg).actions, vec![fileinto("Yes")]);
    // Without the require, the text is literal.
    let without = r#"require "fileinto";
        if header :contains "Subject" "${unicode:40}" { fileinto "Yes"; }"#;
    assert_eq!(outcome_on(without, msg).actions, vec![keep()]);
    let surrogate = r#"require "encoded-character"; if header :is "S" "${unicode:DC00}" {}"#;
    let e = compile(surrogate, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}
