//! The typed script the interpreter runs: what `validate` produces from the generic tree.
//! Strings stay unexpanded; `${…}` is resolved at run time when `variables` is required.

use super::matching::{Comparator, MatchType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrPart {
    All,
    LocalPart,
    Domain,
    /// RFC 5233 `:user`: the local part before the `+` separator.
    User,
    /// RFC 5233 `:detail`: after the separator; addresses without one yield no value.
    Detail,
}

/// Match type, comparator and (RFC 5260) index shared by the comparing tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub kind: MatchType,
    pub comparator: Comparator,
    /// RFC 5260 §6 `:index N [:last]` (header, address and date tests only).
    pub index: Option<FieldIndex>,
}

/// Which occurrence of a named header field a test looks at (RFC 5260 §6): the `n`th,
/// from 1, counted from the top, or from the bottom with `:last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldIndex {
    pub n: u64,
    pub last: bool,
}

impl FieldIndex {
    /// The selected item of `items` (the fields of one name, in message order).
    pub fn pick<T>(self, mut items: Vec<T>) -> Option<T> {
        let n = usize::try_from(self.n).ok()?.checked_sub(1)?;
        if n >= items.len() {
            return None;
        }
        let i = if self.last { items.len() - 1 - n } else { n };
        Some(items.swap_remove(i))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BodyTransform {
    Raw,
    /// Content types to look into; `""` means every part.
    Content(Vec<String>),
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Exists(Vec<String>),
    Size {
        over: bool,
        limit: u64,
    },
    Header {
        m: Match,
        names: Vec<String>,
        keys: Vec<String>,
    },
    Address {
        m: Match,
        part: AddrPart,
        names: Vec<String>,
        keys: Vec<String>,
    },
    Envelope {
        m: Match,
        part: AddrPart,
        names: Vec<String>,
        keys: Vec<String>,
    },
    Body {
        m: Match,
        transform: BodyTransform,
        keys: Vec<String>,
    },
    /// RFC 5229 `string`.
    String {
        m: Match,
        sources: Vec<String>,
        keys: Vec<String>,
    },
    /// RFC 5232 `hasflag`.
    HasFlag {
        m: Match,
        vars: Vec<String>,
        keys: Vec<String>,
    },
    /// RFC 5490 `mailboxexists`.
    MailboxExists(Vec<String>),
    /// RFC 5260 `date` (`header: Some`) and `currentdate` (`header: None`).
    Date {
        m: Match,
        zone: Zone,
        header: Option<String>,
        part: String,
        keys: Vec<String>,
    },
}

/// RFC 5260 §4.1: the zone a date is shown in.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// The server's zone (UTC here).
    Local,
    /// `:zone "+hhmm"` (variables allowed).
    Fixed(String),
    /// `:originalzone`: the zone the header's date was written in.
    Original,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VacationArgs {
    /// Period in seconds (`:days` × 86400, or `:seconds`); `None` for the default.
    pub period: Option<u64>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CmdKind {
    If {
        branches: Vec<(Test, Vec<Cmd>)>,
        otherwise: Option<Vec<Cmd>>,
    },
    Stop,
    Keep {
        flags: Option<Vec<String>>,
    },
    Discard,
    FileInto {
        mailbox: String,
        flags: Option<Vec<String>>,
        copy: bool,
        create: bool,
    },
    Redirect {
        addr: String,
        copy: bool,
    },
    Reject {
        reason: String,
        extended: bool,
    },
    Vacation(Box<VacationArgs>),
    Flags {
        op: FlagOp,
        var: Option<String>,
        flags: Vec<String>,
    },
    Set {
        modifiers: Vec<Modifier>,
        name: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub kind: CmdKind,
    pub line: usize,
}
