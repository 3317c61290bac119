//! Users and aliases of the domain, and the policy questions asked of them:
//! "who receives mail for this address?" (SMTP RCPT, both port 25 and submission) and
//! "may this user send as that address?" (submission).
//!
//! Both live in small TOML files under `data_dir/accounts/`, written atomically and under an
//! advisory lock so `postern user …` and a running server never lose each other's changes. The
//! server notices a changed file (its mtime) at the next lookup: no restart, no signal needed.

mod address;
mod auth_cache;
mod files;
pub mod login;
mod login_name;
mod password;
pub mod sasl;
pub mod throttle;

pub use address::{Address, AddressError, normalize_address};
pub use files::{AccountFiles, AliasMap, UserMap};
pub use login::{Logins, Refusal};
pub use login_name::{BadName, canonical_login};
pub use password::{Verifier, hash_password, verify_password};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("accounts file {path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{0}")]
    Address(#[from] AddressError),
    #[error("user {0} does not exist (see `postern user list`)")]
    NoSuchUser(String),
    #[error("user {0} already exists (use `postern user passwd` to change the password)")]
    UserExists(String),
    #[error("alias {0} does not exist (see `postern alias list`)")]
    NoSuchAlias(String),
    #[error("{0} is a user; an alias cannot have the same address")]
    AliasIsUser(String),
    #[error("{address} is not in the domain {domain}; postern only hosts {domain}")]
    ForeignDomain { address: String, domain: String },
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A user's address is also its login name, so it must be one a client can log in with.
    #[error(
        "{0} cannot be a user: the part before @ must be ASCII, as a login name (IMAP, POP3 and SMTP AUTH logins refuse non-ASCII ones); choose an ASCII address and, if you like, point an alias with this name at it"
    )]
    NonAsciiLogin(String),
    #[error("{address} cannot be a user: a client could not log in with it ({reason})")]
    NotALogin {
        address: String,
        reason: &'static str,
    },
}

/// Where mail for one recipient address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Delivered to these local users (an alias may fan out) and forwarded to these remote
    /// addresses (aliases may point outside the domain).
    Local {
        users: Vec<String>,
        forward: Vec<String>,
    },
    /// The domain is ours but nobody has this address: 550 5.1.1.
    Unknown,
    /// Not our domain: relaying from the internet (`delivery::relay` decides; 554 5.7.1).
    Remote,
}

/// A consistent view of users and aliases as read from disk at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub users: UserMap,
    pub aliases: AliasMap,
    stamp: Option<(Option<SystemTime>, Option<SystemTime>)>,
}

/// The account service shared by every protocol.
pub struct Accounts {
    domain: String,
    files: AccountFiles,
    current: RwLock<Arc<Snapshot>>,
}

/// Alias chains longer than this are treated as loops.
const MAX_ALIAS_DEPTH: usize = 8;

impl Accounts {
    pub fn open(data_dir: &Path, domain: &str) -> Result<Accounts, AccountError> {
        let files = AccountFiles::new(data_dir);
        files.ensure_dir()?;
        let acc = Accounts {
            domain: domain.to_ascii_lowercase(),
            files,
            current: RwLock::new(Arc::new(Snapshot::default())),
        };
        acc.snapshot()?;
        Ok(acc)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn files(&self) -> &AccountFiles {
        &self.files
    }

    /// The current users and aliases, re-read if a file changed since the last call.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, AccountError> {
        let stamp = Some(self.files.stamp());
        {
            let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
            if cur.stamp == stamp {
                return Ok(cur.clone());
            }
        }
        let (users, aliases) = self.files.read_all()?;
        let snap = Arc::new(Snapshot {
            users,
            aliases,
            stamp,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snap.clone();
        Ok(snap)
    }

    /// Resolve a recipient address (already syntax-checked by the SMTP layer).
    pub fn resolve(&self, address: &str) -> Result<Recipient, AccountError> {
        let snap = self.snapshot()?;
        Ok(resolve_in(&snap, &self.domain, address))
    }

    /// Does `address` exist as a user (not an alias)? Returns the canonical user name.
    pub fn user_exists(&self, address: &str) -> Result<Option<String>, AccountError> {
        let snap = self.snapshot()?;
        let a = normalize_address(address)?;
        Ok(snap.users.contains_key(&a).then_some(a))
    }

    /// May `user` use `address` as MAIL FROM / From:? True for the user's own address, its
    /// `+tag` forms, and aliases that deliver to the user (RFC 6409 §6.1 leaves the policy to us).
    pub fn may_send_as(&self, user: &str, address: &str) -> bool {
        let Ok(snap) = self.snapshot() else {
            return false;
        };
        let Ok(addr) = normalize_address(address) else {
            return false;
        };
        if addr == user {
            return true;
        }
        let Some((local, domain)) = addr.rsplit_once('@') else {
            return false;
        };
        if domain != self.domain {
            return false;
        }
        let base = match local.split_once('+') {
            Some((b, _)) if !b.is_empty() => format!("{b}@{domain}"),
            _ => addr.clone(),
        };
        if base == user {
            return true;
        }
        // An alias counts only when it names the user directly or through other aliases;
        // the catch-all does not make every address of the domain the user's.
        for candidate in [&addr, &base] {
            if let Some(targets) = snap.aliases.get(candidate.as_str()) {
                let mut users = Vec::new();
                let mut forward = Vec::new();
                expand(&snap, &self.domain, targets, 0, &mut users, &mut forward);
                if users.iter().any(|u| u == user) {
                    return true;
                }
            }
        }
        false
    }

    // ---- changes (the CLI) ----------------------------------------------------------------

    pub fn add_user(&self, address: &str, password: &str) -> Result<String, AccountError> {
        let addr = self.user_address(address)?;
        let hash = hash_password(password)?;
        self.files.update(|users, aliases| {
            if users.contains_key(&addr) {
                return Err(AccountError::UserExists(addr.clone()));
            }
            if aliases.contains_key(&addr) {
                return Err(AccountError::AliasIsUser(addr.clone()));
            }
            users.insert(
                addr.clone(),
                files::UserEntry {
                    password: hash.clone(),
                },
            );
            Ok(())
        })?;
        Ok(addr)
    }

    /// Point the role addresses every mail domain must have — postmaster@ (RFC 5321 §4.5.1)
    /// and abuse@ (RFC 2142 §2) — at `target`, each only where it reaches nobody yet (no user,
    /// alias or catch-all). Returns the aliases it created. `user add` calls this, so the first
    /// user receives the DMARC/TLS reports and complaints, as a Postfix install's
    /// `postmaster: root` alias would; later users change nothing.
    pub fn ensure_role_aliases(&self, target: &str) -> Result<Vec<String>, AccountError> {
        let target = self.local_address(target)?;
        let snap = self.snapshot()?;
        let mut created = Vec::new();
        for role in ROLE_ADDRESSES {
            let addr = format!("{role}@{}", self.domain);
            if matches!(resolve_in(&snap, &self.domain, &addr), Recipient::Unknown) {
                self.add_alias(&addr, std::slice::from_ref(&target))?;
                created.push(addr);
            }
        }
        Ok(created)
    }

    pub fn set_password(&self, address: &str, password: &str) -> Result<(), AccountError> {
        let addr = normalize_address(address)?;
        let hash = hash_password(password)?;
        self.files.update(|users, _| match users.get_mut(&addr) {
            Some(u) => {
                u.password = hash.clone();
                Ok(())
            }
            None => Err(AccountError::NoSuchUser(addr.clone())),
        })
    }

    /// Removes the account; the user's mail stays on disk until the operator deletes it.
    pub fn delete_user(&self, address: &str) -> Result<(), AccountError> {
        let addr = normalize_address(address)?;
        self.files.update(|users, _| {
            users
                .remove(&addr)
                .map(|_| ())
                .ok_or_else(|| AccountError::NoSuchUser(addr.clone()))
        })
    }

    pub fn add_alias(&self, alias: &str, targets: &[String]) -> Result<String, AccountError> {
        let key = if let Some(d) = alias.strip_prefix('@') {
            if !d.eq_ignore_ascii_case(&self.domain) {
                return Err(AccountError::ForeignDomain {
                    address: alias.into(),
                    domain: self.domain.clone(),
                });
            }
            format!("@{}", self.domain)
        } else {
            self.local_address(alias)?
        };
        let targets = targets
            .iter()
            .map(|t| normalize_address(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.files.update(|users, aliases| {
            if users.contains_key(&key) {
                return Err(AccountError::AliasIsUser(key.clone()));
            }
            let entry = aliases.entry(key.clone()).or_default();
            for t in &targets {
                if !entry.contains(t) {
                    entry.push(t.clone());
                }
            }
            Ok(())
        })?;
        Ok(key)
    }

    pub fn delete_alias(&self, alias: &str) -> Result<(), AccountError> {
        let key = if alias.starts_with('@') {
            alias.to_ascii_lowercase()
        } else {
            normalize_address(alias)?
        };
        self.files.update(|_, aliases| {
            aliases
                .remove(&key)
                .map(|_| ())
                .ok_or_else(|| AccountError::NoSuchAlias(key.clone()))
        })
    }

    /// `address` as a new user's address: ours, and a login name that `canonical_login` keeps
    /// as it is, so the user can log in with exactly the address they were given.
    pub fn user_address(&self, address: &str) -> Result<String, AccountError> {
        let addr = self.local_address(address)?;
        match canonical_login(&addr, &self.domain) {
            Ok(login) if login == addr => Ok(addr),
            Err(BadName::NonAscii) => Err(AccountError::NonAsciiLogin(addr)),
            Err(bad) => Err(AccountError::NotALogin {
                address: addr,
                reason: match bad {
                    BadName::Empty | BadName::TooLong => "too long for a login name",
                    BadName::Forbidden => {
                        "it holds a space, quote, bracket or one of ( ) , ; : [ ] < >"
                    }
                    BadName::LocalPart => "the part before @ is not a plain login name",
                    _ => "its domain is not one a login name can carry",
                },
            }),
            Ok(_) => Err(AccountError::NotALogin {
                address: addr,
                reason: "a login name would be spelled differently",
            }),
        }
    }

    fn local_address(&self, address: &str) -> Result<String, AccountError> {
        let addr = normalize_address(address)?;
        match addr.rsplit_once('@') {
            Some((_, d)) if d == self.domain => Ok(addr),
            _ => Err(AccountError::ForeignDomain {
                address: addr,
                domain: self.domain.clone(),
            }),
        }
    }
}

/// Role addresses `ensure_role_aliases` gives an owner.
const ROLE_ADDRESSES: [&str; 2] = ["postmaster", "abuse"];

/// Recipient resolution, in the order Postfix's virtual(5) uses: exact address (user, then
/// alias), then the address without its `+tag`, then the domain's catch-all `@domain`.
pub fn resolve_in(snap: &Snapshot, domain: &str, address: &str) -> Recipient {
    let Ok(addr) = normalize_address(address) else {
        return Recipient::Unknown;
    };
    let Some((local, dom)) = addr.rsplit_once('@') else {
        return Recipient::Unknown;
    };
    if dom != domain {
        return Recipient::Remote;
    }
    let mut candidates = vec![addr.clone()];
    if let Some((base, _tag)) = local.split_once('+')
        && !base.is_empty()
    {
        candidates.push(format!("{base}@{dom}"));
    }
    for c in &candidates {
        if snap.users.contains_key(c) {
            return Recipient::Local {
                users: vec![c.clone()],
                forward: vec![],
            };
        }
        if let Some(targets) = snap.aliases.get(c) {
            return finish(snap, domain, targets);
        }
    }
    if let Some(targets) = snap.aliases.get(&format!("@{dom}")) {
        return finish(snap, domain, targets);
    }
    Recipient::Unknown
}

/// When `address` resolved to nobody because the alias that matched it (exact, `+tag` base or
/// the catch-all) has no target that exists, that alias: the log names it, so an operator can
/// tell a dangling alias from an address that never existed.
pub fn dangling_alias_in(snap: &Snapshot, domain: &str, address: &str) -> Option<String> {
    let addr = normalize_address(address).ok()?;
    let (local, dom) = addr.rsplit_once('@')?;
    if dom != domain {
        return None;
    }
    let mut candidates = vec![addr.clone()];
    if let Some((base, _tag)) = local.split_once('+')
        && !base.is_empty()
    {
        candidates.push(format!("{base}@{dom}"));
    }
    candidates.push(format!("@{dom}"));
    for c in candidates {
        if snap.users.contains_key(&c) {
            return None;
        }
        if let Some(targets) = snap.aliases.get(&c) {
            return matches!(finish(snap, domain, targets), Recipient::Unknown).then_some(c);
        }
    }
    None
}

fn finish(snap: &Snapshot, domain: &str, targets: &[String]) -> Recipient {
    let mut users = Vec::new();
    let mut forward = Vec::new();
    expand(snap, domain, targets, 0, &mut users, &mut forward);
    if users.is_empty() && forward.is_empty() {
        Recipient::Unknown
    } else {
        Recipient::Local { users, forward }
    }
}

fn expand(
    snap: &Snapshot,
    domain: &str,
    targets: &[String],
    depth: usize,
    users: &mut Vec<String>,
    forward: &mut Vec<String>,
) {
    if depth > MAX_ALIAS_DEPTH {
        return;
    }
    for t in targets {
        let is_local = t.rsplit_once('@').is_some_and(|(_, d)| d == domain);
        if !is_local {
            if !forward.contains(t) {
                forward.push(t.clone());
            }
            continue;
        }
        if snap.users.contains_key(t) {
            if !users.contains(t) {
                users.push(t.clone());
            }
        } else if let Some(next) = snap.aliases.get(t) {
            expand(snap, domain, next, depth + 1, users, forward);
        } else if let Some((base, _)) = t.split_once('+') {
            let b = format!("{base}@{domain}");
            if snap.users.contains_key(&b) && !users.contains(&b) {
                users.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let d = tempfile::tempdir().unwrap();
        let a = Accounts::open(d.path(), "example.com").unwrap();
        (d, a)
    }

    #[test]
    fn role_aliases_go_to_the_first_user_only_where_missing() {
        let (_d, a) = accounts();
        a.add_user("alice@example.com", "pw").unwrap();
        a.add_alias("abuse@example.com", &["carol@elsewhere.org".into()])
            .unwrap();
        let created = a.ensure_role_aliases("alice@example.com").unwrap();
        assert_eq!(created, vec!["postmaster@example.com".to_string()]);
        a.add_user("bob@example.com", "pw").unwrap();
        assert!(a.ensure_role_aliases("bob@example.com").unwrap().is_empty());
        let user = |addr: &str| match a.resolve(addr).unwrap() {
            Recipient::Local { users, forward } => (users, forward),
            other => panic!("{addr}: {other:?}"),
        };
        assert_eq!(user("postmaster@example.com").0, vec!["alice@example.com"]);
        // The existing abuse@ alias was left alone.
        assert_eq!(user("abuse@example.com").1, vec!["carol@elsewhere.org"]);
        assert!(a.ensure_role_aliases("nobody@other.org").is_err());
    }

    #[test]
    fn resolves_users_aliases_tags_and_catchall() {
        let (_d, a) = accounts();
        a.add_user("Alice@Example.com", "pw").unwrap();
        a.add_user("bob@example.com", "pw").unwrap();
        a.add_alias(
            "info@example.com",
            &["alice@example.com".into(), "bob@example.com".into()],
        )
        .unwrap();
        a.add_alias("fwd@example.com", &["someone@elsewhere.org".into()])
            .unwrap();
        let local = |u: &[&str]| Recipient::Local {
            users: u.iter().map(|s| s.to_string()).collect(),
            forward: vec![],
        };
        assert_eq!(
            a.resolve("alice@example.com").unwrap(),
            local(&["alice@example.com"])
        );
        assert_eq!(
            a.resolve("ALICE@EXAMPLE.COM").unwrap(),
            local(&["alice@example.com"])
        );
        assert_eq!(
            a.resolve("alice+news@example.com").unwrap(),
            local(&["alice@example.com"])
        );
        assert_eq!(
            a.resolve("info@example.com").unwrap(),
            local(&["alice@example.com", "bob@example.com"])
        );
        assert_eq!(
            a.resolve("info+x@example.com").unwrap(),
            local(&["alice@example.com", "bob@example.com"])
        );
        assert_eq!(
            a.resolve("fwd@example.com").unwrap(),
            Recipient::Local {
                users: vec![],
                forward: vec!["someone@elsewhere.org".into()]
            }
        );
        assert_eq!(a.resolve("nobody@example.com").unwrap(), Recipient::Unknown);
        assert_eq!(a.resolve("x@other.org").unwrap(), Recipient::Remote);
        a.add_alias("@example.com", &["bob@example.com".into()])
            .unwrap();
        assert_eq!(
            a.resolve("nobody@example.com").unwrap(),
            local(&["bob@example.com"])
        );
    }

    #[test]
    fn send_as_rules() {
        let (_d, a) = accounts();
        a.add_user("alice@example.com", "pw").unwrap();
        a.add_user("bob@example.com", "pw").unwrap();
        a.add_alias("info@example.com", &["alice@example.com".into()])
            .unwrap();
        a.add_alias("@example.com", &["alice@example.com".into()])
            .unwrap();
        assert!(a.may_send_as("alice@example.com", "alice@example.com"));
        assert!(a.may_send_as("alice@example.com", "Alice+x@example.com"));
        assert!(a.may_send_as("alice@example.com", "info@example.com"));
        assert!(!a.may_send_as("alice@example.com", "bob@example.com"));
        assert!(!a.may_send_as("alice@example.com", "random@example.com"));
        assert!(!a.may_send_as("bob@example.com", "info@example.com"));
        assert!(!a.may_send_as("alice@example.com", "alice@other.org"));
    }

    #[test]
    fn passwords_and_lifecycle() {
        let (_d, a) = accounts();
        a.add_user("alice@example.com", "secret").unwrap();
        assert!(matches!(
            a.add_user("alice@example.com", "x"),
            Err(AccountError::UserExists(_))
        ));
        let check = |pw: &str| {
            let hash = a.snapshot().unwrap().users["alice@example.com"]
                .password
                .clone();
            verify_password(pw, &hash)
        };
        assert!(check("secret"));
        assert!(!check("wrong"));
        a.set_password("alice@example.com", "new").unwrap();
        assert!(!check("secret"));
        assert!(check("new"));
        a.delete_user("alice@example.com").unwrap();
        assert_eq!(a.resolve("alice@example.com").unwrap(), Recipient::Unknown);
        assert!(matches!(
            a.add_user("x@other.org", "pw"),
            Err(AccountError::ForeignDomain { .. })
        ));
    }

    #[test]
    fn changes_by_another_process_are_seen() {
        let (d, a) = accounts();
        let other = Accounts::open(d.path(), "example.com").unwrap();
        assert_eq!(a.resolve("carol@example.com").unwrap(), Recipient::Unknown);
        other.add_user("carol@example.com", "pw").unwrap();
        assert!(matches!(
            a.resolve("carol@example.com").unwrap(),
            Recipient::Local { .. }
        ));
    }
}
