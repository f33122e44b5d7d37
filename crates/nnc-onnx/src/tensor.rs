//! ONNX `TensorProto` to [`TensorData`], and `.pb` tensor files (as in ONNX test data sets).
//!
//! `raw_data` is wrapped without copying (it is already a slice of the file's buffer); typed
//! fields (`float_data`, `int64_data`, ...) are converted. Every length is checked against
//! the data actually present before anything is allocated, so a corrupt header cannot make us
//! allocate gigabytes.

use crate::proto::{tensor_proto::DataLocation, tensor_proto::DataType, TensorProto};
use crate::OnnxError;
use bytes::Bytes;
use half::{bf16, f16};
use nnc_ir::{DType, TensorData};
use prost::Message;
use std::path::Path;

/// The nnc dtype of an ONNX `TensorProto.DataType` code, or an error naming the type.
pub fn dtype_from_onnx(code: i32) -> Result<DType, String> {
    let dt = DataType::try_from(code).map_err(|_| format!("unknown ONNX data type code {code}"))?;
    Ok(match dt {
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Int64 => DType::I64,
        DataType::Int32 => DType::I32,
        DataType::Int16 => DType::I16,
        DataType::Int8 => DType::I8,
        DataType::Uint64 => DType::U64,
        DataType::Uint32 => DType::U32,
        DataType::Uint16 => DType::U16,
        DataType::Uint8 => DType::U8,
        DataType::Bool => DType::Bool,
        DataType::Float8e4m3fn => DType::F8E4M3FN,
        DataType::Float8e4m3fnuz => DType::F8E4M3FNUZ,
        DataType::Float8e5m2 => DType::F8E5M2,
        DataType::Float8e5m2fnuz => DType::F8E5M2FNUZ,
        DataType::Float8e8m0 => DType::F8E8M0,
        DataType::Float4e2m1 => DType::F4E2M1,
        DataType::Int4 => DType::I4,
        DataType::Uint4 => DType::U4,
        DataType::Int2 => DType::I2,
        DataType::Uint2 => DType::U2,
        other => return Err(format!("ONNX data type {} is not supported", other.as_str_name())),
    })
}

/// Converts a `TensorProto` to a tensor. `what` names it in errors (file or initializer name);
/// `base_dir` is where external data files are looked up (the model's folder).
pub fn tensor_from_proto(t: &TensorProto, what: &str, base_dir: Option<&Path>) -> Result<TensorData, OnnxError> {
    let err = |m: String| OnnxError::invalid(what, m);
    let dtype = dtype_from_onnx(t.data_type()).map_err(err)?;
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("negative dimension {d} in {:?}", t.dims))))
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("shape {shape:?} is too large")))?;

    let raw = if t.data_location() == DataLocation::External {
        Some(read_external(t, what, base_dir)?)
    } else {
        t.raw_data.clone()
    };
    if let Some(raw) = raw {
        return if dtype.bits() < 8 {
            from_packed(dtype, shape, count, &raw).map_err(err)
        } else {
            TensorData::from_bytes(dtype, shape, raw).map_err(|e| err(e.to_string()))
        };
    }
    if dtype.bits() < 8 {
        // `int32_data` holds the packed bytes, one to an element of the field.
        let bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
        return from_packed(dtype, shape, count, &bytes).map_err(err);
    }
    // Typed fields (as onnx.proto assigns them): check the element count first, then convert.
    let present = match dtype {
        DType::F32 => t.float_data.len(),
        DType::F64 => t.double_data.len(),
        DType::I64 => t.int64_data.len(),
        DType::U64 | DType::U32 => t.uint64_data.len(),
        _ => t.int32_data.len(),
    };
    if present != count {
        return Err(err(format!("shape {shape:?} needs {count} {dtype} values, the tensor holds {present}")));
    }
    Ok(match dtype {
        DType::F32 => TensorData::from_vec(shape, &t.float_data),
        DType::F64 => TensorData::from_vec(shape, &t.double_data),
        DType::I64 => TensorData::from_vec(shape, &t.int64_data),
        DType::I32 => TensorData::from_vec(shape, &t.int32_data),
        DType::U64 => TensorData::from_vec(shape, &t.uint64_data),
        DType::U32 => TensorData::from_vec(shape, &t.uint64_data.iter().map(|&v| v as u32).collect::<Vec<_>>()),
        // Narrow types are stored widened in `int32_data`; half floats as their bit patterns.
        DType::I16 => TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| v as i16).collect::<Vec<_>>()),
        DType::I8 => TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| v as i8).collect::<Vec<_>>()),
        DType::U16 => TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| v as u16).collect::<Vec<_>>()),
        DType::U8 => TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| v as u8).collect::<Vec<_>>()),
        DType::Bool => TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| v != 0).collect::<Vec<_>>()),
        DType::F16 => {
            TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| f16::from_bits(v as u16)).collect::<Vec<_>>())
        }
        DType::BF16 => {
            TensorData::from_vec(shape, &t.int32_data.iter().map(|&v| bf16::from_bits(v as u16)).collect::<Vec<_>>())
        }
        // float8: each bit pattern in an `int32`.
        d => {
            let bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
            TensorData::from_bytes(d, shape, Bytes::from(bytes)).map_err(|e| err(e.to_string()))?
        }
    })
}

/// A 4- or 2-bit tensor from ONNX's packed bytes (held one element to a byte in nnc).
fn from_packed(dtype: DType, shape: Vec<usize>, count: usize, packed: &[u8]) -> Result<TensorData, String> {
    let need = nnc_ir::lowp::packed_len(dtype, count);
    if packed.len() != need {
        return Err(format!("shape {shape:?} needs {need} bytes of packed {dtype}, the tensor holds {}", packed.len()));
    }
    let elements = nnc_ir::lowp::unpack(dtype, packed, count).ok_or("packed data too short")?;
    TensorData::from_bytes(dtype, shape, Bytes::from(elements)).map_err(|e| e.to_string())
}

/// Reads the bytes of a tensor stored in an external file (`location`, `offset`, `length`).
fn read_external(t: &TensorProto, what: &str, base_dir: Option<&Path>) -> Result<Bytes, OnnxError> {
    let err = |m: String| OnnxError::invalid(what, m);
    let entry = |key: &str| t.external_data.iter().find(|e| e.key() == key).map(|e| e.value().to_string());
    let location = entry("location").ok_or_else(|| err("external data without a `location`".into()))?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(err(format!(
            "external data location `{location}` must be a relative path inside the model's folder"
        )));
    }
    let base = base_dir.ok_or_else(|| err("external data needs the model's folder".into()))?;
    let path = base.join(rel);
    let parse = |key: &str| -> Result<Option<u64>, OnnxError> {
        entry(key)
            .map(|v| v.parse::<u64>().map_err(|_| err(format!("external data `{key}` is not a number: {v}"))))
            .transpose()
    };
    let (offset, length) = (parse("offset")?.unwrap_or(0), parse("length")?);
    let io = |source| OnnxError::Io { path: path.display().to_string(), source };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    // Only a regular file: a device or a pipe could be endless or never answer.
    if !meta.is_file() {
        return Err(err(format!("external data file {} is not a regular file", path.display())));
    }
    let size = meta.len();
    if offset > size {
        return Err(err(format!("external data offset {offset} is past the end of {}", path.display())));
    }
    let length = length.unwrap_or(size - offset);
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(err(format!("external data length runs past the end of {}", path.display())));
    }
    // Only the tensor's range is read: several tensors usually share one large file.
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
    let what = || format!("external data of {}", path.display());
    let mut bytes = nnc_ir::size::try_vec(length as usize, 0u8, what).map_err(|e| err(e.to_string()))?;
    file.read_exact(&mut bytes).map_err(io)?;
    Ok(Bytes::from(bytes))
}

/// Reads a serialized `TensorProto` file (`input_0.pb`); returns its name (may be empty) and data.
pub fn read_tensor_file(path: &Path) -> Result<(String, TensorData), OnnxError> {
    let what = path.display().to_string();
    let bytes = nnc_ir::size::read_file(path).map_err(|source| OnnxError::Io { path: what.clone(), source })?;
    let proto =
        TensorProto::decode(Bytes::from(bytes)).map_err(|source| OnnxError::Decode { what: what.clone(), source })?;
    let data = tensor_from_proto(&proto, &what, path.parent())?;
    Ok((proto.name().to_string(), data))
}

/// Converts a tensor to a `TensorProto` with `raw_data` (for writing test data).
pub fn tensor_to_proto(name: &str, t: &TensorData) -> TensorProto {
    let code = match t.dtype() {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::I64 => DataType::Int64,
        DType::I32 => DataType::Int32,
        DType::I16 => DataType::Int16,
        DType::I8 => DataType::Int8,
        DType::U64 => DataType::Uint64,
        DType::U32 => DataType::Uint32,
        DType::U16 => DataType::Uint16,
        DType::U8 => DataType::Uint8,
        DType::Bool => DataType::Bool,
        DType::F8E4M3FN => DataType::Float8e4m3fn,
        DType::F8E4M3FNUZ => DataType::Float8e4m3fnuz,
        DType::F8E5M2 => DataType::Float8e5m2,
        DType::F8E5M2FNUZ => DataType::Float8e5m2fnuz,
        DType::F8E8M0 => DataType::Float8e8m0,
        DType::F4E2M1 => DataType::Float4e2m1,
        DType::I4 => DataType::Int4,
        DType::U4 => DataType::Uint4,
        DType::I2 => DataType::Int2,
        DType::U2 => DataType::Uint2,
    };
    let raw =
        if t.dtype().bits() < 8 { Bytes::from(nnc_ir::lowp::pack(t.dtype(), t.bytes())) } else { t.bytes().clone() };
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(code as i32),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..TensorProto::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_data_round_trips_without_copy() {
        let t = TensorData::from_vec(vec![2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let p = tensor_to_proto("x", &t);
        let back = tensor_from_proto(&p, "x", None).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.bytes().as_ptr(), t.bytes().as_ptr());
    }

    #[test]
    fn sub_byte_types_are_packed_at_the_boundary() {
        let t = TensorData::from_i64(DType::I4, vec![3], &[-8, 7, -1]);
        let p = tensor_to_proto("x", &t);
        assert_eq!(p.raw_data.as_deref(), Some(&[0x78, 0x0F][..]));
        assert_eq!(tensor_from_proto(&p, "x", None).unwrap(), t);
        let short = TensorProto { raw_data: Some(Bytes::from_static(&[0x78])), ..p };
        let e = tensor_from_proto(&short, "x", None).unwrap_err().to_string();
        assert!(e.contains("needs 2 bytes of packed i4, the tensor holds 1"), "{e}");
        // A count near usize::MAX (a fuzzed header) is an error, not an overflow.
        let huge = TensorProto { dims: vec![1, i64::MAX], ..short };
        let e = tensor_from_proto(&huge, "x", None).unwrap_err().to_string();
        assert!(e.contains("bytes of packed i4, the tensor holds 1"), "{e}");
    }

    #[test]
    fn typed_fields_are_checked_against_the_shape() {
        let p = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        let e = tensor_from_proto(&p, "w", None).unwrap_err().to_string();
        assert!(e.contains("w: shape [3] needs 3 f32 values, the tensor holds 2"), "{e}");
        let huge =
            TensorProto { dims: vec![1 << 40, 1 << 40], data_type: Some(DataType::Float as i32), ..Default::default() };
        assert!(tensor_from_proto(&huge, "w", None).is_err());
    }

    #[test]
    fn narrow_types_come_from_int32_data() {
        let p = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Bool as i32),
            int32_data: vec![0, 1],
            ..Default::default()
        };
        assert_eq!(tensor_from_proto(&p, "b", None).unwrap().to_vec::<bool>().unwrap(), vec![false, true]);
        let p = TensorProto {
            dims: vec![1],
            data_type: Some(DataType::Float16 as i32),
            int32_data: vec![0x3c00],
            ..Default::default()
        };
        assert_eq!(tensor_from_proto(&p, "h", None).unwrap().to_f64_vec(), vec![1.0]);
    }

    fn typed(dtype: DataType, dims: Vec<i64>) -> TensorProto {
        TensorProto { dims, data_type: Some(dtype as i32), ..Default::default() }
    }

    #[test]
    fn sixteen_bit_integers_come_widened_from_int32_data() {
        let p = TensorProto { int32_data: vec![-32768, -1, 32767], ..typed(DataType::Int16, vec![3]) };
        let t = tensor_from_proto(&p, "a", None).unwrap();
        assert_eq!(t.to_vec::<i16>().unwrap(), vec![i16::MIN, -1, i16::MAX]);
        let p = TensorProto { int32_data: vec![0, 65535], ..typed(DataType::Uint16, vec![2]) };
        assert_eq!(tensor_from_proto(&p, "b", None).unwrap().to_vec::<u16>().unwrap(), vec![0, u16::MAX]);
        // The count is checked against the field the type lives in.
        let p = TensorProto { uint64_data: vec![1, 2], ..typed(DataType::Uint16, vec![2]) };
        let e = tensor_from_proto(&p, "c", None).unwrap_err().to_string();
        assert!(e.contains("needs 2 u16 values, the tensor holds 0"), "{e}");
    }

    #[test]
    fn u32_and_u64_come_from_uint64_data() {
        let p = TensorProto { uint64_data: vec![0, u32::MAX as u64], ..typed(DataType::Uint32, vec![2]) };
        assert_eq!(tensor_from_proto(&p, "a", None).unwrap().to_vec::<u32>().unwrap(), vec![0, u32::MAX]);
        let big = vec![u64::MAX, 1 << 63, 5];
        let p = TensorProto { uint64_data: big.clone(), ..typed(DataType::Uint64, vec![3]) };
        assert_eq!(tensor_from_proto(&p, "b", None).unwrap().to_vec::<u64>().unwrap(), big);
        let p = TensorProto { int64_data: vec![1], ..typed(DataType::Uint64, vec![1]) };
        assert!(tensor_from_proto(&p, "c", None).unwrap_err().to_string().contains("needs 1 u64 values"));
    }

    #[test]
    fn new_integer_types_round_trip_through_raw_data() {
        let cases = [
            TensorData::from_vec(vec![2], &[i16::MIN, 300]),
            TensorData::from_vec(vec![2], &[u16::MAX, 300]),
            TensorData::from_vec(vec![2], &[u32::MAX, 70000]),
            TensorData::from_vec(vec![3], &[u64::MAX, 1 << 63, 1]),
        ];
        let codes = [DataType::Int16, DataType::Uint16, DataType::Uint32, DataType::Uint64];
        for (t, code) in cases.iter().zip(codes) {
            let p = tensor_to_proto("x", t);
            assert_eq!(p.data_type, Some(code as i32));
            assert_eq!(&tensor_from_proto(&p, "x", None).unwrap(), t);
        }
        // raw_data is little-endian, whatever the host.
        let raw: Vec<u8> = [0x0102u16, 0xfffe].iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = TensorProto { raw_data: Some(Bytes::from(raw)), ..typed(DataType::Uint16, vec![2]) };
        assert_eq!(tensor_from_proto(&p, "r", None).unwrap().to_vec::<u16>().unwrap(), vec![0x0102, 0xfffe]);
        let p = TensorProto { raw_data: Some(Bytes::from(vec![0u8; 6])), ..typed(DataType::Uint32, vec![2]) };
        assert!(tensor_from_proto(&p, "r", None).is_err());
    }

    #[test]
    fn unsupported_types_are_named() {
        let p = TensorProto { dims: vec![1], data_type: Some(DataType::String as i32), ..Default::default() };
        assert!(tensor_from_proto(&p, "s", None).unwrap_err().to_string().contains("STRING is not supported"));
    }

    #[test]
    fn external_data_cannot_escape_the_model_folder() {
        let mut p = TensorProto { dims: vec![1], data_type: Some(DataType::Float as i32), ..Default::default() };
        p.set_data_location(DataLocation::External);
        p.external_data
            .push(crate::proto::StringStringEntryProto { key: Some("location".into()), value: Some("../x".into()) });
        assert!(tensor_from_proto(&p, "e", Some(Path::new("."))).unwrap_err().to_string().contains("relative path"));
    }
}
