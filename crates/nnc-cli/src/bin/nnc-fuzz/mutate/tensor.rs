//! Tensor files mutated through their structure: a `.npy` file's header (shape, dtype, order,
//! version, header length) and data length, and an ONNX `TensorProto`'s fields.

use super::interesting;
use nnc_onnx::proto::TensorProto;
use prost::Message;

/// Mutates an ONNX `.pb` tensor file.
pub fn mutate_pb(rng: &mut fastrand::Rng, bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
    let Ok(mut t) = TensorProto::decode(bytes) else {
        let mut data = bytes.to_vec();
        let what = super::bytes::damage(rng, &mut data);
        return (data, vec![what]);
    };
    let mut done: Vec<String> = (0..rng.usize(1..=2)).map(|_| super::onnx::mutate_tensor(rng, &mut t)).collect();
    let mut out = t.encode_to_vec();
    if rng.u8(..8) == 0 {
        done.push(super::bytes::damage(rng, &mut out));
    }
    (out, done)
}

/// A version 1.0 `.npy` file with `header` (padded as numpy pads it) and `data`.
fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.to_string();
    // Pad so the data starts at a multiple of 64, as numpy does.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A `.npy` file of `descr`, `shape` and `data` with one to three of its parts changed.
pub fn mutate_npy(rng: &mut fastrand::Rng, descr: &str, shape: &[usize], data: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut descr = descr.to_string();
    let mut dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut order = "False";
    let mut data = data.to_vec();
    let mut done = Vec::new();
    let mut raw_header: Option<String> = None;
    for _ in 0..rng.usize(1..=3) {
        done.push(match rng.u8(..7) {
            0 => {
                descr = ["<f4", ">f4", "<f8", "<i8", "|b1", "<f2", "<u8", "<c8", "|O", "<f4x", "", "|V16"]
                    [rng.usize(..12)]
                .into();
                format!("set the dtype to `{descr}`")
            }
            1 | 2 => {
                if dims.is_empty() || rng.u8(..3) == 0 {
                    dims.push(interesting(rng).to_string());
                    "added a dimension".into()
                } else {
                    let i = rng.usize(..dims.len());
                    dims[i] = interesting(rng).to_string();
                    format!("set dimension {i} to {}", dims[i])
                }
            }
            3 => {
                order = ["True", "False", "1", "maybe"][rng.usize(..4)];
                format!("set fortran_order to {order}")
            }
            4 => super::bytes::damage(rng, &mut data),
            5 => {
                let header = [
                    "{}",
                    "{'descr': '<f4'}",
                    "{'descr': '<f4', 'shape': (2,3",
                    "not a dict",
                    "{'shape': (), 'descr': '<f4', 'fortran_order': False}",
                ][rng.usize(..5)];
                raw_header = Some(header.into());
                format!("replaced the header by `{header}`")
            }
            _ => {
                dims.clear();
                "made it a scalar".into()
            }
        });
    }
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let header =
        raw_header.unwrap_or_else(|| format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}"));
    let mut out = npy_with_header(&header, &data);
    if rng.u8(..6) == 0 {
        // The version byte and header length are where readers trust the file most.
        match rng.u8(..3) {
            0 => out[6] = rng.u8(..5),
            1 => out[8..10].copy_from_slice(&u16::MAX.to_le_bytes()),
            _ => out.truncate(rng.usize(..12)),
        }
        done.push("damaged the version or header length".into());
    }
    (out, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_are_numpy_shaped() {
        let file = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &[0; 24]);
        assert_eq!(&file[..6], b"\x93NUMPY");
        assert_eq!((file.len() - 24) % 64, 0);
        let text = String::from_utf8_lossy(&file[10..file.len() - 24]).to_string();
        assert!(text.contains("'shape': (2, 3)") && text.ends_with('\n'), "{text}");
        let (a, what) = mutate_npy(&mut fastrand::Rng::with_seed(3), "<f4", &[2, 3], &[0; 24]);
        assert!(!what.is_empty() && !a.is_empty());
    }
}
