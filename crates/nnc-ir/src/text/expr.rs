//! Expressions in `.nnir` text: tensor types (`f32[2*batch, 64]`), dimension expressions and
//! attribute values, with the limits that keep symbolic dimensions small.
//!
//! Grammar, one precedence level per function:
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-'* primary
//! primary := INT | FLOAT | IDENT | '(' expr ')' | '[' (expr (',' expr)*)? ']'
//! ```
//!
//! Values are computed while parsing (no syntax tree), so a long `a + b + c + ...` needs no
//! recursion; only parentheses and lists recurse, at most [`MAX_NESTING`] deep. Floats and
//! lists are only allowed in attribute values; in attributes `inf` and `nan` are floats.
//! `a - b*c` negates `b` before multiplying, so every coefficient [`Dim`]'s `Display` prints
//! (including `i64::MIN`, printed as `- 9223372036854775808`) reads back.

use super::lexer::{Tok, Token};
use super::parse::Parser;
use super::{MAX_DIM_DEGREE, MAX_DIM_TERMS, MAX_NESTING, MAX_RANK, MAX_SHAPE_DEGREE, MAX_SHAPE_TERMS};
use crate::dim::is_symbol_name;
use crate::{AttrValue, DType, Dim, IrError, TensorType};

/// Where an expression appears, which decides what floats and the words `inf`/`nan` mean.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A dimension in a type: integers, symbols and arithmetic only.
    Dim,
    /// An attribute value: anything.
    Attr,
}

/// The value of a (sub)expression.
enum Val {
    /// An integer literal, possibly negated; `i128` so that `-9223372036854775808` works.
    Int(i128),
    Float(f64),
    /// A bare word: a symbol, dtype, mode or `true`/`false`.
    Word(String),
    /// The result of arithmetic.
    Dim(Dim),
    List(Vec<AttrValue>),
}

/// A value and where its expression starts.
struct Item {
    val: Val,
    line: usize,
    col: usize,
}

/// Checks the limits on a whole shape (see [`MAX_SHAPE_TERMS`]); the error completes "a shape
/// that ...".
pub(super) fn check_shape_size(shape: &[Dim]) -> Result<(), String> {
    if shape.len() > MAX_RANK {
        return Err(format!("has rank {}, more than the text form allows ({MAX_RANK})", shape.len()));
    }
    let terms = shape.iter().fold(1usize, |acc, d| acc.saturating_mul(d.num_terms().max(1)));
    let degree = shape.iter().fold(0usize, |acc, d| acc.saturating_add(d.degree()));
    if terms > MAX_SHAPE_TERMS || degree > MAX_SHAPE_DEGREE {
        return Err(format!(
            "is too complex for the text form (its symbolic dimensions multiply out to more than \
             {MAX_SHAPE_TERMS} terms or degree {MAX_SHAPE_DEGREE})"
        ));
    }
    Ok(())
}

impl<'a> Parser<'a> {
    /// `dtype[dim, ...]`.
    pub(super) fn parse_type(&mut self) -> Result<TensorType, IrError> {
        let start = self.tok.clone();
        let dtype = match &self.tok.kind {
            Tok::Ident => DType::from_name(self.tok.text),
            _ => None,
        };
        let Some(dtype) = dtype else {
            return Err(self.expected("a dtype (f32, f64, f16, bf16, i64, i32, i8, u8 or bool)"));
        };
        self.advance()?;
        self.expect_punct('[', "`[` and the shape")?;
        let mut shape = Vec::new();
        if !self.tok.is_punct(']') {
            loop {
                let item = self.expr(Ctx::Dim, 0)?;
                let d = self.to_dim(&item)?;
                if d.as_const().is_some_and(|c| c < 0) {
                    return Err(self.at(item.line, item.col, format!("dimension {d} is negative")));
                }
                shape.push(d);
                if self.eat_punct(',')?.is_none() {
                    break;
                }
            }
        }
        self.expect_punct(']', "`,` or `]` in a shape")?;
        check_shape_size(&shape).map_err(|m| self.at_token(&start, format!("this shape {m}")))?;
        Ok(TensorType { dtype, shape })
    }

    /// An attribute value: `Int` for integer literals and constant arithmetic, `Float`, `Ident`
    /// for a bare word, `Dim` for arithmetic with symbols, `List`.
    pub(super) fn attr_value(&mut self) -> Result<AttrValue, IrError> {
        let item = self.expr(Ctx::Attr, 0)?;
        self.attr_from(item)
    }

    fn attr_from(&self, item: Item) -> Result<AttrValue, IrError> {
        Ok(match item.val {
            Val::Int(v) => AttrValue::Int(self.int64(v, item.line, item.col)?),
            Val::Float(v) => AttrValue::Float(v),
            Val::Word(w) => AttrValue::Ident(w),
            Val::Dim(d) => d.as_const().map(AttrValue::Int).unwrap_or(AttrValue::Dim(d)),
            Val::List(items) => AttrValue::List(items),
        })
    }

    fn int64(&self, v: i128, line: usize, col: usize) -> Result<i64, IrError> {
        i64::try_from(v).map_err(|_| self.at(line, col, format!("integer {v} does not fit in 64 bits")))
    }

    fn expr(&mut self, ctx: Ctx, depth: usize) -> Result<Item, IrError> {
        let mut acc = self.term(ctx, depth, false)?;
        loop {
            let negate = if self.tok.is_punct('+') {
                false
            } else if self.tok.is_punct('-') {
                true
            } else {
                return Ok(acc);
            };
            let op = self.advance()?;
            let rhs = self.term(ctx, depth, negate)?;
            let sum = self.to_dim(&acc)?.checked_add(&self.to_dim(&rhs)?);
            acc = self.arith_result(sum, &op, &acc)?;
        }
    }

    /// A product; `negate` negates its first factor (for `a - b*c`).
    fn term(&mut self, ctx: Ctx, depth: usize, negate: bool) -> Result<Item, IrError> {
        let mut acc = self.unary(ctx, depth)?;
        if negate {
            acc = self.negate(acc)?;
        }
        loop {
            let divide = if self.tok.is_punct('*') {
                false
            } else if self.tok.is_punct('/') {
                true
            } else {
                return Ok(acc);
            };
            let op = self.advance()?;
            let rhs = self.unary(ctx, depth)?;
            let (a, b) = (self.to_dim(&acc)?, self.to_dim(&rhs)?);
            let result = if divide {
                if b == Dim::constant(0) {
                    return Err(self.at_token(&op, format!("division of {a} by zero")));
                }
                let q = a.div_exact_dim(&b);
                if q.is_none() {
                    return Err(self.at_token(&op, format!("{a} is not exactly divisible by {b}")));
                }
                q
            } else {
                a.checked_mul(&b)
            };
            acc = self.arith_result(result, &op, &acc)?;
        }
    }

    fn unary(&mut self, ctx: Ctx, depth: usize) -> Result<Item, IrError> {
        let (line, col) = (self.tok.line, self.tok.col);
        // A loop, not recursion: `------1` must not use stack per sign.
        let mut negative = false;
        while self.eat_punct('-')?.is_some() {
            negative = !negative;
        }
        let item = self.primary(ctx, depth)?;
        if !negative {
            return Ok(item);
        }
        let negated = self.negate(item)?;
        Ok(Item { line, col, ..negated })
    }

    fn primary(&mut self, ctx: Ctx, depth: usize) -> Result<Item, IrError> {
        let tok = self.tok.clone();
        let (line, col) = (tok.line, tok.col);
        let val = match &tok.kind {
            Tok::Int => {
                let v: u64 = tok.text.parse().map_err(|_| self.expected("an integer below 2^64"))?;
                Val::Int(i128::from(v))
            }
            Tok::Float if ctx == Ctx::Attr => {
                Val::Float(tok.text.parse().map_err(|_| self.expected("a floating-point number"))?)
            }
            Tok::Ident if ctx == Ctx::Attr && tok.text == "inf" => Val::Float(f64::INFINITY),
            Tok::Ident if ctx == Ctx::Attr && tok.text == "nan" => Val::Float(f64::NAN),
            Tok::Ident => Val::Word(tok.text.to_string()),
            Tok::Punct('(') => {
                self.check_depth(depth)?;
                self.advance()?;
                let inner = self.expr(ctx, depth + 1)?;
                self.expect_punct(')', "`)` to close the `(`")?;
                return Ok(Item { line, col, ..inner });
            }
            Tok::Punct('[') if ctx == Ctx::Attr => {
                self.check_depth(depth)?;
                self.advance()?;
                let mut items = Vec::new();
                if !self.tok.is_punct(']') {
                    loop {
                        let item = self.expr(ctx, depth + 1)?;
                        items.push(self.attr_from(item)?);
                        if self.eat_punct(',')?.is_none() {
                            break;
                        }
                    }
                }
                self.expect_punct(']', "`,` or `]` in a list")?;
                return Ok(Item { val: Val::List(items), line, col });
            }
            _ => {
                return Err(self.expected(match ctx {
                    Ctx::Dim => "a dimension (an integer, a symbol, `-` or `(`)",
                    Ctx::Attr => "an attribute value (a number, a name, a dimension expression or a list)",
                }))
            }
        };
        self.advance()?;
        Ok(Item { val, line, col })
    }

    fn check_depth(&self, depth: usize) -> Result<(), IrError> {
        if depth >= MAX_NESTING {
            return Err(self.expected(&format!("at most {MAX_NESTING} levels of nested parentheses and lists")));
        }
        Ok(())
    }

    fn negate(&self, item: Item) -> Result<Item, IrError> {
        let val = match item.val {
            // |v| <= u64::MAX, so negating an i128 cannot overflow.
            Val::Int(v) => Val::Int(-v),
            Val::Float(v) => Val::Float(-v),
            Val::Word(_) | Val::Dim(_) => {
                let d = self.to_dim(&item)?;
                Val::Dim(
                    d.checked_neg()
                        .ok_or_else(|| self.at(item.line, item.col, format!("negating {d} overflows 64 bits")))?,
                )
            }
            Val::List(_) => return Err(self.at(item.line, item.col, "a list cannot be negated".into())),
        };
        Ok(Item { val, ..item })
    }

    /// The item as a dimension, or an error saying why it cannot be one.
    fn to_dim(&self, item: &Item) -> Result<Dim, IrError> {
        let err = |message: String| self.at(item.line, item.col, message);
        match &item.val {
            Val::Int(v) => Ok(Dim::constant(self.int64(*v, item.line, item.col)?)),
            Val::Word(w) if is_symbol_name(w) => Ok(Dim::sym(w)),
            Val::Word(w) => Err(err(format!(
                "`{w}` is not a dimension symbol (letters, digits and `_`, not starting with a digit)"
            ))),
            Val::Dim(d) => Ok(d.clone()),
            Val::Float(v) => Err(err(format!("the float {v} cannot be part of a dimension expression"))),
            Val::List(_) => Err(err("a list cannot be part of a dimension expression".into())),
        }
    }

    /// The result of `+ - * /` at operator `op`: overflow and oversized polynomials are errors.
    fn arith_result(&self, result: Option<Dim>, op: &Token<'_>, lhs: &Item) -> Result<Item, IrError> {
        let d = result.ok_or_else(|| self.at_token(op, "dimension arithmetic overflows 64 bits".into()))?;
        if d.num_terms() > MAX_DIM_TERMS || d.degree() > MAX_DIM_DEGREE {
            return Err(self.at_token(
                op,
                format!("dimension expression too large (more than {MAX_DIM_TERMS} terms or degree {MAX_DIM_DEGREE})"),
            ));
        }
        Ok(Item { val: Val::Dim(d), line: lhs.line, col: lhs.col })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parser_for;
    use super::*;

    fn attr(src: &str) -> Result<AttrValue, IrError> {
        let mut p = parser_for(src)?;
        let v = p.attr_value()?;
        assert_eq!(p.tok.kind, Tok::Eof, "{src}: input left over");
        Ok(v)
    }

    fn ty(src: &str) -> Result<TensorType, IrError> {
        parser_for(src)?.parse_type()
    }

    fn message(e: IrError) -> String {
        e.to_string()
    }

    fn d(s: &str) -> Dim {
        Dim::sym(s)
    }

    #[test]
    fn dimension_expressions() {
        let t = ty("f32[2*batch + 1, (a + b) * 2, batch*seq/seq, 6/3, -n + 10, a - b*c, 9223372036854775807]").unwrap();
        let two = Dim::constant(2);
        assert_eq!(
            t.shape,
            vec![
                two.clone() * d("batch") + 1.into(),
                (d("a") + d("b")) * two.clone(),
                d("batch"),
                two,
                Dim::constant(10) - d("n"),
                d("a") - d("b") * d("c"),
                Dim::constant(i64::MAX),
            ]
        );
        assert_eq!(ty("bool[]").unwrap(), TensorType::scalar(DType::Bool));
        // `Dim`'s Display reads back, including the most negative coefficient.
        let min = Dim::constant(i64::MIN);
        let dims = [d("x") + d("b") * min.clone(), d("x") + d("z") * min.clone(), d("x") + min];
        let printed = format!("i8[{}]", crate::shape::format_shape(&dims));
        assert_eq!(printed, "i8[-9223372036854775808*b + x, x - 9223372036854775808*z, x - 9223372036854775808]");
        let t = ty(&printed).unwrap();
        assert_eq!(t.shape, dims);
    }

    #[test]
    fn dimension_errors() {
        let e = message(ty("f32[batch/2]").unwrap_err());
        assert_eq!(e, "t.nnir:1:10: batch is not exactly divisible by 2");
        assert_eq!(message(ty("f32[3/0]").unwrap_err()), "t.nnir:1:6: division of 3 by zero");
        assert_eq!(message(ty("f32[1 - 3]").unwrap_err()), "t.nnir:1:5: dimension -2 is negative");
        assert_eq!(
            message(ty("f32[a.b]").unwrap_err()).split(": ").nth(1),
            Some("`a.b` is not a dimension symbol (letters, digits and `_`, not starting with a digit)")
        );
        assert_eq!(
            message(ty("f32[1.5]").unwrap_err()),
            "t.nnir:1:5: expected a dimension (an integer, a symbol, `-` or `(`), found `1.5`"
        );
        assert_eq!(
            message(ty("f32[9223372036854775807 + 1]").unwrap_err()),
            "t.nnir:1:25: dimension arithmetic overflows 64 bits"
        );
        assert_eq!(
            message(ty("f32[9223372036854775808]").unwrap_err()),
            "t.nnir:1:5: integer 9223372036854775808 does not fit in 64 bits"
        );
        assert_eq!(
            message(ty("f32[99999999999999999999]").unwrap_err()),
            "t.nnir:1:5: expected an integer below 2^64, found `99999999999999999999`"
        );
        assert!(message(
            ty("f32[(a+b+c+d+e+f+g+h)*(a+b+c+d+e+f+g+h)*(a+b+c+d+e+f+g+h)*(a+b+c+d+e+f+g+h)]").unwrap_err()
        )
        .contains("dimension expression too large"));
        let high_degree = format!("f32[{}a]", "a*".repeat(40));
        assert!(message(ty(&high_degree).unwrap_err()).contains("dimension expression too large"));
        // Each dimension is small, but together they would multiply out to 16^4 terms.
        let wide = "(a+b+c+d+e+f+g+h+i+j+k+l+m+n+o+p)";
        let shape = format!("f32[{wide}, {wide}, {wide}, {wide}]");
        assert!(message(ty(&shape).unwrap_err()).contains("t.nnir:1:1: this shape is too complex"));
        let rank = format!("f32[{}1]", "1, ".repeat(MAX_RANK));
        assert_eq!(
            message(ty(&rank).unwrap_err()),
            "t.nnir:1:1: this shape has rank 1025, more than the text form allows (1024)"
        );
        assert_eq!(ty(&format!("f32[{}1]", "1, ".repeat(MAX_RANK - 1))).unwrap().rank(), MAX_RANK);
    }

    #[test]
    fn attribute_values() {
        assert_eq!(attr("7").unwrap(), AttrValue::Int(7));
        assert_eq!(attr("-9223372036854775808").unwrap(), AttrValue::Int(i64::MIN));
        assert_eq!(attr("2 * 3 - 1").unwrap(), AttrValue::Int(5));
        assert_eq!(attr("1.5").unwrap(), AttrValue::Float(1.5));
        assert_eq!(attr("1e-5").unwrap(), AttrValue::Float(1e-5));
        assert_eq!(attr("-inf").unwrap(), AttrValue::Float(f64::NEG_INFINITY));
        assert!(matches!(attr("nan").unwrap(), AttrValue::Float(v) if v.is_nan()));
        assert!(matches!(attr("-0.0").unwrap(), AttrValue::Float(v) if v == 0.0 && v.is_sign_negative()));
        assert_eq!(attr("reflect").unwrap(), AttrValue::Ident("reflect".into()));
        assert_eq!(attr("2*batch").unwrap(), AttrValue::Dim(Dim::constant(2) * d("batch")));
        assert_eq!(attr("-b").unwrap(), AttrValue::Dim(Dim::constant(-1) * d("b")));
        assert_eq!(
            attr("[1, [], [n, true], f32]").unwrap(),
            AttrValue::List(vec![
                AttrValue::Int(1),
                AttrValue::List(vec![]),
                AttrValue::List(vec![AttrValue::Ident("n".into()), AttrValue::Ident("true".into())]),
                AttrValue::Ident("f32".into()),
            ])
        );
        // Every value prints and reads back (op.rs's Display is the printer's).
        for v in [
            AttrValue::Float(0.1),
            AttrValue::Float(1e300),
            AttrValue::Float(-5e-324),
            AttrValue::Int(i64::MIN),
            AttrValue::Dim(Dim::constant(3) * d("n") * d("n") - d("m") + Dim::constant(1)),
        ] {
            assert_eq!(attr(&v.to_string()).unwrap(), v);
        }
    }

    #[test]
    fn attribute_errors() {
        assert_eq!(message(attr("[1, 2").unwrap_err()), "t.nnir:1:6: expected `,` or `]` in a list, found end of file");
        assert_eq!(
            message(attr("1.5 * n").unwrap_err()),
            "t.nnir:1:1: the float 1.5 cannot be part of a dimension expression"
        );
        assert_eq!(
            message(attr("[1] + 1").unwrap_err()),
            "t.nnir:1:1: a list cannot be part of a dimension expression"
        );
        assert_eq!(message(attr("-[1]").unwrap_err()), "t.nnir:1:2: a list cannot be negated");
        assert_eq!(
            message(attr("18446744073709551615").unwrap_err()),
            "t.nnir:1:1: integer 18446744073709551615 does not fit in 64 bits"
        );
        assert_eq!(message(attr("(1").unwrap_err()), "t.nnir:1:3: expected `)` to close the `(`, found end of file");
    }
}
