//! Sequence and optional values in files: ONNX's `SequenceProto` and `OptionalProto` (from
//! `onnx-data.proto`, the format of the node tests' data), read into [`HostValue`]s for the
//! graph inputs and outputs that are not tensors. Only the fields nnc holds are declared (tensors,
//! sequences, optionals); a sparse tensor or map value is refused by its declared element type.

use super::HostValue;
use crate::proto::{type_proto, TensorProto, TypeProto};
use crate::tensor::tensor_from_proto;
use prost::Message;
use std::path::Path;

#[derive(Clone, PartialEq, Message)]
struct SequenceProto {
    #[prost(int32, optional, tag = "2")]
    elem_type: Option<i32>,
    #[prost(message, repeated, tag = "3")]
    tensor_values: Vec<TensorProto>,
    #[prost(message, repeated, tag = "5")]
    sequence_values: Vec<SequenceProto>,
    #[prost(message, repeated, tag = "7")]
    optional_values: Vec<OptionalProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OptionalProto {
    #[prost(int32, optional, tag = "2")]
    elem_type: Option<i32>,
    #[prost(message, optional, tag = "3")]
    tensor_value: Option<TensorProto>,
    #[prost(message, optional, boxed, tag = "5")]
    sequence_value: Option<Box<SequenceProto>>,
    #[prost(message, optional, boxed, tag = "7")]
    optional_value: Option<Box<OptionalProto>>,
}

/// `elem_type` codes of both messages.
const TENSOR: i32 = 1;
const SEQUENCE: i32 = 3;
const OPTIONAL: i32 = 5;

/// Reads the value in file `path`, whose type is `ty` (a graph input's or output's): a
/// `TensorProto`, `SequenceProto` or `OptionalProto`.
pub fn read_value(path: &Path, ty: Option<&TypeProto>) -> Result<HostValue, String> {
    let shown = path.display().to_string();
    let bytes = nnc_ir::size::read_file(path).map_err(|e| format!("{shown}: {e}"))?;
    let decode_error = |e: prost::DecodeError| format!("{shown}: {e}");
    match ty.and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::SequenceType(_)) => {
            sequence(&SequenceProto::decode(bytes.as_slice()).map_err(decode_error)?, &shown)
        }
        Some(type_proto::Value::OptionalType(_)) => {
            optional(&OptionalProto::decode(bytes.as_slice()).map_err(decode_error)?, &shown)
        }
        _ => {
            let t = TensorProto::decode(bytes.as_slice()).map_err(decode_error)?;
            Ok(HostValue::Tensor(tensor_from_proto(&t, &shown, None).map_err(|e| e.to_string())?))
        }
    }
}

fn sequence(s: &SequenceProto, shown: &str) -> Result<HostValue, String> {
    match s.elem_type() {
        // An empty sequence may leave its element type undefined.
        0 | TENSOR => {
            let items = s.tensor_values.iter().map(|t| tensor_from_proto(t, shown, None).map_err(|e| e.to_string()));
            Ok(HostValue::Sequence(items.collect::<Result<_, _>>()?))
        }
        code => Err(format!("{shown}: sequences of element type {code} (not tensors) are not supported")),
    }
}

fn optional(o: &OptionalProto, shown: &str) -> Result<HostValue, String> {
    let inner = match o.elem_type() {
        0 => None,
        TENSOR => match &o.tensor_value {
            Some(t) => Some(HostValue::Tensor(tensor_from_proto(t, shown, None).map_err(|e| e.to_string())?)),
            None => None,
        },
        SEQUENCE => o.sequence_value.as_deref().map(|s| sequence(s, shown)).transpose()?,
        OPTIONAL => o.optional_value.as_deref().map(|v| optional(v, shown)).transpose()?,
        code => return Err(format!("{shown}: optional values of element type {code} are not supported")),
    };
    Ok(HostValue::Optional(inner.map(Box::new)))
}
