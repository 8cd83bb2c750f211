//! Reading and loading nftables rulesets with the `nft` tool, and normalising listings
//! so two of them can be compared.

use std::path::Path;
use std::time::Duration;

use crate::netns;

/// The table Portcullis owns.
pub const TABLE: &str = "inet portcullis";

/// `nft list table inet portcullis` in `ns`; None if the table does not exist.
pub fn list_table(ns: &str) -> Option<String> {
    let out = netns::output(netns::command(
        ns,
        "nft",
        &["list", "table", "inet", "portcullis"],
    ));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nft list ruleset` in `ns`.
pub fn list_ruleset(ns: &str) -> String {
    netns::run_ok(netns::command(ns, "nft", &["list", "ruleset"]))
}

/// `nft -f FILE` in `ns`; Err with nft's complaint if it refuses.
pub fn load(ns: &str, file: &Path) -> Result<(), String> {
    let out = netns::output(netns::command(ns, "nft", &["-f", &file.to_string_lossy()]));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A listing with what legitimately differs between two installs of the same ruleset
/// removed: `expires <duration>` of timed elements and the values of counters.
pub fn normalize(listing: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    for line in listing.lines() {
        let line = strip_expires(line);
        let line = zero_counters(&line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Removes every ` expires <duration>` fragment, keeping a separator (`,`) that was
/// glued to the duration.
fn strip_expires(line: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut it = line.split(' ');
    while let Some(w) = it.next() {
        if w == "expires" {
            if let Some(d) = it.next() {
                let tail = d.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '.');
                if let Some(last) = words.last_mut() {
                    last.push_str(tail);
                }
            }
            continue;
        }
        words.push(w.to_owned());
    }
    words.join(" ")
}

/// Replaces `packets N bytes M` with `packets 0 bytes 0`.
fn zero_counters(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if (w == "packets" || w == "bytes") && i + 1 < words.len() {
            let n = words[i + 1];
            let digits = n.trim_end_matches(|c: char| !c.is_ascii_digit());
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                out.push(w.to_owned());
                out.push(format!("0{}", &n[digits.len()..]));
                i += 2;
                continue;
            }
        }
        out.push(w.to_owned());
        i += 1;
    }
    out.join(" ")
}

/// Replaces the durations of element timeouts (`2222 timeout 1d2h : ...`) with `<T>` and
/// returns them in order. Set-level `timeout 2m` lines are left alone. An element's
/// timeout is computed from `expires_at` at the moment the ruleset is built, so two
/// builds a second apart legitimately differ there; compare the durations with a
/// tolerance instead.
pub fn split_element_timeouts(listing: &str) -> (String, Vec<Duration>) {
    let mut found = Vec::new();
    let mut out = String::with_capacity(listing.len());
    for line in listing.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let mut rebuilt: Vec<String> = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let element_level = !rebuilt.iter().all(|r| r.trim().is_empty());
            if w.trim() == "timeout" && element_level && i + 1 < words.len() {
                let d = words[i + 1];
                let body: String = d
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if let Some(dur) = parse_duration(&body) {
                    found.push(dur);
                    rebuilt.push(w.to_owned());
                    rebuilt.push(format!("<T>{}", &d[body.len()..]));
                    i += 2;
                    continue;
                }
            }
            rebuilt.push(w.to_owned());
            i += 1;
        }
        out.push_str(&rebuilt.join(" "));
        out.push('\n');
    }
    (out, found)
}

/// Parses nft's duration spelling: `1d2h3m4s500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit_ms = match c {
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        };
        total_ms += n * unit_ms;
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_timeouts_are_split_out() {
        let text = "\t\ttimeout 2m\n\t\telements = { 2222 timeout 1129d6h : jump f,\n\t\t\t     113 timeout 10s500ms : jump g }\n";
        let (t, d) = split_element_timeouts(text);
        assert_eq!(
            t,
            "\t\ttimeout 2m\n\t\telements = { 2222 timeout <T> : jump f,\n\t\t\t     113 timeout <T> : jump g }\n"
        );
        assert_eq!(
            d,
            vec![
                Duration::from_secs(1129 * 86_400 + 6 * 3600),
                Duration::from_millis(10_500)
            ]
        );
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5ms"), Some(Duration::from_millis(5)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn strips_expiry_and_counter_values() {
        let a = "\t\telements = { 2222 timeout 1d expires 23h59m58s480ms : jump f,\n\t\tcounter packets 12 bytes 3456\n";
        let b = "\t\telements = { 2222 timeout 1d : jump f,\n\t\tcounter packets 0 bytes 0\n";
        assert_eq!(normalize(a), normalize(b));
        assert_eq!(
            normalize("x expires 3s, y"),
            "x, y\n",
            "a comma after the duration stays"
        );
        assert_eq!(
            normalize("counter packets 5 bytes 60 }"),
            "counter packets 0 bytes 0 }\n"
        );
    }
}
