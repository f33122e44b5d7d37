//! nnc's C-family printer: the one walk over a legalized kernel's statements and expressions
//! that the GPU languages share, with a [`Dialect`] for what differs (types, declarations,
//! literals, operators, loads and stores, barriers, helpers).
//!
//! The kernels it prints are legalized for the dialect's device (`nnc_lower::legalize`). A
//! language whose select is lazy ([`Dialect::LAZY_SELECT`]: C's `?:`) prints every `select` and
//! masked load with it; for one whose select evaluates both sides (WGSL's `select()`),
//! legalization left no masked load and no select with an effect, and one met anyway is an
//! error, never a silently eager evaluation.
//!
//! A dialect is a type holding its own state (its options, what the kernel turned out to
//! need); its functions take the whole [`Printer`], so they can print sub-expressions, ask for
//! helpers and temporaries, and print lines.

use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{Literal, Special, Var};
use nnc_kernel::{BufId, Expr, Kernel, LoopKind, Stmt};
use std::collections::BTreeSet;

/// Something the printer or a dialect cannot express, naming the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel `{kernel}`: {message}")]
pub struct PrintError {
    pub kernel: String,
    pub message: String,
}

pub type R<T> = Result<T, PrintError>;

/// What one GPU language says differently. Each function gets the printer (and through it its
/// own state, [`Printer::dialect`]).
pub trait Dialect: Sized {
    /// Whether [`Dialect::select`] evaluates only the chosen side.
    const LAZY_SELECT: bool;

    /// The type of a value of `dtype` in registers.
    fn value_type(p: &mut Printer<'_, Self>, dtype: DType) -> R<&'static str>;

    /// `let name: ty = value;`, an immutable binding.
    fn let_line(name: &str, ty: &str, value: &str) -> String;

    /// `var name: ty = value;`, a mutable local.
    fn var_line(name: &str, ty: &str, value: &str) -> String;

    /// The lines that open `for var in 0..extent` (pragmas included), ending with `{`.
    fn for_open(p: &mut Printer<'_, Self>, var: &str, ty: &str, extent: &str, kind: LoopKind) -> Vec<String>;

    /// The statement that waits for the workgroup.
    fn barrier() -> &'static str;

    /// A thread or workgroup id.
    fn special(p: &mut Printer<'_, Self>, s: Special) -> String;

    /// The type [`Dialect::special`]'s text already has: a cast of an id to it is not printed.
    fn special_dtype(p: &Printer<'_, Self>) -> DType;

    fn literal(p: &mut Printer<'_, Self>, l: Literal) -> R<String>;

    /// The value of `buf[index]` (unmasked).
    fn load(p: &mut Printer<'_, Self>, buf: BufId, index: &[Expr]) -> R<String>;

    /// The lines that store `value` (printed) at `buf[index]`.
    fn store(p: &mut Printer<'_, Self>, buf: BufId, index: &[Expr], value: &str) -> R<Vec<String>>;

    /// `cond ? a : b`, where neither side has an effect.
    fn select(cond: &str, a: &str, b: &str) -> String;

    fn unary(p: &mut Printer<'_, Self>, op: UnaryOp, x: &str, dtype: DType) -> R<String>;

    /// `a op b` on operands of `dtype` (the expressions are given too, for dialects that look
    /// at them).
    fn binary(
        p: &mut Printer<'_, Self>,
        op: BinaryOp,
        operands: (&Expr, &Expr),
        x: &str,
        y: &str,
        dtype: DType,
    ) -> R<String>;

    fn cast(p: &mut Printer<'_, Self>, x: &str, from: DType, to: DType) -> R<String>;

    /// The helpers a helper needs.
    fn helper_deps(name: &str) -> &'static [&'static str];

    /// A chance to print `stmts[i..]` in a form of the dialect's own (CUDA's warp shuffles);
    /// returns how many statements it printed (`None`: print `stmts[i]` as usual).
    fn block_hook(_p: &mut Printer<'_, Self>, _stmts: &[Stmt], _i: usize) -> R<Option<usize>> {
        Ok(None)
    }
}

/// The walk, with what it has printed so far.
pub struct Printer<'k, D> {
    pub kernel: &'k Kernel,
    /// The dialect and its state.
    pub dialect: D,
    /// The body printed so far.
    pub out: String,
    indent: usize,
    temps: u32,
    /// The helpers the kernel needs, by name.
    pub helpers: BTreeSet<&'static str>,
}

/// Prints `kernel`'s body with `dialect`, one level indented; returns the printer, holding
/// the text, the helpers used and the dialect's state, for the dialect to frame.
pub fn print_body<D: Dialect>(kernel: &Kernel, dialect: D) -> R<Printer<'_, D>> {
    let mut p = Printer { kernel, dialect, out: String::new(), indent: 1, temps: 0, helpers: BTreeSet::new() };
    p.block(&kernel.body)?;
    Ok(p)
}

/// The name a variable is printed as.
pub fn var_name(v: &Var) -> String {
    format!("v{}", v.id)
}

/// The name a kernel buffer is printed as.
pub fn buffer_name(b: BufId) -> String {
    format!("b{}", b.index())
}

/// A comment's text on one line.
pub fn comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl<D: Dialect> Printer<'_, D> {
    pub fn err(&self, message: impl Into<String>) -> PrintError {
        PrintError { kernel: self.kernel.name.clone(), message: message.into() }
    }

    /// Appends `s` as a line at the current indentation.
    pub fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// A fresh temporary's name.
    pub fn temp(&mut self) -> String {
        self.temps += 1;
        format!("t{}", self.temps)
    }

    /// Records that the kernel needs helper `name` (and what it needs); returns the name.
    pub fn helper(&mut self, name: &'static str) -> &'static str {
        for dep in D::helper_deps(name) {
            self.helpers.insert(dep);
        }
        self.helpers.insert(name);
        name
    }

    /// Prints `stmts` at the current indentation.
    pub fn block(&mut self, stmts: &[Stmt]) -> R<()> {
        let mut i = 0;
        while i < stmts.len() {
            match D::block_hook(self, stmts, i)? {
                Some(n) => i += n.max(1),
                None => {
                    self.stmt(&stmts[i])?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// Runs `f` (which prints lines) one level further indented.
    pub fn indented<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        self.indent += 1;
        let r = f(self);
        self.indent -= 1;
        r
    }

    fn nested(&mut self, stmts: &[Stmt]) -> R<()> {
        self.indented(|p| p.block(stmts))
    }

    pub fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::For { var, extent, kind, body } => {
                let ty = D::value_type(self, var.dtype)?;
                let mut n = self.expr(extent)?;
                if extent.as_int().is_none() {
                    // The extent is evaluated once, before the first iteration.
                    let t = self.temp();
                    self.line(&D::let_line(&t, ty, &n));
                    n = t;
                }
                for l in D::for_open(self, &var_name(var), ty, &n, *kind) {
                    self.line(&l);
                }
                self.nested(body)?;
                self.line("}");
            }
            Stmt::Let { var, value } => {
                let ty = D::value_type(self, var.dtype)?;
                let e = self.expr(value)?;
                self.line(&D::let_line(&var_name(var), ty, &e));
            }
            Stmt::Local { var, init } => {
                let ty = D::value_type(self, var.dtype)?;
                let e = self.expr(init)?;
                self.line(&D::var_line(&var_name(var), ty, &e));
            }
            Stmt::Assign { var, value } => {
                let e = self.expr(value)?;
                self.line(&format!("{} = {e};", var_name(var)));
            }
            Stmt::Store { buf, index, value } => {
                let v = self.expr(value)?;
                for l in D::store(self, *buf, index, &v)? {
                    self.line(&l);
                }
            }
            // A block of its own (a copy of an unrolled loop's body, from legalization).
            Stmt::If { cond: Expr::Lit(Literal::Bool(true)), then, els: _ } => {
                self.line("{");
                self.nested(then)?;
                self.line("}");
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                self.line(&format!("if ({c}) {{"));
                self.nested(then)?;
                if !els.is_empty() {
                    self.line("} else {");
                    self.nested(els)?;
                }
                self.line("}");
            }
            Stmt::Barrier => self.line(D::barrier()),
        }
        Ok(())
    }

    /// The text of `e`.
    pub fn expr(&mut self, e: &Expr) -> R<String> {
        Ok(match e {
            Expr::Lit(l) => D::literal(self, *l)?,
            Expr::Var(v) => var_name(v),
            Expr::Special(s) => D::special(self, *s),
            Expr::Axis(_) | Expr::Reduce(_) => {
                return Err(self.err("a compute-definition expression (axis or reduction) in a scheduled kernel"))
            }
            Expr::Load { mask: Some(_), .. } if !D::LAZY_SELECT => {
                return Err(self.err("a masked load: the kernel was not legalized for this device"))
            }
            // A masked load is a lazy select of the load and zero.
            Expr::Load { buf, index, mask: Some(m), dtype } => {
                let m = self.expr(m)?;
                let load = D::load(self, *buf, index)?;
                let zero = D::literal(self, Literal::zero(*dtype))?;
                D::select(&m, &load, &zero)
            }
            Expr::Load { buf, index, mask: None, .. } => D::load(self, *buf, index)?,
            Expr::Select(c, a, b) => {
                if !D::LAZY_SELECT && [a, b].iter().any(|x| x.any(&mut |y| matches!(y, Expr::Load { .. }))) {
                    return Err(self.err("a select whose side loads: the kernel was not legalized for this device"));
                }
                let (c, a, b) = (self.expr(c)?, self.expr(a)?, self.expr(b)?);
                D::select(&c, &a, &b)
            }
            Expr::Cast(to, a) if matches!(**a, Expr::Special(_)) && *to == D::special_dtype(self) => self.expr(a)?,
            Expr::Cast(to, a) => {
                let x = self.expr(a)?;
                D::cast(self, &x, a.dtype(), *to)?
            }
            Expr::Unary(op, a) => {
                let x = self.expr(a)?;
                D::unary(self, *op, &x, a.dtype())?
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (self.expr(a)?, self.expr(b)?);
                D::binary(self, *op, (a, b), &x, &y, a.dtype())?
            }
        })
    }
}

/// The Kernel IR's `GroupId`/`ThreadId` axis as a letter.
pub fn axis(a: u8) -> char {
    ['x', 'y', 'z'][a.min(2) as usize]
}
