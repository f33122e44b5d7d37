//! Tensor dimensions that are integers or expressions over named symbols.
//!
//! A [`Dim`] is a polynomial with integer coefficients over symbols such as `batch` and `seq`,
//! kept in one canonical form so that equal expressions compare equal: `batch*2 + 1` and
//! `1 + 2*batch` are the same `Dim`. Sums and products are closed; division is offered only where
//! it is exact (every coefficient divisible), because a compiled model must never guess a size.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One product of symbols (sorted, repeated for powers); the empty product is the constant term.
type Monomial = Vec<Arc<str>>;

/// A dimension: a concrete size or a polynomial over named symbols.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dim {
    /// Non-zero coefficients by monomial; a `BTreeMap` so order (and printing) is deterministic.
    terms: BTreeMap<Monomial, i64>,
}

impl Dim {
    /// A concrete dimension.
    pub fn constant(n: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if n != 0 {
            terms.insert(Vec::new(), n);
        }
        Dim { terms }
    }

    /// A named symbol such as `batch`.
    pub fn sym(name: &str) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![Arc::<str>::from(name)], 1);
        Dim { terms }
    }

    /// The value if the dimension has no symbols.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// The value as a size, if it is a non-negative constant.
    pub fn as_usize(&self) -> Option<usize> {
        self.as_const().and_then(|n| usize::try_from(n).ok())
    }

    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }

    /// The symbols this dimension mentions, sorted and without repeats.
    pub fn symbols(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = self.terms.keys().flatten().cloned().collect();
        out.sort();
        out.dedup();
        out
    }

    /// Evaluates the dimension with the given symbol values; `None` if a symbol is unbound or
    /// the arithmetic overflows.
    pub fn eval(&self, bindings: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        let mut total: i64 = 0;
        for (mono, coeff) in &self.terms {
            let mut term = *coeff;
            for s in mono {
                term = term.checked_mul(bindings(s)?)?;
            }
            total = total.checked_add(term)?;
        }
        Some(total)
    }

    /// Substitutes every bound symbol by its value.
    pub fn substitute(&self, bindings: &dyn Fn(&str) -> Option<i64>) -> Dim {
        let mut out = Dim::constant(0);
        for (mono, coeff) in &self.terms {
            let mut term = Dim::constant(*coeff);
            for s in mono {
                term = term * bindings(s).map(Dim::constant).unwrap_or_else(|| Dim::sym(s));
            }
            out = out + term;
        }
        out
    }

    /// `self / divisor` when every coefficient is divisible by the constant `divisor`.
    /// (`checked_*` because `i64::MIN / -1` overflows: that quotient is `None` too.)
    pub fn div_exact(&self, divisor: i64) -> Option<Dim> {
        if divisor == 0 {
            return None;
        }
        let mut terms = BTreeMap::new();
        for (m, c) in &self.terms {
            if c.checked_rem(divisor)? != 0 {
                return None;
            }
            terms.insert(m.clone(), c.checked_div(divisor)?);
        }
        Some(Dim { terms })
    }

    /// `self / other` where both are expressions: exact constant division, or division by a
    /// single monomial that divides every term.
    pub fn div_exact_dim(&self, other: &Dim) -> Option<Dim> {
        if let Some(c) = other.as_const() {
            return self.div_exact(c);
        }
        if other.terms.len() != 1 {
            return if self == other { Some(Dim::constant(1)) } else { None };
        }
        let (dmono, dcoeff) = other.terms.iter().next()?;
        let mut terms = BTreeMap::new();
        for (mono, coeff) in &self.terms {
            let rest = remove_factors(mono, dmono)?;
            if coeff.checked_rem(*dcoeff)? != 0 {
                return None;
            }
            terms.insert(rest, coeff.checked_div(*dcoeff)?);
        }
        Some(Dim { terms })
    }

    /// `self + rhs`, or `None` if a coefficient overflows `i64`. The operators panic on
    /// overflow; code that handles untrusted sizes (the parser, shape inference) uses these.
    pub fn checked_add(&self, rhs: &Dim) -> Option<Dim> {
        let mut out = self.clone();
        for (mono, &coeff) in &rhs.terms {
            out.checked_add_term(mono.clone(), coeff)?;
        }
        Some(out)
    }

    /// `-self`, or `None` if a coefficient is `i64::MIN`.
    pub fn checked_neg(&self) -> Option<Dim> {
        let terms = self.terms.iter().map(|(m, c)| Some((m.clone(), c.checked_neg()?))).collect::<Option<_>>()?;
        Some(Dim { terms })
    }

    /// `self - rhs`, or `None` on overflow.
    pub fn checked_sub(&self, rhs: &Dim) -> Option<Dim> {
        self.checked_add(&rhs.checked_neg()?)
    }

    /// `self * rhs`, or `None` on overflow.
    pub fn checked_mul(&self, rhs: &Dim) -> Option<Dim> {
        let mut out = Dim::constant(0);
        for (ma, ca) in &self.terms {
            for (mb, cb) in &rhs.terms {
                let mut mono: Monomial = ma.iter().chain(mb.iter()).cloned().collect();
                mono.sort();
                out.checked_add_term(mono, ca.checked_mul(*cb)?)?;
            }
        }
        Some(out)
    }

    /// How many terms the canonical polynomial has (`0` has none, `2*b + 1` has two).
    pub fn num_terms(&self) -> usize {
        self.terms.len()
    }

    /// The largest number of symbol factors in one term (`0` for constants, `2` for `b*s`).
    pub fn degree(&self) -> usize {
        self.terms.keys().map(Vec::len).max().unwrap_or(0)
    }

    fn checked_add_term(&mut self, mono: Monomial, coeff: i64) -> Option<()> {
        let entry = self.terms.entry(mono.clone()).or_insert(0);
        *entry = entry.checked_add(coeff)?;
        if *entry == 0 {
            self.terms.remove(&mono);
        }
        Some(())
    }

    /// Adds a term, saturating at the `i64` range: the operators never panic on sizes read
    /// from a file; a saturated size is rejected as too large wherever memory is planned.
    fn add_term(&mut self, mono: Monomial, coeff: i64) {
        let entry = self.terms.entry(mono).or_insert(0);
        *entry = entry.saturating_add(coeff);
        if *entry == 0 {
            self.terms.retain(|_, c| *c != 0);
        }
    }
}

/// `mono / divisor` as monomials, if every factor of `divisor` appears in `mono`.
fn remove_factors(mono: &Monomial, divisor: &Monomial) -> Option<Monomial> {
    let mut rest = mono.clone();
    for factor in divisor {
        let pos = rest.iter().position(|s| s == factor)?;
        rest.remove(pos);
    }
    Some(rest)
}

impl From<i64> for Dim {
    fn from(n: i64) -> Dim {
        Dim::constant(n)
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::constant(n as i64)
    }
}

impl From<i32> for Dim {
    fn from(n: i32) -> Dim {
        Dim::constant(n as i64)
    }
}

impl From<&str> for Dim {
    fn from(name: &str) -> Dim {
        Dim::sym(name)
    }
}

impl std::ops::Add for Dim {
    type Output = Dim;
    fn add(mut self, rhs: Dim) -> Dim {
        for (mono, coeff) in rhs.terms {
            self.add_term(mono, coeff);
        }
        self
    }
}

impl std::ops::Sub for Dim {
    type Output = Dim;
    fn sub(self, rhs: Dim) -> Dim {
        self + rhs * Dim::constant(-1)
    }
}

impl std::ops::Mul for Dim {
    type Output = Dim;
    fn mul(self, rhs: Dim) -> Dim {
        let mut out = Dim::constant(0);
        for (ma, ca) in &self.terms {
            for (mb, cb) in &rhs.terms {
                let mut mono: Monomial = ma.iter().chain(mb.iter()).cloned().collect();
                mono.sort();
                out.add_term(mono, ca.saturating_mul(*cb));
            }
        }
        out
    }
}

impl fmt::Display for Dim {
    /// Prints the canonical form: terms by decreasing degree, then by symbol name; the constant
    /// last. `2*batch*seq + batch - 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        let mut terms: Vec<(&Monomial, &i64)> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (mono, &coeff)) in terms.into_iter().enumerate() {
            let magnitude = coeff.unsigned_abs();
            if i == 0 {
                if coeff < 0 {
                    f.write_str("-")?;
                }
            } else {
                f.write_str(if coeff < 0 { " - " } else { " + " })?;
            }
            let mut parts: Vec<String> = Vec::new();
            if magnitude != 1 || mono.is_empty() {
                parts.push(magnitude.to_string());
            }
            parts.extend(mono.iter().map(|s| s.to_string()));
            f.write_str(&parts.join("*"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dim({self})")
    }
}

/// True when `name` can be a symbol in the text form: a letter or `_`, then letters, digits, `_`.
pub fn is_symbol_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_makes_equal_expressions_equal() {
        let a = Dim::sym("batch") * Dim::constant(2) + Dim::constant(1);
        let b = Dim::constant(1) + Dim::constant(2) * Dim::sym("batch");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2*batch + 1");
    }

    #[test]
    fn constants_fold() {
        let d = Dim::constant(3) * Dim::constant(4) + Dim::constant(1);
        assert_eq!(d.as_const(), Some(13));
        assert_eq!(Dim::constant(0).to_string(), "0");
        assert_eq!((Dim::sym("n") - Dim::sym("n")).as_const(), Some(0));
    }

    #[test]
    fn printing_orders_by_degree_then_name() {
        let d = Dim::constant(-1) + Dim::sym("seq") + Dim::sym("batch") * Dim::sym("seq") * 2.into();
        assert_eq!(d.to_string(), "2*batch*seq + seq - 1");
        assert_eq!((Dim::constant(0) - Dim::sym("b")).to_string(), "-b");
    }

    #[test]
    fn exact_division_only() {
        let d = Dim::sym("batch") * Dim::constant(6);
        assert_eq!(d.div_exact(3), Some(Dim::sym("batch") * Dim::constant(2)));
        assert_eq!(d.div_exact(4), None);
        assert_eq!(d.div_exact(0), None);
        assert_eq!(d.div_exact_dim(&Dim::sym("batch")), Some(Dim::constant(6)));
        assert_eq!(Dim::sym("a").div_exact_dim(&Dim::sym("b")), None);
        // i64::MIN / -1 overflows: not a panic, just no exact quotient.
        assert_eq!(Dim::constant(i64::MIN).div_exact(-1), None);
        let min_b = Dim::sym("b") * Dim::constant(i64::MIN);
        assert_eq!(min_b.div_exact_dim(&(Dim::sym("b") * Dim::constant(-1))), None);
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        let big = Dim::constant(i64::MAX);
        assert_eq!(big.checked_add(&Dim::constant(1)), None);
        assert_eq!(big.checked_mul(&Dim::constant(2)), None);
        assert_eq!(Dim::constant(i64::MIN).checked_neg(), None);
        assert_eq!(Dim::constant(i64::MIN + 1).checked_sub(&Dim::constant(2)), None);
        let d = Dim::sym("b") * 2.into() + 1.into();
        assert_eq!(d.checked_mul(&Dim::sym("s")), Some(d.clone() * Dim::sym("s")));
        assert_eq!(d.checked_sub(&d), Some(Dim::constant(0)));
        assert_eq!((d.num_terms(), d.degree()), (2, 1));
        assert_eq!((Dim::constant(0).num_terms(), Dim::constant(7).degree()), (0, 0));
    }

    #[test]
    fn eval_and_substitute() {
        let d = Dim::sym("b") * Dim::sym("s") + Dim::constant(1);
        let bind = |s: &str| match s {
            "b" => Some(2),
            "s" => Some(5),
            _ => None,
        };
        assert_eq!(d.eval(&bind), Some(11));
        let only_b = |s: &str| (s == "b").then_some(2);
        assert_eq!(d.substitute(&only_b).to_string(), "2*s + 1");
        assert_eq!(d.eval(&only_b), None);
    }
}
