//! Google's Magika file-type model around nnc: its configuration, the bytes of a file it
//! reads, and the label it gives, following Magika 1.0.3's own Python implementation.
//!
//! The model reads the first and the last 1,024 bytes of a file, after stripping ASCII
//! whitespace at the start and the end, padded with token 256 to 2,048 integers, and gives a
//! probability for each of 214 content types. Files too short for it to judge are labelled by
//! a rule (empty, text or unknown); a prediction below its label's confidence threshold becomes
//! the generic `txt` or `unknown`.

use std::collections::HashMap;
use std::path::Path;

/// The model's configuration (`config.min.json`) and the content types' descriptions
/// (`content_types_kb.min.json`) from the magika wheel.
pub struct Magika {
    pub labels: Vec<String>,
    beg_size: usize,
    end_size: usize,
    block_size: usize,
    padding_token: i32,
    min_file_size_for_dl: usize,
    medium_confidence: f32,
    thresholds: HashMap<String, f32>,
    overwrite: HashMap<String, String>,
    /// Per label: its description and whether it is a text format.
    kinds: HashMap<String, (String, bool)>,
}

/// What Magika makes of one file.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Decided without the model (an empty or very short file), with this label.
    Decided(String),
    /// The model's input: `beg_size + end_size` byte values and padding tokens.
    Features(Vec<i32>),
}

/// The label of one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The model's own best label and its probability (`None` when decided by a rule).
    pub model: Option<(String, f32)>,
    /// The label Magika reports, after its thresholds and overwrite map.
    pub output: String,
}

impl Magika {
    /// Reads the configuration from the folder `scripts/fetch-magika.sh` fills.
    pub fn load(dir: &Path) -> Result<Magika, String> {
        let read = |name: &str| -> Result<serde_json::Value, String> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
        };
        let config = read("config.min.json")?;
        let kb = read("content_types_kb.min.json")?;
        let size = |key: &str| config[key].as_u64().map(|v| v as usize).ok_or(format!("config.min.json: no `{key}`"));
        let strings = |v: &serde_json::Value| v.as_str().map(str::to_string);
        Ok(Magika {
            labels: config["target_labels_space"].as_array().ok_or("no labels")?.iter().filter_map(strings).collect(),
            beg_size: size("beg_size")?,
            end_size: size("end_size")?,
            block_size: size("block_size")?,
            padding_token: size("padding_token")? as i32,
            min_file_size_for_dl: size("min_file_size_for_dl")?,
            medium_confidence: config["medium_confidence_threshold"].as_f64().unwrap_or(0.5) as f32,
            thresholds: config["thresholds"]
                .as_object()
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()? as f32))).collect())
                .unwrap_or_default(),
            overwrite: config["overwrite_map"]
                .as_object()
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), strings(v)?))).collect())
                .unwrap_or_default(),
            kinds: kb
                .as_object()
                .ok_or("content_types_kb.min.json: not an object")?
                .iter()
                .map(|(k, v)| {
                    let description = v["description"].as_str().unwrap_or(k).to_string();
                    (k.clone(), (description, v["is_text"].as_bool().unwrap_or(false)))
                })
                .collect(),
        })
    }

    /// The model's input for a file of these bytes, or the label a rule gives it.
    pub fn input(&self, content: &[u8]) -> Input {
        if content.is_empty() {
            return Input::Decided("empty".into());
        }
        if content.len() < self.min_file_size_for_dl {
            return Input::Decided(few_bytes_label(content));
        }
        let read = content.len().min(self.block_size);
        let beg = strip_start(&content[..read]);
        let end = strip_end(&content[content.len() - read..]);
        let pad = self.padding_token;
        let mut features: Vec<i32> = beg.iter().take(self.beg_size).map(|&b| b as i32).collect();
        features.resize(self.beg_size, pad);
        // The last `end_size` bytes, padded at the front.
        let tail = &end[end.len().saturating_sub(self.end_size)..];
        features.extend(std::iter::repeat_n(pad, self.end_size - tail.len()));
        features.extend(tail.iter().map(|&b| b as i32));
        if features[self.min_file_size_for_dl - 1] == pad {
            // Once stripped, too few bytes for the model.
            return Input::Decided(few_bytes_label(&content[..read]));
        }
        Input::Features(features)
    }

    /// The label of a file for which the model gave `probabilities` (one per label).
    pub fn predict(&self, probabilities: &[f32]) -> Prediction {
        let best = (0..probabilities.len()).fold(0, |b, i| if probabilities[i] > probabilities[b] { i } else { b });
        let (label, score) = (self.labels[best].clone(), probabilities[best]);
        let mut output = self.overwrite.get(&label).cloned().unwrap_or_else(|| label.clone());
        let threshold = self.thresholds.get(&label).copied().unwrap_or(self.medium_confidence);
        if score < threshold {
            output = if self.is_text(&output) { "txt".into() } else { "unknown".into() };
        }
        Prediction { model: Some((label, score)), output }
    }

    /// A label's description (`Python source`).
    pub fn describe<'a>(&'a self, label: &'a str) -> &'a str {
        self.kinds.get(label).map_or(label, |(d, _)| d.as_str())
    }

    fn is_text(&self, label: &str) -> bool {
        self.kinds.get(label).is_some_and(|(_, text)| *text)
    }
}

/// `txt` for bytes that are UTF-8, else `unknown` (Magika's rule for too few bytes).
fn few_bytes_label(content: &[u8]) -> String {
    if std::str::from_utf8(content).is_ok() { "txt" } else { "unknown" }.into()
}

/// Python's `bytes.lstrip()` / `rstrip()`: ASCII space, tab, newline, return, vertical tab and
/// form feed.
fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn strip_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    &bytes[start..]
}

fn strip_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(0, |i| i + 1);
    &bytes[..end]
}
