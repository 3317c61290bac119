//! Message flags as Maildir keeps them: system flags as letters after `:2,` in the file name
//! (D draft, F flagged, P passed, R replied, S seen, T trashed — ASCII order, per
//! cr.yp.to/proto/maildir.html) and up to 26 custom keywords as the letters `a`..`z`, whose
//! names live in the folder's `dovecot-keywords` file (Dovecot's layout, so the two agree).

pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;
pub const DELETED: u8 = 8;
pub const DRAFT: u8 = 16;
/// Maildir's P ("passed"), shown to IMAP as the `$Forwarded` keyword (RFC 5788 registry).
pub const FORWARDED: u8 = 32;

/// Flags of one message: system bits plus a bitmask of keyword indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: u8,
    pub keywords: u32,
}

pub const MAX_KEYWORDS: usize = 26;

impl Flags {
    /// Parse the info part of a file name (what follows `:2,`).
    pub fn from_info(info: &str) -> Flags {
        let mut f = Flags::default();
        for c in info.chars() {
            match c {
                'D' => f.system |= DRAFT,
                'F' => f.system |= FLAGGED,
                'P' => f.system |= FORWARDED,
                'R' => f.system |= ANSWERED,
                'S' => f.system |= SEEN,
                'T' => f.system |= DELETED,
                'a'..='z' => f.keywords |= 1 << (c as u8 - b'a'),
                _ => {}
            }
        }
        f
    }

    /// The info letters, in the ASCII order Maildir requires.
    pub fn to_info(self) -> String {
        let mut s = String::new();
        for (bit, c) in [
            (DRAFT, 'D'),
            (FLAGGED, 'F'),
            (FORWARDED, 'P'),
            (ANSWERED, 'R'),
            (SEEN, 'S'),
            (DELETED, 'T'),
        ] {
            if self.system & bit != 0 {
                s.push(c);
            }
        }
        for i in 0..MAX_KEYWORDS {
            if self.keywords & (1 << i) != 0 {
                s.push((b'a' + i as u8) as char);
            }
        }
        s
    }

    pub fn has(self, bit: u8) -> bool {
        self.system & bit != 0
    }
}

/// The system flag bit for an IMAP flag name (case-insensitive), if it is one.
pub fn system_flag(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "\\seen" => SEEN,
        "\\answered" => ANSWERED,
        "\\flagged" => FLAGGED,
        "\\deleted" => DELETED,
        "\\draft" => DRAFT,
        "$forwarded" => FORWARDED,
        _ => return None,
    })
}

/// Can `name` be stored as an IMAP keyword (RFC 3501 §9 `flag-keyword = atom`)? Not a
/// `\\` system flag, 1 to 100 atom characters: no space, control, `(){%*"\\]`.
pub fn is_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

/// IMAP names of the system bits, in a stable order.
pub fn system_names(bits: u8) -> impl Iterator<Item = &'static str> {
    [
        (SEEN, "\\Seen"),
        (ANSWERED, "\\Answered"),
        (FLAGGED, "\\Flagged"),
        (DELETED, "\\Deleted"),
        (DRAFT, "\\Draft"),
        (FORWARDED, "$Forwarded"),
    ]
    .into_iter()
    .filter(move |(b, _)| bits & b != 0)
    .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trip() {
        let f = Flags::from_info("STRFac");
        assert!(f.has(SEEN) && f.has(DELETED) && f.has(ANSWERED) && f.has(FLAGGED));
        assert_eq!(f.keywords, 0b101);
        assert_eq!(f.to_info(), "FRSTac");
        assert_eq!(Flags::from_info("").to_info(), "");
        assert_eq!(system_flag("\\SEEN"), Some(SEEN));
        assert_eq!(system_flag("$Junk"), None);
    }
}
