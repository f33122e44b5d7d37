//! WebGPU as a device to schedule for: the limits and features a browser's adapter offers
//! ([`WebGpuDevice`]: the specification's defaults, or an adapter's as a page reports them), and
//! what a compiled program needs of one ([`requirements`]), which a bundle's manifest records
//! and the JavaScript runtime (`web/nnc-webgpu.js`) checks before it creates anything.

use nnc_kernel::bundle::Requirements;
use nnc_kernel::program::Program;
use nnc_kernel::Device;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The WebGPU limits that bound nnc's kernels, named as `GPUSupportedLimits` names them, with
/// the specification's defaults (what every adapter offers without asking).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebGpuLimits {
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroup_size_y: u32,
    pub max_compute_workgroup_size_z: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
}

impl Default for WebGpuLimits {
    fn default() -> Self {
        WebGpuLimits {
            max_storage_buffers_per_shader_stage: 8,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_size_x: 256,
            max_compute_workgroup_size_y: 256,
            max_compute_workgroup_size_z: 64,
            max_compute_workgroup_storage_size: 16384,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 256 << 20,
        }
    }
}

impl WebGpuLimits {
    /// Every limit as (WebGPU name, value), in the order requirements list them.
    pub fn entries(&self) -> [(&'static str, u64); 9] {
        [
            ("maxStorageBuffersPerShaderStage", self.max_storage_buffers_per_shader_stage.into()),
            ("maxComputeInvocationsPerWorkgroup", self.max_compute_invocations_per_workgroup.into()),
            ("maxComputeWorkgroupSizeX", self.max_compute_workgroup_size_x.into()),
            ("maxComputeWorkgroupSizeY", self.max_compute_workgroup_size_y.into()),
            ("maxComputeWorkgroupSizeZ", self.max_compute_workgroup_size_z.into()),
            ("maxComputeWorkgroupStorageSize", self.max_compute_workgroup_storage_size.into()),
            ("maxComputeWorkgroupsPerDimension", self.max_compute_workgroups_per_dimension.into()),
            ("maxStorageBufferBindingSize", self.max_storage_buffer_binding_size),
            ("maxBufferSize", self.max_buffer_size),
        ]
    }
}

/// A WebGPU device to compile for: its limits and the features a bundle may use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebGpuDevice {
    pub limits: WebGpuLimits,
    /// Features the bundle may require (`shader-f16`); none by default.
    pub features: Vec<String>,
}

impl WebGpuDevice {
    /// An adapter's description as JSON: `{"limits": {...}, "features": [...]}` with
    /// `GPUSupportedLimits` names (what the example page prints for its adapter); limits left
    /// out keep their defaults, names nnc does not use are ignored.
    pub fn from_json(text: &str) -> Result<WebGpuDevice, String> {
        serde_json::from_str(text).map_err(|e| format!("not a WebGPU adapter description: {e}"))
    }

    /// The device kernels are scheduled for within these limits.
    pub fn device(&self) -> Device {
        let l = &self.limits;
        Device {
            max_workgroup: l.max_compute_invocations_per_workgroup.min(l.max_compute_workgroup_size_x),
            workgroup_bytes: l.max_compute_workgroup_storage_size,
            max_grid: l.max_compute_workgroups_per_dimension,
            max_buffers: l.max_storage_buffers_per_shader_stage,
            ..Device::gpu()
        }
    }

    /// Why `program` (with its `needs`) cannot run on this device: every limit it exceeds and
    /// every feature it lacks, each naming the kernel or buffer responsible. Empty if it fits.
    pub fn unmet(&self, needs: &Needs) -> Vec<String> {
        let mut out: Vec<String> = needs
            .requirements
            .features
            .iter()
            .filter(|f| !self.features.contains(f))
            .map(|f| format!("feature `{f}` (needed by {}), which was not allowed", needs.why[f.as_str()]))
            .collect();
        for (name, have) in self.limits.entries() {
            let need = needs.requirements.limits.get(name).copied().unwrap_or(0);
            if need > have {
                out.push(format!("{name} of {need} (for {}), more than {have}", needs.why[name]));
            }
        }
        out
    }
}

/// What a program needs of a WebGPU device, and for each feature and limit what needs the most
/// of it (a kernel or a buffer, for error messages).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs {
    pub requirements: Requirements,
    pub why: BTreeMap<String, String>,
}

impl Needs {
    fn at_least(&mut self, limit: &str, value: u64, because: impl FnOnce() -> String) {
        let entry = self.requirements.limits.entry(limit.to_string()).or_insert(0);
        if value > *entry || !self.why.contains_key(limit) {
            *entry = value.max(*entry);
            self.why.insert(limit.to_string(), because());
        }
    }
}

/// What running `program`'s kernels needs of a WebGPU device: the largest value of each limit
/// any kernel or buffer reaches, and `shader-f16` where a buffer holds `f16`.
pub fn requirements(program: &Program) -> Needs {
    let mut needs = Needs::default();
    let fused = &program.fused;
    for b in &fused.buffers {
        let bytes = crate::runtime::gpu_bytes(b.dtype, b.numel());
        let why = || format!("buffer `{}` of {bytes} bytes", b.name);
        needs.at_least("maxStorageBufferBindingSize", bytes, why);
        needs.at_least("maxBufferSize", bytes, why);
        if b.dtype == nnc_ir::DType::F16 && !needs.why.contains_key("shader-f16") {
            needs.requirements.features.push("shader-f16".into());
            needs.why.insert("shader-f16".into(), format!("buffer `{}` of f16", b.name));
        }
    }
    for k in &program.kernels {
        let why = || format!("kernel `{}`", k.name);
        let [x, y, z] = k.launch.workgroup;
        needs.at_least("maxStorageBuffersPerShaderStage", k.params().count() as u64, why);
        needs.at_least("maxComputeInvocationsPerWorkgroup", k.launch.threads_per_workgroup(), why);
        needs.at_least("maxComputeWorkgroupSizeX", x.into(), why);
        needs.at_least("maxComputeWorkgroupSizeY", y.into(), why);
        needs.at_least("maxComputeWorkgroupSizeZ", z.into(), why);
        needs.at_least("maxComputeWorkgroupStorageSize", k.workgroup_bytes().max(0) as u64, why);
        let widest = k.launch.grid.iter().copied().max().unwrap_or(0);
        needs.at_least("maxComputeWorkgroupsPerDimension", widest.into(), why);
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_description_keeps_the_defaults_it_does_not_name() {
        let d = WebGpuDevice::from_json(
            r#"{"limits": {"maxStorageBuffersPerShaderStage": 10, "maxTextureDimension2D": 8192},
                "features": ["shader-f16"]}"#,
        )
        .unwrap();
        assert_eq!(d.limits.max_storage_buffers_per_shader_stage, 10);
        assert_eq!(d.limits.max_compute_workgroup_storage_size, 16384);
        assert_eq!(d.features, ["shader-f16"]);
        assert_eq!(d.device().max_buffers, 10);
        assert_eq!(WebGpuDevice::default().device(), Device::gpu());
        let err = WebGpuDevice::from_json(r#"{"limits": {"maxBufferSize": -1}}"#).unwrap_err();
        assert!(err.contains("not a WebGPU adapter description"), "{err}");
    }

    #[test]
    fn unmet_needs_name_what_exceeds_each_limit() {
        let mut needs = Needs::default();
        needs.at_least("maxStorageBuffersPerShaderStage", 9, || "kernel `k3`".into());
        needs.at_least("maxStorageBuffersPerShaderStage", 4, || "kernel `k1`".into());
        needs.at_least("maxBufferSize", 1 << 20, || "buffer `w`".into());
        needs.requirements.features.push("shader-f16".into());
        needs.why.insert("shader-f16".into(), "buffer `h` of f16".into());
        let unmet = WebGpuDevice::default().unmet(&needs);
        assert_eq!(
            unmet,
            [
                "feature `shader-f16` (needed by buffer `h` of f16), which was not allowed",
                "maxStorageBuffersPerShaderStage of 9 (for kernel `k3`), more than 8",
            ]
        );
    }
}
