//! Fuzzes the importer with mutated copies of real models: random bit flips, truncations and
//! structural mutations (bad dims, wrong dtypes, extreme attributes, swapped op types, dropped
//! operands). Every mutant must import to a valid graph or give an error: never a panic, and
//! never a huge allocation (a capped global allocator in this test binary records the largest).

use bytes::Bytes;
use nnc_onnx::proto::{attribute_proto::AttributeType, AttributeProto, ModelProto, NodeProto, TensorProto};
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// No single allocation may exceed this while importing a model of a few megabytes.
const ALLOCATION_CAP: usize = 1 << 30;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct CappedAllocator;

unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > ALLOCATION_CAP {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A model built here, so the test has a seed even where no model files exist.
fn built_in_model() -> Vec<u8> {
    let tensor = |name: &str, dims: Vec<i64>, values: Vec<f32>| TensorProto {
        name: Some(name.into()),
        dims,
        data_type: Some(1),
        float_data: values,
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>| NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    };
    let ints = |name: &str, v: Vec<i64>| AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v,
        ..Default::default()
    };
    let input = nnc_onnx::proto::ValueInfoProto {
        name: Some("x".into()),
        r#type: Some(nnc_onnx::proto::TypeProto {
            value: Some(nnc_onnx::proto::type_proto::Value::TensorType(nnc_onnx::proto::type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(nnc_onnx::proto::TensorShapeProto {
                    dim: [1, 2, 6, 6]
                        .iter()
                        .map(|&d| nnc_onnx::proto::tensor_shape_proto::Dimension {
                            value: Some(nnc_onnx::proto::tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let graph = nnc_onnx::proto::GraphProto {
        name: Some("built_in".into()),
        node: vec![
            node("Conv", &["x", "w"], "c", vec![ints("pads", vec![1, 1, 1, 1])]),
            node("Relu", &["c"], "r", vec![]),
            node("MaxPool", &["r"], "p", vec![ints("kernel_shape", vec![2, 2]), ints("strides", vec![2, 2])]),
            node("Reshape", &["p", "shape"], "flat", vec![]),
            node("Gemm", &["flat", "fc"], "y", vec![]),
        ],
        initializer: vec![
            tensor("w", vec![3, 2, 3, 3], vec![0.1; 54]),
            TensorProto {
                name: Some("shape".into()),
                dims: vec![2],
                data_type: Some(7),
                int64_data: vec![1, 27],
                ..Default::default()
            },
            tensor("fc", vec![27, 4], vec![0.01; 108]),
        ],
        input: vec![input],
        output: vec![nnc_onnx::proto::ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![nnc_onnx::proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// Real models: the small shared ones and a spread of ONNX node tests, where present.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("built-in".to_string(), built_in_model())];
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["digits_mlp", "digits_cnn", "lstm2", "silero_vad_16k_op15"] {
        let path = root.join("../shared/models").join(name).join("model.onnx");
        if let Ok(bytes) = std::fs::read(&path) {
            out.push((name.to_string(), bytes));
        }
    }
    for name in
        ["test_conv_with_strides_padding", "test_layer_normalization_4d_axis1", "test_slice_neg_steps", "test_gather_1"]
    {
        if let Ok(bytes) = std::fs::read(root.join(".nnc-data/onnx-node").join(name).join("model.onnx")) {
            out.push((name.to_string(), bytes));
        }
    }
    out
}

const EXTREMES: [i64; 8] = [0, -1, 1, i64::MAX, i64::MIN, 1 << 40, -(1 << 40), 65_537];

/// One structural mutation of a decoded model.
fn mutate_structure(model: &mut ModelProto, rng: &mut Rng) {
    let Some(g) = model.graph.as_mut() else { return };
    match rng.below(7) {
        0 if !g.initializer.is_empty() => {
            let i = rng.below(g.initializer.len());
            let t = &mut g.initializer[i];
            if t.dims.is_empty() {
                t.dims.push(EXTREMES[rng.below(EXTREMES.len())]);
            } else {
                let d = rng.below(t.dims.len());
                t.dims[d] = EXTREMES[rng.below(EXTREMES.len())];
            }
        }
        1 if !g.initializer.is_empty() => {
            let i = rng.below(g.initializer.len());
            g.initializer[i].data_type = Some(rng.below(25) as i32);
        }
        2 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            if let Some(a) = g.node[i].attribute.first_mut() {
                a.i = Some(EXTREMES[rng.below(EXTREMES.len())]);
                for v in a.ints.iter_mut() {
                    *v = EXTREMES[rng.below(EXTREMES.len())];
                }
            }
        }
        3 if g.node.len() > 1 => {
            let (i, j) = (rng.below(g.node.len()), rng.below(g.node.len()));
            let op = g.node[j].op_type.clone();
            g.node[i].op_type = op;
        }
        4 if !g.node.is_empty() => {
            let i = rng.below(g.node.len());
            if !g.node[i].input.is_empty() {
                let k = rng.below(g.node[i].input.len());
                g.node[i].input.remove(k);
            }
        }
        5 if !g.node.is_empty() => {
            let (i, j) = (rng.below(g.node.len()), rng.below(g.node.len()));
            g.node.swap(i, j);
        }
        _ => {
            for v in &mut g.input {
                if let Some(nnc_onnx::proto::type_proto::Value::TensorType(t)) =
                    v.r#type.as_mut().and_then(|t| t.value.as_mut())
                {
                    if let Some(s) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                        s.value = Some(nnc_onnx::proto::tensor_shape_proto::dimension::Value::DimValue(
                            EXTREMES[rng.below(EXTREMES.len())],
                        ));
                    }
                }
            }
        }
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        _ => {
            if let Ok(mut model) = ModelProto::decode(seed) {
                for _ in 0..1 + rng.below(3) {
                    mutate_structure(&mut model, rng);
                }
                bytes = model.encode_to_vec();
            }
        }
    }
    bytes
}

#[test]
fn mutated_models_never_panic_or_allocate_hugely() {
    let seeds = seeds();
    let per_seed = 1200 / seeds.len() + 1;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut errors) = (0, 0);
    for (name, seed) in &seeds {
        for k in 0..per_seed {
            let mutant = mutate(seed, &mut rng);
            let what = format!("{name} mutant {k}");
            let result = catch_unwind(AssertUnwindSafe(|| {
                nnc_onnx::import_bytes(Bytes::from(mutant.clone()), &what, None, &Default::default())
            }));
            match result {
                Ok(Ok(graph)) => {
                    nnc_ir::verify(&graph).unwrap_or_else(|e| panic!("{what}: imported an invalid graph: {e}"));
                    ok += 1;
                }
                Ok(Err(_)) => errors += 1,
                Err(_) => panic!("{what} made the importer panic (mutant of {} bytes)", mutant.len()),
            }
        }
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    eprintln!(
        "{} mutants of {} seeds: {ok} imported, {errors} rejected; largest allocation {largest} bytes",
        ok + errors,
        seeds.len()
    );
    assert!(ok + errors >= 1000);
    assert!(largest <= ALLOCATION_CAP);
}
