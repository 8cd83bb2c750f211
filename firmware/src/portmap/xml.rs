//! A bounded reader and escaper for the small XML of SOAP bodies.
//!
//! The reader is not a general XML parser: it reads the well-formed subset UPnP control
//! points send (UPnP Device Architecture 1.1 §3.2.1: a SOAP 1.1 envelope), into a flat
//! list of elements with their local names (namespace prefixes stripped) and direct text.
//! Every size is capped ([`MAX_BODY`], [`MAX_DEPTH`], [`MAX_ELEMENTS`], [`MAX_TEXT`]), a
//! document type declaration is refused (no entity expansion beyond the five predefined
//! entities and numeric character references), and no input can make it panic.

/// Largest document read, bytes.
pub const MAX_BODY: usize = 16 * 1024;
/// Deepest element nesting (the envelope is depth 1).
pub const MAX_DEPTH: usize = 16;
/// Most elements in a document.
pub const MAX_ELEMENTS: usize = 64;
/// Most bytes of (unescaped) text directly inside one element.
pub const MAX_TEXT: usize = 1024;

/// One element of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name: `u:AddPortMapping` becomes `AddPortMapping`.
    pub name: String,
    /// Text directly inside, unescaped (CDATA included), children's text excluded.
    pub text: String,
    /// Index of the parent in [`Document::elements`]; None for the root.
    pub parent: Option<usize>,
}

/// A document as a flat list of elements in document order (the root first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// At most [`MAX_ELEMENTS`].
    pub elements: Vec<Element>,
}

impl Document {
    /// Indexes of the children of element `i`, in order.
    pub fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.elements
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.parent == Some(i))
            .map(|(j, _)| j)
    }

    /// The first child of element `i` with this local name.
    pub fn child(&self, i: usize, name: &str) -> Option<usize> {
        self.children(i)
            .find(|&j| self.elements.get(j).is_some_and(|e| e.name == name))
    }
}

/// Why a document was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the document is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the document is not UTF-8")]
    NotUtf8,
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("the document has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("an element's text is longer than {MAX_TEXT} bytes")]
    TextTooLong,
    #[error("document type declarations are not accepted")]
    Doctype,
    #[error("malformed XML at byte {0}")]
    Malformed(usize),
}

/// Reads a document. Errors: any cap exceeded, a DOCTYPE, or malformed markup (unclosed
/// or mismatched tags, text or a second element outside the root).
pub fn parse(input: &[u8]) -> Result<Document, XmlError> {
    if input.len() > MAX_BODY {
        return Err(XmlError::TooLarge);
    }
    let s = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
    let s = s.strip_prefix('\u{feff}').unwrap_or(s);
    let mut doc = Document::default();
    // Open elements: (index, qualified name).
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut rooted = false;
    let mut pos = 0;
    let bad = |at: usize| XmlError::Malformed(at);
    while pos < s.len() {
        let rest = s.get(pos..).ok_or(bad(pos))?;
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or(bad(pos))?;
            pos += 4 + end + 3;
        } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
            let end = r.find("]]>").ok_or(bad(pos))?;
            let text = r.get(..end).ok_or(bad(pos))?;
            let &(i, _) = open.last().ok_or(bad(pos))?;
            push_text(&mut doc, i, text)?;
            pos += 9 + end + 3;
        } else if rest.starts_with("<!") {
            return Err(XmlError::Doctype);
        } else if let Some(r) = rest.strip_prefix("<?") {
            let end = r.find("?>").ok_or(bad(pos))?;
            pos += 2 + end + 2;
        } else if let Some(r) = rest.strip_prefix("</") {
            let end = r.find('>').ok_or(bad(pos))?;
            let name = r.get(..end).ok_or(bad(pos))?.trim_end();
            match open.pop() {
                Some((_, q)) if q == name => {}
                _ => return Err(bad(pos)),
            }
            pos += 2 + end + 1;
        } else if let Some(r) = rest.strip_prefix('<') {
            let end = tag_end(r).ok_or(bad(pos))?;
            let tag = r.get(..end).ok_or(bad(pos))?;
            let (tag, empty) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let qname = tag
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or("");
            if qname.is_empty() || (open.is_empty() && rooted) {
                return Err(bad(pos));
            }
            if open.len() >= MAX_DEPTH {
                return Err(XmlError::TooDeep);
            }
            if doc.elements.len() >= MAX_ELEMENTS {
                return Err(XmlError::TooManyElements);
            }
            let local = qname.rsplit(':').next().unwrap_or(qname);
            doc.elements.push(Element {
                name: local.to_string(),
                text: String::new(),
                parent: open.last().map(|&(i, _)| i),
            });
            rooted = true;
            if !empty {
                open.push((doc.elements.len() - 1, qname));
            }
            pos += 1 + end + 1;
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let raw = rest.get(..end).ok_or(bad(pos))?;
            match open.last() {
                Some(&(i, _)) => push_text(&mut doc, i, &unescape(raw).ok_or(bad(pos))?)?,
                None if raw.trim().is_empty() => {}
                None => return Err(bad(pos)),
            }
            pos += end;
        }
    }
    if !open.is_empty() || !rooted {
        return Err(bad(s.len()));
    }
    Ok(doc)
}

/// The end of a start tag (the index of its `>`), skipping quoted attribute values.
fn tag_end(r: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in r.char_indices() {
        match (quote, c) {
            (None, '>') => return Some(i),
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    None
}

fn push_text(doc: &mut Document, i: usize, text: &str) -> Result<(), XmlError> {
    let e = doc.elements.get_mut(i).ok_or(XmlError::Malformed(0))?;
    if e.text.len() + text.len() > MAX_TEXT {
        return Err(XmlError::TextTooLong);
    }
    e.text.push_str(text);
    Ok(())
}

/// Replaces the five predefined entities and numeric character references. Any other
/// `&` is kept as it is: miniupnpc writes argument values unescaped, so a description
/// such as "Tom & Jerry" arrives with a bare ampersand.
pub fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp)?);
        let after = rest.get(amp + 1..)?;
        match entity(after) {
            Some((c, len)) => {
                out.push(c);
                rest = after.get(len..)?;
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// The character of an entity reference at the start of `s` (after its `&`) and the
/// bytes it takes, `;` included.
fn entity(s: &str) -> Option<(char, usize)> {
    let semi = s.get(..s.len().min(12))?.find(';')?;
    let name = s.get(..semi)?;
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                name.strip_prefix('#')?.parse::<u32>().ok()?
            };
            char::from_u32(code).filter(|&c| c != '\0')?
        }
    };
    Some((c, semi + 1))
}

/// Escapes text or an attribute value for output: `& < > " '` become entities and
/// control characters XML 1.0 cannot carry are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:GetSpecificPortMappingEntry xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\"><NewRemoteHost></NewRemoteHost><NewExternalPort>8080</NewExternalPort><NewProtocol>TCP</NewProtocol></u:GetSpecificPortMappingEntry></s:Body></s:Envelope>\r\n";

    #[test]
    fn an_envelope_reads_as_local_names_with_parents() {
        let d = parse(ENVELOPE.as_bytes()).unwrap();
        let names: Vec<&str> = d.elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Envelope",
                "Body",
                "GetSpecificPortMappingEntry",
                "NewRemoteHost",
                "NewExternalPort",
                "NewProtocol"
            ]
        );
        let body = d.child(0, "Body").unwrap();
        let action = d.children(body).next().unwrap();
        let port = d.child(action, "NewExternalPort").unwrap();
        assert_eq!(d.elements[port].text, "8080");
        assert_eq!(
            d.elements[d.child(action, "NewRemoteHost").unwrap()].text,
            ""
        );
    }

    #[test]
    fn entities_cdata_comments_and_self_closing_tags() {
        let d = parse(b"<a x='1>2'><!-- c --><b>&lt;x&#65;&#x42;&amp;&quot;&apos;&gt;</b><c/><d><![CDATA[<raw>&amp;]]></d></a>").unwrap();
        assert_eq!(d.elements[1].text, "<xAB&\"'>");
        assert_eq!(d.elements[2].name, "c");
        assert_eq!(d.elements[3].text, "<raw>&amp;");
        // Bare ampersands (miniupnpc does not escape) and unknown entities stay as they are.
        let d = parse(b"<a>Tom & Jerry &bogus; &#0; &#xd800; &</a>").unwrap();
        assert_eq!(d.elements[0].text, "Tom & Jerry &bogus; &#0; &#xd800; &");
    }

    #[test]
    fn caps_and_malformed_input_are_refused() {
        assert_eq!(parse(&vec![b' '; MAX_BODY + 1]), Err(XmlError::TooLarge));
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        assert_eq!(parse(many.as_bytes()), Err(XmlError::TooManyElements));
        let long = format!("<a>{}</a>", "x".repeat(MAX_TEXT + 1));
        assert_eq!(parse(long.as_bytes()), Err(XmlError::TextTooLong));
        let ent = format!("<a>{}</a>", "&amp;".repeat(MAX_TEXT / 5 * 5));
        assert!(parse(ent.as_bytes()).is_ok());
        assert_eq!(
            parse(b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>"),
            Err(XmlError::Doctype)
        );
        for bad in [
            &b"<a><b></a></b>"[..],
            b"<a>",
            b"<a></a><b></b>",
            b"text<a/>",
            b"",
            b"<>",
            b"<a x='1></a>",
            b"<a><![CDATA[x</a>",
            b"\xff",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn escape_makes_text_safe_in_elements_and_attributes() {
        assert_eq!(escape("a<b>&\"c'\u{1}\n"), "a&lt;b&gt;&amp;&quot;c&apos;\n");
        assert_eq!(unescape(&escape("x]]>&<y")).as_deref(), Some("x]]>&<y"));
    }
}
