//! ONNX op converters: one table entry per ONNX op type, grouped by topic in the submodules.
//!
//! A converter reads its node through [`NodeCx`] and appends Graph IR ops (primitives or
//! composites) to the builder. Lowering composites to primitives is the IR's job, not ours.

mod attention;
mod cx;
mod einsum;
mod elementwise;
mod gather;
mod indexing;
mod integer_conv;
mod integer_matmul;
mod loss;
mod nn;
mod norm;
mod optimizers;
mod quantize;
mod recurrent;
mod reduce;
mod resize;
mod sampling;
mod shape;
mod signal;
mod stateful;

use cx::{blend, built_size, product, within_index_range};
pub use cx::{Fail, NodeCx, Out};

use crate::proto::NodeProto;

type Converter = fn(&mut NodeCx) -> Out;

/// Every supported ONNX op type (default domain) and its converter.
const CONVERTERS: &[(&str, Converter)] = &[
    // elementwise.rs
    ("Abs", elementwise::unary),
    ("Neg", elementwise::unary),
    ("Sign", elementwise::unary),
    ("Relu", elementwise::unary),
    ("Exp", elementwise::unary),
    ("Log", elementwise::unary),
    ("Sqrt", elementwise::unary),
    ("Reciprocal", elementwise::unary),
    ("Sin", elementwise::unary),
    ("Cos", elementwise::unary),
    ("Tan", elementwise::unary),
    ("Asin", elementwise::unary),
    ("Acos", elementwise::unary),
    ("Atan", elementwise::unary),
    ("Sinh", elementwise::unary),
    ("Cosh", elementwise::unary),
    ("Tanh", elementwise::unary),
    ("Asinh", elementwise::unary),
    ("Acosh", elementwise::unary),
    ("Atanh", elementwise::unary),
    ("Sigmoid", elementwise::unary),
    ("Erf", elementwise::unary),
    ("Floor", elementwise::unary),
    ("Ceil", elementwise::unary),
    ("Round", elementwise::unary),
    ("Not", elementwise::unary),
    ("IsNaN", elementwise::unary),
    ("IsInf", elementwise::is_inf),
    ("Add", elementwise::binary),
    ("Sub", elementwise::binary),
    ("Mul", elementwise::binary),
    ("Div", elementwise::binary),
    ("Pow", elementwise::pow),
    ("And", elementwise::binary),
    ("Or", elementwise::binary),
    ("Xor", elementwise::binary),
    ("BitwiseAnd", elementwise::binary),
    ("BitwiseOr", elementwise::binary),
    ("BitwiseXor", elementwise::binary),
    ("BitwiseNot", elementwise::unary),
    ("Equal", elementwise::binary),
    ("Less", elementwise::binary),
    ("LessOrEqual", elementwise::binary),
    ("Greater", elementwise::binary),
    ("GreaterOrEqual", elementwise::binary),
    ("Mod", elementwise::modulo),
    ("BitShift", elementwise::bit_shift),
    ("Max", elementwise::variadic),
    ("Min", elementwise::variadic),
    ("Sum", elementwise::variadic),
    ("Mean", elementwise::variadic),
    ("Where", elementwise::where_),
    ("Clip", elementwise::clip),
    ("Cast", elementwise::cast),
    ("CastLike", elementwise::cast_like),
    // sampling.rs
    ("AffineGrid", sampling::affine_grid),
    ("GridSample", sampling::grid_sample),
    ("DeformConv", sampling::deform_conv),
    ("RoiAlign", sampling::roi_align),
    // signal.rs
    ("HannWindow", signal::window),
    ("HammingWindow", signal::window),
    ("BlackmanWindow", signal::window),
    ("DFT", signal::dft),
    ("STFT", signal::stft),
    ("MelWeightMatrix", signal::mel_weight_matrix),
    // stateful.rs
    ("CausalConvWithState", stateful::causal_conv_with_state),
    ("LinearAttention", stateful::linear_attention),
    // attention.rs
    ("Attention", attention::attention),
    ("RotaryEmbedding", attention::rotary_embedding),
    // optimizers.rs (domain ai.onnx.preview.training)
    ("Adagrad", optimizers::adagrad),
    ("Adam", optimizers::adam),
    ("Momentum", optimizers::momentum),
    // quantize.rs
    ("QuantizeLinear", quantize::quantize_linear),
    ("DequantizeLinear", quantize::dequantize_linear),
    ("DynamicQuantizeLinear", quantize::dynamic_quantize_linear),
    ("MatMulInteger", quantize::matmul_integer),
    ("ConvInteger", quantize::conv_integer),
    ("QLinearMatMul", quantize::qlinear_matmul),
    ("QLinearConv", quantize::qlinear_conv),
    ("Identity", elementwise::identity),
    ("Dropout", elementwise::dropout),
    ("LeakyRelu", elementwise::activation),
    ("Elu", elementwise::activation),
    ("Selu", elementwise::activation),
    ("Celu", elementwise::activation),
    ("HardSigmoid", elementwise::activation),
    ("HardSwish", elementwise::activation),
    ("Softplus", elementwise::activation),
    ("Softsign", elementwise::activation),
    ("ThresholdedRelu", elementwise::activation),
    ("Mish", elementwise::activation),
    ("PRelu", elementwise::prelu),
    ("Gelu", elementwise::gelu),
    ("Swish", elementwise::swish),
    ("Shrink", elementwise::shrink),
    // nn.rs
    ("Conv", nn::conv),
    ("ConvTranspose", nn::conv_transpose),
    ("MaxPool", nn::pool),
    ("AveragePool", nn::pool),
    ("LpPool", nn::lp_pool),
    ("Col2Im", nn::col2im),
    ("GlobalAveragePool", nn::global_pool),
    ("GlobalMaxPool", nn::global_pool),
    ("Gemm", nn::gemm),
    ("MatMul", nn::matmul),
    ("Einsum", einsum::einsum),
    // norm.rs
    ("BatchNormalization", norm::batch_norm),
    ("LayerNormalization", norm::layer_norm),
    ("InstanceNormalization", norm::instance_norm),
    ("RMSNormalization", norm::rms_norm),
    ("GroupNormalization", norm::group_norm),
    ("LpNormalization", norm::lp_norm),
    ("MeanVarianceNormalization", norm::mean_variance_norm),
    ("LRN", norm::lrn),
    // loss.rs
    ("NegativeLogLikelihoodLoss", loss::nll_loss),
    ("SoftmaxCrossEntropyLoss", loss::softmax_cross_entropy),
    // gather.rs
    ("GatherElements", gather::gather_elements),
    ("ReverseSequence", gather::reverse_sequence),
    ("ScatterElements", gather::scatter_elements),
    ("Scatter", gather::scatter_elements),
    ("GatherND", gather::gather_nd),
    ("ScatterND", gather::scatter_nd),
    // indexing.rs
    ("Trilu", indexing::trilu),
    ("EyeLike", indexing::eye_like),
    ("OneHot", indexing::one_hot),
    ("Hardmax", indexing::hardmax),
    ("CumSum", indexing::cumulative),
    ("CumProd", indexing::cumulative),
    ("Softmax", nn::softmax),
    ("LogSoftmax", nn::softmax),
    // recurrent.rs
    ("LSTM", recurrent::recurrent),
    ("GRU", recurrent::recurrent),
    ("RNN", recurrent::recurrent),
    // reduce.rs
    ("ReduceSum", reduce::reduce),
    ("ReduceMean", reduce::reduce),
    ("ReduceMax", reduce::reduce),
    ("ReduceMin", reduce::reduce),
    ("ReduceProd", reduce::reduce),
    ("ReduceL1", reduce::reduce),
    ("ReduceL2", reduce::reduce),
    ("ReduceLogSum", reduce::reduce),
    ("ReduceLogSumExp", reduce::reduce),
    ("ReduceSumSquare", reduce::reduce),
    ("ArgMax", reduce::arg_reduce),
    ("ArgMin", reduce::arg_reduce),
    ("TopK", reduce::topk),
    // resize.rs
    ("Resize", resize::resize),
    ("Upsample", resize::resize),
    // shape.rs
    ("Constant", shape::constant),
    ("ConstantOfShape", shape::constant_of_shape),
    ("Shape", shape::shape),
    ("Size", shape::size),
    ("Reshape", shape::reshape),
    ("Flatten", shape::flatten),
    ("Squeeze", shape::squeeze),
    ("Unsqueeze", shape::unsqueeze),
    ("Transpose", shape::transpose),
    ("Concat", shape::concat),
    ("Split", shape::split),
    ("Slice", shape::slice),
    ("Gather", shape::gather),
    ("Expand", shape::expand),
    ("Tile", shape::tile),
    ("Pad", shape::pad),
    ("CenterCropPad", shape::center_crop_pad),
    ("Range", shape::range),
    ("DepthToSpace", shape::depth_to_space),
    ("SpaceToDepth", shape::space_to_depth),
];

fn lookup(op_type: &str) -> Option<Converter> {
    CONVERTERS.iter().find(|(name, _)| *name == op_type).map(|(_, f)| *f)
}

/// The ONNX op types the importer supports, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    let mut ops: Vec<&str> = CONVERTERS.iter().map(|(n, _)| *n).collect();
    ops.sort_unstable();
    ops
}

/// `Err` with a reason if nnc cannot import nodes of this type at all.
pub fn check_supported(node: &NodeProto, _opset: i64) -> Result<(), String> {
    let training_op = matches!(node.op_type(), "Adagrad" | "Adam" | "Momentum");
    match node.domain() {
        "" | "ai.onnx" if !training_op => {}
        "ai.onnx.preview.training" if training_op => {}
        domain => return Err(format!("ops of domain `{domain}` are not supported")),
    }
    match lookup(node.op_type()) {
        Some(_) => Ok(()),
        // Control flow is handled by the importer itself; sequences, optionals and data-shaped
        // ops by staged execution.
        None if matches!(node.op_type(), "If" | "Loop" | "Scan") || crate::staged::runs_on_host(node.op_type()) => {
            Ok(())
        }
        None => Err("unsupported op".into()),
    }
}

/// Whether a node whose operands are all known may be computed at import time.
pub fn foldable(node: &NodeProto) -> bool {
    // Every supported op is deterministic; random ops would not be.
    lookup(node.op_type()).is_some()
}

/// Converts one node; the returned slots line up with the node's outputs.
pub fn convert(cx: &mut NodeCx) -> Result<Vec<crate::import::Slot>, String> {
    let f = lookup(cx.node.op_type()).ok_or("unsupported op")?;
    f(cx).map_err(|Fail(m)| m)
}
