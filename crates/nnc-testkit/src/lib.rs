//! nnc's test kit: the checks every backend's tests share, so each backend runs the same ones
//! and states only what it does differently.
//!
//! A backend's `tests/suite.rs` is one line naming its target in the runtime's registry
//! ([`Target`]) and its known differences ([`Line`]'s fields):
//!
//! ```ignore
//! nnc_testkit::backend_suite!(wgsl: Target::Wgsl, non_finite: NonFinite::Undefined, node_suite_differences: WGSL_DIFFERENCES);
//! ```
//!
//! which makes the `#[test]`s of [`suite`]: each random graph family ([`families`]) and the
//! fixed graphs ([`graphs`]) against the graph interpreter and the Kernel-IR interpreter, the
//! shared models ([`models`]) against their stored references, and the target's line in the
//! ONNX node suite ([`node_suite`]). A target that cannot run here (no adapter, no driver) is
//! skipped loudly, and fails instead in CI where CI runs it ([`skip`]).
//!
//! Targets are run through the backend contract (`nnc_kernel::backend`) as the registry makes
//! them, and the node suite through a session, so the figures are those `nnc conformance
//! --target` gives. The pieces ([`check`], [`compare`], [`inputs`]) are public for the checks a
//! backend adds of its own. [`mpi`] runs a test as several MPI processes; [`onnx_runtime`] runs a model nnc wrote in ONNX Runtime.

pub mod browser;
pub mod check;
pub mod compare;
pub mod families;
pub mod graphs;
pub mod inputs;
pub mod models;
pub mod mpi;
pub mod node_suite;
pub mod onnx_runtime;
pub mod skip;
pub mod suite;

pub use compare::NonFinite;
pub use nnc_kernel::DeviceKind;
pub use nnc_runtime::Target;
pub use suite::Line;

/// A backend's suite in one line: `backend_suite!(module: TARGET, field: value, ...)` makes a
/// module of `#[test]`s for the registry target `TARGET`, with the named fields of [`Line`]
/// (its known differences) and [`Line::new`]'s values for the others. [`Target`],
/// [`DeviceKind`] and [`NonFinite`] are in scope for the line, as is everything of the file it
/// is in.
#[macro_export]
macro_rules! backend_suite {
    ($module:ident: $target:expr $(, $field:ident: $value:expr)* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::{DeviceKind, NonFinite, Target};

            const LINE: $crate::Line = $crate::Line { $($field: $value,)* ..$crate::Line::new($target) };

            #[test]
            fn random_elementwise_dags_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "elementwise_dag");
            }

            #[test]
            fn random_reductions_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "reduction");
            }

            #[test]
            fn random_composites_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "composite");
            }

            #[test]
            fn random_matmuls_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "matmul");
            }

            #[test]
            fn random_integer_matmuls_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "integer_matmul");
            }

            #[test]
            fn random_convs_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "conv");
            }

            #[test]
            fn random_pools_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "pool");
            }

            #[test]
            fn random_movement_matches_the_interpreters() {
                $crate::suite::random_family(&LINE, "movement");
            }

            #[test]
            fn random_blocks_match_the_interpreters() {
                $crate::suite::random_family(&LINE, "block");
            }

            #[test]
            fn fixed_graphs_match_the_interpreters() {
                $crate::suite::fixed(&LINE);
            }

            #[test]
            fn shared_models_match_their_references() {
                $crate::suite::shared_models(&LINE);
            }

            #[test]
            fn public_models_match_onnx_runtime() {
                $crate::suite::public_models(&LINE);
            }

            #[test]
            fn node_suite_passes_what_the_interpreter_passes() {
                $crate::node_suite::node_suite_line(&LINE);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    /// The macro names each family's test by hand: a family added to `FAMILIES` needs its test.
    #[test]
    fn every_family_has_its_test_in_the_macro() {
        let source = include_str!("lib.rs");
        for (name, _) in crate::families::FAMILIES {
            let call = format!("random_family(&LINE, \"{name}\")");
            assert_eq!(source.matches(&call).count(), 1, "backend_suite! must have one test calling {call}");
        }
    }
}
