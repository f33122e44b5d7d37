//! The LLVM IR emitter: one Kernel-IR kernel → one LLVM function (see the parent module for
//! what is left to LLVM's passes and what is spelled out here).

use super::{cstr, NONAME, R};
use crate::emit::{
    coefficient, int_range, is_mul, is_unsigned, lib_symbol, needs_branch, unrolled, varies, vector_plan, Lane, Lanes,
    Lib, Status, ERF_DEN, ERF_NUM,
};
use llvm_sys::core::*;
use llvm_sys::prelude::*;
use llvm_sys::{LLVMIntPredicate, LLVMRealPredicate, LLVMTypeKind};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{BufId, Expr, Literal, Special};
use nnc_kernel::kernel::{Kernel, LoopKind, Space, Stmt};
use std::collections::HashMap;

type V = LLVMValueRef;
type T = LLVMTypeRef;

/// The context, module, builder and types shared by every kernel.
pub(super) struct Cx {
    ctx: LLVMContextRef,
    m: LLVMModuleRef,
    pub(super) b: LLVMBuilderRef,
    f32t: T,
    f64t: T,
    i1: T,
    i8: T,
    i32: T,
    i64: T,
    pub(super) kernel_type: T,
    /// Lanes of the vector loops of the kernel being emitted (see `vector_width`).
    pub(super) width: std::cell::Cell<u32>,
    /// Helper functions declared so far, by name.
    helpers: std::cell::RefCell<HashMap<&'static str, V>>,
}

impl Cx {
    pub(super) unsafe fn new(ctx: LLVMContextRef, m: LLVMModuleRef) -> Cx {
        let i8 = LLVMInt8TypeInContext(ctx);
        let i64 = LLVMInt64TypeInContext(ctx);
        let i32 = LLVMInt32TypeInContext(ctx);
        let mut params = [LLVMPointerType(LLVMPointerType(i8, 0), 0), i64, i64];
        Cx {
            ctx,
            m,
            b: LLVMCreateBuilderInContext(ctx),
            f32t: LLVMFloatTypeInContext(ctx),
            f64t: LLVMDoubleTypeInContext(ctx),
            i1: LLVMInt1TypeInContext(ctx),
            i8,
            i32,
            i64,
            kernel_type: LLVMFunctionType(i32, params.as_mut_ptr(), 3, 0),
            width: std::cell::Cell::new(1),
            helpers: Default::default(),
        }
    }

    /// The register type of a dtype (`bool` as `i1`).
    fn reg(&self, d: DType) -> R<T> {
        // SAFETY: type constructors of a live context.
        Ok(match d {
            DType::F32 => self.f32t,
            DType::F64 => self.f64t,
            DType::I64 | DType::U64 => self.i64,
            DType::I32 | DType::U32 => self.i32,
            DType::I16 | DType::U16 => unsafe { LLVMInt16TypeInContext(self.ctx) },
            DType::I8 | DType::U8 => self.i8,
            DType::Bool => self.i1,
            DType::F16 | DType::BF16 => return Err(format!("{} is left to Cranelift", d.name())),
        })
    }

    /// The in-memory type of a dtype (`bool` as a byte).
    fn mem(&self, d: DType) -> R<T> {
        if d == DType::Bool {
            Ok(self.i8)
        } else {
            self.reg(d)
        }
    }

    fn vec(&self, t: T) -> T {
        // SAFETY: as above.
        unsafe { LLVMVectorType(t, self.width.get()) }
    }
}

pub(super) struct Emitter<'a> {
    cx: &'a Cx,
    kernel: &'a Kernel,
    func: V,
    entry: LLVMBasicBlockRef,
    /// Values of `let`s and of unrolled loop variables (vectors for lane-varying `let`s).
    vals: HashMap<u32, V>,
    /// Stack slots of mutable variables and loop counters.
    slots: HashMap<u32, (V, T)>,
    /// Element pointer of each buffer.
    bases: Vec<V>,
    errors: HashMap<u32, LLVMBasicBlockRef>,
    /// The vector loop being emitted: its variable and how its `let`s are held.
    lanes: Option<(u32, Lanes)>,
    /// Masks (lane vectors) of the `select`s being evaluated in a vector loop: loads of the
    /// selected side read only the lanes their select keeps.
    guards: Vec<V>,
    pub(super) vectorized_loops: usize,
    /// Variables holding loaded data: an index reading one is bounds-checked.
    data: std::collections::BTreeSet<u32>,
}

impl<'a> Emitter<'a> {
    pub(super) fn new(cx: &'a Cx, kernel: &'a Kernel, func: V) -> Emitter<'a> {
        Emitter {
            cx,
            kernel,
            func,
            entry: std::ptr::null_mut(),
            vals: HashMap::new(),
            slots: HashMap::new(),
            bases: Vec::new(),
            errors: HashMap::new(),
            lanes: None,
            guards: Vec::new(),
            vectorized_loops: 0,
            data: nnc_kernel::visit::data_dependent_vars(&kernel.body),
        }
    }

    // ------------------------------------------------------------ raw helpers

    fn b(&self) -> LLVMBuilderRef {
        self.cx.b
    }

    fn block(&self, name: &str) -> LLVMBasicBlockRef {
        // SAFETY: appends to this emitter's function.
        unsafe { LLVMAppendBasicBlockInContext(self.cx.ctx, self.func, cstr(name).as_ptr()) }
    }

    fn at(&self, bb: LLVMBasicBlockRef) {
        // SAFETY: positions the shared builder.
        unsafe { LLVMPositionBuilderAtEnd(self.b(), bb) }
    }

    fn current(&self) -> LLVMBasicBlockRef {
        // SAFETY: the builder is positioned.
        unsafe { LLVMGetInsertBlock(self.b()) }
    }

    fn br(&self, bb: LLVMBasicBlockRef) {
        // SAFETY: a terminator at the end of the current block.
        unsafe { LLVMBuildBr(self.b(), bb) };
    }

    fn cond_br(&self, c: V, t: LLVMBasicBlockRef, e: LLVMBasicBlockRef) {
        // SAFETY: as above.
        unsafe { LLVMBuildCondBr(self.b(), c, t, e) };
    }

    fn i64c(&self, v: i64) -> V {
        // SAFETY: constants of a live context.
        unsafe { LLVMConstInt(self.cx.i64, v as u64, 1) }
    }

    fn type_of(v: V) -> T {
        // SAFETY: any value has a type.
        unsafe { LLVMTypeOf(v) }
    }

    fn is_vector(v: V) -> bool {
        // SAFETY: as above.
        unsafe { LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMTypeKind::LLVMVectorTypeKind }
    }

    /// Constant `v` of type `t` (splatted for vector types).
    fn constant(&self, t: T, v: f64) -> V {
        // SAFETY: constants of a live context.
        splat_constant(t, |s| unsafe {
            match LLVMGetTypeKind(s) {
                LLVMTypeKind::LLVMFloatTypeKind | LLVMTypeKind::LLVMDoubleTypeKind => LLVMConstReal(s, v),
                _ => LLVMConstInt(s, v as i64 as u64, 1),
            }
        })
    }

    /// Integer constant `v` of type `t` (splatted for vector types), exact for every width.
    fn int_constant(&self, t: T, v: i64) -> V {
        // SAFETY: as above.
        splat_constant(t, |s| unsafe { LLVMConstInt(s, v as u64, 1) })
    }

    /// `x` in every lane (vectors stay as they are).
    fn splat(&self, x: V) -> V {
        if Self::is_vector(x) {
            return x;
        }
        // SAFETY: insert + shuffle of a scalar into a vector of the emitter's width.
        unsafe {
            let vt = self.cx.vec(Self::type_of(x));
            let undef = LLVMGetUndef(vt);
            let one = LLVMBuildInsertElement(self.b(), undef, x, LLVMConstInt(self.cx.i32, 0, 0), NONAME);
            let zeros = LLVMConstNull(LLVMVectorType(self.cx.i32, self.cx.width.get()));
            LLVMBuildShuffleVector(self.b(), one, undef, zeros, NONAME)
        }
    }

    /// `0, 1, ..., width - 1` times `step`, as `i64` lanes.
    fn iota(&self, step: i64) -> V {
        let mut lanes: Vec<V> = (0..self.cx.width.get() as i64).map(|k| self.i64c(k * step)).collect();
        // SAFETY: a constant vector.
        unsafe { LLVMConstVector(lanes.as_mut_ptr(), lanes.len() as u32) }
    }

    /// Calls intrinsic `name` overloaded on `types`.
    fn intrinsic(&self, name: &str, types: &[T], args: &[V]) -> V {
        // SAFETY: the intrinsic exists for these overload types (LLVM asserts otherwise).
        unsafe {
            let id = LLVMLookupIntrinsicID(name.as_ptr() as *const _, name.len());
            let mut tys = types.to_vec();
            let f = LLVMGetIntrinsicDeclaration(self.cx.m, id, tys.as_mut_ptr(), tys.len());
            let fty = LLVMIntrinsicGetType(self.cx.ctx, id, tys.as_mut_ptr(), tys.len());
            let mut args = args.to_vec();
            LLVMBuildCall2(self.b(), fty, f, args.as_mut_ptr(), args.len() as u32, NONAME)
        }
    }

    /// Calls runtime helper `lib` (declared once per module; the loader patches in its address).
    fn call_helper(&self, lib: Lib, args: &[V]) -> R<V> {
        let f = self.helper_function(lib)?;
        // SAFETY: a call with the declared function type.
        unsafe {
            let mut args = args.to_vec();
            let fty = LLVMGlobalGetValueType(f);
            Ok(LLVMBuildCall2(self.b(), fty, f, args.as_mut_ptr(), args.len() as u32, NONAME))
        }
    }

    /// The declaration of runtime helper `lib` in this module.
    fn helper_function(&self, lib: Lib) -> R<V> {
        let (name, _, _, _) = lib_symbol(lib).ok_or("no helper")?;
        let (params, ret): (Vec<T>, T) = match lib {
            Lib::Unary(_) => (vec![self.cx.f64t], self.cx.f64t),
            Lib::Fmod | Lib::Pow => (vec![self.cx.f64t, self.cx.f64t], self.cx.f64t),
            Lib::IPow => (vec![self.cx.i64, self.cx.i64], self.cx.i64),
            Lib::Map => (vec![self.cx.i64, self.cx.i64, self.cx.i64], self.cx.i64),
            _ => return Err(format!("helper `{name}` is left to Cranelift")),
        };
        // SAFETY: a declaration in this module.
        unsafe {
            let mut params = params;
            let fty = LLVMFunctionType(ret, params.as_mut_ptr(), params.len() as u32, 0);
            Ok(*self
                .cx
                .helpers
                .borrow_mut()
                .entry(name)
                .or_insert_with(|| LLVMAddFunction(self.cx.m, cstr(name).as_ptr(), fty)))
        }
    }

    fn error_block(&mut self, status: Status) -> LLVMBasicBlockRef {
        let code = status as u32;
        if let Some(&b) = self.errors.get(&code) {
            return b;
        }
        let here = self.current();
        let blk = self.block("error");
        self.at(blk);
        // SAFETY: a return of the kernel's status type.
        unsafe { LLVMBuildRet(self.b(), LLVMConstInt(self.cx.i32, code as u64, 0)) };
        self.at(here);
        self.errors.insert(code, blk);
        blk
    }

    fn fail_if(&mut self, cond: V, status: Status) {
        let err = self.error_block(status);
        let cont = self.block("ok");
        self.cond_br(cond, err, cont);
        self.at(cont);
    }

    /// A stack slot in the entry block (where mem2reg and SROA look for them).
    fn alloca(&self, t: T) -> V {
        // SAFETY: positions a temporary builder at the top of the entry block.
        unsafe {
            let b = LLVMCreateBuilderInContext(self.cx.ctx);
            let first = LLVMGetFirstInstruction(self.entry);
            if first.is_null() {
                LLVMPositionBuilderAtEnd(b, self.entry);
            } else {
                LLVMPositionBuilderBefore(b, first);
            }
            let a = LLVMBuildAlloca(b, t, NONAME);
            LLVMSetAlignment(a, 64);
            LLVMDisposeBuilder(b);
            a
        }
    }

    // ------------------------------------------------------------ function and statements

    pub(super) fn function(&mut self) -> R<()> {
        crate::emit::check_cpu_kernel(self.kernel)?;
        for b in &self.kernel.buffers {
            self.cx.mem(b.dtype)?;
        }
        self.entry = self.block("entry");
        self.at(self.entry);
        // SAFETY: parameters of the kernel signature; loads of the buffer table.
        unsafe {
            let table = LLVMGetParam(self.func, 0);
            let (begin, end) = (LLVMGetParam(self.func, 1), LLVMGetParam(self.func, 2));
            let mut global = 0;
            for buf in &self.kernel.buffers {
                let et = self.cx.mem(buf.dtype)?;
                let base = match buf.space {
                    Space::Global => {
                        let mut idx = [self.i64c(global)];
                        global += 1;
                        let pt = LLVMPointerType(self.cx.i8, 0);
                        let slot = LLVMBuildGEP2(self.b(), pt, table, idx.as_mut_ptr(), 1, NONAME);
                        let raw = LLVMBuildLoad2(self.b(), pt, slot, NONAME);
                        LLVMBuildBitCast(self.b(), raw, LLVMPointerType(et, 0), NONAME)
                    }
                    _ => {
                        let n = buf.len().max(1) as u32;
                        let a = self.alloca(LLVMArrayType(et, n));
                        LLVMBuildBitCast(self.b(), a, LLVMPointerType(et, 0), NONAME)
                    }
                };
                self.bases.push(base);
            }
            // for g in begin..end: gid = unflatten(g); body
            let gslot = self.alloca(self.cx.i64);
            LLVMBuildStore(self.b(), begin, gslot);
            let (header, body, exit) = (self.block("groups"), self.block("group"), self.block("done"));
            self.br(header);
            self.at(header);
            let g = LLVMBuildLoad2(self.b(), self.cx.i64, gslot, NONAME);
            let done = LLVMBuildICmp(self.b(), LLVMIntPredicate::LLVMIntUGE, g, end, NONAME);
            self.cond_br(done, exit, body);
            self.at(body);
            let [gx, gy, _] = self.kernel.launch.grid.map(|v| v as i64);
            let x = LLVMBuildURem(self.b(), g, self.i64c(gx.max(1)), NONAME);
            let q = LLVMBuildUDiv(self.b(), g, self.i64c(gx.max(1)), NONAME);
            let y = LLVMBuildURem(self.b(), q, self.i64c(gy.max(1)), NONAME);
            let z = LLVMBuildUDiv(self.b(), g, self.i64c((gx * gy).max(1)), NONAME);
            for (axis, v) in [x, y, z].into_iter().enumerate() {
                self.vals.insert(u32::MAX - axis as u32, v);
            }
            self.stmts(&self.kernel.body)?;
            let g = LLVMBuildLoad2(self.b(), self.cx.i64, gslot, NONAME);
            let next = LLVMBuildAdd(self.b(), g, self.i64c(1), NONAME);
            LLVMBuildStore(self.b(), next, gslot);
            self.br(header);
            self.at(exit);
            LLVMBuildRet(self.b(), LLVMConstInt(self.cx.i32, 0, 0));
        }
        Ok(())
    }

    fn stmts(&mut self, stmts: &[Stmt]) -> R<()> {
        stmts.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::For { var, extent, kind, body } => {
                // A vector loop of this kernel's width whose body has a plan becomes vector code.
                let w = self.cx.width.get();
                let mut lanes = Lanes::new();
                let vector = matches!(kind, LoopKind::Vector(lw) if *lw == w && w > 1)
                    && extent.as_int().is_some_and(|n| n % w as i64 == 0)
                    && vector_plan(self.kernel, var.id, body, &mut lanes);
                let lanes = vector.then_some(&lanes);
                if let Some((n, step)) = unrolled(self.kernel, w, var.id, *kind, extent, body) {
                    let t = self.cx.reg(var.dtype)?;
                    for k in (0..n).step_by(step as usize) {
                        self.vals.insert(var.id, self.int_constant(t, k));
                        match lanes.filter(|_| step > 1) {
                            Some(lanes) => self.vector_body(var.id, body, lanes)?,
                            None => self.stmts(body)?,
                        }
                    }
                    self.vectorized_loops += usize::from(step > 1);
                    return Ok(());
                }
                self.vectorized_loops += usize::from(vector);
                self.counted_loop(var.id, var.dtype, extent, lanes, body)
            }
            Stmt::Let { var, value } => {
                let v = self.expr(value)?;
                self.vals.insert(var.id, v);
                Ok(())
            }
            Stmt::Local { var, init } => {
                let t = self.cx.reg(var.dtype)?;
                let slot = self.alloca(t);
                let v = self.expr(init)?;
                // SAFETY: store of a value of the slot's type.
                unsafe { LLVMBuildStore(self.b(), v, slot) };
                self.slots.insert(var.id, (slot, t));
                Ok(())
            }
            Stmt::Assign { var, value } => {
                let v = self.expr(value)?;
                let &(slot, _) =
                    self.slots.get(&var.id).ok_or_else(|| format!("assignment to undeclared v{}", var.id))?;
                // SAFETY: as above.
                unsafe { LLVMBuildStore(self.b(), v, slot) };
                Ok(())
            }
            Stmt::Store { buf, index, value } => {
                let v = self.expr(value)?;
                let addr = self.address(*buf, index)?;
                self.store(self.kernel.buffer(*buf).dtype, v, addr);
                Ok(())
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                let (tb, eb, merge) = (self.block("then"), self.block("else"), self.block("endif"));
                self.cond_br(c, tb, eb);
                self.at(tb);
                self.stmts(then)?;
                self.br(merge);
                self.at(eb);
                self.stmts(els)?;
                self.br(merge);
                self.at(merge);
                Ok(())
            }
            Stmt::Barrier => Err("barriers are not supported on the CPU".into()),
        }
    }

    /// `for var < extent`: one iteration per element, or per vector of the kernel's width with
    /// the body as vector code when the loop has a plan (`lanes`).
    fn counted_loop(&mut self, var: u32, dtype: DType, extent: &Expr, lanes: Option<&Lanes>, body: &[Stmt]) -> R<()> {
        if !dtype.is_int() || !extent.dtype().is_int() {
            return Err(format!("loop v{var} needs an integer variable and extent"));
        }
        let t = self.cx.reg(dtype)?;
        let n = self.expr(extent)?;
        let n = self.int_convert(n, extent.dtype(), dtype)?;
        let slot = self.alloca(t);
        // SAFETY: loads and stores of the counter slot, compare, branches.
        unsafe {
            LLVMBuildStore(self.b(), self.int_constant(t, 0), slot);
            let (header, bodyb, exit) = (self.block("loop"), self.block("body"), self.block("endloop"));
            self.br(header);
            self.at(header);
            let i = LLVMBuildLoad2(self.b(), t, slot, NONAME);
            let pred = if is_unsigned(dtype) { LLVMIntPredicate::LLVMIntUGE } else { LLVMIntPredicate::LLVMIntSGE };
            let done = LLVMBuildICmp(self.b(), pred, i, n, NONAME);
            self.cond_br(done, exit, bodyb);
            self.at(bodyb);
            let i = LLVMBuildLoad2(self.b(), t, slot, NONAME);
            self.vals.insert(var, i);
            match lanes {
                Some(lanes) => self.vector_body(var, body, lanes)?,
                None => self.stmts(body)?,
            }
            let i = LLVMBuildLoad2(self.b(), t, slot, NONAME);
            let step = if lanes.is_some() { self.cx.width.get() as i64 } else { 1 };
            let next = LLVMBuildAdd(self.b(), i, self.int_constant(t, step), NONAME);
            LLVMBuildStore(self.b(), next, slot);
            self.br(header);
            self.at(exit);
        }
        Ok(())
    }

    // ------------------------------------------------------------ memory

    /// The element pointer of `buf[index]`; data-dependent indices are bounds-checked.
    fn address(&mut self, buf: BufId, index: &[Expr]) -> R<V> {
        self.address_with(buf, index, true)
    }

    /// [`Self::address`]; `inbounds: false` for the first lane of a masked vector load, which
    /// may lie outside the buffer (an `inbounds` GEP there would be poison).
    fn address_with(&mut self, buf: BufId, index: &[Expr], inbounds: bool) -> R<V> {
        let b = self.kernel.buffers.get(buf.index()).ok_or_else(|| format!("no buffer b{}", buf.0))?;
        if index.len() != b.shape.len() {
            return Err(format!("buffer `{}` has rank {}, indexed with {}", b.name, b.shape.len(), index.len()));
        }
        let (len, et) = (b.len(), self.cx.mem(b.dtype)?);
        let flat_expr = b.flat_index(index);
        let flat = self.scalar(&flat_expr)?;
        if index.iter().any(|i| nnc_kernel::visit::depends_on_data(i, &self.data)) {
            // SAFETY: compare of two i64 values.
            let bad = unsafe { LLVMBuildICmp(self.b(), LLVMIntPredicate::LLVMIntUGE, flat, self.i64c(len), NONAME) };
            self.fail_if(bad, Status::OutOfBounds);
        }
        let mut idx = [flat];
        let base = self.bases[buf.index()];
        // SAFETY: GEP on the buffer's element pointer.
        Ok(unsafe {
            if inbounds {
                LLVMBuildInBoundsGEP2(self.b(), et, base, idx.as_mut_ptr(), 1, NONAME)
            } else {
                LLVMBuildGEP2(self.b(), et, base, idx.as_mut_ptr(), 1, NONAME)
            }
        })
    }

    fn load(&self, dtype: DType, addr: V) -> R<V> {
        let et = self.cx.mem(dtype)?;
        // SAFETY: a load of the element type at an element pointer.
        unsafe {
            let v = LLVMBuildLoad2(self.b(), et, addr, NONAME);
            Ok(if dtype == DType::Bool {
                LLVMBuildICmp(self.b(), LLVMIntPredicate::LLVMIntNE, v, LLVMConstInt(self.cx.i8, 0, 0), NONAME)
            } else {
                v
            })
        }
    }

    fn store(&self, dtype: DType, v: V, addr: V) {
        // SAFETY: a store of the element type (vectors through a vector pointer, 4-byte aligned).
        unsafe {
            if Self::is_vector(v) {
                let p = LLVMBuildBitCast(self.b(), addr, LLVMPointerType(Self::type_of(v), 0), NONAME);
                let s = LLVMBuildStore(self.b(), v, p);
                LLVMSetAlignment(s, 4);
                return;
            }
            let v = if dtype == DType::Bool { LLVMBuildZExt(self.b(), v, self.cx.i8, NONAME) } else { v };
            LLVMBuildStore(self.b(), v, addr);
        }
    }

    // ------------------------------------------------------------ scalar expressions

    /// An expression outside vector lanes (lane 0's value of an index inside a vector loop).
    fn scalar(&mut self, e: &Expr) -> R<V> {
        let lanes = self.lanes.take();
        let r = self.expr(e);
        self.lanes = lanes;
        r
    }

    fn expr(&mut self, e: &Expr) -> R<V> {
        if let Some((lv, lanes)) = &self.lanes {
            if varies(e, *lv, lanes) {
                return self.vexpr(e);
            }
        }
        Ok(match e {
            Expr::Lit(l) => self.literal(*l)?,
            Expr::Var(v) => match self.slots.get(&v.id) {
                // SAFETY: a load of the slot's type.
                Some(&(slot, t)) => unsafe { LLVMBuildLoad2(self.b(), t, slot, NONAME) },
                None => *self.vals.get(&v.id).ok_or_else(|| format!("use of undeclared v{}", v.id))?,
            },
            Expr::Special(Special::ThreadId(_)) => self.i64c(0),
            Expr::Special(Special::GroupId(axis)) => {
                *self.vals.get(&(u32::MAX - *axis as u32)).ok_or("bad group id axis")?
            }
            Expr::Axis(_) | Expr::Reduce(_) => return Err(format!("expression `{e}` is not scheduled")),
            Expr::Unary(op, a) => {
                let x = self.expr(a)?;
                self.unary(*op, a.dtype(), x)?
            }
            Expr::Binary(op, a, b) => {
                let x = self.expr(a)?;
                let y = self.expr(b)?;
                self.binary(*op, a.dtype(), x, y)?
            }
            Expr::Select(c, a, b) => {
                let cv = self.expr(c)?;
                if !needs_branch(a) && !needs_branch(b) {
                    let x = self.expr(a)?;
                    let y = self.expr(b)?;
                    // SAFETY: select of two values of one type.
                    unsafe { LLVMBuildSelect(self.b(), cv, x, y, NONAME) }
                } else {
                    let (tb, eb, merge) = (self.block("sel.then"), self.block("sel.else"), self.block("sel"));
                    self.cond_br(cv, tb, eb);
                    self.at(tb);
                    let x = self.expr(a)?;
                    let xb = self.current();
                    self.br(merge);
                    self.at(eb);
                    let y = self.expr(b)?;
                    let yb = self.current();
                    self.br(merge);
                    self.at(merge);
                    self.phi(&[(x, xb), (y, yb)])
                }
            }
            Expr::Cast(to, a) => {
                let x = self.expr(a)?;
                self.cast(x, a.dtype(), *to)?
            }
            Expr::Load { buf, dtype, index, mask } => match mask {
                None => {
                    let addr = self.address(*buf, index)?;
                    self.load(*dtype, addr)?
                }
                Some(m) => {
                    let c = self.expr(m)?;
                    let (tb, eb, merge) = (self.block("ld"), self.block("ld.masked"), self.block("ld.done"));
                    self.cond_br(c, tb, eb);
                    self.at(tb);
                    let addr = self.address(*buf, index)?;
                    let x = self.load(*dtype, addr)?;
                    let xb = self.current();
                    self.br(merge);
                    self.at(eb);
                    let zero = self.constant(self.cx.reg(*dtype)?, 0.0);
                    self.br(merge);
                    self.at(merge);
                    self.phi(&[(x, xb), (zero, eb)])
                }
            },
        })
    }

    fn phi(&self, incoming: &[(V, LLVMBasicBlockRef)]) -> V {
        // SAFETY: a phi at the top of the merge block, one entry per predecessor.
        unsafe {
            let p = LLVMBuildPhi(self.b(), Self::type_of(incoming[0].0), NONAME);
            let mut vs: Vec<V> = incoming.iter().map(|x| x.0).collect();
            let mut bs: Vec<LLVMBasicBlockRef> = incoming.iter().map(|x| x.1).collect();
            LLVMAddIncoming(p, vs.as_mut_ptr(), bs.as_mut_ptr(), vs.len() as u32);
            p
        }
    }

    fn literal(&self, l: Literal) -> R<V> {
        Ok(match l {
            Literal::Float(v, d) => self.constant(self.cx.reg(d)?, if d == DType::F32 { v as f32 as f64 } else { v }),
            Literal::Int(v, d) => {
                let t = self.cx.reg(d)?;
                if d.is_float() {
                    self.constant(t, v as f64)
                } else {
                    self.int_constant(t, v)
                }
            }
            // SAFETY: an i1 constant.
            Literal::Bool(v) => unsafe { LLVMConstInt(self.cx.i1, v as u64, 0) },
        })
    }

    /// Widens a float to `f64` (for helpers computing in `f64`).
    fn widen(&self, d: DType, x: V) -> V {
        if d == DType::F64 {
            return x;
        }
        // SAFETY: fpext f32 → f64.
        unsafe { LLVMBuildFPExt(self.b(), x, self.cx.f64t, NONAME) }
    }

    fn narrow(&self, d: DType, x: V) -> V {
        if d == DType::F64 {
            return x;
        }
        // SAFETY: fptrunc f64 → f32.
        unsafe { LLVMBuildFPTrunc(self.b(), x, self.cx.f32t, NONAME) }
    }

    /// A float helper on `x` (scalar, or lane by lane for vectors), computed in `f64`.
    fn float_helper(&self, lib: Lib, d: DType, args: &[V]) -> R<V> {
        if !Self::is_vector(args[0]) {
            let wide: Vec<V> = args.iter().map(|&a| self.widen(d, a)).collect();
            let r = self.call_helper(lib, &wide)?;
            return Ok(self.narrow(d, r));
        }
        if let (Lib::Unary(_), DType::F32) = (lib, d) {
            // One call maps every lane through a stack slot: a call per lane would spill the
            // loop's vector registers each time (and make the function 16 times longer).
            let vt = Self::type_of(args[0]);
            let slot = self.alloca(vt);
            // SAFETY: the slot holds one vector; the helper reads and writes its lanes.
            unsafe {
                LLVMBuildStore(self.b(), args[0], slot);
                let routine = self.helper_function(lib)?;
                let f = LLVMBuildPtrToInt(self.b(), routine, self.cx.i64, NONAME);
                let p = LLVMBuildPtrToInt(self.b(), slot, self.cx.i64, NONAME);
                self.call_helper(Lib::Map, &[f, p, self.i64c(self.cx.width.get() as i64)])?;
                return Ok(LLVMBuildLoad2(self.b(), vt, slot, NONAME));
            }
        }
        let mut out = args[0];
        for lane in 0..self.cx.width.get() {
            // SAFETY: lane extraction and insertion within the vector's width.
            unsafe {
                let k = LLVMConstInt(self.cx.i32, lane as u64, 0);
                let wide: Vec<V> =
                    args.iter().map(|&a| self.widen(d, LLVMBuildExtractElement(self.b(), a, k, NONAME))).collect();
                let r = self.call_helper(lib, &wide)?;
                out = LLVMBuildInsertElement(self.b(), out, self.narrow(d, r), k, NONAME);
            }
        }
        Ok(out)
    }

    fn fcmp(&self, p: LLVMRealPredicate, x: V, y: V) -> V {
        // SAFETY: compare of two floats (or float vectors) of one type.
        unsafe { LLVMBuildFCmp(self.b(), p, x, y, NONAME) }
    }

    fn icmp(&self, p: LLVMIntPredicate, x: V, y: V) -> V {
        // SAFETY: as above, integers.
        unsafe { LLVMBuildICmp(self.b(), p, x, y, NONAME) }
    }

    /// NaN-propagating `max` (`wins` = unordered-greater) or `min` (unordered-less): LLVM 14
    /// cannot lower `llvm.maximum` on x86. `y` if it is NaN, else `x` if it wins or is NaN.
    fn fmax(&self, wins: LLVMRealPredicate, x: V, y: V) -> V {
        let y_nan = self.fcmp(LLVMRealPredicate::LLVMRealUNO, y, y);
        let m = self.select(self.fcmp(wins, x, y), x, y);
        self.select(y_nan, y, m)
    }

    fn select(&self, c: V, x: V, y: V) -> V {
        // SAFETY: select of two values of one type.
        unsafe { LLVMBuildSelect(self.b(), c, x, y, NONAME) }
    }

    fn unary(&mut self, op: UnaryOp, d: DType, x: V) -> R<V> {
        let t = Self::type_of(x);
        let bad = || format!("`{}` on {}", op.name(), d.name());
        let b = self.b();
        // SAFETY: arithmetic on values of matching types throughout.
        unsafe {
            if d.is_float() {
                if lib_symbol(Lib::Unary(op)).is_some() {
                    if op == UnaryOp::Exp && Self::is_vector(x) && d == DType::F32 {
                        return Ok(self.vexp(x));
                    }
                    if op == UnaryOp::Erf && Self::is_vector(x) && d == DType::F32 {
                        return Ok(self.verf(x));
                    }
                    return self.float_helper(Lib::Unary(op), d, &[x]);
                }
                let zero = self.constant(t, 0.0);
                return Ok(match op {
                    UnaryOp::Neg => LLVMBuildFNeg(b, x, NONAME),
                    UnaryOp::Abs => self.intrinsic("llvm.fabs", &[t], &[x]),
                    UnaryOp::Sign => {
                        let gt = self.fcmp(LLVMRealPredicate::LLVMRealOGT, x, zero);
                        let lt = self.fcmp(LLVMRealPredicate::LLVMRealOLT, x, zero);
                        let r = self.select(lt, self.constant(t, -1.0), x);
                        self.select(gt, self.constant(t, 1.0), r)
                    }
                    UnaryOp::Relu => {
                        let keep = self.fcmp(LLVMRealPredicate::LLVMRealUGT, x, zero);
                        self.select(keep, x, zero)
                    }
                    UnaryOp::Sqrt => self.intrinsic("llvm.sqrt", &[t], &[x]),
                    UnaryOp::Rsqrt => {
                        let w = self.widen(d, x);
                        let s = self.intrinsic("llvm.sqrt", &[self.cx.f64t], &[w]);
                        let r = LLVMBuildFDiv(b, LLVMConstReal(self.cx.f64t, 1.0), s, NONAME);
                        self.narrow(d, r)
                    }
                    UnaryOp::Reciprocal => LLVMBuildFDiv(b, self.constant(t, 1.0), x, NONAME),
                    UnaryOp::Floor => self.intrinsic("llvm.floor", &[t], &[x]),
                    UnaryOp::Ceil => self.intrinsic("llvm.ceil", &[t], &[x]),
                    UnaryOp::Round => self.intrinsic("llvm.roundeven", &[t], &[x]),
                    UnaryOp::IsNan => self.fcmp(LLVMRealPredicate::LLVMRealUNO, x, x),
                    UnaryOp::IsInf => {
                        let a = self.intrinsic("llvm.fabs", &[t], &[x]);
                        self.fcmp(LLVMRealPredicate::LLVMRealOEQ, a, self.constant(t, f64::INFINITY))
                    }
                    _ => return Err(bad()),
                });
            }
            if d == DType::Bool {
                return match op {
                    UnaryOp::Not => Ok(LLVMBuildXor(b, x, self.int_constant(t, 1), NONAME)),
                    _ => Err(bad()),
                };
            }
            let zero = self.int_constant(t, 0);
            let unsigned = is_unsigned(d);
            Ok(match op {
                UnaryOp::Neg => LLVMBuildNeg(b, x, NONAME),
                UnaryOp::Abs if unsigned => x,
                UnaryOp::Abs => {
                    let neg = self.icmp(LLVMIntPredicate::LLVMIntSLT, x, zero);
                    self.select(neg, LLVMBuildNeg(b, x, NONAME), x)
                }
                UnaryOp::Sign if unsigned => {
                    let nz = self.icmp(LLVMIntPredicate::LLVMIntNE, x, zero);
                    self.select(nz, self.int_constant(t, 1), zero)
                }
                UnaryOp::Sign => {
                    let gt = self.icmp(LLVMIntPredicate::LLVMIntSGT, x, zero);
                    let lt = self.icmp(LLVMIntPredicate::LLVMIntSLT, x, zero);
                    let r = self.select(lt, self.int_constant(t, -1), zero);
                    self.select(gt, self.int_constant(t, 1), r)
                }
                UnaryOp::Relu if unsigned => x,
                UnaryOp::Relu => {
                    let pos = self.icmp(LLVMIntPredicate::LLVMIntSGT, x, zero);
                    self.select(pos, x, zero)
                }
                _ => return Err(bad()),
            })
        }
    }

    fn binary(&mut self, op: BinaryOp, d: DType, x: V, y: V) -> R<V> {
        use BinaryOp::*;
        let (x, y) = if Self::is_vector(x) || Self::is_vector(y) { (self.splat(x), self.splat(y)) } else { (x, y) };
        let t = Self::type_of(x);
        let bad = || format!("`{}` on {}", op.name(), d.name());
        let b = self.b();
        // SAFETY: arithmetic on values of matching types throughout.
        unsafe {
            if d.is_float() {
                use LLVMRealPredicate::*;
                let p = match op {
                    Eq => Some(LLVMRealOEQ),
                    Ne => Some(LLVMRealUNE),
                    Lt => Some(LLVMRealOLT),
                    Le => Some(LLVMRealOLE),
                    Gt => Some(LLVMRealOGT),
                    Ge => Some(LLVMRealOGE),
                    _ => None,
                };
                if let Some(p) = p {
                    return Ok(self.fcmp(p, x, y));
                }
                return Ok(match op {
                    Add => LLVMBuildFAdd(b, x, y, NONAME),
                    Sub => LLVMBuildFSub(b, x, y, NONAME),
                    Mul => LLVMBuildFMul(b, x, y, NONAME),
                    Div => LLVMBuildFDiv(b, x, y, NONAME),
                    Max => self.fmax(LLVMRealUGT, x, y),
                    Min => self.fmax(LLVMRealULT, x, y),
                    Rem => self.float_helper(Lib::Fmod, d, &[x, y])?,
                    Pow => self.float_helper(Lib::Pow, d, &[x, y])?,
                    _ => return Err(bad()),
                });
            }
            let unsigned = is_unsigned(d);
            use LLVMIntPredicate::*;
            let p = match op {
                Eq => Some(LLVMIntEQ),
                Ne => Some(LLVMIntNE),
                Lt => Some(if unsigned { LLVMIntULT } else { LLVMIntSLT }),
                Le => Some(if unsigned { LLVMIntULE } else { LLVMIntSLE }),
                Gt => Some(if unsigned { LLVMIntUGT } else { LLVMIntSGT }),
                Ge => Some(if unsigned { LLVMIntUGE } else { LLVMIntSGE }),
                _ => None,
            };
            if let Some(p) = p {
                return Ok(self.icmp(p, x, y));
            }
            if d == DType::Bool {
                return Ok(match op {
                    And => LLVMBuildAnd(b, x, y, NONAME),
                    Or => LLVMBuildOr(b, x, y, NONAME),
                    Xor => LLVMBuildXor(b, x, y, NONAME),
                    _ => return Err(bad()),
                });
            }
            Ok(match op {
                Add => LLVMBuildAdd(b, x, y, NONAME),
                Sub => LLVMBuildSub(b, x, y, NONAME),
                Mul => LLVMBuildMul(b, x, y, NONAME),
                Max => self.select(self.icmp(if unsigned { LLVMIntUGT } else { LLVMIntSGT }, x, y), x, y),
                Min => self.select(self.icmp(if unsigned { LLVMIntULT } else { LLVMIntSLT }, x, y), x, y),
                Div | Rem if Self::is_vector(x) => return Err("vector integer division".into()),
                Div | Rem => {
                    let constant = !LLVMIsAConstantInt(y).is_null();
                    let c = if constant { Some(LLVMConstIntGetSExtValue(y)) } else { None };
                    let needs_check = c.is_none_or(|c| c == 0 || (!unsigned && c == -1));
                    if needs_check {
                        let is_zero = self.icmp(LLVMIntEQ, y, self.int_constant(t, 0));
                        self.fail_if(is_zero, if op == Div { Status::DivisionByZero } else { Status::RemainderByZero });
                    }
                    match (op, unsigned) {
                        (Div, true) => LLVMBuildUDiv(b, x, y, NONAME),
                        (Rem, true) => LLVMBuildURem(b, x, y, NONAME),
                        _ if !needs_check => {
                            if op == Div {
                                LLVMBuildSDiv(b, x, y, NONAME)
                            } else {
                                LLVMBuildSRem(b, x, y, NONAME)
                            }
                        }
                        _ => {
                            // `MIN / -1` wraps (and `MIN % -1` is 0): divide by 1 instead.
                            let is_m1 = self.icmp(LLVMIntEQ, y, self.int_constant(t, -1));
                            let safe = self.select(is_m1, self.int_constant(t, 1), y);
                            if op == Div {
                                let q = LLVMBuildSDiv(b, x, safe, NONAME);
                                self.select(is_m1, LLVMBuildNeg(b, x, NONAME), q)
                            } else {
                                LLVMBuildSRem(b, x, safe, NONAME)
                            }
                        }
                    }
                }
                Pow if Self::is_vector(x) => return Err("vector integer pow".into()),
                Pow => {
                    if !unsigned {
                        let neg = self.icmp(LLVMIntSLT, y, self.int_constant(t, 0));
                        self.fail_if(neg, Status::NegativeExponent);
                    }
                    let wide = if unsigned { DType::U64 } else { DType::I64 };
                    let a = self.int_convert(x, d, wide)?;
                    let e = self.int_convert(y, d, wide)?;
                    let r = self.call_helper(Lib::IPow, &[a, e])?;
                    self.int_convert(r, DType::I64, d)?
                }
                And => LLVMBuildAnd(b, x, y, NONAME),
                Or => LLVMBuildOr(b, x, y, NONAME),
                Xor => LLVMBuildXor(b, x, y, NONAME),
                _ => return Err(bad()),
            })
        }
    }

    /// Integer → integer (wrapping; widened by the source's signedness).
    fn int_convert(&self, v: V, from: DType, to: DType) -> R<V> {
        let (ft, tt) = (self.cx.reg(from)?, self.cx.reg(to)?);
        // SAFETY: integer width changes.
        Ok(unsafe {
            let (fb, tb) = (LLVMGetIntTypeWidth(ft), LLVMGetIntTypeWidth(tt));
            if fb == tb {
                v
            } else if fb > tb {
                LLVMBuildTrunc(self.b(), v, tt, NONAME)
            } else if is_unsigned(from) {
                LLVMBuildZExt(self.b(), v, tt, NONAME)
            } else {
                LLVMBuildSExt(self.b(), v, tt, NONAME)
            }
        })
    }

    fn cast(&self, x: V, from: DType, to: DType) -> R<V> {
        if from == to {
            return Ok(x);
        }
        let b = self.b();
        let tt = self.cx.reg(to)?;
        let ft = self.cx.reg(from)?;
        // SAFETY: conversions between the register types of the two dtypes.
        unsafe {
            if to == DType::Bool {
                return Ok(if from.is_float() {
                    self.fcmp(LLVMRealPredicate::LLVMRealUNE, x, self.constant(ft, 0.0))
                } else {
                    self.icmp(LLVMIntPredicate::LLVMIntNE, x, self.int_constant(ft, 0))
                });
            }
            Ok(match (from.is_float(), to.is_float()) {
                (true, true) if to == DType::F64 => LLVMBuildFPExt(b, x, tt, NONAME),
                (true, true) => LLVMBuildFPTrunc(b, x, tt, NONAME),
                (true, false) => {
                    // Rust `as`: truncate toward zero, saturate, NaN → 0.
                    if to == DType::U64 {
                        return Ok(self.intrinsic("llvm.fptoui.sat", &[self.cx.i64, ft], &[x]));
                    }
                    let wide = self.intrinsic("llvm.fptosi.sat", &[self.cx.i64, ft], &[x]);
                    if to == DType::I64 {
                        return Ok(wide);
                    }
                    let (lo, hi) = int_range(to);
                    let lo = self.i64c(lo);
                    let hi = self.i64c(hi);
                    let c = self.select(self.icmp(LLVMIntPredicate::LLVMIntSGT, wide, lo), wide, lo);
                    let c = self.select(self.icmp(LLVMIntPredicate::LLVMIntSLT, c, hi), c, hi);
                    LLVMBuildTrunc(b, c, tt, NONAME)
                }
                (false, true) => {
                    if is_unsigned(from) {
                        let wide = self.int_convert(x, from, DType::U64)?;
                        LLVMBuildUIToFP(b, wide, tt, NONAME)
                    } else {
                        let wide = self.int_convert(x, from, DType::I64)?;
                        LLVMBuildSIToFP(b, wide, tt, NONAME)
                    }
                }
                (false, false) => self.int_convert(x, from, to)?,
            })
        }
    }

    // ------------------------------------------------------------ vector loops

    /// The body of a vector loop over `lv` (bound to lane 0's index): `let`s that vary with
    /// the lane hold vectors, index `let`s hold lane 0's value (affine in the lane).
    fn vector_body(&mut self, lv: u32, body: &[Stmt], lanes: &Lanes) -> R<()> {
        let outer = self.lanes.replace((lv, lanes.clone()));
        let r = (|| {
            for s in body {
                match s {
                    Stmt::Let { var, value } => {
                        let v = match lanes.get(&var.id) {
                            Some(Lane::Vector) => self.vexpr(value)?,
                            _ => self.scalar(value)?,
                        };
                        self.vals.insert(var.id, v);
                    }
                    Stmt::Store { buf, index, value } => {
                        let v = self.expr(value)?;
                        let v = self.splat(v);
                        let addr = self.address(*buf, index)?;
                        self.store(DType::F32, v, addr);
                    }
                    _ => return Err("vector_plan accepts lets and stores only".to_string()),
                }
            }
            Ok(())
        })();
        self.lanes = outer;
        r
    }

    /// A lane-varying expression of the current vector loop, as a vector.
    fn vexpr(&mut self, e: &Expr) -> R<V> {
        let (lv, lanes) = self.lanes.clone().ok_or("vector expression outside a vector loop")?;
        if !varies(e, lv, &lanes) {
            let x = self.scalar(e)?;
            return Ok(self.splat(x));
        }
        let b = self.b();
        Ok(match e {
            Expr::Var(v) => match lanes.get(&v.id) {
                Some(Lane::Vector) => self.vals[&v.id],
                _ => {
                    // An index: lane 0's value plus the lane times its coefficient.
                    let c = if v.id == lv { 1 } else { coefficient(e, lv, &lanes).ok_or("index not affine")? };
                    let x0 = self.scalar(e)?;
                    let x0 = self.splat(x0);
                    // SAFETY: i64 vector add.
                    unsafe { LLVMBuildAdd(b, x0, self.iota(c), NONAME) }
                }
            },
            Expr::Load { buf, index, mask, dtype } => {
                let flat = self.kernel.buffer(*buf).flat_index(index);
                let step = coefficient(&flat, lv, &lanes).ok_or("vector load not affine in the lane")?;
                let mut masks: Vec<V> = self.guards.clone();
                if let Some(m) = mask {
                    let m = self.vexpr(m)?;
                    masks.push(m);
                }
                let mask = masks.into_iter().reduce(|a, m| {
                    // SAFETY: and of two i1 vectors.
                    unsafe { LLVMBuildAnd(b, a, m, NONAME) }
                });
                self.vload(*buf, *dtype, index, step, mask)?
            }
            Expr::Select(c, a, bb) => {
                let cv = self.vexpr(c)?;
                self.guards.push(cv);
                let x = self.vexpr(a);
                self.guards.pop();
                let x = x?;
                let y = self.vexpr(bb)?;
                self.select(cv, x, y)
            }
            Expr::Binary(BinaryOp::Add, a, c) if a.dtype().is_float() && (is_mul(a) || is_mul(c)) => {
                // `c + x * y` (either order) as one fused multiply-add.
                let (c, prod) = if is_mul(c) { (a, c) } else { (c, a) };
                let Expr::Binary(_, x, y) = &**prod else { unreachable!("is_mul") };
                let c = self.vexpr(c)?;
                let x = self.vexpr(x)?;
                let y = self.vexpr(y)?;
                self.intrinsic("llvm.fma", &[Self::type_of(c)], &[x, y, c])
            }
            Expr::Binary(op, a, c) => {
                let x = self.vexpr(a)?;
                let y = self.vexpr(c)?;
                self.binary(*op, a.dtype(), x, y)?
            }
            Expr::Unary(op, a) => {
                let x = self.vexpr(a)?;
                self.unary(*op, a.dtype(), x)?
            }
            _ => return Err(format!("vector expression `{e}`")),
        })
    }

    /// `width` `f32` lanes of `buf` from `index` (lane 0) every `step` elements; lanes whose
    /// `mask` fails read nothing and are 0.
    fn vload(&mut self, buf: BufId, dtype: DType, index: &[Expr], step: i64, mask: Option<V>) -> R<V> {
        let vt = self.cx.vec(self.cx.reg(dtype)?);
        let zero = self.constant(vt, 0.0);
        let w = self.cx.width.get();
        let addr = self.address_with(buf, index, mask.is_none())?;
        // SAFETY: vector loads at element pointers of the buffer; masked lanes are not accessed.
        unsafe {
            let align = LLVMConstInt(self.cx.i32, 4, 0);
            if step == 0 && mask.is_none() {
                let x = self.load(dtype, addr)?;
                let x = self.splat(x);
                return Ok(match mask {
                    Some(m) => self.select(m, x, zero),
                    None => x,
                });
            }
            if step == 1 {
                let p = LLVMBuildBitCast(self.b(), addr, LLVMPointerType(vt, 0), NONAME);
                return Ok(match mask {
                    None => {
                        let l = LLVMBuildLoad2(self.b(), vt, p, NONAME);
                        LLVMSetAlignment(l, 4);
                        l
                    }
                    Some(m) => self.intrinsic("llvm.masked.load", &[vt, LLVMPointerType(vt, 0)], &[p, align, m, zero]),
                });
            }
            let et = self.cx.reg(dtype)?;
            let mut idx = [self.iota(step)];
            // Masked lanes may point outside the buffer: no `inbounds` then.
            let ptrs = if mask.is_some() {
                LLVMBuildGEP2(self.b(), et, addr, idx.as_mut_ptr(), 1, NONAME)
            } else {
                LLVMBuildInBoundsGEP2(self.b(), et, addr, idx.as_mut_ptr(), 1, NONAME)
            };
            let all = self.int_constant(LLVMVectorType(self.cx.i1, w), 1);
            let m = mask.unwrap_or(all);
            Ok(self.intrinsic("llvm.masked.gather", &[vt, Self::type_of(ptrs)], &[ptrs, align, m, zero]))
        }
    }

    /// `erf` lane-wise: `x * P(x²) / Q(x²)` on `x` clamped to [-4, 4] (see [`ERF_NUM`]).
    fn verf(&self, x: V) -> V {
        let x = self.vclamp(x, -4.0, 4.0);
        // SAFETY: float vector arithmetic.
        unsafe {
            let x2 = LLVMBuildFMul(self.b(), x, x, NONAME);
            let p = self.vhorner(x2, &ERF_NUM);
            let q = self.vhorner(x2, &ERF_DEN);
            let p = LLVMBuildFMul(self.b(), p, x, NONAME);
            LLVMBuildFDiv(self.b(), p, q, NONAME)
        }
    }

    fn vclamp(&self, x: V, lo: f64, hi: f64) -> V {
        let t = Self::type_of(x);
        let x = self.fmax(LLVMRealPredicate::LLVMRealULT, x, self.constant(t, hi));
        self.fmax(LLVMRealPredicate::LLVMRealUGT, x, self.constant(t, lo))
    }

    fn vhorner(&self, x: V, coefs: &[f64]) -> V {
        let t = Self::type_of(x);
        let (&last, rest) = coefs.split_last().expect("a polynomial has coefficients");
        let mut acc = self.constant(t, last);
        for &k in rest.iter().rev() {
            acc = self.intrinsic("llvm.fma", &[t], &[acc, x, self.constant(t, k)]);
        }
        acc
    }

    /// `exp` lane-wise, within 2 ulp: the algorithm of the Cranelift emitter's `vexp`.
    fn vexp(&self, x: V) -> V {
        let t = Self::type_of(x);
        let b = self.b();
        let x = self.vclamp(x, -104.0, 89.0);
        // SAFETY: float and i32 vector arithmetic of the emitter's width.
        unsafe {
            let tt = LLVMBuildFMul(b, x, self.constant(t, std::f64::consts::LOG2_E), NONAME);
            let n = self.intrinsic("llvm.roundeven", &[t], &[tt]);
            let a = LLVMBuildFMul(b, n, self.constant(t, 0.693_359_375), NONAME);
            let r = LLVMBuildFSub(b, x, a, NONAME);
            let c = LLVMBuildFMul(b, n, self.constant(t, -2.121_944_400_546_905_8e-4), NONAME);
            let r = LLVMBuildFSub(b, r, c, NONAME);
            let taylor = [1.0, 1.0, 0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
            let p = self.vhorner(r, &taylor);
            let it = LLVMVectorType(self.cx.i32, self.cx.width.get());
            let n = LLVMBuildFPToSI(b, n, it, NONAME);
            let n1 = LLVMBuildAShr(b, n, self.int_constant(it, 1), NONAME);
            let n2 = LLVMBuildSub(b, n, n1, NONAME);
            let pow2 = |e: V| {
                let e = LLVMBuildAdd(b, e, self.int_constant(it, 127), NONAME);
                let bits = LLVMBuildShl(b, e, self.int_constant(it, 23), NONAME);
                LLVMBuildBitCast(b, bits, t, NONAME)
            };
            let y = LLVMBuildFMul(b, p, pow2(n1), NONAME);
            LLVMBuildFMul(b, y, pow2(n2), NONAME)
        }
    }
}

/// `scalar(element type)` in every lane of vector type `t`, or `scalar(t)` for a scalar type.
fn splat_constant(t: T, scalar: impl Fn(T) -> V) -> V {
    // SAFETY: type queries and a constant vector of a live context.
    unsafe {
        if LLVMGetTypeKind(t) != LLVMTypeKind::LLVMVectorTypeKind {
            return scalar(t);
        }
        let mut lanes = vec![scalar(LLVMGetElementType(t)); LLVMGetVectorSize(t) as usize];
        LLVMConstVector(lanes.as_mut_ptr(), lanes.len() as u32)
    }
}
