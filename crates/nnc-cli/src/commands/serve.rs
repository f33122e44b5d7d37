//! `nnc serve DIR`: serves a wgsl bundle to a web browser with nnc's WebGPU runtime
//! (`web/nnc-webgpu.js`) and its example page, which loads the bundle, runs it on the inputs of
//! `--data DIR` or `--input NAME=FILE` (pseudo-random ones otherwise), and shows the outputs,
//! their difference from the expected ones (`output_N.pb` in the data folder) and the time per
//! run. The page and runtime are built into the binary, so the command works from anywhere.
//!
//! Paths: `/` the page; `/nnc-webgpu.js`, `/schema.js`, `/example.js`, `/manifest.schema.js`
//! the runtime; `/bundle/...` the bundle's files (only those its manifest lists); `/data/index.json`
//! which inputs and expected outputs there are, `/data/input_N.bin` and `/data/output_N.bin` their
//! bytes as the host holds them (as in `weights.bin`).

use crate::inputs::{read_given, InputSources};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use nnc_ir::{DType, TensorType};
use nnc_kernel::bundle::{Manifest, MANIFEST_FILE, WEIGHTS_FILE};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A bundle folder written by `nnc compile MODEL --target wgsl --device webgpu -o DIR`.
    pub bundle: PathBuf,

    /// Inputs (and expected outputs) from the ONNX test data in DIR: input_N.pb is the N-th
    /// input, output_N.pb the N-th output's expected value.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// An input from a .npy or .pb file (repeatable).
    #[arg(long = "input", value_name = "NAME=FILE", value_parser = crate::commands::run::parse_input)]
    pub inputs: Vec<(String, PathBuf)>,

    /// The address to listen on (127.0.0.1: this machine only; browsers allow WebGPU on
    /// localhost without https).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// The port (0: any free one, printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

/// The runtime and the example page, as built into the binary.
const WEB_FILES: [(&str, &[u8], &str); 5] = [
    ("/index.html", include_bytes!("../../../../web/index.html"), "text/html; charset=utf-8"),
    ("/example.js", include_bytes!("../../../../web/example.js"), "text/javascript"),
    ("/nnc-webgpu.js", include_bytes!("../../../../web/nnc-webgpu.js"), "text/javascript"),
    ("/schema.js", include_bytes!("../../../../web/schema.js"), "text/javascript"),
    ("/manifest.schema.js", include_bytes!("../../../../web/manifest.schema.js"), "text/javascript"),
];

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let files = Arc::new(site(&args)?);
    let address = format!("{}:{}", args.host, args.port);
    let listener = TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "serving {} at {url} (Ctrl-C to stop)", args.bundle.display())?;
    stdout.flush()?;
    drop(stdout);
    // A fixed set of threads answers; connections beyond what they keep up with wait in a
    // bounded queue (then in the kernel's backlog), so no number of clients can make the
    // server spawn without limit.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<TcpStream>(SERVER_QUEUE);
    let receiver = Arc::new(std::sync::Mutex::new(receiver));
    for _ in 0..SERVER_THREADS {
        let (files, receiver) = (files.clone(), receiver.clone());
        std::thread::spawn(move || loop {
            let next = receiver.lock().map(|r| r.recv());
            match next {
                Ok(Ok(connection)) => answer(connection, &files),
                _ => return,
            }
        });
    }
    for connection in listener.incoming() {
        // A connection that fails before it is accepted is the client's business.
        let Ok(connection) = connection else { continue };
        sender.send(connection).context("the server's threads stopped")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Threads answering requests, and connections waiting for one.
const SERVER_THREADS: usize = 8;
const SERVER_QUEUE: usize = 64;

/// The longest request head read (a browser's GET is well under 8 KiB).
const MAX_REQUEST_HEAD: usize = 64 << 10;

/// Reads one request from `connection` and answers it from `files` (404 for any other path, 405
/// for anything but GET and HEAD), then closes the connection: one request per connection keeps
/// the server to a few lines, and a page's dozens of files cost a few local connections.
fn answer(mut connection: TcpStream, files: &BTreeMap<String, (Vec<u8>, &'static str)>) {
    let _ = connection.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
        match connection.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or("/"));
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let path = if path == "/" { "/index.html" } else { path };
    let (status, body, mime): (&str, &[u8], &str) = match (method, files.get(path)) {
        ("GET" | "HEAD", Some((bytes, mime))) => ("200 OK", bytes, mime),
        ("GET" | "HEAD", None) => ("404 Not Found", b"not found", "text/plain"),
        _ => ("405 Method Not Allowed", b"only GET and HEAD", "text/plain"),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = connection.write_all(header.as_bytes());
    if method != "HEAD" {
        let _ = connection.write_all(body);
    }
    let _ = connection.flush();
}

/// Every path the server answers, with its bytes and MIME type.
fn site(args: &ServeArgs) -> anyhow::Result<BTreeMap<String, (Vec<u8>, &'static str)>> {
    let dir = &args.bundle;
    let bundle = Manifest::read(dir).map_err(|e| anyhow!(e))?;
    let manifest = &bundle.manifest;
    if manifest.target != "wgsl" {
        bail!(
            "{}: a bundle for the {} target; a browser runs wgsl bundles (nnc compile MODEL --target wgsl --device \
             webgpu -o DIR)",
            dir.display(),
            manifest.target
        );
    }
    let mut site: BTreeMap<String, (Vec<u8>, &'static str)> =
        WEB_FILES.iter().map(|&(path, bytes, mime)| (path.to_string(), (bytes.to_vec(), mime))).collect();
    let raw_manifest = std::fs::read(dir.join(MANIFEST_FILE))
        .with_context(|| format!("cannot read {}", dir.join(MANIFEST_FILE).display()))?;
    site.insert(format!("/bundle/{MANIFEST_FILE}"), (raw_manifest, "application/json"));
    site.insert(format!("/bundle/{WEIGHTS_FILE}"), (bundle.weights.to_vec(), "application/octet-stream"));
    for (path, bytes) in &bundle.files {
        site.insert(format!("/bundle/{path}"), (bytes.clone(), "text/plain; charset=utf-8"));
    }

    let interface = manifest
        .inputs
        .iter()
        .map(|i| {
            let dtype = DType::from_name(&i.dtype).ok_or_else(|| anyhow!("input `{}`: dtype {}", i.name, i.dtype))?;
            Ok((i.name.clone(), TensorType::new(dtype, i.shape.iter().map(|&d| d.max(0) as usize))))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sources = InputSources { files: args.inputs.clone(), data: args.data.clone(), random_seed: None, bundle: true };
    let inputs = read_given(&interface, &sources)?;
    let expected = match &args.data {
        Some(data) => crate::commands::run::read_expected(data, manifest.outputs.len())?,
        None => Vec::new(),
    };
    for ((port, e), k) in manifest.outputs.iter().zip(&expected).zip(0..) {
        if let Some(t) = e.as_ref().filter(|t| t.dtype().name() != port.dtype || !same_shape(t.shape(), &port.shape)) {
            bail!(
                "output_{k}.pb holds {}{:?}, but output `{}` is {}{:?}",
                t.dtype().name(),
                t.shape(),
                port.name,
                port.dtype,
                port.shape
            );
        }
    }
    let present = |list: &[Option<nnc_ir::TensorData>]| -> Vec<usize> {
        list.iter().enumerate().filter(|(_, t)| t.is_some()).map(|(i, _)| i).collect()
    };
    let index = serde_json::json!({ "inputs": present(&inputs), "expected": present(&expected) });
    site.insert("/data/index.json".into(), (index.to_string().into_bytes(), "application/json"));
    for (kind, list) in [("input", &inputs), ("output", &expected)] {
        for (i, t) in list.iter().enumerate() {
            if let Some(t) = t {
                site.insert(format!("/data/{kind}_{i}.bin"), (t.bytes().to_vec(), "application/octet-stream"));
            }
        }
    }
    Ok(site)
}

fn same_shape(a: &[usize], b: &[i64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x as i64 == y)
}
