//! The Kernel-IR interpreter's lines of the test kit (`nnc-testkit`), with the passes' GPU
//! schedules (workgroups, workgroup memory, barriers) and their CPU schedules (rows, vector
//! lanes): every kernel runs with its parallel semantics checked (races, out-of-bounds
//! accesses, divergent barriers) as it goes.

/// The shared models the interpreter runs quickly with CPU schedules (one invocation per row:
/// the convolutional models take minutes).
const QUICK_WITH_CPU_SCHEDULES: &[&str] = &["digits_mlp", "lstm2", "silero_vad_16k_op15", "transformer_encoder"];

nnc_testkit::backend_suite!(kernel_interp_gpu: Target::KernelInterp(DeviceKind::Gpu), cases: 64);
nnc_testkit::backend_suite!(kernel_interp_cpu: Target::KernelInterp(DeviceKind::Cpu), cases: 64, models: QUICK_WITH_CPU_SCHEDULES);
