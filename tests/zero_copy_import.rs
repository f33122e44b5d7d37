//! Importing a model does not copy its weights: every large constant of the imported graph is a
//! slice of the buffer the model file was read into.

mod common;

use bytes::Bytes;
use nnc::ir::Op;

#[test]
fn weights_are_slices_of_the_file_buffer() {
    let Some(models) = common::shared_models() else { return };
    for name in ["resnet18", "transformer_encoder"] {
        let path = models.join(name).join("model.onnx");
        let file = Bytes::from(std::fs::read(&path).expect("model file"));
        let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
        let graph = nnc::onnx::import_bytes(file.clone(), name, path.parent(), &Default::default()).expect("import");
        let (mut shared, mut copied) = (0usize, Vec::new());
        for node in &graph.nodes {
            if let Op::Constant(t) = &node.op {
                // Small constants (scalars, shapes) may be built by the importer itself.
                if t.bytes().len() < 4096 {
                    continue;
                }
                if range.contains(&(t.bytes().as_ptr() as usize)) {
                    shared += t.bytes().len();
                } else {
                    copied.push(format!("%{} ({} bytes)", graph.name_of(node.outputs[0]), t.bytes().len()));
                }
            }
        }
        eprintln!("{name}: {shared} bytes of weights shared with the file buffer");
        assert!(shared > file.len() / 2, "{name}: only {shared} of {} bytes are weights in the buffer", file.len());
        assert!(copied.is_empty(), "{name}: constants copied out of the file buffer: {}", copied.join(", "));
    }
}
