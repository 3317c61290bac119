//! Where `user add` and `user passwd` get a password: a twice-asked prompt, one line of stdin,
//! or `--generate`; and what they refuse (too short, several lines, empty).

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use rand::Rng;

/// Shorter passwords are refused. NIST SP 800-63B asks for at least 8 characters; a mail
/// password is typed once into a client and kept there, so 12 costs the user little.
pub const MIN_LEN: usize = 12;

/// Length of a `--generate`d password (alphanumeric: ~119 bits).
const GENERATED_LEN: usize = 20;

/// How the password arrives.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct PasswordArgs {
    /// Read the password from stdin: exactly one line (no prompt, for scripts).
    #[arg(long, conflicts_with = "generate")]
    pub password_stdin: bool,
    /// Make up a strong random password and print it once.
    #[arg(long)]
    pub generate: bool,
    /// Accept a password shorter than 12 characters (throw-away test setups only).
    #[arg(long)]
    pub allow_short_password: bool,
}

/// A password obtained per `args`, and whether it was generated (to be shown once).
pub fn obtain(args: PasswordArgs) -> anyhow::Result<(String, bool)> {
    if args.generate {
        return Ok((generate(), true));
    }
    let pw = if args.password_stdin {
        let mut all = String::new();
        std::io::stdin()
            .lock()
            .take(64 * 1024)
            .read_to_string(&mut all)
            .context("cannot read the password from stdin")?;
        from_stdin_text(&all)?
    } else if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ")?;
        check(&a, args.allow_short_password)?;
        let b = rpassword::prompt_password("Repeat: ")?;
        if a != b {
            bail!("the passwords differ; nothing changed");
        }
        a
    } else {
        bail!(
            "no terminal to ask for the password: pass it on stdin with --password-stdin, or use --generate"
        );
    };
    check(&pw, args.allow_short_password)?;
    Ok((pw, false))
}

/// The one line of `--password-stdin` input: a final line end is dropped; a second line is an
/// error rather than silently ignored (was the password meant to contain it?).
pub fn from_stdin_text(all: &str) -> anyhow::Result<String> {
    let line = all
        .strip_suffix("\r\n")
        .or_else(|| all.strip_suffix('\n'))
        .unwrap_or(all);
    if line.contains(['\n', '\r']) {
        bail!(
            "--password-stdin got several lines; give exactly one line (the password), nothing changed"
        );
    }
    Ok(line.to_string())
}

/// Refuse what is not a usable password.
pub fn check(pw: &str, allow_short: bool) -> anyhow::Result<()> {
    if pw.is_empty() {
        bail!("empty password refused");
    }
    let len = pw.chars().count();
    if len < MIN_LEN && !allow_short {
        bail!(
            "password too short ({len} characters): use at least {MIN_LEN}, or --generate for a random one"
        );
    }
    Ok(())
}

pub fn generate() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(GENERATED_LEN)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_is_one_line() {
        assert_eq!(
            from_stdin_text("long enough pw\n").unwrap(),
            "long enough pw"
        );
        assert_eq!(from_stdin_text("pw\r\n").unwrap(), "pw");
        assert_eq!(from_stdin_text("pw").unwrap(), "pw");
        let e = from_stdin_text("first line\nsecond\n").unwrap_err();
        assert!(e.to_string().contains("several lines"), "{e}");
    }

    #[test]
    fn short_and_empty_are_refused() {
        assert!(check("", true).is_err());
        let e = check("a", false).unwrap_err().to_string();
        assert!(e.contains("too short (1 characters)"), "{e}");
        assert!(check("a", true).is_ok());
        assert!(check("twelve chars", false).is_ok());
        let g = generate();
        assert_eq!(g.len(), GENERATED_LEN);
        assert!(check(&g, false).is_ok());
    }
}
