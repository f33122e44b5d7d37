//! The ptxas report of a program: every kernel printed, compiled by NVRTC and assembled by
//! `ptxas -v` for some architectures, with registers, shared memory and spills per kernel, as
//! data ([`program_report`]) and as a Markdown table ([`markdown`]).

use crate::nvrtc::{compile_ptx_named, ptxas_report, PtxasStats};
use crate::print::{entry_name, print_program};
use crate::CudaError;
use nnc_kernel::program::Program;
use nnc_kernel::{Kernel, Strategy};
use std::fmt::Write;

/// What a kernel computes, for the report: contractions are where spills would hurt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelClass {
    /// A tiled matmul (or a fused group around one).
    Matmul,
    /// A convolution (any schedule).
    Conv,
    /// A row reduction through workgroup memory.
    RowReduce,
    Elementwise,
    Serial,
}

impl KernelClass {
    pub fn of(kernel: &Kernel) -> KernelClass {
        let conv = kernel.name.contains("conv") || kernel.covers.iter().any(|c| c.contains("conv"));
        match kernel.schedule.strategy {
            _ if conv => KernelClass::Conv,
            Strategy::TiledMatmul => KernelClass::Matmul,
            _ if kernel.name.contains("matmul") || kernel.covers.iter().any(|c| c.contains("matmul")) => {
                KernelClass::Matmul
            }
            Strategy::RowReduce => KernelClass::RowReduce,
            Strategy::Elementwise => KernelClass::Elementwise,
            Strategy::Serial => KernelClass::Serial,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelClass::Matmul => "matmul",
            KernelClass::Conv => "conv",
            KernelClass::RowReduce => "row_reduce",
            KernelClass::Elementwise => "elementwise",
            KernelClass::Serial => "serial",
        }
    }

    /// Matmul and conv kernels, which must not spill.
    pub fn is_contraction(self) -> bool {
        matches!(self, KernelClass::Matmul | KernelClass::Conv)
    }
}

/// One kernel of a program with what ptxas said about it, per architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelReport {
    pub index: usize,
    pub name: String,
    pub entry: String,
    pub class: KernelClass,
    pub strategy: &'static str,
    pub workgroup: [u32; 3],
    /// One per architecture asked for, in order.
    pub stats: Vec<PtxasStats>,
}

/// Prints `program` as one translation unit, compiles it with NVRTC and assembles it with
/// `ptxas -v` for each of `archs`, and returns every kernel's statistics.
pub fn program_report(program: &Program, archs: &[&str]) -> Result<Vec<KernelReport>, CudaError> {
    let source = print_program(program)?;
    let mut reports: Vec<KernelReport> = program
        .kernels
        .iter()
        .enumerate()
        .map(|(g, k)| KernelReport {
            index: g,
            name: k.name.clone(),
            entry: entry_name(g, k),
            class: KernelClass::of(k),
            strategy: k.schedule.strategy.name(),
            workgroup: k.launch.workgroup,
            stats: Vec::new(),
        })
        .collect();
    for arch in archs {
        let ptx = compile_ptx_named(&source, arch, &format!("{}.cu", program.fused.name))?;
        let stats = ptxas_report(&ptx, arch)?;
        for r in &mut reports {
            let s = stats.iter().find(|s| s.function == r.entry).cloned().ok_or_else(|| CudaError::Ptxas {
                arch: arch.to_string(),
                log: format!("ptxas reported nothing for `{}`", r.entry),
            })?;
            r.stats.push(s);
        }
    }
    Ok(reports)
}

/// A Markdown section for one program: a summary line, then one row per kernel.
pub fn markdown(model: &str, reports: &[KernelReport], archs: &[&str]) -> String {
    let mut s = format!("### {model}\n\n");
    for (a, arch) in archs.iter().enumerate() {
        let max_reg = reports.iter().filter_map(|r| r.stats.get(a)).map(|s| s.registers).max().unwrap_or(0);
        let max_smem = reports.iter().filter_map(|r| r.stats.get(a)).map(|s| s.shared_bytes).max().unwrap_or(0);
        let spilling =
            reports.iter().filter(|r| r.stats.get(a).is_some_and(|s| s.spill_stores > 0 || s.spill_loads > 0)).count();
        let contractions = reports.iter().filter(|r| r.class.is_contraction()).count();
        let _ = writeln!(
            s,
            "{arch}: {} kernels ({contractions} matmul/conv), max {max_reg} registers, max {max_smem} bytes shared, \
             {spilling} kernels spill",
            reports.len()
        );
    }
    s.push('\n');
    let mut header = "| # | kernel | class | schedule | block |".to_string();
    let mut rule = "|---|---|---|---|---|".to_string();
    for arch in archs {
        let _ = write!(header, " {arch} regs | smem B | spill st/ld B |");
        rule.push_str("---|---|---|");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    for r in reports {
        let [x, y, z] = r.workgroup;
        let name: String = r.name.chars().take(40).collect();
        let _ = write!(s, "| {} | `{name}` | {} | {} | {x}x{y}x{z} |", r.index, r.class.name(), r.strategy);
        for st in &r.stats {
            let _ = write!(s, " {} | {} | {}/{} |", st.registers, st.shared_bytes, st.spill_stores, st.spill_loads);
        }
        s.push('\n');
    }
    s
}
