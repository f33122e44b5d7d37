//! The Cranelift emitter: one Kernel-IR kernel → one Cranelift function, following the
//! kernel's [`KernelPlan`] (see the parent module for the semantics).

use super::CraneliftHelpers;
use crate::abi::{helper, int_range, is_unsigned, lowp_format_code, Lib, Status};
use crate::plan::{at_lane, coefficient, const_eval, contains_load, is_mul, varies, KernelPlan, Lane, Lanes, LoopPlan};
use crate::scalar::{self, group_id_variable, ScalarCode};
use crate::vmath::{self, Cmp, LaneOps};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, Block, InstBuilder, InstructionData, MemFlagsData, Opcode, StackSlot, StackSlotData, StackSlotKind, Type,
    Value, ValueDef,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use nnc_ir::op::{BinaryClass, UnaryClass};
use nnc_ir::{BinaryOp, DType, UnaryOp};
use nnc_kernel::expr::{BufId, Expr, Literal};
use nnc_kernel::kernel::{Space, Stmt};
use std::collections::{HashMap, HashSet};

mod vector;

/// A value in a register: scalar, or 4 lanes of `f32` (vector loops).
#[derive(Clone, Copy)]
struct Val {
    v: Value,
    vector: bool,
}

/// The state of emitting one kernel's function.
struct Emitter<'a, 'b, 'k> {
    kernel: &'k nnc_kernel::kernel::Kernel,
    plan: &'a KernelPlan<'k>,
    b: &'a mut FunctionBuilder<'b>,
    libs: CraneliftHelpers,
    /// Variable id → (cranelift variable, whether it holds a vector).
    vars: HashMap<u32, (Variable, bool)>,
    /// Base address of each buffer (globals loaded at entry, privates on the stack).
    bases: Vec<Value>,
    error_blocks: HashMap<u32, Block>,
    /// Values of the variables of unrolled loops (and lets computed from them).
    consts: HashMap<u32, i64>,
    /// The plan's register buffers, as scalars (`promoted`) or as `f32x4` groups of 4
    /// consecutive elements (`vpromoted`), and their registers, keyed by flat index (by flat
    /// index / 4 for `vpromoted` ones).
    promoted: HashSet<u32>,
    vpromoted: HashSet<u32>,
    elements: HashMap<(u32, i64), Variable>,
    /// Emit `a * b + c` on `f32x4` as one fused multiply-add.
    fma: bool,
    /// How many times each variable has been bound (or assigned): an expression means the same
    /// value wherever its variables have the same versions.
    versions: HashMap<u32, u32>,
    /// Vector loads already emitted, by buffer and key, in nested scopes (a loop body or branch
    /// drops what it added when it closes).
    loads: Vec<HashMap<(u32, String), Value>>,
    /// Conditions of the vector `select`s being evaluated: the loads of a selected side are
    /// masked by them, so lanes that the select discards read nothing.
    guards: Vec<Expr>,
    /// A stack slot for the lanes of vector calls, created on first use.
    lane_slot: Option<StackSlot>,
}

/// Emits `plan`'s kernel as the body of the function `b` builds (declared with the kernel
/// signature); `libs` are the helpers' references in it; `fma`: whether the host has a fused
/// multiply-add.
pub(crate) fn emit_function(
    plan: &KernelPlan<'_>,
    b: &mut FunctionBuilder<'_>,
    libs: CraneliftHelpers,
    fma: bool,
) -> Result<(), String> {
    let (mut promoted, mut vpromoted) = (HashSet::new(), HashSet::new());
    for &buf in &plan.registers {
        if vector_promotable(plan.kernel.buffer(BufId(buf)), plan.width) {
            vpromoted.insert(buf);
        } else {
            promoted.insert(buf);
        }
    }
    Emitter {
        kernel: plan.kernel,
        plan,
        b,
        libs,
        vars: HashMap::new(),
        bases: Vec::new(),
        error_blocks: HashMap::new(),
        consts: HashMap::new(),
        promoted,
        vpromoted,
        elements: HashMap::new(),
        fma,
        versions: HashMap::new(),
        loads: vec![HashMap::new()],
        guards: Vec::new(),
        lane_slot: None,
    }
    .function()
}

/// A private buffer held as `f32x4` registers (when every access has a constant index).
fn vector_promotable(b: &nnc_kernel::kernel::Buffer, width: u32) -> bool {
    width == 4 && b.dtype == DType::F32 && b.len() % 4 == 0 && b.len() <= 64
}

type R<T> = Result<T, String>;

impl Emitter<'_, '_, '_> {
    fn function(&mut self) -> R<()> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.seal_block(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        let (bufs, begin, end) = (params[0], params[1], params[2]);
        let mut global = 0;
        for buf in &self.kernel.buffers {
            let base = match buf.space {
                Space::Global => {
                    let off = 8 * global;
                    global += 1;
                    self.b.ins().load(types::I64, MemFlagsData::trusted(), bufs, off)
                }
                _ => {
                    let bytes = (buf.len().max(1) as u64 * buf.dtype.size_bytes() as u64).max(16);
                    let bytes =
                        u32::try_from(bytes).map_err(|_| format!("private buffer `{}` is too large", buf.name))?;
                    let slot =
                        self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 4));
                    self.b.ins().stack_addr(types::I64, slot, 0)
                }
            };
            self.bases.push(base);
        }
        // for g in begin..end: gid = unflatten(g); body
        let g = self.b.declare_var(types::I64);
        self.b.def_var(g, begin);
        let header = self.b.create_block();
        let body = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let gv = self.b.use_var(g);
        let done = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, gv, end);
        self.b.ins().brif(done, exit, &[], body, &[]);
        self.b.seal_block(body);
        self.b.seal_block(exit);
        self.b.switch_to_block(body);
        let [gx, gy, _] = self.kernel.launch.grid.map(|v| v as i64);
        let gid = [
            self.urem_const(gv, gx),
            {
                let q = self.udiv_const(gv, gx);
                self.urem_const(q, gy)
            },
            self.udiv_const(gv, gx * gy),
        ];
        for (axis, v) in gid.into_iter().enumerate() {
            let var = self.b.declare_var(types::I64);
            self.b.def_var(var, v);
            self.bind(group_id_variable(axis), (var, false));
        }
        self.block(&self.kernel.body)?;
        let gv = self.b.use_var(g);
        let one = self.b.ins().iconst(types::I64, 1);
        let next = self.b.ins().iadd(gv, one);
        self.b.def_var(g, next);
        self.b.ins().jump(header, &[]);
        // Every predecessor is known: sealing now resolves variables that the loop does not
        // change to their outer values (not header parameters), so invariant code hoists.
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        let ok = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[ok]);
        let mut errors: Vec<(u32, Block)> = self.error_blocks.iter().map(|(&c, &b)| (c, b)).collect();
        errors.sort();
        for (code, blk) in errors {
            self.b.switch_to_block(blk);
            let c = self.b.ins().iconst(types::I32, code as i64);
            self.b.ins().return_(&[c]);
        }
        Ok(())
    }

    fn bind(&mut self, id: u32, v: (Variable, bool)) {
        self.vars.insert(id, v);
        *self.versions.entry(id).or_insert(0) += 1;
    }

    /// The key of a load: its text and the versions of the variables it reads.
    fn load_key(&self, index: &[Expr], mask: Option<&Expr>) -> String {
        let mut key = String::new();
        let mut vars = Vec::new();
        for e in index.iter().chain(mask) {
            key.push_str(&format!("{e};"));
            e.any(&mut |x| {
                if let Expr::Var(v) = x {
                    // Constants (variables of unrolled loops) by value, others by version.
                    vars.push(match self.consts.get(&v.id) {
                        Some(&c) => (v.id, c, u32::MAX),
                        None => (v.id, 0, self.versions.get(&v.id).copied().unwrap_or(0)),
                    });
                }
                false
            });
        }
        vars.sort_unstable();
        vars.dedup();
        key.push_str(&format!("{vars:?}"));
        key
    }

    fn cached_load(&self, buf: BufId, key: &str) -> Option<Value> {
        self.loads.iter().rev().find_map(|m| m.get(&(buf.0, key.to_string())).copied())
    }

    /// Forgets loads of buffer `buf` (after a store to it).
    fn forget_loads(&mut self, buf: BufId) {
        for m in &mut self.loads {
            m.retain(|k, _| k.0 != buf.0);
        }
    }

    /// Opens a scope for a loop body or branch; loads of buffers the body stores to are
    /// forgotten (a later iteration must see the stores).
    fn open_scope(&mut self, body: &[Stmt]) {
        nnc_kernel::visit::visit_stmts(body, &mut |s| {
            if let Stmt::Store { buf, .. } = s {
                for m in self.loads.iter_mut() {
                    m.retain(|k, _| k.0 != buf.0);
                }
            }
        });
        self.loads.push(HashMap::new());
    }

    fn close_scope(&mut self) {
        self.loads.pop();
    }

    /// The value of `v` if an `iconst` defines it.
    fn constant(&self, v: Value) -> Option<i64> {
        let ValueDef::Result(inst, _) = self.b.func.dfg.value_def(v) else { return None };
        match self.b.func.dfg.insts[inst] {
            InstructionData::UnaryImm { opcode: Opcode::Iconst, imm } => Some(imm.bits()),
            _ => None,
        }
    }

    fn urem_const(&mut self, v: Value, d: i64) -> Value {
        if d <= 1 {
            return self.b.ins().iconst(types::I64, 0);
        }
        let c = self.b.ins().iconst(types::I64, d);
        self.b.ins().urem(v, c)
    }

    fn udiv_const(&mut self, v: Value, d: i64) -> Value {
        if d <= 1 {
            return v;
        }
        let c = self.b.ins().iconst(types::I64, d);
        self.b.ins().udiv(v, c)
    }

    fn error_block(&mut self, status: Status) -> Block {
        let code = status as u32;
        if let Some(&b) = self.error_blocks.get(&code) {
            return b;
        }
        // Filled at the end of the function (a block cannot be left unfinished).
        let blk = self.b.create_block();
        self.error_blocks.insert(code, blk);
        blk
    }

    /// Branches to the error return when `cond` (an `i8` 0/1) holds.
    fn fail_if(&mut self, cond: Value, status: Status) {
        let err = self.error_block(status);
        let cont = self.b.create_block();
        self.b.ins().brif(cond, err, &[], cont, &[]);
        self.b.seal_block(cont);
        self.b.switch_to_block(cont);
    }

    fn block(&mut self, stmts: &[Stmt]) -> R<()> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::For { var, extent, body, .. } => {
                let plan = self.plan;
                match plan.loop_plan(s) {
                    LoopPlan::Unrolled { extent: n, step, lanes } => {
                        let ty = reg_type(var.dtype);
                        for k in (0..*n).step_by(*step as usize) {
                            let cv = self.b.declare_var(ty);
                            let c = self.b.ins().iconst(ty, k);
                            self.b.def_var(cv, c);
                            self.bind(var.id, (cv, false));
                            self.consts.insert(var.id, k);
                            match lanes {
                                Some(lanes) => self.vector_body(var.id, body, lanes)?,
                                None => self.block(body)?,
                            }
                        }
                        self.consts.remove(&var.id);
                        Ok(())
                    }
                    LoopPlan::Vector(lanes) => self.vector_loop(*var, extent, body, lanes),
                    LoopPlan::Serial => self.serial_loop(*var, extent, body),
                }
            }
            Stmt::Let { var, value } | Stmt::Local { var, init: value } => {
                if let (Stmt::Let { .. }, Some(c)) = (s, const_eval(value, &self.consts)) {
                    self.consts.insert(var.id, c);
                } else {
                    self.consts.remove(&var.id);
                }
                let v = self.expr(value)?;
                let cv = self.b.declare_var(reg_type(var.dtype));
                self.b.def_var(cv, v);
                self.bind(var.id, (cv, false));
                Ok(())
            }
            Stmt::Assign { var, value } => {
                let v = self.expr(value)?;
                let &(cv, _) = self.vars.get(&var.id).ok_or_else(|| format!("assignment to undeclared v{}", var.id))?;
                self.b.def_var(cv, v);
                *self.versions.entry(var.id).or_insert(0) += 1;
                Ok(())
            }
            Stmt::Store { buf, index, value } => {
                let v = self.expr(value)?;
                if self.vpromoted.contains(&buf.0) {
                    let flat = self.const_flat(*buf, index)?;
                    let cv = self.vreg(*buf, flat / 4);
                    let old = self.b.use_var(cv);
                    let new = self.b.ins().insertlane(old, v, (flat % 4) as u8);
                    self.b.def_var(cv, new);
                    return Ok(());
                }
                if let Some(cv) = self.element(*buf, index)? {
                    self.b.def_var(cv, v);
                    return Ok(());
                }
                let addr = self.address(*buf, index)?;
                let dtype = self.kernel.buffer(*buf).dtype;
                self.store_scalar(dtype, v, addr);
                self.forget_loads(*buf);
                Ok(())
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                let (tb, eb, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
                self.b.ins().brif(c, tb, &[], eb, &[]);
                self.b.seal_block(tb);
                self.b.seal_block(eb);
                self.b.switch_to_block(tb);
                self.open_scope(then);
                self.block(then)?;
                self.close_scope();
                self.b.ins().jump(merge, &[]);
                self.b.switch_to_block(eb);
                self.open_scope(els);
                self.block(els)?;
                self.close_scope();
                self.b.ins().jump(merge, &[]);
                self.b.seal_block(merge);
                self.b.switch_to_block(merge);
                Ok(())
            }
            Stmt::Barrier => Err("barriers are not supported on the CPU".into()),
        }
    }

    fn serial_loop(&mut self, var: nnc_kernel::Var, extent: &Expr, body: &[Stmt]) -> R<()> {
        let ty = reg_type(var.dtype);
        if !var.dtype.is_int() || !extent.dtype().is_int() {
            return Err(format!("loop v{} needs an integer variable and extent", var.id));
        }
        let n = self.expr(extent)?;
        let n = self.int_convert(n, extent.dtype(), var.dtype);
        let iv = self.b.declare_var(ty);
        let zero = self.b.ins().iconst(ty, 0);
        self.b.def_var(iv, zero);
        self.bind(var.id, (iv, false));
        let (header, bodyb, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(iv);
        let cc =
            if is_unsigned(var.dtype) { IntCC::UnsignedGreaterThanOrEqual } else { IntCC::SignedGreaterThanOrEqual };
        let done = self.b.ins().icmp(cc, i, n);
        self.b.ins().brif(done, exit, &[], bodyb, &[]);
        self.b.seal_block(bodyb);
        self.b.seal_block(exit);
        self.b.switch_to_block(bodyb);
        self.open_scope(body);
        self.block(body)?;
        self.close_scope();
        let i = self.b.use_var(iv);
        let one = self.b.ins().iconst(ty, 1);
        let next = self.b.ins().iadd(i, one);
        self.b.def_var(iv, next);
        self.b.ins().jump(header, &[]);
        // Every predecessor is known: sealing now resolves variables that the loop does not
        // change to their outer values (not header parameters), so invariant code hoists.
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        Ok(())
    }

    // ------------------------------------------------------------ memory

    /// The constant flat index of an access to a promoted private buffer.
    fn const_flat(&mut self, buf: BufId, index: &[Expr]) -> R<i64> {
        let b = self.kernel.buffer(buf);
        const_eval(&b.flat_index(index), &self.consts).ok_or_else(|| "promoted buffer with a variable index".into())
    }

    /// The `f32x4` register holding elements `4 * group .. 4 * group + 4` of a vector-promoted
    /// private buffer.
    fn vreg(&mut self, buf: BufId, group: i64) -> Variable {
        if let Some(&v) = self.elements.get(&(buf.0, group)) {
            return v;
        }
        let v = self.b.declare_var(types::F32X4);
        self.elements.insert((buf.0, group), v);
        v
    }

    /// Four consecutive elements of a vector-promoted buffer from flat index `flat`.
    fn vreg_get(&mut self, buf: BufId, flat: i64) -> Value {
        if flat % 4 == 0 {
            let cv = self.vreg(buf, flat / 4);
            return self.b.use_var(cv);
        }
        let z = self.b.ins().f32const(0.0);
        let mut r = self.b.ins().splat(types::F32X4, z);
        for lane in 0..4 {
            let f = flat + lane;
            let cv = self.vreg(buf, f / 4);
            let v = self.b.use_var(cv);
            let x = self.b.ins().extractlane(v, (f % 4) as u8);
            r = self.b.ins().insertlane(r, x, lane as u8);
        }
        r
    }

    fn vreg_set(&mut self, buf: BufId, flat: i64, x: Value) {
        if flat % 4 == 0 {
            let cv = self.vreg(buf, flat / 4);
            self.b.def_var(cv, x);
            return;
        }
        for lane in 0..4 {
            let f = flat + lane;
            let cv = self.vreg(buf, f / 4);
            let v = self.b.use_var(cv);
            let e = self.b.ins().extractlane(x, lane as u8);
            let n = self.b.ins().insertlane(v, e, (f % 4) as u8);
            self.b.def_var(cv, n);
        }
    }

    /// The register holding element `index` of a promoted private buffer.
    fn element(&mut self, buf: BufId, index: &[Expr]) -> R<Option<Variable>> {
        if !self.promoted.contains(&buf.0) {
            return Ok(None);
        }
        let b = self.kernel.buffer(buf);
        let flat = const_eval(&b.flat_index(index), &self.consts).ok_or("promoted buffer with a variable index")?;
        if let Some(&v) = self.elements.get(&(buf.0, flat)) {
            return Ok(Some(v));
        }
        let ty = reg_type(b.dtype);
        let v = self.b.declare_var(ty);
        self.elements.insert((buf.0, flat), v);
        Ok(Some(v))
    }

    /// The address of `buf[index]`; data-dependent indices are bounds-checked.
    fn address(&mut self, buf: BufId, index: &[Expr]) -> R<Value> {
        let b = self.kernel.buffers.get(buf.index()).ok_or_else(|| format!("no buffer b{}", buf.0))?;
        if index.len() != b.shape.len() {
            return Err(format!("buffer `{}` has rank {}, indexed with {}", b.name, b.shape.len(), index.len()));
        }
        let (len, size) = (b.len(), b.dtype.size_bytes() as i64);
        let flat_expr = b.flat_index(index);
        let flat = self.expr(&flat_expr)?;
        if self.plan.is_data_dependent(index) {
            let n = self.b.ins().iconst(types::I64, len);
            let bad = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, flat, n);
            self.fail_if(bad, Status::OutOfBounds);
        }
        let base = self.bases[buf.index()];
        Ok(self.offset(base, flat, size))
    }

    fn offset(&mut self, base: Value, flat: Value, size: i64) -> Value {
        let s = self.b.ins().iconst(types::I64, size);
        let bytes = self.b.ins().imul(flat, s);
        self.b.ins().iadd(base, bytes)
    }

    fn load_scalar(&mut self, dtype: DType, addr: Value) -> Value {
        match dtype {
            DType::F16 => {
                let bits = self.b.ins().uload16(types::I32, mem(), addr, 0);
                self.call(Lib::F16ToF32, &[bits])
            }
            DType::BF16 => {
                let bits = self.b.ins().uload16(types::I32, mem(), addr, 0);
                let sh = self.b.ins().iconst(types::I32, 16);
                let bits = self.b.ins().ishl(bits, sh);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), bits)
            }
            DType::Bool => {
                let byte = self.b.ins().load(types::I8, mem(), addr, 0);
                let z = self.b.ins().iconst(types::I8, 0);
                self.b.ins().icmp(IntCC::NotEqual, byte, z)
            }
            d if d.is_minifloat() => {
                let bits = self.b.ins().uload8(types::I32, mem(), addr, 0);
                let format = self.b.ins().iconst(types::I32, lowp_format_code(d));
                self.call(Lib::LowpDecode, &[format, bits])
            }
            d => self.b.ins().load(reg_type(d), mem(), addr, 0),
        }
    }

    fn store_scalar(&mut self, dtype: DType, v: Value, addr: Value) {
        match dtype {
            DType::F16 => {
                let bits = self.call(Lib::F32ToF16, &[v]);
                self.b.ins().istore16(mem(), bits, addr, 0);
            }
            DType::BF16 => {
                let bits = self.b.ins().bitcast(types::I32, MemFlagsData::new(), v);
                let sh = self.b.ins().iconst(types::I32, 16);
                let bits = self.b.ins().ushr(bits, sh);
                self.b.ins().istore16(mem(), bits, addr, 0);
            }
            d if d.is_minifloat() => {
                let bits = self.lowp_encode(d, v);
                self.b.ins().istore8(mem(), bits, addr, 0);
            }
            _ => {
                self.b.ins().store(mem(), v, addr, 0);
            }
        }
    }

    /// The float8/float4 bits (an `i32`) of `v`, an `f32` or `f64` register.
    fn lowp_encode(&mut self, d: DType, v: Value) -> Value {
        let wide = if self.b.func.dfg.value_type(v) == types::F64 { v } else { self.b.ins().fpromote(types::F64, v) };
        let format = self.b.ins().iconst(types::I32, lowp_format_code(d));
        self.call(Lib::LowpEncode, &[format, wide])
    }

    /// Wraps an `i8` register to the 4- or 2-bit integer dtype `d` (others unchanged).
    fn wrap_sub_byte(&mut self, d: DType, v: Value) -> Value {
        let bits = match d {
            DType::I4 | DType::U4 => 4,
            DType::I2 | DType::U2 => 2,
            _ => return v,
        };
        if is_unsigned(d) {
            self.b.ins().band_imm_u(v, (1i64 << bits) - 1)
        } else {
            let up = self.b.ins().ishl_imm_u(v, 8 - bits);
            self.b.ins().sshr_imm_u(up, 8 - bits)
        }
    }

    fn call(&mut self, lib: Lib, args: &[Value]) -> Value {
        let f = self.libs[&lib];
        let inst = self.b.ins().call(f, args);
        self.b.inst_results(inst)[0]
    }

    // ------------------------------------------------------------ expressions

    fn expr(&mut self, e: &Expr) -> R<Value> {
        scalar::walk(self, e)
    }

    fn literal(&mut self, l: Literal) -> Value {
        match l {
            Literal::Float(v, d) => self.float_const(v, d),
            Literal::Int(v, d) => self.int_const(v, d),
            Literal::Bool(v) => self.b.ins().iconst(types::I8, v as i64),
        }
    }

    fn float_const(&mut self, v: f64, d: DType) -> Value {
        match d {
            DType::F64 => self.b.ins().f64const(v),
            DType::F16 => self.b.ins().f32const(half::f16::from_f64(v).to_f32()),
            DType::BF16 => self.b.ins().f32const(half::bf16::from_f64(v).to_f32()),
            DType::F32 => self.b.ins().f32const(v as f32),
            d if d.is_int() || d == DType::Bool => self.int_const(v as i64, d),
            _ => self.b.ins().f32const(v as f32),
        }
    }

    fn int_const(&mut self, v: i64, d: DType) -> Value {
        if d.is_float() {
            return self.float_const(v as f64, d);
        }
        let ty = reg_type(d);
        let bits = ty.bits();
        let v = if bits >= 64 { v } else { v & ((1i64 << bits) - 1) };
        self.b.ins().iconst(ty, v)
    }

    /// Rounds an `f32` register holding an `f16`/`bf16` (or float8/float4) result of an op
    /// computed in `f32` (exact for `+ - * /`: `f32` has more than twice their precision, so
    /// double rounding is harmless).
    fn round_half32(&mut self, d: DType, v: Value) -> Value {
        if !is_narrow_float(d) {
            return v;
        }
        let w = self.b.ins().fpromote(types::F64, v);
        self.round_from_f64(d, w)
    }

    /// An `f64` rounded to dtype `d`'s register form.
    fn round_from_f64(&mut self, d: DType, w: Value) -> Value {
        match d {
            DType::F64 => w,
            DType::F32 => self.b.ins().fdemote(types::F32, w),
            DType::F16 => self.call(Lib::RoundF16, &[w]),
            DType::BF16 => self.call(Lib::RoundBF16, &[w]),
            d if d.is_minifloat() => {
                let bits = self.lowp_encode(d, w);
                let format = self.b.ins().iconst(types::I32, lowp_format_code(d));
                self.call(Lib::LowpDecode, &[format, bits])
            }
            _ => w,
        }
    }

    fn widen_f64(&mut self, d: DType, v: Value) -> Value {
        if d == DType::F64 {
            v
        } else {
            self.b.ins().fpromote(types::F64, v)
        }
    }

    fn unary(&mut self, op: UnaryOp, d: DType, x: Value) -> R<Value> {
        let ty = reg_type(d);
        let bad = || format!("`{}` on {}", op.name(), d.name());
        if d.is_float() {
            if helper(Lib::Unary(op)).is_some() {
                let w = self.widen_f64(d, x);
                let r = self.call(Lib::Unary(op), &[w]);
                return Ok(self.round_from_f64(d, r));
            }
            let zero = self.float_const(0.0, d);
            return Ok(match op {
                UnaryOp::Neg => self.b.ins().fneg(x),
                UnaryOp::Abs => self.b.ins().fabs(x),
                UnaryOp::Sign => {
                    let one = self.float_const(1.0, d);
                    let m1 = self.float_const(-1.0, d);
                    let gt = self.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                    let lt = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
                    let r = self.b.ins().select(lt, m1, x);
                    self.b.ins().select(gt, one, r)
                }
                UnaryOp::Relu => {
                    let keep = self.b.ins().fcmp(FloatCC::UnorderedOrGreaterThan, x, zero);
                    self.b.ins().select(keep, x, zero)
                }
                UnaryOp::Sqrt => {
                    let r = self.b.ins().sqrt(x);
                    self.round_half32(d, r)
                }
                UnaryOp::Rsqrt => {
                    let w = self.widen_f64(d, x);
                    let s = self.b.ins().sqrt(w);
                    let one = self.b.ins().f64const(1.0);
                    let r = self.b.ins().fdiv(one, s);
                    self.round_from_f64(d, r)
                }
                UnaryOp::Reciprocal => {
                    let one = self.float_const(1.0, d);
                    let r = self.b.ins().fdiv(one, x);
                    self.round_half32(d, r)
                }
                UnaryOp::Floor => self.b.ins().floor(x),
                UnaryOp::Ceil => self.b.ins().ceil(x),
                UnaryOp::Round => self.b.ins().nearest(x),
                UnaryOp::IsNan => self.b.ins().fcmp(FloatCC::Unordered, x, x),
                UnaryOp::IsInf => {
                    let a = self.b.ins().fabs(x);
                    let inf = self.float_const(f64::INFINITY, d);
                    self.b.ins().fcmp(FloatCC::Equal, a, inf)
                }
                _ => return Err(bad()),
            });
        }
        if d == DType::Bool {
            return match op {
                UnaryOp::Not => {
                    let one = self.b.ins().iconst(types::I8, 1);
                    Ok(self.b.ins().bxor(x, one))
                }
                _ => Err(bad()),
            };
        }
        let zero = self.b.ins().iconst(ty, 0);
        let unsigned = is_unsigned(d);
        Ok(match op {
            UnaryOp::Neg => self.b.ins().ineg(x),
            UnaryOp::Abs if unsigned => x,
            UnaryOp::Abs => {
                let n = self.b.ins().ineg(x);
                let neg = self.b.ins().icmp(IntCC::SignedLessThan, x, zero);
                self.b.ins().select(neg, n, x)
            }
            UnaryOp::Sign => {
                let one = self.b.ins().iconst(ty, 1);
                if unsigned {
                    let nz = self.b.ins().icmp(IntCC::NotEqual, x, zero);
                    self.b.ins().select(nz, one, zero)
                } else {
                    let m1 = self.b.ins().iconst(ty, mask(ty));
                    let gt = self.b.ins().icmp(IntCC::SignedGreaterThan, x, zero);
                    let lt = self.b.ins().icmp(IntCC::SignedLessThan, x, zero);
                    let r = self.b.ins().select(lt, m1, zero);
                    self.b.ins().select(gt, one, r)
                }
            }
            UnaryOp::Relu if unsigned => x,
            UnaryOp::Relu => {
                let pos = self.b.ins().icmp(IntCC::SignedGreaterThan, x, zero);
                self.b.ins().select(pos, x, zero)
            }
            UnaryOp::Not => self.b.ins().bnot(x),
            _ => return Err(bad()),
        })
    }

    fn binary(&mut self, op: BinaryOp, d: DType, x: Value, y: Value) -> R<Value> {
        use BinaryOp::*;
        let bad = || format!("`{}` on {}", op.name(), d.name());
        if d.is_float() {
            let cc = match op {
                Eq => Some(FloatCC::Equal),
                Ne => Some(FloatCC::NotEqual),
                Lt => Some(FloatCC::LessThan),
                Le => Some(FloatCC::LessThanOrEqual),
                Gt => Some(FloatCC::GreaterThan),
                Ge => Some(FloatCC::GreaterThanOrEqual),
                _ => None,
            };
            if let Some(cc) = cc {
                return Ok(self.b.ins().fcmp(cc, x, y));
            }
            return Ok(match op {
                Add => {
                    let r = self.b.ins().fadd(x, y);
                    self.round_half32(d, r)
                }
                Sub => {
                    let r = self.b.ins().fsub(x, y);
                    self.round_half32(d, r)
                }
                Mul => {
                    let r = self.b.ins().fmul(x, y);
                    self.round_half32(d, r)
                }
                Div => {
                    let r = self.b.ins().fdiv(x, y);
                    self.round_half32(d, r)
                }
                Max => self.b.ins().fmax(x, y),
                Min => self.b.ins().fmin(x, y),
                Rem | Pow => {
                    let (a, b) = (self.widen_f64(d, x), self.widen_f64(d, y));
                    let r = self.call(if op == Rem { Lib::Fmod } else { Lib::Pow }, &[a, b]);
                    self.round_from_f64(d, r)
                }
                _ => return Err(bad()),
            });
        }
        let unsigned = is_unsigned(d);
        let cc = match op {
            Eq => Some(IntCC::Equal),
            Ne => Some(IntCC::NotEqual),
            Lt => Some(if unsigned { IntCC::UnsignedLessThan } else { IntCC::SignedLessThan }),
            Le => Some(if unsigned { IntCC::UnsignedLessThanOrEqual } else { IntCC::SignedLessThanOrEqual }),
            Gt => Some(if unsigned { IntCC::UnsignedGreaterThan } else { IntCC::SignedGreaterThan }),
            Ge => Some(if unsigned { IntCC::UnsignedGreaterThanOrEqual } else { IntCC::SignedGreaterThanOrEqual }),
            _ => None,
        };
        if let Some(cc) = cc {
            return Ok(self.b.ins().icmp(cc, x, y));
        }
        if d == DType::Bool {
            return Ok(match op {
                And => self.b.ins().band(x, y),
                Or => self.b.ins().bor(x, y),
                Xor => self.b.ins().bxor(x, y),
                _ => return Err(bad()),
            });
        }
        let ty = reg_type(d);
        Ok(match op {
            Add => self.b.ins().iadd(x, y),
            Sub => self.b.ins().isub(x, y),
            Mul => self.b.ins().imul(x, y),
            Max if unsigned => self.b.ins().umax(x, y),
            Max => self.b.ins().smax(x, y),
            Min if unsigned => self.b.ins().umin(x, y),
            Min => self.b.ins().smin(x, y),
            // A constant divisor other than 0 and -1 needs no checks (index arithmetic divides
            // by shape constants): no branch, and Cranelift multiplies by a magic number.
            Div | Rem
                if self.constant(y).is_some_and(|c| {
                    let (all, c) = (mask(ty) as u64, c as u64 & mask(ty) as u64);
                    c != 0 && (unsigned || c != all)
                }) =>
            {
                match (op, unsigned) {
                    (Div, true) => self.b.ins().udiv(x, y),
                    (Rem, true) => self.b.ins().urem(x, y),
                    (Div, false) => self.b.ins().sdiv(x, y),
                    _ => self.b.ins().srem(x, y),
                }
            }
            Div | Rem => {
                let zero = self.b.ins().iconst(ty, 0);
                let is_zero = self.b.ins().icmp(IntCC::Equal, y, zero);
                self.fail_if(is_zero, if op == Div { Status::DivisionByZero } else { Status::RemainderByZero });
                match (op, unsigned) {
                    (Div, true) => self.b.ins().udiv(x, y),
                    (Rem, true) => self.b.ins().urem(x, y),
                    _ => {
                        // `MIN / -1` wraps (and `MIN % -1` is 0): divide by 1 instead.
                        let m1 = self.b.ins().iconst(ty, mask(ty));
                        let one = self.b.ins().iconst(ty, 1);
                        let is_m1 = self.b.ins().icmp(IntCC::Equal, y, m1);
                        let safe = self.b.ins().select(is_m1, one, y);
                        if op == Div {
                            let q = self.b.ins().sdiv(x, safe);
                            let n = self.b.ins().ineg(x);
                            self.b.ins().select(is_m1, n, q)
                        } else {
                            self.b.ins().srem(x, safe)
                        }
                    }
                }
            }
            Pow => {
                if !unsigned {
                    let zero = self.b.ins().iconst(ty, 0);
                    let neg = self.b.ins().icmp(IntCC::SignedLessThan, y, zero);
                    self.fail_if(neg, Status::NegativeExponent);
                }
                let a = self.int_convert(x, d, if unsigned { DType::U64 } else { DType::I64 });
                let b = self.int_convert(y, d, if unsigned { DType::U64 } else { DType::I64 });
                let r = self.call(Lib::IPow, &[a, b]);
                self.int_convert(r, DType::I64, d)
            }
            And => self.b.ins().band(x, y),
            Or => self.b.ins().bor(x, y),
            Xor => self.b.ins().bxor(x, y),
            _ => return Err(bad()),
        })
    }

    /// Integer → integer (wrapping; widened by the source's signedness).
    fn int_convert(&mut self, v: Value, from: DType, to: DType) -> Value {
        let (ft, tt) = (reg_type(from), reg_type(to));
        if ft == tt {
            v
        } else if ft.bits() > tt.bits() {
            self.b.ins().ireduce(tt, v)
        } else if is_unsigned(from) {
            self.b.ins().uextend(tt, v)
        } else {
            self.b.ins().sextend(tt, v)
        }
    }

    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        if from == to {
            return x;
        }
        if to == DType::Bool {
            return if from.is_float() {
                let z = self.float_const(0.0, from);
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else {
                let z = self.b.ins().iconst(reg_type(from), 0);
                self.b.ins().icmp(IntCC::NotEqual, x, z)
            };
        }
        match (from.is_float(), to.is_float()) {
            (true, true) => match (from, to) {
                (DType::F32 | DType::F16 | DType::BF16, DType::F32) => x,
                (d, DType::F32) if d.is_minifloat() => x,
                (_, DType::F64) => self.b.ins().fpromote(types::F64, x),
                (DType::F64, DType::F32) => self.b.ins().fdemote(types::F32, x),
                _ => {
                    let w = self.widen_f64(from, x);
                    self.round_from_f64(to, w)
                }
            },
            (true, false) => {
                // Rust `as`: truncate toward zero, saturate, NaN → 0.
                let tt = reg_type(to);
                if to == DType::U64 {
                    return self.b.ins().fcvt_to_uint_sat(types::I64, x);
                }
                let wide = self.b.ins().fcvt_to_sint_sat(types::I64, x);
                if to == DType::I64 {
                    return wide;
                }
                if to.is_sub_byte_int() {
                    // Wrapped, not saturated, as ONNX's reference casts do.
                    let byte = self.b.ins().ireduce(types::I8, wide);
                    return self.wrap_sub_byte(to, byte);
                }
                let (lo, hi) = int_range(to);
                let lo = self.b.ins().iconst(types::I64, lo);
                let hi = self.b.ins().iconst(types::I64, hi);
                let c = self.b.ins().smax(wide, lo);
                let c = self.b.ins().smin(c, hi);
                self.b.ins().ireduce(tt, c)
            }
            (false, true) => {
                let wide = self.int_convert(x, from, if is_unsigned(from) { DType::U64 } else { DType::I64 });
                let target = if to == DType::F64 { types::F64 } else { types::F32 };
                let direct = to == DType::F32 || to == DType::F64;
                let t = if direct { target } else { types::F64 };
                let r = if is_unsigned(from) {
                    self.b.ins().fcvt_from_uint(t, wide)
                } else {
                    self.b.ins().fcvt_from_sint(t, wide)
                };
                if direct {
                    r
                } else {
                    self.round_from_f64(to, r)
                }
            }
            (false, false) => {
                let v = self.int_convert(x, from, to);
                self.wrap_sub_byte(to, v)
            }
        }
    }
}

/// The register type of a dtype (`f16`/`bf16` and float8/float4 live as `f32`, `bool` as an
/// `i8` 0/1, the 4- and 2-bit integers as `i8`s wrapped to their width).
pub(crate) fn reg_type(d: DType) -> Type {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => types::F32,
        DType::F64 => types::F64,
        DType::I64 | DType::U64 => types::I64,
        DType::I32 | DType::U32 => types::I32,
        DType::I16 | DType::U16 => types::I16,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
        d if d.is_minifloat() => types::F32,
        _ => types::I8,
    }
}

/// Floats narrower than their `f32` register, rounded after each op.
fn is_narrow_float(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16) || d.is_minifloat()
}

fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

pub(crate) fn mask(ty: Type) -> i64 {
    if ty.bits() >= 64 {
        -1
    } else {
        (1i64 << ty.bits()) - 1
    }
}

impl ScalarCode for Emitter<'_, '_, '_> {
    type Value = Value;
    type Error = String;

    fn expr(&mut self, e: &Expr) -> R<Value> {
        Emitter::expr(self, e)
    }

    fn emit_literal(&mut self, l: Literal) -> R<Value> {
        Ok(self.literal(l))
    }

    fn emit_variable(&mut self, id: u32) -> R<Value> {
        let &(cv, _) = self.vars.get(&id).ok_or_else(|| format!("use of undeclared v{id}"))?;
        Ok(self.b.use_var(cv))
    }

    fn emit_unary(&mut self, op: UnaryOp, dtype: DType, x: Value) -> R<Value> {
        let v = self.unary(op, dtype, x)?;
        // `not` of an integer is bitwise: a `u4`'s high bits are set, and wrapped off again.
        let integral = op.class() == UnaryClass::Numeric || (op == UnaryOp::Not && dtype.is_int());
        Ok(if integral { self.wrap_sub_byte(dtype, v) } else { v })
    }

    fn emit_binary(&mut self, op: BinaryOp, dtype: DType, x: Value, y: Value) -> R<Value> {
        let v = self.binary(op, dtype, x, y)?;
        Ok(if op.class() == BinaryClass::Arithmetic { self.wrap_sub_byte(dtype, v) } else { v })
    }

    fn emit_select(&mut self, c: Value, x: Value, y: Value) -> R<Value> {
        Ok(self.b.ins().select(c, x, y))
    }

    fn emit_cast(&mut self, x: Value, from: DType, to: DType) -> R<Value> {
        Ok(self.cast(x, from, to))
    }

    fn emit_load(&mut self, buf: BufId, dtype: DType, index: &[Expr]) -> R<Value> {
        if self.vpromoted.contains(&buf.0) {
            let flat = self.const_flat(buf, index)?;
            let cv = self.vreg(buf, flat / 4);
            let v = self.b.use_var(cv);
            return Ok(self.b.ins().extractlane(v, (flat % 4) as u8));
        }
        if self.promoted.contains(&buf.0) {
            let cv = self.element(buf, index)?.ok_or("promoted buffer with a variable index")?;
            return Ok(self.b.use_var(cv));
        }
        let addr = self.address(buf, index)?;
        Ok(self.load_scalar(dtype, addr))
    }

    fn emit_branch(
        &mut self,
        c: Value,
        dtype: DType,
        then: scalar::Side<'_, Self>,
        otherwise: scalar::Side<'_, Self>,
    ) -> R<Value> {
        let (tb, eb, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        let res = self.b.append_block_param(merge, reg_type(dtype));
        self.b.ins().brif(c, tb, &[], eb, &[]);
        self.b.seal_block(tb);
        self.b.seal_block(eb);
        self.b.switch_to_block(tb);
        let x = then(self)?;
        self.b.ins().jump(merge, &[x.into()]);
        self.b.switch_to_block(eb);
        let y = otherwise(self)?;
        self.b.ins().jump(merge, &[y.into()]);
        self.b.seal_block(merge);
        self.b.switch_to_block(merge);
        Ok(res)
    }
}
