//! The `.nnir` printer: one node per line, every result type and attribute spelled out, floats
//! in their shortest form that reads back to the same bits.
//!
//! The printer never panics, even on a graph that does not verify (a dangling value id prints
//! as `%"<invalid value N>"`), so it can be used to show a broken graph in an error message.

use super::lexer::is_name_char;
use super::PrintOptions;
use crate::op::format_float;
use crate::{DType, Graph, Op, TensorData, ValueId};
use half::{bf16, f16};
use std::fmt::Write;

pub(super) fn print_graph(graph: &Graph, opts: &PrintOptions) -> String {
    let mut out = String::new();
    out.push_str("graph ");
    out.push_str(&format_graph_name(&graph.name));
    out.push('(');
    let params: Vec<String> = graph.inputs.iter().map(|&id| typed_value(graph, id)).collect();
    out.push_str(&params.join(", "));
    out.push_str(") {\n");
    for node in &graph.nodes {
        out.push_str("  ");
        let results: Vec<String> = node.outputs.iter().map(|&id| typed_value(graph, id)).collect();
        out.push_str(&results.join(", "));
        out.push_str(" = ");
        match &node.op {
            Op::Constant(t) => {
                out.push_str("constant ");
                match opts.elide_constants_over {
                    Some(limit) if t.len() > limit => {
                        let _ = write!(out, "<elided {} elements>", t.len());
                    }
                    _ => write_literal(&mut out, t),
                }
            }
            op => {
                out.push_str(op.name());
                out.push('(');
                let operands: Vec<String> = node.inputs.iter().map(|&id| value_ref(graph, id)).collect();
                out.push_str(&operands.join(", "));
                out.push(')');
                let attrs = op.attrs();
                if !attrs.is_empty() {
                    let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    let _ = write!(out, " {{{}}}", attrs.join(", "));
                }
            }
        }
        out.push('\n');
    }
    let outputs: Vec<String> = graph.outputs.iter().map(|&id| value_ref(graph, id)).collect();
    let _ = writeln!(out, "  return {}", outputs.join(", "));
    out.push_str("}\n");
    out
}

/// `%name: type` for a parameter or node result.
fn typed_value(graph: &Graph, id: ValueId) -> String {
    match graph.values.get(id.index()) {
        Some(v) => format!("{}: {}", format_value_name(&v.name), v.ty),
        None => value_ref(graph, id),
    }
}

/// `%name` for an operand or output.
fn value_ref(graph: &Graph, id: ValueId) -> String {
    match graph.values.get(id.index()) {
        Some(v) => format_value_name(&v.name),
        None => format_value_name(&format!("<invalid value {}>", id.0)),
    }
}

/// `%name`, quoted as `%"..."` unless the name is only letters, digits, `_` and `.`.
pub fn format_value_name(name: &str) -> String {
    if !name.is_empty() && name.chars().all(is_name_char) {
        format!("%{name}")
    } else {
        format!("%{}", quote(name))
    }
}

/// The graph name: bare if it is an identifier (`[A-Za-z_][A-Za-z0-9_.]*`), quoted otherwise.
pub fn format_graph_name(name: &str) -> String {
    let mut chars = name.chars();
    let is_ident = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(is_name_char);
    if is_ident {
        name.to_string()
    } else {
        quote(name)
    }
}

/// `"..."` with `"` and `\` escaped; every other character stands for itself.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// An `f32` in its shortest round-tripping form; `f16` and `bf16` print through their (exact)
/// `f32` value, so they read back exactly too.
pub fn format_f32(v: f32) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        // `inf`, `-inf` and `nan` read the same at either precision.
        crate::op::format_float(v.into())
    }
}

/// `[v, v, ...]`: the elements in row-major order.
fn write_literal(out: &mut String, t: &TensorData) {
    let items: Vec<String> = match t.dtype() {
        DType::F32 => t.to_vec::<f32>().unwrap_or_default().into_iter().map(format_f32).collect(),
        DType::F64 => t.to_vec::<f64>().unwrap_or_default().into_iter().map(format_float).collect(),
        DType::F16 => t.to_vec::<f16>().unwrap_or_default().into_iter().map(|v| format_f32(v.to_f32())).collect(),
        DType::BF16 => t.to_vec::<bf16>().unwrap_or_default().into_iter().map(|v| format_f32(v.to_f32())).collect(),
        DType::Bool => t.to_vec::<bool>().unwrap_or_default().into_iter().map(|b| b.to_string()).collect(),
        DType::U64 => t.to_vec::<u64>().unwrap_or_default().into_iter().map(|v| v.to_string()).collect(),
        d if d.is_minifloat() => t.to_f64_vec().into_iter().map(|v| format_f32(v as f32)).collect(),
        _ => t.to_i64_vec().into_iter().map(|v| v.to_string()).collect(),
    };
    out.push('[');
    out.push_str(&items.join(", "));
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dim, GraphBuilder};

    #[test]
    fn nan_signs_round_trip_bit_exactly() {
        let mut b = GraphBuilder::new("g");
        let d = b.constant(TensorData::from_vec(vec![2], &[-f64::NAN, f64::NAN]));
        let f = b.constant(TensorData::from_vec(vec![2], &[-f32::NAN, f32::NAN]));
        b.output(d);
        b.output(f);
        let g = b.finish().unwrap();
        let text = crate::text::print(&g);
        assert!(text.contains("[-nan, nan]"), "{text}");
        assert_eq!(crate::text::parse(&text, "t.nnir").unwrap(), g);
    }

    #[test]
    fn names_are_quoted_only_when_needed() {
        assert_eq!(format_value_name("x.1_b"), "%x.1_b");
        assert_eq!(format_value_name("0"), "%0");
        assert_eq!(format_value_name("/layer1/Conv_output_0"), "%\"/layer1/Conv_output_0\"");
        assert_eq!(format_value_name(r#"a"b\c"#), r#"%"a\"b\\c""#);
        assert_eq!(format_value_name(""), "%\"\"");
        assert_eq!(format_graph_name("mlp.v2"), "mlp.v2");
        assert_eq!(format_graph_name("2mlp"), "\"2mlp\"");
        assert_eq!(format_graph_name(""), "\"\"");
    }

    #[test]
    fn floats_print_shortest_and_special() {
        assert_eq!(format_f32(0.1), "0.1");
        assert_eq!(format_f32(-0.0), "-0.0");
        assert_eq!(format_f32(1e-7), "1e-7");
        assert_eq!(format_f32(f32::NEG_INFINITY), "-inf");
        assert_eq!(format_f32(f32::NAN), "nan");
        assert_eq!(format_f32(-f32::NAN), "-nan");
        assert_eq!(format_f32(f16::from_f32(0.1).to_f32()), "0.099975586");
    }

    #[test]
    fn prints_every_part_of_a_graph() {
        let mut b = GraphBuilder::new("mlp");
        let x = b.input("x", DType::F32, [Dim::sym("batch"), Dim::from(2)]).unwrap();
        let w = b.constant(TensorData::from_vec(vec![2, 2], &[1.0f32, 2.5, -3.0, 4.0]));
        b.set_name(w, "w").unwrap();
        let h = b.matmul(x, w).unwrap();
        b.set_name(h, "h").unwrap();
        let r = b.softmax(h, 1).unwrap();
        b.set_name(r, "/out:0").unwrap();
        b.output(r);
        b.output(h);
        let g = b.finish().unwrap();
        let expected = "\
graph mlp(%x: f32[batch, 2]) {
  %w: f32[2, 2] = constant [1.0, 2.5, -3.0, 4.0]
  %h: f32[batch, 2] = matmul(%x, %w)
  %\"/out:0\": f32[batch, 2] = softmax(%h) {axis = 1}
  return %\"/out:0\", %h
}
";
        assert_eq!(print_graph(&g, &PrintOptions::default()), expected);
        let elided = print_graph(&g, &PrintOptions { elide_constants_over: Some(3) });
        assert!(elided.contains("%w: f32[2, 2] = constant <elided 4 elements>\n"), "{elided}");
        let kept = print_graph(&g, &PrintOptions { elide_constants_over: Some(4) });
        assert!(kept.contains("constant [1.0, 2.5, -3.0, 4.0]"), "{kept}");
    }

    #[test]
    fn literals_of_every_dtype() {
        let cases: Vec<(TensorData, &str)> = vec![
            (TensorData::from_vec(vec![3], &[1.5f64, f64::INFINITY, 1e300]), "[1.5, inf, 1e300]"),
            (TensorData::from_vec(vec![2], &[f16::from_f32(0.5), f16::NEG_INFINITY]), "[0.5, -inf]"),
            (TensorData::from_vec(vec![1], &[bf16::from_f32(3.0)]), "[3.0]"),
            (TensorData::from_vec(vec![2], &[i64::MIN, 7]), "[-9223372036854775808, 7]"),
            (TensorData::from_vec(vec![2], &[-128i8, 127]), "[-128, 127]"),
            (TensorData::from_vec(vec![1], &[255u8]), "[255]"),
            (TensorData::from_vec(vec![2], &[i16::MIN, 1]), "[-32768, 1]"),
            (TensorData::from_vec(vec![1], &[65535u16]), "[65535]"),
            (TensorData::from_vec(vec![1], &[u32::MAX]), "[4294967295]"),
            (TensorData::from_vec(vec![2], &[u64::MAX, 1 << 63]), "[18446744073709551615, 9223372036854775808]"),
            (TensorData::from_vec(vec![2], &[true, false]), "[true, false]"),
            (TensorData::from_vec(vec![0, 3], &[] as &[i32]), "[]"),
        ];
        for (t, want) in cases {
            let mut s = String::new();
            write_literal(&mut s, &t);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn broken_graphs_still_print() {
        let mut g = Graph::new("g");
        g.outputs.push(ValueId(5));
        assert!(print_graph(&g, &PrintOptions::default()).contains("return %\"<invalid value 5>\""));
    }
}
