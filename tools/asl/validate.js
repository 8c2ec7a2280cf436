// AWS's own checks of Amazon States Language definitions, for make test and the local stack.
//
// stdin:  {"<name>": "<definition JSON text>", ...}
// stdout: {"<name>": ["<problem>", ...], ...}   (an empty list: both validators accept it)
//
// Two validators, because they see different things: the Amazon States Language service
// (the one behind the AWS Toolkit) reports unreachable states, missing targets and bad
// paths; asl-validator checks the schema, JSONPath syntax and resource ARNs, and answers
// with Step Functions' own codes (MISSING_TRANSITION_TARGET ...).
"use strict";

const { getLanguageService } = require("amazon-states-language-service");
const { TextDocument } = require("vscode-languageserver-textdocument");
const aslValidator = require("asl-validator");

const languageService = getLanguageService({});

async function languageServiceProblems(text) {
  const document = TextDocument.create("file:///definition.asl.json", "json", 1, text);
  const parsed = languageService.parseJSONDocument(document);
  const diagnostics = await languageService.doValidation(document, parsed);
  return diagnostics.map(
    (d) => `amazon-states-language-service: ${d.message} (line ${d.range.start.line + 1})`,
  );
}

function aslValidatorProblems(text) {
  const { isValid, errors } = aslValidator(JSON.parse(text), { checkPaths: true, checkArn: true });
  // Schema errors come from ajv ({instancePath, message}); the semantic checks carry
  // Step Functions' own code and message ({"Error code", Message}).
  const textOf = (e) =>
    e["Error code"] ? `${e["Error code"]}: ${e.Message}` : `${e.instancePath || "/"} ${e.message}`;
  return isValid ? [] : errors.map((e) => `asl-validator: ${textOf(e)}`);
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const results = {};
  for (const [name, text] of Object.entries(JSON.parse(input))) {
    results[name] = [...(await languageServiceProblems(text)), ...aslValidatorProblems(text)];
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
