//! A compiled program: a graph fused into groups and scheduled into kernels for one device, with
//! the buffers the kernels share ([`Fused`], [`Program`]); and its execution through the
//! Kernel-IR interpreter. `nnc-lower` makes programs; backends compile and run them.

use crate::device::Device;
use crate::expr::BufId;
use crate::interp::{run_kernel, KernelError};
use crate::kernel::{Compute, Kernel};
use nnc_interp::lanes::{Data, Value};
use nnc_ir::{DType, TensorData};
use std::fmt;

/// A buffer of the fused program: a graph input, a weight, or a value a group materializes.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramBuffer {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub kind: BufferKind,
}

impl ProgramBuffer {
    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> i64 {
        self.numel() * self.dtype.size_bytes() as i64
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum BufferKind {
    /// The n-th graph input.
    Input(usize),
    /// Known at compile time.
    Constant(TensorData),
    /// Written by a group.
    Intermediate,
}

/// One future kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    /// The graph nodes it computes: the materialized one last.
    pub covers: Vec<String>,
    /// For [`Compute::Map`], loads name program buffers directly (`BufId` = index into
    /// [`Fused::buffers`]) and the result goes to `writes[0]`. For [`Compute::Program`], the
    /// program's own numbering holds: `BufId(k)` is `reads[k]`, then `writes`.
    pub compute: Compute,
    pub reads: Vec<BufId>,
    pub writes: Vec<BufId>,
}

/// Why a value was, or was not, inlined into its consumers.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub value: String,
    pub inlined: bool,
    pub reason: String,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.inlined { "inline" } else { "materialize" };
        write!(f, "{verb} %{}: {}", self.value, self.reason)
    }
}

/// The fused program: buffers, groups in execution order, and where the outputs are.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused {
    pub name: String,
    pub buffers: Vec<ProgramBuffer>,
    pub groups: Vec<Group>,
    pub outputs: Vec<BufId>,
    pub output_names: Vec<String>,
    pub decisions: Vec<Decision>,
}

/// Kernels in execution order over the buffers of [`Fused`].
#[derive(Clone, Debug)]
pub struct Program {
    pub fused: Fused,
    /// `kernels[g]` computes `fused.groups[g]`; its global buffers are the group's reads, then
    /// its writes.
    pub kernels: Vec<Kernel>,
    pub device: Device,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("program `{program}` takes {expected} input(s), {found} given")]
    InputCount { program: String, expected: usize, found: usize },
    #[error("input `%{name}`: expected {expected}, found {found}")]
    Input { name: String, expected: String, found: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

impl Program {
    /// Runs every kernel through the Kernel-IR interpreter and returns the outputs.
    pub fn run_interpreted(&self, inputs: &[TensorData]) -> Result<Vec<TensorData>, RunError> {
        let mut values = self.interpreted_buffers(inputs)?;
        for g in 0..self.kernels.len() {
            self.interpret_kernel(&mut values, g)?;
        }
        self.fused
            .outputs
            .iter()
            .map(|b| {
                values[b.index()]
                    .to_tensor()
                    .map_err(|message| RunError::Kernel(KernelError { kernel: "outputs".into(), message }))
            })
            .collect()
    }

    /// Runs the whole program through the interpreter once, then kernel `k` alone `repeats`
    /// times; returns the time of each repetition.
    pub fn time_kernel_interpreted(
        &self,
        inputs: &[TensorData],
        k: usize,
        repeats: u32,
    ) -> Result<Vec<std::time::Duration>, RunError> {
        let mut values = self.interpreted_buffers(inputs)?;
        for g in 0..self.kernels.len() {
            self.interpret_kernel(&mut values, g)?;
        }
        if k >= self.kernels.len() {
            let message = format!("no kernel {k} (the program has {})", self.kernels.len());
            return Err(RunError::Kernel(KernelError { kernel: "timing".into(), message }));
        }
        (0..repeats)
            .map(|_| {
                let start = std::time::Instant::now();
                self.interpret_kernel(&mut values, k)?;
                Ok(start.elapsed())
            })
            .collect()
    }

    /// Every program buffer as an interpreter value: the inputs, the weights, and the
    /// intermediates poisoned (NaN for floats), so a value read before it is written shows.
    fn interpreted_buffers(&self, inputs: &[TensorData]) -> Result<Vec<Value>, RunError> {
        let fused = &self.fused;
        let expected = fused.buffers.iter().filter(|b| matches!(b.kind, BufferKind::Input(_))).count();
        if inputs.len() != expected {
            return Err(RunError::InputCount { program: fused.name.clone(), expected, found: inputs.len() });
        }
        // Every buffer is held at once, widened to 8 bytes an element: check that fits before
        // building them in steps that would abort the process on failure.
        let elements = fused.buffers.iter().map(|b| b.numel().max(0) as u64).fold(0u64, u64::saturating_add);
        nnc_ir::size::ensure_available(elements.saturating_mul(8), || {
            format!("the buffers of program `{}`", fused.name)
        })
        .map_err(|e| RunError::Kernel(KernelError { kernel: "buffers".into(), message: e.to_string() }))?;
        let mut values: Vec<Value> = Vec::with_capacity(fused.buffers.len());
        for b in &fused.buffers {
            let value = match &b.kind {
                BufferKind::Input(n) => {
                    let t = &inputs[*n];
                    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
                    if t.dtype() != b.dtype || shape != b.shape {
                        return Err(RunError::Input {
                            name: b.name.clone(),
                            expected: format!("{}{:?}", b.dtype.name(), b.shape),
                            found: format!("{}{:?}", t.dtype().name(), shape),
                        });
                    }
                    Value::from_tensor(t)
                }
                BufferKind::Constant(t) => Value::from_tensor(t),
                // Never-written elements stay visible: NaN for floats.
                BufferKind::Intermediate => poison(b.dtype, b.shape.iter().map(|&d| d as usize).collect()),
            };
            values.push(value);
        }
        Ok(values)
    }

    /// Interprets kernel `g` on the program buffers it binds.
    fn interpret_kernel(&self, values: &mut [Value], g: usize) -> Result<(), RunError> {
        let group = &self.fused.groups[g];
        let ids: Vec<usize> = group.reads.iter().chain(&group.writes).map(|b| b.index()).collect();
        // Take each bound buffer out of the table (a buffer bound twice is copied).
        let mut globals: Vec<Value> = Vec::with_capacity(ids.len());
        for (k, &id) in ids.iter().enumerate() {
            if ids[..k].contains(&id) {
                let first = ids.iter().position(|&x| x == id).unwrap_or(k);
                globals.push(globals[first].clone());
            } else {
                globals.push(std::mem::replace(&mut values[id], empty()));
            }
        }
        let result = run_kernel(&self.kernels[g], &mut globals);
        for (k, (&id, value)) in ids.iter().zip(globals).enumerate() {
            if !ids[..k].contains(&id) {
                values[id] = value;
            }
        }
        Ok(result?)
    }
}

fn empty() -> Value {
    Value::bool(vec![0], Vec::new())
}

fn poison(dtype: nnc_ir::DType, shape: Vec<usize>) -> Value {
    let n = shape.iter().product();
    if dtype.is_float() {
        Value::float(dtype, shape, vec![f64::NAN; n])
    } else if dtype == nnc_ir::DType::Bool {
        Value::bool(shape, vec![false; n])
    } else {
        Value { dtype, shape, data: Data::Int(vec![0; n]) }
    }
}

/// Small programs built by hand, for the unit tests of the contract (the passes that make real
/// ones live in `nnc-lower`, which depends on this crate).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::expr::Expr;
    use crate::kernel::{Buffer, Launch, Schedule, Space};
    use nnc_ir::UnaryOp;

    fn buffer(name: &str, shape: &[i64], kind: BufferKind) -> ProgramBuffer {
        ProgramBuffer { name: name.into(), dtype: DType::F32, shape: shape.to_vec(), kind }
    }

    fn group(k: usize, compute: Compute, reads: Vec<u32>, write: u32) -> Group {
        Group {
            name: format!("k{k}"),
            covers: vec![format!("%v{write} = op")],
            compute,
            reads: reads.into_iter().map(BufId).collect(),
            writes: vec![BufId(write)],
        }
    }

    /// `x: f32[len]` through `n` materialized `exp`s, one group each.
    pub fn chain(n: u32, len: i64) -> Fused {
        let mut buffers = vec![buffer("x", &[len], BufferKind::Input(0))];
        let mut groups = Vec::new();
        for k in 0..n {
            buffers.push(buffer(&format!("v{}", k + 1), &[len], BufferKind::Intermediate));
            let load = Expr::load(BufId(k), DType::F32, vec![Expr::Axis(0)]);
            groups.push(group(k as usize, Compute::Map(Expr::unary(UnaryOp::Exp, load)), vec![k], k + 1));
        }
        let fused = Fused {
            name: "chain".into(),
            buffers,
            groups,
            outputs: vec![BufId(n)],
            output_names: vec![],
            decisions: vec![],
        };
        Fused { output_names: vec![format!("v{n}")], ..fused }
    }

    /// `y = relu(x + w)`, `x: f32[2, 3]`, `w` a constant `f32[3]`, as one kernel for a CPU
    /// (its body left empty: these tests never run it).
    pub fn add_relu() -> Program {
        let w = TensorData::from_vec(vec![3], &[1.0f32, 2.0, 3.0]);
        let buffers = vec![
            buffer("x", &[2, 3], BufferKind::Input(0)),
            buffer("w", &[3], BufferKind::Constant(w)),
            buffer("y", &[2, 3], BufferKind::Intermediate),
        ];
        let (a0, a1) = (Expr::Axis(0), Expr::Axis(1));
        let sum = Expr::binary(
            nnc_ir::BinaryOp::Add,
            Expr::load(BufId(0), DType::F32, vec![a0, a1.clone()]),
            Expr::load(BufId(1), DType::F32, vec![a1]),
        );
        let compute = Compute::Map(Expr::unary(UnaryOp::Relu, sum));
        let params = buffers
            .iter()
            .map(|b| Buffer {
                name: b.name.clone(),
                dtype: b.dtype,
                shape: b.shape.clone(),
                space: Space::Global,
                access: crate::kernel::Access::Read,
            })
            .collect();
        let schedule = Schedule::PLAIN;
        let kernel = Kernel {
            name: "k0_add_relu".into(),
            buffers: params,
            launch: Launch { grid: [2, 1, 1], workgroup: [1, 1, 1] },
            body: vec![],
            schedule,
            covers: vec!["%y = relu".into()],
        };
        let fused = Fused {
            name: "g".into(),
            buffers,
            groups: vec![group(0, compute, vec![0, 1], 2)],
            outputs: vec![BufId(2)],
            output_names: vec!["y".into()],
            decisions: vec![],
        };
        Program { fused, kernels: vec![kernel], device: Device::cpu() }
    }
}
