//! Prints the CUDA C++ of one shared model (`cargo run -p nnc-cuda --example dump_cuda -- MODEL`).

#[path = "../tests/common/models.rs"]
mod models;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "digits_mlp".into());
    let dir = nnc_testkit::models::shared_models_dir().unwrap_or_else(|e| panic!("{e}"));
    let model = nnc_testkit::models::load(&dir.join(&name));
    let program = models::program_for(&model.graph, &model.inputs).unwrap_or_else(|e| panic!("{e}"));
    print!("{}", nnc_cuda::print_program(&program).unwrap_or_else(|e| panic!("{e}")));
}
