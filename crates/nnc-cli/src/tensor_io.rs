//! Reading and writing tensors in files: numpy `.npy` and ONNX `TensorProto` `.pb`.
//!
//! `.npy` headers are parsed here rather than by `npyz`: the header is a tiny fixed subset of a
//! Python dict literal, and parsing it ourselves lets every length be checked (shape products that
//! overflow, data shorter than the shape) before anything is allocated, so a corrupt or hostile file
//! gives an error, never a panic or a huge allocation. Writing uses `npyz`.
//!
//! Supported `.npy` dtypes: `f32 f64 f16 i64 i32 i16 i8 u64 u32 u16 u8 bool`, either byte order, C or
//! Fortran order.
//! numpy has no `bf16`, so a `bf16` tensor is written as `f32` (exactly).

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use half::f16;
use nnc_ir::{DType, TensorData};
use npyz::WriterBuilder;
use std::io::Write;
use std::path::Path;

/// The tensor file extensions `nnc` reads, for messages.
pub const TENSOR_EXTENSIONS: &str = ".npy, .pb";

/// Reads a tensor from a `.npy` or `.pb` file, by extension.
pub fn read_tensor(path: &Path) -> anyhow::Result<TensorData> {
    match crate::model::extension(path).as_deref() {
        Some("npy") => read_npy(path),
        Some("pb") => read_pb(path),
        _ => bail!("{}: unknown tensor file format (expected a file ending in {TENSOR_EXTENSIONS})", path.display()),
    }
}

/// Reads an ONNX `TensorProto` file (as in ONNX test data sets: `input_0.pb`).
pub fn read_pb(path: &Path) -> anyhow::Result<TensorData> {
    // The error's message already includes its cause: keep it as one link of the chain.
    let (_name, data) = nnc_onnx::read_tensor_file(path).map_err(|e| anyhow!("{e}"))?;
    Ok(data)
}

/// Reads a numpy `.npy` file.
pub fn read_npy(path: &Path) -> anyhow::Result<TensorData> {
    let bytes = nnc_ir::size::read_file(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_npy(Bytes::from(bytes)).map_err(|m| anyhow!("{}: not a valid .npy file: {m}", path.display()))
}

/// Decodes the bytes of a `.npy` file.
pub fn parse_npy(bytes: Bytes) -> Result<TensorData, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported format version {v}.{}", bytes[7])),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or("truncated header")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let header = parse_header(text)?;

    let (dtype, elem, big_endian) = numpy_dtype(&header.descr)?;
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} is too large", header.shape))?;
    let need = count.checked_mul(elem).ok_or_else(|| format!("shape {:?} is too large", header.shape))?;
    let data = bytes.slice(end..);
    if data.len() != need {
        return Err(format!(
            "{} of shape {:?} needs {need} bytes of data, the file has {}",
            header.descr,
            header.shape,
            data.len()
        ));
    }
    let mut data = if big_endian && elem > 1 {
        let mut v = data.to_vec();
        v.chunks_exact_mut(elem).for_each(|c| c.reverse());
        v
    } else {
        data.to_vec()
    };
    if dtype == DType::Bool {
        data.iter_mut().for_each(|b| *b = (*b != 0) as u8);
    }
    if header.fortran_order && header.shape.len() > 1 {
        data = fortran_to_c(&data, &header.shape, elem);
    }
    TensorData::from_bytes(dtype, header.shape, Bytes::from(data)).map_err(|e| e.to_string())
}

/// Reorders elements stored in Fortran (column-major) order into C (row-major) order.
fn fortran_to_c(data: &[u8], shape: &[usize], elem: usize) -> Vec<u8> {
    let rank = shape.len();
    // Column-major strides, in elements.
    let mut fstride = vec![1usize; rank];
    for i in 1..rank {
        fstride[i] = fstride[i - 1] * shape[i - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0usize; rank];
    let count = data.len() / elem.max(1);
    for _ in 0..count {
        let src: usize = index.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&data[src * elem..(src + 1) * elem]);
        // Advance the row-major index.
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// The nnc dtype, element size and byte order of a numpy type string such as `<f4`.
fn numpy_dtype(descr: &str) -> Result<(DType, usize, bool), String> {
    let unsupported = || format!("unsupported numpy dtype '{descr}' (supported: f4 f8 f2 i8 i4 i2 i1 u8 u4 u2 u1 b1)");
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let big_endian = match order {
        '<' | '|' => false,
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        _ => return Err(unsupported()),
    };
    let (dtype, size) = match chars.as_str() {
        "f4" => (DType::F32, 4),
        "f8" => (DType::F64, 8),
        "f2" => (DType::F16, 2),
        "i8" => (DType::I64, 8),
        "i4" => (DType::I32, 4),
        "i2" => (DType::I16, 2),
        "i1" => (DType::I8, 1),
        "u8" => (DType::U64, 8),
        "u4" => (DType::U32, 4),
        "u2" => (DType::U16, 2),
        "u1" => (DType::U8, 1),
        "b1" => (DType::Bool, 1),
        _ => return Err(unsupported()),
    };
    Ok((dtype, size, big_endian))
}

struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_header(text: &str) -> Result<NpyHeader, String> {
    let mut p = HeaderParser { s: text.as_bytes(), i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => {
                descr = Some(p.string().map_err(|e| format!("'descr': {e} (structured dtypes are not supported)"))?)
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}' in the header")),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    let missing = |k: &str| format!("the header has no '{k}'");
    Ok(NpyHeader {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

struct HeaderParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl HeaderParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("header: expected '{}' at offset {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("header: expected a quoted string at offset {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or("header: unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn word(&mut self) -> &[u8] {
        self.skip_ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn boolean(&mut self) -> Result<bool, String> {
        match self.word() {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err("header: 'fortran_order' is not True or False".into()),
        }
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            let word = self.word();
            // Python 2 wrote longs as `3L`.
            let digits = word.strip_suffix(b"L").unwrap_or(word);
            let text = std::str::from_utf8(digits).unwrap_or("");
            let dim = text.parse::<usize>().map_err(|_| "header: 'shape' is not a tuple of sizes".to_string())?;
            dims.push(dim);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// Writes a tensor as a `.npy` file (`bf16` and float8/float4 are widened to `f32`, the 4- and
/// 2-bit integers to `i8`/`u8`: numpy has none of them).
pub fn write_npy(path: &Path, t: &TensorData) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    write_npy_to(&mut out, t).and_then(|()| out.flush()).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a tensor in `.npy` format to any writer.
pub fn write_npy_to<W: Write>(out: W, t: &TensorData) -> std::io::Result<()> {
    fn write<T: npyz::AutoSerialize + Copy, W: Write>(out: W, shape: &[usize], v: &[T]) -> std::io::Result<()> {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(out).begin_nd()?;
        w.extend(v.iter().copied())?;
        w.finish()
    }
    let shape = t.shape();
    let wrong = || std::io::Error::other("internal error: tensor data does not match its dtype");
    match t.dtype() {
        DType::F32 => write(out, shape, &t.to_vec::<f32>().ok_or_else(wrong)?),
        DType::F64 => write(out, shape, &t.to_vec::<f64>().ok_or_else(wrong)?),
        DType::F16 => write(out, shape, &t.to_vec::<f16>().ok_or_else(wrong)?),
        DType::BF16 => write(out, shape, &t.to_f64_vec().iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DType::I64 => write(out, shape, &t.to_vec::<i64>().ok_or_else(wrong)?),
        DType::I32 => write(out, shape, &t.to_vec::<i32>().ok_or_else(wrong)?),
        DType::I16 => write(out, shape, &t.to_vec::<i16>().ok_or_else(wrong)?),
        DType::I8 => write(out, shape, &t.to_vec::<i8>().ok_or_else(wrong)?),
        DType::U64 => write(out, shape, &t.to_vec::<u64>().ok_or_else(wrong)?),
        DType::U32 => write(out, shape, &t.to_vec::<u32>().ok_or_else(wrong)?),
        DType::U16 => write(out, shape, &t.to_vec::<u16>().ok_or_else(wrong)?),
        DType::U8 => write(out, shape, &t.to_vec::<u8>().ok_or_else(wrong)?),
        DType::Bool => write(out, shape, &t.to_vec::<bool>().ok_or_else(wrong)?),
        d if d.is_minifloat() => write(out, shape, &t.to_f64_vec().iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DType::I4 | DType::I2 => write(out, shape, &t.to_i64_vec().iter().map(|&v| v as i8).collect::<Vec<_>>()),
        _ => write(out, shape, &t.to_i64_vec().iter().map(|&v| v as u8).collect::<Vec<_>>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(t: &TensorData) -> TensorData {
        let mut buf = Vec::new();
        write_npy_to(&mut buf, t).unwrap();
        parse_npy(Bytes::from(buf)).unwrap()
    }

    #[test]
    fn every_npy_dtype_round_trips() {
        for d in DType::ALL {
            // Written widened (numpy has no such types).
            if d == DType::BF16 || d.is_minifloat() || d.is_sub_byte_int() {
                continue;
            }
            let t = TensorData::from_f64(d, vec![2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
            assert_eq!(round_trip(&t), t, "{d}");
        }
        let scalar = TensorData::scalar(2.5f32);
        assert_eq!(round_trip(&scalar), scalar);
        let empty = TensorData::from_vec::<i64>(vec![0, 3], &[]);
        assert_eq!(round_trip(&empty), empty);
    }

    #[test]
    fn new_integer_dtypes_round_trip_exactly() {
        let cases = [
            TensorData::from_vec(vec![3], &[i16::MIN, -1, i16::MAX]),
            TensorData::from_vec(vec![2], &[0u16, u16::MAX]),
            TensorData::from_vec(vec![2], &[7u32, u32::MAX]),
            TensorData::from_vec(vec![2, 2], &[0u64, 1 << 63, u64::MAX, (1 << 63) + 1]),
        ];
        for t in &cases {
            assert_eq!(&round_trip(t), t, "{}", t.dtype());
        }
        // numpy's names, either byte order.
        let data: Vec<u8> = [1u64 << 63, u64::MAX].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = parse_npy(npy(">u8", false, "(2,)", &data)).unwrap();
        assert_eq!(t.to_vec::<u64>().unwrap(), vec![1 << 63, u64::MAX]);
        let data: Vec<u8> = [-2i16, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(npy("<i2", false, "(2,)", &data)).unwrap().to_vec::<i16>().unwrap(), vec![-2, 3]);
        let data: Vec<u8> = [65535u16, 3].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(parse_npy(npy(">u2", false, "(2,)", &data)).unwrap().to_vec::<u16>().unwrap(), vec![65535, 3]);
        let data: Vec<u8> = [4000000000u32].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(npy("<u4", false, "(1,)", &data)).unwrap().to_vec::<u32>().unwrap(), vec![4000000000]);
    }

    #[test]
    fn bf16_is_written_as_f32() {
        let t = TensorData::from_f64(DType::BF16, vec![2], &[1.5, -2.0]);
        assert_eq!(round_trip(&t), TensorData::from_vec(vec![2], &[1.5f32, -2.0]));
    }

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Bytes {
        let fo = if fortran { "True" } else { "False" };
        let header = format!("{{'descr': '{descr}', 'fortran_order': {fo}, 'shape': {shape}, }}\n");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        Bytes::from(out)
    }

    #[test]
    fn big_endian_and_fortran_order() {
        let data: Vec<u8> = [1i32, 2, 3, 4, 5, 6].iter().flat_map(|v| v.to_be_bytes()).collect();
        let t = parse_npy(npy(">i4", false, "(2, 3)", &data)).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        // Column-major [[1, 2, 3], [4, 5, 6]] is stored 1 4 2 5 3 6.
        let data: Vec<u8> = [1i32, 4, 2, 5, 3, 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse_npy(npy("<i4", true, "(2, 3)", &data)).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let t = parse_npy(npy("|b1", false, "(2,)", &[0, 7])).unwrap();
        assert_eq!(t.to_vec::<bool>().unwrap(), vec![false, true]);
    }

    #[test]
    fn bad_files_are_errors() {
        let cases = [
            npy("<f4", false, "(2,)", &[0; 4]),
            npy("<f4", false, "(2,)", &[0; 12]),
            npy("<c8", false, "(1,)", &[0; 8]),
            npy("<u4", false, "(1,)", &[0; 8]),
            npy("<f4", false, "(4294967296, 4294967296, 4294967296)", &[]),
            npy("<f4", false, "(-1,)", &[]),
            npy("<f4", false, "[2]", &[0; 8]),
            Bytes::from_static(b"\x93NUMPY\x01\x00\xff\xff{"),
            Bytes::from_static(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{"),
            Bytes::from_static(b"\x93NUMPY\x09\x00\x00\x00"),
            Bytes::from_static(b"PK\x03\x04"),
            Bytes::from_static(b"\x93NUMPY\x01\x00\x05\x00{'de"),
            Bytes::from_static(b"\x93NUMPY\x01\x00\x02\x00{}"),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            assert!(parse_npy(c).is_err(), "case {i}");
        }
    }
}
