//! Checkpoints: named tensors (parameters and optimizer state) and string metadata (such as the
//! step) in the safetensors format, so a run can stop and resume, a model trained on N ranks
//! loads into one process, and other tools (PyTorch, `safetensors` in Python) read the file.
//!
//! The tensors keep their order (the metadata key `nnc.order` lists the names), files are
//! written to a temporary name and renamed, so a crash never leaves half a checkpoint, and a
//! file that is not a checkpoint is an error naming it.

use crate::DistError;
use bytes::Bytes;
use nnc_ir::{DType, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The metadata key that lists the tensor names in order (comma-separated JSON array).
const ORDER_KEY: &str = "nnc.order";

/// Named tensors in order, and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    pub tensors: Vec<(String, TensorData)>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&TensorData> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

fn to_safetensors(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        DType::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn from_safetensors(dtype: Dtype) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| to_safetensors(d) == Some(dtype))
}

/// Writes `checkpoint` to `path`.
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), DistError> {
    let fail = |message: String| DistError::Checkpoint { path: path.display().to_string(), message };
    let mut views = Vec::with_capacity(checkpoint.tensors.len());
    for (name, t) in &checkpoint.tensors {
        let dtype = to_safetensors(t.dtype())
            .ok_or_else(|| fail(format!("tensor `{name}`: safetensors has no {}", t.dtype())))?;
        let view =
            TensorView::new(dtype, t.shape().to_vec(), t.bytes()).map_err(|e| fail(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let mut metadata: HashMap<String, String> = checkpoint.metadata.clone().into_iter().collect();
    let order: Vec<&str> = checkpoint.tensors.iter().map(|(n, _)| n.as_str()).collect();
    metadata.insert(ORDER_KEY.into(), serde_json::to_string(&order).map_err(|e| fail(e.to_string()))?);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| fail(e.to_string()))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(|e| fail(format!("cannot write {}: {e}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(|e| fail(format!("cannot rename {} into place: {e}", partial.display())))
}

/// Reads the checkpoint at `path` (any safetensors file: without `nnc.order`, tensors come in
/// name order).
pub fn load(path: &Path) -> Result<Checkpoint, DistError> {
    let fail = |message: String| DistError::Checkpoint { path: path.display().to_string(), message };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| fail(format!("not a safetensors file: {e}")))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| fail(format!("not a safetensors file: {e}")))?;
    let mut metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let order: Vec<String> = match metadata.remove(ORDER_KEY) {
        Some(list) => serde_json::from_str(&list).map_err(|e| fail(format!("metadata `{ORDER_KEY}`: {e}")))?,
        None => {
            let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
            names.sort();
            names
        }
    };
    let mut tensors = Vec::with_capacity(order.len());
    for name in order {
        let view = file.tensor(&name).map_err(|e| fail(format!("tensor `{name}`: {e}")))?;
        let dtype = from_safetensors(view.dtype())
            .ok_or_else(|| fail(format!("tensor `{name}`: nnc has no dtype for safetensors' {:?}", view.dtype())))?;
        let t = TensorData::from_bytes(dtype, view.shape().to_vec(), Bytes::copy_from_slice(view.data()))
            .map_err(|e| fail(format!("tensor `{name}`: {e}")))?;
        tensors.push((name, t));
    }
    Ok(Checkpoint { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_dtypes_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.safetensors");
        let checkpoint = Checkpoint {
            tensors: vec![
                ("w".into(), TensorData::from_vec(vec![2, 2], &[1.0f32, -2.0, 3.5, 0.0])),
                ("adam.step".into(), TensorData::scalar(7.0f32)),
                ("labels".into(), TensorData::from_vec(vec![3], &[1i64, 0, 9])),
            ],
            metadata: BTreeMap::from([("step".to_string(), "7".to_string())]),
        };
        save(&path, &checkpoint).unwrap();
        assert_eq!(load(&path).unwrap(), checkpoint);
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.safetensors");
        std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("junk.safetensors") && err.contains("not a safetensors file"), "{err}");
    }
}
