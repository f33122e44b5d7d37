//! `nnc`, the command-line face of the nnc neural-network compiler.
//!
//! One subcommand per file in [`commands`]; shared pieces are [`model`] (loading a model file of any
//! supported format), [`shapes`] (`--shape`), [`inputs`] (where inputs come from), [`target`] (the
//! backends `--target` names), [`timed`] (the flags of `bench` and `tune`), [`tuning`]
//! (`--tuning`, `--no-tuning`) and [`tensor_io`] (`.npy` and `.pb` tensors).
//!
//! Exit codes: 0 success, 1 an error (one line `error: ...` on stderr, the chain of context
//! outermost first, each cause once), 2 a usage error (clap's), 3 outputs outside the
//! tolerance of a comparison. A panic is a bug in nnc: it is reported as an internal error and
//! exits 101.

mod commands;
mod entropy;
mod inputs;
mod model;
mod shapes;
mod target;
mod tensor_io;
mod timed;
mod tuning;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code of a run whose outputs differ from the expected ones (`nnc run --data`).
pub const EXIT_MISMATCH: u8 = 3;

/// nnc: a neural-network compiler. Reads models (.onnx, or the .nnir text form), compiles them
/// for this CPU or a GPU, runs and times them.
#[derive(Parser, Debug)]
#[command(
    name = "nnc",
    version,
    max_term_width = 100,
    after_help = "Exit codes: 0 success; 1 error (one `error:` line on stderr); 2 usage error; \
                  3 outputs outside the tolerance of a comparison."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model as verified .nnir text, every value's type annotated.
    Dump(commands::dump::DumpArgs),
    /// Run a model on inputs from files, print or save its outputs, and compare them with expected ones.
    Run(commands::run::RunArgs),
    /// Print a graph extended with the gradients of a scalar loss (reverse-mode autodiff).
    Grad(commands::grad::GradArgs),
    /// Compile a model for a target (this CPU by default) and write the bundle `nnc run` executes;
    /// with --stats, report kernels, bytes moved and operations.
    Compile(commands::compile::CompileArgs),
    /// Compile a model once, then time repeated runs: compile time, and run time statistics;
    /// with --profile, the time of each kernel.
    Bench(commands::bench::BenchArgs),
    /// Search the schedules of a model's kernels, keep the fastest correct ones in the tuning
    /// cache every compile reads, and compare the model's latency before and after.
    Tune(commands::tune::TuneArgs),
    /// Run every ONNX test case under a folder and report, per op, how many pass.
    Conformance(commands::conformance::ConformanceArgs),
    /// Post-training static quantization: calibrate activation ranges on sample inputs and write
    /// a QDQ ONNX model (int8 weights, uint8 activations), with its error against the f32 model.
    Quantize(commands::quantize::QuantizeArgs),
    /// Serve a wgsl bundle to a web browser with nnc's WebGPU runtime and an example page that
    /// runs it and shows its outputs and time per run.
    Serve(commands::serve::ServeArgs),
}

fn main() -> ExitCode {
    install_panic_hook();
    quiet_vulkan_device_selection();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` exit 0, usage errors 2.
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Dump(args) => commands::dump::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Conformance(args) => commands::conformance::run(args),
        Command::Compile(args) => commands::compile::run(args),
        Command::Grad(args) => commands::grad::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Tune(args) => commands::tune::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message_of(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error's chain of causes, outermost first, joined by `: `, leaving out a cause whose text
/// the message already holds (many errors include their cause in their own text).
fn message_of(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Mesa's Vulkan device-selection layer looks for a Wayland display to pick the GPU that drives
/// it, and where there is none (a server, CI) the Wayland library prints `error: XDG_RUNTIME_DIR
/// is invalid` on stderr, which reads like an nnc error. nnc chooses adapters itself (`--adapter`),
/// so without a display the layer is turned off. Done first, while the process has one thread.
fn quiet_vulkan_device_selection() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// Output piped into a reader that stopped early (`nnc dump big.nnir | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Reports a panic (always a bug in nnc) in one line instead of Rust's default message, unless
/// `RUST_BACKTRACE` asks for the details.
fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error in nnc (this is a bug; please report it): {msg}{at}");
    }));
}
