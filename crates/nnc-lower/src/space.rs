//! The schedule space: every valid schedule the templates can build for a group on a
//! [`Device`], which the tuner measures; and the structural key that names a group's
//! computation independently of the model it came from, under which tuned schedules are kept.
//!
//! The space is what the templates of [`crate::schedule`] parametrize:
//! - CPU register tiles ([`Strategy::TiledMatmul`] on a CPU): rows × vector columns, as many
//!   as keep the accumulators, a broadcast of `a` and a scratch register within the device's
//!   vector registers (a tile that spills accumulators is slower than any that fits), each with
//!   row tiles or column tiles slowest ([`TileOrder`]), and the default's reduction step (four
//!   for an integer contraction on a device with dot products); where the weights are stored
//!   in panels (see `layout`), only tiles as wide as a panel;
//! - CPU rows ([`Strategy::Elementwise`] on a CPU): the inner loop as vectors or scalars;
//! - GPU elementwise kernels and row reductions: invocations per workgroup (powers of two up to
//!   the device's limit, the reductions' workgroup memory within its own);
//! - GPU tiled matmuls: square tiles (workgroups of tile² invocations, two tiles of workgroup
//!   memory) and an unrolled or serial inner product.
//!
//! Each candidate is built and legalized before it is offered, so every schedule returned is
//! one the backends accept; the default schedule ([`default_schedule`]) is always the first.

use crate::legalize::legalize;
use crate::schedule::{default_schedule, remap_loads, schedule_group};
use nnc_kernel::device::{Device, DeviceKind};
use nnc_kernel::kernel::{Compute, Kernel, Schedule, Strategy, TileOrder};
use nnc_kernel::program::{BufferKind, Fused};
use std::fmt::Write;

/// The version of the space and of the templates behind it: a tuned schedule recorded under
/// another version is not used (the same schedule may build a different kernel).
pub const SPACE_VERSION: u32 = 4;

/// Register-tile rows and vector columns a CPU contraction may use.
const TILE_ROWS: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const TILE_VECTORS: [u32; 4] = [1, 2, 3, 4];

/// The valid schedules for group `g` on `device`, the default first, each with its legalized
/// kernel; schedules that build the same kernel as an earlier one are left out. A group whose
/// default schedule cannot be built has none.
pub fn candidates(fused: &Fused, g: usize, device: &Device) -> Vec<(Schedule, Kernel)> {
    let default = default_schedule(fused, g, device);
    let mut out: Vec<(Schedule, Kernel)> = Vec::new();
    for s in std::iter::once(default).chain(proposals(&default, device)) {
        if out.iter().any(|(seen, _)| *seen == s) {
            continue;
        }
        if let Some(kernel) = build(fused, g, &s, device) {
            if !out.iter().any(|(_, k)| k.launch == kernel.launch && k.body == kernel.body) {
                out.push((s, kernel));
            }
        }
    }
    out
}

/// Builds and legalizes group `g`'s kernel under `schedule`, or `None` where the template or
/// the device refuses it.
pub fn build(fused: &Fused, g: usize, schedule: &Schedule, device: &Device) -> Option<Kernel> {
    let kernel = schedule_group(fused, g, schedule, device).ok()?;
    // The template may fall back (no vector loop where none fits): the kernel records what it
    // does, and only the schedule asked for is a distinct candidate.
    if kernel.schedule != *schedule {
        return None;
    }
    legalize(&kernel, device).ok()
}

/// Schedules of the default's template worth trying (unchecked).
fn proposals(default: &Schedule, device: &Device) -> Vec<Schedule> {
    let s = *default;
    match (device.kind, s.strategy) {
        (DeviceKind::Cpu, Strategy::TiledMatmul) => {
            let v = s.vector.max(1);
            let mut out = Vec::new();
            for vectors in TILE_VECTORS {
                for rows in TILE_ROWS {
                    // The accumulators, a broadcast of `a` and one scratch register (`b` can
                    // be a memory operand of the multiply-add).
                    let registers = rows * vectors + 2;
                    if device.vector_registers == 0 || registers <= device.vector_registers {
                        for order in [TileOrder::RowsOuter, TileOrder::ColumnsOuter] {
                            out.push(Schedule { tile: [rows, vectors * v, s.tile[2]], order, ..s });
                        }
                    }
                }
            }
            out
        }
        (DeviceKind::Cpu, Strategy::Elementwise) => {
            vec![Schedule { vector: device.vector, ..s }, Schedule { vector: 1, ..s }]
        }
        (DeviceKind::Gpu, Strategy::Elementwise | Strategy::RowReduce) => {
            powers_of_two(32, device.max_workgroup).map(|wg| Schedule { workgroup_size: wg, ..s }).collect()
        }
        (DeviceKind::Gpu, Strategy::TiledMatmul) => {
            let mut out = Vec::new();
            for t in [8u32, 16, 32] {
                let fits = t * t <= device.max_workgroup && 2 * t * t * 8 <= device.workgroup_bytes;
                if fits {
                    for unroll in [1, t] {
                        out.push(Schedule { workgroup_size: t * t, tile: [t, t, t], unroll, ..s });
                    }
                }
            }
            out
        }
        // The CPU has no row-reduce template; a program runs one way.
        (DeviceKind::Cpu, Strategy::RowReduce) | (_, Strategy::Serial) => Vec::new(),
    }
}

fn powers_of_two(from: u32, to: u32) -> impl Iterator<Item = u32> {
    (0..32).map(|k| 1u32 << k).filter(move |&n| n >= from && n <= to)
}

/// A text that names group `g`'s computation and nothing else: its expression with loads
/// numbered by operand and variables by first appearance, each operand's dtype, shape and
/// whether it is a constant (its layout, not its values), and the output's dtype and shape.
/// Equal computations in different models, or at different places of one, have equal keys.
pub fn structural_key(fused: &Fused, g: usize) -> Option<String> {
    let group = &fused.groups[g];
    let Compute::Map(expr) = &group.compute else { return None };
    let local = remap_loads(expr.clone(), group);
    let mut key = String::new();
    for (k, b) in group.reads.iter().chain(&group.writes).enumerate() {
        let buffer = &fused.buffers[b.index()];
        let kind = match buffer.kind {
            BufferKind::Constant(_) => "const",
            _ if k >= group.reads.len() => "out",
            _ => "in",
        };
        let _ = write!(key, "{kind} {:?}{:?}; ", buffer.dtype, buffer.shape);
    }
    key.push_str(&renumber_vars(&format!("{local:?}")));
    Some(key)
}

/// `Var { id: N` occurrences of a debug text renumbered by first appearance.
fn renumber_vars(text: &str) -> String {
    const MARK: &str = "Var { id: ";
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let (before, after) = rest.split_at(at + MARK.len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let id = &after[..digits];
        let n = seen.iter().position(|s| *s == id).unwrap_or_else(|| {
            seen.push(id);
            seen.len() - 1
        });
        let _ = write!(out, "{n}");
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse_for;
    use nnc_ir::text::parse;

    fn fused(text: &str, device: &Device) -> Fused {
        fuse_for(&parse(text, "test.nnir").expect("parses"), device, None).expect("fuses")
    }

    const MATMUL: &str =
        "graph mm(%a: f32[64, 96], %b: f32[96, 128]) {\n  %c: f32[64, 128] = matmul(%a, %b)\n  return %c\n}\n";

    #[test]
    fn cpu_contractions_offer_register_tiles_that_fit() {
        let device = Device::cpu_with_vector(8);
        let f = fused(MATMUL, &device);
        let all = candidates(&f, 0, &device);
        assert_eq!(all[0].0, default_schedule(&f, 0, &device), "the default comes first");
        let tiles: Vec<[u32; 3]> = all.iter().map(|(s, _)| s.tile).collect();
        assert!(tiles.contains(&[6, 16, 1]) && tiles.contains(&[3, 32, 1]), "{tiles:?}");
        // Both tile orders; the default tile's own order once (as the default).
        let orders = |t: [u32; 3]| all.iter().filter(|(s, _)| s.tile == t).count();
        assert_eq!((orders([6, 16, 1]), orders([4, 16, 1])), (2, 2), "{tiles:?}");
        // 16 registers: 4 rows x 3 vectors (12 + 2) fits, 5 x 3 does not.
        assert!(tiles.contains(&[4, 24, 1]) && !tiles.contains(&[5, 24, 1]), "{tiles:?}");
        assert!(all.len() >= 15, "{}", all.len());
        // With 32 registers (AVX-512) wider tiles fit.
        let wide = Device::cpu_with_vector(16);
        let f = fused(MATMUL, &wide);
        assert!(candidates(&f, 0, &wide).iter().any(|(s, _)| s.tile == [8, 48, 1]));
    }

    /// A 3x3 convolution of `inputs` channels to `outputs` on a `side` x `side` image, with
    /// constant weights (packed for the device, as a model's are).
    fn conv3x3(inputs: usize, outputs: usize, side: usize) -> String {
        let p = side + 2;
        let weights = vec!["0.5"; outputs * inputs * 9].join(", ");
        format!(
            "graph c(%x: f32[1, {inputs}, {p}, {p}]) {{\n  %w: f32[{outputs}, {inputs}, 3, 3] = constant [{weights}]\n  \
             %y: f32[1, {outputs}, {side}, {side}] = conv(%x, %w) {{strides = [1, 1], dilations = [1, 1], \
             pads = [0, 0, 0, 0], groups = 1}}\n  return %y\n}}\n"
        )
    }

    #[test]
    fn the_default_tile_is_wide_only_where_it_fits_registers_and_divides_the_output() {
        let tile = |text: &str, device: &Device| default_schedule(&fused(text, device), 0, device).tile;
        let avx512 = Device::cpu_with_vector(16);
        // 28 = 4 x 7 rows, 64 = 4 vectors of columns, 576 reduction steps: 7 x 4 vectors.
        assert_eq!(tile(&conv3x3(64, 64, 28), &avx512), [7, 64, 1]);
        // 16 registers (AVX2) hold 4 x 2 vectors.
        assert_eq!(tile(&conv3x3(64, 64, 28), &Device::cpu_with_vector(8)), [4, 16, 1]);
        // 32 channels leave half of every 64-column tile idle; 8 rows a partial 7-row tile;
        // a 7x7 map is one tile per image row, wide only for a long reduction (2,304 steps).
        for (channels, side) in [(32, 28), (64, 8), (64, 7)] {
            assert_eq!(
                tile(&conv3x3(channels, channels, side), &avx512),
                [4, 32, 1],
                "{channels} channels, {side}x{side}"
            );
        }
        assert_eq!(tile(&conv3x3(256, 64, 7), &avx512), [7, 64, 1]);
    }

    #[test]
    fn a_default_tile_reads_weight_panels_whole() {
        // A 1x1 convolution on a 7x7 map: `layout` sees 7-element rows and packs 32-column
        // panels; the schedule sees the 49 pixels merged into one axis, where the wide tile
        // would fit. Its tile takes the panels' width instead of reading them in pieces.
        let weights = vec!["0.5"; 128 * 512].join(", ");
        let text = format!(
            "graph c(%x: f32[1, 512, 7, 7]) {{\n  %w: f32[128, 512, 1, 1] = constant [{weights}]\n  \
             %y: f32[1, 128, 7, 7] = conv(%x, %w) {{strides = [1, 1], dilations = [1, 1], pads = [0, 0, 0, 0], \
             groups = 1}}\n  return %y\n}}\n"
        );
        let avx512 = Device::cpu_with_vector(16);
        let f = fused(&text, &avx512);
        let schedule = default_schedule(&f, 0, &avx512);
        assert_eq!(schedule.tile, [7, 32, 1]);
        assert!(build(&f, 0, &schedule, &avx512).is_some(), "the default builds");
    }

    #[test]
    fn gpu_kernels_offer_workgroup_sizes_within_limits() {
        let device = Device::gpu();
        let f = fused("graph e(%x: f32[1000]) {\n  %y: f32[1000] = exp(%x)\n  return %y\n}\n", &device);
        let sizes: Vec<u32> = candidates(&f, 0, &device).iter().map(|(s, _)| s.workgroup_size).collect();
        assert_eq!(sizes.len(), 4, "{sizes:?}");
        assert!(sizes.iter().all(|&n| (32..=256).contains(&n)), "{sizes:?}");
        let f = fused(MATMUL, &device);
        let tiles: Vec<(u32, u32)> = candidates(&f, 0, &device).iter().map(|(s, _)| (s.tile[0], s.unroll)).collect();
        // 32 x 32 tiles would need 1,024 invocations: not on WebGPU's 256.
        assert!(tiles.contains(&(8, 8)) && tiles.contains(&(16, 1)) && !tiles.iter().any(|t| t.0 == 32), "{tiles:?}");
    }

    #[test]
    fn equal_computations_have_equal_keys() {
        let device = Device::cpu_with_vector(8);
        let two = "graph t(%x: f32[8, 16], %y: f32[8, 16]) {\n  %a: f32[8, 16] = exp(%x)\n  %b: f32[8, 16] = exp(%y)\n  return %a, %b\n}\n";
        let f = fused(two, &device);
        assert_eq!(structural_key(&f, 0), structural_key(&f, 1));
        let other = fused("graph o(%x: f32[8, 32]) {\n  %a: f32[8, 32] = exp(%x)\n  return %a\n}\n", &device);
        assert_ne!(structural_key(&f, 0), structural_key(&other, 0), "shapes are part of the key");
        assert_eq!(
            renumber_vars("Var { id: 7, x Var { id: 3, y Var { id: 7,"),
            "Var { id: 0, x Var { id: 1, y Var { id: 0,"
        );
    }
}
