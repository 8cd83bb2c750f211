//! A minimal W3C WebDriver client for the browser tests: headless Chromium (Debian
//! `chromium` + `chromium-driver`) started in the LAN client's namespace of a
//! [`Topology`], driven over HTTP, with screenshots in `out/browser/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::netns;
use crate::topology::Topology;

/// The port chromedriver listens on (on 127.0.0.1 of the LAN client's namespace, so
/// tests in different topologies do not collide).
pub const DRIVER_PORT: u16 = 9515;

/// Where screenshots go: `out/browser/` at the top of the repository.
pub fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A minimal W3C WebDriver client.
pub struct Driver {
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Driver {
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    pub fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.agent.request(method, &url);
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => Ok(r.into_json::<Value>().unwrap()["value"].clone()),
            Err(ureq::Error::Status(code, r)) => {
                Err(format!("{code} {}", r.into_string().unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs an action on the element `css` matches, finding it again if the page
    /// re-rendered it between the lookup and the action (a "stale element reference").
    pub fn on_element(&self, css: &str, act: impl Fn(&str) -> Result<Value, String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let id = self.el(css);
            match act(&id) {
                Ok(_) => return,
                Err(e) if is_stale(&e) && Instant::now() < deadline => {}
                Err(e) => panic!("WebDriver action on {css}: {e}"),
            }
        }
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until `css` matches an element whose text satisfies `ok`; returns it.
    pub fn wait(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        loop {
            for id in self.find_all(css) {
                // The page may re-render between the lookup and the read: look again.
                let Some(text) = self.try_text(&id) else {
                    continue;
                };
                if ok(&text) {
                    return (id, text);
                }
                last = text;
            }
            if Instant::now() > deadline {
                self.screenshot("failure");
                panic!("timed out waiting for {css} ({what}); last text: {last:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn el(&self, css: &str) -> String {
        self.wait(css, "present", |_| true).0
    }

    /// The element's text, or None if it went stale.
    pub fn try_text(&self, id: &str) -> Option<String> {
        match self.try_call("GET", &format!("/element/{id}/text"), None) {
            Ok(v) => Some(v.as_str().unwrap_or_default().to_owned()),
            Err(e) if is_stale(&e) => None,
            Err(e) => panic!("WebDriver GET /element/{id}/text: {e}"),
        }
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, |id| {
            self.try_call("POST", &format!("/element/{id}/clear"), Some(json!({})))?;
            self.try_call(
                "POST",
                &format!("/element/{id}/value"),
                Some(json!({ "text": text })),
            )
        });
    }

    pub fn click(&self, css: &str) {
        self.on_element(css, |id| {
            self.try_call("POST", &format!("/element/{id}/click"), Some(json!({})))
        });
    }

    pub fn gone(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.find_all(css).is_empty() {
            assert!(Instant::now() < deadline, "{css} still present");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Scrolls the first element `css` matches to the middle of the window (so that a
    /// screenshot shows it).
    pub fn scroll_to(&self, css: &str) {
        self.el(css);
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
                "args": [css],
            })),
        );
    }

    pub fn screenshot(&self, name: &str) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64(b64.as_str().unwrap_or_default());
        let path = out_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .fold(0u32, |acc, &c| (acc << 6) | u32::from(val(c)))
            << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// Panics unless `program` is on the PATH (naming the Debian packages to install).
pub fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(found, "{program} not found: install the Debian packages chromium and chromium-driver (make deps does)");
}

/// Runs `body` with a fresh headless Chromium whose chromedriver (and the browser) live
/// in the LAN client's namespace; the driver is stopped on every path. On failure the
/// driver's log is printed and the panic returned.
pub fn with_browser(t: &Topology, body: impl FnOnce(&Driver) + Send) -> std::thread::Result<()> {
    let profile = t.path("chromium-profile");
    let driver_log = t.path("chromedriver.log");
    let mut driver = netns::command(
        &t.lan_client,
        "chromedriver",
        &[&format!("--port={DRIVER_PORT}")],
    );
    driver
        .stdout(std::fs::File::create(&driver_log).unwrap())
        .stderr(Stdio::null());
    let mut driver = driver.spawn().expect("start chromedriver");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        netns::run_in(&t.lan_client, || {
            let d = session(&profile);
            body(&d);
            d.call("DELETE", "", None);
        })
    }));
    let _ = driver.kill();
    let _ = driver.wait();
    if result.is_err() {
        eprintln!(
            "{}",
            std::fs::read_to_string(&driver_log).unwrap_or_default()
        );
    }
    result
}

/// A new WebDriver session with headless Chromium and a fresh profile.
pub fn session(profile: &Path) -> Driver {
    let base = format!("http://127.0.0.1:{DRIVER_PORT}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let ready = crate::poll::until_true(Duration::from_secs(10), || {
        agent.get(&format!("{base}/status")).call().is_ok()
    });
    assert!(ready, "chromedriver did not start");
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-proxy-server",
                "--disable-dev-shm-usage", "--window-size=1100,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }}});
    let resp: Value = agent
        .post(&format!("{base}/session"))
        .send_json(caps)
        .unwrap_or_else(|e| panic!("new WebDriver session: {e}"))
        .into_json()
        .unwrap();
    let session = resp["value"]["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_owned();
    Driver {
        base,
        session,
        agent,
    }
}

/// Whether a WebDriver error means the element left the document between its lookup and
/// the call. ChromeDriver says "stale element reference" when the page re-rendered it, and
/// "Node with given id does not belong to the document" when the document itself was
/// replaced (a navigation, e.g. the UI moving to its new port) in that window.
fn is_stale(error: &str) -> bool {
    error.contains("stale element") || error.contains("does not belong to the document")
}
