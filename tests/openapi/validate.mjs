// validate.mjs: docs/openapi.yaml is a valid OpenAPI 3.1 document, checked
// against the specification's own JSON Schema by
// @seriousme/openapi-schema-validator.
// usage: node validate.mjs OPENAPI_YAML
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";

const file = process.argv[2];
const validator = new Validator();
const result = await validator.validate(readFileSync(file, "utf8"));
if (!result.valid) {
  console.log(JSON.stringify(result.errors, null, 2));
  console.log(`${file}: not a valid OpenAPI document`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
if (validator.version !== "3.1") {
  console.log(`${file}: OpenAPI ${validator.version}, not 3.1`);
  process.exit(1);
}
console.log(`${file}: a valid OpenAPI ${validator.version} document`);
console.log("1 passed, 0 failed");
