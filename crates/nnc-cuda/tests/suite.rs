//! The CUDA backend's line of the test kit (`nnc-testkit`): the registry's CUDA target on the
//! random graph families, the fixed graphs, the shared models (and their bundles) and the ONNX
//! node suite, where there is a CUDA driver and a GPU. Elsewhere (CI machines have none) the
//! line is skipped loudly without failing, and the backend is checked without a GPU:
//! `print.rs` (NVRTC and ptxas), `ptx_models.rs` (every kernel of the shared models through
//! ptxas) and `host_emulation.rs` (the CUDA C++ run as host C++).

nnc_testkit::backend_suite!(cuda: Target::Cuda, runs_in_ci: false);
