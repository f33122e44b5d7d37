//! Ahead-of-time code: the machine code Cranelift produced for each kernel, kept with the
//! addresses it needs patched in, so it can be written into a bundle and loaded again by another
//! process without compiling anything; and [`LoadedImage`], the same for LLVM's linked image of
//! kernels (which the JIT loads this way too).
//!
//! Kernels are position-independent except for calls to the math helpers of [`crate::abi`]
//! (`nnc_exp`, `nnc_pow`, ...), which the non-PIC x86-64 code reaches through 8-byte absolute
//! addresses (`Abs8` relocations). Loading copies the code into fresh memory, writes each
//! helper's address of *this* process at those offsets, and makes the memory executable. Any
//! other relocation is refused when the bundle is written, so a bundle never loads into code
//! that was patched wrongly.

use crate::abi::{lib_address, KernelFn};
use crate::link::IMAGE_BASE;
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::ir::{ExternalName, Function};
use cranelift_codegen::{FinalizedRelocTarget, MachBufferFinalized};
use nnc_kernel::bundle::Relocation;
use std::collections::HashMap;

/// One kernel's machine code.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineCode {
    pub bytes: Vec<u8>,
    /// The alignment the code needs in memory.
    pub alignment: u32,
    pub relocations: Vec<Relocation>,
}

/// Takes a compiled function's code and relocations; `imports` names the functions it may call
/// (by their index in the module).
pub(crate) fn capture(
    function: &Function,
    buffer: &MachBufferFinalized<cranelift_codegen::Final>,
    imports: &HashMap<u32, &'static str>,
) -> Result<MachineCode, String> {
    let mut relocations = Vec::new();
    for r in buffer.relocs() {
        let symbol = match (&r.kind, &r.target) {
            (Reloc::Abs8, FinalizedRelocTarget::ExternalName(ExternalName::User(name))) => {
                let user = &function.params.user_named_funcs()[*name];
                imports.get(&user.index).copied()
            }
            _ => None,
        };
        let Some(symbol) = symbol else {
            return Err(format!(
                "the code has a relocation ({} to {:?}) that ahead-of-time bundles do not support",
                r.kind, r.target
            ));
        };
        relocations.push(Relocation { offset: r.offset as u64, symbol: symbol.into(), addend: r.addend });
    }
    // A helper's address written into the code as a constant would be this process's, wrong
    // in the process that loads the bundle: only relocations may name helpers.
    let bytes = buffer.data();
    for (name, address) in crate::abi::helper_addresses() {
        let needle = (address as u64).to_le_bytes();
        if bytes.windows(8).any(|w| w == needle) {
            return Err(format!("the code holds the address of helper `{name}` as a constant, not a relocation"));
        }
    }
    Ok(MachineCode { bytes: bytes.to_vec(), alignment: buffer.alignment.max(16), relocations })
}

/// Kernels loaded from machine code into executable memory owned by this value.
pub struct LoadedCode {
    _memory: memmap2::Mmap,
    functions: Vec<KernelFn>,
}

impl LoadedCode {
    /// Copies `code[range]` for every kernel into one executable mapping, patching the helper
    /// addresses. Ranges and relocation offsets are checked against the code they refer to.
    pub fn load(code: &[u8], kernels: &[(u64, u64, &[Relocation])]) -> Result<LoadedCode, String> {
        const ALIGN: usize = 64;
        let mut starts = Vec::with_capacity(kernels.len());
        let mut size = 0usize;
        for &(offset, len, _) in kernels {
            let end = offset.checked_add(len).filter(|&e| e <= code.len() as u64);
            if end.is_none() || len == 0 {
                return Err(format!("code range {offset}+{len} is outside kernels.bin ({} bytes)", code.len()));
            }
            starts.push(size);
            size = (size + len as usize).div_ceil(ALIGN) * ALIGN;
        }
        let mut memory = memmap2::MmapMut::map_anon(size.max(ALIGN)).map_err(|e| format!("cannot map memory: {e}"))?;
        for (&(offset, len, relocations), &start) in kernels.iter().zip(&starts) {
            let text = &mut memory[start..start + len as usize];
            text.copy_from_slice(&code[offset as usize..(offset + len) as usize]);
            for r in relocations {
                patch(text, r, None)?;
            }
        }
        let memory = memory.make_exec().map_err(|e| format!("cannot make code executable: {e}"))?;
        let functions = starts
            .iter()
            .map(|&s| {
                // SAFETY: the bytes at `s` are a function compiled with exactly `KernelFn`'s
                // signature, for this instruction set (checked by the caller), with its
                // relocations applied.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(memory.as_ptr().add(s)) }
            })
            .collect();
        Ok(LoadedCode { _memory: memory, functions })
    }

    pub fn function(&self, i: usize) -> KernelFn {
        self.functions[i]
    }
}

/// Writes the address `r` names at its offset in `text`: a helper of this process, or (symbol
/// [`IMAGE_BASE`]) a position in `text` itself, which an image loaded at `image` has.
fn patch(text: &mut [u8], r: &Relocation, image: Option<usize>) -> Result<(), String> {
    let address = match (r.symbol.as_str(), image) {
        (IMAGE_BASE, Some(base)) => base,
        (IMAGE_BASE, None) => return Err("a relocation to an image in code that is not one".into()),
        (name, _) => lib_address(name)
            .ok_or_else(|| format!("the code calls `{name}`, which this nnc does not provide"))?
            as usize,
    };
    let at = usize::try_from(r.offset).ok().filter(|&o| o.checked_add(8).is_some_and(|end| end <= text.len()));
    let at = at.ok_or_else(|| format!("relocation at {} is outside its code", r.offset))?;
    let value = (address as i64).wrapping_add(r.addend);
    text[at..at + 8].copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// A linked image (LLVM's kernels, see [`crate::link`]) in executable memory owned by this value.
pub struct LoadedImage {
    memory: memmap2::Mmap,
}

impl LoadedImage {
    /// Copies `bytes` into fresh memory, applies `relocations` for that address, and makes it
    /// executable.
    pub fn load<'r>(
        bytes: &[u8],
        relocations: impl IntoIterator<Item = &'r Relocation>,
    ) -> Result<LoadedImage, String> {
        let mut memory =
            memmap2::MmapMut::map_anon(bytes.len().max(64)).map_err(|e| format!("cannot map memory: {e}"))?;
        memory[..bytes.len()].copy_from_slice(bytes);
        let base = memory.as_ptr() as usize;
        for r in relocations {
            patch(&mut memory[..bytes.len()], r, Some(base))?;
        }
        let memory = memory.make_exec().map_err(|e| format!("cannot make code executable: {e}"))?;
        Ok(LoadedImage { memory })
    }

    /// The kernel whose entry point is at `entry`.
    pub fn function(&self, entry: u64) -> Result<KernelFn, String> {
        let entry = usize::try_from(entry).ok().filter(|&e| e < self.memory.len());
        let entry = entry.ok_or("an entry point outside the image")?;
        // SAFETY: `entry` is a function compiled with exactly `KernelFn`'s signature for this
        // instruction set (checked by the caller), with the image's relocations applied.
        Ok(unsafe { std::mem::transmute::<*const u8, KernelFn>(self.memory.as_ptr().add(entry)) })
    }
}

/// The host's architecture and the instruction-set extensions Cranelift would use here.
pub fn host_isa() -> Result<(String, Vec<String>), String> {
    let builder = cranelift_native::builder()?;
    let isa = builder
        .finish(cranelift_codegen::settings::Flags::new(cranelift_codegen::settings::builder()))
        .map_err(|e| e.to_string())?;
    let flags = isa.isa_flags().iter().filter(|f| f.as_bool() == Some(true)).map(|f| f.name.to_string()).collect();
    Ok((isa.triple().architecture.to_string(), flags))
}
