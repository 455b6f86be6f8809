// Validates worker responses against OFREP's OpenAPI document
// (tests/edge/ofrep/openapi.yaml, see its README): the status's documented
// JSON schema, by the operation (method + path template) the request hit.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { parse as parseYaml } from "yaml";

const doc = parseYaml(readFileSync(fileURLToPath(new URL("./ofrep/openapi.yaml", import.meta.url)), "utf8"));

/** The document's schemas, with the one reading ofrep/README.md explains. */
function schemas() {
  const s = structuredClone(doc.components.schemas);
  const valueBranches = s.evaluationSuccess.allOf?.[1]?.oneOf;
  const refs = valueBranches?.map((b) => b.$ref.split("/").pop());
  const expected = ["booleanFlag", "stringFlag", "integerFlag", "floatFlag", "objectFlag", "codeDefaultFlag"];
  if (JSON.stringify(refs) !== JSON.stringify(expected) || JSON.stringify(s.codeDefaultFlag.properties) !== "{}") {
    throw new Error("tests/edge/ofrep/openapi.yaml changed shape: revisit the reading in ofrep-schema.mjs and ofrep/README.md");
  }
  s.evaluationSuccess.allOf[1] = { anyOf: valueBranches };
  s.codeDefaultFlag = { ...s.codeDefaultFlag, not: { required: ["value"] } };
  // `#/components/schemas/X` → `#/$defs/X` in one schema resource.
  return JSON.parse(JSON.stringify(s).replaceAll("#/components/schemas/", "#/$defs/"));
}

// strictRequired is a lint of schema style (a `required` naming a property
// the same subschema does not define), which the document uses on purpose.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
addFormats(ajv);
// OpenAPI's own annotations and formats.
ajv.addKeyword("example");
ajv.addFormat("float", { type: "number", validate: (n) => Number.isFinite(n) });
ajv.addSchema({ $id: "ofrep", $defs: schemas() });

/** [regex, method, responses] for each operation of the document. */
const operations = Object.entries(doc.paths).flatMap(([template, item]) => {
  const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
  return Object.entries(item).map(([method, op]) => [re, method.toUpperCase(), op.responses]);
});

const validators = new Map();
function validatorFor(schema) {
  const key = JSON.stringify(schema);
  if (!validators.has(key)) {
    validators.set(key, ajv.compile(JSON.parse(key.replaceAll("#/components/schemas/", "ofrep#/$defs/"))));
  }
  return validators.get(key);
}

/**
 * The ways a response breaks the OFREP document: [] when it keeps to it or
 * the request is no OFREP operation (`/healthz`, `/events`, `OPTIONS`).
 * Statuses the document does not list (405, 503) are not OFREP's to judge.
 */
export function ofrepViolations({ method, url, status, contentType, body }) {
  const path = new URL(url, "http://x").pathname;
  const op = operations.find(([re, m]) => m === method.toUpperCase() && re.test(path));
  if (!op) return [];
  const response = op[2][String(status)];
  const schema = response?.content?.["application/json"]?.schema;
  if (!response) return [];
  if (!schema) {
    return status === 304 && body !== "" ? [`304 with a body: ${body.slice(0, 200)}`] : [];
  }
  if (!/^application\/json\b/.test(contentType ?? "")) return [`Content-Type ${contentType}, not application/json`];
  let value;
  try {
    value = JSON.parse(body);
  } catch (e) {
    return [`body is not JSON: ${e.message}`];
  }
  const validate = validatorFor(schema);
  if (validate(value)) return [];
  return validate.errors.map((e) => `${e.instancePath || "/"} ${e.message} (${e.schemaPath})`);
}

/** Throws with every violation of `response` (read from a clone). */
export async function assertOfrep(method, url, response) {
  const body = await response.clone().text();
  const problems = ofrepViolations({ method, url, status: response.status, contentType: response.headers.get("content-type"), body });
  if (problems.length) {
    throw new Error(`${method} ${url} → ${response.status} breaks the OFREP schema:\n  ${problems.join("\n  ")}\n  body: ${body.slice(0, 500)}`);
  }
}
