exports.ok = async (event, context) => {
  console.log('hello from node');
  return {
    echo: event.x, request_id: context.awsRequestId, function: context.functionName,
    remaining_ok: context.getRemainingTimeInMillis() > 0 && context.getRemainingTimeInMillis() <= 60000,
    memory: context.memoryLimitInMB, arn: context.invokedFunctionArn, env: process.env.GREETING,
  };
};
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { echo: event.x, style: 'callback' }), 5);
};
exports.callbackError = (event, context, callback) => {
  callback(new TypeError('bad input'));
};
exports.sync = (event) => ({ echo: event.x, style: 'sync' });
exports.handled = async () => ({ tasker_error: { message: 'no stock', permanent: true, code: 'out_of_stock' } });
class PaymentDeclined extends Error {
  constructor(m) { super(m); this.name = 'PaymentDeclined'; }
}
exports.raises = async () => { throw new PaymentDeclined('card declined'); };
exports.sleeps = () => new Promise((resolve) => setTimeout(() => resolve('late'), 30000));
exports.crashes = async () => { console.error('about to crash'); process.exit(3); };
exports.notJson = async () => ({ n: 10n });
exports.huge = async () => 'x'.repeat(7 << 20);
exports.returnsUndefined = async () => undefined;
exports.notAFunction = 42;
// Large payloads: the shim hands over the context and parent results
// resolved; the large result it returns is uploaded by the shim.
exports.big = async (event) => {
  const c = event.context;
  const n = c.size;
  if (typeof c.blob !== 'string' || c.blob.length !== n || c.blob.replace(/c/g, '') !== '') {
    return { tasker_error: { message: `context arrived as ${JSON.stringify(c).slice(0, 100)}`, permanent: true, code: 'bad_context' } };
  }
  for (const [name, r] of Object.entries(event.results)) {
    if (!r || typeof r.blob !== 'string' || r.blob.length !== n || r.tag !== c.tag) {
      return { tasker_error: { message: `result of ${name} arrived as ${JSON.stringify(r).slice(0, 100)}`, permanent: true, code: 'bad_result' } };
    }
  }
  return { blob: 'n'.repeat(n), tag: c.tag, by: 'node', parents: Object.keys(event.results).sort() };
};
