//! The admin password: strength rules, memory-hard hashing (scrypt), randomness.
//!
//! There is no default password: until one is set, only the setup route answers.

use std::io::Read as _;

/// Why hashing or checking a password failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading random bytes from /dev/urandom")]
    Random(#[source] std::io::Error),
    #[error("scrypt parameters log_n={log_n} r={r} p={p} are invalid")]
    Params { log_n: u8, r: u32, p: u32 },
    #[error("stored password hash is malformed")]
    Malformed,
}

/// scrypt cost: N = 2^log_n, r, p. Memory is 128 * r * N bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl Cost {
    /// 16 MiB and about 50 ms on x86-64, a second or two on a MIPS router: fine for a
    /// login, ruinous for an offline guesser.
    pub const DEFAULT: Cost = Cost {
        log_n: 14,
        r: 8,
        p: 1,
    };
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(AuthError::Random)?;
    Ok(buf)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn derive(password: &str, salt: &[u8], cost: Cost) -> Result<[u8; 32], AuthError> {
    let bad = AuthError::Params {
        log_n: cost.log_n,
        r: cost.r,
        p: cost.p,
    };
    let params = scrypt::Params::new(cost.log_n, cost.r, cost.p, 32).map_err(|_| bad)?;
    let mut out = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut out).map_err(|_| {
        AuthError::Params {
            log_n: cost.log_n,
            r: cost.r,
            p: cost.p,
        }
    })?;
    Ok(out)
}

/// Hashes a password with a fresh salt: `scrypt$LOG_N$R$P$SALT$HASH` (hex).
pub fn hash_password(password: &str, cost: Cost) -> Result<String, AuthError> {
    let salt: [u8; 16] = random_bytes()?;
    let key = derive(password, &salt, cost)?;
    Ok(format!(
        "scrypt${}${}${}${}${}",
        cost.log_n,
        cost.r,
        cost.p,
        hex(&salt),
        hex(&key)
    ))
}

/// A stored hash split into its cost, salt and key.
fn parse_stored(stored: &str) -> Result<(Cost, Vec<u8>, Vec<u8>), AuthError> {
    let parts: Vec<&str> = stored.split('$').collect();
    let [kind, log_n, r, p, salt, key] = parts.as_slice() else {
        return Err(AuthError::Malformed);
    };
    if *kind != "scrypt" {
        return Err(AuthError::Malformed);
    }
    let cost = Cost {
        log_n: log_n.parse().map_err(|_| AuthError::Malformed)?,
        r: r.parse().map_err(|_| AuthError::Malformed)?,
        p: p.parse().map_err(|_| AuthError::Malformed)?,
    };
    let salt = unhex(salt).ok_or(AuthError::Malformed)?;
    let key = unhex(key).ok_or(AuthError::Malformed)?;
    // Bounded cost (at most 2^20 * 8 * 128 B = 1 GiB would not fit a router anyway): a
    // damaged or planted file must not make a login allocate without limit.
    if key.len() != 32 || salt.is_empty() || cost.log_n > 20 || cost.r > 16 || cost.p > 4 {
        return Err(AuthError::Malformed);
    }
    scrypt::Params::new(cost.log_n, cost.r, cost.p, 32).map_err(|_| AuthError::Params {
        log_n: cost.log_n,
        r: cost.r,
        p: cost.p,
    })?;
    Ok((cost, salt, key))
}

/// Whether a stored hash has our format and usable parameters (a damaged password file
/// must be recognised as damaged, not as "no password").
pub fn well_formed_hash(stored: &str) -> bool {
    parse_stored(stored).is_ok()
}

/// Checks a password against a stored hash (with the cost it was made with).
pub fn verify_password(password: &str, stored: &str) -> Result<bool, AuthError> {
    let (cost, salt, key) = parse_stored(stored)?;
    let got = derive(password, &salt, cost)?;
    Ok(constant_time_eq(&got, &key))
}

/// Compares without an early exit, so timing does not tell how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The rules, as the setup page states them.
pub const PASSWORD_RULES: &str = "At least 10 characters and at most 128, with at least 5 \
different characters, and not a well-known password.";

const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "123456",
    "qwerty",
    "admin",
    "letmein",
    "welcome",
    "portcullis",
    "iloveyou",
    "abc123",
    "router",
    "changeme",
    "default",
    "monkey",
    "dragon",
];

/// Why a new password is refused, or None.
pub fn password_problem(p: &str) -> Option<&'static str> {
    let n = p.chars().count();
    if n < 10 {
        return Some("the password must have at least 10 characters");
    }
    if n > 128 {
        return Some("the password must have at most 128 characters");
    }
    let mut distinct: Vec<char> = p.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some("the password must use at least 5 different characters");
    }
    let lower = p.to_lowercase();
    let stripped = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c == '!');
    if COMMON
        .iter()
        .any(|c| stripped == *c || lower.starts_with(c) && lower.len() <= c.len() + 4)
        || lower.chars().all(|c| c.is_ascii_digit())
    {
        return Some("that password is too well known; choose another");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Cost = Cost {
        log_n: 4,
        r: 8,
        p: 1,
    };

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash_password("correct horse battery", FAST).unwrap();
        let b = hash_password("correct horse battery", FAST).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("scrypt$4$8$1$"));
        assert!(verify_password("correct horse battery", &a).unwrap());
        assert!(!verify_password("correct horse batterx", &a).unwrap());
        assert!(verify_password("x", "nonsense").is_err());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert!(password_problem("short").is_some());
        assert!(password_problem("aaaaaaaaaaaa").is_some());
        assert!(password_problem("1234567890123").is_some());
        assert!(password_problem("Password123!").is_some());
        assert!(password_problem("portcullis2026").is_some());
        assert!(password_problem("mellow-otter-93").is_none());
    }
}
