//! The seeds mutants are made from: real inputs of every kind found under the corpus folders
//! (ONNX models, `.nnir` texts, ONNX test data beside their models), and bundles compiled from
//! a few of the models when the fuzzer starts.

use std::path::{Path, PathBuf};

/// Seeds larger than this are left out: mutants of big models mostly measure the compiler's
/// speed, not its robustness.
const MAX_SEED_BYTES: u64 = 2 << 20;

#[derive(Debug, Default)]
pub struct Corpus {
    pub onnx: Vec<PathBuf>,
    pub nnir: Vec<PathBuf>,
    /// A model and a folder of its test data (`input_N.pb`).
    pub tensors: Vec<(PathBuf, PathBuf)>,
    /// Valid bundle folders, compiled at start.
    pub bundles: Vec<PathBuf>,
}

impl Corpus {
    /// Every seed under `roots` (searched recursively; symbolic links are not followed) that
    /// nnc accepts as it is: mutants of a model nnc refuses anyway mostly test that refusal.
    pub fn discover(roots: &[PathBuf]) -> Corpus {
        let mut corpus = Corpus::default();
        for root in roots {
            walk(root, &mut |path| {
                let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_SEED_BYTES);
                match path.extension().and_then(|e| e.to_str()) {
                    Some("onnx") if small && nnc_onnx::import_file(path).is_ok() => {
                        corpus.onnx.push(path.to_path_buf());
                        let data = path.with_file_name("test_data_set_0");
                        if data.join("input_0.pb").is_file() {
                            corpus.tensors.push((path.to_path_buf(), data));
                        }
                    }
                    Some("nnir") if small && parses(path) => corpus.nnir.push(path.to_path_buf()),
                    _ => {}
                }
            });
        }
        corpus.onnx.sort();
        corpus.nnir.sort();
        corpus.tensors.sort();
        corpus
    }

    /// Models to compile into seed bundles: every one outside the ONNX node tests (the shared
    /// models small enough to be seeds), then node tests spread over the corpus, `count` in all.
    pub fn bundle_sources(&self, count: usize) -> Vec<PathBuf> {
        let (mut sources, tests): (Vec<PathBuf>, Vec<PathBuf>) =
            self.tensors.iter().map(|(m, _)| m.clone()).partition(|m| !m.to_string_lossy().contains("onnx-node"));
        sources.truncate(count);
        let step = (tests.len() / (count - sources.len()).max(1)).max(1);
        let rest = count - sources.len();
        sources.extend(tests.into_iter().step_by(step).take(rest));
        sources
    }
}

fn parses(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| nnc_ir::text::parse(&text, "seed").is_ok())
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            walk(&path, visit);
        } else if meta.is_file() {
            visit(&path);
        }
    }
}
