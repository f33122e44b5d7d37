//! Vector loops in Cranelift: the body of a loop the plan vectorized as `f32x4` code (lane-
//! varying `f32` values in vectors, indices as lane 0's scalar), masked and strided loads, lazy
//! vector `select`s, and the lane-wise operations of the shared vector math.

use super::*;
use crate::plan::integer_round_trip;

impl Emitter<'_, '_, '_> {
    /// `for var < extent vector(4)` over `f32` as 128-bit vectors, as the plan found the body
    /// fits (`let`s and stores of `f32` arithmetic whose loads and stores are contiguous in `var`
    /// or invariant in it).
    pub(super) fn vector_loop(&mut self, var: nnc_kernel::Var, extent: &Expr, body: &[Stmt], lanes: &Lanes) -> R<()> {
        let n = extent.as_int().ok_or("a vector loop with a variable extent")?;
        let iv = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(iv, zero);
        let (header, bodyb, exit) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(iv);
        let nv = self.b.ins().iconst(types::I64, n);
        let done = self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, i, nv);
        self.b.ins().brif(done, exit, &[], bodyb, &[]);
        self.b.seal_block(bodyb);
        self.b.seal_block(exit);
        self.b.switch_to_block(bodyb);
        self.bind(var.id, (iv, false));
        self.open_scope(body);
        self.vector_body(var.id, body, lanes)?;
        self.close_scope();
        let i = self.b.use_var(iv);
        let four = self.b.ins().iconst(types::I64, 4);
        let next = self.b.ins().iadd(i, four);
        self.b.def_var(iv, next);
        self.b.ins().jump(header, &[]);
        // Every predecessor is known: sealing now resolves variables that the loop does not
        // change to their outer values (not header parameters), so invariant code hoists.
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// The body of a vector loop over `lv` (bound to lane 0's index), one vector per `f32`.
    pub(super) fn vector_body(&mut self, lv: u32, body: &[Stmt], lanes: &Lanes) -> R<()> {
        for s in body {
            match s {
                Stmt::Let { var: v, value } => {
                    let x = if lanes.get(&v.id) == Some(&Lane::Vector) {
                        self.consts.remove(&v.id);
                        self.vexpr(value, lv, lanes)?
                    } else {
                        // Scalars (and lane 0 of affine indices) may be constants of unrolled loops.
                        match const_eval(value, &self.consts) {
                            Some(c) => self.consts.insert(v.id, c),
                            None => self.consts.remove(&v.id),
                        };
                        Val { v: self.expr(value)?, vector: false }
                    };
                    let ty = if x.vector { types::F32X4 } else { reg_type(v.dtype) };
                    let cv = self.b.declare_var(ty);
                    self.b.def_var(cv, x.v);
                    self.bind(v.id, (cv, x.vector));
                }
                Stmt::Store { buf, index, value } => {
                    let x = self.vexpr(value, lv, lanes)?;
                    let x = self.splat(x);
                    if self.vpromoted.contains(&buf.0) {
                        let flat = self.const_flat(*buf, index)?;
                        self.vreg_set(*buf, flat, x);
                    } else {
                        let addr = self.address(*buf, index)?;
                        self.b.ins().store(mem(), x, addr, 0);
                        self.forget_loads(*buf);
                    }
                }
                _ => unreachable!("vector_plan accepts lets and stores only"),
            }
        }
        Ok(())
    }

    /// A load whose mask varies between lanes (a conjunction of affine comparisons, so it holds
    /// for all four lanes when it holds for lanes 0 and 3): one vector load (or gather, for a
    /// lane stride `step` other than 1) when it does, lane by lane otherwise.
    #[allow(clippy::too_many_arguments)]
    fn masked_vload(
        &mut self,
        buf: BufId,
        dtype: DType,
        index: &[Expr],
        m: &Expr,
        step: i64,
        lv: u32,
        lanes: &Lanes,
    ) -> R<Value> {
        let m0 = self.expr(&at_lane(m, lv, lanes, 0))?;
        let m3 = self.expr(&at_lane(m, lv, lanes, 3))?;
        let all = self.b.ins().band(m0, m3);
        let (fast, slow, merge) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        let res = self.b.append_block_param(merge, types::F32X4);
        self.b.ins().brif(all, fast, &[], slow, &[]);
        self.b.seal_block(fast);
        self.b.seal_block(slow);
        self.b.switch_to_block(fast);
        let v = self.unmasked_vload(buf, index, step)?;
        self.b.ins().jump(merge, &[v.into()]);
        self.b.switch_to_block(slow);
        if !index.iter().any(contains_load) && !self.kernel.buffer(buf).is_empty() {
            let r = self.lanewise_vload(buf, index, m, step, lv, lanes)?;
            self.b.ins().jump(merge, &[r.into()]);
            self.b.seal_block(merge);
            self.b.switch_to_block(merge);
            return Ok(res);
        }
        let z = self.b.ins().f32const(0.0);
        let mut r = self.b.ins().splat(types::F32X4, z);
        for lane in 0..4i64 {
            let e = Expr::Load {
                buf,
                dtype,
                index: index.iter().map(|i| at_lane(i, lv, lanes, lane)).collect(),
                mask: Some(Box::new(at_lane(m, lv, lanes, lane))),
            };
            let x = self.expr(&e)?;
            r = self.b.ins().insertlane(r, x, lane as u8);
        }
        self.b.ins().jump(merge, &[r.into()]);
        self.b.seal_block(merge);
        self.b.switch_to_block(merge);
        Ok(res)
    }

    /// A load whose mask fails for some lanes, without branches (an edge tile meets one every
    /// iteration): lanes whose mask fails load the buffer's first element instead of their own
    /// and become 0. Only for indices that cannot fail (no data-dependent index).
    fn lanewise_vload(&mut self, buf: BufId, index: &[Expr], m: &Expr, step: i64, lv: u32, lanes: &Lanes) -> R<Value> {
        let base = self.bases[buf.index()];
        let zero = self.b.ins().f32const(0.0);
        let mut r = self.b.ins().splat(types::F32X4, zero);
        let addr0 = self.address(buf, index)?;
        for lane in 0..4i64 {
            let mk = self.expr(&at_lane(m, lv, lanes, lane))?;
            let off = self.b.ins().iconst(types::I64, lane * step * 4);
            let addr = self.b.ins().iadd(addr0, off);
            let safe = self.b.ins().select(mk, addr, base);
            let x = self.b.ins().load(types::F32, mem(), safe, 0);
            let x = self.b.ins().select(mk, x, zero);
            r = self.b.ins().insertlane(r, x, lane as u8);
        }
        Ok(r)
    }

    /// Four `f32` lanes at `index` (lane 0) and every `step` elements after it: one vector load
    /// when they are consecutive, a splat when they are one element, else four scalar loads at
    /// constant offsets (strided convolutions read every other element).
    fn unmasked_vload(&mut self, buf: BufId, index: &[Expr], step: i64) -> R<Value> {
        let addr = self.address(buf, index)?;
        if step == 1 {
            return Ok(self.b.ins().load(types::F32X4, mem(), addr, 0));
        }
        let x0 = self.b.ins().load(types::F32, mem(), addr, 0);
        let mut r = self.b.ins().splat(types::F32X4, x0);
        if step != 0 {
            for lane in 1..4i64 {
                let off = i32::try_from(lane * step * 4).map_err(|_| "vector lane stride too large")?;
                let x = self.b.ins().load(types::F32, mem(), addr, off);
                r = self.b.ins().insertlane(r, x, lane as u8);
            }
        }
        Ok(r)
    }

    /// `select(c, a, b)` in a vector loop: `a` is evaluated with `c` masking its loads (lanes
    /// that `c` discards read nothing, so an edge tile never reads past its row), then the
    /// lanes are merged by `c` (lane by lane when `c` varies between them).
    fn vselect(&mut self, c: &Expr, a: &Expr, b: &Expr, lv: u32, lanes: &Lanes) -> R<Value> {
        self.guards.push(c.clone());
        let x = self.vexpr(a, lv, lanes);
        self.guards.pop();
        let x = x?;
        let y = self.vexpr(b, lv, lanes)?;
        let (x, y) = (self.splat(x), self.splat(y));
        if !varies(c, lv, lanes) {
            let cv = self.expr(c)?;
            return Ok(self.b.ins().select(cv, x, y));
        }
        let zero = self.b.ins().iconst(types::I32, 0);
        let mut bits = self.b.ins().splat(types::I32X4, zero);
        for lane in 0..4i64 {
            let ck = self.expr(&at_lane(c, lv, lanes, lane))?;
            let w = self.b.ins().bmask(types::I32, ck);
            bits = self.b.ins().insertlane(bits, w, lane as u8);
        }
        let m = self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), bits);
        Ok(self.b.ins().bitselect(m, x, y))
    }

    /// The function's 16-byte stack slot for the lanes of a vector call.
    fn lane_slot(&mut self) -> StackSlot {
        *self.lane_slot.get_or_insert_with(|| {
            self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4))
        })
    }

    fn splat(&mut self, x: Val) -> Value {
        if x.vector {
            x.v
        } else {
            self.b.ins().splat(types::F32X4, x.v)
        }
    }

    /// An expression of a vector loop: lane-varying `f32` values become `f32x4`, everything else
    /// (index arithmetic, invariant values) stays scalar.
    pub(super) fn vexpr(&mut self, e: &Expr, lv: u32, lanes: &Lanes) -> R<Val> {
        if !varies(e, lv, lanes) {
            return Ok(Val { v: self.expr(e)?, vector: false });
        }
        if let Some((x, lo, hi)) = integer_round_trip(e) {
            let v = self.vexpr(x, lv, lanes)?;
            let v = self.splat(v);
            return Ok(Val { v: vmath::integer_valued(self, x, v, lo, hi)?, vector: true });
        }
        Ok(Val {
            vector: true,
            v: match e {
                Expr::Var(v) => {
                    let &(cv, _) = self.vars.get(&v.id).ok_or("undeclared variable")?;
                    self.b.use_var(cv)
                }
                Expr::Load { buf, index, mask, dtype } => {
                    if self.vpromoted.contains(&buf.0) {
                        let flat = self.const_flat(*buf, index)?;
                        self.vreg_get(*buf, flat)
                    } else {
                        // The guards of enclosing selects mask the load as well as its own mask.
                        let mask = self.guards.iter().chain(mask.as_deref()).cloned().reduce(Expr::and);
                        let key = self.load_key(index, mask.as_ref());
                        if let Some(v) = self.cached_load(*buf, &key) {
                            return Ok(Val { v, vector: true });
                        }
                        let flat = self.kernel.buffer(*buf).flat_index(index);
                        let step = coefficient(&flat, lv, lanes).ok_or("vector load not affine in the lane")?;
                        let v = match mask {
                            Some(m) => self.masked_vload(*buf, *dtype, index, &m, step, lv, lanes)?,
                            None => self.unmasked_vload(*buf, index, step)?,
                        };
                        self.loads.last_mut().expect("a scope").insert((buf.0, key), v);
                        v
                    }
                }
                Expr::Unary(op, a) => {
                    let x = self.vexpr(a, lv, lanes)?;
                    let x = self.splat(x);
                    if let Some(f) = vmath::vector_form::<Self>(*op) {
                        return Ok(Val { v: f(self, x)?, vector: true });
                    }
                    if helper(Lib::Unary(*op)).is_some() {
                        // Transcendentals: the scalar routine on each lane (f64, rounded to f32),
                        // through one call that maps the four lanes in a stack slot.
                        // The routine's address through a relocation (as calls get), never a
                        // constant of this process: a bundle runs in another one.
                        let slot = self.lane_slot();
                        let addr = self.b.ins().stack_addr(types::I64, slot, 0);
                        self.b.ins().store(MemFlagsData::trusted(), x, addr, 0);
                        let fv = self.b.ins().func_addr(types::I64, self.libs[&Lib::Unary(*op)]);
                        self.call(Lib::Map4, &[fv, addr]);
                        let r = self.b.ins().load(types::F32X4, MemFlagsData::trusted(), addr, 0);
                        return Ok(Val { v: r, vector: true });
                    }
                    match op {
                        UnaryOp::Neg => self.b.ins().fneg(x),
                        UnaryOp::Abs => self.b.ins().fabs(x),
                        UnaryOp::Sqrt => self.b.ins().sqrt(x),
                        UnaryOp::Floor => self.b.ins().floor(x),
                        UnaryOp::Ceil => self.b.ins().ceil(x),
                        UnaryOp::Round => self.b.ins().nearest(x),
                        UnaryOp::Reciprocal => {
                            let one = self.b.ins().f32const(1.0);
                            let one = self.b.ins().splat(types::F32X4, one);
                            self.b.ins().fdiv(one, x)
                        }
                        UnaryOp::Relu => {
                            // NaN-propagating max(x, 0) is relu, NaN kept.
                            let z = self.b.ins().f32const(0.0);
                            let z = self.b.ins().splat(types::F32X4, z);
                            self.b.ins().fmax(x, z)
                        }
                        _ => return Err(format!("vector `{}`", op.name())),
                    }
                }
                Expr::Select(c, a, b) => self.vselect(c, a, b, lv, lanes)?,
                Expr::Binary(BinaryOp::Add, a, b) if self.fma && (is_mul(a) || is_mul(b)) => {
                    // `c + x * y` (either order) as one fused multiply-add.
                    let (c, prod) = if is_mul(b) { (a, b) } else { (b, a) };
                    let Expr::Binary(_, x, y) = &**prod else { unreachable!("is_mul") };
                    let c = self.vexpr(c, lv, lanes)?;
                    let x = self.vexpr(x, lv, lanes)?;
                    let y = self.vexpr(y, lv, lanes)?;
                    let (c, x, y) = (self.splat(c), self.splat(x), self.splat(y));
                    self.b.ins().fma(x, y, c)
                }
                Expr::Binary(op, a, b) => {
                    let x = self.vexpr(a, lv, lanes)?;
                    let y = self.vexpr(b, lv, lanes)?;
                    let (x, y) = (self.splat(x), self.splat(y));
                    match op {
                        BinaryOp::Add => self.b.ins().fadd(x, y),
                        BinaryOp::Sub => self.b.ins().fsub(x, y),
                        BinaryOp::Mul => self.b.ins().fmul(x, y),
                        BinaryOp::Div => self.b.ins().fdiv(x, y),
                        BinaryOp::Max => self.b.ins().fmax(x, y),
                        BinaryOp::Min => self.b.ins().fmin(x, y),
                        _ => return Err(format!("vector `{}`", op.name())),
                    }
                }
                _ => return Err(format!("vector expression `{e}`")),
            },
        })
    }
}

/// Cranelift's `f32x4` lanes for the shared vector math.
impl LaneOps for Emitter<'_, '_, '_> {
    type V = Value;
    /// A comparison's all-ones lanes, as `f32x4` (the type `bitselect` wants).
    type M = Value;

    fn splat_constant(&mut self, v: f64) -> R<Value> {
        let k = self.b.ins().f32const(v as f32);
        Ok(self.b.ins().splat(types::F32X4, k))
    }

    fn add(&mut self, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().fadd(a, b))
    }

    fn mul(&mut self, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().fmul(a, b))
    }

    fn sub(&mut self, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().fsub(a, b))
    }

    fn div(&mut self, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().fdiv(a, b))
    }

    fn mul_add(&mut self, a: Value, b: Value, c: Value) -> R<Value> {
        Ok(if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fadd(m, c)
        })
    }

    fn min(&mut self, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().fmin(a, b))
    }

    fn max(&mut self, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().fmax(a, b))
    }

    fn round_even(&mut self, a: Value) -> R<Value> {
        Ok(self.b.ins().nearest(a))
    }

    fn floor(&mut self, a: Value) -> R<Value> {
        Ok(self.b.ins().floor(a))
    }

    fn exp2_int(&mut self, n: Value) -> R<Value> {
        let n = self.b.ins().fcvt_to_sint_sat(types::I32X4, n);
        let bias = self.b.ins().iconst(types::I32, 127);
        let bias = self.b.ins().splat(types::I32X4, bias);
        let e = self.b.ins().iadd(n, bias);
        let bits = self.b.ins().ishl_imm_u(e, 23);
        Ok(self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), bits))
    }

    fn compare(&mut self, cmp: Cmp, a: Value, b: Value) -> R<Value> {
        let cc = match cmp {
            Cmp::Lt => FloatCC::LessThan,
            Cmp::Ge => FloatCC::GreaterThanOrEqual,
            Cmp::Eq => FloatCC::Equal,
        };
        let m = self.b.ins().fcmp(cc, a, b);
        Ok(self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), m))
    }

    fn choose(&mut self, m: Value, a: Value, b: Value) -> R<Value> {
        Ok(self.b.ins().bitselect(m, a, b))
    }

    fn split_exponent(&mut self, x: Value) -> R<(Value, Value)> {
        let splat = |s: &mut Self, k: i64| {
            let k = s.b.ins().iconst(types::I32, k);
            s.b.ins().splat(types::I32X4, k)
        };
        let bits = self.b.ins().bitcast(types::I32X4, MemFlagsData::new(), x);
        let biased = self.b.ins().ushr_imm_u(bits, 23);
        let byte = splat(self, 0xff);
        let biased = self.b.ins().band(biased, byte);
        let bias = splat(self, 127);
        let e = self.b.ins().isub(biased, bias);
        let e = self.b.ins().fcvt_from_sint(types::F32X4, e);
        let fraction_bits = splat(self, 0x007f_ffff);
        let fraction = self.b.ins().band(bits, fraction_bits);
        let one = splat(self, 0x3f80_0000);
        let m = self.b.ins().bor(fraction, one);
        Ok((e, self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), m)))
    }
}
