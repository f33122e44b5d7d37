//! A headless Chromium with WebGPU on SwiftShader (its software Vulkan), driven through
//! chromedriver's WebDriver protocol (W3C: plain JSON over HTTP), and the pieces the tests of
//! nnc's WebGPU runtime share: where Chromium, chromedriver, Node and the runtime are, and the
//! environment in which Node's WebGPU (Dawn) finds SwiftShader.
//!
//! Debian's `chromium` package ships SwiftShader's Vulkan driver beside the browser
//! (`/usr/lib/chromium/libvk_swiftshader.so`); Chromium uses it for WebGPU with
//! `--use-webgpu-adapter=swiftshader`, and Dawn under Node through `VK_ICD_FILENAMES` (Mesa's
//! lavapipe lacks a Vulkan feature Dawn requires).

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The folder of the browser's own files (SwiftShader's driver among them).
const CHROMIUM_DIR: &str = "/usr/lib/chromium";

/// The first of `candidates` that is a file, or the first name found on `PATH`.
fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.iter().find_map(|c| {
        let direct = PathBuf::from(c);
        if direct.is_absolute() {
            return direct.is_file().then_some(direct);
        }
        std::env::split_paths(&path).map(|dir| dir.join(c)).find(|p| p.is_file())
    })
}

/// Chromium and chromedriver (`$NNC_CHROMIUM`, `$NNC_CHROMEDRIVER`, else on `PATH`), or why
/// they are missing.
pub fn chromium() -> Result<(PathBuf, PathBuf), String> {
    let browser = find("NNC_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
    let driver = find("NNC_CHROMEDRIVER", &["chromedriver", "/usr/lib/chromium/chromedriver"]);
    match (browser, driver) {
        (Some(b), Some(d)) => Ok((b, d)),
        _ => Err("Chromium or chromedriver not found (scripts/setup.sh installs Debian's chromium and \
                  chromium-driver)"
            .into()),
    }
}

/// SwiftShader's Vulkan driver manifest from the Chromium package, or why it is missing.
pub fn swiftshader_icd() -> Result<PathBuf, String> {
    let icd = std::env::var_os("NNC_SWIFTSHADER_ICD")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(CHROMIUM_DIR).join("vk_swiftshader_icd.json"));
    if icd.is_file() {
        Ok(icd)
    } else {
        Err(format!("SwiftShader's Vulkan driver not found at {} (it comes with Debian's chromium)", icd.display()))
    }
}

/// The runtime's folder in the repository (`web/`).
pub fn web_dir() -> PathBuf {
    crate::skip::workspace_dir().join("web")
}

/// `node`, with the `webgpu` package installed in `web/node_modules` (`npm ci --prefix web`),
/// or why not.
pub fn node_with_webgpu() -> Result<PathBuf, String> {
    let node = find("NNC_NODE", &["node", "nodejs"]).ok_or("node not found (scripts/setup.sh installs nodejs)")?;
    let package = web_dir().join("node_modules/webgpu/package.json");
    if !package.is_file() {
        return Err(format!(
            "the npm package `webgpu` is not installed at {} (npm ci --prefix web)",
            package.display()
        ));
    }
    Ok(node)
}

/// A command running `node` with Dawn pointed at SwiftShader (and the runtime folder for
/// XDG_RUNTIME_DIR, which Dawn's Vulkan loader wants set).
pub fn node_command(node: &Path) -> Result<Command, String> {
    let icd = swiftshader_icd()?;
    let mut command = Command::new(node);
    command.current_dir(web_dir()).env("VK_ICD_FILENAMES", icd).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    Ok(command)
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free local port")
}

/// One chromedriver and one headless Chromium session, ended on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with WebGPU on SwiftShader.
    pub fn start() -> Result<Browser, String> {
        let (binary, driver_path) = chromium()?;
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", driver_path.display()))?;
        let mut browser = Browser { driver, base: format!("http://127.0.0.1:{port}"), session: String::new() };
        let ready = Instant::now();
        while browser.get("/status").is_err() {
            if ready.elapsed() > Duration::from_secs(20) {
                return Err("chromedriver did not answer within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--enable-unsafe-webgpu",
            "--enable-features=Vulkan",
            "--use-webgpu-adapter=swiftshader",
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": { "binary": binary, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let reply = browser.post("/session", &capabilities)?;
        browser.session = reply["sessionId"].as_str().ok_or(format!("no session in {reply}"))?.to_string();
        Ok(browser)
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        let response = minreq::get(format!("{}{path}", self.base)).with_timeout(60).send();
        value_of(response)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let request = minreq::post(format!("{}{path}", self.base)).with_timeout(600);
        value_of(request.with_json(body).map_err(|e| e.to_string())?.send())
    }

    /// Opens `url` in the session's window.
    pub fn navigate(&self, url: &str) -> Result<(), String> {
        self.post(&format!("/session/{}/url", self.session), &json!({ "url": url })).map(|_| ())
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn execute(&self, script: &str) -> Result<Value, String> {
        self.post(&format!("/session/{}/execute/sync", self.session), &json!({ "script": script, "args": [] }))
    }

    /// Evaluates `expression` every 200 ms until it is not null; errors after `timeout`.
    pub fn wait_for(&self, expression: &str, timeout: Duration) -> Result<Value, String> {
        let start = Instant::now();
        loop {
            let value = self.execute(&format!("return {expression} ?? null;"))?;
            if !value.is_null() {
                return Ok(value);
            }
            if start.elapsed() > timeout {
                let text = self.execute("return document.body.innerText;").unwrap_or_default();
                return Err(format!(
                    "`{expression}` still null after {timeout:?}; the page says: {text}; its console: {}",
                    self.console()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Browser {
    /// The page's console messages so far (chromedriver's log of the browser), for errors.
    pub fn console(&self) -> String {
        let log = self.post(&format!("/session/{}/se/log", self.session), &json!({ "type": "browser" }));
        match log {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(other) => other.to_string(),
            Err(e) => format!("(unavailable: {e})"),
        }
    }
}

/// The `value` of a WebDriver reply, or its error.
fn value_of(response: Result<minreq::Response, minreq::Error>) -> Result<Value, String> {
    let response = response.map_err(|e| format!("WebDriver: {e}"))?;
    let body: Value = response.json().map_err(|e| format!("WebDriver reply: {e}"))?;
    if response.status_code != 200 {
        return Err(format!("WebDriver: HTTP {}: {}", response.status_code, body["value"]["message"]));
    }
    Ok(body["value"].clone())
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = minreq::delete(format!("{}/session/{}", self.base, self.session)).with_timeout(20).send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
