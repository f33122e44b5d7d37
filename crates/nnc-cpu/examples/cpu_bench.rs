//! Measures the CPU backend: matmul 512 and 1024 GFLOP/s, and (when `../shared` is present)
//! resnet18 batch 1 compile and run time. `cargo run --release -p nnc-cpu --example cpu_bench`
//! (`--dump NAME` prints the kernels of a shared model).

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
        let g = nnc_kernel::program::bind_shapes(&g, &[], Some(1));
        let p = nnc_kernel::program::compile(&g, &nnc_kernel::schedule::Device::cpu(), None).unwrap();
        for k in &p.kernels {
            println!("{k}");
        }
        return;
    }
    if let Some(file) = args.iter().position(|a| a == "--graph").and_then(|i| args.get(i + 1)) {
        // Runs one .nnir graph (f32 inputs, static shapes) on made-up data and times it.
        let g = nnc_ir::text::parse(&std::fs::read_to_string(file).unwrap(), file).unwrap();
        let p = nnc_cpu::CpuProgram::from_graph(&g).unwrap();
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
    for n in [512usize, 1024] {
        let mut b = GraphBuilder::new("matmul");
        let x = b.input("a", DType::F32, [n, n]).unwrap();
        let y = b.input("b", DType::F32, [n, n]).unwrap();
        let z = b.matmul(x, y).unwrap();
        b.output(z);
        let g = b.finish().unwrap();
        let p = nnc_cpu::CpuProgram::from_graph(&g).unwrap();
        let data: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let inputs = [TensorData::from_vec(vec![n, n], &data), TensorData::from_vec(vec![n, n], &data)];
        let ms = median_ms(
            || {
                p.run(&inputs).unwrap();
            },
            if n == 512 { 5 } else { 3 },
        );
        let gflops = 2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e9;
        println!(
            "matmul {n}: compile {:.1} ms, run {ms:.1} ms, {gflops:.2} GFLOP/s ({} threads)",
            p.compile_time().as_secs_f64() * 1e3,
            rayon::current_num_threads()
        );
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/resnet18");
    if !dir.is_dir() {
        println!("resnet18: skipped ({} not found)", dir.display());
        return;
    }
    let data = dir.join("test_data_set_0");
    let (_, input) = nnc_onnx::read_tensor_file(&data.join("input_0.pb")).unwrap();
    let s = Instant::now();
    let g = nnc_onnx::import_file(&dir.join("model.onnx")).unwrap();
    let import = s.elapsed();
    let s = Instant::now();
    let g = nnc_opt::optimize(&g, &nnc_opt::OptOptions::default()).unwrap().graph;
    let g = nnc_kernel::program::bind_input_shapes(&g, std::slice::from_ref(&input));
    let opt = s.elapsed();
    let p = nnc_cpu::CpuProgram::from_graph(&g).unwrap();
    let inputs = [input];
    let ms = median_ms(
        || {
            p.run(&inputs).unwrap();
        },
        5,
    );
    println!(
        "resnet18 batch 1: import {:.0} ms, optimize {:.0} ms, fuse+schedule+JIT {:.0} ms, run {ms:.1} ms (median of 5), {} kernels, arena {} KiB (lower bound {} KiB)",
        import.as_secs_f64() * 1e3,
        opt.as_secs_f64() * 1e3,
        p.compile_time().as_secs_f64() * 1e3,
        p.kernel_count(),
        p.arena_bytes() / 1024,
        p.memory_plan().lower_bound / 1024
    );
}
