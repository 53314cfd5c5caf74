// check_responses.mjs: the responses the HTTP tests recorded (test_http.c
// and test_bad_input.py with TD_HTTP_RECORD) against docs/openapi.yaml. Each exchange is matched
// to its operation by method and path template; its status must be one
// the operation lists (or its default), its Content-Type one the response
// has, and its JSON body must validate against the response's schema
// (JSON Schema 2020-12, as OpenAPI 3.1 uses, with Ajv). A request to no
// documented path or method must answer with a problem.
// usage: node check_responses.mjs OPENAPI_YAML RECORD_FILE...
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import YAML from "yaml";

const [file, ...recordFiles] = process.argv.slice(2);
const doc = YAML.parse(readFileSync(file, "utf8"));
const ajv = new Ajv2020({ strict: false, allErrors: true });
// the components' schemas under $defs, so a response schema stands alone
const defs = JSON.parse(
  JSON.stringify(doc.components.schemas).replaceAll("#/components/schemas/", "#/$defs/"),
);
const compiled = new Map();
function validatorFor(schema) {
  const text = JSON.stringify(schema).replaceAll("#/components/schemas/", "#/$defs/");
  if (!compiled.has(text)) compiled.set(text, ajv.compile({ ...JSON.parse(text), $defs: defs }));
  return compiled.get(text);
}
function resolve(obj) {
  while (obj && obj.$ref) {
    obj = obj.$ref
      .slice(2)
      .split("/")
      .reduce((o, k) => o[k.replaceAll("~1", "/").replaceAll("~0", "~")], doc);
  }
  return obj;
}
const templates = Object.keys(doc.paths).map((template) => ({
  template,
  regex: new RegExp("^" + template.replace(/\{[^}]+\}/g, "[^/]+") + "$"),
  literal: template.split("/").filter((s) => !s.startsWith("{")).length,
}));
function operationOf(method, path) {
  const found = templates
    .filter((t) => t.regex.test(path))
    .sort((a, b) => b.literal - a.literal)[0]; // /sessions/current before /sessions/{id}
  return found ? { template: found.template, op: doc.paths[found.template][method.toLowerCase()] } : null;
}

const problem = validatorFor({ $ref: "#/components/schemas/Problem" });
const problems = [];
const covered = new Set();
let checked = 0;
const lines = recordFiles.flatMap((f) => readFileSync(f, "utf8").split("\n").filter(Boolean));
for (const line of lines) {
  const r = JSON.parse(line);
  const path = r.path.split("?")[0];
  const where = `${r.method} ${r.path} → ${r.status}`;
  const media = (r.content_type || "").split(";")[0].trim();
  checked++;
  const found = operationOf(r.method, path);
  if (!found || !found.op) {
    if (media !== "application/problem+json" || !problem(r.body))
      problems.push(`${where}: not documented, and not answered with a problem`);
    continue;
  }
  covered.add(`${r.method} ${found.template}`);
  const responses = found.op.responses;
  const response = resolve(responses[String(r.status)] ?? responses.default);
  if (!response) {
    problems.push(`${where}: status ${r.status} is not documented for ${found.template}`);
    continue;
  }
  if (!response.content) {
    if (r.body !== undefined && r.body !== "") problems.push(`${where}: a body where none is documented`);
    continue;
  }
  const content = response.content[media];
  if (!content) {
    problems.push(`${where}: Content-Type ${media} is not one of ${Object.keys(response.content)}`);
    continue;
  }
  const validate = validatorFor(content.schema);
  if (!validate(r.body)) {
    problems.push(`${where}: ${ajv.errorsText(validate.errors)}: ${JSON.stringify(r.body).slice(0, 200)}`);
  }
}
for (const p of problems) console.log("FAIL:", p);
const operations = Object.entries(doc.paths).flatMap(([t, item]) =>
  Object.keys(item).filter((k) => ["get", "post", "put", "delete"].includes(k)).map((m) => `${m.toUpperCase()} ${t}`),
);
const untested = operations.filter((o) => !covered.has(o));
console.log(`${checked} responses checked; ${covered.size} of ${operations.length} operations seen` +
  (untested.length ? ` (not here: ${untested.join(", ")})` : ""));
if (checked === 0) problems.push("no responses were recorded");
console.log(`${checked - problems.length} passed, ${problems.length} failed`);
process.exit(problems.length ? 1 : 0);
