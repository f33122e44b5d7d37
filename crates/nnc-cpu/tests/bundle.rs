//! Bundles: machine code written by `write_bundle` and loaded by `load_bundle` computes what the
//! JIT computes, and a damaged or foreign bundle is refused with an error naming the file; for
//! Cranelift's code (`kernels.bin`) and LLVM's linked image (`kernels.image`) alike.

use nnc_cpu::{load_bundle, write_bundle, write_bundle_with, CpuError, CpuProgram, EmitOptions};
use nnc_ir::TensorData;
use nnc_kernel::bundle::{Code, Manifest};
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use nnc_lower::compile;
use std::path::{Path, PathBuf};

const MODEL: &str = "graph g(%x: f32[4, 8], %w: f32[8, 8]) {
  %m: f32[4, 8] = matmul(%x, %w)
  %e: f32[4, 8] = sin(%m)
  %c: f32[8] = constant [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
  %y: f32[4, 8] = add(%e, %c)
  return %y
}
";

fn program() -> Program {
    let g = nnc_ir::text::parse(MODEL, "bundle.nnir").unwrap();
    compile(&g, &Device::cpu(), None).unwrap()
}

/// The code generators: Cranelift alone, and LLVM where this build and host have it.
fn code_generators() -> Vec<(&'static str, EmitOptions)> {
    let mut all = vec![("cranelift", EmitOptions { llvm: false, ..EmitOptions::default() })];
    if cfg!(feature = "llvm") && nnc_cpu::jit_device().vector > 4 {
        all.push(("llvm", EmitOptions::default()));
    }
    all
}

fn inputs() -> Vec<TensorData> {
    let x: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / 40.0).collect();
    let w: Vec<f32> = (0..64).map(|i| ((i * 7 % 13) as f32 - 6.0) / 30.0).collect();
    vec![TensorData::from_vec(vec![4, 8], &x), TensorData::from_vec(vec![8, 8], &w)]
}

fn folder(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nnc-bundle-{tag}-{}", std::process::id()))
}

fn load_error(dir: &Path) -> String {
    match load_bundle(dir, &Default::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e @ CpuError::Bundle { .. }) => e.to_string(),
        Err(e) => panic!("not a bundle error: {e}"),
    }
}

#[test]
fn a_loaded_bundle_computes_what_the_jit_computes() {
    let p = program();
    for (name, emit) in code_generators() {
        let dir = folder(&format!("same-{name}"));
        let manifest = write_bundle_with(&p, &dir, &emit).unwrap();
        // The sin helper (per element, or per vector through `nnc_map4`/`nnc_map`) is reached
        // through patched absolute addresses.
        let calls = |k: &nnc_kernel::bundle::KernelEntry| {
            let code = format!("{:?}", k.code);
            code.contains("nnc_sin") || code.contains("nnc_map")
        };
        assert!(manifest.kernels.iter().any(calls), "{name}");
        let linked = manifest.kernels.iter().filter(|k| matches!(k.code, Code::Linked { .. })).count();
        assert_eq!(linked > 0, name == "llvm", "{name}: {linked} kernels in LLVM's image");
        let options = nnc_cpu::CpuOptions { emit, threads: None };
        let jit = CpuProgram::with_options(&p, &options).unwrap().run(&inputs()).unwrap();
        let (loaded, _) = load_bundle(&dir, &Default::default()).unwrap();
        let out = loaded.run(&inputs()).unwrap();
        assert_eq!(out[0].to_f64_vec(), jit[0].to_f64_vec(), "{name}");
        assert_eq!(out[0].shape(), [4, 8]);
        // Run twice: the loaded code and the weights stay valid.
        assert_eq!(loaded.run(&inputs()).unwrap()[0].to_f64_vec(), jit[0].to_f64_vec());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn damaged_or_foreign_bundles_are_refused() {
    for (name, emit) in code_generators() {
        damaged_or_foreign_bundles_are_refused_with(name, &emit);
    }
}

fn damaged_or_foreign_bundles_are_refused_with(name: &str, emit: &EmitOptions) {
    let p = program();
    let dir = folder(&format!("damaged-{name}"));
    let written = write_bundle_with(&p, &dir, emit).unwrap();
    let manifest_path = dir.join("manifest.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let bundle = Manifest::read(&dir).unwrap();
    let files: Vec<(String, Vec<u8>)> = bundle.files.clone().into_iter().collect();
    // A manifest changed and signed again, as nnc would have written it.
    let resign = |change: &dyn Fn(&mut Manifest)| {
        let mut m = written.clone();
        change(&mut m);
        m.write(&dir, &bundle.weights, &files).unwrap();
    };
    let edit = |from: &str, to: &str| {
        assert!(original.contains(from), "{from}");
        std::fs::write(&manifest_path, original.replacen(from, to, 1)).unwrap();
    };
    edit("\"target\": \"cpu\"", "\"target\": \"wgsl\"");
    assert!(load_error(&dir).contains("does not match its checksum"));

    resign(&|m| m.target_info.get_mut("isa_flags").unwrap().insert_str(0, "has_imaginary_extension,"));
    let e = load_error(&dir);
    assert!(e.contains("has_imaginary_extension") && e.contains("manifest.json"), "{e}");

    resign(&|m| m.target = "wgsl".into());
    assert!(load_error(&dir).contains("not `cpu`"));

    edit("\"format\": 2", "\"format\": 99");
    assert!(load_error(&dir).contains("format 99"));

    std::fs::write(&manifest_path, "{ not json").unwrap();
    assert!(load_error(&dir).contains("manifest.json"));

    std::fs::write(&manifest_path, &original).unwrap();
    let code_file = if name == "llvm" { "kernels.image" } else { "kernels.bin" };
    let code = dir.join(code_file);
    let bytes = std::fs::read(&code).unwrap();
    std::fs::write(&code, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_error(&dir).contains(code_file), "{name}");
    if name == "llvm" {
        // LLVM's code names the CPU features it needs.
        std::fs::write(&code, &bytes).unwrap();
        resign(&|m| m.target_info.get_mut("llvm_features").unwrap().insert_str(0, "+imaginary-extension,"));
        let e = load_error(&dir);
        assert!(e.contains("imaginary-extension") && e.contains("manifest.json"), "{e}");
        std::fs::write(&manifest_path, &original).unwrap();
    }
    // One flipped bit of code is refused before it can run.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    std::fs::write(&code, &flipped).unwrap();
    assert!(load_error(&dir).contains("checksum"), "{name}");

    std::fs::write(&code, &bytes).unwrap();
    std::fs::write(dir.join("weights.bin"), [0u8; 3]).unwrap();
    assert!(load_error(&dir).contains("weights.bin"));

    std::fs::remove_dir_all(&dir).unwrap();
    assert!(load_error(&dir).contains("not a bundle"));
}

#[test]
fn gpu_programs_are_not_written_as_cpu_bundles() {
    let g = nnc_ir::text::parse(MODEL, "bundle.nnir").unwrap();
    let gpu = compile(&g, &Device::gpu(), None).unwrap();
    let err = write_bundle(&gpu, &folder("gpu")).unwrap_err();
    assert!(err.to_string().contains("GPU"), "{err}");
}
