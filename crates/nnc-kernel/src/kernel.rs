//! Kernel IR: scheduled kernels, the unit every backend prints or emits.
//!
//! A [`Kernel`] runs its `body` once per invocation of a grid of workgroups ([`Launch`]), in the
//! GPU model: each invocation sees its own [`Special::ThreadId`] and [`Special::GroupId`], the
//! invocations of one workgroup share [`Space::Workgroup`] buffers and meet at
//! [`Stmt::Barrier`]s. A CPU schedule uses workgroups of one invocation (no barriers, no
//! workgroup memory); the CPU backend runs the grid's workgroups across its threads and a
//! [`LoopKind::Vector`] loop as vector lanes.
//!
//! [`Special::ThreadId`]: crate::expr::Special::ThreadId
//! [`Special::GroupId`]: crate::expr::Special::GroupId

use crate::expr::{BufId, Expr, Var};
use nnc_ir::DType;

/// Where a buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// Device memory, bound by the caller: the kernel's operands and results.
    Global,
    /// Shared by the invocations of one workgroup (`var<workgroup>`, `__shared__`).
    Workgroup,
    /// One copy per invocation (registers, or the stack on a CPU).
    Private,
}

/// How a kernel uses a global buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// A buffer of a kernel: row-major, with a static shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub space: Space,
    pub access: Access,
}

impl Buffer {
    pub fn len(&self) -> i64 {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Vec<i64> {
        row_major_strides(&self.shape)
    }

    /// The flat element offset of a multi-index, as an expression: the one way every backend
    /// turns a load's or store's index into an address.
    pub fn flat_index(&self, index: &[Expr]) -> Expr {
        flat_index(&self.shape, index)
    }
}

/// The flat element offset of a multi-index into a row-major array of `shape`, as an expression.
pub fn flat_index(shape: &[i64], index: &[Expr]) -> Expr {
    index
        .iter()
        .zip(row_major_strides(shape))
        .fold(Expr::i64(0), |acc, (i, s)| Expr::add_index(acc, Expr::mul_index(i.clone(), Expr::i64(s))))
}

/// Row-major strides of a shape, in elements.
pub fn row_major_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// How many workgroups run, and how many invocations each has, per axis (x, y, z).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: [u32; 3],
    pub workgroup: [u32; 3],
}

impl Launch {
    pub fn serial() -> Launch {
        Launch { grid: [1, 1, 1], workgroup: [1, 1, 1] }
    }

    pub fn workgroups(&self) -> u64 {
        self.grid.iter().map(|&g| g as u64).product()
    }

    pub fn threads_per_workgroup(&self) -> u64 {
        self.workgroup.iter().map(|&g| g as u64).product()
    }
}

/// How a loop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoopKind {
    Serial,
    /// Fully unrolled by the backend (the extent is a literal).
    Unroll,
    /// Iterations run as this many vector lanes at a time (the extent is a multiple of it).
    Vector(u32),
}

/// A statement of a kernel body.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `for var in 0..extent`; the extent is evaluated once, before the first iteration.
    For {
        var: Var,
        extent: Expr,
        kind: LoopKind,
        body: Vec<Stmt>,
    },
    /// An immutable binding, visible to the statements after it in the same block.
    Let {
        var: Var,
        value: Expr,
    },
    /// A mutable local (an accumulator), visible to the statements after it in the same block.
    Local {
        var: Var,
        init: Expr,
    },
    /// Assigns a local declared by an enclosing or earlier [`Stmt::Local`].
    Assign {
        var: Var,
        value: Expr,
    },
    /// `buf[index] = value`.
    Store {
        buf: BufId,
        index: Vec<Expr>,
        value: Expr,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    /// Every invocation of the workgroup waits here until all have arrived; workgroup memory
    /// written before it is visible after it. Must be reached by all invocations (uniform
    /// control flow): the interpreter reports a barrier under a divergent branch or loop.
    Barrier,
}

/// Which template the scheduler used for a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// One invocation per output element (or per `vector` elements); reductions run serially
    /// inside the invocation.
    Elementwise,
    /// One workgroup per row: the invocations share the row's reductions through a tree in
    /// workgroup memory, then each writes a strided part of the row.
    RowReduce,
    /// Output tiles per workgroup; operand tiles staged through workgroup memory between barriers.
    TiledMatmul,
    /// One invocation runs an explicit program (ops with no parallel form, such as top-k).
    Serial,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Elementwise => "elementwise",
            Strategy::RowReduce => "row_reduce",
            Strategy::TiledMatmul => "tiled_matmul",
            Strategy::Serial => "serial",
        }
    }
}

/// A kernel's schedule, as data: the knobs an autotuner searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub strategy: Strategy,
    /// Invocations per workgroup (1 on a CPU).
    pub workgroup_size: u32,
    /// Output tile rows and columns, and the reduction step, of [`Strategy::TiledMatmul`].
    pub tile: [u32; 3],
    /// Elements per vector (1 = scalar).
    pub vector: u32,
    /// Unroll factor of the innermost serial loop (1 = none).
    pub unroll: u32,
    /// Of CPU register tiles: which tiles vary slowest across workgroups (which operand's panel
    /// stays in cache while the other streams past it).
    #[serde(default)]
    pub order: TileOrder,
}

impl Schedule {
    /// One invocation per workgroup, no tiles, no vectors, no unrolling: the base every
    /// template's schedule starts from.
    pub const PLAIN: Schedule = Schedule {
        strategy: Strategy::Elementwise,
        workgroup_size: 1,
        tile: [1, 1, 1],
        vector: 1,
        unroll: 1,
        order: TileOrder::Auto,
    };
}

/// The order of a CPU contraction's output tiles across workgroups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileOrder {
    /// The scheduler's choice from the operands' sizes.
    #[default]
    Auto,
    /// Row tiles slowest: a panel of rows of `a` stays while the columns of `b` stream.
    RowsOuter,
    /// Column tiles slowest: a panel of columns of `b` stays while the rows of `a` stream.
    ColumnsOuter,
}

impl std::fmt::Display for Schedule {
    /// The short form of profiles and tuning tables: the strategy and the knobs that are not
    /// 1 (`tiled_matmul tile=4x16x1 v=8`, `elementwise wg=256`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.strategy.name())?;
        if self.workgroup_size > 1 {
            write!(f, " wg={}", self.workgroup_size)?;
        }
        if self.strategy == Strategy::TiledMatmul {
            write!(f, " tile={}x{}x{}", self.tile[0], self.tile[1], self.tile[2])?;
        }
        if self.vector > 1 {
            write!(f, " v={}", self.vector)?;
        }
        if self.unroll > 1 {
            write!(f, " unroll={}", self.unroll)?;
        }
        match self.order {
            TileOrder::Auto => {}
            TileOrder::RowsOuter => f.write_str(" rows-outer")?,
            TileOrder::ColumnsOuter => f.write_str(" columns-outer")?,
        }
        Ok(())
    }
}

/// One scheduled kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub buffers: Vec<Buffer>,
    pub launch: Launch,
    pub body: Vec<Stmt>,
    pub schedule: Schedule,
    /// The graph nodes this kernel computes, in graph order (for dumps and explanations).
    pub covers: Vec<String>,
}

impl Kernel {
    pub fn buffer(&self, id: BufId) -> &Buffer {
        &self.buffers[id.index()]
    }

    /// Bytes of workgroup memory one workgroup of this kernel allocates.
    pub fn workgroup_bytes(&self) -> i64 {
        self.buffers
            .iter()
            .filter(|b| b.space == Space::Workgroup)
            .map(|b| b.len().saturating_mul(b.dtype.size_bytes() as i64))
            .fold(0, i64::saturating_add)
    }

    /// The global buffers, in binding order, with their ids.
    pub fn params(&self) -> impl Iterator<Item = (BufId, &Buffer)> {
        self.buffers.iter().enumerate().filter(|(_, b)| b.space == Space::Global).map(|(i, b)| (BufId(i as u32), b))
    }
}

/// What one graph node, or a fused group of nodes, computes, before scheduling.
#[derive(Clone, Debug, PartialEq)]
pub enum Compute {
    /// `out[Axis(0), .., Axis(r-1)] = expr` for every index of the (single) output's shape.
    /// Loads name operands: `BufId(k)` is the k-th operand.
    Map(Expr),
    /// A program run by one invocation: operands are `BufId(0..n)`, results `BufId(n..n+m)`,
    /// for ops with no per-element form (top-k, scatters with ordered updates).
    Program(Vec<Stmt>),
}
