//! Measures the CPU backend: matmul 256/512/1024 GFLOP/s next to numpy's (when `python3` has
//! numpy), and (when `../shared` is present) resnet18, mobilenet_v2 and transformer_encoder
//! batch 1 compile time and run latency (median). `cargo run --release -p nnc-cpu --example
//! cpu_bench` (`--dump NAME` prints the kernels of a shared model, `--graph FILE.nnir` times one
//! graph; `NNC_CPU_PROFILE=1` prints the time of every kernel).

use nnc_ir::{DType, GraphBuilder, TensorData};
use std::time::Instant;

fn median_ms(mut f: impl FnMut(), iters: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(name) = args.iter().position(|a| a == "--dump").and_then(|i| args.get(i + 1)) {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name);
        let g = nnc_onnx::import_file(&dir.join("model.onnx")).unwrap();
        let g = nnc_opt::optimize(&g, &nnc_opt::OptOptions::default()).unwrap().graph;
        let g = nnc_lower::bind_shapes(&g, &[], Some(1));
        let p = nnc_lower::compile(&g, &nnc_kernel::Device::cpu(), None).unwrap();
        for k in &p.kernels {
            println!("{k}");
        }
        return;
    }
    if let Some(file) = args.iter().position(|a| a == "--graph").and_then(|i| args.get(i + 1)) {
        // Runs one .nnir graph (f32 inputs, static shapes) on made-up data and times it.
        let g = nnc_ir::text::parse(&std::fs::read_to_string(file).unwrap(), file).unwrap();
        let p = nnc_cpu::CpuProgram::new(&nnc_lower::compile(&g, &nnc_cpu::jit_device(), None).unwrap()).unwrap();
        let inputs: Vec<TensorData> = g
            .inputs
            .iter()
            .map(|&v| {
                let shape = g.values[v.index()].ty.static_shape().unwrap();
                let n: usize = shape.iter().product();
                let data: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1).collect();
                TensorData::from_vec(shape, &data)
            })
            .collect();
        let ms = median_ms(
            || {
                p.run(&inputs).unwrap();
            },
            5,
        );
        println!("{file}: run {ms:.3} ms (median of 5), {} vectorized loops", p.vectorized_loops());
        return;
    }
    let numpy = numpy_gflops(&[256, 512, 1024]);
    for (k, n) in [256usize, 512, 1024].into_iter().enumerate() {
        let mut b = GraphBuilder::new("matmul");
        let x = b.input("a", DType::F32, [n, n]).unwrap();
        let y = b.input("b", DType::F32, [n, n]).unwrap();
        let z = b.matmul(x, y).unwrap();
        b.output(z);
        let g = b.finish().unwrap();
        let p = nnc_cpu::CpuProgram::new(&nnc_lower::compile(&g, &nnc_cpu::jit_device(), None).unwrap()).unwrap();
        let data: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let inputs = [TensorData::from_vec(vec![n, n], &data), TensorData::from_vec(vec![n, n], &data)];
        let ms = median_ms(
            || {
                p.run(&inputs).unwrap();
            },
            if n <= 512 { 11 } else { 5 },
        );
        let gflops = 2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e9;
        let np = match numpy.as_ref().and_then(|v| v.get(k)) {
            Some(np) => format!(", numpy {np:.1} GFLOP/s ({:.0}%)", 100.0 * gflops / np),
            None => String::new(),
        };
        println!(
            "matmul {n}: compile {:.1} ms, run {ms:.2} ms, {gflops:.1} GFLOP/s ({} threads){np}",
            p.compile_time().as_secs_f64() * 1e3,
            rayon::current_num_threads()
        );
    }
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    for name in ["resnet18", "mobilenet_v2", "transformer_encoder"] {
        let dir = models.join(name);
        if !dir.is_dir() {
            println!("{name}: skipped ({} not found)", dir.display());
            continue;
        }
        let s = Instant::now();
        let (g, inputs) = load(&dir);
        let import = s.elapsed();
        let s = Instant::now();
        let g = nnc_opt::optimize(&g, &nnc_opt::OptOptions::default()).unwrap().graph;
        let opt = s.elapsed();
        let p = nnc_cpu::CpuProgram::new(&nnc_lower::compile(&g, &nnc_cpu::jit_device(), None).unwrap()).unwrap();
        let runs = 7;
        let ms = median_ms(
            || {
                p.run(&inputs).unwrap();
            },
            runs,
        );
        println!(
            "{name} batch 1: import {:.0} ms, optimize {:.0} ms, fuse+schedule+JIT {:.0} ms, run {ms:.2} ms (median of {runs}), {} kernels, arena {} KiB",
            import.as_secs_f64() * 1e3,
            opt.as_secs_f64() * 1e3,
            p.compile_time().as_secs_f64() * 1e3,
            p.kernel_count(),
            p.arena_bytes() / 1024,
        );
    }
}

/// A shared model imported with the input shapes of `test_data_set_0`, and those inputs.
fn load(dir: &std::path::Path) -> (nnc_ir::Graph, Vec<TensorData>) {
    let model = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    let names = nnc_onnx::read_inputs(&model).unwrap();
    let inputs: Vec<TensorData> =
        (0..names.len()).map(|i| nnc_onnx::read_tensor_file(&data.join(format!("input_{i}.pb"))).unwrap().1).collect();
    let shapes = names.iter().zip(&inputs).map(|((n, _), t)| (n.clone(), t.shape().to_vec())).collect();
    let options = nnc_onnx::ImportOptions { input_shapes: shapes, ..Default::default() };
    (nnc_onnx::import_file_with(&model, &options).unwrap(), inputs)
}

/// numpy's (OpenBLAS) f32 matmul GFLOP/s for each size, median of 11 runs, when `python3` with
/// numpy is available.
fn numpy_gflops(sizes: &[usize]) -> Option<Vec<f64>> {
    let script = format!(
        "import numpy as np, time\nfor n in {sizes:?}:\n  a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32); a @ b\n  t = []\n  for _ in range(11):\n    s = time.perf_counter(); a @ b; t.append(time.perf_counter() - s)\n  t.sort(); print(2 * n ** 3 / t[len(t) // 2] / 1e9)\n"
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.lines().map(|l| l.trim().parse().ok()).collect()
}
