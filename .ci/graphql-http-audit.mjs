// The GraphQL-over-HTTP server audits of graphql-http (the specification's
// reference implementation) against a running server: fails on any error
// (MUST) or warning (SHOULD); notices (MAY) are printed.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  if (result.status !== 'ok') {
    console.log(`${result.status.toUpperCase()} ${audit.name} - ${result.reason}`);
  }
}
console.log(`graphql-http audits: ${counts.ok} ok, ${counts.warn} warnings, ${counts.error} errors, ${counts.notice} notices`);
process.exit(counts.error + counts.warn > 0 ? 1 : 0);
