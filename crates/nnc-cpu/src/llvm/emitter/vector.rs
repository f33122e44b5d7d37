//! Vector loops in LLVM: the body of a loop the plan vectorized as `<width x float>` code
//! (lane-varying `let`s in vectors, indices as lane 0's scalar), masked loads and gathers, lazy
//! vector `select`s, and the lane-wise operations of the shared vector math.

use super::*;
use crate::plan::integer_round_trip;
use inkwell::values::{IntValue, VectorValue};

/// The largest stride read by contiguous loads and shuffles rather than a gather.
const MAX_SHUFFLED_STEP: i64 = 4;

impl<'a, 'ctx> Emitter<'a, 'ctx> {
    /// The body of a vector loop over `lv` (bound to lane 0's index): `let`s that vary with
    /// the lane hold vectors, index `let`s hold lane 0's value (affine in the lane).
    pub(super) fn vector_body(&mut self, lv: u32, body: &'a [Stmt], lanes: &'a Lanes) -> R<()> {
        let outer = self.lanes.replace((lv, lanes));
        let r = self.vector_statements(body, lanes);
        self.lanes = outer;
        r
    }

    fn vector_statements(&mut self, body: &'a [Stmt], lanes: &Lanes) -> R<()> {
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
                    let v = self.splat(v)?;
                    let addr = self.address(*buf, index)?;
                    self.store(DType::F32, v, addr)?;
                }
                _ => return Err("vector_plan accepts lets and stores only".into()),
            }
        }
        Ok(())
    }

    /// A lane-varying expression of the current vector loop, as a vector.
    pub(super) fn vexpr(&mut self, e: &Expr) -> R<V<'ctx>> {
        let (lv, lanes) = self.lanes.ok_or("vector expression outside a vector loop")?;
        if !varies(e, lv, lanes) {
            let x = self.scalar(e)?;
            return self.splat(x);
        }
        if let Some((x, lo, hi)) = integer_round_trip(e) {
            let v = self.vexpr(x)?;
            return Ok(vmath::integer_valued(self, x, v, lo, hi)?);
        }
        Ok(match e {
            Expr::Var(v) => match lanes.get(&v.id) {
                Some(Lane::Vector) => self.vals[&v.id],
                _ => {
                    // An index: lane 0's value plus the lane times its coefficient.
                    let c = if v.id == lv { 1 } else { coefficient(e, lv, lanes).ok_or("index not affine")? };
                    let x0 = self.scalar(e)?;
                    let x0 = self.splat(x0)?;
                    self.op(Op::Add, x0, self.iota(c))?
                }
            },
            Expr::Load { buf, index, mask, dtype } => {
                let flat = self.kernel.buffer(*buf).flat_index(index);
                let step = coefficient(&flat, lv, lanes).ok_or("vector load not affine in the lane")?;
                let mut masks = self.guards.clone();
                if let Some(m) = mask {
                    masks.push(self.vexpr(m)?);
                }
                let mut mask = None;
                for m in masks {
                    mask = Some(match mask {
                        Some(a) => self.op(Op::And, a, m)?,
                        None => m,
                    });
                }
                self.vload(*buf, *dtype, index, step, mask)?
            }
            Expr::Select(c, a, b) => {
                let cv = self.vexpr(c)?;
                self.guards.push(cv);
                let x = self.vexpr(a);
                self.guards.pop();
                let x = x?;
                let y = self.vexpr(b)?;
                self.select(cv, x, y)?
            }
            Expr::Binary(BinaryOp::Add, a, c) if a.dtype().is_float() && (is_mul(a) || is_mul(c)) => {
                // `c + x * y` (either order) as one fused multiply-add.
                let (c, prod) = if is_mul(c) { (a, c) } else { (c, a) };
                let Expr::Binary(_, x, y) = &**prod else { unreachable!("is_mul") };
                let c = self.vexpr(c)?;
                let x = self.vexpr(x)?;
                let y = self.vexpr(y)?;
                self.intrinsic("llvm.fma", &[c.get_type()], &[x, y, c])?
            }
            Expr::Binary(BinaryOp::Add, acc, sum) if acc.dtype() == DType::I32 => match self.int8_dot(acc, sum)? {
                Some(v) => v,
                None => {
                    let (x, y) = (self.vexpr(acc)?, self.vexpr(sum)?);
                    self.binary(BinaryOp::Add, DType::I32, x, y)?
                }
            },
            Expr::Binary(op, a, c) => {
                let x = self.vexpr(a)?;
                let y = self.vexpr(c)?;
                self.binary(*op, a.dtype(), x, y)?
            }
            Expr::Unary(op, a) => {
                let x = self.vexpr(a)?;
                self.unary(*op, a.dtype(), x)?
            }
            // Integer lanes (see `plan::vector_plan`): integers widened or converted to `f32`
            // by their signedness; `f32` to a narrow integer as Rust's `as` (truncated,
            // saturated, NaN to 0: exact in `i32` lanes, then narrowed).
            Expr::Cast(to, a) if a.dtype().is_int() => {
                let x = self.vexpr(a)?;
                let vt = vector_of(self.cx.reg(*to)?, self.width())?;
                let op = match (to.is_float(), is_unsigned(a.dtype())) {
                    (true, true) => Op::UIToFP,
                    (true, false) => Op::SIToFP,
                    (false, true) => Op::ZExt,
                    (false, false) => Op::SExt,
                };
                self.b().build_cast(op, x, vt, "")?
            }
            Expr::Cast(to, a) if to.is_int() && a.dtype() == DType::F32 => {
                let x = self.vexpr(a)?;
                let (lo, hi) = int_range(*to);
                let integral = vmath::integer_valued(self, a, x, lo as f64, hi as f64)?;
                let words = self.b().build_cast(Op::FPToSI, integral, self.cx.i32.vec_type(self.width()), "")?;
                let vt = vector_of(self.cx.reg(*to)?, self.width())?;
                self.b().build_cast(Op::Trunc, words, vt, "")?
            }
            _ => return Err(format!("vector expression `{e}`").into()),
        })
    }

    /// `width` `f32` lanes of `buf` from `index` (lane 0) every `step` elements; lanes whose
    /// `mask` fails read nothing and are 0.
    fn vload(&mut self, buf: BufId, dtype: DType, index: &[Expr], step: i64, mask: Option<V<'ctx>>) -> R<V<'ctx>> {
        let et = self.cx.reg(dtype)?;
        let vt: BasicTypeEnum<'ctx> = vector_of(et, self.width())?.into();
        let zero = self.constant(vt, 0.0)?;
        let addr = self.address_with(buf, index, mask.is_none())?;
        let align: V<'ctx> = self.i32c(dtype.size_bytes() as u32).into();
        if step == 0 && mask.is_none() {
            let x = self.load(dtype, addr)?;
            return self.splat(x);
        }
        if step == 1 {
            return match mask {
                None => {
                    let l = self.b().build_load(vt, addr, "")?;
                    if let Some(i) = l.as_instruction_value() {
                        i.set_alignment(dtype.size_bytes() as u32).map_err(|e| format!("load alignment: {e}"))?;
                    }
                    Ok(l)
                }
                Some(m) => {
                    self.intrinsic("llvm.masked.load", &[vt, self.cx.ptr.into()], &[addr.into(), align, m, zero])
                }
            };
        }
        if (2..=MAX_SHUFFLED_STEP).contains(&step) {
            return self.strided_vload(vt.into_vector_type(), addr, step, mask);
        }
        let ptrs = self.lane_addresses(et, addr, step, mask.is_some())?;
        let all = self.int_constant(self.cx.i1.vec_type(self.width()).into(), 1)?;
        let m = mask.unwrap_or(all);
        self.intrinsic("llvm.masked.gather", &[vt, ptrs.get_type()], &[ptrs, align, m, zero])
    }

    /// `width` lanes every `step` elements from `addr` as `step` contiguous loads, each of the
    /// lanes it holds (a masked load: no lane past the last one read, none where `mask`
    /// fails), and shuffles that gather the lanes. A stride-2 pooling window or convolution
    /// reads this way: on x86-64 a gather of 16 lanes is two `vgatherqps` of 8, several
    /// times slower than two loads and two shuffles.
    fn strided_vload(
        &mut self,
        vt: VectorType<'ctx>,
        addr: PointerValue<'ctx>,
        step: i64,
        mask: Option<V<'ctx>>,
    ) -> R<V<'ctx>> {
        let w = self.width() as i64;
        let shuffle =
            |this: &Self, a: VectorValue<'ctx>, b: VectorValue<'ctx>, pattern: &[i64]| -> R<VectorValue<'ctx>> {
                let p: Vec<IntValue<'ctx>> = pattern.iter().map(|&x| this.i32c(x as u32)).collect();
                Ok(this.b().build_shuffle_vector(a, b, VectorType::const_vector(&p), "")?)
            };
        let align: V<'ctx> = self.i32c(self.element_bytes(vt.into())).into();
        let lanes_off = self.cx.i1.vec_type(w as u32).const_zero();
        let mut parts = Vec::with_capacity(step as usize);
        for k in 0..step {
            // Lane t of load k holds element k * w + t: lane (k * w + t) / step of the result
            // where that is a whole multiple of the step.
            let lane_of = |t: i64| {
                let e = k * w + t;
                (e % step == 0 && e / step < w).then_some(e / step)
            };
            let m: V<'ctx> = match mask {
                None => {
                    let bits: Vec<IntValue<'ctx>> =
                        (0..w).map(|t| self.cx.i1.const_int(lane_of(t).is_some() as u64, false)).collect();
                    VectorType::const_vector(&bits).into()
                }
                Some(m) => {
                    let pattern: Vec<i64> = (0..w).map(|t| lane_of(t).unwrap_or(w)).collect();
                    shuffle(self, m.into_vector_value(), lanes_off, &pattern)?.into()
                }
            };
            // SAFETY (inkwell marks GEPs unsafe): only computed; the masked load reads the
            // lanes in bounds.
            let at =
                unsafe { self.b().build_gep(vt.get_element_type(), addr, &[self.i64c(k * w).into_int_value()], "")? };
            let zero = vt.const_zero().into();
            let part =
                self.intrinsic("llvm.masked.load", &[vt.into(), self.cx.ptr.into()], &[at.into(), align, m, zero])?;
            parts.push(part.into_vector_value());
        }
        // Result lane i is element step * i, lane (step * i) % w of load (step * i) / w. The
        // first shuffle reads the raw loads, later ones the lanes gathered so far.
        let mut gathered = parts[0];
        for (k, part) in parts.iter().enumerate().skip(1) {
            let k = k as i64;
            let pattern: Vec<i64> = (0..w)
                .map(|i| {
                    let e = step * i;
                    match e / w {
                        from if from == k => w + e % w,
                        from if from < k => {
                            if k == 1 {
                                e
                            } else {
                                i
                            }
                        }
                        _ => 0,
                    }
                })
                .collect();
            gathered = shuffle(self, gathered, *part, &pattern)?;
        }
        Ok(gathered.into())
    }

    /// The addresses of `width` elements of type `et` from `addr`, every `step` elements, as a
    /// vector of pointers (for a gather); without `inbounds` where masked lanes may point
    /// outside the buffer.
    fn lane_addresses(&self, et: BasicTypeEnum<'ctx>, addr: PointerValue<'ctx>, step: i64, masked: bool) -> R<V<'ctx>> {
        use inkwell::llvm_sys::core::{LLVMBuildGEP2, LLVMBuildInBoundsGEP2};
        let mut offsets = [self.iota(step).as_value_ref()];
        let (b, t, p) = (self.b().as_mut_ptr(), et.as_type_ref(), addr.as_value_ref());
        // Raw C API: inkwell's GEPs take scalar indices only, and a vector of lane offsets (a
        // vector of pointers) is what `llvm.masked.gather` needs.
        // SAFETY: a GEP of live values of this module, positioned by the builder; the result
        // is a vector of pointers, which `BasicValueEnum::new` recognizes.
        unsafe {
            let gep = if masked {
                LLVMBuildGEP2(b, t, p, offsets.as_mut_ptr(), 1, c"".as_ptr())
            } else {
                LLVMBuildInBoundsGEP2(b, t, p, offsets.as_mut_ptr(), 1, c"".as_ptr())
            };
            Ok(BasicValueEnum::new(gep))
        }
    }
}

/// The kernel's vectors of `f32` lanes for the shared vector math.
impl<'ctx> LaneOps for Emitter<'_, 'ctx> {
    type V = V<'ctx>;
    type M = V<'ctx>;

    fn splat_constant(&mut self, v: f64) -> Result<V<'ctx>, String> {
        Ok(self.constant(self.cx.f32t.vec_type(self.width()).into(), v)?)
    }

    fn add(&mut self, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.op(Op::FAdd, a, b)?)
    }

    fn mul(&mut self, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.op(Op::FMul, a, b)?)
    }

    fn sub(&mut self, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.op(Op::FSub, a, b)?)
    }

    fn div(&mut self, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.op(Op::FDiv, a, b)?)
    }

    fn mul_add(&mut self, a: V<'ctx>, b: V<'ctx>, c: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.intrinsic("llvm.fma", &[a.get_type()], &[a, b, c])?)
    }

    fn min(&mut self, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.fmax(MinMax::Min, a, b)?)
    }

    fn max(&mut self, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.fmax(MinMax::Max, a, b)?)
    }

    fn round_even(&mut self, a: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.intrinsic("llvm.roundeven", &[a.get_type()], &[a])?)
    }

    fn floor(&mut self, a: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(self.intrinsic("llvm.floor", &[a.get_type()], &[a])?)
    }

    fn exp2_int(&mut self, n: V<'ctx>) -> Result<V<'ctx>, String> {
        let it: BasicTypeEnum<'ctx> = self.cx.i32.vec_type(self.width()).into();
        let n = self.b().build_cast(Op::FPToSI, n, it, "").map_err(Fail::from)?;
        let e = self.op(Op::Add, n, self.int_constant(it, 127)?)?;
        let bits = self.op(Op::Shl, e, self.int_constant(it, 23)?)?;
        let ft = self.cx.f32t.vec_type(self.width());
        Ok(self.b().build_cast(Op::BitCast, bits, ft, "").map_err(Fail::from)?)
    }

    fn compare(&mut self, cmp: Cmp, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        let p = match cmp {
            Cmp::Lt => FloatPredicate::OLT,
            Cmp::Ge => FloatPredicate::OGE,
            Cmp::Eq => FloatPredicate::OEQ,
        };
        Ok(self.fcmp(p, a, b)?)
    }

    fn choose(&mut self, m: V<'ctx>, a: V<'ctx>, b: V<'ctx>) -> Result<V<'ctx>, String> {
        Ok(Emitter::select(self, m, a, b)?)
    }

    fn split_exponent(&mut self, x: V<'ctx>) -> Result<(V<'ctx>, V<'ctx>), String> {
        let it: BasicTypeEnum<'ctx> = self.cx.i32.vec_type(self.width()).into();
        let ft: BasicTypeEnum<'ctx> = self.cx.f32t.vec_type(self.width()).into();
        let bits = self.b().build_cast(Op::BitCast, x, it, "").map_err(Fail::from)?;
        let biased = self.op(Op::LShr, bits, self.int_constant(it, 23)?)?;
        let biased = self.op(Op::And, biased, self.int_constant(it, 0xff)?)?;
        let e = self.op(Op::Sub, biased, self.int_constant(it, 127)?)?;
        let e = self.b().build_cast(Op::SIToFP, e, ft, "").map_err(Fail::from)?;
        let fraction = self.op(Op::And, bits, self.int_constant(it, 0x007f_ffff)?)?;
        let m = self.op(Op::Or, fraction, self.int_constant(it, 0x3f80_0000)?)?;
        let m = self.b().build_cast(Op::BitCast, m, ft, "").map_err(Fail::from)?;
        Ok((e, m))
    }
}
