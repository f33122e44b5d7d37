//! The compiled-code cache: each kernel's machine code (LLVM's image of it, relocations
//! unapplied) kept in the user's cache directory, so a model compiled once compiles again
//! without LLVM.
//!
//! An entry is content-addressed: its file name is a 128-bit hash of everything the code
//! depends on ([`KeyParts`]): the kernel's Kernel IR (its buffers' layout, launch, schedule and
//! body with variables renumbered; not its or its buffers' names, so equal kernels share an
//! entry), the host CPU and the features the code is built for, the LLVM version, and a
//! fingerprint of the code generator's own source (`build.rs`: this crate's and Kernel IR's
//! sources, and nnc's version), so code from another build of the generator is never used.
//!
//! Each file carries a checksum of its contents; a file that is short, corrupt or of another
//! format is a miss (and is overwritten), never an error. Files are written to a temporary
//! name and renamed, so concurrent compiles see whole entries or none. The folder is bounded:
//! after a compile that added entries, the least recently used ones (by modification time,
//! which a hit refreshes) are removed until it holds at most [`CodeCache::max_bytes`].
//!
//! `NNC_CODE_CACHE` chooses the folder (`off` turns the cache off); the default is
//! `code/` in nnc's folder of the user's cache directory (`~/.cache/nnc/code` on Linux).
//! `NNC_CODE_CACHE_MAX_MB` bounds it (default 512).

use crate::link::Image;
use nnc_kernel::bundle::Relocation;
use nnc_kernel::expr::{Expr, Var};
use nnc_kernel::kernel::{Kernel, Stmt};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

/// The fingerprint of the code generator's sources (see `build.rs`).
const GENERATOR: &str = env!("NNC_CPU_CODEGEN_FINGERPRINT");

/// The first bytes of every entry (the format's version is its last byte).
const MAGIC: &[u8; 8] = b"nnccode1";

/// The default bound of the folder, in MiB.
const DEFAULT_MAX_MB: u64 = 512;

/// A folder of compiled kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeCache {
    pub dir: PathBuf,
    /// The most the folder holds after a compile has added to it.
    pub max_bytes: u64,
}

/// One kernel's code as the cache keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedKernel {
    /// The kernel's code and what is patched at load; its entry point is at `entry`.
    pub image: Image,
    pub entry: u64,
    /// Vector loops emitted as vector code (for the compile report).
    pub vectorized_loops: usize,
}

/// What a kernel's code depends on besides the kernel.
#[derive(Clone, Copy, Debug)]
pub struct KeyParts<'a> {
    /// The host CPU's name and the features the code is built for (LLVM's names).
    pub cpu: &'a str,
    pub features: &'a str,
    /// The code generator and its version (`llvm 19.1.7`).
    pub generator: &'a str,
}

impl CodeCache {
    /// The user's cache, as `NNC_CODE_CACHE` and `NNC_CODE_CACHE_MAX_MB` say; `None` where it
    /// is turned off or there is no cache directory.
    pub fn from_env() -> Option<CodeCache> {
        let dir = match std::env::var_os("NNC_CODE_CACHE").filter(|v| !v.is_empty()) {
            Some(v) if v == "off" || v == "0" => return None,
            Some(v) => PathBuf::from(v),
            None => dirs::cache_dir()?.join("nnc").join("code"),
        };
        let max_mb = std::env::var("NNC_CODE_CACHE_MAX_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MAX_MB);
        Some(CodeCache { dir, max_bytes: max_mb.saturating_mul(1 << 20) })
    }

    /// The key of `kernel`'s code: a hex hash of everything the code depends on.
    pub fn key(kernel: &Kernel, parts: KeyParts) -> String {
        // The derived `Debug` form spells out every field (floats exactly). Names (the
        // kernel's, its buffers') only label messages, and variables are numbered by where
        // they first appear: equal kernels of different layers or models share an entry.
        let buffers: Vec<_> = kernel.buffers.iter().map(|b| (b.dtype, &b.shape, b.space, b.access)).collect();
        let body = Renumber::default().stmts(kernel.body.clone());
        let content = format!(
            "{GENERATOR}\n{}\n{}\n{}\n{buffers:?}\n{:?}\n{:?}\n{body:?}",
            parts.generator, parts.cpu, parts.features, kernel.launch, kernel.schedule
        );
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(content.as_bytes()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.bin"))
    }

    /// The entry for `key`, if the folder has a whole one; a hit counts as a use.
    pub fn get(&self, key: &str) -> Option<CachedKernel> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        let kernel = decode(&bytes)?;
        // Refreshing the time keeps entries in use from being evicted; failing to is harmless.
        let _ = std::fs::File::options().append(true).open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        Some(kernel)
    }

    /// Stores `kernel` under `key`; an entry that cannot be written is skipped (the cache only
    /// saves time).
    pub fn put(&self, key: &str, kernel: &CachedKernel) {
        let _ = self.try_put(key, kernel);
    }

    fn try_put(&self, key: &str, kernel: &CachedKernel) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temporary = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&encode(kernel))?;
        drop(file);
        std::fs::rename(&temporary, self.path(key)).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }

    /// Removes the least recently used entries until the folder holds at most
    /// [`CodeCache::max_bytes`].
    pub fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// Variables numbered 0, 1, ... in the order a walk of the body first meets them (the
/// lowering numbers them across a whole model, so equal kernels get different numbers).
#[derive(Default)]
struct Renumber(HashMap<u32, u32>);

impl Renumber {
    fn var(&mut self, v: Var) -> Var {
        let next = self.0.len() as u32;
        Var { id: *self.0.entry(v.id).or_insert(next), ..v }
    }

    fn expr(&mut self, e: Expr) -> Expr {
        e.rewrite(&mut |e| match e {
            Expr::Var(v) => Expr::Var(self.var(v)),
            Expr::Reduce(mut r) => {
                r.vars = std::mem::take(&mut r.vars).into_iter().map(|(v, n)| (self.var(v), n)).collect();
                Expr::Reduce(r)
            }
            e => e,
        })
    }

    fn stmts(&mut self, body: Vec<Stmt>) -> Vec<Stmt> {
        body.into_iter()
            .map(|s| match s {
                Stmt::For { var, extent, kind, body } => {
                    let extent = self.expr(extent);
                    Stmt::For { var: self.var(var), extent, kind, body: self.stmts(body) }
                }
                Stmt::Let { var, value } => {
                    let value = self.expr(value);
                    Stmt::Let { var: self.var(var), value }
                }
                Stmt::Local { var, init } => {
                    let init = self.expr(init);
                    Stmt::Local { var: self.var(var), init }
                }
                Stmt::Assign { var, value } => {
                    let value = self.expr(value);
                    Stmt::Assign { var: self.var(var), value }
                }
                Stmt::Store { buf, index, value } => {
                    let index = index.into_iter().map(|i| self.expr(i)).collect();
                    Stmt::Store { buf, index, value: self.expr(value) }
                }
                Stmt::If { cond, then, els } => {
                    let cond = self.expr(cond);
                    let then = self.stmts(then);
                    Stmt::If { cond, then, els: self.stmts(els) }
                }
                Stmt::Barrier => Stmt::Barrier,
            })
            .collect()
    }
}

/// The entry's bytes: [`MAGIC`], a checksum of the rest, then the fields.
fn encode(kernel: &CachedKernel) -> Vec<u8> {
    let mut body = Vec::with_capacity(kernel.image.bytes.len() + 64);
    let u64_le = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
    u64_le(&mut body, kernel.entry);
    u64_le(&mut body, kernel.vectorized_loops as u64);
    u64_le(&mut body, kernel.image.bytes.len() as u64);
    body.extend_from_slice(&kernel.image.bytes);
    u64_le(&mut body, kernel.image.relocations.len() as u64);
    for r in &kernel.image.relocations {
        u64_le(&mut body, r.offset);
        u64_le(&mut body, r.addend as u64);
        u64_le(&mut body, r.symbol.len() as u64);
        body.extend_from_slice(r.symbol.as_bytes());
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The entry in `bytes`, or `None` if they are not a whole entry of this format.
fn decode(bytes: &[u8]) -> Option<CachedKernel> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (checksum, body) = rest.split_first_chunk::<8>()?;
    if xxhash_rust::xxh3::xxh3_64(body) != u64::from_le_bytes(*checksum) {
        return None;
    }
    let mut reader = Reader(body);
    let entry = reader.u64()?;
    let vectorized_loops = usize::try_from(reader.u64()?).ok()?;
    let len = reader.len()?;
    let code = reader.take(len)?.to_vec();
    let count = reader.len()?;
    let mut relocations = Vec::new();
    for _ in 0..count {
        let offset = reader.u64()?;
        let addend = reader.u64()? as i64;
        let len = reader.len()?;
        let symbol = String::from_utf8(reader.take(len)?.to_vec()).ok()?;
        relocations.push(Relocation { offset, symbol, addend });
    }
    let image = Image { bytes: code, relocations, symbols: Default::default() };
    (reader.0.is_empty() && entry < image.bytes.len() as u64).then_some(CachedKernel { image, entry, vectorized_loops })
}

/// Reads an entry's fields in order; every read checks the bytes are there.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length, which cannot exceed what is left.
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok().filter(|&n| n <= self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CachedKernel {
        let image = Image {
            bytes: (0..100u8).collect(),
            relocations: vec![
                Relocation { offset: 8, symbol: "nnc_sin".into(), addend: -4 },
                Relocation { offset: 16, symbol: crate::link::IMAGE_BASE.into(), addend: 40 },
            ],
            symbols: Default::default(),
        };
        CachedKernel { image, entry: 12, vectorized_loops: 3 }
    }

    fn cache(name: &str) -> CodeCache {
        let dir = std::env::temp_dir().join(format!("nnc-code-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        CodeCache { dir, max_bytes: 1 << 20 }
    }

    #[test]
    fn an_entry_reads_back_as_it_was_written() {
        let cache = cache("roundtrip");
        assert_eq!(cache.get("k"), None, "an empty folder is a miss");
        cache.put("k", &sample());
        assert_eq!(cache.get("k"), Some(sample()));
        let _ = std::fs::remove_dir_all(&cache.dir);
    }

    #[test]
    fn a_damaged_or_short_entry_is_a_miss() {
        let whole = encode(&sample());
        assert_eq!(decode(&whole), Some(sample()));
        for cut in [0, 7, 8, 16, 30, whole.len() - 1] {
            assert_eq!(decode(&whole[..cut]), None, "cut at {cut}");
        }
        let mut flipped = whole.clone();
        flipped[40] ^= 1;
        assert_eq!(decode(&flipped), None, "a flipped bit fails the checksum");
        let mut longer = whole.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None, "trailing bytes");
    }

    #[test]
    fn eviction_keeps_the_most_recently_used_within_the_bound() {
        let mut cache = cache("evict");
        let entry_len = encode(&sample()).len() as u64;
        for key in ["a", "b", "c"] {
            cache.put(key, &sample());
            // Distinct times, oldest first.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(cache.get("a").is_some(), "a hit makes `a` the most recently used");
        cache.max_bytes = 2 * entry_len;
        cache.evict();
        assert!(cache.get("b").is_none(), "the least recently used goes");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        let _ = std::fs::remove_dir_all(&cache.dir);
    }
}
