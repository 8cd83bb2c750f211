//! The firmware never spawns a process (issue 9: WireGuard, links, routes and the ruleset are
//! configured over netlink only; no `wg`, `ip`, `nft` or shell). This scans `firmware/src` for
//! process spawning outside test code (`#[cfg(test)]` modules and `tests.rs` files). The QEMU VPN
//! test (tests/qemu/vpn_test.py) checks the same at run time from the guest's process list.

use std::path::{Path, PathBuf};

/// What spawning a process looks like in Rust source.
const FORBIDDEN: [&str; 3] = ["Command::new", "std::process::Command", "process::Command"];

/// `src` without comments and without the bodies of `#[cfg(test)]` items; the names of
/// out-of-line `#[cfg(test)] mod NAME;` declarations are returned too.
fn strip_test_code(src: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        let code = line.split("//").next().unwrap_or("");
        if code.trim() != "#[cfg(test)]" {
            out.push_str(code);
            out.push('\n');
            continue;
        }
        // The item after the attribute: skip it through its closing brace (or its `;`).
        let mut depth = 0usize;
        let mut opened = false;
        for item in lines.by_ref() {
            let code = item.split("//").next().unwrap_or("");
            if !opened {
                if let Some(rest) = code
                    .trim()
                    .strip_prefix("mod ")
                    .or(code.trim().strip_prefix("pub mod "))
                {
                    if let Some(name) = rest.strip_suffix(';') {
                        test_mods.push(name.trim().to_string());
                        break;
                    }
                }
            }
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            if (opened && depth == 0) || (!opened && code.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    (out, test_mods)
}

/// Every `.rs` file under `dir`, except test-only files; each with the forbidden uses found.
fn scan(dir: &Path, skip: &mut Vec<PathBuf>, found: &mut Vec<String>, files: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        found.push(format!("{}: cannot read", dir.display()));
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    // Files first, so their `#[cfg(test)] mod x;` declarations are known before `x/` is walked.
    paths.sort_by_key(|p| p.is_dir());
    for p in paths {
        if skip.contains(&p) {
            continue;
        }
        if p.is_dir() {
            scan(&p, skip, found, files);
            continue;
        }
        if p.extension().and_then(|e| e.to_str()) != Some("rs")
            || p.file_name().and_then(|n| n.to_str()) == Some("tests.rs")
        {
            continue;
        }
        let Ok(src) = std::fs::read_to_string(&p) else {
            found.push(format!("{}: cannot read", p.display()));
            continue;
        };
        *files += 1;
        let (code, test_mods) = strip_test_code(&src);
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let mod_dir = if matches!(stem, "mod" | "lib" | "main") {
            dir.to_path_buf()
        } else {
            dir.join(stem)
        };
        for m in test_mods {
            skip.push(mod_dir.join(format!("{m}.rs")));
            skip.push(mod_dir.join(&m));
        }
        for (i, line) in code.lines().enumerate() {
            if FORBIDDEN.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
            }
        }
    }
}

#[test]
fn firmware_spawns_no_process() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/src");
    let (mut found, mut files) = (Vec::new(), 0);
    scan(&src, &mut Vec::new(), &mut found, &mut files);
    assert!(
        files > 20,
        "scanned only {files} files under {}",
        src.display()
    );
    assert!(
        found.is_empty(),
        "the firmware spawns processes (outside tests):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_finds_a_spawn_and_skips_test_code() {
    let src = "use std::process::Command;\n\
               // Command::new in a comment is fine\n\
               fn f() { let _ = Command::new(\"wg\"); }\n\
               #[cfg(test)]\n\
               mod tests {\n    fn g() { if true { std::process::Command::new(\"ip\"); } }\n}\n\
               #[cfg(test)]\nmod helpers;\n\
               fn h() {}\n";
    let (code, mods) = strip_test_code(src);
    let hits: Vec<&str> = code
        .lines()
        .filter(|l| FORBIDDEN.iter().any(|f| l.contains(f)))
        .collect();
    assert_eq!(
        hits,
        [
            "use std::process::Command;",
            "fn f() { let _ = Command::new(\"wg\"); }"
        ]
    );
    assert_eq!(mods, ["helpers"]);
    assert!(code.contains("fn h() {}"));
}
