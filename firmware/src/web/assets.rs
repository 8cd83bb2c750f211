//! The UI's static files: gzipped from `webui/` at build time (`build.rs`), embedded with
//! rust-embed, served as stored to clients that accept gzip (every browser) and inflated
//! once for those that do not; with their type, an ETag and `no-cache` so a firmware
//! upgrade is picked up at once while unchanged files cost a 304.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rust_embed::RustEmbed;

use super::http::Response;

#[derive(RustEmbed)]
#[folder = "$OUT_DIR/webui/"]
struct Files;

/// One asset as served.
#[derive(Debug)]
struct Prepared {
    mime: &'static str,
    etag: String,
    /// Inflated on the first request without gzip.
    plain: OnceLock<Vec<u8>>,
    /// As embedded.
    gzip: &'static [u8],
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
    let file = Files::get(&format!("{name}.gz"))?;
    let gzip: &'static [u8] = match file.data {
        std::borrow::Cow::Borrowed(b) => b,
        std::borrow::Cow::Owned(v) => Box::leak(v.into_boxed_slice()),
    };
    let prepared: &'static Prepared = Box::leak(Box::new(Prepared {
        mime: mime(name),
        etag: format!(
            "\"{}\"",
            super::auth::hex(&file.metadata.sha256_hash()[..8])
        ),
        gzip,
        plain: OnceLock::new(),
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
        if accepts_gzip {
            Response::bytes(200, p.mime, p.gzip.to_vec()).header("Content-Encoding", "gzip")
        } else {
            let plain = p.plain.get_or_init(|| gunzip(p.gzip).unwrap_or_default());
            Response::bytes(200, p.mime, plain.clone())
        }
    };
    r = r
        .header("ETag", &p.etag)
        .header("Cache-Control", "no-cache")
        .header("Vary", "Accept-Encoding");
    Some(r)
}

/// The data of a gzip member as `build.rs` writes it (fixed 10-byte header, raw deflate,
/// CRC-32 and length); None if it is not one.
fn gunzip(z: &[u8]) -> Option<Vec<u8>> {
    let body = z.get(10..z.len().checked_sub(8)?)?;
    miniz_oxide::inflate::decompress_to_vec(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    mod squeeze {
        include!(concat!(env!("CARGO_MANIFEST_DIR"), "/build/squeeze.rs"));
    }

    #[test]
    fn every_ui_file_is_embedded_and_inflates_to_its_source() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../webui");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut want = std::fs::read(&path).unwrap();
            if name.ends_with(".js") || name.ends_with(".css") {
                want = squeeze::squeeze(&String::from_utf8(want).unwrap());
            }
            let plain = serve(&format!("/{name}"), false, None).expect("embedded");
            assert_eq!(plain.body, want, "{name} without gzip");
            assert!(plain.get("Content-Encoding").is_none());
            let z = serve(&format!("/{name}"), true, None).unwrap();
            assert_eq!(z.get("Content-Encoding"), Some("gzip"));
            assert_eq!(gunzip(&z.body).unwrap(), want, "{name} gzipped");
            n += 1;
        }
        assert!(n >= 5, "{n} files");
        assert_eq!(gunzip(b"not gzip"), None);
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
