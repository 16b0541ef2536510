// A TypeScript/JavaScript consumer of a QMTL service over HTTP, with nothing but fetch and the
// code protoc-gen-es generates (buf.gen.ts.yaml -> gen/; docs/api/CLIENTS.md):
//   node example_client.mjs PUBLIC_URL INTERNAL_URL TOKEN
// prints one JSON object with what each call returned. tests/golden/test_cross_check.py runs it
// against a DagManagerService served by the generated Python apps.
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";

import { ErrorDetailSchema } from "./gen/qmtl/common/v1/error_pb.js";
import { TriggerGcRequestSchema, TriggerGcResponseSchema } from "./gen/qmtl/dagmanager/v1/gc_messages_pb.js";
import { GetNodeResponseSchema } from "./gen/qmtl/dagmanager/v1/node_messages_pb.js";

const PROTOBUF = "application/x-protobuf";
const JSON_TYPE = "application/json";
// The contracts version these modules were generated from (schemas/VERSION). A server of
// another major answers 412 E_CONTRACT_VERSION; without the header it serves the request.
const CONTRACTS_VERSION = "1.0.0";

const [publicUrl, internalUrl, token] = process.argv.slice(2);
if (!token) {
  console.error("usage: node example_client.mjs PUBLIC_URL INTERNAL_URL TOKEN");
  process.exit(2);
}
const headers = { authorization: `Bearer ${token}`, "qmtl-contracts-version": CONTRACTS_VERSION };

// Every error answer is one ErrorDetail, in the encoding the response's Content-Type names.
async function failure(response) {
  const type = response.headers.get("content-type") ?? "";
  const detail = type.startsWith(PROTOBUF)
    ? fromBinary(ErrorDetailSchema, new Uint8Array(await response.arrayBuffer()))
    : fromJson(ErrorDetailSchema, await response.json());
  return { status: response.status, code: detail.code, message: detail.message };
}

let speaks = null;

// GET on the public listener: JSON unless Accept asks for protobuf.
async function getNode(nodeId, accept) {
  const url = `${publicUrl}/v1/dag-manager/nodes/${encodeURIComponent(nodeId)}`;
  const response = await fetch(url, { headers: { ...headers, accept } });
  if (!response.ok) return failure(response);
  // The server names the contracts version it speaks on every answer.
  speaks = response.headers.get("qmtl-contracts-version");
  const reply =
    accept === PROTOBUF
      ? fromBinary(GetNodeResponseSchema, new Uint8Array(await response.arrayBuffer()))
      : fromJson(GetNodeResponseSchema, await response.json(), { ignoreUnknownFields: true });
  return toJson(GetNodeResponseSchema, reply);
}

// A write on the internal listener: the request message's bytes as the body.
async function triggerGc() {
  const request = create(TriggerGcRequestSchema, { dryRun: true, batchSize: 7 });
  const response = await fetch(`${internalUrl}/v1/dag-manager/internal/gc`, {
    method: "POST",
    headers: { ...headers, "content-type": PROTOBUF, accept: PROTOBUF },
    body: toBinary(TriggerGcRequestSchema, request),
  });
  if (!response.ok) return failure(response);
  const reply = fromBinary(TriggerGcResponseSchema, new Uint8Array(await response.arrayBuffer()));
  return toJson(TriggerGcResponseSchema, reply);
}

console.log(
  JSON.stringify({
    json: await getNode("blake3:0001", JSON_TYPE),
    protobuf: await getNode("blake3:0002", PROTOBUF),
    missing: await getNode("missing", PROTOBUF),
    gc: await triggerGc(),
    serverContracts: speaks,
  }),
);
