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
    /// Machine balance: arithmetic operations per byte of device-memory traffic, which prices
    /// recomputation against memory traffic in fusion decisions.
    pub ops_per_byte: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

impl Device {
    /// The portable GPU baseline (WebGPU's default limits).
    pub fn gpu() -> Device {
        // A datacenter GPU does 10-20 fp32 operations per byte of DRAM bandwidth.
        Device {
            kind: DeviceKind::Gpu,
            max_workgroup: 256,
            workgroup_bytes: 16384,
            max_grid: 65535,
            vector: 1,
            ops_per_byte: 16,
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
            ops_per_byte: 6,
        }
    }

    /// A CPU whose code generator fills vectors of `lanes` `f32` (4: 128-bit, 8: AVX2,
    /// 16: AVX-512).
    pub fn cpu_with_vector(lanes: u32) -> Device {
        Device { vector: lanes.max(1), ..Device::cpu() }
    }
}
