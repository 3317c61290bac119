use super::*;

const MIXED: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\nTo: a@example.com, \"B\" <b@example.com>\r\nSubject: =?utf-8?b?SGVsbG8gV8O2cmxk?=\r\nMessage-ID: <1@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@example.com\r\nSubject: inner\r\nContent-Type: text/plain\r\n\r\ninner body\r\n--XX--\r\n";

#[test]
fn structure_of_mixed_message() {
    let root = parse(MIXED);
    assert_eq!(root.children.len(), 3);
    let mut bs = Vec::new();
    body_structure(&mut bs, &root, MIXED, true);
    let s = String::from_utf8(bs).unwrap();
    assert!(
        s.starts_with(
            "((\"TEXT\" \"PLAIN\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 12 2 NIL NIL NIL NIL)"
        ),
        "{s}"
    );
    assert!(s.contains("(\"APPLICATION\" \"PDF\" (\"name\" \"a.pdf\") NIL NIL \"BASE64\" 8 NIL (\"ATTACHMENT\" (\"filename\" \"a.pdf\")) NIL NIL)"), "{s}");
    assert!(
        s.contains("\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\""),
        "{s}"
    );
    assert!(s.contains("\"inner\""), "{s}");
    assert!(
        s.ends_with(" \"MIXED\" (\"boundary\" \"XX\") NIL NIL NIL)"),
        "{s}"
    );
    assert_eq!(
        section_bytes(&root, MIXED, &[1], &SectionText::Full).unwrap(),
        b"hello\r\nworld"
    );
    assert_eq!(
        section_bytes(&root, MIXED, &[3], &SectionText::Text).unwrap(),
        b"inner body"
    );
    let h = section_bytes(&root, MIXED, &[3], &SectionText::Header).unwrap();
    assert!(h.starts_with(b"From: c@example.com\r\n") && h.ends_with(b"\r\n\r\n"));
    assert_eq!(
        section_bytes(&root, MIXED, &[3, 1], &SectionText::Full).unwrap(),
        b"inner body"
    );
    let m = section_bytes(&root, MIXED, &[2], &SectionText::Mime).unwrap();
    assert!(m.starts_with(b"Content-Type: application/pdf"));
    let f = section_bytes(
        &root,
        MIXED,
        &[],
        &SectionText::Fields(vec![b"subject".to_vec()], false),
    )
    .unwrap();
    assert_eq!(f, b"Subject: =?utf-8?b?SGVsbG8gV8O2cmxk?=\r\n\r\n");
}

#[test]
fn envelope_keeps_encoded_words() {
    let root = parse(MIXED);
    let e = String::from_utf8(envelope(&MIXED[root.header.0..root.header.1])).unwrap();
    assert!(e.contains("\"=?utf-8?b?SGVsbG8gV8O2cmxk?=\""), "{e}");
    assert!(
        e.contains("((\"=?utf-8?b?SsO2cmc=?=\" NIL \"jorg\" \"example.com\"))"),
        "{e}"
    );
    assert!(
        e.contains("((NIL NIL \"a\" \"example.com\")(\"B\" NIL \"b\" \"example.com\"))"),
        "{e}"
    );
    assert!(e.ends_with(" NIL \"<1@x>\")"), "{e}");
}

#[test]
fn crlf_and_plain() {
    assert_eq!(to_crlf(b"a\nb\r\n".to_vec()), b"a\r\nb\r\n");
    let m = b"Subject: x\r\n\r\nbody\r\n";
    let root = parse(m);
    let mut bs = Vec::new();
    body_structure(&mut bs, &root, m, false);
    assert_eq!(
        String::from_utf8(bs).unwrap(),
        "(\"TEXT\" \"PLAIN\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 6 1)"
    );
    assert_eq!(
        section_bytes(&root, m, &[1], &SectionText::Full).unwrap(),
        b"body\r\n"
    );
}

/// A message that is wholly message/rfc822, whose inner message is message/rfc822 again,
/// whose innermost is multipart/mixed with a multipart/digest (parts default to
/// message/rfc822, RFC 2046 §5.1.5).
const NESTED: &[u8] = b"From: outer@example.com\r\nSubject: outer\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nFrom: middle@example.com\r\nSubject: middle\r\nX-Keep: yes\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=\"B1\"\r\n\r\n--B1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--B1\r\nContent-Type: multipart/digest; boundary=\"D\"\r\n\r\n--D\r\n\r\nFrom: d1@example.com\r\nSubject: digest one\r\n\r\nd1 body\r\n--D\r\n\r\nFrom: d2@example.com\r\nSubject: digest two\r\n\r\nd2 body\r\n--D--\r\n--B1--\r\n";

fn sec(path: &[u32], t: SectionText) -> String {
    String::from_utf8(section_bytes(&parse(NESTED), NESTED, path, &t).unwrap_or_default()).unwrap()
}

#[test]
fn message_rfc822_root_sections() {
    // RFC 3501 §6.4.5: part 1 of a non-multipart message is its body; for message/rfc822
    // that body is the encapsulated message, whose header is 1.HEADER.
    let whole = sec(&[1], SectionText::Full);
    assert!(whole.starts_with("From: middle@example.com\r\n"), "{whole}");
    assert!(whole.ends_with("--B1--\r\n"), "{whole}");
    assert_eq!(
        sec(&[1], SectionText::Header),
        "From: middle@example.com\r\nSubject: middle\r\nX-Keep: yes\r\nContent-Type: message/rfc822\r\n\r\n"
    );
    assert!(sec(&[1], SectionText::Text).starts_with("From: inner@example.com\r\n"));
    assert!(sec(&[1], SectionText::Mime).starts_with("From: outer@example.com\r\n"));
    assert_eq!(
        sec(&[1], SectionText::Fields(vec![b"x-keep".to_vec()], false)),
        "X-Keep: yes\r\n\r\n"
    );
    assert_eq!(
        sec(
            &[1],
            SectionText::Fields(
                vec![
                    b"from".to_vec(),
                    b"subject".to_vec(),
                    b"content-type".to_vec()
                ],
                true
            )
        ),
        "X-Keep: yes\r\n\r\n"
    );
    // Two levels: 1.1 is the middle message's body (the inner message).
    assert!(sec(&[1, 1], SectionText::Full).starts_with("From: inner@example.com\r\n"));
    assert_eq!(
        sec(
            &[1, 1],
            SectionText::Fields(vec![b"subject".to_vec()], false)
        ),
        "Subject: inner\r\n\r\n"
    );
    assert!(sec(&[1, 1], SectionText::Text).starts_with("--B1\r\n"));
    assert_eq!(sec(&[1, 1, 1], SectionText::Full), "first");
    assert_eq!(sec(&[1, 1, 2, 1], SectionText::Mime), "\r\n");
    assert_eq!(
        sec(&[1, 1, 2, 2], SectionText::Header),
        "From: d2@example.com\r\nSubject: digest two\r\n\r\n"
    );
    assert_eq!(sec(&[1, 1, 2, 2], SectionText::Text), "d2 body");
    assert_eq!(sec(&[1, 1, 2, 2, 1], SectionText::Full), "d2 body");
    // Nothing beyond the tree.
    assert!(section_bytes(&parse(NESTED), NESTED, &[2], &SectionText::Full).is_none());
    assert!(section_bytes(&parse(NESTED), NESTED, &[1, 1, 1, 1], &SectionText::Full).is_none());
    assert!(section_bytes(&parse(NESTED), NESTED, &[1, 1, 3], &SectionText::Full).is_none());
}

#[test]
fn message_rfc822_root_structure() {
    let root = parse(NESTED);
    let mut bs = Vec::new();
    body_structure(&mut bs, &root, NESTED, false);
    let s = String::from_utf8(bs).unwrap();
    assert!(
        s.starts_with("(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" "),
        "{s}"
    );
    // The envelope of the encapsulated message, then its structure, nested twice.
    assert!(
        s.contains("(NIL \"middle\" ((NIL NIL \"middle\" \"example.com\"))"),
        "{s}"
    );
    assert!(
        s.contains("(NIL \"inner\" ((NIL NIL \"inner\" \"example.com\"))"),
        "{s}"
    );
    assert!(s.contains("\"digest one\""), "{s}");
    // The digest's parts are message/rfc822 without a Content-Type (RFC 2046 §5.1.5).
    assert_eq!(s.matches("\"MESSAGE\" \"RFC822\"").count(), 4, "{s}");
    assert!(s.contains(" \"DIGEST\")"), "{s}");
    let env = String::from_utf8(envelope(&NESTED[root.header.0..root.header.1])).unwrap();
    assert!(env.contains("\"outer\""), "{env}");
}

#[test]
fn envelope_groups_and_routes() {
    // RFC 3501 §7.4.2: a group is (NIL NIL name NIL) ... (NIL NIL NIL NIL); a comment alone
    // inside a group names no mailbox. RFC 5322 §4.4: a route is the address's adl.
    let h =
        b"From: <@route:user@domain>\r\nTo: g: a@b.org;\r\nCc: group:;, group2: (foo) ;\r\n\r\n";
    let e = String::from_utf8(envelope(h)).unwrap();
    assert!(e.contains("((NIL \"@route\" \"user\" \"domain\"))"), "{e}");
    assert!(
        e.contains("((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b.org\")(NIL NIL NIL NIL))"),
        "{e}"
    );
    assert!(
        e.contains(
            "((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL))"
        ),
        "{e}"
    );
}

#[test]
fn embedded_message_text_runs_to_the_part_end() {
    // RFC 2046 §5.2.1: the body of a message/rfc822 part is the whole embedded message, so
    // its TEXT (RFC 3501 §6.4.5) keeps a multipart's epilogue; so does the top-level TEXT.
    let m = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\npro\r\n--b\r\n\r\none\r\n--b--\r\n\r\nepilogue\r\n";
    let root = parse(m);
    let text = section_bytes(&root, m, &[1], &SectionText::Text).unwrap();
    assert_eq!(text, b"pro\r\n--b\r\n\r\none\r\n--b--\r\n\r\nepilogue\r\n");
    let top =
        b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\none\r\n--b--\r\nepi\r\n";
    let root = parse(top);
    let text = section_bytes(&root, top, &[], &SectionText::Text).unwrap();
    assert!(text.ends_with(b"--b--\r\nepi\r\n"));
}
