//! The tuning cache: one JSON line per tuned kernel, with every candidate measured, kept in the
//! user's cache directory (or a file given), read by every compile.
//!
//! A record is found by its kernel key: a hash of the kernel's computation
//! ([`nnc_lower::space::structural_key`]). It is used only where its device fingerprint
//! ([`nnc_kernel::Backend::fingerprint`]), schedule-space version and nnc version match the
//! compile's; a record for another device or version is skipped (and counted in one warning),
//! a line that is not a record is skipped with a warning naming it. Later lines win, so tuning
//! again appends rather than rewrites.

use nnc_kernel::kernel::Schedule;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// nnc's version, part of every record's validity.
pub const NNC_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One measured candidate of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub schedule: Schedule,
    /// Median of the timed samples, in milliseconds (absent where it was not timed).
    pub median_ms: Option<f64>,
    pub samples: u32,
    /// `best`, `ok`, `slower (stopped early)`, `wrong result: ...`, `failed: ...`.
    pub outcome: String,
}

/// What tuning found for one kernel on one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Hex hash of the kernel's structural key.
    pub key: String,
    /// A kernel of the model it was tuned in (for people reading the file).
    pub kernel: String,
    pub device: String,
    pub space_version: u32,
    pub nnc_version: String,
    pub default: Schedule,
    pub best: Schedule,
    pub candidates: Vec<Measurement>,
}

/// The hex key of a kernel's structural key text.
pub fn kernel_key(structural_key: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(structural_key.as_bytes()))
}

/// Where tuned schedules are read from and written to: `NNC_TUNING_CACHE` if set, else
/// `tuning.jsonl` in nnc's folder of the user's cache directory (`~/.cache/nnc` on Linux).
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NNC_TUNING_CACHE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    dirs::cache_dir().map(|d| d.join("nnc").join("tuning.jsonl"))
}

/// The usable records of a cache file for one device: kernel key → best schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TunedSchedules {
    /// The file they came from (for messages).
    pub path: PathBuf,
    by_key: HashMap<String, Schedule>,
    /// Why lines were skipped, one message per cause.
    pub warnings: Vec<String>,
}

impl TunedSchedules {
    /// Reads `path` (a missing file is an empty cache) and keeps the records for `device` under
    /// the current space and nnc versions.
    pub fn load(path: &Path, device: &str) -> TunedSchedules {
        let mut tuned = TunedSchedules { path: path.to_path_buf(), ..TunedSchedules::default() };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return tuned,
            Err(e) => {
                tuned
                    .warnings
                    .push(format!("{}: cannot read the tuning cache ({e}); no tuned schedules used", path.display()));
                return tuned;
            }
        };
        let (mut other_device, mut other_version) = (0, 0);
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let record: Record = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(e) => {
                    tuned.warnings.push(format!("{}:{}: not a tuning record ({e}); skipped", path.display(), n + 1));
                    continue;
                }
            };
            if record.device != device {
                other_device += 1;
            } else if record.space_version != nnc_lower::space::SPACE_VERSION || record.nnc_version != NNC_VERSION {
                other_version += 1;
            } else {
                tuned.by_key.insert(record.key, record.best);
            }
        }
        if other_device > 0 {
            tuned.warnings.push(format!(
                "{}: {other_device} record(s) for another device skipped (this one: {device})",
                path.display()
            ));
        }
        if other_version > 0 {
            tuned.warnings.push(format!(
                "{}: {other_version} record(s) of another nnc or schedule-space version skipped (tune again)",
                path.display()
            ));
        }
        tuned
    }

    /// The tuned schedule of the kernel with this key.
    pub fn get(&self, key: &str) -> Option<&Schedule> {
        self.by_key.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Adds records (as [`Self::load`] would keep them after they were appended).
    pub fn insert(&mut self, records: &[Record]) {
        for r in records {
            self.by_key.insert(r.key.clone(), r.best);
        }
    }
}

/// [`TunedSchedules::load`], remembered per file and device while the file keeps its size and
/// modification time: a process that compiles many graphs (a server, the conformance suite)
/// reads the cache once.
pub fn load_shared(path: &Path, device: &str) -> Arc<TunedSchedules> {
    type Key = (PathBuf, String);
    type Stamp = (SystemTime, u64);
    static LOADED: Mutex<Vec<(Key, Stamp, Arc<TunedSchedules>)>> = Mutex::new(Vec::new());
    let stamp = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    let Some(stamp) = stamp else { return Arc::new(TunedSchedules::load(path, device)) };
    let key = (path.to_path_buf(), device.to_string());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, tuned)) = loaded.iter().find(|(k, s, _)| *k == key && *s == stamp) {
        return tuned.clone();
    }
    let tuned = Arc::new(TunedSchedules::load(path, device));
    loaded.retain(|(k, _, _)| *k != key);
    loaded.push((key, stamp, tuned.clone()));
    tuned
}

/// Appends `records` to the cache file at `path`, creating it and its folder if needed.
pub fn append(path: &Path, records: &[Record]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_kernel::kernel::Strategy;

    fn record(key: &str, device: &str, rows: u32) -> Record {
        let s = Schedule { strategy: Strategy::TiledMatmul, tile: [4, 16, 1], vector: 8, ..Schedule::PLAIN };
        let best = Schedule { tile: [rows, 16, 1], ..s };
        Record {
            key: key.into(),
            kernel: "k".into(),
            device: device.into(),
            space_version: nnc_lower::space::SPACE_VERSION,
            nnc_version: NNC_VERSION.into(),
            default: s,
            best,
            candidates: vec![Measurement { schedule: best, median_ms: Some(0.5), samples: 5, outcome: "best".into() }],
        }
    }

    #[test]
    fn records_round_trip_and_later_lines_win() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/tuning.jsonl");
        append(&path, &[record("a", "dev", 6)]).expect("writes");
        append(&path, &[record("a", "dev", 2), record("b", "dev", 3)]).expect("appends");
        let tuned = TunedSchedules::load(&path, "dev");
        assert_eq!(tuned.len(), 2);
        assert_eq!(tuned.get("a").map(|s| s.tile[0]), Some(2));
        assert!(tuned.warnings.is_empty(), "{:?}", tuned.warnings);
    }

    #[test]
    fn corrupt_lines_and_other_devices_are_skipped_with_warnings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tuning.jsonl");
        append(&path, &[record("a", "dev", 6), record("b", "other cpu", 2)]).expect("writes");
        let mut text = std::fs::read_to_string(&path).expect("reads");
        text.push_str("{\"key\": \"c\", \"kernel\": 3\n");
        let mut old = record("d", "dev", 5);
        old.space_version += 1;
        text.push_str(&serde_json::to_string(&old).expect("json"));
        std::fs::write(&path, text).expect("writes");
        let tuned = TunedSchedules::load(&path, "dev");
        assert_eq!(tuned.len(), 1, "only the record for this device and version");
        assert_eq!(tuned.get("a").map(|s| s.tile[0]), Some(6));
        let all = tuned.warnings.join("\n");
        assert!(all.contains(":3: not a tuning record"), "{all}");
        assert!(all.contains("1 record(s) for another device"), "{all}");
        assert!(all.contains("1 record(s) of another nnc or schedule-space version"), "{all}");
        assert!(TunedSchedules::load(&dir.path().join("none.jsonl"), "dev").is_empty());
    }

    #[test]
    fn a_shared_load_is_read_again_when_the_file_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tuning.jsonl");
        assert!(load_shared(&path, "dev").is_empty(), "no file, no records");
        append(&path, &[record("a", "dev", 6)]).expect("writes");
        let first = load_shared(&path, "dev");
        assert!(Arc::ptr_eq(&first, &load_shared(&path, "dev")), "an unchanged file is read once");
        append(&path, &[record("b", "dev", 2)]).expect("appends");
        assert_eq!(load_shared(&path, "dev").len(), 2, "a longer file is read again");
    }
}
