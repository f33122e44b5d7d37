//! Sessions: symbolic dimensions bound at run time with one compile per shape, inputs checked
//! with errors naming the input, outputs into caller buffers, every target agreeing with the
//! interpreter, one wgpu submission per run, and CPU bundles run through a session.

use nnc_ir::TensorData;
use nnc_kernel::DeviceKind;
use nnc_runtime::{Session, SessionError, SessionOptions, Target};

/// A small MLP layer over a symbolic batch, with a softmax (a row reduction) at the end.
const MODEL: &str = "graph layer(%x: f32[batch, 4]) {
  %w: f32[4, 3] = constant [0.5, -1.0, 0.25, 1.5, 0.0, -0.5, 2.0, 1.0, 0.75, -0.25, 0.5, 1.0]
  %b: f32[3] = constant [0.1, -0.2, 0.3]
  %m: f32[batch, 3] = matmul(%x, %w)
  %a: f32[batch, 3] = add(%m, %b)
  %r: f32[batch, 3] = relu(%a)
  %y: f32[batch, 3] = softmax(%r) {axis = 1}
  return %y
}
";

fn graph() -> nnc_ir::Graph {
    nnc_ir::text::parse(MODEL, "layer.nnir").unwrap()
}

fn input(batch: usize) -> TensorData {
    let v: Vec<f32> = (0..batch * 4).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
    TensorData::from_vec(vec![batch, 4], &v)
}

fn assert_close(found: &TensorData, expected: &TensorData) {
    assert_eq!(found.shape(), expected.shape());
    for (f, e) in found.to_f64_vec().iter().zip(expected.to_f64_vec()) {
        assert!((f - e).abs() <= 1e-5 + 1e-4 * e.abs(), "{f} vs {e}");
    }
}

#[test]
fn symbolic_batches_compile_once_per_shape() {
    let mut s = Session::new(graph(), SessionOptions::target(Target::Cpu)).unwrap();
    for batch in [2, 5, 2, 5, 1] {
        let x = input(batch);
        let out = s.run(std::slice::from_ref(&x)).unwrap();
        let reference =
            nnc_interp::run(&nnc_lower::bind_input_shapes(&graph(), std::slice::from_ref(&x)), &[x]).unwrap();
        assert_close(&out[0], &reference[0]);
    }
    assert_eq!(s.compiled_shapes(), 3);
    let report = s.report().unwrap();
    assert_eq!(report.shapes, vec![vec![1, 4]]);
    let names: Vec<&str> = report.phases.0.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["bind", "optimize", "fuse", "schedule", "codegen"]);
    assert!(report.kernels >= 1 && report.arena_bytes >= report.arena_lower_bound);
}

#[test]
fn every_target_agrees_with_the_interpreter() {
    let x = input(3);
    let mut reference = Session::new(graph(), SessionOptions::target(Target::Interp)).unwrap();
    let expected = reference.run(std::slice::from_ref(&x)).unwrap();
    for target in [Target::Cpu, Target::KernelInterp(DeviceKind::Gpu), Target::KernelInterp(DeviceKind::Cpu)] {
        let mut s = Session::new(graph(), SessionOptions::target(target)).unwrap();
        let out = s.run(std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{}: {e}", target.name()));
        assert_close(&out[0], &expected[0]);
    }
}

#[test]
fn bad_inputs_name_the_input() {
    let mut s = Session::new(graph(), SessionOptions::default()).unwrap();
    let wrong_dtype = TensorData::from_vec(vec![2, 4], &[0i32; 8]);
    let err = s.run(&[wrong_dtype]).unwrap_err();
    assert!(matches!(&err, SessionError::Input { name, .. } if name == "x"), "{err}");
    let wrong_dim = TensorData::from_vec(vec![2, 5], &[0f32; 10]);
    assert!(s.run(&[wrong_dim]).unwrap_err().to_string().contains("%x"));
    let err = s.run(&[]).unwrap_err();
    assert!(matches!(err, SessionError::InputCount { expected: 1, found: 0, .. }), "{err}");
    let err = s.prepare(&[vec![2, 4, 1]]).unwrap_err();
    assert!(matches!(&err, SessionError::Input { name, .. } if name == "x"), "{err}");
    assert_eq!(s.compiled_shapes(), 0, "nothing is compiled for bad inputs");
}

#[test]
fn outputs_go_into_caller_buffers() {
    let mut s = Session::new(graph(), SessionOptions::default()).unwrap();
    let x = input(2);
    let expected = s.run(std::slice::from_ref(&x)).unwrap();
    let mut buffer = vec![0u8; 2 * 3 * 4];
    s.run_into(std::slice::from_ref(&x), &mut [buffer.as_mut_slice()]).unwrap();
    assert_eq!(&buffer[..], &expected[0].bytes()[..]);
    let mut short = vec![0u8; 4];
    let err = s.run_into(&[x], &mut [short.as_mut_slice()]).unwrap_err();
    assert!(matches!(err, SessionError::OutputBuffer { expected: 24, found: 4, .. }), "{err}");
}

#[test]
fn wgsl_sessions_submit_once_per_run() {
    let x = input(4);
    let mut s = Session::new(graph(), SessionOptions::target(Target::Wgsl)).unwrap();
    let out = match s.run(std::slice::from_ref(&x)) {
        Ok(out) => out,
        Err(e) if e.to_string().contains("adapter") && std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: no wgpu adapter ({e}); install mesa-vulkan-drivers and libvulkan1");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    eprintln!("wgsl session on {}", s.adapter_name().unwrap());
    let expected =
        Session::new(graph(), SessionOptions::target(Target::Interp)).unwrap().run(std::slice::from_ref(&x)).unwrap();
    assert_close(&out[0], &expected[0]);
    assert_eq!(s.submissions(), Some(1));
    s.run(std::slice::from_ref(&x)).unwrap();
    s.run(&[x]).unwrap();
    assert_eq!(s.submissions(), Some(3), "one queue submission per run, none per kernel");
}

#[test]
fn cpu_bundles_run_in_a_session_for_their_shapes_only() {
    let bound = nnc_lower::bind_shapes(&graph(), &[vec![2, 4]], None);
    let program = nnc_lower::compile(&bound, &nnc_kernel::Device::cpu(), None).unwrap();
    let dir = std::env::temp_dir().join(format!("nnc-session-bundle-{}", std::process::id()));
    nnc_cpu::write_bundle(&program, &dir).unwrap();
    let mut s = Session::from_cpu_bundle(&dir, Some(1)).unwrap();
    assert_eq!(s.inputs()[0].0, "x");
    assert_eq!(s.outputs(), ["y"]);
    let x = input(2);
    let expected =
        Session::new(graph(), SessionOptions::target(Target::Interp)).unwrap().run(std::slice::from_ref(&x)).unwrap();
    assert_close(&s.run(&[x]).unwrap()[0], &expected[0]);
    let err = s.run(&[input(3)]).unwrap_err();
    assert!(matches!(&err, SessionError::Bundle(_)), "{err}");
    assert!(err.to_string().starts_with("input %x: the bundle was compiled for f32[2, 4], not f32[3, 4]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
