//! The `.nnir` text form: a printer and a parser that round-trip exactly.
//! (Being written; see ir/SPEC.md for the syntax.)
