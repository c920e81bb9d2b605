// Resolves flags through the official OpenFeature server SDK and its OFREP provider.
// Input (stdin, JSON): {"baseUrl", "headers": {...}, "evaluations": [{"key", "type",
// "default", "context"}]}. Output (stdout, JSON): one evaluation-details object each.
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl: input.baseUrl, headers: input.headers }),
);
const client = OpenFeature.getClient();
const methods = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  number: 'getNumberDetails',
  object: 'getObjectDetails',
};
const results = [];
for (const { key, type, default: fallback, context } of input.evaluations) {
  const details = await client[methods[type]](key, fallback, context ?? {});
  results.push({
    key: details.flagKey,
    value: details.value,
    variant: details.variant ?? null,
    reason: details.reason ?? null,
    errorCode: details.errorCode ?? null,
    flagMetadata: details.flagMetadata ?? {},
  });
}
process.stdout.write(JSON.stringify(results));
await OpenFeature.close();
