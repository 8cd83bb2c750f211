//! Gzips the web UI's files (`../webui/`) at build time into `$OUT_DIR/webui/`, which
//! rust-embed embeds. The router then serves the stored gzip as it is (every browser
//! accepts it) and inflates only for a client that does not: the binary carries neither
//! the uncompressed assets nor a compressor (about 50 KB less on mipsel, docs/decisions.md).
//! Scripts and style sheets lose their indentation and whole-line `//` comments first
//! (2.5 KB less gzipped): the UI's scripts have no multi-line strings or template
//! literals, so no line's meaning changes, and keeping the line breaks keeps automatic
//! semicolon insertion as it was.

use std::path::Path;

#[path = "build/squeeze.rs"]
mod squeeze;
use squeeze::squeeze;

fn main() {
    let src = Path::new("../webui");
    println!("cargo:rerun-if-changed=../webui");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("webui");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("creating $OUT_DIR/webui");
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .expect("reading ../webui")
        .map(|e| e.expect("listing ../webui").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    for path in entries {
        let mut data = std::fs::read(&path).expect("reading a web UI file");
        let name = path.file_name().expect("a file name").to_string_lossy();
        if name.ends_with(".js") || name.ends_with(".css") {
            data = squeeze(&String::from_utf8(data).expect("UTF-8 web UI text"));
        }
        std::fs::write(out.join(format!("{name}.gz")), gzip(&data)).expect("writing a .gz");
    }
}

/// A gzip member (RFC 1952): fixed header (no name, no mtime, so builds are
/// reproducible), raw deflate, CRC-32 and length.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 10));
    out.extend(crc32(data).to_le_bytes());
    out.extend(
        u32::try_from(data.len())
            .expect("a web UI file under 4 GiB")
            .to_le_bytes(),
    );
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
