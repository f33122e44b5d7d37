//! The ptxas report of every shared model (`cargo run -p nnc-cuda --example ptx_report`):
//! printed as Markdown and written to `target/ptx-report.md`. Needs NVRTC and ptxas
//! (`scripts/setup.sh`) and the shared models; `NNC_CUDA_MODELS=a,b` limits the models.

#[path = "../tests/common/models.rs"]
mod models;

fn main() {
    if let Err(e) = nnc_cuda::nvrtc::tools_available() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let dir = match nnc_testkit::models::shared_models_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let (all, md) = models::models_report(&dir);
    println!("{md}");
    match models::write_report(&md) {
        Ok(p) => eprintln!("written to {}", p.display()),
        Err(e) => eprintln!("could not write target/ptx-report.md: {e}"),
    }
    if all.iter().any(|(_, r)| r.is_err()) {
        std::process::exit(1);
    }
}
