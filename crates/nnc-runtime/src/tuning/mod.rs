//! Tuned schedules: where they come from ([`TuningSource`]), how a compile uses them
//! ([`schedule_kernels`]), how they are kept ([`cache`]) and how they are found ([`search`]).
//!
//! A compile schedules each group with the record the cache holds for its computation on this
//! device, where there is one and it still builds; every other group gets the default schedule.
//! Without records a compile is exactly the untuned one.

pub mod cache;
pub mod search;

use cache::{kernel_key, load_shared, TunedSchedules};
use nnc_kernel::kernel::Kernel;
use nnc_kernel::program::Fused;
use nnc_kernel::Device;
use nnc_lower::legalize::legalize;
use nnc_lower::schedule::{default_schedule, schedule_group};
use nnc_lower::space::structural_key;
use std::path::PathBuf;
use std::sync::Arc;

/// Which tuned schedules a compile uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TuningSource {
    /// The user's cache ([`cache::default_path`]: `NNC_TUNING_CACHE`, else the cache directory).
    #[default]
    UserCache,
    /// Records shipped with a model (`--tuning FILE`).
    File(PathBuf),
    /// None: every kernel gets its default schedule (`--no-tuning`).
    Off,
}

impl TuningSource {
    /// The records of this source for the device with `fingerprint` (`None` when off or when
    /// there is no cache directory); a file is read again only when it changes.
    pub fn load(&self, fingerprint: &str) -> Option<Arc<TunedSchedules>> {
        let path = match self {
            TuningSource::Off => return None,
            TuningSource::File(p) => p.clone(),
            TuningSource::UserCache => cache::default_path()?,
        };
        Some(load_shared(&path, fingerprint))
    }
}

/// How many kernels of a compile came from tuned records, and what was wrong with records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuningUse {
    /// Per kernel, whether its schedule came from a tuned record.
    pub tuned: Vec<bool>,
    pub warnings: Vec<String>,
}

impl TuningUse {
    pub fn tuned_kernels(&self) -> usize {
        self.tuned.iter().filter(|&&t| t).count()
    }
}

/// Schedules and legalizes every group of `fused` for `device`: with its tuned schedule where
/// `tuned` has one that still builds, else with the default (a tuned schedule that no longer
/// builds is a warning, not an error; the warnings of loading `tuned` come first).
pub fn schedule_kernels(
    fused: &Fused,
    device: &Device,
    tuned: Option<&TunedSchedules>,
) -> Result<(Vec<Kernel>, TuningUse), String> {
    let mut usage = TuningUse { tuned: Vec::new(), warnings: tuned.map(|t| t.warnings.clone()).unwrap_or_default() };
    let tuned = tuned.filter(|t| !t.is_empty());
    let mut kernels = Vec::with_capacity(fused.groups.len());
    for g in 0..fused.groups.len() {
        let record = tuned.and_then(|t| {
            let key = kernel_key(&structural_key(fused, g)?);
            t.get(&key).map(|s| (t, *s))
        });
        if let Some((t, schedule)) = record {
            match nnc_lower::space::build(fused, g, &schedule, device) {
                Some(kernel) => {
                    usage.tuned.push(true);
                    kernels.push(kernel);
                    continue;
                }
                None => usage.warnings.push(format!(
                    "{}: the tuned schedule of kernel `{}` no longer builds; its default schedule is used",
                    t.path.display(),
                    fused.groups[g].name
                )),
            }
        }
        let kernel = schedule_group(fused, g, &default_schedule(fused, g, device), device)
            .map_err(|e| format!("cannot schedule: {e}"))?;
        kernels.push(legalize(&kernel, device).map_err(|e| format!("cannot legalize: {e}"))?);
        usage.tuned.push(false);
    }
    Ok((kernels, usage))
}
