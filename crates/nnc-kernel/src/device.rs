//! [`Device`]: what a target offers kernels, as data. Scheduling, legalization and fusion
//! pricing read it; no shared code branches on a target's name.

/// What a target offers kernels, as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceKind,
    /// Invocations per workgroup at most.
    pub max_workgroup: u32,
    /// Bytes of workgroup memory per workgroup.
    pub workgroup_bytes: u32,
    /// Workgroups per grid axis at most.
    pub max_grid: u32,
    /// Lanes of the vector unit for the kernels' element type (1 = none).
    pub vector: u32,
    /// Vector registers the code generator can keep values in (16 on x86-64 with AVX2, 32
    /// with AVX-512 and on aarch64; 0 where registers are not the scheduler's concern, a
    /// GPU's being per invocation): bounds a CPU register tile.
    pub vector_registers: u32,
    /// Machine balance: arithmetic operations per byte of device-memory traffic, which prices
    /// recomputation against memory traffic in fusion decisions.
    pub ops_per_byte: u32,
    /// Storage buffers one kernel may bind (`u32::MAX`: no limit). Fusion keeps every group
    /// within it.
    pub max_buffers: u32,
    /// The most iterations one loop statement may run in one invocation, counted over the
    /// whole invocation (0: no limit). llvmpipe stops every loop after 65,535: legalization
    /// unrolls outer loops so each copy of an inner one stays below.
    pub max_loop_iterations: u64,
    /// How index arithmetic is computed: in 32 bits where provable, and whether 64 bits are
    /// there for the rest (see [`IndexWidth`]).
    pub index_width: IndexWidth,
    /// Whether the target's code evaluates only the chosen side of a `select` and skips masked
    /// loads by itself (C's `?:`, a CPU's branches and masked vector loads). Where it does not
    /// (WGSL's `select()` computes both sides), legalization makes every select with an effect,
    /// and every masked load, an `if`.
    pub lazy_select: bool,
    /// Whether the vector unit sums four `u8 × i8` products into each `i32` lane in one
    /// instruction (x86's VNNI `vpdpbusd`): integer contractions of quantized models then take
    /// their reduction four steps at a time, reading weights packed four deep.
    pub int8_dot: bool,
}

/// The widths of index arithmetic a device computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexWidth {
    /// 64-bit integers throughout (a CPU: addresses are 64-bit anyway).
    Wide,
    /// 32-bit index arithmetic where every index of the kernel provably fits, 64-bit otherwise
    /// (CUDA: halves the registers of index math).
    PreferNarrow,
    /// 32-bit only (WGSL has no 64-bit integers): a kernel whose indices may not fit is refused.
    Narrow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

impl Device {
    /// The portable GPU baseline (WebGPU's default limits: 256 invocations and 16 KiB of
    /// workgroup memory per workgroup, 8 storage buffers per kernel, 32-bit indices), with
    /// loops kept below llvmpipe's iteration limit (harmless elsewhere).
    pub fn gpu() -> Device {
        // A datacenter GPU does 10-20 fp32 operations per byte of DRAM bandwidth.
        Device {
            kind: DeviceKind::Gpu,
            max_workgroup: 256,
            workgroup_bytes: 16384,
            max_grid: 65535,
            vector: 1,
            vector_registers: 0,
            ops_per_byte: 16,
            max_buffers: 8,
            max_loop_iterations: 32_768,
            index_width: IndexWidth::Narrow,
            lazy_select: false,
            int8_dot: false,
        }
    }

    /// A CPU with 128-bit vectors: workgroups of one invocation, run across threads.
    pub fn cpu() -> Device {
        // Two cores of 128-bit FMA against one memory channel: about 4-8 operations per byte.
        Device {
            kind: DeviceKind::Cpu,
            max_workgroup: 1,
            workgroup_bytes: 0,
            max_grid: u32::MAX,
            vector: 4,
            vector_registers: 16,
            ops_per_byte: 6,
            max_buffers: u32::MAX,
            max_loop_iterations: 0,
            index_width: IndexWidth::Wide,
            lazy_select: true,
            int8_dot: false,
        }
    }

    /// A CPU whose code generator fills vectors of `lanes` `f32` (4: 128-bit, 8: AVX2,
    /// 16: AVX-512, which also doubles the vector registers to 32).
    pub fn cpu_with_vector(lanes: u32) -> Device {
        let vector_registers = if lanes >= 16 { 32 } else { 16 };
        Device { vector: lanes.max(1), vector_registers, ..Device::cpu() }
    }
}
