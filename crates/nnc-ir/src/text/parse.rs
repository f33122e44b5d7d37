//! The `.nnir` parser's structure: the token cursor with its error helpers, then the graph
//! header, nodes, attributes and `return`.
//!
//! The graph is built while reading: each node's op is made with [`Op::from_parts`], its result
//! types come from [`infer`] at once, so a wrong node is reported at its own line rather than by
//! the verifier afterwards. Values get ids in definition order (inputs, then node results), the
//! numbering [`Graph::canonicalize`] gives.

use super::expr::check_shape_size;
use super::lexer::{Lexer, Tok, Token};
use super::print::format_value_name;
use crate::{infer, AttrMap, Graph, IrError, Node, Op, TensorType, ValueId};
use std::collections::HashMap;

/// A token cursor over one source file, plus the graph being built.
pub(super) struct Parser<'a> {
    lexer: Lexer<'a>,
    /// The current (not yet consumed) token.
    pub(super) tok: Token<'a>,
    file: &'a str,
    graph: Graph,
    /// Where each value name was defined: its id and the position of its name.
    names: HashMap<String, (ValueId, usize, usize)>,
}

pub(super) fn parse_graph(src: &str, file: &str) -> Result<Graph, IrError> {
    let mut lexer = Lexer::new(src, file);
    let tok = lexer.next_token()?;
    let mut p = Parser { lexer, tok, file, graph: Graph::default(), names: HashMap::new() };
    p.header()?;
    p.body()?;
    Ok(p.graph)
}

/// A parser positioned at the start of `src`, for unit tests of the expression and literal
/// parsers.
#[cfg(test)]
pub(super) fn parser_for<'a>(src: &'a str) -> Result<Parser<'a>, IrError> {
    let mut lexer = Lexer::new(src, "t.nnir");
    let tok = lexer.next_token()?;
    Ok(Parser { lexer, tok, file: "t.nnir", graph: Graph::default(), names: HashMap::new() })
}

/// One result of a node as written: its name token and optional type annotation.
struct NodeResult<'a> {
    name: String,
    tok: Token<'a>,
    annotation: Option<(TensorType, Token<'a>)>,
}

impl<'a> Parser<'a> {
    // ---- cursor and errors ----

    /// Consumes the current token and returns it.
    pub(super) fn advance(&mut self) -> Result<Token<'a>, IrError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    /// Consumes the current token if it is the punctuation `c`.
    pub(super) fn eat_punct(&mut self, c: char) -> Result<Option<Token<'a>>, IrError> {
        if self.tok.is_punct(c) {
            self.advance().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Consumes punctuation `c` or fails with "expected `expected`, found <current token>".
    pub(super) fn expect_punct(&mut self, c: char, expected: &str) -> Result<Token<'a>, IrError> {
        match self.eat_punct(c)? {
            Some(t) => Ok(t),
            None => Err(self.expected(expected)),
        }
    }

    /// A grammar error at the current token.
    pub(super) fn expected(&self, expected: &str) -> IrError {
        self.expected_at(&self.tok, expected)
    }

    pub(super) fn expected_at(&self, tok: &Token<'_>, expected: &str) -> IrError {
        IrError::Parse {
            file: self.file.to_string(),
            line: tok.line,
            col: tok.col,
            expected: expected.to_string(),
            found: tok.describe(),
        }
    }

    /// A semantic error at a position.
    pub(super) fn at(&self, line: usize, col: usize, message: String) -> IrError {
        IrError::At { file: self.file.to_string(), line, col, message }
    }

    pub(super) fn at_token(&self, tok: &Token<'_>, message: String) -> IrError {
        self.at(tok.line, tok.col, message)
    }

    // ---- graph structure ----

    /// `graph NAME(%in: type, ...) {`
    fn header(&mut self) -> Result<(), IrError> {
        if !self.tok.is_ident("graph") {
            return Err(self.expected("`graph`"));
        }
        self.advance()?;
        self.graph.name = match &self.tok.kind {
            Tok::Ident => self.tok.text.to_string(),
            Tok::Str(s) => s.clone(),
            _ => return Err(self.expected("a graph name (an identifier or a quoted string)")),
        };
        self.advance()?;
        self.expect_punct('(', "`(` and the graph's inputs")?;
        if !self.tok.is_punct(')') {
            loop {
                let Tok::Value(name) = self.tok.kind.clone() else {
                    return Err(self.expected("a graph input `%name: type`"));
                };
                let tok = self.advance()?;
                self.check_new_name(&name, &tok, &[])?;
                self.expect_punct(':', "`:` and the input's type")?;
                let ty = self.parse_type()?;
                let id = self.define(name, &tok, ty);
                self.graph.inputs.push(id);
                if self.eat_punct(',')?.is_none() {
                    break;
                }
            }
        }
        self.expect_punct(')', "`,` or `)` after a graph input")?;
        self.expect_punct('{', "`{` to start the graph body")?;
        Ok(())
    }

    /// Nodes, then `return %a, ... }` and the end of the file.
    fn body(&mut self) -> Result<(), IrError> {
        while !self.tok.is_ident("return") {
            if !matches!(self.tok.kind, Tok::Value(_)) {
                return Err(self.expected("a node `%name = op(...)` or `return`"));
            }
            self.node()?;
        }
        self.advance()?;
        loop {
            let id = self.value_ref("a returned value `%name`")?;
            self.graph.outputs.push(id);
            if self.eat_punct(',')?.is_none() {
                break;
            }
        }
        self.expect_punct('}', "`,` or `}` after the returned values")?;
        if self.tok.kind != Tok::Eof {
            return Err(self.expected("end of file after the graph's closing `}`"));
        }
        Ok(())
    }

    /// A use of a defined value.
    fn value_ref(&mut self, expected: &str) -> Result<ValueId, IrError> {
        let Tok::Value(name) = &self.tok.kind else {
            return Err(self.expected(expected));
        };
        match self.names.get(name) {
            Some(&(id, _, _)) => {
                self.advance()?;
                Ok(id)
            }
            None => Err(self.at_token(&self.tok, format!("use of undefined value `{}`", format_value_name(name)))),
        }
    }

    /// Rejects empty names and names defined before (in the graph or earlier in this node).
    fn check_new_name(&self, name: &str, tok: &Token<'_>, same_node: &[NodeResult<'_>]) -> Result<(), IrError> {
        if name.is_empty() {
            return Err(self.at_token(tok, "a value name must not be empty".into()));
        }
        let earlier = self.names.get(name).map(|&(_, l, c)| (l, c));
        let earlier = earlier.or_else(|| same_node.iter().find(|r| r.name == name).map(|r| (r.tok.line, r.tok.col)));
        match earlier {
            Some((line, col)) => {
                Err(self.at_token(tok, format!("`{}` is already defined (at {line}:{col})", format_value_name(name))))
            }
            None => Ok(()),
        }
    }

    fn define(&mut self, name: String, tok: &Token<'_>, ty: TensorType) -> ValueId {
        let id = self.graph.add_value(name.clone(), ty);
        self.names.insert(name, (id, tok.line, tok.col));
        id
    }

    /// `%a[: type], ... = op(%x, ...) {attrs}` or `%c: type = constant [...]`.
    fn node(&mut self) -> Result<(), IrError> {
        let mut results: Vec<NodeResult<'a>> = Vec::new();
        loop {
            let Tok::Value(name) = self.tok.kind.clone() else {
                return Err(self.expected("a node result `%name`"));
            };
            let tok = self.advance()?;
            self.check_new_name(&name, &tok, &results)?;
            let annotation = match self.eat_punct(':')? {
                Some(_) => {
                    let at = self.tok.clone();
                    Some((self.parse_type()?, at))
                }
                None => None,
            };
            results.push(NodeResult { name, tok, annotation });
            if self.eat_punct(',')?.is_none() {
                break;
            }
        }
        self.expect_punct('=', "`,` or `=` after the node's results")?;
        if self.tok.kind != Tok::Ident {
            return Err(self.expected("an op name"));
        }
        let op_tok = self.advance()?;
        let (op, inputs) = if op_tok.text == "constant" {
            (self.constant(&op_tok, &results)?, Vec::new())
        } else {
            self.op_call(&op_tok)?
        };

        let types: Vec<&TensorType> = inputs.iter().map(|&v| self.graph.ty(v)).collect();
        let first = &results[0];
        let inferred = infer(&op, &types).map_err(|m| {
            self.at_token(&op_tok, format!("`{}` defining `{}`: {m}", op_tok.text, format_value_name(&first.name)))
        })?;
        if inferred.len() != results.len() {
            return Err(self.at_token(
                &first.tok,
                format!("`{}` defines {} value(s), the node names {}", op_tok.text, inferred.len(), results.len()),
            ));
        }
        let mut outputs = Vec::with_capacity(results.len());
        for (result, ty) in results.into_iter().zip(inferred) {
            let shown = format_value_name(&result.name);
            if let Some((declared, at)) = &result.annotation {
                if *declared != ty {
                    let message = format!("`{shown}` is annotated {declared} but `{}` gives {ty}", op_tok.text);
                    return Err(self.at_token(at, message));
                }
            }
            // Keep every value's shape within the limits later inference relies on, and catch
            // negative sizes (e.g. from `reshape`) before another op computes with them.
            if ty.shape.iter().any(|d| d.as_const().is_some_and(|c| c < 0)) {
                let message =
                    format!("`{}` gives `{shown}` the type {ty}, which has a negative dimension", op_tok.text);
                return Err(self.at_token(&op_tok, message));
            }
            check_shape_size(&ty.shape)
                .map_err(|m| self.at_token(&op_tok, format!("`{}` gives `{shown}` a shape that {m}", op_tok.text)))?;
            outputs.push(self.define(result.name, &result.tok, ty));
        }
        self.graph.nodes.push(Node { op, inputs, outputs });
        Ok(())
    }

    /// `constant [...]` (the op name already consumed).
    fn constant(&mut self, op_tok: &Token<'_>, results: &[NodeResult<'_>]) -> Result<Op, IrError> {
        let [result] = results else {
            return Err(
                self.at_token(op_tok, format!("`constant` defines one value, the node names {}", results.len()))
            );
        };
        let shown = format_value_name(&result.name);
        let Some((ty, ty_tok)) = &result.annotation else {
            let message = format!("constant `{shown}` needs a type annotation: `{shown}: f32[2] = constant [...]`");
            return Err(self.at_token(&result.tok, message));
        };
        let data = self.constant_literal(ty, ty_tok, &shown)?;
        Ok(Op::Constant(data))
    }

    /// `op(%a, ...) {key = value, ...}` (the op name already consumed).
    fn op_call(&mut self, op_tok: &Token<'a>) -> Result<(Op, Vec<ValueId>), IrError> {
        self.expect_punct('(', "`(` and the op's operands")?;
        let mut inputs = Vec::new();
        if !self.tok.is_punct(')') {
            loop {
                inputs.push(self.value_ref("an operand `%name`")?);
                if self.eat_punct(',')?.is_none() {
                    break;
                }
            }
        }
        self.expect_punct(')', "`,` or `)` after an operand")?;
        let mut attrs = AttrMap::new();
        let mut keys: Vec<Token<'a>> = Vec::new();
        if self.eat_punct('{')?.is_some() {
            if !self.tok.is_punct('}') {
                loop {
                    if self.tok.kind != Tok::Ident {
                        return Err(self.expected("an attribute name"));
                    }
                    let key = self.advance()?;
                    self.expect_punct('=', "`=` and the attribute's value")?;
                    let value = self.attr_value()?;
                    if attrs.insert(key.text.to_string(), value).is_some() {
                        return Err(self.at_token(&key, format!("attribute `{}` is given twice", key.text)));
                    }
                    keys.push(key);
                    if self.eat_punct(',')?.is_none() {
                        break;
                    }
                }
            }
            self.expect_punct('}', "`,` or `}` after an attribute")?;
        }
        let op = Op::from_parts(op_tok.text, &attrs).map_err(|message| {
            // Point at the attribute the message names, if any, else at the op.
            let at = keys.iter().find(|k| message.contains(&format!("`{}`", k.text))).unwrap_or(op_tok);
            self.at_token(at, message)
        })?;
        // Shapes given as attributes are multiplied out by inference (`reshape` compares element
        // counts): they must stay within the same limits as value shapes.
        if let Op::Reshape { shape } | Op::Expand { shape } | Op::Iota { shape, .. } = &op {
            check_shape_size(shape)
                .map_err(|m| self.at_token(op_tok, format!("`{}` attribute `shape`: the shape {m}", op_tok.text)))?;
        }
        Ok((op, inputs))
    }
}

#[cfg(test)]
mod tests {
    use crate::text::{parse, print};
    use crate::{DType, Dim, GraphBuilder, IrError, Op, TensorData};

    const EXAMPLE: &str = r#"
# a comment runs to end of line
graph mlp(%x: f32[batch, 2], %"onnx/name:0": i64[]) {
  %w: f32[2, 2] = constant [1.0, 2.5, -3.0, 4.0]
  %h: f32[batch, 2] = matmul(%x, %w)   # trailing comment
  %r: f32[batch, 2] = softmax(%h) {axis = 1}
  %s: f32[batch, 2] = slice(%r) {axes = [0], starts = [0], ends = [9223372036854775807], steps = [1]}
  return %r, %h
}
"#;

    /// Parse error parts: (line, col, expected, found).
    fn parse_error(src: &str) -> (usize, usize, String, String) {
        match parse(src, "t.nnir") {
            Err(IrError::Parse { file, line, col, expected, found }) => {
                assert_eq!(file, "t.nnir");
                (line, col, expected, found)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    /// Semantic error parts: (line, col, message).
    fn at_error(src: &str) -> (usize, usize, String) {
        match parse(src, "t.nnir") {
            Err(IrError::At { file, line, col, message }) => {
                assert_eq!(file, "t.nnir");
                (line, col, message)
            }
            other => panic!("expected a positioned error, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_example_into_the_builders_graph() {
        let g = parse(EXAMPLE, "t.nnir").unwrap();
        let mut b = GraphBuilder::new("mlp");
        let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(2)]).unwrap();
        b.input("onnx/name:0", DType::I64, [0i64; 0]).unwrap();
        let w = b.constant(TensorData::from_vec(vec![2, 2], &[1.0f32, 2.5, -3.0, 4.0]));
        let h = b.matmul(x, w).unwrap();
        let r = b.softmax(h, 1).unwrap();
        let s =
            b.op1(Op::Slice { axes: vec![0], starts: vec![0], ends: vec![i64::MAX], steps: vec![1] }, &[r]).unwrap();
        for (v, name) in [(w, "w"), (h, "h"), (r, "r"), (s, "s")] {
            b.set_name(v, name).unwrap();
        }
        b.output(r);
        b.output(h);
        assert_eq!(g, b.finish().unwrap());
        assert_eq!(parse(&print(&g), "t.nnir").unwrap(), g);
    }

    #[test]
    fn types_and_attribute_order_are_optional() {
        let src = "graph g(%x: f32[3, 4]) {
            %a = reduce_sum(%x) {keep_dims = false, axes = [1]}
            %b: f32[3] = neg(%a)
            return %b
        }";
        let g = parse(src, "t.nnir").unwrap();
        assert_eq!(g.ty(g.outputs[0]).to_string(), "f32[3]");
        assert!(print(&g).contains("%a: f32[3] = reduce_sum(%x) {axes = [1], keep_dims = false}"));
    }

    #[test]
    fn whitespace_is_free_and_quoted_graph_names_work() {
        let g = parse("graph \"my graph\"(%x:f32[2]){%y=relu(%x)return %y}", "t.nnir").unwrap();
        assert_eq!(g.name, "my graph");
        assert_eq!(print(&g), "graph \"my graph\"(%x: f32[2]) {\n  %y: f32[2] = relu(%x)\n  return %y\n}\n");
        let g = parse("graph g() { %c: i8[] = constant [-3] return %c, %c }", "t.nnir").unwrap();
        assert_eq!(g.outputs.len(), 2);
    }

    #[test]
    fn grammar_errors_say_what_was_expected_and_found() {
        let cases: &[(&str, (usize, usize), &str, &str)] = &[
            ("", (1, 1), "`graph`", "end of file"),
            ("grph g() {}", (1, 1), "`graph`", "`grph`"),
            ("graph 3() {}", (1, 7), "a graph name", "`3`"),
            ("graph g(%x f32[2]) {}", (1, 12), "`:` and the input's type", "`f32`"),
            ("graph g(%x: f33[2]) {}", (1, 13), "a dtype", "`f33`"),
            ("graph g(%x: f32[2) {}", (1, 18), "`,` or `]` in a shape", "`)`"),
            ("graph g(%x: f32[2]) {\n  relu(%x)\n}", (2, 3), "a node `%name = op(...)` or `return`", "`relu`"),
            ("graph g(%x: f32[2]) {\n  %y = (%x)\n}", (2, 8), "an op name", "`(`"),
            ("graph g(%x: f32[2]) {\n  %y = relu %x\n}", (2, 13), "`(` and the op's operands", "`%x`"),
            ("graph g(%x: f32[2]) {\n  %y = relu(%x\n}", (3, 1), "`,` or `)` after an operand", "`}`"),
            ("graph g(%x: f32[2]) {\n  %y = relu(%x) {axis 1}\n}", (2, 23), "`=` and the attribute's value", "`1`"),
            ("graph g(%x: f32[2]) {\n  return\n}", (3, 1), "a returned value `%name`", "`}`"),
            ("graph g(%x: f32[2]) {\n  return %x", (2, 12), "`,` or `}` after the returned values", "end of file"),
            ("graph g(%x: f32[2]) { return %x } x", (1, 35), "end of file after the graph's closing `}`", "`x`"),
            ("graph g(%x: f32[2]) {\n  %y = concat(%x) {axis = }\n}", (2, 27), "an attribute value", "`}`"),
        ];
        for &(src, (line, col), expected, found) in cases {
            let e = parse_error(src);
            assert_eq!((e.0, e.1), (line, col), "{src}: {e:?}");
            assert!(e.2.contains(expected), "{src}: expected {:?}, wanted {expected:?}", e.2);
            assert_eq!(e.3, found, "{src}");
        }
        let shown = parse("graph g(%x f32[2]) {}", "dir/m.nnir").unwrap_err().to_string();
        assert_eq!(shown, "dir/m.nnir:1:12: expected `:` and the input's type, found `f32`");
    }

    #[test]
    fn undefined_and_duplicate_names_are_reported_where_used() {
        let (line, col, m) = at_error("graph g(%x: f32[2]) {\n  %y = relu(%z)\n  return %y\n}");
        assert_eq!((line, col), (2, 13));
        assert_eq!(m, "use of undefined value `%z`");
        let (line, col, m) = at_error("graph g(%x: f32[2]) {\n  %y = relu(%x)\n  return %q\n}");
        assert_eq!((line, col, m.as_str()), (3, 10, "use of undefined value `%q`"));
        // A node cannot use its own result.
        assert!(at_error("graph g(%x: f32[2]) { %y = relu(%y) return %y }").2.contains("undefined value `%y`"));

        let (line, col, m) = at_error("graph g(%x: f32[2], %x: f32[3]) { return %x }");
        assert_eq!((line, col, m.as_str()), (1, 21, "`%x` is already defined (at 1:9)"));
        let (line, col, m) = at_error("graph g(%x: f32[2]) {\n  %x = relu(%x)\n  return %x\n}");
        assert_eq!((line, col, m.as_str()), (2, 3, "`%x` is already defined (at 1:9)"));
        assert!(at_error("graph g(%x: f32[2]) { %\"\" = relu(%x) return %x }").2.contains("must not be empty"));
        let e = parse("graph g(%x: f32[2]) { %a, %a = relu(%x) return %x }", "t.nnir").unwrap_err().to_string();
        assert_eq!(e, "t.nnir:1:27: `%a` is already defined (at 1:23)");
    }

    #[test]
    fn semantic_errors_name_the_op_and_value() {
        let src = "graph g(%x: f32[2, 3], %w: f32[4, 5]) {\n  %h: f32[2, 5] = matmul(%x, %w)\n  return %h\n}";
        let (line, col, m) = at_error(src);
        assert_eq!((line, col), (2, 19));
        assert!(m.starts_with("`matmul` defining `%h`: contraction dimensions differ"), "{m}");

        let src = "graph g(%x: f32[2, 3]) {\n  %h: f32[3, 2] = relu(%x)\n  return %h\n}";
        let (line, col, m) = at_error(src);
        assert_eq!((line, col), (2, 7));
        assert_eq!(m, "`%h` is annotated f32[3, 2] but `relu` gives f32[2, 3]");

        let (line, col, m) = at_error("graph g(%x: f32[2]) {\n  %y = frobnicate(%x)\n  return %y\n}");
        assert_eq!((line, col, m.as_str()), (2, 8, "unknown op `frobnicate`"));

        let (line, col, m) = at_error("graph g(%x: f32[2]) {\n  %y = concat(%x)\n  return %y\n}");
        assert_eq!((line, col, m.as_str()), (2, 8, "`concat` needs attribute `axis`"));
        // Errors about a given attribute point at it.
        let src = "graph g(%x: f32[2]) {\n  %y = concat(%x) {axis = 0, bogus = 1}\n  return %y\n}";
        assert_eq!(at_error(src), (2, 30, "`concat` has no attribute `bogus`".to_string()));
        let src = "graph g(%x: f32[2]) {\n  %y = concat(%x) {axis = 1.5}\n  return %y\n}";
        let (line, col, m) = at_error(src);
        assert_eq!((line, col), (2, 20));
        assert!(m.contains("`concat` attribute `axis`: expected an integer, found `1.5`"), "{m}");
        let src = "graph g(%x: f32[2]) {\n  %y = concat(%x) {axis = 0, axis = 0}\n  return %y\n}";
        assert_eq!(at_error(src), (2, 30, "attribute `axis` is given twice".to_string()));

        let src = "graph g(%x: f32[4]) {\n  %y = reshape(%x) {shape = [-2, -2]}\n  return %y\n}";
        let (line, col, m) = at_error(src);
        assert_eq!((line, col), (2, 8));
        assert!(m.contains("negative dimension"), "{m}");

        let src = "graph g(%x: f32[2]) {\n  %a, %b = relu(%x)\n  return %a\n}";
        assert_eq!(at_error(src), (2, 3, "`relu` defines 1 value(s), the node names 2".to_string()));
    }

    #[test]
    fn constant_errors() {
        let (line, col, m) = at_error("graph g() {\n  %c = constant [1.0]\n  return %c\n}");
        assert_eq!((line, col), (2, 3));
        assert!(m.contains("constant `%c` needs a type annotation"), "{m}");
        let (line, col, m) = at_error("graph g() {\n  %c: f32[n] = constant [1.0]\n  return %c\n}");
        assert_eq!((line, col, m.as_str()), (2, 7, "constant `%c` needs a static shape, found f32[n]"));
        let (line, col, m) = at_error("graph g() {\n  %c: f32[2] = constant <elided 2 elements>\n  return %c\n}");
        assert_eq!((line, col), (2, 25));
        assert!(m.contains("elided when this file was printed"), "{m}");
        let (line, col, m) = at_error("graph g() {\n  %c: f32[2, 2] = constant [1, 2, 3]\n  return %c\n}");
        assert_eq!((line, col, m.as_str()), (2, 36, "constant `%c` of type f32[2, 2] needs 4 elements, found 3"));
        let (line, col, m) = at_error("graph g() {\n  %c: f32[1] = constant [1, 2]\n  return %c\n}");
        assert_eq!((line, col), (2, 29));
        assert!(m.contains("needs 1 elements; this is one more"), "{m}");
        let (_, _, m) = at_error("graph g() { %a, %b: f32[1] = constant [1] return %a }");
        assert!(m.contains("`constant` defines one value, the node names 2"), "{m}");
        let (line, col, expected, found) = parse_error("graph g() { %c: f32[1] = constant(1.0) return %c }");
        assert_eq!((line, col, found.as_str()), (1, 34, "`(`"));
        assert!(expected.contains("`[` and the constant's elements"));
    }

    #[test]
    fn huge_claimed_sizes_are_rejected_before_allocating() {
        // 10^15 elements: fine as a shape, but the literal has one element.
        let src = "graph g() { %c: f32[1000000, 1000000000] = constant [1.0] return %c }";
        assert!(at_error(src).2.contains("needs 1000000000000000 elements, found 1"));
        let src = "graph g() { %c: f32[4294967296, 4294967296, 0] = constant [] return %c }";
        assert!(at_error(src).2.contains("element count of f32[4294967296, 4294967296, 0] overflows"));
        // Shape arithmetic in inference overflows into an error, not a panic.
        let src = "graph g(%x: f32[4294967296, 4294967296]) { %y = reshape(%x) {shape = [1]} return %y }";
        assert!(at_error(src).2.contains("overflows 64 bits"));
        let src = "graph g(%x: f32[9223372036854775807]) {
            %y = pad(%x) {pads = [1, 0], mode = constant, value = 0.0} return %y }";
        assert!(at_error(src).2.contains("overflows 64 bits"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("graph g(%x: f32[{}1{}]) {{ return %x }}", "(".repeat(100), ")".repeat(100));
        let (_, col, expected, found) = parse_error(&deep);
        assert_eq!((col, found.as_str()), (17 + 64, "`(`"));
        assert!(expected.contains("at most 64 levels"), "{expected}");
        let lists = format!("graph g(%x: f32[2]) {{ %y = relu(%x) {{a = {}}} return %y }}", "[".repeat(1000));
        assert!(parse_error(&lists).2.contains("at most 64 levels"));
        // Long flat expressions are fine: no recursion per operator.
        let long = format!("graph g(%x: f32[{}1]) {{ return %x }}", "1 + ".repeat(10_000));
        let g = parse(&long, "t.nnir").unwrap();
        assert_eq!(g.ty(g.outputs[0]).to_string(), "f32[10001]");
    }
}
