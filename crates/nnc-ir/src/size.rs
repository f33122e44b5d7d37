//! How large a tensor may be, and allocation that reports running out of memory as an error.
//!
//! Sizes come from files a user hands nnc (a model's declared shapes, a `.npy` header, a bundle's
//! manifest), so every element count and byte size is computed with checked arithmetic, and one
//! limit, [`MAX_TENSOR_BYTES`], bounds them all: the verifier refuses a value above it, so no
//! later pass needs to think about overflow. Memory is then requested with [`try_vec`], which
//! refuses what the machine cannot hold and turns a failed allocation into an [`OutOfMemory`]
//! error naming what was being allocated, where Rust's allocation would abort the process.

use crate::{DType, TensorType};

/// The largest tensor nnc accepts, in bytes, counting every zero dimension as one: 2^48 bytes
/// (256 TiB). That is more than any machine's memory and within the virtual address space of
/// 64-bit processors, and it leaves every byte offset into a tensor, and every stride, far below
/// `i64::MAX` (Kernel IR's index type), so index arithmetic with small factors cannot overflow.
pub const MAX_TENSOR_BYTES: u64 = 1 << 48;

/// The bytes of a tensor of `dtype` and `shape` with every zero dimension counted as one (so the
/// figure bounds every stride, even of an empty tensor), or `None` if that exceeds `u64`.
pub fn extent_bytes(dtype: DType, shape: impl IntoIterator<Item = u64>) -> Option<u64> {
    shape.into_iter().try_fold(dtype.size_bytes() as u64, |acc, d| acc.checked_mul(d.max(1)))
}

/// Checks a concrete shape against [`MAX_TENSOR_BYTES`] and returns the tensor's byte size.
pub fn checked_tensor_bytes(dtype: DType, shape: &[usize]) -> Result<u64, TooLarge> {
    let too_large = || TooLarge { dtype, shape: shape.to_vec() };
    let extent = extent_bytes(dtype, shape.iter().map(|&d| d as u64)).ok_or_else(too_large)?;
    if extent > MAX_TENSOR_BYTES {
        return Err(too_large());
    }
    Ok(shape.iter().map(|&d| d as u64).product::<u64>() * dtype.size_bytes() as u64)
}

/// Checks a value's type against [`MAX_TENSOR_BYTES`], each symbol taken as 1 (its smallest
/// size that does not make the tensor empty), so `f32[batch, 2^50]` is refused as declared.
pub fn check_type(ty: &TensorType) -> Result<(), String> {
    let dims = ty.shape.iter().map(|d| d.eval(&|_| Some(1)).map_or(u64::MAX, |n| n.max(0) as u64));
    match extent_bytes(ty.dtype, dims) {
        Some(n) if n <= MAX_TENSOR_BYTES => Ok(()),
        _ => Err(format!("{ty} is too large (more than 2^48 bytes)")),
    }
}

/// A tensor shape beyond [`MAX_TENSOR_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tensor of type {dtype}{shape:?} is too large (more than 2^48 bytes)")]
pub struct TooLarge {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Memory that could not be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot allocate {} for {what}: {why}", human_bytes(*bytes))]
pub struct OutOfMemory {
    /// What the memory was for (`the arena of intermediates`, `input %x`).
    pub what: String,
    pub bytes: u64,
    pub why: String,
}

/// `512 B`, `3.0 MiB`, `7.3 TiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A vector of `len` copies of `value`, or an error naming `what` if the memory cannot be had:
/// more than the machine's memory and swap together, or an allocation the system refuses (a
/// memory limit set with `ulimit -v`, an exhausted address space).
pub fn try_vec<T: Clone>(len: usize, value: T, what: impl FnOnce() -> String) -> Result<Vec<T>, OutOfMemory> {
    let mut v = try_with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// An empty vector with room for `len` elements, or an error naming `what` (see [`try_vec`]).
pub fn try_with_capacity<T>(len: usize, what: impl FnOnce() -> String) -> Result<Vec<T>, OutOfMemory> {
    let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    if let Some(total) = system_memory().filter(|&total| bytes > total) {
        let why = format!("this machine has {} of memory and swap", human_bytes(total));
        return Err(OutOfMemory { what: what(), bytes, why });
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| OutOfMemory { what: what(), bytes, why: "out of memory".into() })?;
    Ok(v)
}

/// Checks that `bytes` can be allocated now, by reserving them and giving them back (address
/// space only: no page is touched), so code that allocates in many small steps can refuse a job
/// too large for the machine, or for a memory limit on the process, before it starts one.
pub fn ensure_available(bytes: u64, what: impl FnOnce() -> String) -> Result<(), OutOfMemory> {
    let len = usize::try_from(bytes).unwrap_or(usize::MAX);
    try_with_capacity::<u8>(len, what).map(drop)
}

/// The whole contents of the file at `path`, with its memory allocated fallibly: a file too
/// large to hold is an error of kind [`std::io::ErrorKind::OutOfMemory`], not an abort.
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a folder, not a file"));
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let mut bytes = try_with_capacity(len, || "the file".to_string()).map_err(|e| {
        let message = format!("{} does not fit in memory ({})", human_bytes(e.bytes), e.why);
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, message)
    })?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The machine's memory and swap in bytes, where the system says. Asked once per process: it
/// guards every checked allocation (each output of each run), and a system call each time cost
/// small models several percent of their run time.
pub fn system_memory() -> Option<u64> {
    static TOTAL: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TOTAL.get_or_init(ask_system_memory)
}

fn ask_system_memory() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sysinfo` only writes the struct it is given.
        let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
        if unsafe { libc::sysinfo(&mut info) } == 0 {
            let unit = (info.mem_unit as u64).max(1);
            return Some((info.totalram as u64).saturating_add(info.totalswap as u64).saturating_mul(unit));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(checked_tensor_bytes(DType::F32, &[2, 3]), Ok(24));
        assert_eq!(checked_tensor_bytes(DType::F32, &[0, 1 << 20]), Ok(0));
        // An empty tensor whose other dimensions would overflow a stride is still refused.
        assert!(checked_tensor_bytes(DType::F32, &[0, 1 << 40, 1 << 40]).is_err());
        assert!(checked_tensor_bytes(DType::F32, &[1 << 32, 1 << 32]).is_err());
        assert!(checked_tensor_bytes(DType::U8, &[1 << 48]).is_ok());
        assert!(checked_tensor_bytes(DType::U8, &[(1 << 48) + 1]).is_err());
        assert_eq!(extent_bytes(DType::F64, [u64::MAX, 2]), None);
        let ty = |shape: Vec<crate::Dim>| TensorType::new(DType::F32, shape);
        assert!(check_type(&ty(vec![crate::Dim::sym("batch"), 1024.into()])).is_ok());
        assert!(check_type(&ty(vec![crate::Dim::sym("batch"), (1i64 << 50).into()])).is_err());
        assert!(check_type(&ty(vec![(1i64 << 32).into(), (1i64 << 32).into()])).is_err());
    }

    #[test]
    fn impossible_allocations_are_errors() {
        let err = try_vec(1usize << 60, 0u8, || "a test buffer".into()).unwrap_err();
        assert_eq!(err.what, "a test buffer");
        assert!(err.to_string().starts_with("cannot allocate 1.0 EiB for a test buffer: "), "{err}");
        assert_eq!(try_vec(3, 7u8, || unreachable!()).unwrap(), vec![7, 7, 7]);
        assert!(ensure_available(1 << 62, || "a probe".into()).is_err());
        assert!(ensure_available(1 << 20, || unreachable!()).is_ok());
    }

    #[test]
    fn files_are_read_whole() {
        let dir = std::env::temp_dir().join(format!("nnc-size-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), b"abc").unwrap();
        assert_eq!(read_file(&dir.join("f")).unwrap(), b"abc");
        assert_eq!(read_file(&dir).unwrap_err().kind(), std::io::ErrorKind::IsADirectory);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(8_000_000_000_000_000), "7.1 PiB");
    }
}
