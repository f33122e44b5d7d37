//! A minimal static linker for the object files LLVM writes for kernels (x86-64 ELF, large code
//! model): their sections laid out in one image that can be loaded at any address.
//!
//! Relocations between the image's own sections that are relative to the place (`R_X86_64_PC32`
//! and the like) are resolved here, once. What depends on where the image lands stays a
//! [`Relocation`] to apply at load time: 8-byte absolute addresses of the image's own bytes
//! (symbol [`IMAGE_BASE`], the large code model's constant-pool references) and of the math
//! helpers (by name). Anything else is refused, so an image never loads half-patched.

use nnc_kernel::bundle::Relocation;
use object::{Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionKind};
use std::collections::HashMap;

/// The symbol of relocations to the image's own start.
pub const IMAGE_BASE: &str = "@image";

/// Kernels compiled into one linked image.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkedKernels {
    pub image: Image,
    /// Per kernel: its entry point in the image, or why it is not in it.
    pub entries: Vec<Result<u64, String>>,
    /// Vector loops emitted as vector code.
    pub vectorized_loops: usize,
    /// The CPU features the code was built for (LLVM's `+name` list).
    pub features: String,
    /// Kernels whose code came from the compiled-code cache.
    pub cached: usize,
}

/// Sections of a linked object, ready to load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub relocations: Vec<Relocation>,
    /// Offsets of the defined function symbols, by name.
    pub symbols: HashMap<String, u64>,
}

impl Image {
    /// Appends `other` (64-byte aligned) and returns where it starts: its relocations and
    /// symbols move with it (its internal relative references are already resolved).
    pub fn append(&mut self, other: Image) -> u64 {
        let base = self.bytes.len().div_ceil(64) * 64;
        self.bytes.resize(base, 0);
        self.bytes.extend_from_slice(&other.bytes);
        let base = base as u64;
        for mut r in other.relocations {
            r.offset += base;
            if r.symbol == IMAGE_BASE {
                r.addend += base as i64;
            }
            self.relocations.push(r);
        }
        self.symbols.extend(other.symbols.into_iter().map(|(name, at)| (name, at + base)));
        base
    }
}

/// Lays out the allocated sections of ELF object `object` and resolves what it can.
pub fn link(object: &[u8]) -> Result<Image, String> {
    let file = object::File::parse(object).map_err(|e| format!("object file: {e}"))?;
    let mut image = Image::default();
    let mut bases = HashMap::new();
    for section in file.sections() {
        let loaded = matches!(
            section.kind(),
            SectionKind::Text
                | SectionKind::ReadOnlyData
                | SectionKind::ReadOnlyString
                | SectionKind::Data
                | SectionKind::UninitializedData
        );
        if !loaded || section.size() == 0 {
            continue;
        }
        let align = section.align().max(1) as usize;
        let start = image.bytes.len().div_ceil(align) * align;
        image.bytes.resize(start, 0);
        match section.kind() {
            SectionKind::UninitializedData => image.bytes.resize(start + section.size() as usize, 0),
            _ => image.bytes.extend_from_slice(section.data().map_err(|e| format!("section data: {e}"))?),
        }
        bases.insert(section.index(), start as u64);
    }
    for symbol in file.symbols() {
        if let (Some(index), Ok(name)) = (symbol.section_index(), symbol.name()) {
            if let (Some(&base), object::SymbolKind::Text) = (bases.get(&index), symbol.kind()) {
                image.symbols.insert(name.to_string(), base + symbol.address());
            }
        }
    }
    for section in file.sections() {
        let Some(&base) = bases.get(&section.index()) else { continue };
        for (offset, r) in section.relocations() {
            let place = base + offset;
            // The target: an address in the image, or a helper by name.
            let target = match r.target() {
                RelocationTarget::Section(s) => Ok(*bases.get(&s).ok_or("relocation to an unloaded section")? as i64),
                RelocationTarget::Symbol(s) => {
                    let symbol = file.symbol_by_index(s).map_err(|e| e.to_string())?;
                    match symbol.section_index() {
                        Some(index) => {
                            let b = *bases.get(&index).ok_or("relocation to an unloaded section")?;
                            Ok((b + symbol.address()) as i64)
                        }
                        None => Err(symbol.name().map_err(|e| e.to_string())?.to_string()),
                    }
                }
                _ => return Err(format!("unsupported relocation target {:?}", r.target())),
            };
            match (r.kind(), r.size(), target) {
                (RelocationKind::Absolute, 64, Ok(at)) => image.relocations.push(Relocation {
                    offset: place,
                    symbol: IMAGE_BASE.into(),
                    addend: at + r.addend(),
                }),
                (RelocationKind::Absolute, 64, Err(name)) => {
                    image.relocations.push(Relocation { offset: place, symbol: name, addend: r.addend() })
                }
                (RelocationKind::Relative | RelocationKind::PltRelative, 32, Ok(at)) => {
                    let value = i32::try_from(at + r.addend() - place as i64).map_err(|_| "relative jump too far")?;
                    let p = place as usize;
                    image
                        .bytes
                        .get_mut(p..p + 4)
                        .ok_or("relocation outside its section")?
                        .copy_from_slice(&value.to_le_bytes());
                }
                (kind, size, target) => {
                    return Err(format!("unsupported relocation {kind:?}/{size} bits to {target:?}"));
                }
            }
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize, relocations: Vec<Relocation>, symbols: &[(&str, u64)]) -> Image {
        Image {
            bytes: vec![0xcc; len],
            relocations,
            symbols: symbols.iter().map(|&(n, a)| (n.to_string(), a)).collect(),
        }
    }

    #[test]
    fn appending_moves_relocations_and_symbols_with_the_bytes() {
        let mut a = image(10, vec![Relocation { offset: 2, symbol: "nnc_exp".into(), addend: 0 }], &[("k0", 0)]);
        let b = image(
            8,
            vec![
                Relocation { offset: 0, symbol: IMAGE_BASE.into(), addend: 4 },
                Relocation { offset: 0, symbol: "nnc_tanh".into(), addend: 1 },
            ],
            &[("k1", 2)],
        );
        let base = a.append(b);
        assert_eq!(base, 64, "64-byte aligned");
        assert_eq!(a.bytes.len(), 72);
        assert_eq!(a.symbols["k0"], 0);
        assert_eq!(a.symbols["k1"], 66);
        // An address in the image moves with it; a helper's does not.
        assert_eq!(a.relocations[1], Relocation { offset: 64, symbol: IMAGE_BASE.into(), addend: 68 });
        assert_eq!(a.relocations[2], Relocation { offset: 64, symbol: "nnc_tanh".into(), addend: 1 });
    }

    #[test]
    fn what_is_not_an_object_file_is_refused() {
        assert!(link(b"not an object").unwrap_err().contains("object file"));
    }
}
