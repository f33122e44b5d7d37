// A JSON Schema (draft 2020-12) validator for the keywords nnc's manifest schema uses:
// `$ref` to `#/$defs/...`, `type`, `properties`, `required`, `additionalProperties`, `items`,
// `minItems`, `maxItems`, `minimum`, `maximum`, `const`, `enum`, `oneOf`, `anyOf`, and the integer
// `format`s Rust types map to. A keyword it does not know is an error, so a schema that grows a
// new kind of rule cannot pass unchecked. `manifest.schema.js` is generated from the Rust
// types (`nnc_kernel::bundle::manifest_schema`).

const KNOWN = new Set([
  '$schema', '$defs', '$ref', 'title', 'description', 'default', 'type', 'properties', 'required',
  'additionalProperties', 'items', 'minItems', 'maxItems', 'minimum', 'maximum', 'const', 'enum',
  'oneOf', 'anyOf', 'format',
]);

const FORMATS = {
  uint: (v) => v >= 0,
  uint8: (v) => v >= 0 && v <= 0xff,
  uint16: (v) => v >= 0 && v <= 0xffff,
  uint32: (v) => v >= 0 && v <= 0xffffffff,
  uint64: (v) => v >= 0,
  int: () => true,
  int8: (v) => v >= -0x80 && v <= 0x7f,
  int16: (v) => v >= -0x8000 && v <= 0x7fff,
  int32: (v) => v >= -0x80000000 && v <= 0x7fffffff,
  int64: () => true,
  float: () => true,
  double: () => true,
};

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function hasType(v, t) {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

/**
 * Every way `value` breaks `schema`, each as "path: what" (empty: it conforms).
 * @param {object} schema the root schema (its `$defs` resolve `$ref`s)
 * @param {unknown} value
 * @param {string} [path] how errors name the value's root
 * @returns {string[]}
 */
export function validate(schema, value, path = 'manifest') {
  const errors = [];
  check(schema, schema, value, path, errors);
  return errors;
}

function check(root, schema, value, path, errors) {
  if (schema === true) return;
  if (schema === false) {
    errors.push(`${path}: not allowed`);
    return;
  }
  for (const key of Object.keys(schema)) {
    if (!KNOWN.has(key)) throw new Error(`the manifest schema uses \`${key}\`, which this validator does not know`);
  }
  if (schema.$ref !== undefined) {
    const prefix = '#/$defs/';
    if (!schema.$ref.startsWith(prefix) || !root.$defs || !(schema.$ref.slice(prefix.length) in root.$defs)) {
      throw new Error(`the manifest schema refers to \`${schema.$ref}\`, which it does not define`);
    }
    check(root, root.$defs[schema.$ref.slice(prefix.length)], value, path, errors);
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => hasType(value, t))) {
      errors.push(`${path}: ${typeOf(value)} where ${types.join(' or ')} is expected`);
      return;
    }
  }
  if (schema.const !== undefined && value !== schema.const) {
    errors.push(`${path}: ${JSON.stringify(value)} where ${JSON.stringify(schema.const)} is expected`);
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) {
    errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: ${value} < ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: ${value} > ${schema.maximum}`);
    const format = FORMATS[schema.format];
    if (schema.format !== undefined && format && !format(value)) {
      errors.push(`${path}: ${value} is not a ${schema.format}`);
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      errors.push(`${path}: ${value.length} items, fewer than ${schema.minItems}`);
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      errors.push(`${path}: ${value.length} items, more than ${schema.maxItems}`);
    }
    if (schema.items !== undefined) {
      value.forEach((item, i) => check(root, schema.items, item, `${path}[${i}]`, errors));
    }
  }
  if (typeOf(value) === 'object') {
    for (const key of schema.required ?? []) {
      if (!(key in value)) errors.push(`${path}: \`${key}\` is missing`);
    }
    const properties = schema.properties ?? {};
    for (const [key, item] of Object.entries(value)) {
      if (key in properties) {
        check(root, properties[key], item, `${path}.${key}`, errors);
      } else if (schema.additionalProperties !== undefined) {
        if (schema.additionalProperties === false) errors.push(`${path}: \`${key}\` is not a field it has`);
        else check(root, schema.additionalProperties, item, `${path}.${key}`, errors);
      }
    }
  }
  for (const [keyword, needed] of [['oneOf', 1], ['anyOf', 0]]) {
    if (schema[keyword] === undefined) continue;
    const results = schema[keyword].map((option) => {
      const e = [];
      check(root, option, value, path, e);
      return e;
    });
    const passing = results.filter((e) => e.length === 0).length;
    if (needed === 1 ? passing !== 1 : passing === 0) {
      const closest = results.reduce((a, b) => (b.length < a.length ? b : a));
      errors.push(
        passing > 1
          ? `${path}: matches ${passing} of the alternatives where one is expected`
          : `${path}: matches none of the ${results.length} alternatives (the closest: ${closest.join('; ')})`,
      );
    }
  }
}
