//! Subscriptions across DELETE and RENAME (RFC 3501 §6.3.6, RFC 9051 §6.3.6–§6.3.7).

use super::{logged_in, talk};

fn lines<'a>(r: &'a str, kind: &str) -> Vec<&'a str> {
    r.lines().filter(|l| l.starts_with(kind)).collect()
}

#[test]
fn delete_keeps_the_subscription() {
    let (_d, svc) = super::services(true);
    let mut s = logged_in(&svc);
    for c in ["c CREATE a\r\n", "s SUBSCRIBE a\r\n", "d DELETE a\r\n"] {
        let r = talk(&mut s, c);
        assert!(r.contains(" OK"), "{c}: {r}");
    }
    // LIST (SUBSCRIBED): the name is still there, \NonExistent (RFC 5258 §3.1), and not
    // \Noselect besides (\NonExistent implies it).
    let r = talk(&mut s, "l LIST (SUBSCRIBED) \"\" *\r\n");
    let l = lines(&r, "* LIST");
    assert!(
        l.contains(&"* LIST (\\NonExistent \\Subscribed) \".\" \"a\""),
        "{r}"
    );
    // LSUB still lists it, as not selectable.
    let r = talk(&mut s, "l LSUB \"\" *\r\n");
    assert!(
        lines(&r, "* LSUB").contains(&"* LSUB (\\Noselect) \".\" \"a\""),
        "{r}"
    );
    // A mailbox made again under that name is subscribed again, and selectable.
    talk(&mut s, "c CREATE a\r\n");
    let r = talk(&mut s, "l LSUB \"\" a\r\n");
    assert!(lines(&r, "* LSUB") == ["* LSUB () \".\" \"a\""], "{r}");
}

#[test]
fn rename_leaves_subscriptions_where_they_were() {
    let (_d, svc) = super::services(true);
    let mut s = logged_in(&svc);
    for c in [
        "c CREATE b.c\r\n",
        "s SUBSCRIBE b\r\n",
        "s SUBSCRIBE b.c\r\n",
        "r RENAME b d\r\n",
    ] {
        let r = talk(&mut s, c);
        assert!(r.contains(" OK"), "{c}: {r}");
    }
    let r = talk(&mut s, "l LSUB \"\" *\r\n");
    let l = lines(&r, "* LSUB");
    assert!(l.contains(&"* LSUB (\\Noselect) \".\" \"b\""), "{r}");
    assert!(l.contains(&"* LSUB (\\Noselect) \".\" \"b.c\""), "{r}");
    assert!(!l.iter().any(|l| l.contains("\"d")), "{r}");
    let r = talk(&mut s, "l LIST \"\" d*\r\n");
    assert_eq!(lines(&r, "* LIST").len(), 2, "{r}");
}
