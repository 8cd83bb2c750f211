//! The JSON path (`forwards[0].allow_from[1]`) of a position in a JSON text, for naming
//! the field a serde_json error is about.
//!
//! serde_json reports where in the text it was when an error arose (`line`, `column`:
//! bytes since the start of the line, after what it had read). Walking the text up to that
//! point and keeping the open objects' current keys and the open arrays' current indices
//! gives the field: after a bad value or an unknown field, its key or index is still open.
//! serde_json's position may include one peeked byte after a value (the `,`, `}` or `]`
//! that ends a number, or ends an array element): a final `,`, `}` or `]` is not walked.
//! A missing field is reported at its object's end: the object itself is the field. This replaces `serde_path_to_error`, whose
//! tracking wrappers doubled every config type's deserializer (about 40 KB on mipsel,
//! docs/decisions.md).

/// One open container.
enum Frame {
    /// An object and the key whose value is being read (None before the first key or
    /// after a comma).
    Object(Option<String>),
    /// An array and the index of the element being read.
    Array(usize),
}

/// The byte offset of (`line` 1-based, `column` = bytes since the line's start), clamped
/// to the text.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    start.saturating_add(column).min(text.len())
}

/// The path at (`line`, `column`) in `text`, as `a.b[2].c`; empty at the top level.
/// `whole_object`: the error is about the innermost object itself (a missing field), not
/// its current key.
pub fn at(text: &str, line: usize, column: usize, whole_object: bool) -> String {
    let mut end = offset(text, line, column);
    if end > 0 && matches!(text.as_bytes()[end - 1], b',' | b'}' | b']') {
        end -= 1;
    }
    let bytes = &text.as_bytes()[..end];
    let mut stack: Vec<Frame> = Vec::new();
    // Whether the string just read is an object's key (vs. a value).
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(k)) => {
                    *k = None;
                    expect_key = true;
                }
                None => {}
            },
            b':' => expect_key = false,
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if expect_key {
                    if let Some(Frame::Object(k)) = stack.last_mut() {
                        let s = text.get(start..i.min(bytes.len())).unwrap_or("");
                        *k = Some(s.to_string());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if whole_object {
        if let Some(Frame::Object(k)) = stack.last_mut() {
            *k = None;
        }
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Object(Some(k)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => {
                path.push('[');
                path.push_str(&n.to_string());
                path.push(']');
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::at;

    fn path_of(text: &str) -> String {
        let e = serde_json::from_str::<crate::config::Config>(text).expect_err("an error");
        at(
            text,
            e.line(),
            e.column(),
            e.to_string().starts_with("missing field"),
        )
    }

    const HEAD: &str = r#"{"version":1,"lan":{"interface":"br-lan","subnets":["192.168.1.0/24"]},
"wan":{"interface":"wan"},"#;

    #[test]
    fn names_a_bad_value_an_unknown_field_and_a_missing_one() {
        let bad = format!("{HEAD}\"management\":{{\"http_port\":\"80\"}}}}");
        assert_eq!(path_of(&bad), "management.http_port");
        let unknown = format!(
            "{HEAD}\"forwards\":[{{\"name\":\"a\",\"protocol\":\"tcp\",\"external_port\":80,\
             \"internal_host\":\"192.168.1.5\"}},\n {{\"name\":\"b\",\"alow_from\":[]}}]}}"
        );
        assert_eq!(path_of(&unknown), "forwards[1].alow_from");
        let missing = format!("{HEAD}\"forwards\":[{{\"name\":\"a\",\"protocol\":\"tcp\"}}]}}");
        assert_eq!(path_of(&missing), "forwards[0]");
        let top = r#"{"version":1,"lan":{"interface":"x","subnets":[]}}"#;
        assert_eq!(path_of(top), "");
    }

    #[test]
    fn counts_array_elements_and_skips_escaped_quotes_and_commas_in_strings() {
        let t = r#"{"version":1,"lan":{"interface":"a\",\"b","subnets":["10.0.0.0/8", "10.0.0.0/33"]}}"#;
        assert_eq!(path_of(t), "lan.subnets[1]");
    }

    #[test]
    fn positions_past_the_end_or_on_later_lines_are_clamped() {
        assert_eq!(at("{\"a\":[1,2", 9, 99, false), "a[1]");
        assert_eq!(at("", 1, 5, false), "");
        assert_eq!(at("{\"a\":\"\\", 1, 99, false), "a");
    }
}
