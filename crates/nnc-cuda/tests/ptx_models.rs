//! Every kernel of every shared model, compiled for the CUDA backend's device, printed as CUDA C++,
//! compiled by NVRTC and assembled by `ptxas -v` for sm_80 and sm_90: no errors anywhere, and no
//! register spills in matmul or conv kernels. Prints the report table and writes it to
//! `target/ptx-report.md`. Without NVRTC/ptxas or the models: a loud skip (a failure in CI).
//!
//! `NNC_CUDA_MODELS=a,b` limits the models (all by default).

mod common;

use common::models::{models_report, write_report, ARCHS};
use nnc_testkit::models::shared_models;

#[test]
fn every_kernel_of_every_shared_model_assembles_without_contraction_spills() {
    let Some(models) = shared_models() else { return };
    if common::tools().is_none() {
        return;
    }
    let (all, md) = models_report(&models);
    eprintln!("{md}");
    match write_report(&md) {
        Ok(p) => eprintln!("report written to {}", p.display()),
        Err(e) => eprintln!("could not write the report: {e}"),
    }
    let mut failures = Vec::new();
    let mut kernels = 0;
    for (name, result) in &all {
        let reports = match result {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        kernels += reports.len();
        for r in reports {
            assert_eq!(r.stats.len(), ARCHS.len());
            for s in &r.stats {
                if r.class.is_contraction() && (s.spill_stores > 0 || s.spill_loads > 0) {
                    failures.push(format!(
                        "{name} kernel {} `{}` ({}) spills on {}: {} bytes stored, {} loaded",
                        r.index,
                        r.name,
                        r.class.name(),
                        s.arch,
                        s.spill_stores,
                        s.spill_loads
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(kernels > 0, "no kernels were checked");
}
