//! Reading and loading nftables rulesets with the `nft` tool, and normalising listings
//! so two of them can be compared.

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
