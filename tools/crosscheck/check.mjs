// Reads every golden fixture with protobuf-es, TypeScript's protobuf runtime, from the code that
// protoc-gen-es generated for our schemas (buf.gen.ts.yaml), and checks it against ours:
//   node check.mjs --gen DIR --fixtures DIR
// Per fixture <full.message.Name>/<stem>.binpb and .json (tests/golden/README.md):
//   binary  fromBinary -> toBinary gives the fixture's bytes again;
//   json    fromJson -> toJson gives the fixture's JSON value (proto3 JSON, compared as parsed
//           values, not text: Python writes 3.0 where JavaScript writes 3);
//   pair    the binary fixture decoded and written as JSON is the JSON fixture's value, and the
//           JSON fixture written as binary is the binary fixture's bytes. The single-form checks
//           cannot see a fixture whose value changed but still decodes; this one can.
// JSON is written with the mapping's defaults on both sides (Python's MessageToJson, protobuf-es'
// toJson): fields with implicit presence left out when unset, enums by name, lowerCamelCase.
// A difference names the fixture and the first differing field path (and byte offset); every
// difference is listed, then the run exits 1. Exit 2: bad usage or nothing to check.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { ScalarType, createRegistry, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

function usage(message) {
  console.error(`crosscheck: error: ${message}`);
  console.error("usage: node check.mjs --gen DIR --fixtures DIR");
  process.exit(2);
}

const { values: args } = parseArgs({
  options: { gen: { type: "string" }, fixtures: { type: "string" } },
  strict: true,
});
if (!args.gen || !args.fixtures) usage("--gen and --fixtures are both needed");
const genDir = path.resolve(args.gen);
const fixturesDir = path.resolve(args.fixtures);
for (const dir of [genDir, fixturesDir]) {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) usage(`${dir} is not a folder`);
}

function shown(file) {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith("..") ? file : rel;
}

// --- the generated registry ---------------------------------------------------------------------

function generatedModules(dir) {
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...generatedModules(full));
    else if (entry.name.endsWith("_pb.js")) found.push(full);
  }
  return found.sort();
}

// Every generated module exports its file descriptor as file_<path>; the registry of all of them
// is exactly the set of types a TypeScript consumer of the generated code can read.
async function generatedRegistry(dir) {
  const files = [];
  for (const module of generatedModules(dir)) {
    const exports = await import(pathToFileURL(module).href);
    for (const [name, value] of Object.entries(exports)) {
      if (name.startsWith("file_") && value?.kind === "file") files.push(value);
    }
  }
  if (!files.length) usage(`no generated *_pb.js modules under ${dir}`);
  return { registry: createRegistry(...files), fileCount: files.length };
}

// --- locating a difference ----------------------------------------------------------------------

// The field path (proto names, [i] for the i-th element of a repeated or map field) of the
// field whose encoding holds byte `offset` of `bytes`, a message of type `desc`. Fields come
// one after another, so the first one ending past `offset` holds it (its tag included).
function fieldAt(bytes, desc, offset, prefix = "") {
  const reader = new BinaryReader(bytes);
  const seen = new Map();
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    const start = reader.pos;
    reader.skip(wireType, number);
    const field = desc?.fields.find((f) => f.number === number);
    const count = seen.get(number) ?? 0;
    seen.set(number, count + 1);
    if (offset >= reader.pos) continue;
    const repeated = field && (field.fieldKind === "list" || field.fieldKind === "map");
    const name = `${prefix}${prefix ? "." : ""}${field ? field.name : `<unknown field ${number}>`}`;
    // A packed list is one record holding every element.
    if (repeated && wireType === WireType.LengthDelimited && isPackable(field)) return `${name} (packed)`;
    const here = repeated ? `${name}[${count}]` : name;
    if (wireType !== WireType.LengthDelimited || offset < start) return here;
    // Inside the length-delimited payload: descend into a message or a map entry.
    const lengthReader = new BinaryReader(bytes.subarray(start));
    const payloadLength = lengthReader.uint32();
    const payloadStart = start + lengthReader.pos;
    const payload = bytes.subarray(payloadStart, payloadStart + payloadLength);
    if (offset < payloadStart) return here;
    const isMessage = field?.fieldKind === "message" || field?.listKind === "message";
    if (isMessage) return fieldAt(payload, field.message, offset - payloadStart, here);
    if (field?.fieldKind === "map") return mapEntryAt(payload, field, offset - payloadStart, here);
    return here;
  }
  return `${prefix || "<message>"} (past its end)`;
}

function isPackable(field) {
  if (field.fieldKind !== "list" || field.listKind === "message") return false;
  return field.listKind === "enum" || ![ScalarType.STRING, ScalarType.BYTES].includes(field.scalar);
}

function mapEntryAt(bytes, field, offset, prefix) {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    const start = reader.pos;
    reader.skip(wireType, number);
    if (offset >= reader.pos) continue;
    const name = number === 1 ? "key" : number === 2 ? "value" : `<unknown field ${number}>`;
    const part = `${prefix}.${name}`;
    if (number !== 2 || field.mapKind !== "message" || offset < start) return part;
    const lengthReader = new BinaryReader(bytes.subarray(start));
    const length = lengthReader.uint32();
    const payloadStart = start + lengthReader.pos;
    if (offset < payloadStart) return part;
    const payload = bytes.subarray(payloadStart, payloadStart + length);
    return fieldAt(payload, field.message, offset - payloadStart, part);
  }
  return `${prefix} (past its end)`;
}

// First byte offset at which two encodings differ, or -1.
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function describeByteDifference(ours, theirs, desc, names = ["fixture", "protobuf-es"]) {
  const offset = firstDifference(ours, theirs);
  if (offset < 0) return null;
  // Name the field in the encoding that still has a byte at that offset (ours, if both do).
  const where = offset < ours.length ? fieldAt(ours, desc, offset) : fieldAt(theirs, desc, offset);
  const byte = (bytes) =>
    offset < bytes.length ? `0x${bytes[offset].toString(16).padStart(2, "0")}` : "end";
  return (
    `field ${where}: first difference at byte ${offset} (${names[0]} ${byte(ours)}, ` +
    `${names[1]} ${byte(theirs)}; lengths ${ours.length} and ${theirs.length})`
  );
}

// First difference between two JSON values as "$.a.b[2]: ...", or null when they are equal.
// `names` says what the two sides are in the message (the fixture and what protobuf-es wrote).
function jsonDifference(ours, theirs, at = "$", names = ["fixture", "protobuf-es"]) {
  const [a, b] = names;
  const kind = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);
  if (kind(ours) !== kind(theirs)) {
    return `${at}: ${a} has ${JSON.stringify(ours)}, ${b} has ${JSON.stringify(theirs)}`;
  }
  if (kind(ours) === "array") {
    for (let i = 0; i < Math.max(ours.length, theirs.length); i++) {
      if (i >= ours.length || i >= theirs.length) {
        return `${at}: ${a} has ${ours.length} elements, ${b} has ${theirs.length}`;
      }
      const found = jsonDifference(ours[i], theirs[i], `${at}[${i}]`, names);
      if (found) return found;
    }
    return null;
  }
  if (kind(ours) === "object") {
    const keys = [...new Set([...Object.keys(ours), ...Object.keys(theirs)])].sort();
    for (const key of keys) {
      const child = `${at}.${key}`;
      if (!(key in theirs)) return `${child}: only in ${a} (${JSON.stringify(ours[key])})`;
      if (!(key in ours)) return `${child}: only in ${b} (${JSON.stringify(theirs[key])})`;
      const found = jsonDifference(ours[key], theirs[key], child, names);
      if (found) return found;
    }
    return null;
  }
  return Object.is(ours, theirs) || ours === theirs
    ? null
    : `${at}: ${a} has ${JSON.stringify(ours)}, ${b} has ${JSON.stringify(theirs)}`;
}

// --- the checks ---------------------------------------------------------------------------------

const { registry, fileCount } = await generatedRegistry(genDir);
const failures = [];
let fixtureCount = 0;
const typesSeen = new Set();

function attempt(file, check, body) {
  try {
    const problem = body();
    if (problem) failures.push(`${shown(file)}: ${check}: ${problem}`);
  } catch (err) {
    failures.push(`${shown(file)}: ${check}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const folders = fs
  .readdirSync(fixturesDir, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();
for (const typeName of folders) {
  const folder = path.join(fixturesDir, typeName);
  const stems = [
    ...new Set(
      fs
        .readdirSync(folder)
        .filter((f) => f.endsWith(".binpb") || f.endsWith(".json"))
        .map((f) => f.replace(/\.(binpb|json)$/, "")),
    ),
  ].sort();
  if (!stems.length) continue;
  const desc = registry.getMessage(typeName);
  if (!desc) {
    failures.push(`${shown(folder)}: no message ${typeName} in the generated TypeScript (${shown(genDir)})`);
    continue;
  }
  typesSeen.add(typeName);
  for (const stem of stems) {
    const binFile = path.join(folder, `${stem}.binpb`);
    const jsonFile = path.join(folder, `${stem}.json`);
    const bin = fs.existsSync(binFile) ? new Uint8Array(fs.readFileSync(binFile)) : null;
    const json = fs.existsSync(jsonFile) ? fs.readFileSync(jsonFile, "utf8") : null;
    if (bin) {
      fixtureCount++;
      attempt(binFile, "binary -> binary", () =>
        describeByteDifference(bin, toBinary(desc, fromBinary(desc, bin)), desc),
      );
    }
    if (json !== null) {
      fixtureCount++;
      attempt(jsonFile, "json -> json", () => {
        const value = JSON.parse(json);
        return jsonDifference(value, toJson(desc, fromJson(desc, value)));
      });
    }
    if (bin && json !== null) {
      attempt(binFile, `binary -> json, against ${path.basename(jsonFile)}`, () =>
        jsonDifference(JSON.parse(json), toJson(desc, fromBinary(desc, bin)), "$", [
          "the .json",
          "the .binpb read by protobuf-es",
        ]),
      );
      attempt(jsonFile, `json -> binary, against ${path.basename(binFile)}`, () =>
        describeByteDifference(bin, toBinary(desc, fromJson(desc, JSON.parse(json))), desc, [
          "the .binpb",
          "the .json written by protobuf-es",
        ]),
      );
    }
  }
}

if (!fixtureCount) {
  console.error(`crosscheck: error: no .binpb or .json fixtures under ${fixturesDir}`);
  process.exit(2);
}
for (const failure of failures) console.error(`crosscheck: FAIL ${failure}`);
const summary =
  `${fixtureCount} fixtures of ${typesSeen.size} message types read by protobuf-es ` +
  `(${fileCount} generated files under ${shown(genDir)})`;
if (failures.length) {
  console.error(`crosscheck: ${failures.length} difference(s) in ${summary}`);
  process.exit(1);
}
console.log(`crosscheck: OK: ${summary}: bytes and JSON values identical`);
