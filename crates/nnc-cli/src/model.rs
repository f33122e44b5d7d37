//! Loading a model file into a verified [`Graph`], whatever its format.
//!
//! This is the one place that maps file extensions to front ends: `.nnir` (the text form) today,
//! `.onnx` once the ONNX importer is wired in. Every command that takes a model calls
//! [`load_model`], so a new format becomes available to all of them at once.

use anyhow::{anyhow, bail, Context};
use nnc_ir::{Graph, IrError};
use std::path::Path;

/// The model file extensions `nnc` accepts, for messages.
pub const MODEL_EXTENSIONS: &str = ".nnir, .onnx";

/// Reads, parses and verifies the model at `path`, choosing the front end by its extension.
pub fn load_model(path: &Path) -> anyhow::Result<Graph> {
    let shown = path.display().to_string();
    match extension(path).as_deref() {
        Some("nnir") => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
            let src = String::from_utf8(bytes).map_err(|e| {
                anyhow!("{shown}: not a text file (invalid UTF-8 at byte {})", e.utf8_error().valid_up_to())
            })?;
            nnc_ir::text::parse(&src, &shown).map_err(|e| match e {
                // Parse errors already start with `file:line:col`.
                IrError::Parse { .. } => anyhow!(e),
                other => anyhow!("{shown}: {other}"),
            })
        }
        Some("onnx") => {
            // Fail on a missing file first: that is the more useful message.
            std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
            bail!("{shown}: ONNX import is not available yet")
        }
        _ => bail!("{shown}: unknown model format (expected a file ending in {MODEL_EXTENSIONS})"),
    }
}

/// The file's extension, lower-cased (`None` if it has none or it is not UTF-8).
pub fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}
