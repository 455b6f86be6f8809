// Validates worker responses against OFREP's rules for response bodies:
// bunting's own JSON Schema of them (tests/edge/ofrep/schema.json, see
// ofrep/README.md for its source), applied by the operation (method + path)
// the request hit and the status it got, as the table below says.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const schema = JSON.parse(readFileSync(fileURLToPath(new URL("./ofrep/schema.json", import.meta.url)), "utf8"));

/** A status OFREP lists without a body schema (401, 403, 429): not judged. */
const UNSPECIFIED = Symbol("no body schema");
/** A status OFREP defines as bodiless (304). */
const NO_BODY = Symbol("empty body");

/**
 * OFREP's operations and, per status it lists, the `$defs` entry of
 * schema.json the JSON body must match. Statuses not listed (405, 503, …)
 * are not OFREP's to judge.
 */
const OPERATIONS = [
  {
    name: "single-flag evaluation",
    method: "POST",
    path: /^\/ofrep\/v1\/evaluate\/flags\/[^/]+$/,
    responses: {
      200: "evaluationSuccess", 400: "evaluationFailure", 404: "flagNotFound", 500: "serverError",
      401: UNSPECIFIED, 403: UNSPECIFIED, 429: UNSPECIFIED,
    },
  },
  {
    name: "bulk evaluation",
    method: "POST",
    path: /^\/ofrep\/v1\/evaluate\/flags$/,
    responses: {
      200: "bulkSuccess", 304: NO_BODY, 400: "bulkFailure", 500: "serverError",
      401: UNSPECIFIED, 403: UNSPECIFIED, 429: UNSPECIFIED,
    },
  },
];

// allowUnionTypes and strictRequired are lints of schema style, not of
// meaning: `type: [..]` is plain 2020-12, and eventStream's "exactly one of
// url or endpoint" is a `oneOf` of `required`s naming properties declared
// one level up.
const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true, strictRequired: false });
addFormats(ajv);
ajv.addSchema(schema);

const validators = new Map();
/** The compiled validator of `$defs/<name>` of schema.json. */
export function validatorFor(name) {
  if (!(name in schema.$defs)) throw new Error(`ofrep/schema.json has no $defs/${name}`);
  if (!validators.has(name)) validators.set(name, ajv.getSchema(`${schema.$id}#/$defs/${name}`));
  return validators.get(name);
}

/**
 * The ways a response breaks OFREP: [] when it keeps to it or the request
 * is no OFREP operation (`/healthz`, `/events`, `OPTIONS`).
 */
export function ofrepViolations({ method, url, status, contentType, body }) {
  const path = new URL(url, "http://x").pathname;
  const op = OPERATIONS.find((o) => o.method === method.toUpperCase() && o.path.test(path));
  if (!op) return [];
  const rule = op.responses[status];
  if (rule === undefined || rule === UNSPECIFIED) return [];
  if (rule === NO_BODY) return body !== "" ? [`${status} with a body: ${body.slice(0, 200)}`] : [];
  if (!/^application\/json\b/.test(contentType ?? "")) return [`Content-Type ${contentType}, not application/json`];
  let value;
  try {
    value = JSON.parse(body);
  } catch (e) {
    return [`body is not JSON: ${e.message}`];
  }
  const validate = validatorFor(rule);
  if (validate(value)) return [];
  return validate.errors.map((e) => `${e.instancePath || "/"} ${e.message} (${rule}: ${e.schemaPath})`);
}

/** Throws with every violation of `response` (read from a clone). */
export async function assertOfrep(method, url, response) {
  const body = await response.clone().text();
  const problems = ofrepViolations({ method, url, status: response.status, contentType: response.headers.get("content-type"), body });
  if (problems.length) {
    throw new Error(`${method} ${url} → ${response.status} breaks the OFREP schema:\n  ${problems.join("\n  ")}\n  body: ${body.slice(0, 500)}`);
  }
}
