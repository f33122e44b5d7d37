// The JSON Schema of a bundle's manifest.json, generated from nnc's Rust types
// (nnc_kernel::bundle::manifest_schema); do not edit: `NNC_BLESS=1 cargo test -p nnc-kernel` rewrites it.
export default {
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Manifest",
  "description": "Everything about a compiled program except the weights' bytes and the code.\n\nThe same program and options give the same manifest, byte for byte: it holds no time,\npath or other fact of the compile itself (`nnc compile --stats` reports those).",
  "type": "object",
  "properties": {
    "arena_bytes": {
      "type": "integer",
      "format": "uint64",
      "minimum": 0
    },
    "arena_lower_bound": {
      "description": "The largest total size of intermediates live at one time.",
      "type": "integer",
      "format": "uint64",
      "minimum": 0
    },
    "buffers": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/BufferEntry"
      }
    },
    "checksum": {
      "description": "The XXH3-64 checksum, in hex, of this manifest (serialized with this field empty), then\n`weights.bin`, then `files` in order: a bundle damaged or edited after it was written is\nrefused. It guards against accidents, not attacks: a bundle holds machine code, so\nrunning one is trusting whoever wrote it.",
      "type": "string"
    },
    "files": {
      "description": "The target's code files (paths relative to the folder) and their sizes, in the order the\nchecksum covers them.",
      "type": "array",
      "items": {
        "$ref": "#/$defs/FileEntry"
      }
    },
    "format": {
      "type": "integer",
      "format": "uint32",
      "minimum": 0
    },
    "inputs": {
      "description": "The inputs with the shapes the program was compiled for (symbols bound).",
      "type": "array",
      "items": {
        "$ref": "#/$defs/Interface"
      }
    },
    "kernels": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/KernelEntry"
      }
    },
    "nnc_version": {
      "description": "The nnc version that wrote the bundle.",
      "type": "string"
    },
    "outputs": {
      "type": "array",
      "items": {
        "$ref": "#/$defs/Interface"
      }
    },
    "program": {
      "type": "string"
    },
    "requires": {
      "description": "What a device must offer to run the code (for WGSL: the WebGPU features and limits the\nkernels use), checked by a runtime before it creates anything.",
      "anyOf": [
        {
          "$ref": "#/$defs/Requirements"
        },
        {
          "type": "null"
        }
      ]
    },
    "target": {
      "description": "`cpu`, `wgsl` or `cuda`.",
      "type": "string"
    },
    "target_info": {
      "description": "What the target needs beyond this (the CPU: the instruction set the code was built for).",
      "type": "object",
      "additionalProperties": {
        "type": "string"
      },
      "default": {}
    },
    "weights_bytes": {
      "type": "integer",
      "format": "uint64",
      "minimum": 0
    }
  },
  "required": [
    "format",
    "nnc_version",
    "target",
    "program",
    "inputs",
    "outputs",
    "buffers",
    "kernels",
    "arena_bytes",
    "arena_lower_bound",
    "weights_bytes",
    "files",
    "checksum"
  ],
  "$defs": {
    "BufferEntry": {
      "type": "object",
      "properties": {
        "dtype": {
          "type": "string"
        },
        "name": {
          "type": "string"
        },
        "place": {
          "$ref": "#/$defs/Place"
        },
        "shape": {
          "type": "array",
          "items": {
            "type": "integer",
            "format": "int64"
          }
        }
      },
      "required": [
        "name",
        "dtype",
        "shape",
        "place"
      ]
    },
    "Code": {
      "oneOf": [
        {
          "description": "A source or assembly file of the bundle and the function's name in it.",
          "type": "object",
          "properties": {
            "file": {
              "type": "object",
              "properties": {
                "entry": {
                  "type": "string"
                },
                "path": {
                  "type": "string"
                }
              },
              "required": [
                "path",
                "entry"
              ]
            }
          },
          "additionalProperties": false,
          "required": [
            "file"
          ]
        },
        {
          "description": "Machine code at `offset..offset + bytes` of `kernels.bin`, and the absolute addresses\nto patch in when it is loaded.",
          "type": "object",
          "properties": {
            "machine": {
              "type": "object",
              "properties": {
                "bytes": {
                  "type": "integer",
                  "format": "uint64",
                  "minimum": 0
                },
                "offset": {
                  "type": "integer",
                  "format": "uint64",
                  "minimum": 0
                },
                "relocations": {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/Relocation"
                  }
                }
              },
              "required": [
                "offset",
                "bytes",
                "relocations"
              ]
            }
          },
          "additionalProperties": false,
          "required": [
            "machine"
          ]
        },
        {
          "description": "The entry point at `entry` of the bundle's linked image (`kernels.image` for the CPU),\nloaded whole; `relocations` are the image's that lie in this kernel's function (symbol\n`@image`: the image's own start).",
          "type": "object",
          "properties": {
            "linked": {
              "type": "object",
              "properties": {
                "entry": {
                  "type": "integer",
                  "format": "uint64",
                  "minimum": 0
                },
                "relocations": {
                  "type": "array",
                  "items": {
                    "$ref": "#/$defs/Relocation"
                  }
                }
              },
              "required": [
                "entry",
                "relocations"
              ]
            }
          },
          "additionalProperties": false,
          "required": [
            "linked"
          ]
        }
      ]
    },
    "FileEntry": {
      "description": "A code file of a bundle.",
      "type": "object",
      "properties": {
        "bytes": {
          "type": "integer",
          "format": "uint64",
          "minimum": 0
        },
        "path": {
          "type": "string"
        }
      },
      "required": [
        "path",
        "bytes"
      ]
    },
    "Interface": {
      "description": "A graph input or output: name (without `%`), dtype and shape.",
      "type": "object",
      "properties": {
        "buffer": {
          "description": "For outputs: the buffer that holds it.",
          "type": "integer",
          "format": "uint",
          "default": 0,
          "minimum": 0
        },
        "dtype": {
          "type": "string"
        },
        "name": {
          "type": "string"
        },
        "shape": {
          "type": "array",
          "items": {
            "type": "integer",
            "format": "int64"
          }
        }
      },
      "required": [
        "name",
        "dtype",
        "shape"
      ]
    },
    "KernelEntry": {
      "description": "One kernel launch.",
      "type": "object",
      "properties": {
        "code": {
          "description": "Where the code is: a file of the bundle, or a range of `kernels.bin`.",
          "$ref": "#/$defs/Code"
        },
        "grid": {
          "type": "array",
          "items": {
            "type": "integer",
            "format": "uint32",
            "minimum": 0
          },
          "maxItems": 3,
          "minItems": 3
        },
        "name": {
          "type": "string"
        },
        "params": {
          "description": "Buffers bound to the kernel's global parameters, in order (indices into `buffers`).",
          "type": "array",
          "items": {
            "type": "integer",
            "format": "uint",
            "minimum": 0
          }
        },
        "work": {
          "description": "Arithmetic plus bytes moved (the cost model of [`crate::stats`]): a runtime may run\nkernels with little work on one thread rather than pay for dispatching to a pool.",
          "type": "number",
          "format": "double",
          "default": 0.0
        },
        "workgroup": {
          "type": "array",
          "items": {
            "type": "integer",
            "format": "uint32",
            "minimum": 0
          },
          "maxItems": 3,
          "minItems": 3
        }
      },
      "required": [
        "name",
        "params",
        "grid",
        "workgroup",
        "code"
      ]
    },
    "Place": {
      "description": "Where a buffer's bytes are.",
      "oneOf": [
        {
          "description": "The n-th graph input.",
          "type": "object",
          "properties": {
            "input": {
              "type": "integer",
              "format": "uint",
              "minimum": 0
            }
          },
          "additionalProperties": false,
          "required": [
            "input"
          ]
        },
        {
          "description": "`bytes` bytes at `offset` in `weights.bin`.",
          "type": "object",
          "properties": {
            "weight": {
              "type": "object",
              "properties": {
                "bytes": {
                  "type": "integer",
                  "format": "uint64",
                  "minimum": 0
                },
                "offset": {
                  "type": "integer",
                  "format": "uint64",
                  "minimum": 0
                }
              },
              "required": [
                "offset",
                "bytes"
              ]
            }
          },
          "additionalProperties": false,
          "required": [
            "weight"
          ]
        },
        {
          "description": "At this offset in the arena of intermediates.",
          "type": "object",
          "properties": {
            "arena": {
              "type": "integer",
              "format": "uint64",
              "minimum": 0
            }
          },
          "additionalProperties": false,
          "required": [
            "arena"
          ]
        },
        {
          "description": "An intermediate no kernel touches: it has no place in the arena.",
          "type": "string",
          "const": "unplaced"
        }
      ]
    },
    "Relocation": {
      "description": "An 8-byte absolute address of `symbol` + `addend` at `offset` in the kernel's code.",
      "type": "object",
      "properties": {
        "addend": {
          "type": "integer",
          "format": "int64"
        },
        "offset": {
          "type": "integer",
          "format": "uint64",
          "minimum": 0
        },
        "symbol": {
          "type": "string"
        }
      },
      "required": [
        "offset",
        "symbol",
        "addend"
      ]
    },
    "Requirements": {
      "description": "The device features and limits a bundle's code needs, named as the target's API names them\n(WebGPU's `shader-f16`, `maxStorageBuffersPerShaderStage`, ...).",
      "type": "object",
      "properties": {
        "features": {
          "type": "array",
          "items": {
            "type": "string"
          }
        },
        "limits": {
          "description": "The least value each limit must have (every limit here is a maximum the device allows).",
          "type": "object",
          "additionalProperties": {
            "type": "integer",
            "format": "uint64",
            "minimum": 0
          }
        }
      },
      "required": [
        "features",
        "limits"
      ]
    }
  }
};
