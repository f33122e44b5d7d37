//! The text form of Kernel IR, printed by `nnc dump --after fuse|schedule|legalize`.
//!
//! It is for people and golden tests, not parsed back: buffers are `b0..`, variables `v0..`,
//! output axes of a compute definition `a0..`, thread and workgroup ids `tid.x`/`gid.x`.

use crate::expr::{Expr, Literal, Special};
use crate::kernel::{Access, Compute, Kernel, LoopKind, Space, Stmt};
use nnc_ir::op::{format_float, BinaryClass};
use nnc_ir::{BinaryOp, DType};
use std::fmt::{self, Write};

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Lit(Literal::Float(v, d)) => {
                write!(f, "{}", format_float(*v))?;
                if *d != DType::F32 {
                    write!(f, "{}", d.name())?;
                }
                Ok(())
            }
            Expr::Lit(Literal::Int(v, d)) => {
                write!(f, "{v}")?;
                if *d != DType::I64 {
                    write!(f, "{}", d.name())?;
                }
                Ok(())
            }
            Expr::Lit(Literal::Bool(b)) => write!(f, "{b}"),
            Expr::Var(v) => write!(f, "v{}", v.id),
            Expr::Axis(a) => write!(f, "a{a}"),
            Expr::Special(Special::ThreadId(a)) => write!(f, "tid.{}", axis_name(*a)),
            Expr::Special(Special::GroupId(a)) => write!(f, "gid.{}", axis_name(*a)),
            Expr::Unary(op, a) => write!(f, "{}({a})", op.name()),
            Expr::Binary(op, a, b) => match infix(*op) {
                Some(sym) => write!(f, "({a} {sym} {b})"),
                None => write!(f, "{}({a}, {b})", op.name()),
            },
            Expr::Select(c, a, b) => write!(f, "select({c}, {a}, {b})"),
            Expr::Cast(d, a) => write!(f, "{}({a})", d.name()),
            Expr::Load { buf, index, mask, .. } => {
                write!(f, "b{}[", buf.0)?;
                write_list(f, index)?;
                write!(f, "]")?;
                if let Some(m) = mask {
                    write!(f, " if {m}")?;
                }
                Ok(())
            }
            Expr::Reduce(r) => {
                write!(f, "{}(", r.combine.name())?;
                for (i, (v, n)) in r.vars.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "v{} < {n}", v.id)?;
                }
                write!(f, ": {})", r.body)
            }
        }
    }
}

fn infix(op: BinaryOp) -> Option<&'static str> {
    use BinaryOp::*;
    Some(match op {
        Add => "+",
        Sub => "-",
        Mul => "*",
        Div => "/",
        Rem => "%",
        And => "&&",
        Or => "||",
        Eq => "==",
        Ne => "!=",
        Lt => "<",
        Le => "<=",
        Gt => ">",
        Ge => ">=",
        Pow | Max | Min | Xor => return None,
    })
    .filter(|_| op.class() != BinaryClass::Logical || matches!(op, And | Or))
}

fn axis_name(a: u8) -> char {
    ['x', 'y', 'z'].get(a as usize).copied().unwrap_or('?')
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

/// Prints statements, one per line, indented by `depth` levels.
pub fn write_stmts(out: &mut String, stmts: &[Stmt], depth: usize) {
    for s in stmts {
        write_stmt(out, s, depth);
    }
}

fn write_stmt(out: &mut String, s: &Stmt, depth: usize) {
    let pad = "  ".repeat(depth);
    match s {
        Stmt::For { var, extent, kind, body } => {
            let kind = match kind {
                LoopKind::Serial => String::new(),
                LoopKind::Unroll => " unroll".to_string(),
                LoopKind::Vector(n) => format!(" vector({n})"),
            };
            let _ = writeln!(out, "{pad}for v{} < {extent}{kind} {{", var.id);
            write_stmts(out, body, depth + 1);
            let _ = writeln!(out, "{pad}}}");
        }
        Stmt::Let { var, value } => {
            let _ = writeln!(out, "{pad}let v{}: {} = {value}", var.id, var.dtype.name());
        }
        Stmt::Local { var, init } => {
            let _ = writeln!(out, "{pad}var v{}: {} = {init}", var.id, var.dtype.name());
        }
        Stmt::Assign { var, value } => {
            let _ = writeln!(out, "{pad}v{} = {value}", var.id);
        }
        Stmt::Store { buf, index, value } => {
            let index: Vec<String> = index.iter().map(|e| e.to_string()).collect();
            let _ = writeln!(out, "{pad}b{}[{}] = {value}", buf.0, index.join(", "));
        }
        Stmt::If { cond, then, els } => {
            let _ = writeln!(out, "{pad}if {cond} {{");
            write_stmts(out, then, depth + 1);
            if !els.is_empty() {
                let _ = writeln!(out, "{pad}}} else {{");
                write_stmts(out, els, depth + 1);
            }
            let _ = writeln!(out, "{pad}}}");
        }
        Stmt::Barrier => {
            let _ = writeln!(out, "{pad}barrier");
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.schedule;
        let l = &self.launch;
        writeln!(f, "kernel {}  # {}", self.name, self.covers.join(", "))?;
        writeln!(
            f,
            "  schedule {} workgroup_size={} tile={}x{}x{} vector={} unroll={}",
            s.strategy.name(),
            s.workgroup_size,
            s.tile[0],
            s.tile[1],
            s.tile[2],
            s.vector,
            s.unroll
        )?;
        writeln!(
            f,
            "  launch grid=[{}, {}, {}] workgroup=[{}, {}, {}]",
            l.grid[0], l.grid[1], l.grid[2], l.workgroup[0], l.workgroup[1], l.workgroup[2]
        )?;
        for (i, b) in self.buffers.iter().enumerate() {
            let space = match (b.space, b.access) {
                (Space::Global, Access::Read) => "in",
                (Space::Global, Access::Write) => "out",
                (Space::Global, Access::ReadWrite) => "inout",
                (Space::Workgroup, _) => "workgroup",
                (Space::Private, _) => "private",
            };
            let dims: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            writeln!(f, "  b{i}: {space} {}[{}]  # {}", b.dtype.name(), dims.join(", "), b.name)?;
        }
        let mut body = String::new();
        write_stmts(&mut body, &self.body, 1);
        write!(f, "{body}")
    }
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compute::Map(e) => writeln!(f, "  map {e}"),
            Compute::Program(stmts) => {
                writeln!(f, "  program")?;
                let mut body = String::new();
                write_stmts(&mut body, stmts, 2);
                write!(f, "{body}")
            }
        }
    }
}

impl fmt::Display for crate::program::Fused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::program::BufferKind;
        writeln!(f, "program {}: {} groups, {} buffers", self.name, self.groups.len(), self.buffers.len())?;
        for (i, b) in self.buffers.iter().enumerate() {
            let kind = match &b.kind {
                BufferKind::Input(n) => format!("input {n}"),
                BufferKind::Constant(_) => "constant".to_string(),
                BufferKind::Intermediate => "intermediate".to_string(),
            };
            let dims: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
            writeln!(f, "  b{i}: {kind} {}[{}]  # %{}", b.dtype.name(), dims.join(", "), b.name)?;
        }
        for g in &self.groups {
            let ids = |v: &[crate::expr::BufId]| v.iter().map(|b| format!("b{}", b.0)).collect::<Vec<_>>().join(", ");
            writeln!(f, "group {}  # {}", g.name, g.covers.join("; "))?;
            writeln!(f, "  reads [{}] writes [{}]", ids(&g.reads), ids(&g.writes))?;
            write!(f, "{}", g.compute)?;
        }
        let outs: Vec<String> =
            self.outputs.iter().zip(&self.output_names).map(|(b, n)| format!("%{n} = b{}", b.0)).collect();
        writeln!(f, "outputs {}", outs.join(", "))
    }
}
