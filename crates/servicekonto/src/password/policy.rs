//! Which passwords we accept: NIST SP 800-63B (rev. 4, section 3.1.1.2) without composition
//! rules — length, a block list, personal data, trivial patterns, and nothing else.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The 30,000 most common passwords, lower case (see `data/README.md` for the source).
const COMMON_PASSWORDS_TXT: &str = include_str!("../../data/common-passwords.txt");

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_PASSWORDS_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Whether `password` (case-insensitively) is on the bundled list of common passwords.
pub fn is_common_password(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// A prefix or suffix of at most this many digits and symbols around a common password still
/// counts as that password (`Passwort2024!`).
const MAX_TRIVIAL_AFFIX: usize = 5;

/// Context words shorter than this are not looked for in the password (too many false hits).
const MIN_CONTEXT_WORD: usize = 4;

/// The password rules.
///
/// * **Length** counts Unicode scalar values (`char`s), not bytes and not grapheme clusters;
///   we do not normalise (NFC) before counting or hashing, so `é` typed as one code point
///   counts 1 and as `e` + combining accent counts 2. Browsers send NFC in practice.
/// * **No composition rules** (no "one digit, one capital"): NIST forbids them, they push
///   people towards `Passwort1!`. Spaces and every Unicode character, emoji included, are
///   allowed.
/// * **Refused:** fewer than `min_len` or more than `max_len` characters; a password on the
///   bundled list of 30,000 common ones, case-insensitively, also with a prefix or suffix of
///   up to five digits and symbols or of a sequence (`Password123456`, `passwort2024!`); one
///   containing a context word of four or more characters (the e-mail address, its local
///   part, each part of the name, the service name — whatever the caller passes); one made of
///   a single character repeated, a short unit repeated (`abababab…`, `passwordpassword`), or
///   one ascending or descending run of characters over the whole password (`abcdefghijkl`,
///   `3456789012345`, digits wrap from 9 to 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_len: usize,
    pub max_len: usize,
}

impl Default for PasswordPolicy {
    /// 12 to 256 characters.
    fn default() -> Self {
        PasswordPolicy {
            min_len: 12,
            max_len: 256,
        }
    }
}

/// Why a password was refused. [`PasswordProblem::code`] is the stable machine code the web
/// layer translates; `Display` is an English sentence for logs and tests. Neither ever
/// contains the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("the password must have at least {min} characters")]
    TooShort { min: usize },
    #[error("the password must have at most {max} characters")]
    TooLong { max: usize },
    #[error("the password is one of the most commonly used passwords")]
    Common,
    #[error("the password contains your name or e-mail address")]
    ContainsPersonalData,
    #[error("the password is a repetition or a simple sequence of characters")]
    Repetitive,
}

impl PasswordProblem {
    /// Stable machine code, e.g. `password_too_short`; never change one.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordProblem::TooShort { .. } => "password_too_short",
            PasswordProblem::TooLong { .. } => "password_too_long",
            PasswordProblem::Common => "password_common",
            PasswordProblem::ContainsPersonalData => "password_contains_personal_data",
            PasswordProblem::Repetitive => "password_repetitive",
        }
    }
}

impl PasswordPolicy {
    /// Checks a new password. `context` holds words the password must not contain: the
    /// account's e-mail address, the person's name (each part is checked separately), the
    /// service name. Matching is case-insensitive; words shorter than four characters are
    /// ignored. The first problem found is returned, in the order the variants are declared.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), PasswordProblem> {
        let chars: Vec<char> = password.chars().collect();
        if chars.len() < self.min_len {
            return Err(PasswordProblem::TooShort { min: self.min_len });
        }
        if chars.len() > self.max_len {
            return Err(PasswordProblem::TooLong { max: self.max_len });
        }
        let lower = password.to_lowercase();
        if is_common_or_decorated_common(&lower) {
            return Err(PasswordProblem::Common);
        }
        if contains_context_word(&lower, context) {
            return Err(PasswordProblem::ContainsPersonalData);
        }
        let lower_chars: Vec<char> = lower.chars().collect();
        if is_repetitive(&lower_chars) || is_run(&lower_chars) {
            return Err(PasswordProblem::Repetitive);
        }
        Ok(())
    }
}

/// `lower` is a common password, or one with a trivial prefix and/or suffix of non-letters.
fn is_common_or_decorated_common(lower: &str) -> bool {
    if COMMON_PASSWORDS.contains(lower) {
        return true;
    }
    let is_decoration = |c: char| !c.is_alphabetic();
    let core = lower.trim_start_matches(is_decoration);
    let prefix = &lower[..lower.len() - core.len()];
    let core = core.trim_end_matches(is_decoration);
    let suffix = &lower[prefix.len() + core.len()..];
    if core.is_empty() || (prefix.is_empty() && suffix.is_empty()) {
        return false;
    }
    let trivial = |affix: &str| {
        let chars: Vec<char> = affix.chars().collect();
        chars.len() <= MAX_TRIVIAL_AFFIX || is_repetitive(&chars) || is_run(&chars)
    };
    trivial(prefix) && trivial(suffix) && COMMON_PASSWORDS.contains(core)
}

/// `lower` contains one of the context words (or a part of one), case-insensitively.
fn contains_context_word(lower: &str, context: &[&str]) -> bool {
    context
        .iter()
        .flat_map(|entry| context_words(entry))
        .any(|word| lower.contains(word.as_str()))
}

/// The words to look for from one context entry: the entry itself, the local part of an
/// e-mail address, and each white-space separated part — lower case, at least
/// [`MIN_CONTEXT_WORD`] characters.
fn context_words(entry: &str) -> Vec<String> {
    let entry = entry.trim().to_lowercase();
    let mut words = vec![entry.clone()];
    if let Some((local, _domain)) = entry.rsplit_once('@') {
        words.push(local.to_owned());
    }
    words.extend(entry.split_whitespace().map(str::to_owned));
    words.retain(|w| w.chars().count() >= MIN_CONTEXT_WORD);
    words
}

/// The whole of `chars` repeats a unit of at most half its length: `aaaa`, `abab`,
/// `abcabcab`, `passwordpassword`.
fn is_repetitive(chars: &[char]) -> bool {
    if chars.len() < 2 {
        return false;
    }
    (1..=chars.len() / 2).any(|period| (period..chars.len()).all(|i| chars[i] == chars[i - period]))
}

/// The whole of `chars` (at least three) is one ascending or descending run of consecutive
/// characters: `abcdef`, `987654`, `7890123` (digits wrap around).
fn is_run(chars: &[char]) -> bool {
    if chars.len() < 3 {
        return false;
    }
    let step = |a: char, b: char| -> Option<i8> {
        let (a, b) = (a as u32, b as u32);
        match (a, b) {
            _ if b == a + 1 => Some(1),
            _ if a == b + 1 => Some(-1),
            (0x39, 0x30) => Some(1),  // '9' → '0'
            (0x30, 0x39) => Some(-1), // '0' → '9'
            _ => None,
        }
    };
    let Some(first) = step(chars[0], chars[1]) else {
        return false;
    };
    chars.windows(2).all(|w| step(w[0], w[1]) == Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str) -> Result<(), PasswordProblem> {
        PasswordPolicy::default().check(pw, &[])
    }

    #[test]
    fn list_is_loaded() {
        assert!(
            COMMON_PASSWORDS.len() >= 29_000,
            "{}",
            COMMON_PASSWORDS.len()
        );
        assert!(is_common_password("password"));
        assert!(is_common_password("PassWort"));
        assert!(is_common_password("qwertzuiop"));
        assert!(!is_common_password("Kastanienallee im Herbst"));
        // Every entry is lower case, so lower-casing the input is enough.
        assert!(COMMON_PASSWORDS.iter().all(|p| p.to_lowercase() == *p));
    }

    #[test]
    fn length_counts_characters() {
        assert_eq!(
            check("abcdefghij1"),
            Err(PasswordProblem::TooShort { min: 12 })
        );
        assert_eq!(check("Zaunkönig-71"), Ok(()));
        // 11 characters, but 22 bytes: still too short.
        assert_eq!(
            check("äöüßéèêëïîô"),
            Err(PasswordProblem::TooShort { min: 12 })
        );
        assert_eq!(check(""), Err(PasswordProblem::TooShort { min: 12 }));
        let long: String = "Baumhaus-".repeat(29); // 261 characters
        assert_eq!(check(&long), Err(PasswordProblem::TooLong { max: 256 }));
        let policy = PasswordPolicy {
            min_len: 15,
            max_len: 64,
        };
        assert_eq!(
            policy.check("Zaunkönig-71", &[]),
            Err(PasswordProblem::TooShort { min: 15 })
        );
    }

    #[test]
    fn emoji_and_spaces_are_fine() {
        // Every third code point from U+1F300: 64 emoji, not one consecutive run (the 64
        // consecutive smileys U+1F600… would be refused as a sequence).
        let emoji: String = ('\u{1F300}'..).step_by(3).take(64).collect();
        assert_eq!(emoji.chars().count(), 64);
        assert_eq!(check(&emoji), Ok(()));
        assert_eq!(check("korrekt pferd batterie heftklammer"), Ok(()));
        assert_eq!(check("Mein Rad hat 3 Gänge"), Ok(()));
    }

    #[test]
    fn common_passwords_are_refused() {
        assert_eq!(check("password123456"), Err(PasswordProblem::Common));
        assert_eq!(check("Password123456"), Err(PasswordProblem::Common));
        assert_eq!(check("passwort2024!"), Err(PasswordProblem::Common));
        assert_eq!(check("!!Passwort2024"), Err(PasswordProblem::Common));
        assert_eq!(check("qwertyuiop123"), Err(PasswordProblem::Common));
        assert_eq!(check("1qaz2wsx3edc"), Err(PasswordProblem::Common));
        assert_eq!(
            check("SCHALKE04SCHALKE04"),
            Err(PasswordProblem::Repetitive)
        );
        // A common word with a long random suffix is no longer "the" common password.
        assert_eq!(check("dragon84719263"), Ok(()));
        // Letters around the word are not decoration.
        assert_eq!(check("passwordXylophon"), Ok(()));
    }

    #[test]
    fn personal_data_is_refused() {
        let policy = PasswordPolicy::default();
        let ctx = ["erika.mustermann@example.de", "Erika Mustermann"];
        assert_eq!(
            policy.check("Erika.Mustermann-1964", &ctx),
            Err(PasswordProblem::ContainsPersonalData)
        );
        assert_eq!(
            policy.check("ich-bin-MUSTERMANN!", &ctx),
            Err(PasswordProblem::ContainsPersonalData)
        );
        assert_eq!(
            policy.check("meine erika.mustermann@example.de", &ctx),
            Err(PasswordProblem::ContainsPersonalData)
        );
        assert_eq!(
            policy.check("Grüße an jmbt87 von hier", &["jmbt87@example.org"]),
            Err(PasswordProblem::ContainsPersonalData)
        );
        // Words under four characters are ignored.
        assert_eq!(policy.check("Ahornblatt-Max", &["Max Ahn"]), Ok(()));
        // The domain alone is not personal.
        assert_eq!(
            policy.check("beispiel-example-glocke", &["jo@example.de"]),
            Ok(())
        );
        assert_eq!(policy.check("Wiesenweg am Bach", &ctx), Ok(()));
    }

    #[test]
    fn repetitions_and_sequences_are_refused() {
        for pw in [
            "aaaaaaaaaaaa",
            "ZZZZZZZZZZZZZZZZ",
            "abababababab",
            "xyzxyzxyzxyzx",
            "klavierklavier",
            "abcdefghijklm",
            "ZYXWVUTSRQPON",
            "123456789012345",
            "987654321098",
            "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂",
        ] {
            assert_eq!(check(pw), Err(PasswordProblem::Repetitive), "{pw}");
        }
        assert_eq!(check("abcdefghijkm"), Ok(()));
        assert_eq!(check("aaaaaaaaaaab"), Ok(()));
    }

    #[test]
    fn codes_and_messages() {
        assert_eq!(
            PasswordProblem::TooShort { min: 12 }.code(),
            "password_too_short"
        );
        assert_eq!(
            PasswordProblem::TooLong { max: 9 }.code(),
            "password_too_long"
        );
        assert_eq!(PasswordProblem::Common.code(), "password_common");
        assert_eq!(
            PasswordProblem::ContainsPersonalData.code(),
            "password_contains_personal_data"
        );
        assert_eq!(PasswordProblem::Repetitive.code(), "password_repetitive");
        assert_eq!(
            PasswordProblem::TooShort { min: 12 }.to_string(),
            "the password must have at least 12 characters"
        );
    }

    #[test]
    fn helpers() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert!(is_run(&c("abc")));
        assert!(!is_run(&c("ab")));
        assert!(!is_run(&c("abd")));
        assert!(!is_run(&c("abcba")));
        assert!(is_run(&c("890123")));
        assert!(is_run(&c("210987")));
        assert!(is_repetitive(&c("aa")));
        assert!(!is_repetitive(&c("a")));
        assert!(!is_repetitive(&c("abcab1")));
    }
}
