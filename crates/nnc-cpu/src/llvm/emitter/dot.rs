//! Four-deep `u8 × i8` dot products in LLVM: the tile update an integer contraction's grouped
//! reduction makes (`acc + a0*b0 + a1*b1 + a2*b2 + a3*b3`, see `nnc_lower`'s `int8_dot`) as one
//! `vpdpbusd` per vector where the host has VNNI. The four `u8` of `a` (the same in every lane)
//! are one 32-bit word broadcast; the four `i8` of `b` per lane are one 32-bit lane of a
//! contiguous load. Signed `a` are shifted to unsigned and the excess taken off with a second
//! instruction. Anything else, or a host without the instruction, is left to the general
//! vector code (which computes the same sum lane by lane).

use super::*;

/// Products one instruction sums per lane.
const DEPTH: usize = 4;

/// One product of the update: `i32(a) * i32(b)` with `a` the same in every lane (`u8`) and `b`
/// varying (`i8`); the loads' buffers and indices, and the conditions under which each is read
/// (an edge tile's rows, `select(row < m, i32(a), 0)`, and columns, `select(column < n,
/// i32(b), 0)`), which every product of the update must share.
struct Product<'e> {
    a: (BufId, &'e [Expr]),
    /// Whether `a` is `i8` (shifted to `u8` for the instruction, and corrected).
    a_signed: bool,
    b: (BufId, &'e [Expr]),
    a_when: Option<&'e Expr>,
    b_lanes: Option<&'e Expr>,
}

impl<'a, 'ctx> Emitter<'a, 'ctx> {
    /// `acc + sum` as a dot-product instruction, or `None` where it is not one (see the
    /// module docs).
    pub(super) fn int8_dot(&mut self, acc: &Expr, sum: &Expr) -> R<Option<V<'ctx>>> {
        let name = match self.width() {
            16 => "llvm.x86.avx512.vpdpbusd.512",
            8 => "llvm.x86.avx512.vpdpbusd.256",
            _ => return Ok(None),
        };
        if acc.dtype() != DType::I32 || !self.guards.is_empty() || !crate::llvm::host_int8_dot(self.width()) {
            return Ok(None);
        }
        let Some(products) = self.products(sum) else { return Ok(None) };
        let (a_when, a_signed, b_lanes) = (products[0].a_when, products[0].a_signed, products[0].b_lanes);
        if products.iter().any(|p| p.a_when != a_when || p.a_signed != a_signed || p.b_lanes != b_lanes) {
            return Ok(None);
        }
        let (a_loads, b_loads): (Vec<_>, Vec<_>) = products.iter().map(|p| (p.a, p.b)).unzip();
        if !consecutive(&a_loads) || !consecutive(&b_loads) {
            return Ok(None);
        }
        let (lv, lanes) = self.lanes.ok_or("a dot product outside a vector loop")?;
        let (b_buf, b_index) = products[0].b;
        let flat = self.kernel.buffer(b_buf).flat_index(b_index);
        if coefficient(&flat, lv, lanes) != Some(DEPTH as i64) {
            return Ok(None);
        }
        let accumulator = self.vexpr(acc)?;
        let words = self.cx.i32.vec_type(self.width());
        let (a_buf, a_index) = products[0].a;
        let a_word = match a_when {
            None => self.a_word(a_buf, a_index)?,
            // A row past the edge reads nothing and adds zero.
            Some(c) => {
                let c = self.scalar(c)?;
                let (read, skip, merge) = (self.block("row"), self.block("past_rows"), self.block("word"));
                self.cond_br(c, read, skip)?;
                self.at(read);
                let word = self.a_word(a_buf, a_index)?;
                let read_end = self.current()?;
                self.br(merge)?;
                self.at(skip);
                self.br(merge)?;
                self.at(merge);
                self.phi(&[(word, read_end), (self.cx.i32.const_zero().into(), skip)])?
            }
        };
        // Signed bytes as unsigned ones, `a + 128` (each byte's top bit flipped); the extra
        // `128 · Σ b` is taken off below (the same for every row: LLVM computes it once).
        let flip = self.cx.i32.const_int(0x8080_8080, false);
        let a_word = if a_signed { self.b().build_xor(a_word.into_int_value(), flip, "")?.into() } else { a_word };
        let a_words = self.splat(a_word)?;
        let b_addr = self.scalar_address(b_buf, b_index)?;
        let b_words = match b_lanes {
            None => {
                let load = self.b().build_load(words, b_addr, "")?;
                set_unaligned(load)?;
                load
            }
            // Lanes outside the condition read nothing and add zero.
            Some(c) => {
                let mask = self.vexpr(c)?;
                let zero = self.int_constant(words.into(), 0)?;
                let types = [words.into(), self.cx.ptr.into()];
                self.intrinsic("llvm.masked.load", &types, &[b_addr.into(), self.i32c(1).into(), mask, zero])?
            }
        };
        let sum = self.intrinsic(name, &[], &[accumulator, a_words, b_words])?;
        if !a_signed {
            return Ok(Some(sum));
        }
        let zero = self.int_constant(words.into(), 0)?;
        let flips = self.splat(flip.into())?;
        let excess = self.intrinsic(name, &[], &[zero, flips, b_words])?;
        Ok(Some(self.binary(BinaryOp::Sub, DType::I32, sum, excess)?))
    }

    /// The four products of `sum` (`((p0 + p1) + p2) + p3`), each of the form the module docs
    /// describe.
    fn products<'e>(&self, sum: &'e Expr) -> Option<Vec<Product<'e>>> {
        let (lv, lanes) = self.lanes?;
        let mut terms: Vec<&'e Expr> = Vec::new();
        let mut rest = sum;
        while let Expr::Binary(BinaryOp::Add, left, right) = rest {
            terms.push(&**right);
            rest = left;
        }
        terms.push(rest);
        terms.reverse();
        if terms.len() != DEPTH {
            return None;
        }
        // `i32(load)` of `from`, or `select(c, i32(load), 0)`: the load's buffer and index, and
        // `c`. The load is unmasked, or masked by `c`.
        let widened = |e: &'e Expr, from: DType| {
            let (x, when) = match e {
                Expr::Select(c, x, zero) if zero.as_int() == Some(0) => (&**x, Some(&**c)),
                x => (x, None),
            };
            let Expr::Cast(DType::I32, load) = x else { return None };
            match &**load {
                Expr::Load { buf, dtype, index, mask }
                    if *dtype == from && (mask.is_none() || mask.as_deref() == when) =>
                {
                    Some(((*buf, index.as_slice()), when))
                }
                _ => None,
            }
        };
        terms
            .into_iter()
            .map(|t| {
                let Expr::Binary(BinaryOp::Mul, x, y) = t else { return None };
                if varies(x, lv, lanes) || !varies(y, lv, lanes) {
                    return None;
                }
                let a_signed = widened(x, DType::I8).is_some();
                let (a, a_when) = widened(x, if a_signed { DType::I8 } else { DType::U8 })?;
                let (b, b_lanes) = widened(y, DType::I8)?;
                Some(Product { a, a_signed, b, a_when, b_lanes })
            })
            .collect()
    }

    /// The four `u8` of `buf` from `index` on, as one 32-bit word.
    fn a_word(&mut self, buf: BufId, index: &[Expr]) -> R<V<'ctx>> {
        let addr = self.scalar_address(buf, index)?;
        let word = self.b().build_load(self.cx.i32, addr, "")?;
        set_unaligned(word)?;
        Ok(word)
    }

    /// The address of element `index` of `buf` at lane 0.
    fn scalar_address(&mut self, buf: BufId, index: &[Expr]) -> R<PointerValue<'ctx>> {
        let lanes = self.lanes.take();
        let addr = self.address(buf, index);
        self.lanes = lanes;
        addr
    }
}

/// Whether loads `j` read element `j` past load 0's, along the last axis of one buffer.
fn consecutive(loads: &[(BufId, &[Expr])]) -> bool {
    let (buf, first) = loads[0];
    loads.iter().enumerate().all(|(j, &(b, index))| b == buf && steps_from(first, index) == Some(j as i64))
}

/// How many elements along the last axis `index` is past `first` where the two differ only
/// there by a literal (`x` and `x + 2`, `3` and `5`); `Some(0)` where they are equal.
fn steps_from(first: &[Expr], index: &[Expr]) -> Option<i64> {
    let (last0, rest0) = first.split_last()?;
    let (last, rest) = index.split_last()?;
    if rest0 != rest {
        return None;
    }
    let split = |e: &Expr| -> (Option<Expr>, i64) {
        match e {
            Expr::Binary(BinaryOp::Add, x, k) if k.as_int().is_some() => (Some((**x).clone()), k.as_int().unwrap_or(0)),
            e => match e.as_int() {
                Some(k) => (None, k),
                None => (Some(e.clone()), 0),
            },
        }
    };
    let ((base0, k0), (base, k)) = (split(last0), split(last));
    (base0 == base).then_some(k - k0)
}

/// Marks a load as possibly unaligned (words of bytes sit at any byte).
fn set_unaligned(load: V<'_>) -> R<()> {
    if let Some(i) = load.as_instruction_value() {
        i.set_alignment(1).map_err(|e| format!("load alignment: {e}"))?;
    }
    Ok(())
}
