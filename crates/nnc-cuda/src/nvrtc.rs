//! CUDA C++ → PTX with NVRTC (through cudarc), and PTX → SASS with `ptxas -v` for register,
//! shared-memory and spill counts: the checks that need no GPU.
//!
//! Finding the tools, first match wins:
//! - NVRTC: `$NNC_NVRTC_LIB` (a path to `libnvrtc.so.12`); `.nnc-data/cuda/nvidia/cuda_nvrtc/lib`
//!   of this checkout (where `scripts/setup.sh` unpacks the `nvidia-cuda-nvrtc-cu12` wheel); the
//!   wheel installed for `python3` (`import nvidia.cuda_nvrtc`); `/usr/local/cuda/lib64`; then
//!   the dynamic loader's own search (`LD_LIBRARY_PATH`).
//! - ptxas: `$NNC_PTXAS`; `.nnc-data/cuda/nvidia/cuda_nvcc/bin/ptxas`; the `nvidia-cuda-nvcc-cu12`
//!   wheel of `python3`; `/usr/local/cuda/bin/ptxas`; `ptxas` on `PATH`.
//!
//! cudarc panics when it cannot `dlopen` a library, so NVRTC is loaded here first, by full
//! path, with `libloading`, and kept loaded: cudarc's later `dlopen("libnvrtc.so.12")` then finds
//! the library already in the process (glibc matches loaded libraries by their soname). A
//! missing library is [`CudaError::NoNvrtc`].

use crate::CudaError;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The checkout's data directory for the CUDA tools (`scripts/setup.sh` fills it).
fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.nnc-data/cuda")
}

/// Where the `python3` on `PATH` has the package `module` (a namespace package of NVIDIA's
/// wheels), if it has it.
fn python_package_dir(module: &str) -> Option<PathBuf> {
    let code = format!("import {module} as m; print(list(m.__path__)[0])");
    let out = Command::new("python3").args(["-c", &code]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.is_dir().then_some(dir)
}

fn first_file(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates.into_iter().find(|p| p.is_file())
}

/// The NVRTC library this crate loads (see the module docs for the search).
pub fn nvrtc_library() -> Result<PathBuf, CudaError> {
    if let Some(p) = std::env::var_os("NNC_NVRTC_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(CudaError::NoNvrtc(format!("NNC_NVRTC_LIB={} is not a file", p.display())))
        };
    }
    let name = "libnvrtc.so.12";
    let mut candidates = vec![data_dir().join("nvidia/cuda_nvrtc/lib").join(name)];
    candidates.extend(python_package_dir("nvidia.cuda_nvrtc").map(|d| d.join("lib").join(name)));
    candidates.push(PathBuf::from("/usr/local/cuda/lib64").join(name));
    if let Some(p) = first_file(candidates) {
        return Ok(p);
    }
    // The loader's own search path.
    Ok(PathBuf::from(name))
}

static NVRTC: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads NVRTC once per process (see the module docs); an error says where it looked.
pub fn load_nvrtc() -> Result<(), CudaError> {
    NVRTC
        .get_or_init(|| {
            let path = nvrtc_library().map_err(|e| match e {
                CudaError::NoNvrtc(m) => m,
                e => e.to_string(),
            })?;
            // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
            match unsafe { libloading::Library::new(&path) } {
                Ok(lib) => {
                    // Keep it loaded for the life of the process, for cudarc.
                    std::mem::forget(lib);
                    Ok(())
                }
                Err(e) => Err(format!(
                    "cannot load {} ({e}); run scripts/setup.sh (it unpacks the nvidia-cuda-nvrtc-cu12 wheel into \
                     .nnc-data/cuda), `pip install nvidia-cuda-nvrtc-cu12`, or set NNC_NVRTC_LIB",
                    path.display()
                )),
            }
        })
        .clone()
        .map_err(CudaError::NoNvrtc)
}

/// The compute capability in an arch name: `sm_80`, `compute_80` or `80` → `80`.
fn arch_number(arch: &str) -> Result<&str, CudaError> {
    let n = arch.trim_start_matches("sm_").trim_start_matches("compute_");
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric()) || !n.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(CudaError::Data(format!("`{arch}` is not a GPU architecture (expected e.g. sm_80)")));
    }
    Ok(n)
}

/// Compiles CUDA C++ `source` to PTX for `arch` (`sm_80`, `sm_90`, ...) with NVRTC.
pub fn compile_ptx(source: &str, arch: &str) -> Result<String, CudaError> {
    compile_ptx_named(source, arch, "nnc.cu")
}

/// [`compile_ptx`], naming the source `name` in NVRTC's messages.
pub fn compile_ptx_named(source: &str, arch: &str, name: &str) -> Result<String, CudaError> {
    load_nvrtc()?;
    if source.contains('\0') {
        return Err(CudaError::Data("the CUDA source contains a NUL byte".into()));
    }
    let n = arch_number(arch)?;
    let options = cudarc::nvrtc::CompileOptions {
        arch: None,
        options: vec![format!("--gpu-architecture=compute_{n}"), "--std=c++17".into()],
        name: Some(name.to_string()),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(source, options) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => Err(CudaError::Nvrtc {
            name: name.to_string(),
            arch: arch.to_string(),
            log: log.to_string_lossy().into_owned(),
        }),
        Err(e) => Err(CudaError::Nvrtc { name: name.to_string(), arch: arch.to_string(), log: format!("{e:?}") }),
    }
}

/// The `ptxas` this crate runs (see the module docs for the search).
pub fn ptxas_path() -> Result<PathBuf, CudaError> {
    if let Some(p) = std::env::var_os("NNC_PTXAS") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(CudaError::NoPtxas(format!("NNC_PTXAS={} is not a file", p.display())))
        };
    }
    let mut candidates = vec![data_dir().join("nvidia/cuda_nvcc/bin/ptxas")];
    candidates.extend(python_package_dir("nvidia.cuda_nvcc").map(|d| d.join("bin/ptxas")));
    candidates.push(PathBuf::from("/usr/local/cuda/bin/ptxas"));
    if let Some(p) = first_file(candidates) {
        return Ok(p);
    }
    if Command::new("ptxas").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok(PathBuf::from("ptxas"));
    }
    Err(CudaError::NoPtxas(
        "not found; run scripts/setup.sh (it unpacks the nvidia-cuda-nvcc-cu12 wheel into .nnc-data/cuda), \
         `pip install nvidia-cuda-nvcc-cu12`, or set NNC_PTXAS"
            .into(),
    ))
}

/// What `ptxas -v` says about one entry function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtxasStats {
    pub function: String,
    pub arch: String,
    pub registers: u32,
    /// Static shared memory, bytes.
    pub shared_bytes: u32,
    pub stack_frame_bytes: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
}

/// Assembles `ptx` for `arch` with `ptxas -v` and returns the statistics of every entry
/// function, in the order ptxas reports them.
pub fn ptxas_report(ptx: &str, arch: &str) -> Result<Vec<PtxasStats>, CudaError> {
    let ptxas = ptxas_path()?;
    let n = arch_number(arch)?;
    let dir = std::env::temp_dir().join(format!("nnc-ptxas-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).map_err(|e| CudaError::NoPtxas(format!("{}: {e}", dir.display())))?;
    let input = dir.join("kernels.ptx");
    let output = dir.join("kernels.cubin");
    let result = (|| {
        std::fs::write(&input, ptx).map_err(|e| CudaError::NoPtxas(format!("{}: {e}", input.display())))?;
        let out = Command::new(&ptxas)
            .arg("-v")
            .arg(format!("--gpu-name=sm_{n}"))
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .map_err(|e| CudaError::NoPtxas(format!("running {}: {e}", ptxas.display())))?;
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(CudaError::Ptxas { arch: arch.to_string(), log });
        }
        Ok(parse_ptxas(&log, &format!("sm_{n}")))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The number before `unit` in `text` (`"12 registers"` → 12).
fn number_before(text: &str, unit: &str) -> Option<u32> {
    let i = text.find(unit)?;
    text[..i].split_whitespace().last()?.parse().ok()
}

/// Parses `ptxas -v` output: per function, `Compiling entry function 'f' for 'sm_80'`, then
/// `N bytes stack frame, N bytes spill stores, N bytes spill loads` and
/// `Used N registers, ... N bytes smem, ...`.
pub fn parse_ptxas(log: &str, arch: &str) -> Vec<PtxasStats> {
    let mut out: Vec<PtxasStats> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            out.push(PtxasStats { function: name, arch: arch.to_string(), ..Default::default() });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            cur.stack_frame_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            cur.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            cur.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used ") && line.contains("registers") {
            cur.registers = number_before(line, "registers").unwrap_or(0);
            cur.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

/// Whether NVRTC and ptxas are both available (for tests that skip without them).
pub fn tools_available() -> Result<(), CudaError> {
    load_nvrtc()?;
    ptxas_path().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_verbose_output() {
        let log = "ptxas info    : 0 bytes gmem\n\
                   ptxas info    : Compiling entry function 'k0' for 'sm_80'\n\
                   ptxas info    : Function properties for k0\n\
                   \x20   8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
                   ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 380 bytes cmem[0]\n\
                   ptxas info    : Compiling entry function 'k1' for 'sm_80'\n\
                   ptxas info    : Function properties for k1\n\
                   \x20   0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
                   ptxas info    : Used 10 registers, used 0 barriers, 360 bytes cmem[0]\n";
        let s = parse_ptxas(log, "sm_80");
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            PtxasStats {
                function: "k0".into(),
                arch: "sm_80".into(),
                registers: 40,
                shared_bytes: 2048,
                stack_frame_bytes: 8,
                spill_stores: 4,
                spill_loads: 12
            }
        );
        assert_eq!((s[1].registers, s[1].shared_bytes, s[1].spill_stores), (10, 0, 0));
    }

    #[test]
    fn arch_names() {
        assert_eq!(arch_number("sm_80").unwrap(), "80");
        assert_eq!(arch_number("compute_90a").unwrap(), "90a");
        assert!(arch_number("gfx90a").is_err());
        assert!(arch_number("sm_80; rm").is_err());
    }
}
