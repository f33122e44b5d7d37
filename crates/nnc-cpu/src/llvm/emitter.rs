//! The LLVM IR emitter: one Kernel-IR kernel → one LLVM function through inkwell, following
//! the kernel's [`KernelPlan`] (see the parent module for what is left to LLVM's passes and
//! what is spelled out here).

use crate::abi::{helper, int_range, is_unsigned, Arg, Lib, Status};
use crate::plan::{coefficient, is_mul, varies, KernelPlan, Lane, Lanes, LoopPlan};
use crate::scalar::{self, group_id_variable, ScalarCode};
use crate::vmath::{self, Cmp, LaneOps};
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::basic_block::BasicBlock;
use inkwell::builder::{Builder, BuilderError};
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::types::{AsTypeRef, BasicType, BasicTypeEnum, FloatType, FunctionType, IntType, PointerType, VectorType};
use inkwell::values::{
    AsValueRef, BasicMetadataValueEnum, BasicValue, BasicValueEnum, FunctionValue, PointerValue, ValueKind,
};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{BufId, Expr, Literal};
use nnc_kernel::kernel::{Kernel, Space, Stmt};
use std::cell::RefCell;
use std::collections::HashMap;

use inkwell::values::InstructionOpcode as Op;

/// Which of the NaN-propagating pair [`Emitter::fmax`] builds.
#[derive(Clone, Copy)]
enum MinMax {
    Max,
    Min,
}

mod dot;
mod vector;

type V<'ctx> = BasicValueEnum<'ctx>;

/// Why a kernel could not be emitted (it is then left to Cranelift with this reason).
#[derive(Debug)]
pub(super) struct Fail(pub String);

impl From<BuilderError> for Fail {
    fn from(e: BuilderError) -> Fail {
        Fail(format!("LLVM builder: {e}"))
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Fail {
        Fail(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Fail {
        Fail(s.to_string())
    }
}

type R<T> = Result<T, Fail>;

/// The context, module, builder and types shared by every kernel of one module.
pub(super) struct Cx<'ctx> {
    ctx: &'ctx Context,
    pub(super) module: Module<'ctx>,
    b: Builder<'ctx>,
    f32t: FloatType<'ctx>,
    f64t: FloatType<'ctx>,
    i1: IntType<'ctx>,
    i8: IntType<'ctx>,
    i32: IntType<'ctx>,
    i64: IntType<'ctx>,
    ptr: PointerType<'ctx>,
    pub(super) kernel_type: FunctionType<'ctx>,
    /// Helper functions declared so far, by name.
    helpers: RefCell<HashMap<&'static str, FunctionValue<'ctx>>>,
}

impl<'ctx> Cx<'ctx> {
    pub(super) fn new(ctx: &'ctx Context, module: Module<'ctx>) -> Cx<'ctx> {
        let (i32, i64) = (ctx.i32_type(), ctx.i64_type());
        let ptr = ctx.ptr_type(AddressSpace::default());
        Cx {
            ctx,
            module,
            b: ctx.create_builder(),
            f32t: ctx.f32_type(),
            f64t: ctx.f64_type(),
            i1: ctx.bool_type(),
            i8: ctx.i8_type(),
            i32,
            i64,
            ptr,
            kernel_type: i32.fn_type(&[ptr.into(), i64.into(), i64.into()], false),
            helpers: Default::default(),
        }
    }

    /// The register type of a dtype (`bool` as `i1`).
    fn reg(&self, d: DType) -> R<BasicTypeEnum<'ctx>> {
        Ok(match d {
            DType::F32 => self.f32t.into(),
            DType::F64 => self.f64t.into(),
            DType::I64 | DType::U64 => self.i64.into(),
            DType::I32 | DType::U32 => self.i32.into(),
            DType::I16 | DType::U16 => self.ctx.i16_type().into(),
            DType::I8 | DType::U8 => self.i8.into(),
            DType::Bool => self.i1.into(),
            _ => return Err(format!("{} is left to Cranelift", d.name()).into()),
        })
    }

    /// The in-memory type of a dtype (`bool` as a byte).
    fn mem(&self, d: DType) -> R<BasicTypeEnum<'ctx>> {
        if d == DType::Bool {
            Ok(self.i8.into())
        } else {
            self.reg(d)
        }
    }

    fn arg(&self, a: Arg) -> BasicTypeEnum<'ctx> {
        match a {
            Arg::F64 => self.f64t.into(),
            Arg::F32 => self.f32t.into(),
            Arg::I64 => self.i64.into(),
            Arg::I32 => self.i32.into(),
        }
    }
}

/// `t` in vectors of `width` lanes.
fn vector_of(t: BasicTypeEnum<'_>, width: u32) -> R<VectorType<'_>> {
    Ok(match t {
        BasicTypeEnum::FloatType(t) => t.vec_type(width),
        BasicTypeEnum::IntType(t) => t.vec_type(width),
        BasicTypeEnum::PointerType(t) => t.vec_type(width),
        t => return Err(format!("no vectors of {t}").into()),
    })
}

/// The state of emitting one kernel's function.
pub(super) struct Emitter<'a, 'ctx> {
    cx: &'a Cx<'ctx>,
    plan: &'a KernelPlan<'a>,
    kernel: &'a Kernel,
    func: FunctionValue<'ctx>,
    entry: Option<BasicBlock<'ctx>>,
    /// Values of `let`s and of unrolled loop variables (vectors for lane-varying `let`s).
    vals: HashMap<u32, V<'ctx>>,
    /// Stack slots of mutable variables and loop counters.
    slots: HashMap<u32, (PointerValue<'ctx>, BasicTypeEnum<'ctx>)>,
    /// Element pointer of each buffer.
    bases: Vec<PointerValue<'ctx>>,
    errors: HashMap<u32, BasicBlock<'ctx>>,
    /// The vector loop being emitted: its variable and how its `let`s are held.
    lanes: Option<(u32, &'a Lanes)>,
    /// Masks (lane vectors) of the `select`s being evaluated in a vector loop: loads of the
    /// selected side read only the lanes their select keeps.
    guards: Vec<V<'ctx>>,
}

impl<'a, 'ctx> Emitter<'a, 'ctx> {
    pub(super) fn new(cx: &'a Cx<'ctx>, plan: &'a KernelPlan<'a>, func: FunctionValue<'ctx>) -> Emitter<'a, 'ctx> {
        Emitter {
            cx,
            plan,
            kernel: plan.kernel,
            func,
            entry: None,
            vals: HashMap::new(),
            slots: HashMap::new(),
            bases: Vec::new(),
            errors: HashMap::new(),
            lanes: None,
            guards: Vec::new(),
        }
    }

    // ------------------------------------------------------------ building blocks

    fn b(&self) -> &Builder<'ctx> {
        &self.cx.b
    }

    fn width(&self) -> u32 {
        self.plan.width
    }

    fn block(&self, name: &str) -> BasicBlock<'ctx> {
        self.cx.ctx.append_basic_block(self.func, name)
    }

    fn at(&self, bb: BasicBlock<'ctx>) {
        self.b().position_at_end(bb)
    }

    fn current(&self) -> R<BasicBlock<'ctx>> {
        Ok(self.b().get_insert_block().ok_or("the builder is not positioned")?)
    }

    fn br(&self, bb: BasicBlock<'ctx>) -> R<()> {
        self.b().build_unconditional_branch(bb)?;
        Ok(())
    }

    fn cond_br(&self, c: V<'ctx>, t: BasicBlock<'ctx>, e: BasicBlock<'ctx>) -> R<()> {
        self.b().build_conditional_branch(c.into_int_value(), t, e)?;
        Ok(())
    }

    fn i64c(&self, v: i64) -> V<'ctx> {
        self.cx.i64.const_int(v as u64, true).into()
    }

    fn i32c(&self, v: u32) -> inkwell::values::IntValue<'ctx> {
        self.cx.i32.const_int(v as u64, false)
    }

    /// Constant `v` of type `t` (splatted for vector types).
    fn constant(&self, t: BasicTypeEnum<'ctx>, v: f64) -> R<V<'ctx>> {
        Ok(match t {
            BasicTypeEnum::FloatType(f) => f.const_float(v).into(),
            BasicTypeEnum::IntType(i) => i.const_int(v as i64 as u64, true).into(),
            BasicTypeEnum::VectorType(vt) => {
                let lane = self.constant(vt.get_element_type(), v)?;
                VectorType::const_vector(&vec![lane; vt.get_size() as usize]).into()
            }
            t => return Err(format!("no constants of {t}").into()),
        })
    }

    /// Integer constant `v` of type `t` (splatted for vector types), exact for every width.
    fn int_constant(&self, t: BasicTypeEnum<'ctx>, v: i64) -> R<V<'ctx>> {
        Ok(match t {
            BasicTypeEnum::IntType(i) => i.const_int(v as u64, true).into(),
            BasicTypeEnum::VectorType(vt) => {
                let lane = self.int_constant(vt.get_element_type(), v)?;
                VectorType::const_vector(&vec![lane; vt.get_size() as usize]).into()
            }
            t => return Err(format!("no integer constants of {t}").into()),
        })
    }

    /// `x` in every lane (vectors stay as they are).
    fn splat(&self, x: V<'ctx>) -> R<V<'ctx>> {
        if x.is_vector_value() {
            return Ok(x);
        }
        let vt = vector_of(x.get_type(), self.width())?;
        let undef = vt.get_undef();
        let one = self.b().build_insert_element(undef, x, self.i32c(0), "")?;
        let zeros = self.cx.i32.vec_type(self.width()).const_zero();
        Ok(self.b().build_shuffle_vector(one, undef, zeros, "")?.into())
    }

    /// `0, 1, ..., width - 1` times `step`, as `i64` lanes.
    fn iota(&self, step: i64) -> V<'ctx> {
        let lanes: Vec<V<'ctx>> = (0..self.width() as i64).map(|k| self.i64c(k * step)).collect();
        VectorType::const_vector(&lanes).into()
    }

    fn call(&self, f: FunctionValue<'ctx>, args: &[V<'ctx>]) -> R<V<'ctx>> {
        let args: Vec<BasicMetadataValueEnum<'ctx>> = args.iter().map(|&a| a.into()).collect();
        match self.b().build_call(f, &args, "")?.try_as_basic_value() {
            ValueKind::Basic(v) => Ok(v),
            ValueKind::Instruction(_) => Err("a call without a value".into()),
        }
    }

    /// Calls intrinsic `name` overloaded on `types`.
    fn intrinsic(&self, name: &str, types: &[BasicTypeEnum<'ctx>], args: &[V<'ctx>]) -> R<V<'ctx>> {
        let f = Intrinsic::find(name)
            .and_then(|i| i.get_declaration(&self.cx.module, types))
            .ok_or_else(|| format!("LLVM has no intrinsic {name} for {types:?}"))?;
        self.call(f, args)
    }

    /// Calls runtime helper `lib` (declared once per module; the loader patches in its address).
    fn call_helper(&self, lib: Lib, args: &[V<'ctx>]) -> R<V<'ctx>> {
        let f = self.helper_function(lib)?;
        self.call(f, args)
    }

    /// The declaration of runtime helper `lib` in this module.
    fn helper_function(&self, lib: Lib) -> R<FunctionValue<'ctx>> {
        let h = helper(lib).ok_or("no helper")?;
        let mut helpers = self.cx.helpers.borrow_mut();
        Ok(*helpers.entry(h.name).or_insert_with(|| {
            let params: Vec<_> = h.params.iter().map(|&a| self.cx.arg(a).into()).collect();
            let ty = self.cx.arg(h.ret).fn_type(&params, false);
            self.cx.module.add_function(h.name, ty, Some(Linkage::External))
        }))
    }

    /// This module's function computing `op` on one vector of the kernel's width by `f` (the
    /// shared inline form of `vmath`), defined at its first use and called at each: inlined
    /// at every use, lstm2's 150 sigmoids and tanhs cost LLVM 2 s more (0.7 s against 2.7 s).
    /// It carries the kernel's target attributes, so vectors pass in registers.
    fn vector_routine(&mut self, op: UnaryOp, f: vmath::VectorFn<Self>) -> R<FunctionValue<'ctx>> {
        let name = format!("nnc_vector_{}_{}", op.name(), self.width());
        if let Some(routine) = self.cx.module.get_function(&name) {
            return Ok(routine);
        }
        let vt = self.cx.f32t.vec_type(self.width());
        let routine = self.cx.module.add_function(&name, vt.fn_type(&[vt.into()], false), Some(Linkage::Private));
        for attribute in self.func.attributes(AttributeLoc::Function) {
            routine.add_attribute(AttributeLoc::Function, attribute);
        }
        let noinline = Attribute::get_named_enum_kind_id("noinline");
        routine.add_attribute(AttributeLoc::Function, self.cx.ctx.create_enum_attribute(noinline, 0));
        let here = self.current()?;
        self.at(self.cx.ctx.append_basic_block(routine, "entry"));
        let x = routine.get_nth_param(0).ok_or("a vector routine has one parameter")?;
        let y = f(self, x)?;
        self.b().build_return(Some(&y))?;
        self.at(here);
        Ok(routine)
    }

    fn error_block(&mut self, status: Status) -> R<BasicBlock<'ctx>> {
        let code = status as u32;
        if let Some(&b) = self.errors.get(&code) {
            return Ok(b);
        }
        let here = self.current()?;
        let blk = self.block("error");
        self.at(blk);
        self.b().build_return(Some(&self.cx.i32.const_int(code as u64, false)))?;
        self.at(here);
        self.errors.insert(code, blk);
        Ok(blk)
    }

    fn fail_if(&mut self, cond: V<'ctx>, status: Status) -> R<()> {
        let err = self.error_block(status)?;
        let cont = self.block("ok");
        self.cond_br(cond, err, cont)?;
        self.at(cont);
        Ok(())
    }

    /// A stack slot in the entry block (where mem2reg and SROA look for them).
    fn alloca(&self, t: BasicTypeEnum<'ctx>) -> R<PointerValue<'ctx>> {
        let entry = self.entry.ok_or("no entry block")?;
        let b = self.cx.ctx.create_builder();
        match entry.get_first_instruction() {
            Some(first) => b.position_before(&first),
            None => b.position_at_end(entry),
        }
        let a = b.build_alloca(t, "")?;
        if let Some(i) = a.as_instruction() {
            i.set_alignment(64).map_err(|e| format!("alloca alignment: {e}"))?;
        }
        Ok(a)
    }

    // ------------------------------------------------------------ function and statements

    pub(super) fn function(&mut self) -> R<()> {
        for b in &self.kernel.buffers {
            self.cx.mem(b.dtype)?;
        }
        let entry = self.block("entry");
        self.entry = Some(entry);
        self.at(entry);
        let param = |k| self.func.get_nth_param(k).ok_or("the kernel signature has 3 parameters");
        let table = param(0)?.into_pointer_value();
        let (begin, end) = (param(1)?.into_int_value(), param(2)?.into_int_value());
        let mut global = 0;
        for buf in &self.kernel.buffers {
            let base = match buf.space {
                Space::Global => {
                    // SAFETY (inkwell marks GEPs unsafe): entry `global` of the buffer table.
                    let slot =
                        unsafe { self.b().build_gep(self.cx.ptr, table, &[self.i64c(global).into_int_value()], "")? };
                    global += 1;
                    self.b().build_load(self.cx.ptr, slot, "")?.into_pointer_value()
                }
                _ => {
                    let et = self.cx.mem(buf.dtype)?;
                    self.alloca(et.array_type(buf.len().max(1) as u32).into())?
                }
            };
            self.bases.push(base);
        }
        // for g in begin..end: gid = unflatten(g); body
        let gslot = self.alloca(self.cx.i64.into())?;
        self.b().build_store(gslot, begin)?;
        let (header, body, exit) = (self.block("groups"), self.block("group"), self.block("done"));
        self.br(header)?;
        self.at(header);
        let g = self.b().build_load(self.cx.i64, gslot, "")?.into_int_value();
        let done = self.b().build_int_compare(IntPredicate::UGE, g, end, "")?;
        self.cond_br(done.into(), exit, body)?;
        self.at(body);
        let [gx, gy, _] = self.kernel.launch.grid.map(|v| v as i64);
        let c = |v: i64| self.cx.i64.const_int(v.max(1) as u64, false);
        let x = self.b().build_int_unsigned_rem(g, c(gx), "")?;
        let q = self.b().build_int_unsigned_div(g, c(gx), "")?;
        let y = self.b().build_int_unsigned_rem(q, c(gy), "")?;
        let z = self.b().build_int_unsigned_div(g, c(gx * gy), "")?;
        for (axis, v) in [x, y, z].into_iter().enumerate() {
            self.vals.insert(group_id_variable(axis), v.into());
        }
        self.stmts(&self.kernel.body)?;
        let g = self.b().build_load(self.cx.i64, gslot, "")?.into_int_value();
        let next = self.b().build_int_add(g, self.cx.i64.const_int(1, false), "")?;
        self.b().build_store(gslot, next)?;
        self.br(header)?;
        self.at(exit);
        self.b().build_return(Some(&self.cx.i32.const_zero()))?;
        Ok(())
    }

    fn stmts(&mut self, stmts: &'a [Stmt]) -> R<()> {
        stmts.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, s: &'a Stmt) -> R<()> {
        match s {
            Stmt::For { var, extent, body, .. } => match self.plan.loop_plan(s) {
                LoopPlan::Unrolled { extent: n, step, lanes } => {
                    let t = self.cx.reg(var.dtype)?;
                    for k in (0..*n).step_by(*step as usize) {
                        self.vals.insert(var.id, self.int_constant(t, k)?);
                        match lanes {
                            Some(lanes) => self.vector_body(var.id, body, lanes)?,
                            None => self.stmts(body)?,
                        }
                    }
                    Ok(())
                }
                LoopPlan::Vector(lanes) => self.counted_loop(var.id, var.dtype, extent, Some(lanes), body),
                LoopPlan::Serial => self.counted_loop(var.id, var.dtype, extent, None, body),
            },
            Stmt::Let { var, value } => {
                let v = self.expr(value)?;
                self.vals.insert(var.id, v);
                Ok(())
            }
            Stmt::Local { var, init } => {
                let t = self.cx.reg(var.dtype)?;
                let slot = self.alloca(t)?;
                let v = self.expr(init)?;
                self.b().build_store(slot, v)?;
                self.slots.insert(var.id, (slot, t));
                Ok(())
            }
            Stmt::Assign { var, value } => {
                let v = self.expr(value)?;
                let &(slot, _) =
                    self.slots.get(&var.id).ok_or_else(|| format!("assignment to undeclared v{}", var.id))?;
                self.b().build_store(slot, v)?;
                Ok(())
            }
            Stmt::Store { buf, index, value } => {
                let v = self.expr(value)?;
                let addr = self.address(*buf, index)?;
                self.store(self.kernel.buffer(*buf).dtype, v, addr)
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                let (tb, eb, merge) = (self.block("then"), self.block("else"), self.block("endif"));
                self.cond_br(c, tb, eb)?;
                self.at(tb);
                self.stmts(then)?;
                self.br(merge)?;
                self.at(eb);
                self.stmts(els)?;
                self.br(merge)?;
                self.at(merge);
                Ok(())
            }
            Stmt::Barrier => Err("barriers are not supported on the CPU".into()),
        }
    }

    /// `for var < extent`: one iteration per element, or per vector of the kernel's width with
    /// the body as vector code when the loop has a plan (`lanes`).
    fn counted_loop(
        &mut self,
        var: u32,
        dtype: DType,
        extent: &Expr,
        lanes: Option<&'a Lanes>,
        body: &'a [Stmt],
    ) -> R<()> {
        if !dtype.is_int() || !extent.dtype().is_int() {
            return Err(format!("loop v{var} needs an integer variable and extent").into());
        }
        let t = self.cx.reg(dtype)?;
        let n = self.expr(extent)?;
        let n = self.int_convert(n, extent.dtype(), dtype)?;
        let slot = self.alloca(t)?;
        self.b().build_store(slot, self.int_constant(t, 0)?)?;
        let (header, bodyb, exit) = (self.block("loop"), self.block("body"), self.block("endloop"));
        self.br(header)?;
        self.at(header);
        let i = self.b().build_load(t, slot, "")?;
        let pred = if is_unsigned(dtype) { IntPredicate::UGE } else { IntPredicate::SGE };
        let done = self.icmp(pred, i, n)?;
        self.cond_br(done, exit, bodyb)?;
        self.at(bodyb);
        let i = self.b().build_load(t, slot, "")?;
        self.vals.insert(var, i);
        match lanes {
            Some(lanes) => self.vector_body(var, body, lanes)?,
            None => self.stmts(body)?,
        }
        let i = self.b().build_load(t, slot, "")?;
        let step = if lanes.is_some() { self.width() as i64 } else { 1 };
        let next = self.b().build_binop(Op::Add, i, self.int_constant(t, step)?, "")?;
        self.b().build_store(slot, next)?;
        self.br(header)?;
        self.at(exit);
        Ok(())
    }

    // ------------------------------------------------------------ memory

    /// The element pointer of `buf[index]`; data-dependent indices are bounds-checked.
    fn address(&mut self, buf: BufId, index: &[Expr]) -> R<PointerValue<'ctx>> {
        self.address_with(buf, index, true)
    }

    /// [`Self::address`]; `inbounds: false` for the first lane of a masked vector load, which
    /// may lie outside the buffer (an `inbounds` GEP there would be poison).
    fn address_with(&mut self, buf: BufId, index: &[Expr], inbounds: bool) -> R<PointerValue<'ctx>> {
        let b = self.kernel.buffers.get(buf.index()).ok_or_else(|| format!("no buffer b{}", buf.0))?;
        if index.len() != b.shape.len() {
            let message = format!("buffer `{}` has rank {}, indexed with {}", b.name, b.shape.len(), index.len());
            return Err(message.into());
        }
        let (len, et) = (b.len(), self.cx.mem(b.dtype)?);
        let flat = self.scalar(&b.flat_index(index))?;
        if self.plan.is_data_dependent(index) {
            let bad = self.icmp(IntPredicate::UGE, flat, self.i64c(len))?;
            self.fail_if(bad, Status::OutOfBounds)?;
        }
        let base = self.bases[buf.index()];
        let idx = [flat.into_int_value()];
        // SAFETY (inkwell marks GEPs unsafe): an element of the buffer; without `inbounds`
        // the address is only computed, never dereferenced unless in bounds.
        Ok(unsafe {
            if inbounds {
                self.b().build_in_bounds_gep(et, base, &idx, "")?
            } else {
                self.b().build_gep(et, base, &idx, "")?
            }
        })
    }

    /// The bytes of one element of vector type `t` (its alignment in memory).
    fn element_bytes(&self, t: BasicTypeEnum<'ctx>) -> u32 {
        match t.into_vector_type().get_element_type() {
            BasicTypeEnum::IntType(i) => i.get_bit_width().div_ceil(8),
            BasicTypeEnum::FloatType(f) if f == self.cx.f64t => 8,
            _ => 4,
        }
    }

    fn load(&self, dtype: DType, addr: PointerValue<'ctx>) -> R<V<'ctx>> {
        let v = self.b().build_load(self.cx.mem(dtype)?, addr, "")?;
        if dtype == DType::Bool {
            return self.icmp(IntPredicate::NE, v, self.cx.i8.const_zero().into());
        }
        Ok(v)
    }

    fn store(&self, dtype: DType, v: V<'ctx>, addr: PointerValue<'ctx>) -> R<()> {
        let v = if dtype == DType::Bool && !v.is_vector_value() {
            self.b().build_int_z_extend(v.into_int_value(), self.cx.i8, "")?.into()
        } else {
            v
        };
        let s = self.b().build_store(addr, v)?;
        if v.is_vector_value() {
            // Vectors are aligned as their elements, not to their own size.
            s.set_alignment(self.element_bytes(v.get_type())).map_err(|e| format!("store alignment: {e}"))?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ scalar expressions

    /// An expression outside vector lanes (lane 0's value of an index inside a vector loop).
    fn scalar(&mut self, e: &Expr) -> R<V<'ctx>> {
        let lanes = self.lanes.take();
        let r = self.expr(e);
        self.lanes = lanes;
        r
    }

    fn expr(&mut self, e: &Expr) -> R<V<'ctx>> {
        if let Some((lv, lanes)) = self.lanes {
            if varies(e, lv, lanes) {
                return self.vexpr(e);
            }
        }
        scalar::walk(self, e)
    }

    fn phi(&self, incoming: &[(V<'ctx>, BasicBlock<'ctx>)]) -> R<V<'ctx>> {
        let p = self.b().build_phi(incoming[0].0.get_type(), "")?;
        for (v, bb) in incoming {
            p.add_incoming(&[(v as &dyn BasicValue<'ctx>, *bb)]);
        }
        Ok(p.as_basic_value())
    }

    fn literal(&self, l: Literal) -> R<V<'ctx>> {
        match l {
            Literal::Float(v, d) => self.constant(self.cx.reg(d)?, if d == DType::F32 { v as f32 as f64 } else { v }),
            Literal::Int(v, d) if d.is_float() => self.constant(self.cx.reg(d)?, v as f64),
            Literal::Int(v, d) => self.int_constant(self.cx.reg(d)?, v),
            Literal::Bool(v) => Ok(self.cx.i1.const_int(v as u64, false).into()),
        }
    }

    /// Widens a float to `f64` (for helpers computing in `f64`).
    fn widen(&self, d: DType, x: V<'ctx>) -> R<V<'ctx>> {
        if d == DType::F64 {
            return Ok(x);
        }
        Ok(self.b().build_cast(Op::FPExt, x, self.cx.f64t, "")?)
    }

    fn narrow(&self, d: DType, x: V<'ctx>) -> R<V<'ctx>> {
        if d == DType::F64 {
            return Ok(x);
        }
        Ok(self.b().build_cast(Op::FPTrunc, x, self.cx.f32t, "")?)
    }

    /// A float helper on `x` (scalar, or lane by lane for vectors), computed in `f64`.
    fn float_helper(&self, lib: Lib, d: DType, args: &[V<'ctx>]) -> R<V<'ctx>> {
        if !args[0].is_vector_value() {
            let wide = args.iter().map(|&a| self.widen(d, a)).collect::<R<Vec<_>>>()?;
            let r = self.call_helper(lib, &wide)?;
            return self.narrow(d, r);
        }
        if let (Lib::Unary(_), DType::F32) = (lib, d) {
            // One call maps every lane through a stack slot: a call per lane would spill the
            // loop's vector registers each time (and make the function 16 times longer).
            let vt = args[0].get_type();
            let slot = self.alloca(vt)?;
            self.b().build_store(slot, args[0])?;
            let routine = self.helper_function(lib)?.as_global_value().as_pointer_value();
            let f = self.b().build_ptr_to_int(routine, self.cx.i64, "")?;
            let p = self.b().build_ptr_to_int(slot, self.cx.i64, "")?;
            self.call_helper(Lib::Map, &[f.into(), p.into(), self.i64c(self.width() as i64)])?;
            return Ok(self.b().build_load(vt, slot, "")?);
        }
        let mut out = args[0].into_vector_value();
        for lane in 0..self.width() {
            let k = self.i32c(lane);
            let mut wide = Vec::new();
            for a in args {
                let x = self.b().build_extract_element(a.into_vector_value(), k, "")?;
                wide.push(self.widen(d, x)?);
            }
            let r = self.call_helper(lib, &wide)?;
            out = self.b().build_insert_element(out, self.narrow(d, r)?, k, "")?;
        }
        Ok(out.into())
    }

    fn fcmp(&self, p: FloatPredicate, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        let b = self.b();
        Ok(match (x, y) {
            (V::VectorValue(x), V::VectorValue(y)) => b.build_float_compare(p, x, y, "")?.into(),
            (x, y) => b.build_float_compare(p, x.into_float_value(), y.into_float_value(), "")?.into(),
        })
    }

    fn icmp(&self, p: IntPredicate, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        let b = self.b();
        Ok(match (x, y) {
            (V::VectorValue(x), V::VectorValue(y)) => b.build_int_compare(p, x, y, "")?.into(),
            (x, y) => b.build_int_compare(p, x.into_int_value(), y.into_int_value(), "")?.into(),
        })
    }

    /// NaN-propagating `max` or `min` (`llvm.maximum`, `llvm.minimum`: NaN if either operand
    /// is, and -0 below +0, as Cranelift's `fmax`/`fmin`). LLVM 19 lowers them without branches;
    /// the same written as compares and selects became a branch per element on x86 (a max pool
    /// ran 7x slower on random data).
    fn fmax(&self, which: MinMax, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        let name = match which {
            MinMax::Max => "llvm.maximum",
            MinMax::Min => "llvm.minimum",
        };
        self.intrinsic(name, &[x.get_type()], &[x, y])
    }

    fn select(&self, c: V<'ctx>, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        Ok(match c {
            V::VectorValue(c) => self.b().build_select(c, x, y, "")?,
            c => self.b().build_select(c.into_int_value(), x, y, "")?,
        })
    }

    fn fneg(&self, x: V<'ctx>) -> R<V<'ctx>> {
        Ok(match x {
            V::VectorValue(x) => self.b().build_float_neg(x, "")?.into(),
            x => self.b().build_float_neg(x.into_float_value(), "")?.into(),
        })
    }

    fn ineg(&self, x: V<'ctx>) -> R<V<'ctx>> {
        Ok(match x {
            V::VectorValue(x) => self.b().build_int_neg(x, "")?.into(),
            x => self.b().build_int_neg(x.into_int_value(), "")?.into(),
        })
    }

    fn op(&self, op: Op, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        Ok(self.b().build_binop(op, x, y, "")?)
    }

    fn unary(&mut self, op: UnaryOp, d: DType, x: V<'ctx>) -> R<V<'ctx>> {
        let t = x.get_type();
        let bad = || Fail(format!("`{}` on {}", op.name(), d.name()));
        if d.is_float() {
            if helper(Lib::Unary(op)).is_some() {
                if let Some(f) = vmath::vector_form::<Self>(op).filter(|_| x.is_vector_value() && d == DType::F32) {
                    let routine = self.vector_routine(op, f)?;
                    return self.call(routine, &[x]);
                }
                return self.float_helper(Lib::Unary(op), d, &[x]);
            }
            let zero = self.constant(t, 0.0)?;
            return Ok(match op {
                UnaryOp::Neg => self.fneg(x)?,
                UnaryOp::Abs => self.intrinsic("llvm.fabs", &[t], &[x])?,
                UnaryOp::Sign => {
                    let gt = self.fcmp(FloatPredicate::OGT, x, zero)?;
                    let lt = self.fcmp(FloatPredicate::OLT, x, zero)?;
                    let r = self.select(lt, self.constant(t, -1.0)?, x)?;
                    self.select(gt, self.constant(t, 1.0)?, r)?
                }
                UnaryOp::Relu => {
                    let keep = self.fcmp(FloatPredicate::UGT, x, zero)?;
                    self.select(keep, x, zero)?
                }
                UnaryOp::Sqrt => self.intrinsic("llvm.sqrt", &[t], &[x])?,
                UnaryOp::Rsqrt => {
                    let w = self.widen(d, x)?;
                    let s = self.intrinsic("llvm.sqrt", &[self.cx.f64t.into()], &[w])?;
                    let r = self.op(Op::FDiv, self.cx.f64t.const_float(1.0).into(), s)?;
                    self.narrow(d, r)?
                }
                UnaryOp::Reciprocal => self.op(Op::FDiv, self.constant(t, 1.0)?, x)?,
                UnaryOp::Floor => self.intrinsic("llvm.floor", &[t], &[x])?,
                UnaryOp::Ceil => self.intrinsic("llvm.ceil", &[t], &[x])?,
                UnaryOp::Round => self.intrinsic("llvm.roundeven", &[t], &[x])?,
                UnaryOp::IsNan => self.fcmp(FloatPredicate::UNO, x, x)?,
                UnaryOp::IsInf => {
                    let a = self.intrinsic("llvm.fabs", &[t], &[x])?;
                    self.fcmp(FloatPredicate::OEQ, a, self.constant(t, f64::INFINITY)?)?
                }
                _ => return Err(bad()),
            });
        }
        if d == DType::Bool {
            return match op {
                UnaryOp::Not => self.op(Op::Xor, x, self.int_constant(t, 1)?),
                _ => Err(bad()),
            };
        }
        let zero = self.int_constant(t, 0)?;
        let unsigned = is_unsigned(d);
        Ok(match op {
            UnaryOp::Neg => self.ineg(x)?,
            UnaryOp::Abs if unsigned => x,
            UnaryOp::Abs => {
                let neg = self.icmp(IntPredicate::SLT, x, zero)?;
                self.select(neg, self.ineg(x)?, x)?
            }
            UnaryOp::Sign if unsigned => {
                let nz = self.icmp(IntPredicate::NE, x, zero)?;
                self.select(nz, self.int_constant(t, 1)?, zero)?
            }
            UnaryOp::Sign => {
                let gt = self.icmp(IntPredicate::SGT, x, zero)?;
                let lt = self.icmp(IntPredicate::SLT, x, zero)?;
                let r = self.select(lt, self.int_constant(t, -1)?, zero)?;
                self.select(gt, self.int_constant(t, 1)?, r)?
            }
            UnaryOp::Relu if unsigned => x,
            UnaryOp::Relu => {
                let pos = self.icmp(IntPredicate::SGT, x, zero)?;
                self.select(pos, x, zero)?
            }
            UnaryOp::Not => self.op(Op::Xor, x, self.int_constant(t, -1)?)?,
            _ => return Err(bad()),
        })
    }

    fn binary(&mut self, op: BinaryOp, d: DType, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        use BinaryOp::*;
        let (x, y) = if x.is_vector_value() || y.is_vector_value() { (self.splat(x)?, self.splat(y)?) } else { (x, y) };
        let t = x.get_type();
        let bad = || Fail(format!("`{}` on {}", op.name(), d.name()));
        if d.is_float() {
            let p = match op {
                Eq => Some(FloatPredicate::OEQ),
                Ne => Some(FloatPredicate::UNE),
                Lt => Some(FloatPredicate::OLT),
                Le => Some(FloatPredicate::OLE),
                Gt => Some(FloatPredicate::OGT),
                Ge => Some(FloatPredicate::OGE),
                _ => None,
            };
            if let Some(p) = p {
                return self.fcmp(p, x, y);
            }
            return match op {
                Add => self.op(Op::FAdd, x, y),
                Sub => self.op(Op::FSub, x, y),
                Mul => self.op(Op::FMul, x, y),
                Div => self.op(Op::FDiv, x, y),
                Max => self.fmax(MinMax::Max, x, y),
                Min => self.fmax(MinMax::Min, x, y),
                Rem => self.float_helper(Lib::Fmod, d, &[x, y]),
                Pow => self.float_helper(Lib::Pow, d, &[x, y]),
                _ => Err(bad()),
            };
        }
        let unsigned = is_unsigned(d);
        let signed = |s, u| if unsigned { u } else { s };
        let p = match op {
            Eq => Some(IntPredicate::EQ),
            Ne => Some(IntPredicate::NE),
            Lt => Some(signed(IntPredicate::SLT, IntPredicate::ULT)),
            Le => Some(signed(IntPredicate::SLE, IntPredicate::ULE)),
            Gt => Some(signed(IntPredicate::SGT, IntPredicate::UGT)),
            Ge => Some(signed(IntPredicate::SGE, IntPredicate::UGE)),
            _ => None,
        };
        if let Some(p) = p {
            return self.icmp(p, x, y);
        }
        if d == DType::Bool {
            return match op {
                And => self.op(Op::And, x, y),
                Or => self.op(Op::Or, x, y),
                Xor => self.op(Op::Xor, x, y),
                _ => Err(bad()),
            };
        }
        Ok(match op {
            Add => self.op(Op::Add, x, y)?,
            Sub => self.op(Op::Sub, x, y)?,
            Mul => self.op(Op::Mul, x, y)?,
            Max => self.select(self.icmp(signed(IntPredicate::SGT, IntPredicate::UGT), x, y)?, x, y)?,
            Min => self.select(self.icmp(signed(IntPredicate::SLT, IntPredicate::ULT), x, y)?, x, y)?,
            Div | Rem if x.is_vector_value() => return Err("vector integer division".into()),
            Div | Rem => {
                let c = y.into_int_value().get_sign_extended_constant();
                let needs_check = c.is_none_or(|c| c == 0 || (!unsigned && c == -1));
                if needs_check {
                    let is_zero = self.icmp(IntPredicate::EQ, y, self.int_constant(t, 0)?)?;
                    self.fail_if(is_zero, if op == Div { Status::DivisionByZero } else { Status::RemainderByZero })?;
                }
                match (op, unsigned) {
                    (Div, true) => self.op(Op::UDiv, x, y)?,
                    (Rem, true) => self.op(Op::URem, x, y)?,
                    _ if !needs_check => self.op(if op == Div { Op::SDiv } else { Op::SRem }, x, y)?,
                    _ => {
                        // `MIN / -1` wraps (and `MIN % -1` is 0): divide by 1 instead.
                        let is_m1 = self.icmp(IntPredicate::EQ, y, self.int_constant(t, -1)?)?;
                        let safe = self.select(is_m1, self.int_constant(t, 1)?, y)?;
                        if op == Div {
                            let q = self.op(Op::SDiv, x, safe)?;
                            self.select(is_m1, self.ineg(x)?, q)?
                        } else {
                            self.op(Op::SRem, x, safe)?
                        }
                    }
                }
            }
            Pow if x.is_vector_value() => return Err("vector integer pow".into()),
            Pow => {
                if !unsigned {
                    let neg = self.icmp(IntPredicate::SLT, y, self.int_constant(t, 0)?)?;
                    self.fail_if(neg, Status::NegativeExponent)?;
                }
                let wide = if unsigned { DType::U64 } else { DType::I64 };
                let a = self.int_convert(x, d, wide)?;
                let e = self.int_convert(y, d, wide)?;
                let r = self.call_helper(Lib::IPow, &[a, e])?;
                self.int_convert(r, DType::I64, d)?
            }
            And => self.op(Op::And, x, y)?,
            Or => self.op(Op::Or, x, y)?,
            Xor => self.op(Op::Xor, x, y)?,
            _ => return Err(bad()),
        })
    }

    /// Integer → integer (wrapping; widened by the source's signedness).
    fn int_convert(&self, v: V<'ctx>, from: DType, to: DType) -> R<V<'ctx>> {
        let (ft, tt) = (self.cx.reg(from)?.into_int_type(), self.cx.reg(to)?);
        let (fb, tb) = (ft.get_bit_width(), tt.into_int_type().get_bit_width());
        let op = match () {
            _ if fb == tb => return Ok(v),
            _ if fb > tb => Op::Trunc,
            _ if is_unsigned(from) => Op::ZExt,
            _ => Op::SExt,
        };
        Ok(self.b().build_cast(op, v, tt, "")?)
    }

    fn cast(&self, x: V<'ctx>, from: DType, to: DType) -> R<V<'ctx>> {
        if from == to {
            return Ok(x);
        }
        let (ft, tt) = (self.cx.reg(from)?, self.cx.reg(to)?);
        if to == DType::Bool {
            return if from.is_float() {
                self.fcmp(FloatPredicate::UNE, x, self.constant(ft, 0.0)?)
            } else {
                self.icmp(IntPredicate::NE, x, self.int_constant(ft, 0)?)
            };
        }
        let b = self.b();
        Ok(match (from.is_float(), to.is_float()) {
            (true, true) => b.build_cast(if to == DType::F64 { Op::FPExt } else { Op::FPTrunc }, x, tt, "")?,
            (true, false) => {
                // Rust `as`: truncate toward zero, saturate, NaN → 0.
                let i64t = self.cx.i64.into();
                if to == DType::U64 {
                    return self.intrinsic("llvm.fptoui.sat", &[i64t, ft], &[x]);
                }
                let wide = self.intrinsic("llvm.fptosi.sat", &[i64t, ft], &[x])?;
                if to == DType::I64 {
                    return Ok(wide);
                }
                let (lo, hi) = int_range(to);
                let (lo, hi) = (self.i64c(lo), self.i64c(hi));
                let c = self.select(self.icmp(IntPredicate::SGT, wide, lo)?, wide, lo)?;
                let c = self.select(self.icmp(IntPredicate::SLT, c, hi)?, c, hi)?;
                b.build_cast(Op::Trunc, c, tt, "")?
            }
            (false, true) if is_unsigned(from) => {
                let wide = self.int_convert(x, from, DType::U64)?;
                b.build_cast(Op::UIToFP, wide, tt, "")?
            }
            (false, true) => {
                let wide = self.int_convert(x, from, DType::I64)?;
                b.build_cast(Op::SIToFP, wide, tt, "")?
            }
            (false, false) => self.int_convert(x, from, to)?,
        })
    }
}

impl From<Fail> for String {
    fn from(f: Fail) -> String {
        f.0
    }
}

impl<'ctx> ScalarCode for Emitter<'_, 'ctx> {
    type Value = V<'ctx>;
    type Error = Fail;

    fn expr(&mut self, e: &Expr) -> R<V<'ctx>> {
        Emitter::expr(self, e)
    }

    fn emit_literal(&mut self, l: Literal) -> R<V<'ctx>> {
        self.literal(l)
    }

    fn emit_variable(&mut self, id: u32) -> R<V<'ctx>> {
        Ok(match self.slots.get(&id) {
            Some(&(slot, t)) => self.b().build_load(t, slot, "")?,
            None => *self.vals.get(&id).ok_or_else(|| format!("use of undeclared v{id}"))?,
        })
    }

    fn emit_unary(&mut self, op: UnaryOp, dtype: DType, x: V<'ctx>) -> R<V<'ctx>> {
        self.unary(op, dtype, x)
    }

    fn emit_binary(&mut self, op: BinaryOp, dtype: DType, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        self.binary(op, dtype, x, y)
    }

    fn emit_select(&mut self, c: V<'ctx>, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        self.select(c, x, y)
    }

    fn emit_cast(&mut self, x: V<'ctx>, from: DType, to: DType) -> R<V<'ctx>> {
        self.cast(x, from, to)
    }

    fn emit_load(&mut self, buf: BufId, dtype: DType, index: &[Expr]) -> R<V<'ctx>> {
        let addr = self.address(buf, index)?;
        self.load(dtype, addr)
    }

    fn emit_branch(
        &mut self,
        c: V<'ctx>,
        _dtype: DType,
        then: scalar::Side<'_, Self>,
        otherwise: scalar::Side<'_, Self>,
    ) -> R<V<'ctx>> {
        let (tb, eb, merge) = (self.block("then"), self.block("else"), self.block("merge"));
        self.cond_br(c, tb, eb)?;
        self.at(tb);
        let x = then(self)?;
        let xb = self.current()?;
        self.br(merge)?;
        self.at(eb);
        let y = otherwise(self)?;
        let yb = self.current()?;
        self.br(merge)?;
        self.at(merge);
        self.phi(&[(x, xb), (y, yb)])
    }
}
