// What the build does to the web UI's scripts and style sheets before gzipping them
// (shared by build.rs and the assets test, which compares what is served with it).

/// Drops indentation, blank lines and lines that are only a `//` comment. Safe for the
/// UI's files: none has a multi-line string or template literal, and line breaks stay,
/// so automatic semicolon insertion sees the same lines.
pub fn squeeze(text: &str) -> Vec<u8> {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}
