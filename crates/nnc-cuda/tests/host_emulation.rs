//! The printed CUDA C++ executed without a GPU: the translation unit is compiled as host C++20
//! by `g++` with a small emulation of the CUDA execution model (one `std::thread` per CUDA
//! thread, blocks one after another, `__shared__` as function statics, `__syncthreads()` and the
//! warp shuffles through `std::barrier`s), and its outputs must match the Kernel-IR
//! interpreter's. This checks that the printer transliterates the Kernel IR faithfully
//! (indexing, op semantics, casts, lazy selects, the warp-shuffle tails of tree reductions)
//! wherever a C++ compiler exists; `f16`/`bf16` kernels (PTX `cvt` in inline assembly) are
//! covered by NVRTC and ptxas only. Without `g++`: a loud skip (a failure in CI).

use nnc_ir::{DType, Graph, GraphBuilder, TensorData};
use nnc_kernel::backend::Backend;
use nnc_kernel::program::BufferKind;
use nnc_kernel::program::Program;
use nnc_lower::compile;
use nnc_testkit::compare::compare;
use nnc_testkit::families::FAMILIES;
use nnc_testkit::graphs::fixed_graphs;
use nnc_testkit::inputs::inputs_for;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;

const HOST_PRELUDE: &str = r#"
#include <barrier>
#include <cstdio>
#include <cstring>
#include <functional>
#include <math.h>
#include <memory>
#include <thread>
#include <vector>
struct nnc_dim3 { unsigned x = 0, y = 0, z = 0; };
static thread_local nnc_dim3 threadIdx, blockIdx;
static thread_local std::barrier<>* nnc_block_barrier;
static thread_local std::barrier<>* nnc_warp_barrier;
static unsigned long long nnc_shfl_slots[1024];
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
static inline void __syncthreads() { nnc_block_barrier->arrive_and_wait(); }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }
template <typename T> static T __shfl_down_sync(unsigned, T x, int d) {
  unsigned t = threadIdx.x, lane = t % 32;
  unsigned long long bits = 0;
  std::memcpy(&bits, &x, sizeof(T));
  nnc_shfl_slots[t] = bits;
  nnc_warp_barrier->arrive_and_wait();
  unsigned long long other = lane + d < 32 ? nnc_shfl_slots[t + d] : bits;
  nnc_warp_barrier->arrive_and_wait();
  T r;
  std::memcpy(&r, &other, sizeof(T));
  return r;
}
static void nnc_launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       const std::function<void()>& kernel) {
  const unsigned n = bx * by * bz;
  for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
      for (unsigned x = 0; x < gx; ++x) {
        std::barrier<> block(n);
        std::vector<std::unique_ptr<std::barrier<>>> warps;
        for (unsigned w = 0; w * 32 < n; ++w) warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - 32 * w)));
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < n; ++t)
          threads.emplace_back([&, t] {
            threadIdx = {t % bx, (t / bx) % by, t / (bx * by)};
            blockIdx = {x, y, z};
            nnc_block_barrier = &block;
            nnc_warp_barrier = warps[t / 32].get();
            kernel();
          });
        for (auto& th : threads) th.join();
      }
}
struct nnc_ptr {
  unsigned char* p;
  template <typename T> operator T*() const { return (T*)p; }
};
"#;

fn gxx() -> Option<()> {
    if Command::new("g++").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some(());
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have g++ (build-essential)");
    eprintln!("SKIPPED: g++ not found (install build-essential)");
    None
}

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-cuda-host-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The program's CUDA C++ plus a `main` that loads inputs and constants, launches every kernel
/// in order and writes the outputs.
fn host_source(program: &Program) -> String {
    let mut s = String::from(HOST_PRELUDE);
    s.push_str(&nnc_cuda::print_program(program).unwrap_or_else(|e| panic!("{e}")));
    let fused = &program.fused;
    s.push_str("\nint main() {\n");
    let _ = writeln!(s, "  std::vector<std::vector<unsigned char>> b({});", fused.buffers.len());
    for (i, buf) in fused.buffers.iter().enumerate() {
        let bytes = (buf.numel().max(0) as usize * buf.dtype.size_bytes()).max(1);
        let _ = writeln!(s, "  b[{i}].assign({bytes}, 0);");
        if !matches!(buf.kind, BufferKind::Intermediate) {
            let _ = writeln!(
                s,
                "  {{ FILE* f = fopen(\"in{i}.bin\", \"rb\"); if (!f) return 2; if (fread(b[{i}].data(), 1, {bytes}, f) != {bytes}) return 3; fclose(f); }}"
            );
        }
    }
    for (g, (group, kernel)) in fused.groups.iter().zip(&program.kernels).enumerate() {
        let dims = nnc_cuda::launch_dims(kernel).unwrap();
        let args: Vec<String> =
            group.reads.iter().chain(&group.writes).map(|b| format!("nnc_ptr{{b[{}].data()}}", b.index())).collect();
        let [gx, gy, gz] = dims.grid;
        let [bx, by, bz] = dims.block;
        let _ = writeln!(
            s,
            "  nnc_launch({gx}, {gy}, {gz}, {bx}, {by}, {bz}, [&] {{ {}({}); }});",
            nnc_cuda::entry_name(g, kernel),
            args.join(", ")
        );
    }
    for (k, o) in fused.outputs.iter().enumerate() {
        let buf = &fused.buffers[o.index()];
        let bytes = buf.numel().max(0) as usize * buf.dtype.size_bytes();
        let _ = writeln!(
            s,
            "  {{ FILE* f = fopen(\"out{k}.bin\", \"wb\"); fwrite(b[{}].data(), 1, {bytes}, f); fclose(f); }}",
            o.index()
        );
    }
    s.push_str("  return 0;\n}\n");
    s
}

/// Runs `program` as host C++ on `inputs`; returns its outputs.
fn run_on_host(name: &str, program: &Program, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
    let dir = work_dir(name);
    let source = host_source(program);
    std::fs::write(dir.join("k.cpp"), &source).unwrap();
    for (i, buf) in program.fused.buffers.iter().enumerate() {
        let data = match &buf.kind {
            BufferKind::Input(n) => inputs[*n].bytes().to_vec(),
            BufferKind::Constant(t) => t.bytes().to_vec(),
            BufferKind::Intermediate => continue,
        };
        let mut data = data;
        data.resize((buf.numel().max(0) as usize * buf.dtype.size_bytes()).max(1), 0);
        std::fs::write(dir.join(format!("in{i}.bin")), data).unwrap();
    }
    let out = Command::new("g++")
        .args(["-std=c++20", "-O1", "-pthread", "-w", "k.cpp", "-o", "k"])
        .current_dir(&dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("g++ failed:\n{}\n{source}", String::from_utf8_lossy(&out.stderr)));
    }
    let run = Command::new(dir.join("k")).current_dir(&dir).output().map_err(|e| e.to_string())?;
    if !run.status.success() {
        return Err(format!("the host program failed: {:?}", run.status));
    }
    let mut outputs = Vec::new();
    for (k, o) in program.fused.outputs.iter().enumerate() {
        let buf = &program.fused.buffers[o.index()];
        let bytes = std::fs::read(dir.join(format!("out{k}.bin"))).map_err(|e| e.to_string())?;
        let shape = buf.shape.iter().map(|&d| d as usize).collect();
        outputs.push(TensorData::from_bytes(buf.dtype, shape, bytes.into()).map_err(|e| e.to_string())?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(outputs)
}

fn check_on_host(name: &str, graph: &Graph, inputs: &[TensorData]) -> Result<(), String> {
    let program = compile(graph, &nnc_cuda::CudaBackend.device(), None).map_err(|e| e.to_string())?;
    let want = program.run_interpreted(inputs).map_err(|e| format!("{name}: interpreter: {e}"))?;
    let got = run_on_host(name, &program, inputs)?;
    for (k, (w, f)) in want.iter().zip(&got).enumerate() {
        compare(&format!("{name} output {k}"), w, f)
            .map_err(|m| format!("{m}\n{}", nnc_cuda::print_program(&program).unwrap_or_default()))?;
    }
    Ok(())
}

#[test]
fn fixed_graphs_match_the_kernel_interpreter_as_host_cpp() {
    if gxx().is_none() {
        return;
    }
    let graphs = fixed_graphs();
    let failures: Vec<String> = graphs
        .iter()
        .enumerate()
        .filter_map(|(i, g)| check_on_host(&format!("{}_{i}", g.name), g, &inputs_for(g, i as u64)).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn random_families_match_the_kernel_interpreter_as_host_cpp() {
    if gxx().is_none() {
        return;
    }
    let mut failures = Vec::new();
    for (name, build) in FAMILIES {
        for seed in 0..3u64 {
            let g = build(seed);
            if let Err(e) = check_on_host(&format!("{name}_{seed}"), &g, &inputs_for(&g, seed)) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Integer, bool and f64 arithmetic, max, comparisons and casts.
#[test]
fn other_dtypes_match_the_kernel_interpreter_as_host_cpp() {
    if gxx().is_none() {
        return;
    }
    let mut failures = Vec::new();
    for dtype in [DType::F64, DType::I64, DType::I32, DType::I8, DType::U8, DType::Bool] {
        let mut b = GraphBuilder::new(&format!("typed_{}", dtype.name()));
        let x = b.input("x", dtype, [3, 5]).unwrap();
        let y = b.input("y", dtype, [3, 5]).unwrap();
        let (s, m) = if dtype == DType::Bool {
            let s = b.binary(nnc_ir::BinaryOp::Xor, x, y).unwrap();
            (s, b.binary(nnc_ir::BinaryOp::Or, s, x).unwrap())
        } else {
            let s = b.add(x, y).unwrap();
            let p = b.mul(s, y).unwrap();
            (s, b.max(p, x).unwrap())
        };
        let c = b.binary(nnc_ir::BinaryOp::Lt, s, m).unwrap();
        b.output(c);
        let f = b.cast(m, DType::F32).unwrap();
        let h = b.binary_scalar(nnc_ir::BinaryOp::Mul, f, 0.75).unwrap();
        let back = b.cast(h, dtype).unwrap();
        b.output(back);
        let r = b.reduce_sum(f, &[1], false).unwrap();
        b.output(r);
        let graph = b.finish().unwrap();
        let values = |seed: i64| -> Vec<f64> {
            (0..15)
                .map(|i| match dtype {
                    DType::Bool => ((i * 7 + seed) % 3 == 0) as i64 as f64,
                    DType::U8 => ((i * 37 + seed * 11) % 256) as f64,
                    DType::I8 => ((i * 37 + seed * 11) % 256 - 128) as f64,
                    DType::F64 => (i as f64 - 7.0) * 0.37 + seed as f64,
                    _ => ((i * 1_234_567 + seed * 7_654_321) % 2001 - 1000) as f64,
                })
                .collect()
        };
        let inputs = vec![
            TensorData::from_f64(dtype, vec![3, 5], &values(1)),
            TensorData::from_f64(dtype, vec![3, 5], &values(2)),
        ];
        if let Err(e) = check_on_host(&format!("typed_{}", dtype.name()), &graph, &inputs) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
