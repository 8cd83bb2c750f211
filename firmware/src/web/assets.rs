//! The UI's static files, embedded from `webui/` with rust-embed, gzipped once on first
//! use (when that saves bytes) and served with their type, an ETag and `no-cache` so a
//! firmware upgrade is picked up at once while unchanged files cost a 304.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rust_embed::RustEmbed;

use super::http::Response;

#[derive(RustEmbed)]
#[folder = "../webui/"]
struct Files;

/// One asset as served.
#[derive(Debug)]
struct Prepared {
    mime: &'static str,
    etag: String,
    plain: Vec<u8>,
    /// Only when it is smaller than `plain`.
    gzip: Option<Vec<u8>>,
}

fn cache() -> &'static Mutex<HashMap<String, &'static Prepared>> {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static Prepared>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// The asset behind a URL path (`/` is `index.html`), prepared once and kept for the life
/// of the process (the set of files is fixed at build time, so this is bounded).
fn prepared(path: &str) -> Option<&'static Prepared> {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    if let Some(p) = cache().lock().ok()?.get(name) {
        return Some(p);
    }
    let file = Files::get(name)?;
    let plain = file.data.into_owned();
    let z = gzip(&plain);
    let prepared: &'static Prepared = Box::leak(Box::new(Prepared {
        mime: mime(name),
        etag: format!(
            "\"{}\"",
            super::auth::hex(&file.metadata.sha256_hash()[..8])
        ),
        gzip: (z.len() + 64 < plain.len()).then_some(z),
        plain,
    }));
    cache().lock().ok()?.insert(name.to_string(), prepared);
    Some(prepared)
}

/// Answers a GET for an asset, or None when there is no such file.
pub fn serve(path: &str, accepts_gzip: bool, if_none_match: Option<&str>) -> Option<Response> {
    let p = prepared(path)?;
    let mut r = if if_none_match == Some(p.etag.as_str()) {
        Response::empty(304)
    } else {
        match (&p.gzip, accepts_gzip) {
            (Some(z), true) => {
                Response::bytes(200, p.mime, z.clone()).header("Content-Encoding", "gzip")
            }
            _ => Response::bytes(200, p.mime, p.plain.clone()),
        }
    };
    r = r
        .header("ETag", &p.etag)
        .header("Cache-Control", "no-cache")
        .header("Vary", "Accept-Encoding");
    Some(r)
}

/// A gzip member (RFC 1952) around a raw deflate stream.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 9));
    out.extend(crc32(data).to_le_bytes());
    // ISIZE: the length modulo 2^32 (written so it also compiles for 32-bit targets).
    let len_mod = u64::try_from(data.len()).unwrap_or(u64::MAX) & 0xFFFF_FFFF;
    out.extend(u32::try_from(len_mod).unwrap_or(0).to_le_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_gzip_roundtrip() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let data = b"hello hello hello hello hello hello hello".repeat(20);
        let z = gzip(&data);
        assert!(z.len() < data.len());
        let back = miniz_oxide::inflate::decompress_to_vec(&z[10..z.len() - 8]).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn index_is_embedded_with_type_and_etag() {
        let r = serve("/", true, None).expect("index.html embedded");
        assert_eq!(r.status, 200);
        assert!(r.get("Content-Type").unwrap().starts_with("text/html"));
        let etag = r.get("ETag").unwrap().to_string();
        assert_eq!(serve("/", true, Some(&etag)).unwrap().status, 304);
        assert!(serve("/nope.txt", true, None).is_none());
    }
}
